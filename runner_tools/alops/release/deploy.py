"""Deploy the released candidate, blue/green: the version under the `challenger` alias goes to the target, is
smoke-tested there, and only then becomes the `champion`. A failed smoke test leaves the champion serving.

Targets (one input chooses):
- `serve`: an `alops serve` endpoint (alops.serve.server): the challenger is staged beside the live model, the smoke
  set is scored by it, then it is swapped in.
- `kserve`: a KServe InferenceService (`modelFormat: mlflow`, the version's storage URI from the registry),
  written to a file always and applied with `kubectl` when the runner has a cluster context.
- `command`: the team's own command, run with the model's URI, name, version and the environment in
  ALOPS_MODEL_URI, ALOPS_MODEL_NAME, ALOPS_MODEL_VERSION and ALOPS_ENVIRONMENT (values never become shell text).

The smoke set is a JSON file `{"inputs": [...], "labels": [...]}` (the scaffold's evaluate stage writes the
validation split as `smoke.json`): its accuracy at the endpoint must be within `tolerance` of the run's metric.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from dataclasses import dataclass

import requests

from alops.core.errors import AlopsError, ConfigError
from alops.core.files import atomic_write
from alops.core.project import TAG_PREVIOUS_CHAMPION, TAG_ROLLED_BACK
from alops.core.secrets import redact_url
from alops.release.registry import CHALLENGER, CHAMPION
from alops.release.smoke import load_smoke, smoke_accuracy
from alops.runs.tracking import mlflow_client

TARGETS = ("serve", "kserve", "command")
TAG_DEPLOYED = "alops.deployed_to"


@dataclass
class Deployment:
    model: str
    version: str
    previous: str | None
    target: str
    environment: str
    smoke_accuracy: float | None
    expected: float | None


def judge_smoke(accuracy: float, expected: float | None, tolerance: float) -> None:
    if expected is not None and not math.isnan(expected) and accuracy < expected - tolerance:
        raise AlopsError(f"smoke test failed: accuracy {accuracy:.4f} at the endpoint against the run's "
                         f"{expected:.4f} (tolerance {tolerance:g})")


class ServeTarget:
    """An `alops serve` endpoint's blue/green slot."""

    def __init__(self, endpoint: str, token: str):
        self.endpoint = endpoint.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            answer = requests.request(method, self.endpoint + path, headers=self.headers, timeout=600, **kwargs)
        except requests.RequestException as exc:
            raise AlopsError(f"{redact_url(self.endpoint)} did not answer ({type(exc).__name__}): is `alops serve` "
                             "running there?") from None
        if answer.status_code != 200:
            try:
                detail = str(answer.json().get("error", ""))
            except ValueError:
                detail = ""
            raise AlopsError(f"{redact_url(self.endpoint)}{path}: HTTP {answer.status_code} {detail}".rstrip())
        return answer.json()

    def deploy(self, uri: str, smoke, expected: float | None, tolerance: float) -> float | None:
        self._call("PUT", "/alops/challenger", json={"model_uri": uri})
        try:
            accuracy = None
            if smoke is not None:
                inputs, labels = smoke
                accuracy = smoke_accuracy(self.endpoint + "/alops/challenger/invocations", inputs, labels, self.headers)
                judge_smoke(accuracy, expected, tolerance)
        except AlopsError:
            self._call("DELETE", "/alops/challenger")
            raise
        self._call("POST", "/alops/promote")
        return accuracy


def _label(value: str) -> str:
    """A Kubernetes label value: 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63].strip("-._")


def kserve_manifest(name: str, storage_uri: str, version: str, environment: str, capture_url: str | None = None) -> dict:
    """A KServe InferenceService for an MLflow model (served by KServe's MLflow runtime, MLServer); with
    `capture_url`, its logger sends every request and response there (`alops capture`)."""
    service = re.sub(r"[^a-z0-9-]+", "-", name.lower())[:63].strip("-") or "model"
    predictor = {"model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "storageUri": storage_uri}}
    if capture_url:
        if not re.fullmatch(r"https?://[^\s\"'<>]+", capture_url):
            raise ConfigError("--capture-url: expected an http(s) URL of `alops capture`")
        predictor["logger"] = {"mode": "all", "url": capture_url}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": service, "labels": {"alops/model-version": _label(version),
                                                 "alops/environment": _label(environment)}},
        "spec": {"predictor": predictor},
    }


def _kubectl_context() -> bool:
    try:
        return subprocess.run(["kubectl", "config", "current-context"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def deploy_kserve(name: str, storage_uri: str, version: str, environment: str, manifest_path: str, echo,
                  capture_url: str | None = None) -> None:
    import yaml

    manifest = kserve_manifest(name, storage_uri, version, environment, capture_url)
    atomic_write(manifest_path, yaml.safe_dump(manifest, sort_keys=False))
    if not _kubectl_context():
        echo(f"deploy: wrote {manifest_path}; no kubectl cluster context here, so apply it where there is one")
        return
    applied = subprocess.run(["kubectl", "apply", "-f", manifest_path], capture_output=True, text=True)
    if applied.returncode != 0:
        raise AlopsError(f"kubectl apply -f {manifest_path} failed: "
                         f"{(applied.stderr.strip().splitlines() or ['no output'])[-1]}")
    echo(f"deploy: kubectl applied {manifest_path}")


def deploy_command(command: str, name: str, uri: str, version: str, environment: str) -> None:
    """The team's command (their own CI text); the model's values reach it only as environment variables."""
    env = {**os.environ, "ALOPS_MODEL_URI": uri, "ALOPS_MODEL_NAME": name, "ALOPS_MODEL_VERSION": version,
           "ALOPS_ENVIRONMENT": environment}
    done = subprocess.run(["/bin/sh", "-c", command], env=env)
    if done.returncode != 0:
        raise AlopsError(f"the deploy command exited {done.returncode}; the {CHAMPION} stays where it was")


def check_target(target: str, endpoint: str | None, token: str | None, command: str | None) -> None:
    """What the target needs is there (before anything moves)."""
    if target not in TARGETS:
        raise ConfigError(f"--target {target!r}: expected one of {', '.join(TARGETS)}")
    if target == "serve" and not endpoint:
        raise ConfigError("the serve target needs --endpoint (the `alops serve` address; the deploy-url input)")
    if target == "serve" and not token:
        raise ConfigError("the serve target needs ALOPS_SERVE_TOKEN, the token `alops serve` was started with "
                          "(a masked CI variable)")
    if target == "command" and not command:
        raise ConfigError("the command target needs --command (or ALOPS_DEPLOY_COMMAND; the deploy-command input)")


def recorded_version(path: str) -> tuple[str, str, str]:
    """(model, version, the gate's metric) of the release record `alops release` wrote."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        return str(record["model"]), str(record["version"]), str(record["metric"])
    except OSError as exc:
        raise ConfigError(f"release record {path}: {exc.strerror}; the deploy job needs the release job's "
                          "release.json") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"release record {path}: not a release record of `alops release`") from None


def _version(client, name: str, version: str | None):
    from mlflow.exceptions import MlflowException

    try:
        if version:
            return client.get_model_version(name, version)
        return client.get_model_version_by_alias(name, CHALLENGER)
    except MlflowException:
        what = f"version {version}" if version else f"a {CHALLENGER} alias (set by `alops release --challenger`)"
        raise ConfigError(f"model {name!r} has no {what}") from None


def deploy(uri: str, name: str, target: str, environment: str, metric: str | None, version: str | None = None,
           endpoint: str | None = None, token: str | None = None, smoke_path: str | None = None,
           tolerance: float = 0.01, command: str | None = None, manifest_path: str = "inferenceservice.yaml",
           echo=print, capture_url: str | None = None) -> Deployment:
    """Deploy the challenger (or `version`) to `target`, smoke-test it, then move the champion alias to it."""
    from mlflow.exceptions import MlflowException

    check_target(target, endpoint, token, command)
    smoke = load_smoke(smoke_path) if smoke_path else None
    try:
        client = mlflow_client(uri)
        candidate = _version(client, name, version)
        number = str(candidate.version)
        if candidate.tags.get(TAG_ROLLED_BACK) == "true":
            raise AlopsError(f"version {number} of {name!r} was rolled back; release a new candidate instead")
        run = client.get_run(candidate.run_id) if candidate.run_id else None
        expected = run.data.metrics.get(metric) if run is not None and metric else None
        if smoke is not None and expected is None:
            raise ConfigError(f"the smoke test holds the endpoint's accuracy to the run's metric, and version {number} "
                              f"has no {metric or 'metric'}: declare metric: in alops.yaml or pass --metric")
        try:
            current = str(client.get_model_version_by_alias(name, CHAMPION).version)
        except MlflowException:
            current = None
        model_uri = f"models:/{name}/{number}"
        accuracy = None
        if target == "serve":
            assert endpoint and token  # check_target refused a serve target without them
            accuracy = ServeTarget(endpoint, token).deploy(model_uri, smoke, expected, tolerance)
        else:
            if target == "kserve":
                deploy_kserve(name, client.get_model_version_download_uri(name, number), number, environment,
                              manifest_path, echo, capture_url)
            else:
                assert command  # check_target refused a command target without one
                deploy_command(command, name, model_uri, number, environment)
            if smoke is not None and endpoint:
                accuracy = smoke_accuracy(endpoint.rstrip("/") + "/invocations", *smoke)
                judge_smoke(accuracy, expected, tolerance)
        if current and current != number:
            client.set_model_version_tag(name, number, TAG_PREVIOUS_CHAMPION, current)
        client.set_model_version_tag(name, number, TAG_DEPLOYED, environment)
        client.set_registered_model_alias(name, CHAMPION, number)
        if not version or candidate.aliases and CHALLENGER in candidate.aliases:
            client.delete_registered_model_alias(name, CHALLENGER)
    except MlflowException as exc:
        raise AlopsError(f"model registry at {redact_url(uri)}: {str(exc).splitlines()[0]}") from None
    return Deployment(name, number, current if current != number else None, target, environment, accuracy, expected)
