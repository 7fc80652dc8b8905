"""KServe's inference logger into the prediction log: `alops capture` receives the CloudEvents an
InferenceService's `logger` posts (one for the request, one for the response, sharing `ce-id`) and writes the
pair as the rows `alops serve` writes (alops.serve.capture), so `alops pool add` reads both alike.

Events come in CloudEvents' binary mode (`ce-*` headers, the payload as the body: what KServe's logger sends)
or structured mode (`application/cloudevents+json`). Payloads are the V2 inference protocol KServe's MLflow
runtime speaks (`inputs`/`outputs` of `name`, `shape`, `datatype`, flat `data`) or MLflow's own scoring format.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alops.core.errors import ConfigError
from alops.serve.asgi import (
    BodyError,
    capture_families,
    metrics_response,
    prometheus,
    read_body,
    reply,
    require_serve_extra,
    run,
)
from alops.serve.capture import DEFAULT_MAX_AGE_S, PredictionLog, logger

REQUEST, RESPONSE = "org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"
MAX_PENDING_BYTES = 256 << 20  # event halves waiting for their other half, all together; the oldest go first
MAX_PENDING_AGE_S = 300.0  # KServe's logger posts both halves of a request within seconds


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
    """Pairs request and response events by id and logs each pair once; safe to call from many threads.

    Halves wait for their pair at most `max_age_s` and, all together, `max_bytes` (the oldest go first); each
    half that leaves unpaired is counted in `unpaired` and logged."""

    def __init__(self, log: PredictionLog, max_bytes: int = MAX_PENDING_BYTES, max_age_s: float = MAX_PENDING_AGE_S):
        self.log, self.max_bytes, self.max_age_s = log, max_bytes, max_age_s
        self._pending: OrderedDict[str, tuple[str, dict, int, float]] = OrderedDict()
        self._bytes = 0
        self.unpaired = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> tuple[int, int]:
        """(halves waiting, their bytes)."""
        with self._lock:
            return len(self._pending), self._bytes

    def receive(self, headers: dict[str, str], body: bytes) -> int:
        """Take one event (header names lower-case); how many samples its pair logged (0 while it waits)."""
        kind, event_id, payload = _event(headers, body)
        if kind not in (REQUEST, RESPONSE):
            raise ConfigError(f"not an inference event (ce-type {kind!r}): point the InferenceService's logger here")
        with self._lock:
            other = self._pending.pop(event_id, None)  # KServe gives both halves one id (their sources may differ)
            if other is not None:
                self._bytes -= other[2]
            if other is None or other[0] == kind:
                if other is not None:
                    self._evicted(1, "a second half of the same kind replaced the first")
                self._pending[event_id] = (kind, payload, len(body), time.monotonic())
                self._bytes += len(body)
                self._expire()
                return 0
        request, response = (payload, other[1]) if kind == REQUEST else (other[1], payload)
        rows = predictions(response)
        version = str(response.get("model_version") or response.get("model_name") or headers.get(
            "ce-inferenceservicename", "kserve"))
        return self.log.record(scoring_request(request), rows, version, rows is not None and are_logits(rows))

    def _expire(self) -> None:
        """Drop the oldest halves past the byte or age bound (called with the lock held)."""
        dropped, now = 0, time.monotonic()
        while self._pending and (self._bytes > self.max_bytes
                                 or now - next(iter(self._pending.values()))[3] > self.max_age_s):
            _id, (_kind, _payload, size, _at) = self._pending.popitem(last=False)
            self._bytes -= size
            dropped += 1
        if dropped:
            self._evicted(dropped, "no pair came in time or the waiting halves passed their byte bound")

    def _evicted(self, count: int, why: str) -> None:
        self.unpaired += count
        logger.warning("capture: %d event half(s) dropped unpaired: %s", count, why)


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


def create_app(intake: EventIntake):
    """The ASGI application of `alops capture`: POST events on any path, GET for health, /metrics."""
    client = prometheus("alops capture's /metrics")
    registry = client.CollectorRegistry()
    events = client.Counter("alops_capture_events", "Logger events received, by outcome.", ["outcome"],
                            registry=registry)
    registry.register(_IntakeCollector(intake))

    async def receive(request: Request) -> Response:
        if request.method == "GET":
            if request.url.path == "/metrics":
                return metrics_response(registry)
            return reply(200, {"status": "ok", **_status(intake)})
        try:
            body = await read_body(request)
            headers = {key.lower(): value for key, value in request.headers.items()}
            logged = await anyio.to_thread.run_sync(intake.receive, headers, body)
        except BodyError as exc:
            events.labels("refused").inc()
            return reply(exc.status, {"error": str(exc)})
        except (ConfigError, ValueError, TypeError) as exc:
            events.labels("refused").inc()
            return reply(400, {"error": str(exc)})
        events.labels("paired" if logged else "waiting").inc()
        return reply(202, {"logged": logged})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        await anyio.to_thread.run_sync(intake.log.close)

    return Starlette(routes=[Route("/{path:path}", receive, methods=["GET", "POST"])], lifespan=lifespan)


def _status(intake: EventIntake) -> dict:
    waiting, size = intake.pending
    return {"capture": intake.log.stats.as_dict(), "pending_halves": waiting, "pending_bytes": size,
            "unpaired": intake.unpaired}


class _IntakeCollector:
    def __init__(self, intake: EventIntake):
        self.intake = intake

    def describe(self) -> list:
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        status = _status(self.intake)
        yield from capture_families(status["capture"], {"unpaired": status["unpaired"]})
        yield GaugeMetricFamily("alops_capture_pending_bytes", "Bytes of event halves waiting for their pair.",
                                value=status["pending_bytes"])


def serve_events(log_folder: str, host: str, port: int, rotate_bytes: int, rotate_seconds: float = DEFAULT_MAX_AGE_S,
                 pending_bytes: int = MAX_PENDING_BYTES, ready=None) -> None:
    """Receive KServe's logger events on host:port (any path) into the prediction log until SIGTERM/SIGINT."""
    require_serve_extra("alops capture")
    log = PredictionLog(log_folder, rotate_bytes, rotate_seconds)
    try:
        run(create_app(EventIntake(log, pending_bytes)), host, port, ready=ready)
    finally:
        log.close()
