"""`alops simulate`: the oracle loop on digits, with scikit-learn and with a PyTorch model."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_alops
from datasets import write_digits

from alops.al.simulation import SimulationPlan, simulate


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
                          (["--digits", "--initial", "1"], "at least 2 labels"),
                          (["--suite", "--datasets", "digits,mnist"], "unknown suite data set 'mnist'"),
                          (["--digits", "--datasets", "wine"], "add --suite"),
                          (["--suite", "--strategies", "margin,entropy"], "include random"),
                          ([], "exactly one of --manifest")):
        result = run_alops("simulate", *args, "--out", str(tmp_path / "sim"), cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
    assert not (tmp_path / "sim").exists()


def _suite_curves(path):
    """{data set: {strategy: (seeds, rounds) accuracies}} read back from suite.csv."""
    curves: dict = {}
    for row in csv.DictReader(open(path)):
        per_seed = curves.setdefault(row["dataset"], {}).setdefault(row["strategy"], {})
        per_seed.setdefault(int(row["seed"]), {})[int(row["round"])] = float(row["accuracy"])
    return {name: {strategy: np.array([[rounds[r] for r in sorted(rounds)] for _, rounds in sorted(seeds.items())])
                   for strategy, seeds in by_strategy.items()} for name, by_strategy in curves.items()}


def test_the_suite_gives_paired_verdicts_that_its_csv_supports(tmp_path):
    import json

    result = run_alops("simulate", "--suite", "--datasets", "wine,breast-cancer", "--seeds", "3", "--rounds", "4",
                       "--strategies", "random,margin,entropy", "--out", str(tmp_path / "sim"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "sim/suite.json").read_text())
    assert summary["plan"]["rounds"] == 4 and summary["plan"]["seeds"] == 3
    assert (tmp_path / "sim/suite.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = _suite_curves(tmp_path / "sim/suite.csv")
    assert set(curves) == set(summary["datasets"]) == {"wine", "breast-cancer"}
    for name, by_strategy in curves.items():
        random = by_strategy["random"]
        assert random.shape == (3, 5)
        for strategy in ("margin", "entropy"):
            verdict = summary["datasets"][name]["verdicts"][strategy]
            gain = by_strategy[strategy].mean(axis=1) - random.mean(axis=1)  # paired: same seed, same split and start
            assert np.isclose(verdict["gain"], gain.mean()) and verdict["wins"] == int((gain > 0).sum())
            expected = "tie" if abs(gain.mean()) <= gain.std() else ("better" if gain.mean() > 0 else "worse")
            assert verdict["verdict"] == expected
            below = by_strategy[strategy].mean(axis=0) < random.mean(axis=0) - random.std(axis=0)
            assert verdict["below_spread"] == bool(below.any())
            assert f"{name:16} {strategy:17}" in result.stdout


@pytest.mark.slow  # ten seeds over the whole suite
def test_the_default_strategy_never_falls_below_random_by_more_than_the_spread_on_the_suite(tmp_path):
    """The measurement behind the default (docs/al.md): the suite's protocol, ten seeds, every round of every data
    set; the CLI, the GitLab component and the GitHub workflow all default to it."""
    import yaml

    from alops.al.simulation import SUITE

    default = re.search(r"--strategy \[.*?\]\s+\[default:\s*([\w-]+)\]",
                        run_alops("query", "select", "--help", cwd=tmp_path).stdout, re.DOTALL).group(1)
    kit = Path(__file__).parents[1]
    component = next(yaml.safe_load_all(open(kit / "templates/parts/query.yml")))["spec"]["inputs"]["query-strategy"]["default"]
    workflow = yaml.safe_load(open(kit / ".github/workflows/alops.yml"))[True]["workflow_call"]["inputs"]
    assert default == component == workflow["query-strategy"]["default"] == "margin"
    result = run_alops("simulate", "--suite", "--seeds", "10", "--strategies", f"random,{default}",
                       "--out", str(tmp_path / "sim"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    curves = _suite_curves(tmp_path / "sim/suite.csv")
    assert set(curves) == set(SUITE)
    for name, by_strategy in curves.items():
        random, chosen = by_strategy["random"], by_strategy[default]
        margin_of_safety = chosen.mean(axis=0) - (random.mean(axis=0) - random.std(axis=0))
        assert (margin_of_safety >= 0).all(), (name, margin_of_safety)
