"""Release branches deploy: the digits example's model served by MLflow's scoring server behind `alops serve`,
blue/green through `alops deploy`, prediction capture into `alops pool add`, rollback; the command target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import clean_env, dvc, free_port, git, run_alops
from test_forge import CANARY
from test_release import champion, release_project, tracked_candidate  # noqa: F401 - fixture
from test_templates_github import CALLER, act, ran
from test_templates_gitlab import gitlab_ci_local, use_component

from alops.forge.stand_in import ForgeServer

TOKEN = "serve-token-0123456789"


@pytest.fixture
def digits_release(tmp_path: Path) -> Path:
    """The digits example with its data, on a release branch (as examples/README.md sets it up)."""
    project = tmp_path / "digits"
    made = run_alops("new", str(project), "--forge", "gitlab", "--example", "digits", "--name", "digits", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    git(project, "config", "user.email", "dev@example.com")
    git(project, "config", "user.name", "Dev")
    subprocess.run([sys.executable, "scripts/prepare_digits.py", "data/full", "--unlabeled", "0.6", "--oracle",
                    str(tmp_path / "oracle.csv")], cwd=project, check=True, capture_output=True)
    dvc(project, "add", "-q", "data/full")
    assert run_alops("data", "make-dev", "--fraction", "0.1", cwd=project).returncode == 0
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    git(project, "switch", "-q", "-c", "release/1.0")
    return project


def start_serve(project: Path, model_uri: str, env: dict, port: int) -> subprocess.Popen:
    log = open(project.parent / "serve.log", "w")
    process = subprocess.Popen([str(Path(sys.executable).parent / "alops"), "serve", model_uri, "--port", str(port),
                                "--log-dir", "predictions", "--rotate-mb", "0.05"],
                               cwd=project, env={**env, "ALOPS_SERVE_TOKEN": TOKEN}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, (project.parent / "serve.log").read_text()
        try:
            if requests.get(f"http://127.0.0.1:{port}/alops/status", timeout=2).ok:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.5)
    process.kill()
    raise AssertionError("alops serve did not come up")


def serving_version(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/alops/status", timeout=10).json()["model_version"]


def logged_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for log in sorted(folder.glob("predictions*.jsonl")) for line in log.read_text().splitlines()]


def test_release_deploys_blue_green_captures_feeds_the_pool_and_rolls_back(digits_release, mlflow_server):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    project, model = digits_release, f"digits-{uuid.uuid4().hex[:8]}"
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    serve_env = {**env, "ALOPS_SERVE_TOKEN": TOKEN}
    trained = run_alops("run", "--allow-cpu", "--set", "train.epochs=4", cwd=project, env=env)
    assert trained.returncode == 0, trained.stderr
    staged = run_alops("release", "--challenger", "--model", model, cwd=project, env=env)
    assert staged.returncode == 0, staged.stderr
    assert "is the challenger" in staged.stdout
    client = MlflowClient(mlflow_server)
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(model, "champion")  # nothing is champion before its deploy

    # started before any champion exists, the server waits for the first deploy
    port = free_port()
    server = start_serve(project, f"models:/{model}@champion", env, port)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        assert requests.post(f"{endpoint}/invocations", json={"inputs": []}, timeout=10).status_code == 503
        first = run_alops("deploy", "--target", "serve", "--endpoint", endpoint, "--model", model, cwd=project, env=serve_env)
        assert first.returncode == 0, first.stderr
        assert "version 1 is the champion" in first.stdout and "smoke accuracy" in first.stdout
        assert champion(mlflow_server, model) == "1" and serving_version(port) == "1"

        # the same registered version scores a pool of the example's inputs in `alops query select`
        smoke = json.loads((project / "smoke.json").read_text())
        np.save(project / "pool_inputs.npy", np.asarray(smoke["inputs"], dtype=np.float32))
        picked = run_alops("query", "select", "pool_inputs.npy", "--model", f"models:/{model}@champion", "-k", "5",
                           "--out", "picked.json", cwd=project, env=env)
        assert picked.returncode == 0, picked.stderr
        assert len(json.loads((project / "picked.json").read_text())["indices"]) == 5

        # a burst of 1,000 requests: every one answered, every one in the log (which rotated)
        answers = []

        def client_thread(rows):
            with requests.Session() as session:
                for row in rows:
                    answers.append(session.post(f"{endpoint}/invocations", json={"inputs": [row]}, timeout=60).status_code)

        inputs = [smoke["inputs"][i % len(smoke["inputs"])] for i in range(1000)]
        threads = [threading.Thread(target=client_thread, args=(inputs[i::16],)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers.count(200) == 1000
        # capture is off the request's path: the writer catches up after the answers (its counters say when)
        deadline = time.monotonic() + 60
        while requests.get(f"{endpoint}/alops/status", timeout=10).json()["capture"]["rows"] < 1000:
            assert time.monotonic() < deadline, "the capture writer did not catch up"
            time.sleep(0.2)
        rows = logged_rows(project / "predictions")
        assert len(rows) == 1000 and len({r["id"] for r in rows}) == 1000
        assert {r["model_version"] for r in rows} == {"1"}
        assert len(list((project / "predictions").glob("predictions-*.jsonl"))) >= 1  # rotated by size
        assert all(abs(sum(r["probabilities"]) - 1) < 1e-4 and r["prediction"] in range(10) for r in rows)

        # a candidate whose registry metric its model cannot reach at the endpoint: the smoke test fails,
        # the first model keeps serving and stays champion
        (project / "params.yaml").write_text((project / "params.yaml").read_text() + "\n")
        git(project, "commit", "-q", "-am", "claimed")
        run = client.create_run(client.get_experiment_by_name("digits/release").experiment_id,
                                tags={"git.commit": git(project, "rev-parse", "HEAD"), "git.branch": "release/1.0"})
        client.log_metric(run.info.run_id, "val_accuracy", 0.9999)
        client.log_artifacts(run.info.run_id, str(project / "model"), artifact_path="model")
        client.set_terminated(run.info.run_id)
        assert run_alops("release", "--challenger", "--model", model, cwd=project, env=env).returncode == 0
        failed = run_alops("deploy", "--target", "serve", "--endpoint", endpoint, "--model", model, cwd=project,
                           env=serve_env)
        assert failed.returncode == 1 and "smoke test failed" in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
        assert champion(mlflow_server, model) == "1" and serving_version(port) == "1"
        assert requests.post(f"{endpoint}/invocations", json={"inputs": smoke["inputs"][:2]}, timeout=60).ok

        # a better model deploys, then the rollback serves the first one again
        (project / "params.yaml").write_text((project / "params.yaml").read_text() + "\n")
        git(project, "commit", "-q", "-am", "retrained")
        assert run_alops("run", "--allow-cpu", "--set", "train.epochs=12", cwd=project, env=env).returncode == 0
        third = run_alops("release", "--challenger", "--model", model, cwd=project, env=env)
        assert third.returncode == 0, third.stdout + third.stderr
        deployed = run_alops("deploy", "--target", "serve", "--endpoint", endpoint, "--model", model, cwd=project,
                             env=serve_env)
        assert deployed.returncode == 0, deployed.stderr
        assert champion(mlflow_server, model) == "3" and serving_version(port) == "3"
        back = run_alops("rollback", "--model", model, "--target", "serve", "--endpoint", endpoint, cwd=project,
                         env=serve_env)
        assert back.returncode == 0, back.stderr
        assert champion(mlflow_server, model) == "1" and serving_version(port) == "1"
        rerun = run_alops("release", "--challenger", "--model", model, cwd=project, env=env)
        assert rerun.returncode == 1 and "was rolled back" in rerun.stderr
        assert TOKEN not in first.stdout + first.stderr + back.stdout + back.stderr

        # the captured log joins the pool of an al/ branch
        git(project, "switch", "-q", "-c", "al/production")
        before = len((project / "data/full/manifest.csv").read_text().splitlines())
        rotated = sorted((project / "predictions").glob("predictions-*.jsonl"))[0]
        added = run_alops("pool", "add", str(rotated), "--no-commit", cwd=project, env=env)
        assert added.returncode == 0, added.stderr
        count = len(rotated.read_text().splitlines())
        assert f"{count} samples added as unlabeled" in added.stdout
        assert len((project / "data/full/manifest.csv").read_text().splitlines()) == before + count
    finally:
        server.terminate()
        server.wait(30)


def test_serve_refuses_deploy_calls_without_the_token(digits_release, mlflow_server):
    project = digits_release
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    assert run_alops("run", "--allow-cpu", "--set", "train.epochs=1", cwd=project, env=env).returncode == 0
    port = free_port()
    server = start_serve(project, str(project / "model"), env, port)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        assert requests.put(f"{endpoint}/alops/challenger", json={"model_uri": "x"}, timeout=10).status_code == 403
        wrong = {"Authorization": "Bearer nope"}
        assert requests.post(f"{endpoint}/alops/promote", headers=wrong, timeout=10).status_code == 403
        assert requests.get(f"{endpoint}/nothing", timeout=10).status_code == 404
        answer = requests.post(f"{endpoint}/invocations", json={"inputs": "not a tensor"}, timeout=30)
        assert answer.status_code == 400  # the runtime's own refusal, passed on; nothing logged
        assert logged_rows(project / "predictions") == []
    finally:
        server.terminate()
        server.wait(30)
    assert server.returncode == 0 and not processes_mentioning(str(project / "model"))  # the runtime went with it


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line and "pytest" not in line:
            found.append(line)
    return found


def test_the_command_target_gets_the_model_through_the_environment_only(release_project, mlflow_server, tmp_path):
    model = f"cmd-{uuid.uuid4().hex[:8]}"
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.8}, tmp_path)
    assert run_alops("release", "--challenger", "--metric", "accuracy", "--model", model, cwd=release_project,
                     env=env).returncode == 0
    command = 'printf "%s|%s|%s" "$ALOPS_MODEL_URI" "$ALOPS_MODEL_VERSION" "$ALOPS_ENVIRONMENT" > deployed.txt'
    done = run_alops("deploy", "--target", "command", "--command", command, "--model", model, "--environment",
                     "$(touch pwned);prod", cwd=release_project, env=env)
    assert done.returncode == 0, done.stderr
    assert (release_project / "deployed.txt").read_text() == f"models:/{model}/1|1|$(touch pwned);prod"
    assert not (release_project / "pwned").exists()
    assert champion(mlflow_server, model) == "1"
    failing = run_alops("deploy", "--target", "command", "--command", "exit 3", "--model", model, "--version", "1",
                        cwd=release_project, env=env)
    assert failing.returncode == 1 and "exited 3" in failing.stderr


def passed(output: str, job: str) -> bool:
    return f"PASS  {job}" in output or f"PASS {job}" in output


def test_the_kserve_target_writes_a_manifest_kserve_accepts_and_applies_it_with_a_cluster_context(
        release_project, mlflow_server, tmp_path):
    """Without a cluster context the manifest is the artifact; with one, `kubectl apply` gets it (Kubernetes cannot
    run here: a stand-in kubectl records what it was given)."""
    import yaml
    from kserve_schema import validate_inference_service
    from mlflow.tracking import MlflowClient

    model = f"digits-{uuid.uuid4().hex[:8]}"
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.9}, tmp_path)
    assert run_alops("release", "--metric", "accuracy", "--challenger", "--model", model, cwd=release_project,
                     env=env).returncode == 0
    deployed = run_alops("deploy", "--target", "kserve", "--model", model, "--capture-url", "http://capture.ml:8081",
                         cwd=release_project, env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert "no kubectl cluster context here" in deployed.stdout
    manifest = yaml.safe_load((release_project / "inferenceservice.yaml").read_text())
    validate_inference_service(manifest)
    predictor = manifest["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == MlflowClient(mlflow_server).get_model_version_download_uri(model, "1")
    assert predictor["logger"] == {"mode": "all", "url": "http://capture.ml:8081"}
    assert champion(mlflow_server, model) == "1"

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(f"""#!/bin/sh
[ "$1" = config ] && {{ echo team-cluster; exit 0; }}
echo "$@" > {tmp_path}/kubectl-args && cat "$3" > {tmp_path}/applied.yaml
""")
    (bin_dir / "kubectl").chmod(0o755)
    tracked_candidate(release_project, mlflow_server, {"accuracy": 0.92}, tmp_path)
    assert run_alops("release", "--metric", "accuracy", "--challenger", "--model", model, cwd=release_project,
                     env=env).returncode == 0
    applied = run_alops("deploy", "--target", "kserve", "--model", model, cwd=release_project,
                        env={**env, "PATH": f"{bin_dir}:{env['PATH']}"})
    assert applied.returncode == 0, applied.stderr
    assert "kubectl applied inferenceservice.yaml" in applied.stdout
    assert (tmp_path / "kubectl-args").read_text().split() == ["apply", "-f", "inferenceservice.yaml"]
    sent = yaml.safe_load((tmp_path / "applied.yaml").read_text())
    validate_inference_service(sent)
    assert sent["metadata"]["labels"]["alops/model-version"] == "2" and champion(mlflow_server, model) == "2"


def test_gitlab_release_pipelines_deploy_refuse_a_failed_smoke_test_and_roll_back(ml_project, mlflow_server):
    """The component's release jobs under gitlab-ci-local with deploy-target serve, against a real `alops serve`."""
    from mlflow.tracking import MlflowClient

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    use_component(ml_project, f"      release-metric: val_accuracy\n      deploy-target: serve\n"
                              f"      deploy-url: {endpoint}\n")
    model = f"deploy-{uuid.uuid4().hex[:8]}"  # the project's name (from its remote): what the release registers
    git(ml_project, "remote", "set-url", "origin", f"https://gitlab.example.com/team/{model}.git")
    git(ml_project, "switch", "-q", "-c", "release/1.0")
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    variables = {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_REF_PROTECTED": "true", "MLFLOW_TRACKING_URI": mlflow_server,
                 "ALOPS_SERVE_TOKEN": TOKEN}
    forge = ForgeServer(CANARY).__enter__()
    variables.update(CI_SERVER_URL=forge.url, CI_PROJECT_ID="42", GITLAB_TOKEN=CANARY)
    server = start_serve(ml_project, f"models:/{model}@champion", env, port)
    try:
        first = gitlab_ci_local(ml_project, "alops-release-train", "alops-release", "alops-deploy", variables=variables, own="CI_SERVER_URL")
        output = first.stdout + first.stderr
        assert first.returncode == 0, output[-4000:]
        assert passed(output, "alops-deploy") and "is the challenger" in output and "smoke accuracy" in output, output[-6000:]
        assert TOKEN not in output and CANARY not in output
        assert [r["tag_name"] for r in forge.state.releases] == [f"{model}-v1"]
        assert champion(mlflow_server, model) == "1" and serving_version(port) == "1"

        # train/serve skew: the smoke set reaches the endpoint blank (a broken preprocessing step); the deploy job
        # fails, v1 keeps serving
        evaluate = (ml_project / "evaluate.py").read_text()
        (ml_project / "evaluate.py").write_text(evaluate.replace('"inputs": x.tolist()', '"inputs": (x * 0).tolist()'))
        git(ml_project, "commit", "-q", "-am", "skewed smoke inputs")
        skewed = gitlab_ci_local(ml_project, "alops-release-train", "alops-release", "alops-deploy", variables=variables, own="CI_SERVER_URL")
        output = skewed.stdout + skewed.stderr
        assert skewed.returncode != 0 and "smoke test failed" in output, output[-4000:]
        assert champion(mlflow_server, model) == "1" and serving_version(port) == "1"

        (ml_project / "evaluate.py").write_text(evaluate)
        (ml_project / "params.yaml").write_text((ml_project / "params.yaml").read_text() + "\n")
        git(ml_project, "commit", "-q", "-am", "fixed")
        third = gitlab_ci_local(ml_project, "alops-release-train", "alops-release", "alops-deploy", variables=variables, own="CI_SERVER_URL")
        output = third.stdout + third.stderr
        assert third.returncode == 0, output[-4000:]
        assert champion(mlflow_server, model) == "3" and serving_version(port) == "3"

        rollback = gitlab_ci_local(ml_project, "alops-rollback", variables=variables, own="CI_SERVER_URL")
        output = rollback.stdout + rollback.stderr
        assert rollback.returncode == 0, output[-4000:]
        assert "moved from version 3 back to 1" in output and f"release {model}-v3 marked rolled back" in output
        assert champion(mlflow_server, model) == "1" and serving_version(port) == "1"
        marked = {r["tag_name"]: r["name"] for r in forge.state.releases}
        assert marked[f"{model}-v3"].startswith("[rolled back] ") and not marked[f"{model}-v1"].startswith("[rolled")
        assert MlflowClient(mlflow_server).get_model_version(model, "3").tags["alops.rolled_back"] == "true"
        rerun = gitlab_ci_local(ml_project, "alops-release", variables=variables, own="CI_SERVER_URL")
        assert rerun.returncode != 0 and "was rolled back" in rerun.stdout + rerun.stderr
        assert champion(mlflow_server, model) == "1"
    finally:
        server.terminate()
        server.wait(30)
        forge.__exit__(None, None, None)


DEPLOY_CALLER = CALLER.replace("on: [push, pull_request]\n", """on:
  push:
  workflow_dispatch:
    inputs:
      task:
        type: choice
        options: [rollback]
        default: rollback
""") + """      release-metric: val_accuracy
      deploy-target: serve
      deploy-url: %s
      dispatch: ${{ inputs.task || 'labels-import' }}
"""


def test_github_release_pushes_deploy_and_a_dispatched_rollback_serves_the_earlier_version(ml_project, mlflow_server):
    """The reusable workflow under act: release -> deploy (environment, serve target, smoke test) twice, then a
    workflow_dispatch with dispatch: rollback. As in the release test, `github.ref_protected` reads true (act's
    github context has none)."""
    import shutil

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    model = f"deploy-{uuid.uuid4().hex[:8]}"
    (ml_project / ".github/workflows").mkdir(parents=True)
    text = (Path(__file__).parents[1] / ".github/workflows/alops.yml").read_text()
    (ml_project / ".github/workflows/alops.yml").write_text(text.replace("&& github.ref_protected", "&& true"))
    (ml_project / ".github/workflows/ci.yml").write_text(DEPLOY_CALLER % endpoint)
    git(ml_project, "add", "-A")
    git(ml_project, "commit", "-q", "-m", "use the alops workflow")
    git(ml_project, "remote", "add", "origin", f"https://github.com/team/{model}.git")  # the model's name
    git(ml_project, "switch", "-q", "-c", "release/1.0")
    secrets = {"GITHUB_TOKEN": "canary-token-7788", "mlflow-tracking-uri": mlflow_server, "serve-token": TOKEN}
    server = start_serve(ml_project, f"models:/{model}@champion", clean_env(MLFLOW_TRACKING_URI=mlflow_server), port)
    try:
        with ForgeServer("canary-token-7788") as forge:
            first = act(ml_project, "push", {"ref": "refs/heads/release/1.0"}, secrets=secrets,
                        env={"GITHUB_API_URL": forge.url})
            output = first.stdout + first.stderr
            assert first.returncode == 0, output[-4000:]
            assert ran(output, "release") and ran(output, "deploy") and "smoke accuracy" in output
            assert TOKEN not in output and "canary-token-7788" not in output
            assert champion(mlflow_server, model) == "1" and serving_version(port) == "1"

            (ml_project / "params.yaml").write_text((ml_project / "params.yaml").read_text() + "\n")
            git(ml_project, "commit", "-q", "-am", "a second release")
            shutil.rmtree(ml_project.parent / "artifacts")  # a new workflow run's artifacts
            second = act(ml_project, "push", {"ref": "refs/heads/release/1.0"}, secrets=secrets,
                         env={"GITHUB_API_URL": forge.url})
            assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
            assert champion(mlflow_server, model) == "2" and serving_version(port) == "2"

            back = act(ml_project, "workflow_dispatch", {"ref": "refs/heads/release/1.0", "inputs": {"task": "rollback"}},
                       secrets=secrets, env={"GITHUB_API_URL": forge.url})
            output = back.stdout + back.stderr
            assert back.returncode == 0, output[-4000:]
            assert ran(output, "rollback") and not ran(output, "release-train")
            assert "moved from version 2 back to 1" in output and f"release {model}-v2 marked rolled back" in output
            assert "canary-token-7788" not in output
            assert champion(mlflow_server, model) == "1" and serving_version(port) == "1"
            marked = {r["tag_name"]: r["name"] for r in forge.state.releases}
            assert marked[f"{model}-v2"].startswith("[rolled back] ") and not marked[f"{model}-v1"].startswith("[rolled")
    finally:
        server.terminate()
        server.wait(30)


MLSERVER = Path(os.environ.get("ALOPS_MLSERVER", Path(__file__).parents[1] / ".venv-mlserver/bin/mlserver"))


@pytest.mark.slow
def test_the_kserve_target_smoke_tests_over_v2_on_mlserver_as_kserve_serves_the_manifest(tmp_path):
    """MLServer with mlserver-mlflow (KServe's runtime for `modelFormat: mlflow`, `protocolVersion: v2`) serves the
    registered version under the InferenceService's name, as KServe would from the manifest's storageUri; the
    kserve target's smoke test scores the smoke set there over the V2 protocol, and the champion moves only when
    it passes."""
    import mlflow.pyfunc
    import mlflow.pytorch
    import torch
    import yaml
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from alops.core.errors import AlopsError
    from alops.release.deploy import deploy

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    images = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    saved = tmp_path / "model"
    mlflow.pytorch.save_model(net, str(saved), signature=infer_signature(images, net(torch.from_numpy(images)).detach().numpy()),
                              serialization_format="pickle")
    labels = mlflow.pyfunc.load_model(str(saved)).predict(images).argmax(axis=1).tolist()

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    run = client.create_run(client.create_experiment("digits"))
    client.log_metric(run.info.run_id, "accuracy", 1.0)
    client.create_registered_model("Digits_Model")
    client.create_model_version("Digits_Model", str(saved), run.info.run_id)
    client.set_registered_model_alias("Digits_Model", "challenger", "1")

    manifest = tmp_path / "inferenceservice.yaml"
    port = free_port()
    settings = tmp_path / "mlserver"
    (settings / "model").mkdir(parents=True)
    (settings / "settings.json").write_text(json.dumps({"http_port": port, "grpc_port": free_port(),
                                                        "metrics_port": free_port(), "parallel_workers": 0}))
    service = "digits-model"  # what the manifest names the InferenceService, below
    (settings / "model/model-settings.json").write_text(json.dumps({
        "name": service, "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": client.get_model_version_download_uri("Digits_Model", "1")}}))
    output = open(tmp_path / "mlserver.log", "w")
    server = subprocess.Popen([str(MLSERVER), "start", str(settings)], stdout=output, stderr=subprocess.STDOUT,
                              env=clean_env(), start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "mlserver.log").read_text()[-2000:]
            try:
                if requests.get(f"{endpoint}/v2/models/{service}/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        (tmp_path / "wrong.json").write_text(json.dumps({"inputs": images.tolist(), "labels": [(y + 1) % 10 for y in labels]}))
        with pytest.raises(AlopsError, match="smoke test failed: accuracy 0.0000"):
            deploy(uri, "Digits_Model", "kserve", "production", "accuracy", endpoint=endpoint,
                   smoke_path=str(tmp_path / "wrong.json"), manifest_path=str(manifest), echo=lambda _line: None)
        assert "champion" not in client.get_registered_model("Digits_Model").aliases
        (tmp_path / "smoke.json").write_text(json.dumps({"inputs": images.tolist(), "labels": labels}))
        done = deploy(uri, "Digits_Model", "kserve", "production", "accuracy", endpoint=endpoint,
                      smoke_path=str(tmp_path / "smoke.json"), manifest_path=str(manifest), echo=lambda _line: None)
        assert done.smoke_accuracy == 1.0 and done.version == "1"
        written = yaml.safe_load(manifest.read_text())
        assert written["metadata"]["name"] == service
        assert written["spec"]["predictor"]["model"]["modelFormat"] == {"name": "mlflow"}
        assert written["spec"]["predictor"]["model"]["protocolVersion"] == "v2"
        assert client.get_registered_model("Digits_Model").aliases["champion"] == 1
    finally:
        os.killpg(server.pid, 15)
        server.wait(60)
