"""`alops serve` and `alops capture` as an operator runs them: the real commands on free 127.0.0.1 ports, a real
MLflow model scored in process, hostile and bursty clients, a killed process, a full disk. What is checked is
what an operator would look at: the answers, the log's lines, `/metrics`, the process's threads."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import ALOPS, clean_env, free_port

FEATURES = ["x", "y"]
TOKEN, INVOKE = "deploy-secret", "invoke-secret"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An MLflow scikit-learn classifier of two named features."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=FEATURES)
    classifier = LogisticRegression().fit(frame, (frame["x"] > 0).astype(int))
    folder = tmp_path_factory.mktemp("model") / "model"
    proba = classifier.predict_proba(frame)
    mlflow.sklearn.save_model(classifier, str(folder), signature=infer_signature(frame, proba),
                              pyfunc_predict_fn="predict_proba")
    return folder


class Server:
    """One `alops serve` (or `alops capture`) process, its address and its log folder."""

    def __init__(self, args: list[str], folder: Path, env: dict | None = None, limit_file_bytes: int | None = None):
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = folder.parent / f"server-{self.port}.log"

        def limits():
            if limit_file_bytes is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

        with open(self.output, "w") as out:
            self.process = subprocess.Popen([ALOPS, *args, "--port", str(self.port), "--log-dir", str(folder)],
                                            env={**clean_env(), **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                            preexec_fn=limits, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output.read_text()
            try:
                requests.get(self.url + "/alops/status", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError(f"no answer from {args[0]}: {self.output.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(60)

    def kill(self) -> None:
        """kill -9 of the server and its capture writer at once (what an OOM kill of the unit does)."""
        os.killpg(self.process.pid, signal.SIGKILL)

    def metrics(self) -> dict[str, float]:
        text = requests.get(self.url + "/metrics", timeout=10).text
        return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
                for line in text.splitlines() if line and not line.startswith("#")}

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/task"))


def serve(model: Path, folder: Path, **kwargs) -> Server:
    return Server(["serve", str(model)], folder, {"ALOPS_SERVE_TOKEN": TOKEN, "ALOPS_SERVE_INVOKE_TOKEN": INVOKE},
                  **kwargs)


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    running = serve(model, tmp_path_factory.mktemp("serve") / "predictions")
    yield running
    running.stop()


def score(url: str, body, token: str | None = INVOKE, session=requests) -> requests.Response:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return session.post(url + "/invocations", data=body if isinstance(body, bytes) else json.dumps(body),
                        headers=headers, timeout=60)


def records(count: int, start: float = 0.0) -> dict:
    return {"dataframe_records": [{"x": start + i / 10, "y": 1.0} for i in range(count)]}


def log_lines(folder: Path) -> list[dict]:
    """Every row of every log in `folder`, each line parsed as strict JSON (a torn line fails here)."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    rows = []
    for log in sorted(folder.glob("predictions*.jsonl")):
        text = log.read_text()
        assert not text or text.endswith("\n"), f"{log.name} ends in a torn line"
        rows += [json.loads(line, parse_constant=refuse) for line in text.splitlines()]
    return rows


def wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def raw(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send `request` as bytes on a fresh connection; the answer's first line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        try:
            connection.sendall(request)
        except (BrokenPipeError, ConnectionResetError):  # refused before the whole request was read
            pass
        return connection.recv(65536).split(b"\r\n")[0]


def test_scoring_answers_mlflows_protocol_logs_each_sample_and_counts_it_per_version(server):
    answer = score(server.url, records(3))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 3
    version = requests.get(server.url + "/alops/status", timeout=10).json()["model_version"]
    wait_for(lambda: server.metrics().get("alops_capture_rows_total", 0) >= 3)
    metrics = server.metrics()
    assert metrics[f'alops_requests_total{{code="200",model_version="{version}",slot="live"}}'] >= 1
    assert metrics[f'alops_model_info{{model_version="{version}",slot="live"}}'] == 1
    assert metrics[f'alops_request_duration_seconds_count{{model_version="{version}",slot="live"}}'] >= 1
    assert requests.post(server.url + "/invocations", json=records(1), timeout=10).status_code == 401


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"400"),
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"400"),
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + INVOKE.encode()
     + b"\r\nContent-Length: 67108865\r\n\r\n", b"413"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200_000 + b"\r\n\r\n", b"431|400"),
])
def test_malformed_and_oversized_requests_get_a_4xx_and_the_server_goes_on(server, request_bytes, status):
    first_line = raw(server.port, request_bytes)
    assert any(code in first_line for code in status.split(b"|")), first_line
    assert score(server.url, records(1)).status_code == 200


@pytest.mark.parametrize("body", [
    {"dataframe_records": [1, 2]}, {"dataframe_split": {"columns": FEATURES}}, b"{not json", {"inputs": {"x": "a"}},
])
def test_bodies_the_model_cannot_read_are_one_line_4xx_and_nothing_is_logged(server, body):
    before = server.metrics().get("alops_capture_rows_total", 0)
    answer = score(server.url, body)
    assert 400 <= answer.status_code < 500, answer.text
    assert "\n" not in answer.json()["message"] and "Traceback" not in answer.text
    assert server.metrics().get("alops_capture_rows_total", 0) == before


def test_a_requests_own_id_and_path_never_become_the_rows(server):
    body = {"dataframe_records": [{"x": 0.5, "y": 1.0, "path": "../../etc/passwd", "id": 7}]}
    assert score(server.url, body).status_code == 200
    wait_for(lambda: any(r.get("x") == 0.5 for r in log_lines(server.folder)))
    row = next(r for r in log_lines(server.folder) if r.get("x") == 0.5)
    assert "path" not in row and row["id"] != 7


def test_slow_and_idle_clients_hold_no_thread_and_do_not_block_others(server):
    """150 connections that send half a request and stop: the server keeps its threads and answers others."""
    threads = server.threads()
    idle = []
    for _ in range(150):
        connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        connection.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Le")
        idle.append(connection)
    try:
        assert score(server.url, records(1)).status_code == 200  # answered (not queued behind the idle ones)
        assert server.threads() <= threads + 2
    finally:
        for connection in idle:
            connection.close()


def burst(url: str, clients: int, requests_each: int, rows: int = 1, path: str = "/invocations") -> int:
    """`clients` threads, each sending `requests_each` requests of `rows` samples; how many were answered 200."""
    answered = []

    def client(number: int):
        ok = 0
        with requests.Session() as session:
            for index in range(requests_each):
                try:
                    answer = score(url, records(rows, number * 1000 + index), session=session)
                except requests.ConnectionError:
                    break
                ok += answer.status_code == 200
        answered.append(ok)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(answered)


def test_a_burst_is_logged_exactly_once_and_a_clean_stop_finishes_the_log(model, tmp_path):
    running = serve(model, tmp_path / "predictions")
    answered = burst(running.url, clients=16, requests_each=40, rows=2)
    assert running.stop() == 0
    rows = log_lines(tmp_path / "predictions")
    assert answered == 640 and len(rows) == 1280 and len({r["id"] for r in rows}) == 1280
    assert (tmp_path / "predictions/predictions.jsonl").read_text() == ""  # all of it in finished logs


@pytest.mark.slow
def test_a_long_burst_a_kill_and_a_restart_leave_whole_lines_that_pool_add_reads(model, tmp_path, feature_project):
    """16 clients x 500 requests, every row once; then kill -9 mid-burst: the restarted server cuts the torn
    line away, and `pool add` reads every log."""
    from alops.data.pool import add_to_pool

    folder = tmp_path / "predictions"
    running = serve(model, folder)
    assert burst(running.url, clients=16, requests_each=500) == 8000
    wait_for(lambda: running.metrics()["alops_capture_rows_total"] == 8000)
    killer = threading.Timer(1.0, running.kill)
    killer.start()
    burst(running.url, clients=16, requests_each=200, rows=8)
    killer.join()
    running.process.wait(30)
    with open(folder / "predictions.jsonl", "a") as torn:  # as if the kill cut a write in half
        torn.write('{"id": 1, "x": 0.')
    restarted = serve(model, folder)
    assert score(restarted.url, records(1)).status_code == 200
    assert restarted.stop() == 0
    assert "torn line" in restarted.output.read_text()
    rows = log_lines(folder)
    assert len(rows) >= 8001 and len({r["id"] for r in rows}) == len(rows)
    manifest = feature_project / "data/full/manifest.csv"
    added = sum(add_to_pool(str(manifest), str(log), "train").added for log in sorted(folder.glob("predictions-*.jsonl")))
    assert added == len(rows)


@pytest.mark.slow
def test_a_full_disk_drops_counted_rows_never_a_torn_line_and_serving_goes_on(model, tmp_path):
    running = serve(model, tmp_path / "predictions", limit_file_bytes=20_000)
    assert burst(running.url, clients=4, requests_each=50, rows=4) == 200  # every answer, log or no log
    wait_for(lambda: running.metrics()['alops_capture_dropped_total{cause="write_failures"}'] > 0)
    metrics = running.metrics()
    assert metrics["alops_capture_rows_total"] + metrics['alops_capture_dropped_total{cause="rows_lost_to_write_failures"}'] == 800
    assert running.stop() == 0
    assert len(log_lines(tmp_path / "predictions")) == metrics["alops_capture_rows_total"]
    assert "rows not logged: File too large" in running.output.read_text()


def test_blue_green_in_process_smokes_the_challenger_uncaptured_then_swaps(server, model):
    admin = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.put(server.url + "/alops/challenger", json={"model_uri": str(model)}, timeout=10).status_code == 403
    staged = requests.put(server.url + "/alops/challenger", json={"model_uri": str(model)}, headers=admin, timeout=120)
    assert staged.status_code == 200, staged.text
    before = server.metrics().get("alops_capture_rows_total", 0)
    smoke = requests.post(server.url + "/alops/challenger/invocations", json=records(5), headers=admin, timeout=60)
    assert smoke.status_code == 200 and len(smoke.json()["predictions"]) == 5
    assert requests.post(server.url + "/alops/promote", headers=admin, timeout=10).json()["model_version"]
    assert server.metrics().get("alops_capture_rows_total", 0) == before  # the smoke test is not captured
    wrong = requests.put(server.url + "/alops/challenger", json={"model_uri": "/nowhere"}, headers=admin, timeout=60)
    assert wrong.status_code == 422 and "\n" not in wrong.json()["error"]


@pytest.fixture
def capture_server(tmp_path):
    running = Server(["capture", "--pending-mb", "4"], tmp_path / "predictions")
    yield running
    running.stop()


def test_capture_bounds_waiting_halves_in_bytes_and_counts_the_unpaired(capture_server):
    half = json.dumps({"inputs": [{"name": "x", "shape": [100_000], "datatype": "FP64", "data": [0.5] * 100_000}]})
    for number in range(40):  # 40 requests of ~0.6 MB whose responses never come
        answer = requests.post(capture_server.url, data=half, timeout=30, headers={
            "Ce-Id": f"e-{number}", "Ce-Type": "org.kubeflow.serving.inference.request",
            "Content-Type": "application/json"})
        assert answer.status_code == 202
    status = requests.get(capture_server.url, timeout=10).json()
    assert status["pending_bytes"] <= 4 << 20 and status["unpaired"] >= 30
    assert capture_server.metrics()['alops_capture_dropped_total{cause="unpaired"}'] == status["unpaired"]


@pytest.mark.parametrize("pairs", [60, pytest.param(500, marks=pytest.mark.slow)])
def test_capture_logs_a_burst_of_pairs_exactly_once(capture_server, pairs):
    """16 clients, each posting `pairs` request/response event pairs as KServe's logger does: every pair is one
    row, once."""
    def client(number: int):
        with requests.Session() as session:
            for index in range(pairs):
                event = f"e-{number}-{index}"
                for kind, body in (("request", records(1, number + index / 1000)), ("response", {"predictions": [[0.4, 0.6]]})):
                    answer = session.post(capture_server.url, data=json.dumps(body), timeout=30, headers={
                        "Ce-Id": event, "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
                        "Content-Type": "application/json"})
                    assert answer.status_code == 202

    workers = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert capture_server.stop() == 0
    rows = log_lines(capture_server.folder)
    assert len(rows) == 16 * pairs and len({r["id"] for r in rows}) == 16 * pairs


def test_the_documented_alert_rules_name_only_metrics_the_endpoint_exposes(server):
    """docs/deploy.md's Prometheus rules: each `alops_*` series they use is on a running endpoint's /metrics."""
    import re

    import yaml

    docs = (Path(__file__).parents[1] / "docs/deploy.md").read_text()
    rules = next(yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL) if "groups:" in block)
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert score(server.url, records(1)).status_code == 200
    exposed = {name.split("{")[0] for name in server.metrics()}
    used = {name for expr in expressions for name in re.findall(r"\balops_[a-z_]+", expr)}
    assert len(expressions) == 5 and used and used <= exposed, used - exposed
