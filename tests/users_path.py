"""The path a team walks, for the tests that prove comparisons on it: the wheel installed from its package folder,
the digits example as `alops new` makes it, the CI file as generated with one commented input switched on, and
`alops rehearse` (a fresh clone of the pushed branch, its jobs executed, the forge's posts printed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import git
from test_install import GITLAB_CI_LOCAL, run, runner_project


def ci_file_of(project: Path, forge: str) -> Path:
    """The CI file `alops new` wrote for `forge`."""
    return project / (".gitlab-ci.yml" if forge == "gitlab" else ".github/workflows/ci.yml")


def team_with_digits(wheel: Path, tmp_path: Path, forge: str, turn_on: str, epochs_on_main: int) -> tuple[Path, dict]:
    """The digits example from the wheel, its data pushed, the CI file's commented `turn_on` input switched on and
    main training `epochs_on_main` epochs (a team's first quick model); alops installed for `alops rehearse`:
    (project, environment)."""
    venv, project, env = runner_project(wheel, tmp_path, forge)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], cwd=tmp_path)
    ci_file = ci_file_of(project, forge)
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


def push(project: Path, env: dict, branch: str, params: dict, *args: str) -> tuple[str, str]:
    """Commit `params` on `branch` and rehearse its push pipeline: (the rehearsal's output, the comment posted on
    the merge/pull request)."""
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
