"""`alops report`, `alops promote`: real python-gitlab and PyGithub clients against a local forge server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import clean_env, dvc, git, run_alops

from alops.forge.stand_in import ForgeServer

CANARY = "glpat-CANARY-9f8e7d6c5b4a"
DVC_YAML = """stages:
  train:
    cmd: python -c "import os; os.makedirs('model', exist_ok=True); open('model/MLmodel', 'w').write('flavors' + chr(58) + ' {}')"
    params:
      - train
    outs:
      - model
  evaluate:
    cmd: python -c "print('evaluated')"
    deps:
      - model
    metrics:
      - metrics.json:
          cache: false
"""


def commit_state(project: Path, metrics: dict, lr: float, message: str) -> None:
    (project / "metrics.json").write_text(json.dumps(metrics))
    # full: the metrics an experiment (full data) committed and merged; the like of an experiment's run
    (project / "params.yaml").write_text(f"dataset: full\ntrain:\n  lr: {lr}\n  epochs: 5\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def _report_project_built(tmp_path_factory) -> Path:
    from conftest import git_repo

    base = tmp_path_factory.mktemp("report-project")
    repo = git_repo(base / "project")
    dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    commit_state(repo, {"accuracy": 0.80, "loss": 0.50}, 0.01, "baseline")
    git(repo, "switch", "-q", "-c", "experiment/wider")
    commit_state(repo, {"accuracy": 0.85, "loss": 0.40}, 0.02, "wider")
    return base


@pytest.fixture
def report_project(_report_project_built: Path, repo: Path, tmp_path: Path) -> Path:
    """main committed accuracy 0.80 (lr 0.01); experiment/wider reaches 0.85 with lr 0.02."""
    from conftest import copy_of

    return copy_of(_report_project_built, repo, tmp_path, remote=None)


def gitlab_env(server: ForgeServer, project: Path, token: str = CANARY, **extra) -> dict:
    env = dict(GITLAB_CI="true", CI_SERVER_URL=server.url, CI_PROJECT_ID="42",
                     CI_PROJECT_URL=f"{server.url}/group/project", CI_PIPELINE_SOURCE="merge_request_event",
                     CI_MERGE_REQUEST_IID="7", CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="experiment/wider",
                     CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main", CI_MERGE_REQUEST_PROJECT_ID="42",
                     CI_MERGE_REQUEST_SOURCE_PROJECT_ID="42", CI_COMMIT_SHA=git(project, "rev-parse", "HEAD"),
                     CI_DEFAULT_BRANCH="main", GITLAB_TOKEN=token)
    return clean_env(**{**env, **extra})


def github_env(server: ForgeServer, project: Path, tmp_path: Path, token: str = CANARY, fork: bool = False) -> dict:
    event = tmp_path / "event.json"
    head_repo = "someone/fork" if fork else "team/project"
    event.write_text(json.dumps({"number": 7, "pull_request": {"number": 7, "head": {"repo": {"full_name": head_repo}},
                                                                "base": {"repo": {"full_name": "team/project"}}},
                                 "repository": {"default_branch": "main"}}))
    return clean_env(GITHUB_ACTIONS="true", GITHUB_API_URL=server.url, GITHUB_SERVER_URL="https://github.test",
                     GITHUB_REPOSITORY="team/project", GITHUB_EVENT_NAME="pull_request", GITHUB_EVENT_PATH=str(event),
                     GITHUB_REF="refs/pull/7/merge", GITHUB_HEAD_REF="experiment/wider", GITHUB_BASE_REF="main",
                     GITHUB_SHA=git(project, "rev-parse", "HEAD"), GITHUB_RUN_ID="99", GITHUB_TOKEN=token)


def assert_no_canary(result) -> None:
    assert CANARY not in result.stdout + result.stderr


def test_report_compares_with_what_the_target_committed(report_project):
    result = run_alops("report", "--target", "main", cwd=report_project)
    assert result.returncode == 0, result.stderr
    text = (report_project / "report.md").read_text()
    assert text.startswith("<!-- alops:report -->")
    assert "| `accuracy` | 0.85 | 0.8 | +0.05 (+6.2%) |" in text
    assert "| `loss` | 0.4 | 0.5 | -0.1 (-20.0%) |" in text
    assert "| `train.lr` | `0.02` | `0.01` |" in text
    assert "train.epochs" not in text  # unchanged params are not listed
    assert not (report_project / "mlflow.db").exists()  # reporting creates no tracking store


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_report_kept_as_data_is_posted_from_a_job_without_the_project(report_project, tmp_path, forge):
    """The training job keeps the report (`--json`, no token); a job with no checkout posts it (`--from`)."""
    written = run_alops("report", "--json", str(tmp_path / "kept/report.json"), cwd=report_project)
    assert written.returncode == 0, written.stderr
    empty = tmp_path / "report-job"
    empty.mkdir()
    with ForgeServer(CANARY) as server:
        env = gitlab_env(server, report_project) if forge == "gitlab" else github_env(server, report_project, tmp_path)
        posted = run_alops("report", "--from", str(tmp_path / "kept/report.json"), "--post", cwd=empty, env=env)
        assert posted.returncode == 0, posted.stderr
        assert_no_canary(posted)
        body = server.state.comments[7][0]["body"]
    assert body == (report_project / "report.md").read_text()  # the same report, rendered again by alops
    assert "| `accuracy` | 0.85 | 0.8 |" in body


def test_report_from_a_file_that_is_not_a_kept_report_is_one_line(report_project, tmp_path):
    (tmp_path / "other.json").write_text('{"accuracy": 0.9}')
    result = run_alops("report", "--from", str(tmp_path / "other.json"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"alops: error: {tmp_path / 'other.json'}: not a report saved by `alops report --json`"]


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_report_posted_twice_leaves_one_comment_with_the_latest_content(report_project, tmp_path, forge):
    with ForgeServer(CANARY) as server:
        env = gitlab_env(server, report_project) if forge == "gitlab" else github_env(server, report_project, tmp_path)
        first = run_alops("report", "--post", cwd=report_project, env=env)
        assert first.returncode == 0, first.stderr
        assert "comment created on #7" in first.stdout
        (report_project / "metrics.json").write_text(json.dumps({"accuracy": 0.91, "loss": 0.3}))
        second = run_alops("report", "--post", cwd=report_project, env=env)
        assert second.returncode == 0, second.stderr
        assert "comment updated on #7" in second.stdout
        comments = server.state.comments[7]
        assert len(comments) == 1
        assert "| `accuracy` | 0.91 | 0.8 |" in comments[0]["body"]
        for result in (first, second):
            assert_no_canary(result)


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_a_502_after_the_server_applied_the_post_still_leaves_one_comment(report_project, tmp_path, forge):
    with ForgeServer(CANARY) as server:
        env = gitlab_env(server, report_project) if forge == "gitlab" else github_env(server, report_project, tmp_path)
        comments_path = r"/notes$" if forge == "gitlab" else r"/issues/7/comments$"
        server.inject("POST", comments_path, 502, apply=True)
        result = run_alops("report", "--post", cwd=report_project, env=env)
        assert result.returncode == 0, result.stderr
        assert len(server.calls("POST", comments_path)) == 1  # the create was not blindly repeated
        assert len(server.state.comments[7]) == 1
        assert "0.85" in server.state.comments[7][0]["body"]


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_429_with_retry_after_is_waited_out(report_project, tmp_path, forge):
    comments = r"/notes$" if forge == "gitlab" else r"/issues/7/comments$"
    with ForgeServer(CANARY) as server:
        server.inject("GET", comments, 429, retry_after=2, times=1)
        env = gitlab_env(server, report_project) if forge == "gitlab" else github_env(server, report_project, tmp_path)
        result = run_alops("report", "--post", cwd=report_project, env=env)
        assert result.returncode == 0, result.stderr
        calls = server.calls("GET", comments)
        assert len(calls) == 2
        assert len(server.state.comments[7]) == 1
    assert calls[1]["at"] - calls[0]["at"] >= 1.9  # the server's Retry-After, not the first back-off (1 s)


def test_github_502_on_every_create_fails_after_bounded_attempts(report_project, tmp_path):
    with ForgeServer(CANARY) as server:
        server.inject("POST", r"/issues/7/comments$", 502, retry_after=0, times=10)
        result = run_alops("report", "--post", cwd=report_project, env=github_env(server, report_project, tmp_path))
        assert result.returncode == 1
        assert "GitHub comment failed (502)" in result.stderr
        assert len(server.calls("POST", r"/issues/7/comments$")) == 4
        assert server.state.comments.get(7, []) == []


def test_an_expired_token_is_one_line_and_never_printed(report_project):
    with ForgeServer("the-valid-token") as server:
        result = run_alops("report", "--post", cwd=report_project, env=gitlab_env(server, report_project))
    assert result.returncode == 1
    assert "GitLab rejected the token (401" in result.stderr and "GITLAB_TOKEN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert_no_canary(result)


@pytest.mark.parametrize("forge, permission", [("gitlab", "api` scope"), ("github", "pull-requests: write")])
def test_a_403_on_comment_names_the_permission(report_project, tmp_path, forge, permission):
    with ForgeServer(CANARY) as server:
        env = gitlab_env(server, report_project) if forge == "gitlab" else github_env(server, report_project, tmp_path)
        server.inject("POST", r"/notes$|/comments$", 403)
        result = run_alops("report", "--post", cwd=report_project, env=env)
    assert result.returncode == 1
    assert "lacks permission" in result.stderr and permission in result.stderr
    assert_no_canary(result)


def test_no_open_merge_request_for_the_branch_is_a_clear_error(report_project):
    with ForgeServer(CANARY) as server:
        env = clean_env(GITLAB_CI="true", CI_SERVER_URL=server.url, CI_PROJECT_ID="42", CI_PIPELINE_SOURCE="push",
                        CI_COMMIT_BRANCH="experiment/wider", GITLAB_TOKEN=CANARY)
        strict = run_alops("report", "--post", cwd=report_project, env=env)
        lenient = run_alops("report", "--post-if-open", cwd=report_project, env=env)
        assert [r["method"] for r in server.state.requests] == ["GET", "GET"]  # looked, wrote nothing
    assert strict.returncode == 1
    assert "no open merge request for branch 'experiment/wider'" in strict.stderr
    assert lenient.returncode == 0 and "notice: report not posted" in lenient.stderr
    assert (report_project / "report.md").exists()  # the report itself is still there to read


def test_a_branch_pipeline_posts_on_the_open_merge_request_of_its_branch(report_project):
    with ForgeServer(CANARY) as server:
        server.state.merge_requests.append({"id": 1, "iid": 3, "state": "opened", "title": "t", "description": "",
                                            "source_branch": "experiment/wider", "target_branch": "main", "labels": []})
        env = clean_env(GITLAB_CI="true", CI_SERVER_URL=server.url, CI_PROJECT_ID="42", CI_PIPELINE_SOURCE="push",
                        CI_COMMIT_BRANCH="experiment/wider", GITLAB_TOKEN=CANARY)
        result = run_alops("report", "--post-if-open", cwd=report_project, env=env)
        assert result.returncode == 0, result.stderr
        assert len(server.state.comments[3]) == 1


def test_post_if_open_without_a_token_is_a_notice(report_project):
    env = clean_env(GITLAB_CI="true", CI_SERVER_URL="http://127.0.0.1:9", CI_PROJECT_ID="42", CI_PIPELINE_SOURCE="push",
                    CI_COMMIT_BRANCH="experiment/wider")
    result = run_alops("report", "--post-if-open", cwd=report_project, env=env)
    assert result.returncode == 0, result.stderr
    assert "no GitLab token" in result.stderr


def test_a_fork_pull_request_is_skipped_with_a_notice(report_project, tmp_path):
    with ForgeServer(CANARY) as server:
        result = run_alops("report", "--post", cwd=report_project, env=github_env(server, report_project, tmp_path, fork=True))
        assert server.state.requests == []
    assert result.returncode == 0, result.stderr
    assert "from a fork" in result.stderr


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_promote_twice_leaves_one_merge_request_updated(report_project, tmp_path, forge):
    with ForgeServer(CANARY) as server:
        if forge == "gitlab":
            env = gitlab_env(server, report_project, CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="experiment/wider")
            for key in [k for k in env if k.startswith("CI_MERGE_REQUEST")]:
                del env[key]
        else:
            env = github_env(server, report_project, tmp_path)
            env.update(GITHUB_EVENT_NAME="push", GITHUB_REF="refs/heads/experiment/wider")
        first = run_alops("promote", "--label", "experiment", "--draft", cwd=report_project, env=env)
        assert first.returncode == 0, first.stderr
        assert "merge request created" in first.stdout
        second = run_alops("promote", "--title", "Wider network", "--label", "experiment", cwd=report_project, env=env)
        assert second.returncode == 0, second.stderr
        assert "merge request updated" in second.stdout
        assert len(server.state.merge_requests) == 1
        merge_request = server.state.merge_requests[0]
        assert merge_request["title"] == "Wider network"
        assert "experiment" in merge_request["labels"]
        assert "| `accuracy` | 0.85 | 0.8 |" in (merge_request.get("description") or merge_request.get("body"))
        head = merge_request.get("source_branch") or merge_request.get("head")
        assert head == "experiment/wider"
        if forge == "github":
            assert merge_request["draft"] is True
        else:
            assert json.loads(server.calls("POST", r"/merge_requests$")[0]["body"])["title"].startswith("Draft: ")


def test_promote_takes_the_given_report_and_target(report_project):
    with ForgeServer(CANARY) as server:
        env = gitlab_env(server, report_project, CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="experiment/wider")
        for key in [k for k in env if k.startswith("CI_MERGE_REQUEST")]:
            del env[key]
        (report_project / "notes.md").write_text("Hand-written description.\n")
        result = run_alops("promote", "--report", "notes.md", "--target", "develop", cwd=report_project, env=env)
        assert result.returncode == 0, result.stderr
        created = json.loads(server.calls("POST", r"/merge_requests$")[0]["body"])
    assert created["target_branch"] == "develop" and created["description"] == "Hand-written description.\n"


def test_promote_refuses_a_feature_branch(report_project):
    git(report_project, "switch", "-q", "-c", "feature/x")
    result = run_alops("promote", cwd=report_project)
    assert result.returncode == 2
    assert "experiment and al/ branches" in result.stderr


def test_active_learning_report_has_labels_added_and_a_learning_curve_upload(report_project, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    name = f"al-{tmp_path.name}"[:60]
    git(report_project, "switch", "-q", "-c", "al/round-2")
    manifest = report_project / "data/full/manifest.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("id,path,label,split\n" + "".join(f"s{i},x{i}.png,{'' if i >= 180 else i % 10},train\n"
                                                           for i in range(300)))
    git(report_project, "commit", "-q", "--allow-empty", "-m", "Labels of batch b7\n\nAlops-Strategy: margin")
    client = MlflowClient(mlflow_server)
    for kind, branch, labeled, accuracy in (("main", "main", 100, 0.70), ("active-learning", "al/round-2", 140, 0.78)):
        experiment = client.get_experiment_by_name(f"{name}/{kind}") or client.get_experiment(client.create_experiment(f"{name}/{kind}"))
        run = client.create_run(experiment.experiment_id, tags={"git.branch": branch, "alops.labeled": str(labeled),
                                                                 "alops.data_version": f"dv-{labeled:016d}",
                                                                 "alops.dataset": "full"})
        client.log_metric(run.info.run_id, "accuracy", accuracy)
        client.log_metric(run.info.run_id, "loss", round(1 - accuracy, 2))
        client.set_terminated(run.info.run_id)
    simulation = tmp_path / "simulation.csv"
    simulation.write_text("strategy,seed,round,labels,accuracy\nrandom,0,0,100,0.6\nrandom,0,1,150,0.7\nrandom,1,1,150,0.72\n")
    with ForgeServer(CANARY) as server:
        env = gitlab_env(server, report_project, CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="al/round-2",
                         MLFLOW_TRACKING_URI=mlflow_server, CI_PROJECT_NAME=name)
        result = run_alops("report", "--post", "--simulation", str(simulation), cwd=report_project, env=env)
        assert result.returncode == 0, result.stderr
        body = server.state.comments[7][0]["body"]
        assert server.state.uploads == ["42"]
    assert "Labels added: +80 (100 → 180 labeled samples)." in body
    assert "Strategy: `margin`." in body  # from the label import's commit trailer
    assert "| 1 | 140 | 40 | 0.78 |" in body and "| 2 | 180 | 40 | 0.85 |" in body  # labels per round
    assert "![learning_curve](/uploads/" in body
    assert "| `accuracy` | 0.85 | 0.7 |" in body  # against the latest tracked run of main
    assert (report_project / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_loss = run_alops("report", "--metric", "loss", cwd=report_project,
                        env=clean_env(MLFLOW_TRACKING_URI=mlflow_server, CI_PROJECT_NAME=name))
    assert by_loss.returncode == 0, by_loss.stderr
    text = (report_project / "report.md").read_text()
    assert "| round | labeled | labels added | `loss` |" in text and "| 2 | 180 | 40 | 0.4 |" in text


def test_post_if_open_with_only_the_job_token_is_a_notice_not_a_failed_job(report_project):
    """GITLAB_TOKEN protected (not on this branch): CI_JOB_TOKEN cannot read or write MRs; training stays green."""
    with ForgeServer("a-project-access-token") as server:
        env = clean_env(GITLAB_CI="true", CI_SERVER_URL=server.url, CI_PROJECT_ID="42", CI_PIPELINE_SOURCE="push",
                        CI_COMMIT_BRANCH="experiment/wider", CI_JOB_TOKEN=CANARY)
        lenient = run_alops("report", "--post-if-open", cwd=report_project, env=env)
        strict = run_alops("report", "--post", cwd=report_project, env=env)
    assert lenient.returncode == 0, lenient.stderr
    assert "notice: report not posted" in lenient.stderr and "401" in lenient.stderr
    assert strict.returncode == 1
    assert_no_canary(lenient)
    assert_no_canary(strict)


def test_a_full_data_experiment_without_a_full_data_run_of_main_is_compared_with_the_champion(report_project):
    """main trains on the dev dataset; the release that is in production trained on the full data: its tracked
    run is the baseline, named as such, with its params and data version."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{report_project / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(f"{report_project.name}/release")
    run = client.create_run(experiment, tags={"git.branch": "release/1.0", "alops.dataset": "full",
                                              "alops.data_version": "dv-0000000000000001"})
    client.log_metric(run.info.run_id, "accuracy", 0.82)
    client.log_param(run.info.run_id, "train.lr", "0.01")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(report_project.name)
    version = client.create_model_version(report_project.name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(report_project.name, "champion", version.version)
    (report_project / "params.yaml").write_text("dataset: full\ntrain:\n  lr: 0.02\n  epochs: 5\n")
    result = run_alops("report", "--target", "main", cwd=report_project)
    assert result.returncode == 0, result.stderr
    text = (report_project / "report.md").read_text()
    assert f"Compared with: the champion (model `{report_project.name}` version 1, its tracked run on the full " \
        "dataset; `main` has none)." in text
    assert "| `accuracy` | 0.85 | 0.82 | +0.03 (+3.7%) |" in text
    assert "| `train.lr` | `0.02` | `0.01` |" in text and "dv-0000000000000001" in text


def test_a_full_data_experiment_is_never_compared_with_dev_data_runs(report_project):
    """main trains on the dev dataset: its runs and committed metrics are not a baseline for a full-data run."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{report_project / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(f"{report_project.name}/main")
    run = client.create_run(experiment, tags={"git.branch": "main", "alops.dataset": "dev"})
    client.log_metric(run.info.run_id, "accuracy", 0.99)
    client.set_terminated(run.info.run_id)
    git(report_project, "switch", "-q", "main")
    (report_project / "params.yaml").write_text("dataset: dev\ntrain:\n  lr: 0.01\n  epochs: 5\n")
    git(report_project, "commit", "-q", "-am", "main ran on the dev data")
    git(report_project, "switch", "-q", "experiment/wider")
    (report_project / "params.yaml").write_text("dataset: full\ntrain:\n  lr: 0.02\n  epochs: 5\n")
    result = run_alops("report", "--target", "main", cwd=report_project)
    assert result.returncode == 0, result.stderr
    text = (report_project / "report.md").read_text()
    assert "No baseline on the full dataset" in text and "on the dev dataset (none on the full dataset)" in text
    assert f"no champion model `{report_project.name}` trained on the full dataset" in text
    assert "committed on `main` come from the dev dataset" in text
    assert "0.99" not in text and "| `accuracy` | 0.85 | – | – |" in text
    assert "### Params that changed (against the params committed on `main`: no run to compare)" in text
    assert "| `train.lr` | `0.02` | `0.01` |" in text and "| `dataset` | `full` | `dev` |" in text


def test_in_a_clone_without_the_target_branch_the_report_fetches_it(report_project, tmp_path):
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(report_project), str(origin))
    clone = tmp_path / "ci-clone"
    git(tmp_path, "clone", "-q", "--single-branch", "--branch", "experiment/wider", f"file://{origin}", str(clone))
    assert "origin/main" not in git(clone, "branch", "-r")
    env = clean_env(GITLAB_CI="true", CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="experiment/wider",
                    CI_DEFAULT_BRANCH="main", CI_COMMIT_SHA=git(clone, "rev-parse", "HEAD"))
    result = run_alops("report", cwd=clone, env=env)
    assert result.returncode == 0, result.stderr
    assert "| `accuracy` | 0.85 | 0.8 |" in (clone / "report.md").read_text()


def test_the_primary_metric_leads_the_report_with_a_verdict(report_project):
    (report_project / "alops.yaml").write_text("metric: {name: loss, direction: min, min_gain: 0.2}\n")
    result = run_alops("report", "--target", "main", cwd=report_project)
    assert result.returncode == 0, result.stderr
    text = (report_project / "report.md").read_text()
    assert "**`loss`: 0.4** vs 0.5 (-0.1 (-20.0%)): not better by the minimum gain (minimum gain 0.2)." in text
    table = text[text.index("| metric |"):].splitlines()
    assert table[2].startswith("| `loss` |") and table[3].startswith("| `accuracy` |")
    (report_project / "alops.yaml").write_text("metric: f1\n")
    unknown = run_alops("report", "--target", "main", cwd=report_project)
    assert unknown.returncode == 2 and "'f1' is not among the metrics" in unknown.stderr and "accuracy, loss" in unknown.stderr


def test_a_tracking_outage_does_not_fail_the_report(report_project):
    """The run was buffered during the outage; the report of the same job falls back to committed metrics."""
    env = clean_env(MLFLOW_TRACKING_URI="http://127.0.0.1:9", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                    MLFLOW_HTTP_REQUEST_TIMEOUT="2")
    result = run_alops("report", "--target", "main", cwd=report_project, env=env)
    assert result.returncode == 0, result.stderr
    assert "| `accuracy` | 0.85 | 0.8 |" in (report_project / "report.md").read_text()


CACHED_YAML_PIPELINE = """stages:
  evaluate:
    cmd: python evaluate.py
    deps: [evaluate.py]
    params: [dataset, quality]
    metrics:
      - eval/metrics.yaml
"""
EVALUATE = "import yaml\np = yaml.safe_load(open('params.yaml'))\nimport os\nos.makedirs('eval', exist_ok=True)\n" \
           "open('eval/metrics.yaml', 'w').write(f'scores:\\n  acc: {p[\"quality\"]}\\n  loss//val: 0.5\\n')\n"


def test_report_reads_yaml_metrics_that_dvc_caches_in_a_clone_without_the_target(repo, tmp_path):
    """main's metrics are a nested YAML file cached by DVC (not in git); the experiment's CI clone has only its
    own branch and an empty DVC cache: the baseline comes through DVC's API from the remote."""
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "store", str(tmp_path / "dvc-store"))
    (repo / "dvc.yaml").write_text(CACHED_YAML_PIPELINE)
    (repo / "evaluate.py").write_text(EVALUATE)
    (repo / "params.yaml").write_text("dataset: full\nquality: 0.8\n")
    dvc(repo, "repro", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main trained")
    git(repo, "switch", "-q", "-c", "experiment/better")
    (repo / "params.yaml").write_text("dataset: full\nquality: 0.85\n")
    dvc(repo, "repro", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "better")
    dvc(repo, "push", "-q", "--all-branches")
    assert "eval/metrics.yaml" not in git(repo, "ls-files")  # cached by DVC, not in git
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(origin))
    git(origin, "symbolic-ref", "HEAD", "refs/heads/main")  # the forge's default branch
    clone = tmp_path / "ci-clone"
    git(tmp_path, "clone", "-q", "--single-branch", "-b", "experiment/better", str(origin), str(clone))
    dvc(clone, "pull", "-q")  # the job's own outputs; main's are not in this cache
    result = run_alops("report", "--target", "main", cwd=clone)
    assert result.returncode == 0, result.stderr
    text = (clone / "report.md").read_text()
    assert "| `scores.acc` | 0.85 | 0.8 | +0.05 (+6.2%) |" in text
    assert "`scores.loss/val`" in text  # one normaliser with tracking: `//` is not a name MLflow takes


def test_dev_fidelity_statistics_are_collapsed_out_of_the_metrics_table(report_project):
    (report_project / "metrics").mkdir()
    (report_project / "metrics/dev_fidelity.json").write_text(json.dumps(
        {"seed": 0, "dev_rows": 60, "max_abs_deviation_pp": 0.4, "ks": {"width": {"statistic": 0.02}}}))
    (report_project / "dvc.yaml").write_text(DVC_YAML + "metrics:\n  - metrics/dev_fidelity.json\n")
    result = run_alops("report", "--target", "main", cwd=report_project)
    assert result.returncode == 0, result.stderr
    text = (report_project / "report.md").read_text()
    table = text[text.index("| metric |"):].split("\n\n")[0]
    assert "`accuracy`" in table and "dev_rows" not in table and "seed" not in table
    details = text[text.index("<details><summary>Dev dataset fidelity (4 statistics)</summary>"):]
    assert "| `dev_rows` | 60 |" in details and "| `ks.width.statistic` | 0.02 |" in details


DVCLIVE_PLOTS = """stages:
  train:
    cmd: python train.py
    metrics:
      - live/metrics.json:
          cache: false
    outs:
      - live/plots:
          cache: false
      - eval:
          cache: false
plots:
  - live/plots/metrics:
      x: step
  - ROC:
      template: simple
      x: fpr
      y:
        eval/roc.json: tpr
  - Confusion-Matrix:
      template: confusion
      x: actual
      y:
        eval/confusion.json: predicted
"""


def test_plots_defined_by_name_are_drawn_and_shown_collapsed(repo, tmp_path):
    """dvclive's definitions: a folder of TSV series, a named ROC and a confusion matrix; uploaded on GitLab."""
    dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(DVCLIVE_PLOTS)
    (repo / "live/plots/metrics").mkdir(parents=True)
    (repo / "live/plots/metrics/acc.tsv").write_text("step\tacc\n0\t0.5\n1\t0.7\n2\t0.8\n")
    (repo / "live/metrics.json").write_text('{"acc": 0.8}')
    (repo / "eval").mkdir()
    (repo / "eval/roc.json").write_text(json.dumps({"roc": [{"fpr": 0, "tpr": 0}, {"fpr": 0.2, "tpr": 0.8},
                                                            {"fpr": 1, "tpr": 1}]}))
    (repo / "eval/confusion.json").write_text(json.dumps([{"actual": "a", "predicted": "a"}, {"actual": "a", "predicted": "b"},
                                                          {"actual": "b", "predicted": "b"}]))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a dvclive project")
    git(repo, "switch", "-q", "-c", "experiment/plots")
    with ForgeServer(CANARY) as server:
        env = gitlab_env(server, repo, CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="experiment/plots")
        result = run_alops("report", "--post", cwd=repo, env=env)
        assert result.returncode == 0, result.stderr
        body = server.state.comments[7][0]["body"]
        assert len(server.state.uploads) == 3
    for name in ("plot-live-plots-metrics.png", "plot-ROC.png", "plot-Confusion-Matrix.png"):
        assert (repo / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plots = body[body.index("<details><summary>Plots (3)</summary>"):]
    assert plots.count("](/uploads/") == 3
    for name in ("plot-live-plots-metrics", "plot-ROC", "plot-Confusion-Matrix"):  # each picture by its own name
        assert re.search(rf"!\[{name}\]\(/uploads/\d+/{name}\.png\)", plots), plots
    assert "![plot-ROC.png](plot-ROC.png)" in (repo / "report.md").read_text()  # the local report: files beside it
