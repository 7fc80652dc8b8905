"""The `alops` console script: versions, help, context formats, exit codes, hostile branch names."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import clean_env, git, run_alops
from test_branches import EXPECTED_PROFILES

from alops import __version__

HOSTILE_BRANCHES = ["feature/x;touch${IFS}pwned", "feature/$(touch${IFS}pwned)", "feature/`touch${IFS}pwned`", "feature/a'b\"c"]


def test_version_and_help(tmp_path):
    version = run_alops("--version", cwd=tmp_path)
    assert version.returncode == 0 and __version__ in version.stdout
    helptext = run_alops("--help", cwd=tmp_path)
    assert helptext.returncode == 0
    assert "context" in helptext.stdout and "Usage: alops" in helptext.stdout


@pytest.mark.parametrize(
    "branch,kind",
    [("feature/a", "feature"), ("experiment/b", "experiment"), ("release/1.0", "release"), ("al/round-3", "active-learning"), ("main", "main")],
)
def test_context_json_on_local_branches(repo, branch, kind):
    if branch != "main":
        git(repo, "switch", "-q", "-c", branch)
    result = run_alops("context", "--format", "json", cwd=repo)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["kind"], data["branch"], data["schema"]) == (kind, branch, 1)
    assert data["profile"] == EXPECTED_PROFILES[kind]


def test_context_json_in_gitlab_merge_request(tmp_path):
    env = clean_env(
        GITLAB_CI="true", CI_PIPELINE_SOURCE="merge_request_event", CI_DEFAULT_BRANCH="main",
        CI_MERGE_REQUEST_IID="4", CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="experiment/b",
        CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
    )
    data = json.loads(run_alops("context", "--format", "json", cwd=tmp_path, env=env).stdout)
    assert (data["kind"], data["branch"], data["event"]) == ("experiment", "experiment/b", "merge_request")
    assert data["merge_request"]["target_kind"] == "main"
    assert data["profile"] == EXPECTED_PROFILES["experiment"]


def test_context_json_in_github_pull_request(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 2}, "repository": {"default_branch": "main"}}))
    env = clean_env(
        GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="pull_request", GITHUB_EVENT_PATH=str(event),
        GITHUB_REF="refs/pull/2/merge", GITHUB_HEAD_REF="al/round-3", GITHUB_BASE_REF="main",
    )
    data = json.loads(run_alops("context", "--format", "json", cwd=tmp_path, env=env).stdout)
    assert (data["kind"], data["merge_request"]["number"], data["merge_request"]["target_kind"]) == ("active-learning", "2", "main")
    assert data["profile"] == EXPECTED_PROFILES["active-learning"]


def test_other_branch_prints_a_notice_and_runs_as_feature(repo):
    git(repo, "switch", "-q", "-c", "spike")
    result = run_alops("context", "--format", "json", cwd=repo)
    assert result.returncode == 0
    assert json.loads(result.stdout)["kind"] == "other"
    assert "runs as a feature branch" in result.stderr


def test_text_format_names_kind_and_profile(repo):
    git(repo, "switch", "-q", "-c", "experiment/lr")
    out = run_alops("context", cwd=repo).stdout
    assert "kind:      experiment" in out
    assert "dataset=full device=gpu tracking=on" in out


def test_detached_head_exits_2_with_one_line(repo):
    git(repo, "switch", "-q", "--detach", "HEAD")
    result = run_alops("context", cwd=repo)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "detached HEAD" in result.stderr and "Traceback" not in result.stderr


def test_missing_git_exits_2(tmp_path):
    env = clean_env(PATH=str(tmp_path / "empty-bin"))
    result = run_alops("context", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "git is not installed" in result.stderr and "Traceback" not in result.stderr


def test_unknown_format_is_a_usage_error(repo):
    result = run_alops("context", "--format", "yaml", cwd=repo)
    assert result.returncode == 2
    assert "yaml" in result.stderr


def _source_in_shell(script: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], cwd=cwd, capture_output=True, text=True, env=clean_env())


@pytest.mark.parametrize("branch", HOSTILE_BRANCHES)
def test_env_format_keeps_hostile_branch_names_as_text(tmp_path, branch):
    env = clean_env(GITLAB_CI="true", CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH=branch, CI_DEFAULT_BRANCH="main")
    result = run_alops("context", "--format", "env", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    (tmp_path / "ctx.env").write_text(result.stdout)
    shell = _source_in_shell('. ./ctx.env; printf "%s\\n%s" "$ALOPS_KIND" "$ALOPS_BRANCH"', tmp_path)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == f"feature\n{branch}"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("branch", ["feature/x;touch${IFS}pwned", "feature/$(touch${IFS}pwned)"])
def test_dotenv_format_is_safe_to_source_and_branch_free(repo, branch):
    git(repo, "switch", "-q", "-c", branch)
    result = run_alops("context", "--format", "dotenv", cwd=repo)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ALOPS_KIND=feature" in lines and "ALOPS_DATASET=dev" in lines
    assert all("pwned" not in line for line in lines)
    (repo / "ctx.env").write_text(result.stdout)
    shell = _source_in_shell('set -a; . ./ctx.env; printf "%s" "$ALOPS_DEVICE"', repo)
    assert (shell.returncode, shell.stdout) == (0, "cpu")
    assert not (repo / "pwned").exists()


def _read_github_outputs(path) -> dict[str, str]:
    outputs, lines = {}, iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            name, delimiter = line.split("<<", 1)
            outputs[name] = "\n".join(iter(lambda: next(lines), delimiter))
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def test_github_format_appends_step_outputs(repo, tmp_path):
    git(repo, "switch", "-q", "-c", "feature/$(touch${IFS}pwned)")
    output = tmp_path / "github_output"
    output.write_text("earlier=kept\n")
    env = clean_env(GITHUB_OUTPUT=str(output))
    result = run_alops("context", "--branch", "release/2.0", "--format", "github", cwd=repo, env=env)
    assert result.returncode == 0, result.stderr
    outputs = _read_github_outputs(output)
    assert outputs["earlier"] == "kept"
    assert (outputs["kind"], outputs["branch"], outputs["deploy"], outputs["data-commits"]) == ("release", "release/2.0", "true", "false")
    assert json.loads(outputs["json"])["profile"] == EXPECTED_PROFILES["release"]


def test_github_format_outside_actions_exits_2(repo):
    result = run_alops("context", "--format", "github", cwd=repo)
    assert result.returncode == 2
    assert "GITHUB_OUTPUT is not set" in result.stderr
