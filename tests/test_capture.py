"""Prediction capture and the deploy step's pure parts: the log rows, the PNG inputs, rotation, the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from alops.core.errors import AlopsError, ConfigError
from alops.data.intake import PATTERN as INTAKE_PATTERN
from alops.release.deploy import judge_smoke, kserve_manifest, load_smoke
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
