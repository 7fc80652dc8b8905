"""What `alops serve` and `alops capture` share: uvicorn with an operator's limits, bounded request bodies,
JSON answers, and the Prometheus exposition of a registry.

uvicorn owns the connections: HTTP parsing (a malformed or negative Content-Length is its 400), the header
size limit (`h11_max_incomplete_event_size`), keep-alive timeouts, the concurrency limit (503 past it), the
listen backlog, and a graceful stop on SIGTERM/SIGINT (in-flight requests finish, then the app's shutdown
closes the log). The app bounds the body (413) and the time a client may take to send it (408).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
from collections.abc import Callable

import anyio
from starlette.requests import Request
from starlette.responses import Response

from alops.core.errors import ConfigError
from alops.core.extras import require

MAX_BODY = 64 << 20
BODY_TIMEOUT_S = 30.0
MAX_HEADER_BYTES = 64 << 10
MAX_CONNECTIONS = 1000
KEEP_ALIVE_S = 5
GRACEFUL_STOP_S = 30
logger = logging.getLogger("alops.serve")


class BodyError(Exception):
    """A request body refused before it was read whole: its status and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def reply(status: int, payload: dict | bytes | str, media_type: str = "application/json") -> Response:
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return Response(body, status_code=status, media_type=media_type)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole body, refused past `limit` bytes (declared or sent) or `BODY_TIMEOUT_S` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"request body over {limit} bytes")
    chunks, size = [], 0
    try:
        with anyio.fail_after(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, f"request body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(408, f"request body not received within {BODY_TIMEOUT_S:.0f} s") from None
    return b"".join(chunks)


CAPTURE_LOSSES = ("dropped_queue_full", "unreadable", "write_failures", "rows_lost_to_write_failures")


def capture_families(stats: dict[str, int], more_losses: dict[str, int] | None = None) -> list:
    """Capture's counters as Prometheus families: rows written, and what was not logged, by cause."""
    from prometheus_client.core import CounterMetricFamily

    dropped = CounterMetricFamily("alops_capture_dropped", "Scored requests, rows or event halves not logged, by cause.",
                                  labels=["cause"])
    for cause, count in [*((cause, stats[cause]) for cause in CAPTURE_LOSSES), *(more_losses or {}).items()]:
        dropped.add_metric([cause], count)
    return [CounterMetricFamily("alops_capture_rows", "Rows written to the prediction log.", value=stats["rows"]),
            dropped]


def metrics_response(registry) -> Response:
    """The registry in Prometheus' text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def prometheus(needed_for: str):
    """prometheus_client, or one line naming the extra that installs it."""
    return require("prometheus_client", "serve", needed_for)


def require_serve_extra(command: str) -> None:
    """What `alops serve` and `alops capture` need beyond the core (`alops[serve]`), checked before they start."""
    prometheus(f"{command}'s /metrics")
    require("PIL", "serve", f"{command}'s image capture (PNG inputs)")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why not."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so (else every answer's body
        # waits for the client's delayed ACK of its headers: 40 ms a request)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or --host") from None
    sock.set_inheritable(True)
    return sock


def _stopped(_signal, _frame) -> None:
    raise SystemExit(0)


def run(app, host: str, port: int, ready: Callable[[str], None] | None = None) -> None:
    """Serve `app` with uvicorn on host:port until SIGTERM or SIGINT; `ready(address)` once it listens."""
    import uvicorn

    sock = listen(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=GRACEFUL_STOP_S,
                            limit_concurrency=MAX_CONNECTIONS, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                            server_header=False, http="h11")
    server = uvicorn.Server(config)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for stop in (signal.SIGTERM, signal.SIGINT):  # uvicorn stops gracefully, then raises the signal again: exit 0
        signal.signal(stop, _stopped)
    if ready:
        ready(f"http://{host}:{sock.getsockname()[1]}")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
