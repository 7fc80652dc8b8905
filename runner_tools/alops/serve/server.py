"""`alops serve`: an MLflow model behind MLflow's own scoring server, with prediction capture and a
blue/green slot.

The runtime is `mlflow models serve --env-manager local` (the pyfunc scoring server: it loads every flavour
the registry holds, with no dependency beyond the mlflow alops already installs) on a private 127.0.0.1 port.
In front of it a small HTTP server answers on the public address: `/invocations` goes to the live model and
every scored sample lands in the prediction log (alops.serve.capture); `/ping` and `/health` report the live
runtime. With `ALOPS_SERVE_TOKEN` set, a deploy step (alops.release.deploy) stages a challenger beside the live model
(`PUT /alops/challenger`), smoke-tests it (`POST /alops/challenger/invocations`, not captured), then swaps it
in (`POST /alops/promote`) or drops it (`DELETE /alops/challenger`); without the token those calls are refused.
"""

from __future__ import annotations

import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alops.core.errors import AlopsError, ConfigError
from alops.serve.capture import DEFAULT_MAX_AGE_S, PredictionLog

TOKEN_VARIABLE = "ALOPS_SERVE_TOKEN"
MAX_BODY = 64 << 20
START_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


class Runtime:
    """One scoring-server process for one model on a free private port."""

    def __init__(self, model: Model, workers: int = 1):
        self.model = model
        self.port = free_port()
        self._connections = threading.local()
        scripts = os.path.dirname(sys.executable)  # mlflow starts uvicorn by name: it must be on PATH
        env = {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model.folder, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(self.port), "-w", str(workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                assert self.process.stderr is not None  # started with stderr=PIPE
                last = (self.process.stderr.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
                raise AlopsError(f"the scoring server for {self.model.uri} exited ({last})")
            try:
                if self.call("GET", "/ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise AlopsError(f"the scoring server for {self.model.uri} did not answer within {START_TIMEOUT:.0f} s")

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request to the runtime over this thread's kept-alive connection (opened again once if it closed)."""
        try:
            return self._send(method, path, body)
        except (http.client.HTTPException, ConnectionError):
            return self._send(method, path, body)

    def _send(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        connection = getattr(self._connections, "connection", None)
        if connection is None:
            connection = self._connections.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, ConnectionError):
            connection.close()
            self._connections.connection = None
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        if self.process.stderr is not None:
            self.process.stderr.close()


class Serving:
    """The live runtime, the staged challenger, the log, and the work folder that holds their downloads."""

    def __init__(self, uri: str, log: PredictionLog | None, workers: int = 1, token: str | None = None):
        self.log, self.workers, self.token = log, workers, token
        self.work = tempfile.mkdtemp(prefix="alops-serve-")
        self._lock = threading.Lock()
        self.challenger: Runtime | None = None
        self.live: Runtime | None = None if awaits_first_release(uri) else Runtime(resolve(uri, self._folder()), workers)

    def _folder(self) -> str:
        return tempfile.mkdtemp(dir=self.work)

    def stage(self, uri: str) -> Runtime:
        runtime = Runtime(resolve(uri, self._folder()), self.workers)
        with self._lock:
            old, self.challenger = self.challenger, runtime
        if old is not None:
            old.stop()
        return runtime

    def promote(self) -> Runtime:
        with self._lock:
            if self.challenger is None:
                raise ConfigError("no challenger is staged")
            old, self.live, self.challenger = self.live, self.challenger, None
        if old is not None:
            old.stop()
        return self.live

    def discard(self) -> None:
        with self._lock:
            old, self.challenger = self.challenger, None
        if old is not None:
            old.stop()

    def status(self) -> dict:
        live, challenger = self.live, self.challenger
        return {"model_version": live.model.version if live else None, "model_uri": live.model.uri if live else None,
                "challenger": challenger.model.version if challenger else None}

    def close(self) -> None:
        for runtime in (self.challenger, self.live):
            if runtime is not None:
                runtime.stop()
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


class JsonHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with JSON answers, quiet, request bodies up to MAX_BODY (alops serve, alops capture)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:
        pass

    def _reply(self, status: int, payload: bytes | dict) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"error": f"request body over {MAX_BODY} bytes"})
            return None
        return self.rfile.read(length)


class Handler(JsonHandler):
    serving: Serving

    def _admin(self) -> bool:
        token = self.serving.token
        given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            self._reply(403, {"error": f"deploy calls need the server's {TOKEN_VARIABLE}"})
            return False
        return True

    def _route(self, method: str) -> None:
        name = ROUTES.get((method, self.path))
        if name is None:
            self._reply(404, {"error": f"no route {method} {self.path}"})
            return
        body = self._body() if method in ("POST", "PUT") else b""
        if body is not None and (name in PUBLIC or self._admin()):
            getattr(self, name)(body)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def health(self, _body: bytes) -> None:
        live = self.serving.live
        status = live.call("GET", "/ping")[0] if live else 503
        self._reply(status, {"status": "ok" if status == 200 else "down" if live else "no model yet",
                             **self.serving.status()})

    def status(self, _body: bytes) -> None:
        self._reply(200, self.serving.status())

    def invocations(self, body: bytes) -> None:
        runtime = self.serving.live
        if runtime is None:
            self._reply(503, {"error": "no model deployed yet"})
            return
        status, answer = runtime.call("POST", "/invocations", body)
        if status == 200 and self.serving.log is not None:
            try:
                self.serving.log.record(json.loads(body), json.loads(answer).get("predictions"),
                                        runtime.model.version, runtime.model.logits)
            except (ValueError, TypeError, KeyError, AttributeError):
                pass  # the runtime scored what the log cannot read: the answer still goes back
        self._reply(status, answer)

    def stage(self, body: bytes) -> None:
        try:
            uri = json.loads(body)["model_uri"]
            if not isinstance(uri, str):
                raise TypeError(uri)
        except (ValueError, KeyError, TypeError):
            self._reply(400, {"error": 'expected {"model_uri": "..."}'})
            return
        try:
            self._reply(200, {"challenger": self.serving.stage(uri).model.version})
        except AlopsError as exc:
            self._reply(422, {"error": str(exc)})

    def challenger_invocations(self, body: bytes) -> None:
        challenger = self.serving.challenger
        if challenger is None:
            self._reply(409, {"error": "no challenger is staged"})
        else:
            self._reply(*challenger.call("POST", "/invocations", body))

    def promote(self, _body: bytes) -> None:
        try:
            self._reply(200, {"model_version": self.serving.promote().model.version})
        except ConfigError as exc:
            self._reply(409, {"error": str(exc)})

    def discard(self, _body: bytes) -> None:
        self.serving.discard()
        self._reply(200, {"challenger": None})


ROUTES = {("GET", "/ping"): "health", ("GET", "/health"): "health", ("GET", "/alops/status"): "status",
          ("POST", "/invocations"): "invocations", ("PUT", "/alops/challenger"): "stage",
          ("POST", "/alops/challenger/invocations"): "challenger_invocations", ("POST", "/alops/promote"): "promote",
          ("DELETE", "/alops/challenger"): "discard"}
PUBLIC = {"health", "status", "invocations"}


def _stop(_signal, _frame) -> None:
    raise SystemExit(0)


def serve(uri: str, host: str, port: int, log_folder: str | None, rotate_bytes: int, workers: int = 1,
          rotate_seconds: float = DEFAULT_MAX_AGE_S, ready=None) -> None:
    """Serve `uri` on host:port until interrupted; `ready(address, serving_a_model)` is called once it answers."""
    log = PredictionLog(log_folder, rotate_bytes, rotate_seconds) if log_folder else None
    serving = Serving(uri, log, workers, os.environ.get(TOKEN_VARIABLE) or None)
    handler = type("ServingHandler", (Handler,), {"serving": serving})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        serving.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, _stop)  # a service manager's stop: the runtimes go with the server
    try:
        if ready:
            ready(f"http://{host}:{server.server_address[1]}", serving.live is not None)
        server.serve_forever()
    finally:
        server.server_close()
        serving.close()
