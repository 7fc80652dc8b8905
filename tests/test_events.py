"""`alops capture`: a KServe InferenceService logger's CloudEvents (request and response per prediction, V2
protocol, binary mode as KServe sends them, or structured mode) become the rows `alops serve` logs, and
`alops pool add` reads them. The receiver runs as the real command on a free port."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import ALOPS, clean_env, free_port, run_alops

from alops.core.errors import ConfigError
from alops.release.deploy import kserve_manifest


@pytest.fixture
def receiver(tmp_path):
    """`alops capture` on a free port: (url, log folder)."""
    port, folder = free_port(), tmp_path / "predictions"
    process = subprocess.Popen([ALOPS, "capture", "--port", str(port), "--log-dir", str(folder)], env=clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.1)
    yield url, folder
    process.terminate()
    process.wait(timeout=30)


def post_pair(url: str, request: dict, response: dict, response_first: bool = False) -> list[requests.Response]:
    """What KServe's logger sends for one prediction: two binary-mode CloudEvents sharing ce-id."""
    event_id = str(uuid.uuid4())
    events = [("org.kubeflow.serving.inference.request", request),
              ("org.kubeflow.serving.inference.response", response)]
    answers = []
    for kind, body in reversed(events) if response_first else events:
        headers = {"Ce-Id": event_id, "Ce-Specversion": "1.0", "Ce-Type": kind, "Ce-Source": "http://localhost:9081/",
                   "Ce-Inferenceservicename": "digits", "Ce-Namespace": "ml", "Ce-Component": "predictor",
                   "Content-Type": "application/json"}
        answers.append(requests.post(url, data=json.dumps(body), headers=headers, timeout=10))
    return answers


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def test_kserve_v2_image_events_become_log_rows_with_pngs(receiver):
    url, folder = receiver
    images = np.random.default_rng(0).random((3, 1, 8, 8))
    logits = np.random.default_rng(1).normal(size=(3, 10))
    request = {"inputs": [{"name": "input-0", "shape": [3, 1, 8, 8], "datatype": "FP32", "data": images.ravel().tolist()}]}
    response = {"model_name": "digits", "model_version": "7",
                "outputs": [{"name": "output-0", "shape": [3, 10], "datatype": "FP32", "data": logits.ravel().tolist()}]}
    first, second = post_pair(url, request, response, response_first=True)
    assert first.json() == {"logged": 0} and second.json() == {"logged": 3}
    rows = read_log(folder)
    assert [r["prediction"] for r in rows] == logits.argmax(axis=1).tolist()
    assert {r["model_version"] for r in rows} == {"7"}
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # logits in, probabilities logged
    assert np.allclose([r["probabilities"] for r in rows], probabilities, atol=1e-5)
    assert all((folder / r["path"]).read_bytes().startswith(b"\x89PNG") for r in rows)


def test_named_columns_and_structured_events_are_logged_and_pool_add_reads_them(receiver, feature_project):
    url, folder = receiver
    request = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [0.25, -1.5]}]}
    request["inputs"].append({"name": "y", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]})
    response = {"outputs": [{"name": "p", "shape": [2, 2], "datatype": "FP64", "data": [0.9, 0.1, 0.2, 0.8]}]}
    answers = post_pair(url, request, response)
    assert [a.status_code for a in answers] == [202, 202]
    structured = {"specversion": "1.0", "id": "e-2", "source": "kserve", "type": "org.kubeflow.serving.inference.request",
                  "data": {"dataframe_records": [{"x": 3.0, "y": 0.0}]}}
    headers = {"Content-Type": "application/cloudevents+json"}
    requests.post(url, data=json.dumps(structured), headers=headers, timeout=10)
    done = requests.post(url, data=json.dumps({**structured, "type": "org.kubeflow.serving.inference.response",
                                               "data": {"predictions": [[0.3, 0.7]]}}), headers=headers, timeout=10)
    assert done.json() == {"logged": 1}
    rows = read_log(folder)
    assert [(r["x"], r["prediction"]) for r in rows] == [(0.25, 0), (-1.5, 1), (3.0, 1)]
    assert rows[0]["probabilities"] == [0.9, 0.1]  # already probabilities: logged as they came
    added = run_alops("pool", "add", str(folder / "predictions.jsonl"), "--no-commit", cwd=feature_project)
    assert added.returncode == 0, added.stderr
    assert "pool: 3 samples added as unlabeled" in added.stdout


@pytest.mark.parametrize("body, headers, words", [
    (b"<html>", {"Ce-Id": "1", "Ce-Type": "org.kubeflow.serving.inference.request"}, "not JSON"),
    (b"{}", {"Ce-Type": "org.kubeflow.serving.inference.request"}, "needs an id"),
    (b"{}", {"Ce-Id": "1", "Ce-Type": "dev.knative.ping"}, "not an inference event"),
])
def test_events_that_are_not_inference_pairs_are_refused_in_one_line(receiver, body, headers, words):
    url, folder = receiver
    answer = requests.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10)
    assert answer.status_code == 400 and words in answer.json()["error"]
    assert read_log(folder) == [] if (folder / "predictions.jsonl").exists() else True


def test_the_kserve_manifest_sends_its_logger_to_the_capture_url():
    manifest = kserve_manifest("digits", "s3://bucket/model", "3", "production", "http://alops-capture.ml:8081")
    assert manifest["spec"]["predictor"]["logger"] == {"mode": "all", "url": "http://alops-capture.ml:8081"}
    assert "logger" not in kserve_manifest("digits", "s3://bucket/model", "3", "production")["spec"]["predictor"]
    with pytest.raises(ConfigError, match="capture-url"):
        kserve_manifest("digits", "s3://b/m", "3", "production", "http://x\nkind: Secret")


def test_two_halves_of_the_same_kind_never_make_a_pair(tmp_path):
    """A request logged twice under one id (a retried logger post) waits for its response: it is not logged as
    request-with-request, and the response then pairs with the latest request."""
    from alops.serve.capture import PredictionLog
    from alops.serve.events import EventIntake

    log = PredictionLog(str(tmp_path))
    intake = EventIntake(log)
    request = {"dataframe_records": [{"x": 1.0}]}
    headers = {"ce-id": "e-1", "ce-type": "org.kubeflow.serving.inference.request"}
    assert intake.receive(headers, json.dumps(request).encode()) == 0
    assert intake.receive(headers, json.dumps({"dataframe_records": [{"x": 2.0}]}).encode()) == 0
    response = {**headers, "ce-type": "org.kubeflow.serving.inference.response"}
    assert intake.receive(response, json.dumps({"predictions": [[0.2, 0.8]]}).encode()) == 1
    log.close()
    rows = [json.loads(line) for path in sorted(tmp_path.glob("predictions-*.jsonl")) for line in path.read_text().splitlines()]
    assert [(row["x"], row["prediction"]) for row in rows] == [(2.0, 1)]
