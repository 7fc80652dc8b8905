"""`alops metrics from-text`: the metrics a training script prints become the metrics file DVC, the report and
the gate read; a text with none (or without a named one) is an error that writes nothing."""

from __future__ import annotations

import json

import pytest
from conftest import run_alops

from alops.core.errors import AlopsError
from alops.runs.metrics import metrics_from_text

PRINTED = """epoch 1/2 loss: 0.91 accuracy=0.52
epoch 2/2 loss: 0.40 accuracy=0.88
val/accuracy = 0.86, val_loss: 4.2e-1
saved model v1.2.3 to model/ (step 10)
"""


def test_the_last_value_of_each_printed_metric_wins_and_versions_are_not_metrics():
    assert metrics_from_text(PRINTED) == {"loss": 0.40, "accuracy": 0.88, "val/accuracy": 0.86, "val_loss": 0.42}
    assert metrics_from_text(PRINTED, ["accuracy"]) == {"accuracy": 0.88}
    with pytest.raises(AlopsError, match="no f1 in the text"):
        metrics_from_text(PRINTED, ["accuracy", "f1"])
    with pytest.raises(AlopsError, match="no metric in the text"):
        metrics_from_text("training done\nmodel v1.2.3\n")


def test_the_command_writes_the_metrics_file_and_writes_nothing_when_there_is_none(tmp_path):
    (tmp_path / "train.log").write_text(PRINTED)
    done = run_alops("metrics", "from-text", "train.log", "--out", "metrics.json", "--name", "accuracy",
                     "--name", "val/accuracy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"accuracy": 0.88, "val/accuracy": 0.86}
    (tmp_path / "empty.log").write_text("nothing printed\n")
    failed = run_alops("metrics", "from-text", "empty.log", "--out", "none.json", cwd=tmp_path)
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
    assert not (tmp_path / "none.json").exists()
