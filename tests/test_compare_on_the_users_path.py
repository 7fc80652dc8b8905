"""Comparisons a reviewer can trust, proven on the path a team walks: the wheel installed from its package folder,
the digits example as `alops new` makes it, the CI file as generated with one commented input switched on, and
`alops rehearse` (a fresh clone of the pushed branch, its jobs executed, the forge's posts printed) with a real
MLflow server. The report the reviewer reads is the comment the report job posts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import git
from test_install import GITLAB_CI_LOCAL, run, runner_project, wheel  # noqa: F401 (wheel: the module's fixture)

pytestmark = pytest.mark.slow


def team_with_digits(wheel: Path, tmp_path: Path, forge: str, turn_on: str, epochs_on_main: int) -> tuple[Path, dict]:
    """The digits example from the wheel, its data pushed, the CI file's commented `turn_on` input switched on and
    main training `epochs_on_main` epochs (a team's first quick model); alops installed for `alops rehearse`:
    (project, environment)."""
    venv, project, env = runner_project(wheel, tmp_path, forge)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], cwd=tmp_path)
    ci_file = project / (".gitlab-ci.yml" if forge == "gitlab" else ".github/workflows/ci.yml")
    text = ci_file.read_text()
    assert f"      # {turn_on}\n" in text  # the generated file offers the input, commented out
    ci_file.write_text(text.replace(f"      # {turn_on}\n", f"      {turn_on}\n"))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = epochs_on_main
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(project, "commit", "-q", "-am", f"{turn_on}; a quick first model")
    env["ALOPS_GITLAB_CI_LOCAL"] = str(GITLAB_CI_LOCAL)
    env["ALOPS_ACT"] = str(Path(sys.executable).with_name("act"))
    return project, env


def push(project: Path, env: dict, branch: str, params: dict, *args: str) -> str:
    """Commit `params` on `branch` and rehearse its push pipeline; the comment posted on the merge/pull request."""
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(project, "commit", "-q", "--allow-empty", "-am", f"params: {params['train']}")
    result = subprocess.run([str(Path(env["PATH"].split(":", 1)[0]) / "alops"), "rehearse", "--allow-cpu", *args],
                            cwd=project, env=env, capture_output=True, text=True, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert f"rehearsing a push pipeline of '{branch}'" in output
    # up to the next post's header line (a diff's "--- a/params.yaml" is none)
    comment = re.search(r"--- a comment on [!#]1 ---\n(.*?)(?=\n--- [^\n]* ---\n|\Z)", result.stdout, re.DOTALL)
    assert comment, output[-5000:]
    return output, comment.group(1)


def pipeline_options(forge: str, mlflow_server: str, wheel: Path) -> tuple[str, ...]:
    """What a team sets for its pipelines: the tracking server (a GitLab CI/CD variable, a secret the GitHub
    caller passes on) and, here, where pip finds alops (the wheel's folder: there is no package index)."""
    tracking = "--variable" if forge == "gitlab" else "--secret"
    return tracking, f"MLFLOW_TRACKING_URI={mlflow_server}", "--variable", f"PIP_FIND_LINKS={wheel.parent}"


def origin_of(forge: str, name: str) -> str:
    """The project's forge URL (its MLflow experiments are named after it)."""
    return f"https://gitlab.example.com/team/{name}.git" if forge == "gitlab" else f"https://github.com/team/{name}.git"


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_seeds_3_judge_an_experiment_better_then_within_noise(wheel, tmp_path, mlflow_server, forge):  # noqa: F811
    """`seeds: 3` switched on in the generated CI file: an experiment push runs a job per seed (GitLab `parallel`,
    GitHub a matrix), the select job trains main's full-data baseline with 3 seeds, and the posted report says
    "better" for 15 epochs against main's 2, then "within noise" for main's training with a learning rate 0.2%
    off."""
    project, env = team_with_digits(wheel, tmp_path, forge, "seeds: 3", epochs_on_main=2)
    git(project, "remote", "set-url", "origin", origin_of(forge, f"digits-seeds-{forge}"))
    git(project, "switch", "-q", "-c", "experiment/longer")
    params = yaml.safe_load((project / "params.yaml").read_text())
    options = pipeline_options(forge, mlflow_server, wheel)

    output, comment = push(project, env, "experiment/longer", {**params, "train": {**params["train"], "epochs": 15}},
                           *options)
    if forge == "gitlab":
        assert {f"alops-seeds: [{i}/3]" for i in (1, 2, 3)} <= set(re.findall(r"PASS +(.+?)\s*$", output, re.MULTILINE))
        for picture in ("plot-Training-loss", "plot-Confusion-matrix-validation-split"):  # uploaded with the comment
            assert re.search(rf"!\[{picture}\]\(/uploads/\d+/{picture}\.png\)", comment), comment
    else:
        assert len(re.findall(r"Train this seed", output)) >= 3
        assert "[The report's images (the job's artifacts)](" in comment, comment  # GitHub takes no uploads
    assert "main: seed 0 (3 of 3)" in output  # main's baseline, made in the select job
    assert "latest tracked run of `main` on the full dataset, mean of 3 seeds" in comment
    assert "| `train.epochs` | `15` | `2` |" in comment and "| seeds | 3 | 3 |" in comment, comment
    assert "(mean of 3 vs 3 seeds), so it is **better**" in comment, comment

    nearly_main = {**params, "train": {**params["train"], "lr": params["train"]["lr"] * 1.002}}
    output, comment = push(project, env, "experiment/longer", nearly_main, *options)
    assert "has 3 seeds of its tracked run" in output  # main's baseline is made once per commit
    assert "(mean of 3 vs 3 seeds), so it is **within noise**" in comment, comment


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_candidates_3_pick_the_best_mean_into_the_posted_report(wheel, tmp_path, mlflow_server, forge):  # noqa: F811
    """`candidates: 3` (and `seeds: 2`) switched on in the generated CI file: three matrix jobs (GitLab
    `parallel`, GitHub `strategy.matrix`) train combinations of the example's `alops params matrix --sample 3`,
    the select job picks the best mean over seeds against main's full-data baseline, and the posted report
    carries the pick and its params change."""
    project, env = team_with_digits(wheel, tmp_path, forge, "candidates: 3", epochs_on_main=2)
    ci_file = project / (".gitlab-ci.yml" if forge == "gitlab" else ".github/workflows/ci.yml")
    ci_file.write_text(ci_file.read_text().replace("      # seeds: 3\n", "      seeds: 2\n"))
    git(project, "remote", "set-url", "origin", origin_of(forge, f"digits-sweep-{forge}"))
    git(project, "commit", "-q", "-am", "two seeds each")
    git(project, "switch", "-q", "-c", "experiment/sweep")
    params = yaml.safe_load((project / "params.yaml").read_text())  # main's: no combination of the matrix
    output, comment = push(project, env, "experiment/sweep", params, *pipeline_options(forge, mlflow_server, wheel))
    if forge == "gitlab":
        assert {f"alops-candidates: [{i}/3]" for i in (1, 2, 3)} <= set(re.findall(r"PASS +(.+?)\s*$", output, re.MULTILINE))
    else:
        assert len(re.findall(r"Train this candidate's combination", output)) >= 3
    assert "### Candidates (3, picked on the mean over seeds)" in comment, comment
    rows = re.findall(r"^\| `(?:alops-candidates/alops-)?candidate-(\d)/report\.json` (\*\*picked\*\*)? \|.*\| ([0-9.]+)(?: ± [0-9.e-]+)? \| 2 \|$",
                      comment, re.MULTILINE)
    assert sorted(index for index, _, _ in rows) == ["1", "2", "3"], comment  # each over its 2 seeds
    [picked] = [float(mean) for _, mark, mean in rows if mark]
    assert picked == max(float(mean) for _, _, mean in rows)  # the best mean
    assert "latest tracked run of `main` on the full dataset, mean of 2 seeds" in comment
    patch = re.search(r"`git apply params-pick\.patch`\):\n\n```diff\n(.*?\n)```", comment, re.DOTALL)
    assert patch and patch.group(1).startswith("--- a/params.yaml"), comment
    (tmp_path / "pick.patch").write_text(patch.group(1))
    git(project, "apply", str(tmp_path / "pick.patch"))  # the MR can carry the pick
    picked_params = yaml.safe_load((project / "params.yaml").read_text())["train"]
    assert picked_params != params["train"] and picked_params["epochs"] in (10, 20)
