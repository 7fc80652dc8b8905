"""Prediction capture and the deploy step's pure parts: the log rows, the PNG inputs, rotation, the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from alops.core.errors import AlopsError, ConfigError
from alops.data.intake import PATTERN as INTAKE_PATTERN
from alops.release.deploy import DeployTarget, Release, judge_smoke, kserve_manifest, load_smoke, rollout
from alops.serve.capture import PredictionLog, png_bytes, probabilities


def finished(folder):
    """The finished logs in `folder`, as the intake lists them."""
    return sorted(folder.glob(INTAKE_PATTERN))


def test_an_image_round_trips_through_the_png_the_loader_reads(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (8, 8)) / 255.0
    (tmp_path / "x.png").write_bytes(png_bytes(image))
    with Image.open(tmp_path / "x.png") as loaded:  # as the digits example's load stage reads it
        assert np.array_equal(np.asarray(loaded.convert("L")) / 255.0, image)


def test_image_tensors_are_logged_as_files_with_probabilities_and_the_version(tmp_path):
    log = PredictionLog(str(tmp_path))
    images = np.random.default_rng(1).random((3, 1, 8, 8)).tolist()
    logits = [[0.0, 2.0], [3.0, 0.0], [1.0, 1.0]]
    assert log.record({"inputs": images}, logits, "7", logits=True) == 3
    log.close()
    rows = [json.loads(line) for line in finished(tmp_path)[0].read_text().splitlines()]
    assert [r["prediction"] for r in rows] == [1, 0, 0]
    assert rows[2]["probabilities"] == [0.5, 0.5] and {r["model_version"] for r in rows} == {"7"}
    assert len({r["id"] for r in rows}) == 3 and all(isinstance(r["id"], int) for r in rows)
    assert all((tmp_path / r["path"]).is_file() for r in rows)


def test_dataframe_requests_keep_their_columns_and_other_tensors_their_values(tmp_path):
    log = PredictionLog(str(tmp_path))
    split = {"dataframe_split": {"columns": ["f0", "f1"], "data": [[1.5, 2.0]]}}
    assert log.record(split, [[0.2, 0.8]], "1", logits=False) == 1
    assert log.record({"inputs": [[5.0, -1.0]]}, [[0.9, 0.1]], "1", logits=False) == 1
    assert log.record({"inputs": [[1.0], [2.0]]}, [[0.9, 0.1]], "1", logits=False) == 0  # rows and answers disagree
    log.close()
    first, second = [json.loads(line) for line in finished(tmp_path)[0].read_text().splitlines()]
    assert (first["f0"], first["f1"], first["prediction"]) == (1.5, 2.0, 1)
    assert second["input"] == [5.0, -1.0] and "path" not in second


def test_the_log_rotates_by_size_and_loses_no_row(tmp_path):
    log = PredictionLog(str(tmp_path), max_bytes=2000)
    for _ in range(50):
        log.record({"dataframe_records": [{"f0": 1.0}]}, [[0.1, 0.9]], "2", logits=False)
    log.close()
    files = sorted(tmp_path.glob("predictions*.jsonl"))
    assert len(files) > 2 and all(f.stat().st_size < 2400 for f in files)
    assert sum(len(f.read_text().splitlines()) for f in files) == 50


def test_a_quiet_endpoints_rows_are_finished_by_age_and_on_a_clean_stop(tmp_path):
    """One request now and then (a minute apart in production, 0.2 s here with a 0.5 s age limit): each log is
    finished, for the intake, once its first row is that old, with or without a later request; a clean stop
    finishes the rest. No row is lost or written twice."""
    import time

    log = PredictionLog(str(tmp_path), max_age_s=0.5)
    log.record({"dataframe_records": [{"f0": 1.0}]}, [[0.1, 0.9]], "2", logits=False)
    assert finished(tmp_path) == []
    deadline = time.monotonic() + 10
    while not finished(tmp_path) and time.monotonic() < deadline:  # no further request comes
        time.sleep(0.05)
    assert len(finished(tmp_path)) == 1 and len(finished(tmp_path)[0].read_text().splitlines()) == 1
    for _ in range(3):
        time.sleep(0.2)
        log.record({"dataframe_records": [{"f0": 2.0}]}, [[0.1, 0.9]], "2", logits=False)
    log.close()
    assert sum(len(f.read_text().splitlines()) for f in finished(tmp_path)) == 4
    assert (tmp_path / "predictions.jsonl").read_text() == ""


def test_probabilities_are_a_softmax_of_logits_and_the_rows_otherwise():
    assert np.allclose(probabilities([[0.0, 0.0]], logits=True), [[0.5, 0.5]])
    assert probabilities([[0.3, 0.7]], logits=False).tolist() == [[0.3, 0.7]]
    assert probabilities([1, 0], logits=False) is None  # class labels: no probabilities


def test_the_smoke_judgement_fails_below_the_tolerance_only():
    judge_smoke(0.95, 0.955, 0.01)
    with pytest.raises(AlopsError, match="smoke test failed: accuracy 0.9000"):
        judge_smoke(0.90, 0.955, 0.01)


@pytest.mark.parametrize("content", ["{", '{"inputs": [1]}', '{"inputs": [1, 2], "labels": [1]}', '{"inputs": [], "labels": []}'])
def test_a_bad_smoke_set_is_one_line(tmp_path, content):
    (tmp_path / "smoke.json").write_text(content)
    with pytest.raises(ConfigError, match="smoke set"):
        load_smoke(str(tmp_path / "smoke.json"))


def test_the_kserve_manifest_names_the_mlflow_format_and_sanitises_names():
    manifest = kserve_manifest("Digits_Model", "s3://bucket/1/abc/artifacts/model", "3", "prod; rm -rf /")
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == "digits-model"
    assert manifest["metadata"]["labels"]["alops/environment"] == "prod--rm--rf"
    model = manifest["spec"]["predictor"]["model"]
    assert model == {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2",
                     "storageUri": "s3://bucket/1/abc/artifacts/model"}


def test_the_kserve_manifest_passes_kserves_schema_which_refuses_a_broken_one():
    from kserve_schema import validate_inference_service

    for capture in (None, "http://alops-capture.ml:8081"):
        validate_inference_service(kserve_manifest("Digits", "s3://bucket/1/abc/artifacts/model", "3", "prod", capture))
    broken = kserve_manifest("digits", "s3://b/m", "3", "prod")
    del broken["spec"]["predictor"]["model"]["modelFormat"]
    with pytest.raises(ValueError, match="model_format"):
        validate_inference_service(broken)
    misspelt = kserve_manifest("digits", "s3://b/m", "3", "prod")
    misspelt["spec"]["predictor"]["model"]["storageURI"] = misspelt["spec"]["predictor"]["model"].pop("storageUri")
    with pytest.raises(AssertionError, match="no field 'storageURI'"):
        validate_inference_service(misspelt)


def test_the_smoke_tolerance_edge_passes():
    """Exactly the run's metric less the tolerance is within it (0.5 = 0.75 - 0.25, exact in binary)."""
    judge_smoke(0.5, 0.75, 0.25)
    with pytest.raises(AlopsError):
        judge_smoke(0.4999, 0.75, 0.25)


class Recorder(DeployTarget):
    name = "recorder"

    def __init__(self, accuracy):
        self.accuracy, self.calls = accuracy, []

    @classmethod
    def from_options(cls, options):
        return cls(None)

    def stage(self, release):
        self.calls.append("stage")

    def smoke(self, inputs, labels):
        self.calls.append("smoke")
        return self.accuracy

    def promote(self):
        self.calls.append("promote")

    def discard(self):
        self.calls.append("discard")


def test_a_rollout_promotes_only_after_the_smoke_test_and_discards_on_a_failed_one():
    release = Release("digits", "2", "models:/digits/2", "", "production")
    passed = Recorder(0.9)
    assert rollout(passed, release, ([[0.0]], [0]), 0.9, 0.01) == 0.9
    assert passed.calls == ["stage", "smoke", "promote"]
    failed = Recorder(0.5)
    with pytest.raises(AlopsError, match="smoke test failed"):
        rollout(failed, release, ([[0.0]], [0]), 0.9, 0.01)
    assert failed.calls == ["stage", "smoke", "discard"]


def test_the_champion_moves_only_after_the_deployed_version_answered_the_smoke_test(tmp_path):
    """deploy() against a registry (sqlite), a command target and an endpoint that answers class 1 to
    everything: a smoke set of 1s passes and moves the champion; one of 0s fails and leaves it where it was."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlflow.tracking import MlflowClient

    from alops.release.deploy import deploy

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            count = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"])
            body = json.dumps({"predictions": [1] * count}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("digits")
    client.create_registered_model("digits")
    for _ in range(2):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "accuracy", 0.9)
        client.create_model_version("digits", str(tmp_path), run.info.run_id)
    client.set_registered_model_alias("digits", "champion", "1")
    client.set_registered_model_alias("digits", "challenger", "2")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        (tmp_path / "zeros.json").write_text(json.dumps({"inputs": [[0.0]] * 4, "labels": [0] * 4}))
        with pytest.raises(AlopsError, match="smoke test failed: accuracy 0.0000"):
            deploy(uri, "digits", "command", "production", "accuracy", endpoint=endpoint, command="true",
                   smoke_path=str(tmp_path / "zeros.json"))
        assert str(client.get_model_version_by_alias("digits", "champion").version) == "1"
        assert str(client.get_model_version_by_alias("digits", "challenger").version) == "2"
        (tmp_path / "ones.json").write_text(json.dumps({"inputs": [[0.0]] * 4, "labels": [1] * 4}))
        done = deploy(uri, "digits", "command", "production", "accuracy", endpoint=endpoint, command="true",
                      smoke_path=str(tmp_path / "ones.json"))
        assert (done.version, done.previous, done.smoke_accuracy, done.smoke_samples) == ("2", "1", 1.0, 4)
        assert str(client.get_model_version_by_alias("digits", "champion").version) == "2"
        assert client.get_model_version("digits", "2").tags["alops.previous_champion"] == "1"
    finally:
        server.shutdown()


def test_rows_are_strict_json_and_a_requests_own_fields_never_replace_the_rows(tmp_path):
    log = PredictionLog(str(tmp_path))
    body = {"dataframe_records": [{"f0": float("nan"), "f1": float("inf"), "path": "/etc/passwd", "id": 3}]}
    assert log.record(body, [[float("nan"), 1.0]], "1", logits=False) == 1
    log.close()

    def refuse(constant):
        raise ValueError(constant)

    (row,) = [json.loads(line, parse_constant=refuse) for line in finished(tmp_path)[0].read_text().splitlines()]
    assert row["f0"] is None and row["f1"] is None and row["probabilities"] == [None, 1.0]
    assert row["prediction"] == 1 and "path" not in row and row["id"] != 3


def test_a_torn_last_line_is_cut_away_when_the_log_opens_again(tmp_path):
    (tmp_path / "predictions.jsonl").write_text('{"id": 1, "x": 0.5}\n{"id": 2, "x": 0.')
    log = PredictionLog(str(tmp_path))
    assert log.stats.as_dict()["torn_tail_repaired"] == 1
    log.record({"dataframe_records": [{"x": 0.7}]}, [[0.1, 0.9]], "1", logits=False)
    log.close()
    assert [json.loads(line)["x"] for line in finished(tmp_path)[0].read_text().splitlines()] == [0.5, 0.7]


def test_requests_the_log_cannot_read_are_counted_not_dropped_silently(tmp_path):
    log = PredictionLog(str(tmp_path))
    assert log.record({"dataframe_records": [1, 2]}, [[0.1, 0.9]] * 2, "1", logits=False) == 0
    assert log.record({"dataframe_split": {"columns": ["x"]}}, [[0.1, 0.9]], "1", logits=False) == 0
    assert log.write_scored(b"{not json", b"{}", "1", logits=False) == 0
    assert log.stats.as_dict()["unreadable"] == 3
    log.close()


def test_a_tracking_server_that_does_not_answer_is_named_not_blamed_on_the_model():
    """`alops deploy` with the tracking server down used to say the model had no challenger alias (after
    MLflow's retries); it names the server, its credentials redacted."""
    from conftest import free_port

    from alops.release.deploy import deploy
    from alops.runs.tracking import TrackingUnavailable

    uri = f"http://user:secret@127.0.0.1:{free_port()}"
    with pytest.raises(TrackingUnavailable, match="does not answer") as raised:
        deploy(uri, "digits", "command", "production", None, command="true")
    assert "secret" not in str(raised.value) and "127.0.0.1" in str(raised.value) and "alias" not in str(raised.value)
