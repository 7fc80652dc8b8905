"""`alops simulate`: the oracle loop on digits, with scikit-learn and with a PyTorch model."""

from __future__ import annotations

import csv

import numpy as np

from alops.al.simulation import SimulationPlan, simulate

from conftest import run_alops
from datasets import write_digits


def test_uncertainty_beats_random_on_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    plan = SimulationPlan(initial=20, rounds=10, per_round=20, scoring_pool=300, seeds=3,
                          strategies=("random", "margin"))
    result = simulate(digits.data, digits.target, plan, echo=lambda line: None)
    random_curve, margin_curve = result["summary"]["random"], result["summary"]["margin"]
    assert random_curve["labels"] == margin_curve["labels"] == list(range(20, 221, 20))
    assert random_curve["mean"][0] == margin_curve["mean"][0]  # the same start
    gain = np.mean(np.array(margin_curve["mean"][3:]) - np.array(random_curve["mean"][3:]))
    assert gain > 0.01, gain


def test_cli_writes_csv_and_curve_from_a_manifest(tmp_path):
    write_digits(tmp_path / "full")
    result = run_alops("simulate", "--manifest", str(tmp_path / "full/manifest.csv"), "--seeds", "2", "--rounds", "3",
                       "--per-round", "10", "--scoring-pool", "100", "--strategies", "random,entropy,hybrid",
                       "--out", str(tmp_path / "sim"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "labels to reach 95% of it" in result.stdout
    rows = list(csv.DictReader(open(tmp_path / "sim/simulation.csv")))
    assert len(rows) == 3 * 2 * 4 and {r["strategy"] for r in rows} == {"random", "entropy", "hybrid"}
    assert (tmp_path / "sim/learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_with_a_pytorch_model(tmp_path):
    result = run_alops("simulate", "--digits", "--model", "torch-mlp", "--seeds", "1", "--rounds", "2", "--per-round", "10",
                       "--scoring-pool", "50", "--strategies", "random,least-confidence", "--out", str(tmp_path / "sim"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list(csv.DictReader(open(tmp_path / "sim/simulation.csv")))) == 2 * 3


def test_bad_plans_fail_clearly(tmp_path):
    for args, message in ((["--digits", "--per-round", "500"], "larger than --scoring-pool"),
                          (["--digits", "--rounds", "200"], "exceed the"),
                          (["--digits", "--strategies", "random,oracle"], "unknown strategy 'oracle'"),
                          ([], "exactly one of --manifest")):
        result = run_alops("simulate", *args, "--out", str(tmp_path / "sim"), cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
    assert not (tmp_path / "sim").exists()
