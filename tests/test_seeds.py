"""Spread over seeds and parallel candidates: `alops run --seeds N`, the report's mean and interval, `alops run
--candidate I/N` and `alops select-best` over the candidates' reports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from conftest import clean_env, git, run_alops


def test_the_seed_interval_is_students_t_pooled_over_both_sides():
    from scipy.stats import ttest_ind

    from alops.runs.noise import seed_change, spread

    now, before = [0.91, 0.93, 0.92], [0.88, 0.90, 0.87]
    expected = ttest_ind(now, before, equal_var=True).confidence_interval(0.95)
    found = seed_change(now, before)
    assert (found.low, found.high) == pytest.approx((expected.low, expected.high))
    assert found.verdict == "better" and found.unit == "seeds" and "mean of 3 vs 3 seeds" in found.describe()
    assert seed_change(before, now).verdict == "worse"
    assert seed_change(now, before, direction="min").verdict == "worse"
    close = seed_change(now, [0.92, 0.90, 0.93])
    assert close.low < 0 < close.high and close.verdict == "within noise"
    one = seed_change(now, [0.85])  # one run on a side: judged by the other side's spread
    assert one.samples == (3, 1) and one.verdict == "better"
    assert seed_change([0.9], [0.8]) is None  # no spread to judge by
    assert spread([0.9]) is None and spread(now) == pytest.approx(4.303 * 0.01 / 3 ** 0.5, rel=1e-3)


def test_three_seeds_are_three_tracked_runs_and_the_report_shows_their_mean(ml_project, mlflow_server):
    from test_run import runs_of

    assert run_alops("run", cwd=ml_project).returncode == 0  # main's committed metrics: one run
    git(ml_project, "add", "-A")
    git(ml_project, "commit", "-q", "-m", "main's run")
    git(ml_project, "switch", "-q", "-c", "feature/seeds")
    params_before = (ml_project / "params.yaml").read_text()
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    result = run_alops("run", "--seeds", "3", cwd=ml_project, env=env)
    assert result.returncode == 0, result.stderr
    assert "seed 1 (1 of 3): train.seed = 1" in result.stderr and "seed 0 (3 of 3)" in result.stderr
    runs = [r for r in runs_of(mlflow_server, ml_project, "feature") if r.data.tags["git.branch"] == "feature/seeds"]
    assert sorted(r.data.params["train.seed"] for r in runs) == ["0", "1", "2"]
    accuracies = [r.data.metrics["val_accuracy"] for r in runs]
    assert f"val_accuracy: {sum(accuracies) / 3:g} (mean of 3 seeds)" in result.stdout
    assert (ml_project / "params.yaml").read_text() == params_before  # the workspace ends on params.yaml's seed
    assert yaml.safe_load((ml_project / "dvc.lock").read_text())["stages"]["train"]["params"]["params.yaml"]["train"]["seed"] == 0

    kept = sorted(p.relative_to(ml_project / ".alops/seeds").as_posix() for p in (ml_project / ".alops/seeds").rglob("*.json"))
    assert kept == ["0/plots/train.json", "1/plots/train.json", "2/plots/train.json"]  # the report's band
    report = run_alops("report", "--out", "report.md", cwd=ml_project, env=env)
    assert report.returncode == 0, report.stderr
    text = (ml_project / "report.md").read_text()
    assert re.search(r"\| `val_accuracy` \| [0-9.]+ ± [0-9.e-]+ \|", text), text  # mean ± half the interval
    assert "| seeds | 3 | 1 |" in text  # main committed one run
    assert "Seed noise: the change's 95% interval is" in text and "(mean of 3 vs 1 seeds)" in text

    # a run without --seeds is one run again: its report has no spread
    assert run_alops("run", "--set", "train.epochs=3", cwd=ml_project, env=env).returncode == 0
    assert run_alops("report", "--out", "report.md", cwd=ml_project, env=env).returncode == 0
    again = (ml_project / "report.md").read_text()
    assert "| seeds |" not in again and "Seed noise" not in again and " ± " not in again
    assert not (ml_project / ".alops/seeds").exists()


def test_seeds_need_a_seed_param(ml_project):
    git(ml_project, "switch", "-q", "-c", "feature/no-seed")
    params = yaml.safe_load((ml_project / "params.yaml").read_text())
    del params["train"]["seed"]
    (ml_project / "params.yaml").write_text(yaml.safe_dump(params))
    schema = (ml_project / "params.schema.yaml").read_text()
    (ml_project / "params.schema.yaml").write_text("\n".join(line for line in schema.splitlines() if "seed" not in line) + "\n")
    result = run_alops("run", "--seeds", "3", cwd=ml_project)
    assert result.returncode == 2 and "--seeds needs a seed in params.yaml" in result.stderr
    assert "Traceback" not in result.stderr and not (ml_project / ".alops" / "seeds.json").exists()
    assert run_alops("run", "--seeds", "0", cwd=ml_project).returncode == 2


def test_candidates_train_the_sampled_matrix_and_select_best_picks_the_best_mean(ml_project):
    git(ml_project, "switch", "-q", "-c", "feature/candidates")
    matrix = json.loads(run_alops("params", "matrix", "--sample", "3", cwd=ml_project).stdout)
    for index in (1, 2, 3):
        result = run_alops("run", "--candidate", f"{index}/3", "--seeds", "2", cwd=ml_project)
        assert result.returncode == 0, result.stderr
        expected = ", ".join(f"{k}={v}" for k, v in matrix[index - 1].items())
        assert f"candidate {index}/3: {expected}" in result.stderr
        folder = ml_project / f"candidate-{index}"
        report = run_alops("report", "--out", f"{folder}/report.md", "--json", f"{folder}/report.json", cwd=ml_project)
        assert report.returncode == 0, report.stderr
    means = [json.loads((ml_project / f"candidate-{i}" / "report.json").read_text())["report"]["current"]["metrics"]
             ["val_accuracy"] for i in (1, 2, 3)]
    best = means.index(max(means))

    result = run_alops("select-best", *[f"candidate-{i}/report.json" for i in (1, 2, 3)], "--json", "report.json",
                       "--metric", "val_accuracy", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    assert f"select-best: candidate-{best + 1}/report.json" in result.stdout
    text = (ml_project / "report.md").read_text()
    assert "### Candidates (3, picked on the mean over seeds)" in text
    assert text.count("**picked**") == 1 and f"`candidate-{best + 1}/report.json` **picked**" in text
    assert "```diff" in text and "git apply params-pick.patch" in text
    # the params change the MR can carry: it applies, and params.yaml then holds the pick
    subprocess.run(["git", "apply", "params-pick.patch"], cwd=ml_project, check=True)
    flat = yaml.safe_load((ml_project / "params.yaml").read_text())
    for name, value in matrix[best].items():
        section, key = name.split(".")
        assert flat[section][key] == value
    assert "# which dataset the stages read" in (ml_project / "params.yaml").read_text()  # comments kept
    kept = json.loads((ml_project / "report.json").read_text())["report"]
    assert len(kept["candidates"]) == 3 and kept["pick_patch"]


def test_seed_shares_in_parallel_jobs_are_gathered_as_one_candidate(ml_project):
    """CI's seed jobs: `--seed-share I/N` runs the I-th seed of `--seeds N`; select-best reads their reports as one
    candidate over 2 seeds (no candidates table, no params change)."""
    git(ml_project, "switch", "-q", "-c", "feature/shares")
    accuracies = []
    for index, seed in ((1, 1), (2, 0)):
        result = run_alops("run", "--seed-share", f"{index}/2", cwd=ml_project)
        assert result.returncode == 0, result.stderr
        assert f"seed {seed} ({index} of 2): train.seed" in result.stderr
        assert "held for this run only" not in result.stderr  # the job's seed is not the user's --set
        folder = ml_project / f"candidate-seed-{index}"
        assert run_alops("report", "--out", f"{folder}/report.md", "--json", f"{folder}/report.json",
                         cwd=ml_project).returncode == 0
        accuracies.append(json.loads((folder / "report.json").read_text())["report"]["current"]["metrics"]["val_accuracy"])
    result = run_alops("select-best", "candidate-seed-1/report.json", "candidate-seed-2/report.json",
                       "--metric", "val_accuracy", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    text = (ml_project / "report.md").read_text()
    assert "| seeds | 2 |" in text and "### Candidates" not in text and not (ml_project / "params-pick.patch").exists()
    assert f"**`val_accuracy`: {sum(accuracies) / 2:.4g}**" in text
    both = run_alops("run", "--seed-share", "1/2", "--seeds", "2", cwd=ml_project)
    assert both.returncode == 2 and "leave --seeds (ALOPS_SEEDS) at 1" in both.stderr


@pytest.mark.parametrize("spec, message", [
    ("4/3", "expected I/N with 1 <= I <= N"),
    ("one", "expected I/N"),
    ("1/500", "<= 200"),
    ("1/100", "gives 4 combination(s), fewer than 100 candidates"),
])
def test_bad_candidate_shares_stop_in_one_line(ml_project, spec, message):
    result = run_alops("run", "--candidate", spec, cwd=ml_project)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_select_best_without_reports_it_can_read(ml_project):
    (ml_project / "broken.json").write_text("{}")
    result = run_alops("select-best", "broken.json", cwd=ml_project)
    assert result.returncode == 2 and "broken.json: not a report saved by `alops report --json`" in result.stderr
    assert not (ml_project / "report.md").exists()
    shutil.rmtree(ml_project / ".alops", ignore_errors=True)


@pytest.mark.slow  # six trainings on the full data
def test_the_targets_curve_over_its_seeds_is_banded_beside_the_branchs(ml_project, monkeypatch):
    """A baseline tracked with 3 seeds (`alops baseline --seeds 3`) brings each seed run's plot files: the report's
    training curve draws the target's mean, dashed, with its band, beside the branch's over its own 3 seeds."""
    from alops.core.project import Project
    from alops.report import merge_request as report
    from alops.report import plots

    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{ml_project / 'mlflow.db'}")  # the project's own store
    git(ml_project, "switch", "-q", "-c", "experiment/band")
    assert run_alops("baseline", "--seeds", "3", "--allow-cpu", cwd=ml_project, env=env).returncode == 0
    assert run_alops("run", "--seeds", "3", "--allow-cpu", cwd=ml_project, env=env).returncode == 0

    drawn = {}
    figures = plots.figures

    def kept(*args, **kwargs):
        drawn.update(figures(*args, **kwargs))
        return list(drawn.items())

    monkeypatch.setattr(plots, "figures", kept)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    monkeypatch.chdir(ml_project)
    with Project.open(str(ml_project)) as project:
        built, pngs = report.build(project, "main", None, None, str(ml_project / "report.md"))
    assert len(built.baseline.seed_run_ids) == 3 and any(png.endswith(".png") for png in pngs)
    axes = drawn["plots/train.json"].axes[0]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "loss (experiment/band), mean of 3 seeds ± 1 sd", "loss (main), mean of 3 seeds ± 1 sd"]
    assert len(axes.collections) == 2 and axes.get_lines()[1].get_linestyle() == "--"


def test_the_pick_carries_its_whole_combination_even_what_every_candidate_shares(ml_project):
    """Candidates sampled from the matrix may agree on a value params.yaml does not hold (here all train with lr
    0.05, params.yaml says 0.01): the params change sets the pick's whole combination, not only what varied."""
    from alops.report import merge_request as report

    for index, (hidden, accuracy) in enumerate([("16", 0.8), ("32", 0.9)], 1):
        side = report.Side("workspace", {"val_accuracy": accuracy},
                           {"dataset": "dev", "train.lr": "0.05", "train.hidden": hidden, "train.epochs": "5",
                            "train.seed": "0"})
        report.save(report.Report("feature/sweep", "main", "feature", side, None), [],
                    str(ml_project / f"candidate-{index}" / "report.json"))
    result = run_alops("select-best", "candidate-1/report.json", "candidate-2/report.json", "--metric", "val_accuracy",
                       "--target", "main", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    patch = (ml_project / "params-pick.patch").read_text()
    assert "+  lr: 0.05" in patch and "-  lr: 0.01" in patch  # shared by both candidates, still the pick's
    assert "+  hidden" not in patch and "-  hidden" not in patch  # params.yaml holds 32 already
    subprocess.run(["git", "apply", "params-pick.patch"], cwd=ml_project, check=True)
    assert yaml.safe_load((ml_project / "params.yaml").read_text())["train"] == {"lr": 0.05, "epochs": 5, "hidden": 32,
                                                                                "seed": 0}
