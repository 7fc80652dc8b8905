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
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import requests

from alops.core.errors import AlopsError, ConfigError
from alops.core.files import atomic_write
from alops.core.project import TAG_PREVIOUS_CHAMPION, TAG_ROLLED_BACK
from alops.core.secrets import redact_url
from alops.release.registry import CHALLENGER, CHAMPION
from alops.release.smoke import load_smoke, smoke_accuracy
from alops.runs.tracking import mlflow_client

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
    smoke_samples: int = 0  # how many samples the smoke test scored


def judge_smoke(accuracy: float, expected: float | None, tolerance: float, samples: int | None = None) -> None:
    scored = f" on {samples} samples" if samples else ""
    if expected is not None and not math.isnan(expected) and accuracy < expected - tolerance:
        raise AlopsError(f"smoke test failed: accuracy {accuracy:.4f}{scored} at the endpoint against the run's "
                         f"{expected:.4f} (tolerance {tolerance:g})")


@dataclass(frozen=True)
class Release:
    """The version a deploy step rolls out: its registry name, number, URI and download URI, and where to."""

    name: str
    version: str
    uri: str  # models:/name/N
    storage_uri: str  # where the registry keeps its files (what KServe downloads)
    environment: str


@dataclass(frozen=True)
class TargetOptions:
    """What the deploy step was given; each target takes what it needs and names what it lacks."""

    endpoint: str | None = None
    token: str | None = None
    command: str | None = None
    manifest_path: str = "inferenceservice.yaml"
    capture_url: str | None = None
    echo: Callable[[str], object] = print


class DeployTarget(ABC):
    """Where a version goes (mlflow's deployment clients are the anchor): `stage` puts it beside what serves,
    `smoke` scores the smoke set at the staged model (None when this target cannot be reached to score it),
    `promote` makes it the one that serves, `discard` takes a staged one away. `deploy` calls them in that order
    and moves the registry's `champion` only after `promote`; a failed smoke test discards and fails."""

    name = ""

    @classmethod
    @abstractmethod
    def from_options(cls, options: TargetOptions) -> DeployTarget:
        """The target, or ConfigError naming what it lacks (before anything moves)."""

    @abstractmethod
    def stage(self, release: Release) -> None:
        """Put the version where the target can serve it."""

    def smoke(self, inputs: list, labels: list) -> float | None:
        return None

    @abstractmethod
    def promote(self) -> None:
        """Make the staged version the one that serves."""

    @abstractmethod
    def discard(self) -> None:
        """Take a staged version away."""


class ServeTarget(DeployTarget):
    """An `alops serve` endpoint's blue/green slot: the version is staged beside the live model, scored there,
    then swapped in."""

    name = "serve"

    @classmethod
    def from_options(cls, options: TargetOptions) -> DeployTarget:
        if not options.endpoint:
            raise ConfigError("the serve target needs --endpoint (the `alops serve` address; the deploy-url input)")
        if not options.token:
            raise ConfigError("the serve target needs ALOPS_SERVE_TOKEN, the token `alops serve` was started with "
                              "(a masked CI variable)")
        return cls(options.endpoint, options.token)

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

    def stage(self, release: Release) -> None:
        self._call("PUT", "/alops/challenger", json={"model_uri": release.uri})

    def smoke(self, inputs: list, labels: list) -> float | None:
        return smoke_accuracy(self.endpoint + "/alops/challenger/invocations", inputs, labels, self.headers)

    def promote(self) -> None:
        self._call("POST", "/alops/promote")

    def discard(self) -> None:
        self._call("DELETE", "/alops/challenger")


class EndpointSmoke(DeployTarget):
    """A target whose rollout replaces what serves: smoke-tested at its `endpoint` when one is given."""

    def __init__(self, endpoint: str | None):
        self.endpoint = endpoint

    def smoke(self, inputs: list, labels: list) -> float | None:
        return smoke_accuracy(self.endpoint.rstrip("/") + "/invocations", inputs, labels) if self.endpoint else None

    def promote(self) -> None:
        return None  # `stage` rolled the version out already

    def discard(self) -> None:
        return None  # nothing was staged beside the live model


class KServeTarget(EndpointSmoke):
    """A KServe InferenceService manifest, written always and applied with kubectl where there is a context."""

    name = "kserve"

    @classmethod
    def from_options(cls, options: TargetOptions) -> DeployTarget:
        return cls(options.endpoint, options.manifest_path, options.echo, options.capture_url)

    def __init__(self, endpoint: str | None, manifest_path: str, echo, capture_url: str | None):
        super().__init__(endpoint)
        self.manifest_path, self.echo, self.capture_url = manifest_path, echo, capture_url
        self.service = ""  # the InferenceService's name, once staged

    def stage(self, release: Release) -> None:
        self.service = deploy_kserve(release.name, release.storage_uri, release.version, release.environment,
                                     self.manifest_path, self.echo, self.capture_url)

    def smoke(self, inputs: list, labels: list) -> float | None:
        """Over the V2 inference protocol the manifest declares: `<endpoint>/v2/models/<service name>/infer`."""
        if not self.endpoint:
            return None
        return smoke_accuracy(f"{self.endpoint.rstrip('/')}/v2/models/{self.service}/infer", inputs, labels, v2=True)


class CommandTarget(EndpointSmoke):
    """The team's own command, given the version in ALOPS_MODEL_* variables."""

    name = "command"

    @classmethod
    def from_options(cls, options: TargetOptions) -> DeployTarget:
        if not options.command:
            raise ConfigError("the command target needs --command (or ALOPS_DEPLOY_COMMAND; the deploy-command input)")
        return cls(options.endpoint, options.command)

    def __init__(self, endpoint: str | None, command: str):
        super().__init__(endpoint)
        self.command = command

    def stage(self, release: Release) -> None:
        deploy_command(self.command, release.name, release.uri, release.version, release.environment)


TARGETS: dict[str, type[DeployTarget]] = {target.name: target for target in (ServeTarget, KServeTarget, CommandTarget)}


def make_target(target: str, options: TargetOptions) -> DeployTarget:
    """The deploy target named `target` (one of TARGETS), or one line naming what it lacks."""
    if target not in TARGETS:
        raise ConfigError(f"--target {target!r}: expected one of {', '.join(TARGETS)}")
    return TARGETS[target].from_options(options)


def rollout(place: DeployTarget, release: Release, smoke: tuple[list, list] | None, expected: float | None,
            tolerance: float) -> float | None:
    """Stage, smoke-test (a failure discards the staged version and fails), promote; the smoke accuracy."""
    place.stage(release)
    accuracy = None
    try:
        if smoke is not None:
            accuracy = place.smoke(*smoke)
            if accuracy is not None:
                judge_smoke(accuracy, expected, tolerance, len(smoke[0]))
    except AlopsError:
        place.discard()
        raise
    place.promote()
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
                  capture_url: str | None = None) -> str:
    """Write (and with a cluster context apply) the InferenceService; its name, which KServe serves it under."""
    import yaml

    manifest = kserve_manifest(name, storage_uri, version, environment, capture_url)
    atomic_write(manifest_path, yaml.safe_dump(manifest, sort_keys=False))
    service = manifest["metadata"]["name"]
    if not _kubectl_context():
        echo(f"deploy: wrote {manifest_path}; no kubectl cluster context here, so apply it where there is one")
        return service
    applied = subprocess.run(["kubectl", "apply", "-f", manifest_path], capture_output=True, text=True)
    if applied.returncode != 0:
        raise AlopsError(f"kubectl apply -f {manifest_path} failed: "
                         f"{(applied.stderr.strip().splitlines() or ['no output'])[-1]}")
    echo(f"deploy: kubectl applied {manifest_path}")
    return service


def deploy_command(command: str, name: str, uri: str, version: str, environment: str) -> None:
    """The team's command (their own CI text); the model's values reach it only as environment variables."""
    env = {**os.environ, "ALOPS_MODEL_URI": uri, "ALOPS_MODEL_NAME": name, "ALOPS_MODEL_VERSION": version,
           "ALOPS_ENVIRONMENT": environment}
    done = subprocess.run(["/bin/sh", "-c", command], env=env)
    if done.returncode != 0:
        raise AlopsError(f"the deploy command exited {done.returncode}; the {CHAMPION} stays where it was")


def check_target(target: str, endpoint: str | None, token: str | None, command: str | None) -> None:
    """What the target needs is there (before anything moves)."""
    make_target(target, TargetOptions(endpoint, token, command))


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

    place = make_target(target, TargetOptions(endpoint, token, command, manifest_path, capture_url, echo))
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
        release = Release(name, number, f"models:/{name}/{number}",
                          client.get_model_version_download_uri(name, number),
                          environment)
        accuracy = rollout(place, release, smoke, expected, tolerance)
        if current and current != number:
            client.set_model_version_tag(name, number, TAG_PREVIOUS_CHAMPION, current)
        client.set_model_version_tag(name, number, TAG_DEPLOYED, environment)
        client.set_registered_model_alias(name, CHAMPION, number)
        if not version or candidate.aliases and CHALLENGER in candidate.aliases:
            client.delete_registered_model_alias(name, CHALLENGER)
    except MlflowException as exc:
        raise AlopsError(f"model registry at {redact_url(uri)}: {str(exc).splitlines()[0]}") from None
    return Deployment(name, number, current if current != number else None, target, environment, accuracy, expected,
                      len(smoke[0]) if smoke is not None and accuracy is not None else 0)
