"""`alops monitor`: per model version from prediction logs, judged against the labels that arrived since; SLOs
fail in one line each, and logs with no scored sample are refused rather than passed."""

from __future__ import annotations

import csv
import json
import random

import pytest
from conftest import run_alops


@pytest.fixture
def served(tmp_path):
    """A manifest (3 balanced classes, 600 train rows, the 300 served samples labelled since) and one log in
    which version 1 is right 90% of the time and version 2 answers mostly class 0."""
    rng = random.Random(0)
    with open(tmp_path / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "path", "label", "split"])
        writer.writeheader()
        writer.writerows({"id": str(i), "path": f"x/{i}.png", "label": str(i % 3), "split": "train" if i < 600 else "test"}
                         for i in range(900))
    lines = []
    for i in range(600, 900):
        version, label = ("1" if i < 750 else "2"), i % 3
        if version == "1":
            predicted = label if rng.random() < 0.9 else rng.randrange(3)
        else:
            predicted = 0 if rng.random() < 0.7 else rng.randrange(3)
        hour = 10 + (i - 600) // 40
        lines.append(json.dumps({"id": i, "time": f"2026-12-07T{hour:02d}:{i % 60:02d}:00.000+00:00",
                                 "model_version": version, "prediction": predicted}))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/predictions-20261207T180000-1-1.jsonl").write_text("\n".join(lines) + "\n{torn\n")
    return tmp_path


def test_each_version_gets_its_volume_class_mix_and_live_accuracy_with_an_interval(served):
    done = run_alops("monitor", "logs", "--manifest", "manifest.csv", cwd=served)
    assert done.returncode == 0, done.stderr
    record = json.loads((served / "monitor.json").read_text())
    first, second = record["versions"]["1"], record["versions"]["2"]
    assert (first["rows"], second["rows"], record["unreadable_lines"]) == (150, 150, 1)
    assert first["labelled"] == 150 and 0.8 < first["live_accuracy"]["value"] < 0.95
    low, high = second["live_accuracy"]["low"], second["live_accuracy"]["high"]
    assert low < second["live_accuracy"]["value"] < high < 0.5
    assert not first["class_shift"]["drifted"] and second["class_shift"]["drifted"]
    assert record["training_labels"] == {"0": 200, "1": 200, "2": 200}
    assert sum(first["rows_per_hour"].values()) == 150
    assert (served / "monitor.png").read_bytes()[:4] == b"\x89PNG"
    assert "1 unreadable line(s) skipped" in done.stderr


def test_slos_fail_in_one_line_each_naming_the_version(served):
    failed = run_alops("monitor", "logs", "--manifest", "manifest.csv", "--min-accuracy", "0.8", "--class-shift",
                       "--plot", "", cwd=served)
    breaches = [line for line in failed.stderr.splitlines() if "SLO breached" in line]
    assert failed.returncode == 1 and len(breaches) == 2 and all("version 2:" in line for line in breaches)
    assert not (served / "monitor.png").exists()


def test_logs_with_no_scored_sample_are_refused(tmp_path):
    (tmp_path / "predictions-1.jsonl").write_text("not json\n")
    refused = run_alops("monitor", "predictions-1.jsonl", cwd=tmp_path)
    assert refused.returncode == 1 and "nothing to monitor" in refused.stderr and "Traceback" not in refused.stderr
    missing = run_alops("monitor", "nowhere", cwd=tmp_path)
    assert missing.returncode == 2 and "no such log or folder" in missing.stderr
