"""KServe's inference logger into the prediction log: `alops capture` receives the CloudEvents an
InferenceService's `logger` posts (one for the request, one for the response, sharing `ce-id`) and writes the
pair as the rows `alops serve` writes (alops.serve.capture), so `alops pool add` reads both alike.

Events come in CloudEvents' binary mode (`ce-*` headers, the payload as the body: what KServe's logger sends)
or structured mode (`application/cloudevents+json`). Payloads are the V2 inference protocol KServe's MLflow
runtime speaks (`inputs`/`outputs` of `name`, `shape`, `datatype`, flat `data`) or MLflow's own scoring format.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

import numpy as np

from alops.core.errors import ConfigError
from alops.serve.capture import DEFAULT_MAX_AGE_S, PredictionLog

REQUEST, RESPONSE = "org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"
MAX_PENDING = 10_000  # halves of pairs kept waiting for their other half; the oldest go first


def _tensor(item: dict) -> np.ndarray:
    shape, data = item.get("shape"), item.get("data")
    if not isinstance(shape, list) or not isinstance(data, list):
        raise ConfigError("a V2 tensor needs a shape and a data list")
    return np.asarray(data, dtype=np.float64).reshape(shape)


def scoring_request(payload: dict) -> dict:
    """A V2 inference request as MLflow's scoring request: several named 1-D inputs are a dataframe's columns,
    one input is a tensor of per-sample inputs; MLflow's own formats pass through."""
    inputs = payload.get("inputs")
    if not (isinstance(inputs, list) and inputs and all(isinstance(i, dict) and "shape" in i for i in inputs)):
        return payload
    if len(inputs) == 1:
        return {"inputs": _tensor(inputs[0]).tolist()}
    columns = {str(item.get("name")): _tensor(item).reshape(-1).tolist() for item in inputs}
    rows = len(next(iter(columns.values())))
    if any(len(values) != rows for values in columns.values()):
        raise ConfigError("the V2 request's inputs are columns of different lengths")
    return {"dataframe_records": [{name: values[row] for name, values in columns.items()} for row in range(rows)]}


def predictions(payload: dict):
    """The scored rows of a V2 response (its first output) or of MLflow's `{"predictions": ...}`."""
    outputs = payload.get("outputs")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
        return _tensor(outputs[0]).tolist()
    return payload.get("predictions")


def are_logits(rows) -> bool:
    """Whether the scored rows are logits rather than probabilities (rows of non-negative values summing to 1)."""
    values = np.asarray(rows, dtype=np.float64)
    return not (values.ndim == 2 and (values >= 0).all() and np.allclose(values.sum(axis=1), 1.0, atol=1e-3))


class EventIntake:
    """Pairs request and response events by id and logs each pair once; safe to call from many threads."""

    def __init__(self, log: PredictionLog):
        self.log = log
        self._pending: OrderedDict[str, tuple[str, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def receive(self, headers: dict[str, str], body: bytes) -> int:
        """Take one event (header names lower-case); how many samples its pair logged (0 while it waits)."""
        kind, event_id, payload = _event(headers, body)
        if kind not in (REQUEST, RESPONSE):
            raise ConfigError(f"not an inference event (ce-type {kind!r}): point the InferenceService's logger here")
        with self._lock:
            other = self._pending.pop(event_id, None)  # KServe gives both halves one id (their sources may differ)
            if other is None or other[0] == kind:
                self._pending[event_id] = (kind, payload)
                while len(self._pending) > MAX_PENDING:
                    self._pending.popitem(last=False)
                return 0
        request, response = (payload, other[1]) if kind == REQUEST else (other[1], payload)
        rows = predictions(response)
        version = str(response.get("model_version") or response.get("model_name") or headers.get(
            "ce-inferenceservicename", "kserve"))
        return self.log.record(scoring_request(request), rows, version, rows is not None and are_logits(rows))


def _event(headers: dict[str, str], body: bytes) -> tuple[str, str, dict]:
    """(type, id, payload) of a binary- or structured-mode CloudEvent."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        raise ConfigError("the event's data is not JSON") from None
    if headers.get("content-type", "").startswith("application/cloudevents+json") and isinstance(document, dict):
        kind, event_id, payload = document.get("type"), document.get("id"), document.get("data")
    else:
        kind, event_id, payload = headers.get("ce-type"), headers.get("ce-id"), document
    if not isinstance(event_id, str) or not event_id or not isinstance(payload, dict):
        raise ConfigError("a CloudEvent needs an id and a JSON object as its data")
    return str(kind), event_id, payload


def serve_events(log_folder: str, host: str, port: int, rotate_bytes: int, rotate_seconds: float = DEFAULT_MAX_AGE_S,
                 ready=None) -> None:
    """Receive KServe's logger events on host:port (any path) into the prediction log until interrupted."""
    from http.server import ThreadingHTTPServer

    from alops.serve.server import JsonHandler

    log = PredictionLog(log_folder, rotate_bytes, rotate_seconds)
    intake = EventIntake(log)

    class Receiver(JsonHandler):
        def do_POST(self) -> None:
            body = self._body()
            if body is None:
                return
            try:
                logged = intake.receive({k.lower(): v for k, v in self.headers.items()}, body)
            except (ConfigError, ValueError, TypeError) as exc:
                self._reply(400, {"error": str(exc)})
                return
            self._reply(202, {"logged": logged})

        def do_GET(self) -> None:
            self._reply(200, {"status": "ok"})

    try:
        server = ThreadingHTTPServer((host, port), Receiver)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    server.daemon_threads = True
    try:
        if ready:
            ready(f"http://{host}:{server.server_address[1]}")
        server.serve_forever()
    finally:
        server.server_close()
        log.close()
