"""`alops baseline`: an experiment's report compares with a full-data run of main's last commit, made on demand
in a temporary clone when main (which trains on the dev data) has none."""

from __future__ import annotations

import re

import pytest
from conftest import clean_env, git, run_alops
from test_run import runs_of


@pytest.mark.slow  # two trainings on the full data
def test_an_experiments_report_gets_a_full_data_baseline_of_main_made_once_on_demand(ml_project):
    """On the project's own store (mlflow.db, no server), as on a laptop: the session's server holds other
    copies' runs of `main` under the same project name."""
    env = clean_env()
    store = f"sqlite:///{ml_project / 'mlflow.db'}"
    main = git(ml_project, "rev-parse", "HEAD")
    git(ml_project, "switch", "-q", "-c", "experiment/faster")
    params = ml_project / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.01", "lr: 0.02"))
    git(ml_project, "commit", "-q", "-am", "a faster learning rate")
    assert run_alops("run", "--allow-cpu", cwd=ml_project, env=env).returncode == 0
    first = run_alops("report", "--target", "main", cwd=ml_project, env=env)
    assert first.returncode == 0, first.stderr
    assert "No baseline on the full dataset" in (ml_project / "report.md").read_text()
    changed = git(ml_project, "status", "--porcelain", "--untracked-files=no")

    made = run_alops("baseline", "--allow-cpu", cwd=ml_project, env=env)
    assert made.returncode == 0, made.stderr
    assert f"baseline: main@{main[:8]} trained on the full dataset and tracked: run " in made.stdout
    assert "repro: on cpu with the full dataset" in made.stderr
    [run] = runs_of(store, ml_project, "main")
    tags = run.data.tags
    assert (tags["git.branch"], tags["git.commit"], tags["alops.dataset"]) == ("main", main, "full")
    assert run.data.params["train.lr"] == "0.01" and "val_accuracy" in run.data.metrics
    assert git(ml_project, "status", "--porcelain", "--untracked-files=no") == changed  # as it was
    assert git(ml_project, "rev-parse", "--abbrev-ref", "HEAD") == "experiment/faster"

    second = run_alops("report", "--target", "main", cwd=ml_project, env=env)
    text = (ml_project / "report.md").read_text()
    assert second.returncode == 0 and "No baseline" not in text, text
    assert "latest tracked run of `main` on the full dataset" in text
    assert re.search(r"\| `train\.lr` \| `0\.02` \| `0\.01` \|", text), text

    again = run_alops("baseline", "--allow-cpu", cwd=ml_project, env=env)
    assert again.returncode == 0 and f"main@{main[:8]} has a tracked run on the full dataset" in again.stdout
    assert len(runs_of(store, ml_project, "main")) == 1  # made once per commit of main


def test_a_baseline_of_the_branch_itself_or_of_a_missing_branch_is_one_line(ml_project, mlflow_server):
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    git(ml_project, "switch", "-q", "-c", "experiment/x")
    for target, message in (("experiment/x", "'experiment/x' is this branch"),
                            ("develop", "no branch 'develop' here or on origin")):
        result = run_alops("baseline", "--target", target, cwd=ml_project, env=env)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
