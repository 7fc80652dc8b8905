"""`alops serve`: an MLflow model scored in process behind uvicorn, with prediction capture, Prometheus
metrics and a blue/green slot.

The live model is an MLflow pyfunc loaded in this process; `/invocations` answers MLflow's scoring protocol with
MLflow's own request parser and encoder (`mlflow.pyfunc.scoring_server.invocations`: JSON `dataframe_split`,
`dataframe_records`, `inputs`, `instances`, CSV, Parquet), scoring in a pool of `threads`. Every scored request
goes to the prediction log's queue (alops.serve.capture) after its answer is ready. `/ping` and `/health` say
whether a model serves, `/alops/status` which versions and what capture did, `/metrics` the same for Prometheus.

With ALOPS_SERVE_TOKEN set, a deploy step (alops.release.deploy) loads a challenger beside the live model
(`PUT /alops/challenger`), smoke-tests it (`POST /alops/challenger/invocations`, not captured), then swaps the
reference (`POST /alops/promote`: requests already scoring finish on the old model) or drops it
(`DELETE /alops/challenger`); without the token those calls are refused. With ALOPS_SERVE_INVOKE_TOKEN set,
`/invocations` needs it as a bearer token too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alops.core.errors import AlopsError, ConfigError
from alops.serve.asgi import (
    BodyError,
    capture_families,
    logger,
    metrics_response,
    prometheus,
    read_body,
    reply,
    require_serve_extra,
    run,
)
from alops.serve.capture import DEFAULT_MAX_AGE_S, CaptureProcess

TOKEN_VARIABLE = "ALOPS_SERVE_TOKEN"
INVOKE_TOKEN_VARIABLE = "ALOPS_SERVE_INVOKE_TOKEN"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Model:
    """A model ready to serve: its local MLflow folder, the version it came from, whether it outputs logits."""

    uri: str
    folder: str
    version: str
    logits: bool


def resolve(uri: str, folder: str) -> Model:
    """Download `uri` (a folder, `models:/name@alias`, `models:/name/N`, `runs:/...`) as an MLflow model folder."""
    import yaml

    from alops.al.scoring import is_mlflow_model, model_digest, model_file

    local = model_file(uri, folder)
    if not is_mlflow_model(local):
        raise ConfigError(f"{uri}: not an MLflow model folder (no MLmodel file), so no serving runtime can load it; "
                          "save it with mlflow.pytorch.save_model or mlflow.sklearn.save_model (docs/deploy.md)")
    with open(os.path.join(local, "MLmodel"), encoding="utf-8") as handle:
        flavours = (yaml.safe_load(handle) or {}).get("flavors") or {}
    return Model(uri, local, registry_version(uri) or f"local-{model_digest(local)}", "pytorch" in flavours)


def registry_version(uri: str) -> str | None:
    """The registered version number a `models:/` URI names (an alias resolved now), else None."""
    if not uri.startswith("models:/"):
        return None
    from mlflow.tracking import MlflowClient

    name, _, rest = uri[len("models:/"):].partition("@")
    if rest:
        return str(MlflowClient().get_model_version_by_alias(name, rest).version)
    return uri.rstrip("/").rpartition("/")[2]


def awaits_first_release(uri: str) -> bool:
    """Whether `uri` is a registry alias no version carries yet (`models:/digits@champion` before the first
    release): the server then starts empty and the first deploy stages and promotes its model."""
    if not (uri.startswith("models:/") and "@" in uri):
        return False
    from mlflow.exceptions import MlflowException

    try:
        registry_version(uri)
    except MlflowException:
        return True
    return False


class Loaded:
    """One model loaded in this process, scored with MLflow's own scoring-protocol handler."""

    def __init__(self, model: Model):
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        self.model = model
        try:
            self.pyfunc = mlflow.pyfunc.load_model(model.folder)
        except (MlflowException, ImportError, OSError) as exc:
            raise AlopsError(f"{model.uri}: the model does not load here ({' '.join(str(exc).split())[:300]})") from None
        self.schema = self.pyfunc.metadata.get_input_schema()

    def score(self, body: bytes, content_type: str) -> tuple[int, bytes, str]:
        """(status, answer, media type) of one scoring request; a request the model cannot take is a 4xx."""
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc.scoring_server import invocations

        try:
            result = invocations(body, content_type, self.pyfunc, self.schema)
        except MlflowException as exc:
            return exc.get_http_status_code(), json.dumps(
                {"error_code": exc.error_code, "message": str(exc.message).split("\n")[0][:2000]}).encode(), \
                "application/json"
        response = result.response
        return result.status, response.encode() if isinstance(response, str) else response, result.mimetype


class Serving:
    """The live model, the staged challenger, the log, and the work folder that holds their downloads."""

    def __init__(self, uri: str, log: CaptureProcess | None, token: str | None = None, invoke_token: str | None = None):
        self.log, self.token, self.invoke_token = log, token, invoke_token
        self.work = tempfile.mkdtemp(prefix="alops-serve-")
        self.challenger: Loaded | None = None
        self.live: Loaded | None = None
        try:
            if not awaits_first_release(uri):
                self.live = Loaded(resolve(uri, self._folder()))
        except BaseException:
            shutil.rmtree(self.work, ignore_errors=True)
            raise

    def _folder(self) -> str:
        return tempfile.mkdtemp(dir=self.work)

    def load(self, uri: str) -> Loaded:
        return Loaded(resolve(uri, self._folder()))

    def stage(self, loaded: Loaded) -> None:
        self.challenger = loaded
        logger.info("deploy: version %s (%s) staged as the challenger", loaded.model.version, loaded.model.uri)

    def promote(self) -> Loaded:
        if self.challenger is None:
            raise ConfigError("no challenger is staged")
        old, self.live, self.challenger = self.live, self.challenger, None
        logger.info("deploy: version %s serves (was %s)", self.live.model.version, old.model.version if old else "none")
        return self.live

    def discard(self) -> None:
        if self.challenger is not None:
            logger.info("deploy: challenger version %s dropped", self.challenger.model.version)
        self.challenger = None

    def status(self) -> dict:
        live, challenger = self.live, self.challenger
        return {"model_version": live.model.version if live else None, "model_uri": live.model.uri if live else None,
                "challenger": challenger.model.version if challenger else None,
                "capture": ({**self.log.stats.as_dict(), "queue_depth": self.log.depth, "folder": self.log.folder}
                            if self.log else None)}

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


class Metrics:
    """The endpoint's Prometheus metrics, per model version."""

    def __init__(self, serving: Serving):
        client = prometheus("alops serve's /metrics")
        client.disable_created_metrics()
        self.registry = client.CollectorRegistry()
        self.requests = client.Counter("alops_requests", "Scoring requests answered, by model version and status.",
                                       ["model_version", "slot", "code"], registry=self.registry)
        self.latency = client.Histogram("alops_request_duration_seconds", "Time to answer a scoring request.",
                                        ["model_version", "slot"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_CaptureCollector(serving, client))


class _CaptureCollector:
    """Capture's counters and queue depth, and which versions serve, read when Prometheus scrapes."""

    def __init__(self, serving: Serving, client):
        self.serving, self.client = serving, client

    def describe(self) -> list:
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        info = GaugeMetricFamily("alops_model_info", "The versions this endpoint holds (1 per slot).",
                                 labels=["slot", "model_version"])
        for slot, loaded in (("live", self.serving.live), ("challenger", self.serving.challenger)):
            if loaded is not None:
                info.add_metric([slot, loaded.model.version], 1)
        yield info
        log = self.serving.log
        if log is None:
            return
        yield from capture_families(log.stats.as_dict())
        yield GaugeMetricFamily("alops_capture_queue_depth", "Scored requests waiting for the log's writer.",
                                value=log.depth)


def _authorised(request: Request, token: str | None) -> bool:
    given = (request.headers.get("authorization") or "").removeprefix("Bearer ")
    return bool(token) and hmac.compare_digest(given.encode(), (token or "").encode())


def create_app(serving: Serving, threads: int = 8) -> Starlette:
    """The ASGI application of `alops serve`."""
    metrics = Metrics(serving)
    limiter = anyio.CapacityLimiter(threads)

    async def score(loaded: Loaded, request: Request, slot: str) -> tuple[Response, bytes | None, bytes | None]:
        started = time.perf_counter()
        try:
            body = await read_body(request)
        except BodyError as exc:
            return reply(exc.status, {"error": str(exc)}), None, None
        content_type = request.headers.get("content-type") or "application/json"
        try:
            status, answer, media = await anyio.to_thread.run_sync(loaded.score, body, content_type, limiter=limiter)
        except Exception as exc:  # the model raised what MLflow's handler does not map: a 500, logged
            logger.error("serve: version %s failed a request: %s: %s", loaded.model.version, type(exc).__name__, exc)
            status, answer, media = 500, json.dumps({"error": f"the model failed: {type(exc).__name__}"}).encode(), \
                "application/json"
        version = loaded.model.version
        metrics.requests.labels(version, slot, str(status)).inc()
        metrics.latency.labels(version, slot).observe(time.perf_counter() - started)
        return Response(answer, status_code=status, media_type=media), body, answer if status == 200 else None

    async def invocations(request: Request) -> Response:
        if serving.invoke_token and not _authorised(request, serving.invoke_token):
            return reply(401, {"error": f"scoring needs the server's {INVOKE_TOKEN_VARIABLE} as a bearer token"})
        loaded = serving.live
        if loaded is None:
            return reply(503, {"error": "no model deployed yet"})
        response, body, answer = await score(loaded, request, "live")
        if answer is not None and serving.log is not None:
            assert body is not None  # answered 200
            serving.log.submit(body, answer, loaded.model.version, loaded.model.logits)
        return response

    async def health(_request: Request) -> Response:
        live = serving.live
        return reply(200 if live else 503, {"status": "ok" if live else "no model yet", **serving.status()})

    async def status(_request: Request) -> Response:
        return reply(200, serving.status())

    async def metrics_page(_request: Request) -> Response:
        return metrics_response(metrics.registry)

    def admin(handler):
        async def guarded(request: Request) -> Response:
            if not _authorised(request, serving.token):
                return reply(403, {"error": f"deploy calls need the server's {TOKEN_VARIABLE}"})
            return await handler(request)
        return guarded

    async def stage(request: Request) -> Response:
        try:
            uri = json.loads(await read_body(request, 1 << 16))["model_uri"]
            if not isinstance(uri, str) or not uri:
                raise TypeError(uri)
        except BodyError as exc:
            return reply(exc.status, {"error": str(exc)})
        except (ValueError, KeyError, TypeError):
            return reply(400, {"error": 'expected {"model_uri": "..."}'})
        try:
            loaded = await anyio.to_thread.run_sync(serving.load, uri)
        except AlopsError as exc:
            logger.error("deploy: %s not staged: %s", uri, exc)
            return reply(422, {"error": str(exc)})
        serving.stage(loaded)
        return reply(200, {"challenger": loaded.model.version})

    async def challenger_invocations(request: Request) -> Response:
        challenger = serving.challenger
        if challenger is None:
            return reply(409, {"error": "no challenger is staged"})
        return (await score(challenger, request, "challenger"))[0]

    async def promote(_request: Request) -> Response:
        try:
            return reply(200, {"model_version": serving.promote().model.version})
        except ConfigError as exc:
            return reply(409, {"error": str(exc)})

    async def discard(_request: Request) -> Response:
        serving.discard()
        return reply(200, {"challenger": None})

    async def not_found(request: Request, _exc) -> Response:
        return reply(404, {"error": f"no route {request.method} {request.url.path}"})

    async def not_allowed(request: Request, _exc) -> Response:
        return reply(405, {"error": f"{request.method} is not allowed on {request.url.path}"})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        await asyncio.to_thread(serving.close)  # after in-flight requests: the queue drains, the log finishes

    return Starlette(routes=[
        Route("/ping", health), Route("/health", health), Route("/alops/status", status),
        Route("/metrics", metrics_page), Route("/invocations", invocations, methods=["POST"]),
        Route("/alops/challenger", admin(stage), methods=["PUT"]),
        Route("/alops/challenger", admin(discard), methods=["DELETE"]),
        Route("/alops/challenger/invocations", admin(challenger_invocations), methods=["POST"]),
        Route("/alops/promote", admin(promote), methods=["POST"]),
    ], exception_handlers={404: not_found, 405: not_allowed}, lifespan=lifespan)


def serve(uri: str, host: str, port: int, log_folder: str | None, rotate_bytes: int, threads: int = 8,
          rotate_seconds: float = DEFAULT_MAX_AGE_S, ready=None) -> None:
    """Serve `uri` on host:port until SIGTERM/SIGINT; `ready(address, serving_a_model)` is called once it listens."""
    require_serve_extra("alops serve")
    log = CaptureProcess(log_folder, rotate_bytes, rotate_seconds) if log_folder else None
    try:
        serving = Serving(uri, log, os.environ.get(TOKEN_VARIABLE) or None, os.environ.get(INVOKE_TOKEN_VARIABLE) or None)
    except BaseException:
        if log is not None:
            log.close()
        raise
    app = create_app(serving, threads)
    try:
        run(app, host, port, ready=(lambda address: ready(address, serving.live is not None)) if ready else None)
    finally:
        serving.close()  # when the app never started (the address was taken); a second close does nothing
