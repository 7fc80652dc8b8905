"""`alops release` / `alops rollback` against a real MLflow tracking server and model registry."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from conftest import clean_env, dvc, git, run_alops
from test_forge import CANARY, DVC_YAML

from alops.forge.stand_in import ForgeServer


@pytest.fixture
def release_project(repo: Path) -> Path:
    dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("dataset: full\ntrain:\n  lr: 0.01\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    git(repo, "switch", "-q", "-c", "release/1.0")
    return repo


def tracked_candidate(project: Path, server: str, metrics: dict, tmp_path: Path, bare: bool = False,
                      params: dict | None = None, same_commit: bool = False, tags: dict | None = None) -> str:
    """A new commit on the release branch (`same_commit`: the last one) and its finished run (as `alops run`
    leaves it, with `params`), with a model folder (`bare=True`: a bare weights file, which no runtime can serve)."""
    from mlflow.tracking import MlflowClient

    if not same_commit:
        (project / "params.yaml").write_text(f"dataset: full\ntrain:\n  lr: {uuid.uuid4().int % 1000 / 1e4}\n")
        git(project, "commit", "-q", "-am", "candidate")
    commit = git(project, "rev-parse", "HEAD")
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("project/release")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("project/release")
    run = client.create_run(experiment_id, tags={"git.commit": commit, "git.branch": "al/round-3",
                                                 "alops.kind": "release", "alops.data_version": "dv-0123456789abcdef",
                                                 **(tags or {})})
    for name, value in metrics.items():
        client.log_metric(run.info.run_id, name, value)
    for name, value in (params or {}).items():
        client.log_param(run.info.run_id, name, value)
    folder = tmp_path / f"model-{uuid.uuid4().hex}" / "model"
    folder.mkdir(parents=True)
    if bare:
        (folder / "model.pt").write_text("weights")
        client.log_artifact(run.info.run_id, str(folder / "model.pt"))
    else:
        (folder / "MLmodel").write_text("flavors: {}\n")
        (folder / "weights.bin").write_text("weights")
        client.log_artifacts(run.info.run_id, str(folder), artifact_path="model")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def champion(server: str, model: str) -> str:
    from mlflow.tracking import MlflowClient

    return str(MlflowClient(server).get_model_version_by_alias(model, "champion").version)


def gitlab_release_env(project: Path, tracking: str, forge) -> dict:
    """A GitLab release-branch push pipeline with its token and the tracking server."""
    return clean_env(MLFLOW_TRACKING_URI=tracking, GITLAB_CI="true", CI_SERVER_URL=forge.url, CI_PROJECT_ID="42",
                     CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="release/1.0",
                     CI_COMMIT_SHA=git(project, "rev-parse", "HEAD"), GITLAB_TOKEN=CANARY)


def release(project: Path, server: str, model: str, *extra: str, env: dict | None = None):
    return run_alops("release", "--metric", "accuracy", "--model", model, *extra, cwd=project,
                     env=env or clean_env(MLFLOW_TRACKING_URI=server))


def test_release_gate_first_pass_fail_and_rollback(release_project, mlflow_server, tmp_path):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.80}, tmp_path)
    first = release(release_project, mlflow_server, model)
    assert first.returncode == 0, first.stderr
    assert "first release" in first.stdout
    assert champion(mlflow_server, model) == "1"
    record = json.loads((release_project / "release.json").read_text())
    assert record["version"] == "1" and record["previous_version"] is None
    assert record["data_version"] == "dv-0123456789abcdef"
    assert record["git_commit"] == git(release_project, "rev-parse", "HEAD")
    assert (record["branch"], record["trained_on"]) == ("release/1.0", "al/round-3")  # the release, and its run's branch

    run_id = tracked_candidate(release_project, mlflow_server, {"accuracy": 0.86}, tmp_path)
    better = release(release_project, mlflow_server, model, "--min-delta", "0.01")
    assert better.returncode == 0, better.stderr
    assert champion(mlflow_server, model) == "2"
    record = json.loads((release_project / "release.json").read_text())
    assert (record["version"], record["previous_version"], record["run_id"]) == ("2", "1", run_id)

    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.865}, tmp_path)
    too_small = release(release_project, mlflow_server, model, "--min-relative", "0.05")
    assert too_small.returncode == 1
    assert "release gate failed" in too_small.stderr and "minimum relative gain" in too_small.stderr
    assert champion(mlflow_server, model) == "2"

    back = run_alops("rollback", "--model", model, cwd=release_project, env=clean_env(MLFLOW_TRACKING_URI=mlflow_server))
    assert back.returncode == 0, back.stderr
    assert "from version 2 back to 1" in back.stdout
    assert champion(mlflow_server, model) == "1"


@pytest.mark.parametrize("metrics, reason", [({"accuracy": float("nan")}, "accuracy is NaN"),
                                             ({"loss": 0.1}, "accuracy is missing")])
def test_a_nan_or_missing_metric_fails_closed(release_project, mlflow_server, tmp_path, metrics, reason):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.8}, tmp_path)
    assert release(release_project, mlflow_server, model).returncode == 0
    tracked_candidate(release_project, mlflow_server, metrics, tmp_path)
    result = release(release_project, mlflow_server, model)
    assert result.returncode == 1
    assert reason in result.stderr and "fails closed" in result.stderr
    assert champion(mlflow_server, model) == "1"


def test_a_run_made_from_uncommitted_changes_is_released_only_from_a_commit_that_reproduces_it(
        release_project, mlflow_server, tmp_path):
    """The tutorial's order: params changed, `alops run`, then commit. The run is tagged with the parent commit and
    dirty; a release whose dvc.lock names other outputs refuses it in one line, and a commit that recorded the
    run's dvc.lock releases it with that commit as git_commit and the run's own commit beside it."""
    from alops.runs.pipeline import lock_digest

    model = f"digits-{uuid.uuid4().hex[:8]}"
    parent = git(release_project, "rev-parse", "HEAD")
    (release_project / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {cmd: python train.py}}\n")
    dirty = {"alops.dirty": "params.yaml", "alops.dvc_lock": lock_digest(str(release_project)),
             "alops.device": "cpu", "alops.cpu_fallback": "true"}
    (release_project / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {cmd: python other.py}}\n")
    git(release_project, "add", "dvc.lock")
    git(release_project, "commit", "-q", "-m", "another pipeline state")
    run_id = tracked_candidate(release_project, mlflow_server, {"accuracy": 0.8}, tmp_path, same_commit=True,
                               tags={**dirty, "git.commit": parent})
    refused = release(release_project, mlflow_server, model, "--run-id", run_id)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert (f"run {run_id} was made from uncommitted changes (params.yaml) at commit {parent[:12]}, and this commit's "
            "dvc.lock names other outputs, so no commit reproduces its model: commit the change, then `alops run`"
            in refused.stderr)
    assert not (release_project / "release.json").exists()

    (release_project / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {cmd: python train.py}}\n")
    git(release_project, "commit", "-q", "-am", "the change the run was made with, committed")
    released = release(release_project, mlflow_server, model, "--run-id", run_id)
    assert released.returncode == 0, released.stderr
    record = json.loads((release_project / "release.json").read_text())
    assert record["git_commit"] == git(release_project, "rev-parse", "HEAD") and record["run_commit"] == parent
    assert record["tree"].startswith(f"dirty at {parent[:12]} (params.yaml)")
    assert record["device"] == "cpu (CPU fallback: the profile asks for a GPU)"
    assert record["noise"] == "not measured: no champion to compare with"


def test_release_only_runs_on_release_branches(release_project, mlflow_server):
    git(release_project, "switch", "-q", "-c", "experiment/x")
    result = release(release_project, mlflow_server, "digits-x")
    assert result.returncode == 2
    assert "runs on release branches" in result.stderr


def test_rollback_without_a_previous_version_is_a_clear_error(release_project, mlflow_server, tmp_path):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.8}, tmp_path)
    assert release(release_project, mlflow_server, model).returncode == 0
    result = run_alops("rollback", "--model", model, cwd=release_project, env=clean_env(MLFLOW_TRACKING_URI=mlflow_server))
    assert result.returncode == 1
    assert "nothing to roll back to" in result.stderr
    assert champion(mlflow_server, model) == "1"


def test_published_release_is_one_gitlab_release_even_when_the_job_restarts(release_project, mlflow_server, tmp_path):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.8}, tmp_path)
    with ForgeServer(CANARY) as server:
        env = gitlab_release_env(release_project, mlflow_server, server)
        server.inject("POST", r"/releases$", 502, apply=True)
        for _attempt in range(2):  # the second run is a restarted job
            result = release(release_project, mlflow_server, model, "--publish", env=env)
            assert result.returncode == 0, result.stderr
            assert CANARY not in result.stdout + result.stderr
        assert "already the champion" in result.stdout
        assert [r["tag_name"] for r in server.state.releases] == [f"{model}-v1"]
        assert "dv-0123456789abcdef" in server.state.releases[0]["description"]
    assert champion(mlflow_server, model) == "1"


def test_published_release_on_github_is_updated_not_duplicated(release_project, mlflow_server, tmp_path):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.8}, tmp_path)
    with ForgeServer(CANARY) as server:
        env = clean_env(MLFLOW_TRACKING_URI=mlflow_server, GITHUB_ACTIONS="true", GITHUB_API_URL=server.url,
                        GITHUB_REPOSITORY="team/project", GITHUB_EVENT_NAME="push", GITHUB_REF="refs/heads/release/1.0",
                        GITHUB_SHA=git(release_project, "rev-parse", "HEAD"), GITHUB_TOKEN=CANARY)
        for _attempt in range(2):
            result = release(release_project, mlflow_server, model, "--publish", env=env)
            assert result.returncode == 0, result.stderr
            assert CANARY not in result.stdout + result.stderr
        assert [r["tag_name"] for r in server.state.releases] == [f"{model}-v1"]
        assert server.state.releases[0]["target_commitish"] == git(release_project, "rev-parse", "HEAD")
        assert len(server.calls("PATCH", r"/releases/\d+$")) == 1  # the restarted job updated it


def test_a_failed_publish_leaves_the_champion_where_it_was(release_project, mlflow_server, tmp_path):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.8}, tmp_path)
    with ForgeServer(CANARY) as server:
        env = gitlab_release_env(release_project, mlflow_server, server)
        server.inject("POST", r"/releases$", 403)
        failed = release(release_project, mlflow_server, model, "--publish", env=env)
        assert failed.returncode == 1
        assert "alias went back to no version" in failed.stderr and CANARY not in failed.stderr
        from mlflow.exceptions import MlflowException

        with pytest.raises(MlflowException):  # no champion: the registry is not ahead of the forge
            champion(mlflow_server, model)
        again = release(release_project, mlflow_server, model, "--publish", env=env)
        assert again.returncode == 0, again.stderr
        assert [r["tag_name"] for r in server.state.releases] == [f"{model}-v1"]
    assert champion(mlflow_server, model) == "1"


def test_the_gate_defaults_to_the_primary_metric_of_alops_yaml(release_project, mlflow_server, tmp_path):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    (release_project / "alops.yaml").write_text("metric: {name: val_loss, direction: min, min_gain: 0.05}\n")
    git(release_project, "add", "alops.yaml")
    tracked_candidate(release_project, mlflow_server, {"val_loss": 0.50}, tmp_path)
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    first = run_alops("release", "--model", model, cwd=release_project, env=env)
    assert first.returncode == 0, first.stderr
    tracked_candidate(release_project, mlflow_server, {"val_loss": 0.47}, tmp_path)  # better, by less than 0.05
    small = run_alops("release", "--model", model, cwd=release_project, env=env)
    assert small.returncode == 1 and "below the minimum gain 0.05" in small.stderr
    tracked_candidate(release_project, mlflow_server, {"val_accuracy": 0.9}, tmp_path)
    unknown = run_alops("release", "--model", model, cwd=release_project, env=env)
    assert unknown.returncode == 1 and "val_loss is missing" in unknown.stderr and "has: val_accuracy" in unknown.stderr
    assert champion(mlflow_server, model) == "1"


def test_without_a_metric_anywhere_the_release_says_where_to_declare_it(release_project, mlflow_server):
    result = run_alops("release", cwd=release_project, env=clean_env(MLFLOW_TRACKING_URI=mlflow_server))
    assert result.returncode == 2 and "declare the primary metric in alops.yaml" in result.stderr


def test_direction_min_run_id_and_artifact_and_the_rollback_tag(release_project, mlflow_server, tmp_path):
    """A loss gate (--direction min), a candidate named by --run-id, the model file named by --artifact; rollback
    tags the version it moved away from."""
    from mlflow.tracking import MlflowClient

    model = f"loss-{uuid.uuid4().hex[:8]}"
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    loss = ("--metric", "loss", "--direction", "min", "--model", model, "--artifact", "model")
    first = tracked_candidate(release_project, mlflow_server, {"loss": 0.50}, tmp_path)
    assert run_alops("release", *loss, "--run-id", first, cwd=release_project, env=env).returncode == 0
    worse = tracked_candidate(release_project, mlflow_server, {"loss": 0.60}, tmp_path)
    better = tracked_candidate(release_project, mlflow_server, {"loss": 0.40}, tmp_path)
    refused = run_alops("release", *loss, "--run-id", worse, cwd=release_project, env=env)  # not the latest run
    assert refused.returncode == 1 and "release gate failed" in refused.stderr
    passed = run_alops("release", *loss, "--run-id", better, cwd=release_project, env=env)
    assert passed.returncode == 0, passed.stderr
    assert json.loads((release_project / "release.json").read_text())["run_id"] == better
    assert champion(mlflow_server, model) == "2"
    best = tracked_candidate(release_project, mlflow_server, {"loss": 0.30}, tmp_path)
    missing = run_alops("release", *loss[:-1], "weights.bin", "--run-id", best, cwd=release_project, env=env)
    assert missing.returncode != 0 and "weights.bin" in missing.stderr  # the run logged no such file
    assert champion(mlflow_server, model) == "2"
    back = run_alops("rollback", "--model", model, cwd=release_project, env=env)
    assert back.returncode == 0, back.stderr
    left = MlflowClient(mlflow_server).get_model_version(model, "2")
    assert "alops.rolled_back" in left.tags


def test_a_bare_weights_file_is_refused_in_one_line_naming_the_fix(release_project, mlflow_server, tmp_path):
    model = f"bare-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.80}, tmp_path, bare=True)
    refused = release(release_project, mlflow_server, model, "--artifact", "model.pt")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "not an MLflow model" in refused.stderr and "mlflow.pytorch.save_model" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_rolled_back_version_is_never_promoted_again_by_a_release_re_run(release_project, mlflow_server, tmp_path):
    model = f"again-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.80}, tmp_path)
    assert release(release_project, mlflow_server, model).returncode == 0
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.90}, tmp_path)
    assert release(release_project, mlflow_server, model).returncode == 0
    assert champion(mlflow_server, model) == "2"
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    assert run_alops("rollback", "--model", model, cwd=release_project, env=env).returncode == 0
    rerun = release(release_project, mlflow_server, model)  # the same commit's job, re-run
    assert rerun.returncode == 1 and "was rolled back" in rerun.stderr
    assert champion(mlflow_server, model) == "1"


@pytest.mark.parametrize("forge_kind", ["gitlab", "github"])
def test_rollback_with_publish_marks_the_forge_release_of_the_version_that_left(release_project, mlflow_server,
                                                                                tmp_path, forge_kind):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    with ForgeServer(CANARY) as server:
        def forge_env():  # the pipeline of the branch's current commit
            if forge_kind == "gitlab":
                return gitlab_release_env(release_project, mlflow_server, server)
            return clean_env(MLFLOW_TRACKING_URI=mlflow_server, GITHUB_ACTIONS="true", GITHUB_API_URL=server.url,
                             GITHUB_REPOSITORY="team/project", GITHUB_EVENT_NAME="push",
                             GITHUB_REF="refs/heads/release/1.0", GITHUB_SHA=git(release_project, "rev-parse", "HEAD"),
                             GITHUB_TOKEN=CANARY)

        for accuracy in (0.8, 0.86):
            tracked_candidate(release_project, mlflow_server, {"accuracy": accuracy}, tmp_path)
            released = release(release_project, mlflow_server, model, "--publish", env=forge_env())
            assert released.returncode == 0, released.stderr
        env = forge_env()
        back = run_alops("rollback", "--model", model, "--publish", cwd=release_project, env=env)
        assert back.returncode == 0, back.stderr
        assert f"release {model}-v2 marked rolled back" in back.stdout and CANARY not in back.stdout + back.stderr
        releases = {r["tag_name"]: r for r in server.state.releases}
        body = "description" if forge_kind == "gitlab" else "body"
        v2, v1 = releases[f"{model}-v2"], releases[f"{model}-v1"]
        assert v2["name"].startswith("[rolled back] ") and "version 2 left champion, version 1 serves" in v2[body]
        assert "dv-0123456789abcdef" in v2[body]  # the provenance stays below the note
        assert not v1["name"].startswith("[rolled back]")
    assert champion(mlflow_server, model) == "1"


def test_rollback_with_publish_and_no_token_moves_nothing(release_project, mlflow_server, tmp_path):
    model = f"digits-{uuid.uuid4().hex[:8]}"
    for accuracy in (0.8, 0.86):
        tracked_candidate(release_project, mlflow_server, {"accuracy": accuracy}, tmp_path)
        assert release(release_project, mlflow_server, model).returncode == 0
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server, GITLAB_CI="true", CI_SERVER_URL="http://127.0.0.1:9",
                    CI_PROJECT_ID="42", CI_PIPELINE_SOURCE="web", CI_COMMIT_BRANCH="release/1.0",
                    CI_COMMIT_SHA=git(release_project, "rev-parse", "HEAD"))
    result = run_alops("rollback", "--model", model, "--publish", cwd=release_project, env=env)
    assert result.returncode == 2 and "GITLAB_TOKEN" in result.stderr, result.stderr
    assert champion(mlflow_server, model) == "2"


def test_beyond_noise_refuses_a_gain_within_sampling_noise_through_the_environment_the_templates_set(
        release_project, mlflow_server, tmp_path):
    """release-beyond-noise sets ALOPS_RELEASE_BEYOND_NOISE: 0.86 vs 0.80 on 200 samples each is within noise
    (the champion stays), 0.97 vs 0.80 is beyond it; without the input the same small gain passes."""
    model = f"digits-{uuid.uuid4().hex[:8]}"
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.80, "samples": 200}, tmp_path)
    assert release(release_project, mlflow_server, model).returncode == 0
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.86, "samples": 200}, tmp_path)
    strict = clean_env(MLFLOW_TRACKING_URI=mlflow_server, ALOPS_RELEASE_BEYOND_NOISE="true")
    held = release(release_project, mlflow_server, model, env=strict)
    assert held.returncode == 1 and "gate: sampling noise: the change's 95% interval is" in held.stdout
    assert "within noise, not beyond sampling noise" in held.stderr and champion(mlflow_server, model) == "1"
    lenient = release(release_project, mlflow_server, model,
                      env=clean_env(MLFLOW_TRACKING_URI=mlflow_server, ALOPS_RELEASE_BEYOND_NOISE="false"))
    assert lenient.returncode == 0 and champion(mlflow_server, model) == "2"
    assert "gate: passed, but the gain is within noise: the release notes say so" in lenient.stdout
    noted = json.loads((release_project / "release.json").read_text())["noise"]
    assert noted.startswith("within noise (95% interval of the change ")  # release.json and the forge release's notes
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.97, "samples": 200}, tmp_path)
    beyond = release(release_project, mlflow_server, model, env=strict)
    assert beyond.returncode == 0, beyond.stderr
    assert "samples): better" in beyond.stdout and champion(mlflow_server, model) == "3"


def seeded_candidate(project: Path, server: str, accuracies: list[float], tmp_path: Path) -> None:
    """A new commit and one run per seed (`alops run --seeds N` on the release branch)."""
    for seed, accuracy in enumerate(accuracies):
        tracked_candidate(project, server, {"accuracy": accuracy}, tmp_path, params={"train.seed": str(seed)},
                          same_commit=seed > 0)


def test_the_gate_judges_means_over_seeds_and_the_minimum_gain_against_their_interval(
        release_project, mlflow_server, tmp_path):
    """The champion's 3 seeds average 0.80, the candidate's 0.84: the gate compares the means, and with
    --beyond-noise a minimum gain of 0.03 fails (the interval reaches down to about +0.017), one of 0.01 passes."""
    model = f"digits-{uuid.uuid4().hex[:8]}"
    seeded_candidate(release_project, mlflow_server, [0.80, 0.81, 0.79], tmp_path)
    assert release(release_project, mlflow_server, model).returncode == 0
    seeded_candidate(release_project, mlflow_server, [0.84, 0.85, 0.83], tmp_path)
    held = release(release_project, mlflow_server, model, "--beyond-noise", "--min-delta", "0.03")
    assert held.returncode == 1, held.stderr
    assert "(means of 3 vs 3 seeds)" in held.stdout and "gate: seed noise: the change's 95% interval is" in held.stdout
    assert "(mean of 3 vs 3 seeds): better" in held.stdout
    assert re.search(r"the 95% interval of the gain reaches \+0\.01\d+, below the minimum gain 0\.03", held.stderr)
    assert champion(mlflow_server, model) == "1"
    passed = release(release_project, mlflow_server, model, "--beyond-noise", "--min-delta", "0.01")
    assert passed.returncode == 0, passed.stderr
    assert champion(mlflow_server, model) == "2"
