"""The smoke set: a JSON file `{"inputs": [...], "labels": [...]}` (the scaffold's evaluate stage writes the
validation split as `smoke.json`), loaded and checked, and its accuracy at an MLflow scoring protocol endpoint."""

from __future__ import annotations

import json

import requests

from alops.core.errors import AlopsError, ConfigError
from alops.core.secrets import redact_url

BATCH = 64


def load_smoke(path: str) -> tuple[list, list]:
    """The smoke set's inputs and labels, checked."""
    try:
        with open(path, encoding="utf-8") as handle:
            smoke = json.load(handle)
        inputs, labels = smoke["inputs"], smoke["labels"]
    except OSError as exc:
        raise ConfigError(f"smoke set {path}: {exc.strerror}; write it from the evaluation stage "
                          "({\"inputs\": [...], \"labels\": [...]}) or pass --smoke") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"smoke set {path}: expected JSON {{\"inputs\": [...], \"labels\": [...]}}") from None
    if not isinstance(inputs, list) or not isinstance(labels, list) or len(inputs) != len(labels) or not inputs:
        raise ConfigError(f"smoke set {path}: inputs and labels must be non-empty lists of the same length")
    return inputs, labels


def smoke_accuracy(url: str, inputs: list, labels: list, headers: dict | None = None, v2: bool = False) -> float:
    """Accuracy of the predictions `url` gives for the smoke set: an MLflow scoring protocol endpoint, or with
    `v2` the V2 inference protocol's `/v2/models/<name>/infer` (KServe, MLServer)."""
    right = 0
    for start in range(0, len(inputs), BATCH):
        batch = inputs[start:start + BATCH]
        try:
            answer = requests.post(url, json=v2_request(batch) if v2 else {"inputs": batch}, headers=headers, timeout=60)
        except requests.RequestException as exc:
            raise AlopsError(f"smoke test: {redact_url(url)} did not answer ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise AlopsError(f"smoke test: {redact_url(url)} answered HTTP {answer.status_code}")
        try:
            predictions = v2_rows(answer.json()) if v2 else answer.json()["predictions"]
            classes = [max(range(len(row)), key=row.__getitem__) if isinstance(row, list) else row for row in predictions]
        except (ValueError, KeyError, TypeError, IndexError):
            raise AlopsError(f"smoke test: {redact_url(url)} answered no predictions") from None
        if len(classes) != len(batch):
            raise AlopsError(f"smoke test: {redact_url(url)} answered {len(classes)} predictions for {len(batch)} inputs")
        right += sum(str(c) == str(y) for c, y in zip(classes, labels[start:start + BATCH]))
    return right / len(inputs)


def v2_request(batch: list) -> dict:
    """A V2 inference request of one FP32 tensor: the batch's shape and its values, flat."""
    import numpy as np

    values = np.asarray(batch, dtype=np.float32)
    return {"inputs": [{"name": "input-0", "shape": list(values.shape), "datatype": "FP32",
                        "data": values.ravel().tolist()}]}


def v2_rows(answer: dict) -> list:
    """The first output of a V2 inference response as rows."""
    import numpy as np

    output = answer["outputs"][0]
    values = np.asarray(output["data"]).reshape(output["shape"])
    return values.tolist()
