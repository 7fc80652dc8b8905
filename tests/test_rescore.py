"""Both models on the branch's test samples (alops.release.rescore): the target's model scored again on this branch's
smoke set, and the paired bootstrap of the change when one run a side is all there is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import clean_env, git, run_alops
from test_run import runs_of


def test_the_paired_bootstrap_follows_the_samples_both_models_answer():
    from alops.release.rescore import paired_bootstrap

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


@pytest.mark.slow  # two trainings on the full data
def test_the_release_gate_compares_with_the_champion_scored_on_the_candidates_test_set(ml_project, mlflow_server):
    """alops rescore (the release training job) scores the champion on the candidate's smoke set and logs it on the
    candidate's run; the gate then compares both on those samples, with the paired interval."""
    import uuid

    from mlflow.tracking import MlflowClient

    model = f"digits-{uuid.uuid4().hex[:8]}"
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    git(ml_project, "switch", "-q", "-c", "release/1.0")
    assert run_alops("run", "--allow-cpu", cwd=ml_project, env=env).returncode == 0
    alone = run_alops("rescore", "--model", model, cwd=ml_project, env=env)
    assert alone.returncode == 0 and "no champion of" in alone.stdout  # the first release has nothing to score
    assert run_alops("release", "--metric", "val_accuracy", "--model", model, cwd=ml_project, env=env).returncode == 0
    [first] = runs_of(mlflow_server, ml_project, "release")
    params = ml_project / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 5", "epochs: 60"))
    git(ml_project, "commit", "-q", "-am", "train longer")
    assert run_alops("run", "--allow-cpu", cwd=ml_project, env=env).returncode == 0

    scored = run_alops("rescore", "--model", model, cwd=ml_project, env=env)
    assert scored.returncode == 0, scored.stderr
    assert "rescore: the champion (version 1) on this commit's test set (smoke.json, 359 samples)" in scored.stdout
    candidate = next(r for r in runs_of(mlflow_server, ml_project, "release") if r.info.run_id != first.info.run_id)
    logged = MlflowClient(mlflow_server).get_run(candidate.info.run_id).data
    # the same data version here: the champion scores on these samples what its own run measured
    assert logged.metrics["rescored.champion"] == pytest.approx(first.data.metrics["val_accuracy"])
    assert logged.metrics["rescored.candidate"] == pytest.approx(candidate.data.metrics["val_accuracy"])
    assert logged.tags["alops.rescored_version"] == "1"

    gated = run_alops("release", "--metric", "val_accuracy", "--model", model, cwd=ml_project, env=env)
    assert gated.returncode == 0, gated.stderr
    assert "gate: the champion (version 1) scored on this candidate's test set" in gated.stdout
    assert "(both on the candidate's test set)" in gated.stdout
    assert "gate: paired noise: the change's 95% interval is" in gated.stdout
    assert "(paired bootstrap over 359 samples): better" in gated.stdout


def threshold(cut: float):
    """An MLflow python model that says 1 past `cut`: each sample's answer is its own."""
    import mlflow.pyfunc

    class Threshold(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return (np.asarray(model_input, dtype=float)[:, 0] > cut).astype(int)

    return Threshold()


def test_both_models_are_scored_sample_by_sample_on_the_same_rows(tmp_path):
    """Labels 0 for the first 20 of 40 smoke rows, 1 for the rest; this branch's model is right on every row,
    the target's on the first 30 only. Its accuracy is 0.75 only if each answer is held to its own row's label
    (any shift or reordering of one side's answers gives another figure), and the paired interval sees 10 rows
    where only this branch is right."""
    import types

    import mlflow.pyfunc

    from alops.release.rescore import _score

    xs = [i / 40 for i in range(40)]
    (tmp_path / "smoke.json").write_text(json.dumps({"inputs": [[x] for x in xs], "labels": [int(x >= 0.5) for x in xs]}))
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=threshold(0.49))
    mlflow.pyfunc.save_model(str(tmp_path / "target"), python_model=threshold(0.74))
    project = types.SimpleNamespace(root=str(tmp_path), pipeline={"stages": {"train": {"outs": ["model"]}}})
    found, why = _score(project, lambda folder, model: str(tmp_path / "target"), "max")
    assert found is not None, why
    assert (found.current, found.before) == (1.0, 0.75)
    assert found.change.low > 0 and found.change.verdict == "better"
