"""The kit's own release: planned only for a semver tag; the build-and-check step executes (nothing is uploaded)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, git

KIT = Path(__file__).parents[1]
GITLAB_CI_LOCAL = KIT / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"
STAND_IN = Path(__file__).parents[1] / "templates" / "stand-ins" / "stand-in"
PUBLISHING = {"package", "pypi", "gitlab-packages", "runner-image", "catalog-release"}


@pytest.fixture(scope="module")
def kit_clone(tmp_path_factory) -> Path:
    """A clone of the kit at its current commit (what a tag pipeline checks out)."""
    clone = tmp_path_factory.mktemp("kit") / "alops"
    git(KIT, "rev-parse", "HEAD")
    subprocess.run(["git", "clone", "-q", str(KIT), str(clone)], check=True)
    git(clone, "remote", "set-url", "origin", "https://gitlab.example.com/tools/alops.git")
    return clone


def gitlab_ci_local(clone: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(GITLAB_CI_LOCAL), "--force-shell-executor", "--shell-isolation", "--no-color", *args]
    env = clean_env(GCL_IGNORE_PREDEFINED_VARS="CI_COMMIT_TAG,CI_COMMIT_BRANCH")
    return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=900)


def planned(clone: Path, *variables: str) -> set[str]:
    args = [arg for variable in variables for arg in ("--variable", variable)]
    result = gitlab_ci_local(clone, "--list-json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return {job["name"] for job in json.loads(result.stdout[result.stdout.index("["):]) if job["when"] != "never"}


def test_publishing_is_planned_only_for_a_semver_tag(kit_clone):
    from alops import __version__

    assert PUBLISHING <= planned(kit_clone, f"CI_COMMIT_TAG={__version__}")
    assert not PUBLISHING & planned(kit_clone, "CI_COMMIT_TAG=nightly")
    assert not PUBLISHING & planned(kit_clone, "CI_COMMIT_BRANCH=main")


def test_the_package_job_builds_and_checks_the_distributions(kit_clone):
    from alops import __version__

    result = gitlab_ci_local(kit_clone, "package", "--variable", f"CI_COMMIT_TAG={__version__}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "PASSED" in output  # twine check --strict
    dist = kit_clone / ".gitlab-ci-local" / "builds" / "package" / "dist"
    names = sorted(p.name for p in dist.iterdir()) if dist.is_dir() else sorted(p.name for p in (kit_clone / "dist").iterdir())
    assert names == [f"alops-{__version__}-py3-none-any.whl", f"alops-{__version__}.tar.gz"]


def test_the_github_release_workflow_builds_and_checks_under_act(kit_clone, tmp_path):
    from alops import __version__

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": f"refs/tags/{__version__}", "ref_name": __version__}))
    text = (KIT / ".github/workflows/release.yml").read_text()
    command = [str(Path(sys.executable).with_name("act")), "push", "-W", ".github/workflows/release.yml", "-e", str(event),
               "-P", "ubuntu-latest=-self-hosted", "--concurrent-jobs", "1"]
    for action in sorted(set(re.findall(r"uses: ([\w-]+/[\w-]+@[0-9a-f]{40})", text))):
        if not action.startswith("actions/checkout@"):  # a stand-in: nothing is uploaded anywhere
            command += ["--local-repository", f"{action}={STAND_IN}"]
    result = subprocess.run(command, cwd=kit_clone, env=clean_env(), capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "PASSED" in output and "Job succeeded" in output
