"""The GitHub reusable workflow under act (`-P <label>=-self-hosted`): jobs per branch kind and what they do."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ALOPS, act_stand_in_args, annotate, clean_env, git

from alops.forge.stand_in import ForgeServer

KIT = Path(__file__).parents[1]
ACT = str(Path(ALOPS).with_name("act"))
CALLER = """name: ci
on: [push, pull_request]
permissions: {}
jobs:
  alops:
    uses: ./.github/workflows/alops.yml
    permissions:
      contents: write
      pull-requests: write
    secrets: inherit
    with:
      cpu-runs-on: '"cpu"'
      gpu-runs-on: '"gpu"'
      setup-python: false
      install: false
      allow-cpu: true
"""


@pytest.fixture
def workflow_project(ml_project: Path) -> Path:
    (ml_project / ".github/workflows").mkdir(parents=True)
    shutil.copy(KIT / ".github/workflows/alops.yml", ml_project / ".github/workflows/alops.yml")
    (ml_project / ".github/workflows/ci.yml").write_text(CALLER)
    git(ml_project, "add", "-A")
    git(ml_project, "commit", "-q", "-m", "use the alops workflow")
    git(ml_project, "remote", "add", "origin", "https://github.com/team/project.git")  # act's GITHUB_REPOSITORY
    return ml_project


def act(project: Path, event: str, payload: dict, secrets: dict | None = None, timeout: int = 600,
        env: dict | None = None, extra: list[str] = ()):
    event_path = project.parent / "event.json"
    event_path.write_text(json.dumps({"repository": {"default_branch": "main"}, **payload}))
    command = [ACT, event, "-W", ".github/workflows/ci.yml", "-P", "cpu=-self-hosted", "-P", "gpu=-self-hosted",
               "-e", str(event_path), *act_stand_in_args(project.parent / "artifacts")]
    for key, value in (secrets or {}).items():
        command += ["-s", f"{key}={value}"]
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    command += list(extra)
    result = subprocess.run(command, cwd=project, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    return result


def act_stopped(project: Path, event: str, payload: dict, line: str, **kwargs) -> str:
    """Run act where a step must stop the run with `line`; return the output. act 0.2.89 runs a host step in a
    pty and copies its output in a goroutine it does not wait for, so under the suite's load a step that fails
    within milliseconds can end the run before its last lines are shown (seen in CI on three of these tests): a
    failed run that lacks the line is run again, twice at most."""
    for _ in range(3):
        result = act(project, event, payload, **kwargs)
        output = result.stdout + result.stderr
        if result.returncode == 0 or line in output:
            break
    assert result.returncode != 0 and line in output, output[-4000:]
    return output


def ran(output: str, job: str) -> bool:
    return re.search(rf"/{re.escape(job)}\s*\] 🏁  Job succeeded", output) is not None


def test_remote_actions_are_pinned_by_sha():
    text = (KIT / ".github/workflows/alops.yml").read_text()
    uses = re.findall(r"^\s+(?:- )?uses: (\S+)", text, re.MULTILINE)
    assert uses and all(re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", u) for u in uses)


def test_feature_push_trains_on_the_dev_dataset_and_a_job_of_its_own_posts_the_report(workflow_project):
    git(workflow_project, "switch", "-q", "-c", "feature/faster")
    with ForgeServer("canary-token-0123") as server:
        server.state.merge_requests.append({"id": 1, "number": 3, "state": "open", "title": "faster", "body": "",
                                            "draft": False, "head": "feature/faster", "base": "main", "labels": []})
        result = act(workflow_project, "push", {"ref": "refs/heads/feature/faster"},
                     secrets={"GITHUB_TOKEN": "canary-token-0123"}, env={"GITHUB_API_URL": server.url})
        comments = server.state.comments.get(3, [])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "context") and ran(output, "train-dev") and ran(output, "report")
    assert ran(output, "tests") and "no tests/*.py: nothing to run" in output  # the project has no tests/
    assert "pull: dev dataset" in output and "repro: on cpu with the dev dataset" in output
    assert not ran(output, "train-full") and not ran(output, "release")
    # the training job wrote the report without a token; the report job (pull-requests: write, no checkout) posted it
    assert len(comments) == 1 and comments[0]["body"].startswith("<!-- alops:report -->")
    assert "canary-token-0123" not in output


def test_experiment_push_trains_on_full_data_and_tracks(workflow_project, mlflow_server):
    from mlflow.tracking import MlflowClient

    git(workflow_project, "switch", "-q", "-c", "experiment/act")
    result = act(workflow_project, "push", {"ref": "refs/heads/experiment/act"},
                 secrets={"mlflow-tracking-uri": mlflow_server})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "train-full") and not ran(output, "train-dev")
    assert "pull: full dataset" in output
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("project/experiment")  # named after GITHUB_REPOSITORY
    runs = client.search_runs([experiment.experiment_id], "tags.`git.branch` = 'experiment/act'")
    assert runs and runs[0].data.tags["alops.dataset"] == "full"
    # main trains on the dev data: the job trained main's last commit on the full data for the report (baseline)
    [baseline] = client.search_runs([client.get_experiment_by_name("project/main").experiment_id],
                                    f"tags.`git.commit` = '{git(workflow_project, 'rev-parse', 'main')}'")
    assert baseline.data.tags["alops.dataset"] == "full" and ran(output, "report")
    report = (workflow_project.parent / "artifacts/alops-report/report.md").read_text()
    assert "latest tracked run of `main` on the full dataset" in report and "No baseline" not in report


def test_an_al_branch_push_trains_on_its_data_version_and_reports(workflow_project, mlflow_server):
    from mlflow.tracking import MlflowClient

    git(workflow_project, "switch", "-q", "-c", "al/round-act")
    result = act(workflow_project, "push", {"ref": "refs/heads/al/round-act"},
                 secrets={"mlflow-tracking-uri": mlflow_server})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "train-al") and ran(output, "report") and not ran(output, "train-full")
    assert "pull: full dataset" in output and "report not posted" in output  # no token given: a notice
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("project/active-learning")
    runs = client.search_runs([experiment.experiment_id], "tags.`git.branch` = 'al/round-act'")
    assert runs and runs[0].data.tags["alops.labeled"].isdigit()


def test_promote_opens_the_pull_request_with_the_training_jobs_report(workflow_project, mlflow_server):
    """`promote: true`: after the experiment trained, a job of its own (pull-requests: write, no project
    requirements) opens the pull request to the default branch; its body is the training job's report."""
    caller = workflow_project / ".github/workflows/ci.yml"
    caller.write_text(caller.read_text() + "      promote: true\n")
    git(workflow_project, "commit", "-q", "-am", "promote experiments")
    git(workflow_project, "switch", "-q", "-c", "experiment/promoted")
    with ForgeServer("canary-token-1112") as server:
        result = act(workflow_project, "push", {"ref": "refs/heads/experiment/promoted"},
                     secrets={"GITHUB_TOKEN": "canary-token-1112", "mlflow-tracking-uri": mlflow_server},
                     env={"GITHUB_API_URL": server.url})
        created = [json.loads(call["body"]) for call in server.calls("POST", r"/pulls$")]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "train-full") and ran(output, "promote") and "canary-token-1112" not in output
    assert len(created) == 1 and created[0]["head"] == "experiment/promoted" and created[0]["base"] == "main"
    assert created[0]["body"].startswith("<!-- alops:report -->")


def push_release(project, branch: str, token: str, mlflow_server: str):
    """A push of `branch` under act with a forge token and a tracking server; (act's result, the releases
    published on the mock forge)."""
    with ForgeServer(token) as server:
        result = act(project, "push", {"ref": f"refs/heads/{branch}"},
                     secrets={"GITHUB_TOKEN": token, "mlflow-tracking-uri": mlflow_server},
                     env={"GITHUB_API_URL": server.url})
        return result, list(server.state.releases)


def test_a_release_push_trains_gates_registers_and_publishes(workflow_project, mlflow_server):
    """The `release` job as shipped, except one token: act's github context has no `ref_protected`, so the
    copied workflow reads `true` there (the static tests check the real condition, and that an unprotected
    release ref runs nothing). The token reaches only the step that publishes."""
    from mlflow.tracking import MlflowClient

    workflow = workflow_project / ".github/workflows/alops.yml"
    text = workflow.read_text()
    assert text.count("&& github.ref_protected") == 1
    workflow.write_text(text.replace("&& github.ref_protected", "&& true"))
    caller = workflow_project / ".github/workflows/ci.yml"
    caller.write_text(caller.read_text() + "      release-metric: val_accuracy\n")  # the documented input
    git(workflow_project, "commit", "-q", "-am", "act: a protected ref; the release metric")
    git(workflow_project, "switch", "-q", "-c", "release/1.0")
    result, releases = push_release(workflow_project, "release/1.0", "canary-token-4567", mlflow_server)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "release-train") and ran(output, "release") and not ran(output, "train-full")
    assert "canary-token-4567" not in output
    trained_in = {job for job, line in re.findall(r"\[[^\]]*/([\w-]+)\s*\]\s+\|\s*(.*)", output) if "repro:" in line}
    assert trained_in == {"release-train"}  # the job holding contents: write never ran the pipeline
    record = json.loads((workflow_project.parent / "artifacts/alops-release/release.json").read_text())  # kept
    assert record["branch"] == "release/1.0" and record["metric"] == "val_accuracy"
    assert MlflowClient(mlflow_server).get_model_version_by_alias(record["model"], "champion").version == record["version"]
    assert [r["tag_name"] for r in releases] == [record["git_tag"]]


def test_a_release_without_a_tracking_server_stops_before_training(workflow_project):
    """The release job finds the run on the tracking server; without one the first step says so."""
    workflow = workflow_project / ".github/workflows/alops.yml"
    workflow.write_text(workflow.read_text().replace("&& github.ref_protected", "&& true"))
    git(workflow_project, "commit", "-q", "-am", "act: a protected ref")
    git(workflow_project, "switch", "-q", "-c", "release/0.9")
    output = act_stopped(workflow_project, "push", {"ref": "refs/heads/release/0.9"}, "set the mlflow-tracking-uri secret")
    assert "repro:" not in output and not ran(output, "release")


@pytest.mark.parametrize("inputs, message", [
    ('      dispatch: "query; touch pwned"\n', "input dispatch must be labels-import, query, intake, dev-check, make-dev or rollback"),
    ('      query-strategy: "$(touch pwned)"\n', "input query-strategy must be margin, least-confidence, entropy or random"),
    ("      query-shards: 0\n", "input query-shards must be 1 to 200"),
])
def test_bad_labelling_inputs_stop_the_context_job_in_one_line(workflow_project, inputs, message):
    caller = workflow_project / ".github/workflows/ci.yml"
    caller.write_text(caller.read_text() + inputs)
    git(workflow_project, "commit", "-q", "-am", "a bad input")
    output = act_stopped(workflow_project, "push", {"ref": "refs/heads/main"}, message)
    assert not ran(output, "context") and not ran(output, "train-dev")
    assert not (workflow_project / "pwned").exists()


def test_a_dispatched_dev_check_compares_the_dev_dataset_with_the_full_data(workflow_project):
    caller = workflow_project / ".github/workflows/ci.yml"
    caller.write_text(CALLER.replace("on: [push, pull_request]", "on: workflow_dispatch") + "      dispatch: dev-check\n")
    git(workflow_project, "commit", "-q", "-am", "a manual dev check")
    result = act(workflow_project, "workflow_dispatch", {"ref": "refs/heads/main"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "dev-check") and "dev dataset is representative" in output
    assert not ran(output, "train-dev") and not ran(output, "labels-import") and not ran(output, "query-merge")


@pytest.mark.parametrize("head_repository,from_fork", [("someone/fork", "true"), ("team/project", "false")])
def test_pull_requests_from_a_fork_or_the_repository_only_run_the_checks(workflow_project, head_repository, from_fork):
    """A pull request runs `context` (and its params check), never training: the branch pipeline of the same
    push trains and reports. The context job tells a fork from the repository; a hostile title stays data."""
    git(workflow_project, "switch", "-q", "-c", "experiment/pr")
    payload = {"number": 5, "pull_request": {"number": 5, "title": "`touch pwned` $(touch pwned)",
                                             "head": {"ref": "experiment/pr", "repo": {"full_name": head_repository}},
                                             "base": {"ref": "main", "repo": {"full_name": "team/project"}}}}
    result = act(workflow_project, "pull_request", payload)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "context") and f"set-output:: from-fork={from_fork}" in output
    assert ran(output, "tests") == (from_fork == "false")  # a fork's code never runs, unless fork-tests is on
    assert not ran(output, "train-full") and not ran(output, "release") and not ran(output, "train-dev")
    assert not list(workflow_project.rglob("pwned"))


@pytest.mark.parametrize("branch", ["feature/x;touch${IFS}pwned", "feature/$(touch${IFS}pwned)"])
def test_hostile_branch_names_run_nothing(workflow_project, branch):
    git(workflow_project, "switch", "-q", "-c", branch)
    result = act(workflow_project, "push", {"ref": f"refs/heads/{branch}"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "train-dev")
    assert not list(workflow_project.rglob("pwned"))
    assert not list(Path.home().glob("pwned"))


COMPOSITE_CALLER = """name: composed
on: push
permissions: {}
jobs:
  train:
    runs-on: cpu
    permissions:
      contents: read
    outputs:
      kind: ${{ steps.alops.outputs.kind }}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - id: alops
        uses: ./templates/github/setup
        with:
          setup-python: "false"
          install: "false"
      - if: steps.alops.outputs.kind == 'feature'
        uses: ./templates/github/train
      - uses: actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02 # v4.6.2
        with:
          name: alops-report
          path: alops-report/
  report:
    needs: train
    runs-on: cpu
    permissions:
      pull-requests: write
    steps:
      - uses: alops-kit/alops/templates/github/setup@v0
        with:
          setup-python: "false"
          install: "false"
          requirements: ""
      - uses: actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093 # v4.3.0
        with:
          name: alops-report
          path: alops-report
      - uses: alops-kit/alops/templates/github/report@v0
        with:
          token: ${{ github.token }}
"""


def test_composite_actions_compose_a_workflow(workflow_project):
    shutil.copytree(KIT / "templates/github", workflow_project / "templates/github")
    (workflow_project / ".github/workflows/ci.yml").write_text(COMPOSITE_CALLER)
    git(workflow_project, "add", "-A")
    git(workflow_project, "commit", "-q", "-m", "compose the actions")
    git(workflow_project, "switch", "-q", "-c", "feature/composed")
    kit = workflow_project.parent / "kit"  # what `uses: <owner>/alops/templates/github/report@<sha>` fetches
    shutil.copytree(KIT / "templates/github", kit / "templates/github")
    with ForgeServer("canary-token-0123") as server:
        server.state.merge_requests.append({"id": 1, "number": 4, "state": "open", "title": "composed", "body": "",
                                            "draft": False, "head": "feature/composed", "base": "main", "labels": []})
        result = act(workflow_project, "push", {"ref": "refs/heads/feature/composed"},
                     secrets={"GITHUB_TOKEN": "canary-token-0123"}, env={"GITHUB_API_URL": server.url},
                     extra=["--local-repository", f"alops-kit/alops@v0={kit}"])  # the report action, not checked out
        comments = server.state.comments.get(4, [])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "set-output:: kind=feature" in output
    assert "repro: on cpu with the dev dataset" in output
    assert len(comments) == 1 and "<!-- alops:report -->" in comments[0]["body"]


COMPOSITE_RELEASE_CALLER = """name: composed release
on: push
permissions: {}
jobs:
  release-train:
    if: github.ref_protected && startsWith(github.ref, 'refs/heads/release/')
    runs-on: gpu
    permissions:
      contents: read
    env:
      MLFLOW_TRACKING_URI: ${{ secrets.mlflow-tracking-uri }}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - uses: ./templates/github/setup
        with:
          setup-python: "false"
          install: "false"
      - uses: ./templates/github/train
        with:
          allow-cpu: "true"
          report: "false"
  release:
    needs: release-train
    runs-on: cpu
    permissions:
      contents: write
    env:
      MLFLOW_TRACKING_URI: ${{ secrets.mlflow-tracking-uri }}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - uses: ./templates/github/setup
        with:
          setup-python: "false"
          install: "false"
          requirements: ""
      - uses: ./templates/github/release
        with:
          metric: val_accuracy
          token: ${{ github.token }}
"""


def test_the_composite_release_action_gates_registers_and_publishes(workflow_project, mlflow_server):
    """docs/templates.md's release job from the composite actions; `github.ref_protected` reads `true` (act's
    github context has no such field)."""
    from mlflow.tracking import MlflowClient

    shutil.copytree(KIT / "templates/github", workflow_project / "templates/github")
    (workflow_project / ".github/workflows/ci.yml").write_text(
        COMPOSITE_RELEASE_CALLER.replace("github.ref_protected &&", "true &&"))
    git(workflow_project, "add", "-A")
    git(workflow_project, "commit", "-q", "-m", "release with the composite actions")
    git(workflow_project, "switch", "-q", "-c", "release/2.0")
    result, releases = push_release(workflow_project, "release/2.0", "canary-token-8910", mlflow_server)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "release") and "canary-token-8910" not in output
    assert len(releases) == 1  # the release of the version the gate passed, which is now the champion
    model, version = releases[0]["tag_name"].rsplit("-v", 1)
    assert MlflowClient(mlflow_server).get_model_version_by_alias(model, "champion").version == version


LOOP_CALLER = CALLER.replace("on: [push, pull_request]\n", """on:
  push:
  schedule:
    - cron: "0 3 * * *"
  workflow_dispatch:
    inputs:
      task:
        type: choice
        options: [labels-import, query]
        default: labels-import
""") + """      query-k: 6
      label-studio-project: "%s"
      dispatch: ${{ inputs.task || 'labels-import' }}
"""


def test_a_labelling_round_runs_on_github_schedule_label_studio_dispatched_import_then_al_training(
        workflow_project, label_studio, mlflow_server, tmp_path):
    """The loop under act, job by job as GitHub runs it: the schedule scores the pool in two shards, merges them and
    puts the batch into Label Studio; labelers annotate there; a workflow_dispatch of the al/ branch fetches the
    annotations on a clone without the query's files, commits and pushes the data version; the push of that
    commit trains the branch on it and its report counts the new labels."""
    import csv

    import numpy as np
    from conftest import dvc
    from mlflow.tracking import MlflowClient

    url, token = label_studio
    project, title = workflow_project, f"github loop {tmp_path.name}"
    (project / ".github/workflows/ci.yml").write_text(LOOP_CALLER % title)
    with open(project / "data/full/manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    ids = [row["id"] for row in rows if not row["label"]]
    labeled_before = len(rows) - len(ids)
    probs = np.random.default_rng(9).dirichlet(np.ones(10), size=len(ids)).astype(np.float32)
    np.save(project / "pool_probs.npy", probs)
    (project / "pool_ids.txt").write_text("".join(f"{sample}\n" for sample in ids))
    dvc(project, "add", "-q", "pool_probs.npy", "pool_ids.txt")
    dvc(project, "push", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the pool scored by the current model")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "remote", "set-url", "--push", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    studio_secrets = {"label-studio-url": url, "label-studio-api-key": token}

    scheduled = act(project, "schedule", {"ref": "refs/heads/main", "schedule": "0 3 * * *"}, secrets=studio_secrets)
    output = scheduled.stdout + scheduled.stderr
    assert scheduled.returncode == 0, output[-4000:]
    assert ran(output, "query-merge") and len(re.findall(r"/query-\d+\s*\] 🏁  Job succeeded", output)) == 2
    assert not ran(output, "labels-import") and not ran(output, "train-dev")
    selection = json.loads((project.parent / "artifacts/alops-query/selection.json").read_text())
    top = np.sort(probs.astype(np.float64), axis=1)
    margin = top[:, -1] - top[:, -2]
    expected = sorted(ids[row] for row in np.lexsort((np.arange(len(ids)), margin))[:6])  # the default: margin
    assert sorted(selection["sample_ids"]) == expected  # the single-pass selection, through two shards
    assert token not in output

    tasks = annotate(label_studio, title, "3")  # the labelers' work
    assert sorted(task["data"]["sample_id"] for task in tasks) == expected

    git(project, "switch", "-q", "-c", "al/round-1")
    git(project, "push", "-q", "origin", "al/round-1")
    start = git(project, "rev-parse", "HEAD")
    dispatched = act(project, "workflow_dispatch", {"ref": "refs/heads/al/round-1"},
                     secrets={**studio_secrets, "GITHUB_TOKEN": "canary-token-4242"})
    output = dispatched.stdout + dispatched.stderr
    assert dispatched.returncode == 0, output[-4000:]
    assert ran(output, "labels-import") and not ran(output, "query-merge") and not ran(output, "train-al")
    assert "6 labels accepted, 6 samples changed" in output
    assert token not in output and "canary-token-4242" not in output

    reader = tmp_path / "reader"
    git(tmp_path, "clone", "-q", "-b", "al/round-1", str(origin), str(reader))
    assert git(reader, "log", "--format=%s", f"{start}..HEAD").startswith("Labels of batch ")
    dvc(reader, "pull", "-q", "data/full")
    with open(reader / "data/full/manifest.csv", newline="") as handle:
        labels = {row["id"]: row["label"] for row in csv.DictReader(handle)}
    assert [labels[sample] for sample in expected] == ["3"] * 6

    # the pushed commit's own pipeline (GitHub starts it when the push token is a PAT or an app's)
    git(reader, "remote", "set-url", "origin", "https://github.com/team/project.git")  # act's GITHUB_REPOSITORY
    trained = act(reader, "push", {"ref": "refs/heads/al/round-1"}, secrets={"mlflow-tracking-uri": mlflow_server})
    output = trained.stdout + trained.stderr
    assert trained.returncode == 0, output[-4000:]
    assert ran(output, "train-al") and ran(output, "report")
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("project/active-learning")
    runs = client.search_runs([experiment.experiment_id], "tags.`git.branch` = 'al/round-1'")
    assert runs and int(runs[0].data.tags["alops.labeled"]) == labeled_before + 6
    report = (tmp_path / "artifacts/alops-report/report.md").read_text()
    assert "### Active learning" in report and f"{labeled_before + 6}" in report

    # round two on top, dispatched on the al/ branch: the pool file predates the labels, so the selection skips
    # the six labeled samples and takes the next six; the import adds their labels to the first six
    git(reader, "remote", "set-url", "--push", "origin", str(origin))
    second = act(reader, "workflow_dispatch", {"ref": "refs/heads/al/round-1", "inputs": {"task": "query"}},
                 secrets=studio_secrets)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-4000:]
    assert ran(output, "query-merge") and not ran(output, "labels-import")
    assert "6 pool samples labeled since were skipped" in output
    ranked = [ids[row] for row in np.lexsort((np.arange(len(ids)), margin))]
    following = sorted([sample for sample in ranked if sample not in expected][:6])
    assert sorted(json.loads((tmp_path / "artifacts/alops-query/selection.json").read_text())["sample_ids"]) == following
    tasks = annotate(label_studio, title, "5", skip=set(expected))
    assert len(tasks) == 12 and sorted(t["data"]["sample_id"] for t in tasks if t["data"]["sample_id"] not in expected) == following
    imported = act(reader, "workflow_dispatch", {"ref": "refs/heads/al/round-1"}, secrets=studio_secrets)
    output = imported.stdout + imported.stderr
    assert imported.returncode == 0, output[-4000:]
    assert ran(output, "labels-import") and "6 samples changed" in output
    final = tmp_path / "final"
    git(tmp_path, "clone", "-q", "-b", "al/round-1", str(origin), str(final))
    dvc(final, "pull", "-q", "data/full")
    with open(final / "data/full/manifest.csv", newline="") as handle:
        labels = {row["id"]: row["label"] for row in csv.DictReader(handle)}
    assert [labels[sample] for sample in expected] == ["3"] * 6
    assert [labels[sample] for sample in following] == ["5"] * 6
    assert sum(1 for label in labels.values() if label) == labeled_before + 12
