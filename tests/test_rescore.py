"""Both models on the branch's test samples (alops.rescore): the target's model scored again on this branch's
smoke set, and the paired bootstrap of the change when one run a side is all there is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import clean_env, git, run_alops
from test_run import runs_of


def test_the_paired_bootstrap_follows_the_samples_both_models_answer():
    from alops.rescore import paired_bootstrap

    rng = np.random.default_rng(1)
    before = rng.random(400) < 0.80
    now = before.copy()
    now[np.flatnonzero(~before)[:40]] = True  # 40 of the misses fixed, nothing broken: +0.10
    better = paired_bootstrap(now, before)
    assert better.verdict == "better" and better.low > 0.05 and better.high < 0.15 and better.unit == "paired"
    assert "paired bootstrap over 400 samples" in better.describe()
    assert paired_bootstrap(before, now).verdict == "worse"
    assert paired_bootstrap(now, before, direction="min").verdict == "worse"
    same = paired_bootstrap(before, before)
    assert (same.low, same.high, same.verdict) == (0.0, 0.0, "within noise")
    swapped = before.copy()  # 10 fixed, 10 broken: no change on average
    swapped[np.flatnonzero(~before)[:10]] = True
    swapped[np.flatnonzero(before)[:10]] = False
    assert paired_bootstrap(swapped, before).verdict == "within noise"
    # against resampling the pairs themselves
    draws = rng.integers(0, 400, size=(4000, 400))
    brute = np.percentile(now[draws].mean(1) - before[draws].mean(1), [2.5, 97.5])
    assert (better.low, better.high) == pytest.approx(tuple(brute), abs=0.01)


@pytest.mark.slow  # two trainings on the full data
def test_the_report_scores_the_targets_model_on_the_branchs_test_set(ml_project):
    env = clean_env()
    git(ml_project, "switch", "-q", "-c", "experiment/longer")
    params = ml_project / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 5", "epochs: 60"))
    git(ml_project, "commit", "-q", "-am", "train longer")
    assert run_alops("run", "--allow-cpu", cwd=ml_project, env=env).returncode == 0
    assert run_alops("baseline", "--allow-cpu", cwd=ml_project, env=env).returncode == 0
    result = run_alops("report", "--target", "main", "--json", "report.json", cwd=ml_project, env=env)
    assert result.returncode == 0, result.stderr
    kept = json.loads((ml_project / "report.json").read_text())["report"]
    [baseline] = runs_of(f"sqlite:///{ml_project / 'mlflow.db'}", ml_project, "main")
    # same data version: main's model scores here what its run measured; this branch's model its own metric
    assert kept["rescored"]["before"] == pytest.approx(baseline.data.metrics["val_accuracy"])
    assert kept["rescored"]["current"] == pytest.approx(kept["current"]["metrics"]["val_accuracy"])
    assert kept["rescored"]["samples"] == kept["current"]["metrics"]["val_samples"]
    text = (ml_project / "report.md").read_text()
    assert "Both models on this branch's test set (`smoke.json`, " in text
    assert "(paired bootstrap), so it is **better**" in text
