"""The path a team walks: the wheel built and installed in a fresh venv, `alops new` from it, and the CI file
exactly as generated (only its include pointed at this checkout's components) run under gitlab-ci-local with
the install step on, installing alops from a local package folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from alops import __version__
from conftest import act_stand_in_args, clean_env, git

KIT = Path(__file__).parents[1]
GITLAB_CI_LOCAL = KIT / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"


def run(command: list[str], cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(KIT)], cwd=KIT)
    (built,) = dist.glob("alops-*.whl")
    return built


def test_the_wheel_ships_the_scaffold_and_a_core_without_torch(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "alops/scaffold_template/cookiecutter.json" in names
    assert "alops/scaffold_template/{{cookiecutter.project_slug}}/.gitlab-ci.yml" in names  # dotfiles too
    assert "alops/scaffold_template/{{cookiecutter.project_slug}}/requirements.txt" in names
    metadata = zipfile.ZipFile(wheel).read(f"alops-{__version__}.dist-info/METADATA").decode()
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert core and not any("torch" in line or "nvidia" in line for line in core)
    assert any("torch" in line and "extra == \"torch\"" in line for line in metadata.splitlines())


def runner_project(wheel: Path, tmp_path: Path, forge: str) -> tuple[Path, Path, dict]:
    """A runner venv with torch (CPU build) and the wheel's dependencies but not alops, and a project that
    `alops new` from the wheel made, with its data pushed: (venv, project, environment)."""
    venv = tmp_path / "runner"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    # a CPU runner: torch from the CPU build first (docs/install.md), then the core wheel
    run([python, "-m", "pip", "install", "--quiet", "torch==2.13.0"], cwd=tmp_path)
    run([python, "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path)
    installed = run([python, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path).stdout.lower()
    assert f"alops=={__version__}" in installed

    env = clean_env()
    env.pop("ALOPS_TEMPLATE", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH'].split(os.pathsep, 1)[1]}"  # the runner's venv, not the kit's
    project = tmp_path / "team_project"
    run([str(venv / "bin" / "alops"), "new", str(project), "--forge", forge, "--example", "digits"], cwd=tmp_path, env=env)

    # data, as the example's README says
    git(project, "config", "user.email", "dev@example.com")
    git(project, "config", "user.name", "Dev")
    run([python, "scripts/prepare_digits.py", "data/full", "--unlabeled", "0.6", "--oracle", str(tmp_path / "oracle.csv")],
        cwd=project, env=env)
    run([str(venv / "bin" / "dvc"), "add", "-q", "data/full"], cwd=project, env=env)
    run([str(venv / "bin" / "alops"), "data", "make-dev", "--fraction", "0.1"], cwd=project, env=env)
    run([str(venv / "bin" / "dvc"), "push", "-q"], cwd=project, env=env)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    git(project, "remote", "add", "origin", f"https://{forge}.example.com/team/team_project.git")
    # the runner has the dependencies but not alops: the job's install step must fetch it from the package folder
    run([python, "-m", "pip", "uninstall", "--quiet", "-y", "alops"], cwd=tmp_path)
    return venv, project, env


def test_from_the_wheel_to_green_feature_and_experiment_pipelines(wheel, tmp_path):
    venv, project, env = runner_project(wheel, tmp_path, "gitlab")
    ci_file = (project / ".gitlab-ci.yml").read_text()
    assert f"/alops@{__version__}\n" in ci_file

    # only the include address changes: the components of this checkout, at the project's own commit
    shutil.copytree(KIT / "templates", project / "templates")
    address = ci_file.split("component: ", 1)[1].split("\n", 1)[0]
    (project / ".gitlab-ci.yml").write_text(ci_file.replace(address, "$CI_SERVER_FQDN/$CI_PROJECT_PATH/alops@$CI_COMMIT_SHA"))
    with open(project / ".gitignore", "a", encoding="utf-8") as handle:
        handle.write(".gitlab-ci-local/\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the components of this checkout")
    git(project, "switch", "-q", "-c", "feature/first-model")
    command = [str(GITLAB_CI_LOCAL), "--force-shell-executor", "--shell-isolation", "--no-color",
               "--max-job-name-padding", "0", "--ignore-schema-paths", "#/definitions/tags/minItems",  # GitLab accepts tags: []
               "--variable", "GITLAB_CI=true", "--variable", "CI_PIPELINE_SOURCE=push",
               "--variable", f"PIP_FIND_LINKS={wheel.parent}"]
    env["GCL_IGNORE_PREDEFINED_VARS"] = "GITLAB_CI,CI_PIPELINE_SOURCE,CI_COMMIT_REF_PROTECTED,CI_PROJECT_ID"
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "repro: on cpu with the dev dataset" in output
    assert "PASS  alops-train-dev" in output or "PASS alops-train-dev" in output
    python = str(venv / "bin" / "python")
    assert f"alops=={__version__}" in run([python, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path).stdout.lower()

    # the experiment pipeline: full data, tracked; no GPU here, so the project allows the CPU as a CI variable
    git(project, "switch", "-q", "-c", "experiment/first", "main")
    result = subprocess.run([*command, "--variable", "ALOPS_ALLOW_CPU=true"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "repro: on cpu with the full dataset" in output and "tracking: run" in output
    assert "PASS  alops-train-full" in output or "PASS alops-train-full" in output


def test_from_the_wheel_to_a_green_feature_workflow_under_act(wheel, tmp_path):
    import re

    venv, project, env = runner_project(wheel, tmp_path, "github")
    caller = (project / ".github/workflows/ci.yml").read_text()
    address = re.search(r"uses: (\S+)", caller).group(1)
    assert address.endswith(f"/.github/workflows/alops.yml@{__version__}")
    # only the uses: address changes: the reusable workflow of this checkout
    shutil.copy(KIT / ".github/workflows/alops.yml", project / ".github/workflows/alops.yml")
    (project / ".github/workflows/ci.yml").write_text(caller.replace(address, "./.github/workflows/alops.yml"))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the workflow of this checkout")
    git(project, "switch", "-q", "-c", "feature/first-model")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/feature/first-model", "repository": {"default_branch": "main"}}))
    act = str(Path(sys.executable).with_name("act"))
    command = [act, "push", "-W", ".github/workflows/ci.yml", "-e", str(event), "-P", "ubuntu-latest=-self-hosted",
               "-P", "self-hosted=-self-hosted", "-P", "gpu=-self-hosted", "--env", f"PIP_FIND_LINKS={wheel.parent}"]
    command += act_stand_in_args(tmp_path / "artifacts")
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"/train-dev\s*\] 🏁  Job succeeded", output), output[-3000:]
    assert "repro: on cpu with the dev dataset" in output
    python = str(venv / "bin" / "python")
    assert f"alops=={__version__}" in run([python, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path).stdout.lower()
