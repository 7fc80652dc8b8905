"""Branch kinds and context resolution from local git, GitLab CI and GitHub Actions variables."""

from __future__ import annotations

import json

import pytest
from conftest import git

from alops.core.branches import BranchSettings, kind_of, pattern_problem, pattern_regex, resolve_context
from alops.core.errors import ContextError

EXPECTED_PROFILES = {
    "feature": dict(dataset="dev", device="cpu", tracking=False, deploy=False, data_commits=False, report_target="merge-request"),
    "experiment": dict(dataset="full", device="gpu", tracking=True, deploy=False, data_commits=False, report_target="merge-request"),
    "release": dict(dataset="full", device="auto", tracking=True, deploy=True, data_commits=False, report_target="release"),
    "active-learning": dict(dataset="full", device="auto", tracking=True, deploy=False, data_commits=True, report_target="merge-request"),
    "main": dict(dataset="dev", device="cpu", tracking=False, deploy=False, data_commits=False, report_target="none"),
    "other": dict(dataset="dev", device="cpu", tracking=False, deploy=False, data_commits=False, report_target="merge-request"),
}

BRANCHES = [
    ("feature/a", "feature"),
    ("experiment/b", "experiment"),
    ("release/1.0", "release"),
    ("al/round-3", "active-learning"),
    ("main", "main"),
    ("hotfix-typo", "other"),
    ("feature/nested/deeper", "feature"),
    ("features/a", "other"),
    ("myfeature/a", "other"),
]


@pytest.mark.parametrize("branch,kind", BRANCHES)
def test_local_git_branch_gives_kind_and_profile(repo, branch, kind):
    if branch != "main":
        git(repo, "switch", "-q", "-c", branch)
    context = resolve_context(env={}, cwd=str(repo))
    assert (context.kind, context.branch, context.forge) == (kind, branch, "local")
    assert context.profile.as_dict() == EXPECTED_PROFILES[kind]
    assert context.commit == git(repo, "rev-parse", "HEAD")
    assert (context.notice is not None) == (kind == "other")


def test_default_branch_comes_from_origin_head(repo, tmp_path):
    git(repo, "branch", "-m", "main", "develop")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    context = resolve_context(env={}, cwd=str(clone))
    assert (context.default_branch, context.kind) == ("develop", "main")


def test_detached_head_is_a_clear_error(repo):
    git(repo, "switch", "-q", "--detach", "HEAD")
    with pytest.raises(ContextError, match="detached HEAD"):
        resolve_context(env={}, cwd=str(repo))


def test_outside_a_repository_is_a_clear_error(tmp_path):
    with pytest.raises(ContextError, match="not inside a git repository"):
        resolve_context(env={}, cwd=str(tmp_path))


def gitlab_env(**values: str) -> dict[str, str]:
    return {"GITLAB_CI": "true", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_SHA": "a" * 40, **values}


def test_gitlab_push_on_experiment_branch():
    env = gitlab_env(CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="experiment/b", CI_JOB_URL="https://gl/job/1")
    context = resolve_context(env=env)
    assert (context.kind, context.branch, context.event, context.forge) == ("experiment", "experiment/b", "push", "gitlab")
    assert context.merge_request is None
    assert context.ci_job_url == "https://gl/job/1"
    assert context.commit == "a" * 40


def test_gitlab_merge_request_takes_source_kind_and_names_target():
    env = gitlab_env(
        CI_PIPELINE_SOURCE="merge_request_event",
        CI_MERGE_REQUEST_IID="17",
        CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="al/round-3",
        CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
        CI_MERGE_REQUEST_PROJECT_ID="5",
        CI_MERGE_REQUEST_SOURCE_PROJECT_ID="5",
    )
    context = resolve_context(env=env)
    assert (context.kind, context.branch, context.event) == ("active-learning", "al/round-3", "merge_request")
    mr = context.merge_request
    assert (mr.number, mr.source_kind, mr.target_branch, mr.target_kind, mr.from_fork) == ("17", "active-learning", "main", "main", False)
    assert context.profile.as_dict() == EXPECTED_PROFILES["active-learning"]


def test_gitlab_merge_request_from_a_fork_is_flagged():
    env = gitlab_env(
        CI_PIPELINE_SOURCE="merge_request_event",
        CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="feature/a",
        CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
        CI_MERGE_REQUEST_PROJECT_ID="5",
        CI_MERGE_REQUEST_SOURCE_PROJECT_ID="99",
    )
    assert resolve_context(env=env).merge_request.from_fork is True


def test_gitlab_default_branch_variable_decides_main():
    env = gitlab_env(CI_PIPELINE_SOURCE="schedule", CI_COMMIT_BRANCH="trunk", CI_DEFAULT_BRANCH="trunk")
    context = resolve_context(env=env)
    assert (context.kind, context.event, context.default_branch) == ("main", "schedule", "trunk")


def test_gitlab_tag_pipeline_runs_as_feature_with_notice():
    context = resolve_context(env=gitlab_env(CI_PIPELINE_SOURCE="push", CI_COMMIT_TAG="v1.0"))
    assert (context.kind, context.branch, context.tag, context.event) == ("other", None, "v1.0", "tag")
    assert "tag" in context.notice


@pytest.mark.parametrize("branch, meant", [("experiments/x", "experiment/*"), ("Experiment/x", "experiment/*"),
                                           ("releases/1.0", "release/*"), ("features/login", "feature/*"),
                                           ("experiment-1", "experiment/*"), ("release_2.0", "release/*"),
                                           ("al-round-3", "al/*"), ("Feature.login", "feature/*")])
def test_a_misspelled_branch_kind_gets_a_did_you_mean(branch, meant):
    """`experiments/x` runs as a feature branch on the dev data: the notice says which pattern was meant."""
    context = resolve_context(env=gitlab_env(CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH=branch))
    assert context.kind == "other" and f"did you mean {meant}?" in context.notice


@pytest.mark.parametrize("branch", ["fix-login", "hotfix/x", "experimental"])
def test_an_unrelated_branch_gets_no_suggestion(branch):
    context = resolve_context(env=gitlab_env(CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH=branch))
    assert "matches no branch pattern" in context.notice and "did you mean" not in context.notice


def github_env(tmp_path, payload: dict, **values: str) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    return {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": "b" * 40, **values}


def test_github_pull_request_takes_source_kind(tmp_path):
    payload = {
        "number": 8,
        "pull_request": {
            "number": 8,
            "head": {"repo": {"full_name": "team/digits"}},
            "base": {"repo": {"full_name": "team/digits"}},
        },
        "repository": {"default_branch": "main"},
    }
    env = github_env(
        tmp_path, payload, GITHUB_EVENT_NAME="pull_request", GITHUB_REF="refs/pull/8/merge",
        GITHUB_HEAD_REF="experiment/b", GITHUB_BASE_REF="main",
    )
    context = resolve_context(env=env)
    assert (context.kind, context.branch, context.event, context.forge) == ("experiment", "experiment/b", "merge_request", "github")
    mr = context.merge_request
    assert (mr.number, mr.target_branch, mr.target_kind, mr.from_fork) == ("8", "main", "main", False)


def test_github_pull_request_from_fork(tmp_path):
    payload = {
        "pull_request": {"number": 3, "head": {"repo": {"full_name": "someone/digits"}}, "base": {"repo": {"full_name": "team/digits"}}},
    }
    env = github_env(
        tmp_path, payload, GITHUB_EVENT_NAME="pull_request_target", GITHUB_REF="refs/heads/main",
        GITHUB_HEAD_REF="feature/x", GITHUB_BASE_REF="main",
    )
    assert resolve_context(env=env).merge_request.from_fork is True


def test_github_default_branch_from_event_payload(tmp_path):
    env = github_env(
        tmp_path, {"repository": {"default_branch": "develop"}},
        GITHUB_EVENT_NAME="push", GITHUB_REF="refs/heads/develop",
        GITHUB_SERVER_URL="https://github.com", GITHUB_REPOSITORY="team/digits", GITHUB_RUN_ID="42",
    )
    context = resolve_context(env=env)
    assert (context.kind, context.default_branch) == ("main", "develop")
    assert context.ci_job_url == "https://github.com/team/digits/actions/runs/42"


def test_github_release_branch_push(tmp_path):
    env = github_env(tmp_path, {}, GITHUB_EVENT_NAME="push", GITHUB_REF="refs/heads/release/1.0")
    context = resolve_context(env=env)
    assert (context.kind, context.profile.deploy) == ("release", True)


def test_github_unreadable_event_payload_is_a_clear_error(tmp_path):
    env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_PATH": str(tmp_path / "missing.json"), "GITHUB_REF": "refs/heads/main"}
    with pytest.raises(ContextError, match="event payload"):
        resolve_context(env=env)


def test_explicit_branch_needs_no_git(tmp_path):
    context = resolve_context(env={}, cwd=str(tmp_path), branch="al/round-3")
    assert context.kind == "active-learning"


def test_custom_patterns_and_default_branch():
    settings = BranchSettings(patterns={"feature": ("fix/*",), "experiment": ("exp-*",)}, default_branch="trunk")
    assert resolve_context(settings, env={}, branch="fix/typo").kind == "feature"
    assert resolve_context(settings, env={}, branch="exp-lr").kind == "experiment"
    assert resolve_context(settings, env={}, branch="feature/a").kind == "other"
    assert resolve_context(settings, env={}, branch="trunk").kind == "main"


@pytest.mark.parametrize("pattern", ["", "feat ure/*", "*", "/feature/*", "feature/*/", "a..b/*", "x~1", "feat[ab]/*", 3])
def test_bad_patterns_are_rejected(pattern):
    assert pattern_problem(pattern) is not None


def test_pattern_regex_treats_dots_literally():
    assert pattern_regex("release/1.*") == r"^release/1\..*$"
    patterns = {"release": ("release/1.*",)}
    assert kind_of("release/1.2", patterns, "main") == "release"
    assert kind_of("release/132", patterns, "main") == "other"
