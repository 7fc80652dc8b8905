"""Tracking against a real MLflow server: runs larger than one request, transient errors retried, a server that
answers with errors fails the run (never buffered as an outage), an unreachable one buffers or fails closed."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import free_port

from alops.core.errors import AlopsError
from alops.runs import tracking


class FaultyProxy:
    """An HTTP proxy to the MLflow server that answers the first `failures` requests with `status` (all of them
    with failures=-1), then forwards; records every status it sent."""

    def __init__(self, upstream: str, status: int, failures: int):
        self.upstream, self.status, self.failures, self.sent = upstream, status, failures, []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.failures != 0:
                    proxy.failures -= 1 if proxy.failures > 0 else 0
                    proxy.sent.append(proxy.status)
                    self.send_response(proxy.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None, method=self.command,
                                                 headers={"Content-Type": self.headers.get("Content-Type", "")})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                proxy.sent.append(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def record(name: str, params: int = 3, points: int = 5) -> tracking.RunRecord:
    return tracking.RunRecord(
        experiment="tracking-tests", run_name=name,
        params={f"train.p{i:03d}": i for i in range(params)},
        metrics={"val_accuracy": 0.9},
        steps={"loss": [(step, 1.0 / (step + 1)) for step in range(points)]},
        tags={"git.branch": f"experiment/{name}"},
    )


def test_a_run_larger_than_one_request_reaches_the_server_whole(mlflow_server):
    """250 params and 2,500 metric points: above MLflow's per-request limits (100 params, 1,000 metrics), so
    the server refuses them unless they are sent in batches."""
    run_id = tracking.send(record("big", params=250, points=2500), mlflow_server)
    client = tracking.mlflow_client(mlflow_server)
    run = client.get_run(run_id)
    assert len(run.data.params) == 250 and run.data.params["train.p249"] == "249"
    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(2500))
    assert run.info.status == "FINISHED"


def test_transient_server_errors_are_retried_and_the_run_is_recorded_once(mlflow_server):
    proxy = FaultyProxy(mlflow_server, 503, failures=2)
    try:
        name = "retried"
        state, run_id = tracking.track(record(name), "/nonexistent", "experiment", proxy.url)
    finally:
        proxy.close()
    assert state == "sent" and proxy.sent[:2] == [503, 503] and 200 in proxy.sent
    client = tracking.mlflow_client(mlflow_server)
    experiment = client.get_experiment_by_name("tracking-tests")
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'retried'")
    assert [r.info.run_id for r in runs] == [run_id]


def test_a_server_answering_with_errors_fails_the_run_instead_of_buffering(mlflow_server, tmp_path):
    """A 500 on every request is the server's error, not an outage: one line naming the server (credentials
    masked), nothing buffered."""
    proxy = FaultyProxy(mlflow_server, 500, failures=-1)
    host = proxy.url.removeprefix("http://")
    try:
        with pytest.raises(AlopsError) as raised:
            tracking.track(record("broken"), str(tmp_path), "experiment", f"http://ci:s3cret@{host}")
    finally:
        proxy.close()
    assert not isinstance(raised.value, tracking.TrackingUnavailable)
    assert 500 in proxy.sent
    assert not (tmp_path / tracking.BUFFER_DIR).exists()
    assert "s3cret" not in str(raised.value) and f"http://***@{host}" in str(raised.value)


def test_an_unreachable_server_buffers_the_run_and_a_release_run_fails_closed(tmp_path, mlflow_server):
    dead = f"http://127.0.0.1:{free_port()}"
    state, folder = tracking.track(record("offline"), str(tmp_path), "experiment", dead)
    assert state == "buffered" and (tmp_path / tracking.BUFFER_DIR / os.path.basename(folder) / "run.json").is_file()
    with pytest.raises(AlopsError, match="release runs must be tracked"):
        tracking.track(record("release"), str(tmp_path / "release"), "release", dead)
    assert not (tmp_path / "release").exists()
    assert tracking.sync(str(tmp_path), mlflow_server) == (1, 0)
    client = tracking.mlflow_client(mlflow_server)
    experiment = client.get_experiment_by_name("tracking-tests")
    assert client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'offline'")


def test_downloaded_artifacts_land_at_their_project_paths(tmp_path):
    """The target's plot files for the report: `plots/train.json` and `roc/train.json` of one run come down as
    two files at their own paths (MLflow hands a file back under its base name)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("downloads", str(tmp_path / "artifacts"))).info.run_id
    for folder, text in (("plots", '{"train": [{"epoch": 1, "loss": 2.0}]}'), ("roc", '[{"fpr": 0, "tpr": 0}]')):
        (tmp_path / "workspace" / folder).mkdir(parents=True)
        (tmp_path / "workspace" / folder / "train.json").write_text(text)
        client.log_artifact(run_id, str(tmp_path / "workspace" / folder / "train.json"), folder)
    into = tmp_path / "target"
    into.mkdir()
    assert tracking.download_files(uri, run_id, ["plots/train.json", "roc/train.json", "plots/absent.json"], str(into)) == 2
    assert sorted(str(p.relative_to(into)) for p in into.rglob("*") if p.is_file()) == ["plots/train.json", "roc/train.json"]
    assert (into / "roc/train.json").read_text() == '[{"fpr": 0, "tpr": 0}]'
