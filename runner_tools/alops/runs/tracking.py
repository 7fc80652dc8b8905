"""MLflow tracking of pipeline runs: params, metrics (per step where a stage logs steps), tags, artifacts.

Everything is sent in batches. Outage policy: requests retry a few times, briefly; when the server stays
unreachable a run on a feature or experiment branch is buffered under `.alops/tracking-buffer/` and
`alops track sync` sends it later; a release branch fails closed. Each run carries a unique
`alops.run_key` tag, so a retried or synced run is never recorded twice.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field

from alops.core.errors import AlopsError, ConfigError
from alops.core.files import write_json
from alops.core.params import without_seeds
from alops.core.project import TAG_BRANCH, TAG_COMMIT, TAG_RUN_KEY, experiment_name
from alops.core.secrets import redact_url
from alops.runs.metrics import metric_name
from alops.runs.noise import mean

BUFFER_DIR = os.path.join(".alops", "tracking-buffer")
FAIL_CLOSED_KINDS = ("release",)
# MLflow's defaults retry for about four minutes against a dead server (keep it short and bounded) and draw a
# progress bar for every file downloaded (none in a job's log)
CLIENT_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


@dataclass
class RunRecord:
    """Everything one pipeline run sends to the tracking server."""

    experiment: str
    run_name: str
    params: dict[str, str]
    metrics: dict[str, float]
    steps: dict[str, list[tuple[int, float]]]
    tags: dict[str, str]
    artifacts: list[str] = field(default_factory=list)  # paths relative to artifact_root, logged under those paths
    artifact_root: str = ""
    run_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))


class TrackingUnavailable(AlopsError):
    """The tracking server could not be reached."""


def _reachable(uri: str) -> bool:
    """Whether an http(s) tracking server answers at all (other stores are local)."""
    if not uri.startswith(("http://", "https://")):
        return True
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    address = parts._replace(netloc=parts.netloc.rpartition("@")[2], path=parts.path.rstrip("/") + "/health")
    try:
        with urllib.request.urlopen(urllib.parse.urlunsplit(address), timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def mlflow_client(uri: str):
    """An MlflowClient with short, bounded retries and no progress bars; a tracking server that does not answer
    at all is TrackingUnavailable at once, named (MLflow's own retries would take half a minute, then blame
    whatever was asked for)."""
    if not _reachable(uri):
        raise TrackingUnavailable(f"tracking server {redact_url(uri)} does not answer: start it, or point "
                                  "MLFLOW_TRACKING_URI at one that runs")
    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def send(record: RunRecord, uri: str) -> str:
    """Create (or complete) the run on the server and log everything in batches; returns the run id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    try:
        client = mlflow_client(uri)
        experiment = client.get_experiment_by_name(record.experiment)
        if experiment:
            experiment_id = experiment.experiment_id
        else:
            local = None
            if uri.startswith("sqlite:///"):  # the default store: artifacts beside the database
                local = "file://" + os.path.join(os.path.dirname(uri[len("sqlite:///"):]), "mlartifacts")
            try:
                experiment_id = client.create_experiment(record.experiment, artifact_location=local)
            except MlflowException as exc:  # parallel jobs (candidates) create it at the same time
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment_id = client.get_experiment_by_name(record.experiment).experiment_id
        found = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_RUN_KEY}` = '{record.run_key}'", max_results=1)
        if found and found[0].info.status == "FINISHED":
            return found[0].info.run_id  # delivered before: never a second run
        run = found[0] if found else client.create_run(
            experiment_id, start_time=record.timestamp_ms, tags={**record.tags, TAG_RUN_KEY: record.run_key},
            run_name=record.run_name,
        )
        run_id = run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in sorted(record.params.items())]
        metrics = [Metric(metric_name(k), float(v), record.timestamp_ms, 0) for k, v in sorted(record.metrics.items())]
        for name, series in sorted(record.steps.items()):
            metrics += [Metric(metric_name(name), float(v), record.timestamp_ms, int(step)) for step, v in series]
        tags = [RunTag(k, str(v)) for k, v in sorted(record.tags.items())]
        for part in _chunks(params, 100):
            client.log_batch(run_id, params=part)
        for part in _chunks(metrics, 1000):
            client.log_batch(run_id, metrics=part)
        client.log_batch(run_id, tags=tags)
        for relative in record.artifacts:  # under their project paths: eval/roc.json and prc/roc.json both stay
            path, under = os.path.join(record.artifact_root, relative), os.path.dirname(relative) or None
            if os.path.isdir(path):
                client.log_artifacts(run_id, path, artifact_path=relative)
            elif os.path.exists(path):
                client.log_artifact(run_id, path, artifact_path=under)
        client.set_terminated(run_id)
        return run_id
    except (MlflowException, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        message = redact_url(f"tracking server {uri}: {detail}")  # MLflow's text repeats the URL
        if _reachable(uri):
            raise AlopsError(message) from None  # the server answered: a real error, not an outage
        raise TrackingUnavailable(message) from None


def buffer(record: RunRecord, root: str) -> str:
    """Keep the run (and copies of its artifacts) under `.alops/tracking-buffer/<run_key>/` for `alops track sync`."""
    base = os.path.join(root, BUFFER_DIR)
    os.makedirs(base, exist_ok=True)
    ignore = os.path.join(root, ".alops", ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w", encoding="utf-8") as handle:
            handle.write("*\n")
    staging = tempfile.mkdtemp(dir=base, prefix=".incoming-")
    copies = []
    for relative in record.artifacts:
        path = os.path.join(record.artifact_root, relative)
        if os.path.exists(path):
            target = os.path.join(staging, "artifacts", relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            (shutil.copytree if os.path.isdir(path) else shutil.copy2)(path, target)
            copies.append(relative)
    data = asdict(record)
    data["artifacts"], data["artifact_root"] = copies, "artifacts"  # relative to the buffered run's folder
    write_json(os.path.join(staging, "run.json"), data, indent=1)
    final = os.path.join(base, record.run_key)
    os.rename(staging, final)
    return final


def sync(root: str, uri: str) -> tuple[int, int]:
    """Send every buffered run; (sent, still buffered). A run already on the server is not sent again."""
    base = os.path.join(root, BUFFER_DIR)
    if not os.path.isdir(base):
        return 0, 0
    sent = 0
    entries = sorted(e for e in os.listdir(base) if not e.startswith("."))
    for entry in entries:
        folder = os.path.join(base, entry)
        try:
            with open(os.path.join(folder, "run.json"), encoding="utf-8") as handle:
                data = json.load(handle)
            RunRecord(**{**data, "artifacts": []})
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{os.path.relpath(folder, root)}/run.json is not a complete buffered run ({exc}); move "
                              "that folder out of the buffer and run `alops track sync` again") from None
        data["artifact_root"] = os.path.join(folder, data.get("artifact_root", ""))
        data["steps"] = {k: [tuple(p) for p in v] for k, v in data["steps"].items()}
        send(RunRecord(**data), uri)
        shutil.rmtree(folder)
        sent += 1
    return sent, len(entries) - sent


def track(record: RunRecord, root: str, kind: str, uri: str) -> tuple[str, str]:
    """Send the run, or apply the outage policy; returns ("sent", run id) or ("buffered", folder)."""
    try:
        return "sent", send(record, uri)
    except TrackingUnavailable as exc:
        if kind in FAIL_CLOSED_KINDS:
            raise AlopsError(f"{exc}; {kind} runs must be tracked, so the run fails (fix the server and re-run)") from None
        return "buffered", buffer(record, root)


def best_run(uri: str, experiment: str, metric: str, mode: str, commit: str | None) -> dict:
    """The candidate with the best mean of `metric` over its seeds (finished runs that share their params but
    their seeds): the id of its best run, the mean, the seed count and the params; an error when there is none."""
    from mlflow.exceptions import MlflowException

    if metric_name(metric) != metric:
        raise ConfigError(f"--metric {metric!r}: a metric name has letters, digits and _ - . / only")
    if commit and not re.fullmatch(r"[0-9a-fA-F]{4,40}", commit):
        raise ConfigError(f"--commit {commit!r} is not a commit hash")

    try:
        client = mlflow_client(uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise AlopsError(f"no tracking experiment {experiment!r}: run `alops run` on candidates first")
        query = "attributes.status = 'FINISHED'" + (f" and tags.`{TAG_COMMIT}` = '{commit}'" if commit else "")
        order = f"metrics.`{metric}` {'DESC' if mode == 'max' else 'ASC'}"
        runs = [r for r in client.search_runs([found.experiment_id], query, order_by=[order], max_results=100)
                if metric in r.data.metrics]
    except MlflowException as exc:
        raise TrackingUnavailable(f"tracking server {uri}: {str(exc).splitlines()[0]}") from None
    if not runs:
        raise AlopsError(f"no finished run in {experiment!r} has metric {metric!r}")
    groups: dict[tuple, list] = {}  # the runs of one candidate differ in their seeds only
    for run in runs:
        groups.setdefault(tuple(sorted(without_seeds(dict(run.data.params)).items())), []).append(run)
    sign = 1 if mode == "max" else -1
    group = max(groups.values(), key=lambda members: sign * mean([r.data.metrics[metric] for r in members]))
    best = max(group, key=lambda run: sign * run.data.metrics[metric])
    return {"run_id": best.info.run_id, "metric": metric, "value": mean([r.data.metrics[metric] for r in group]),
            "seeds": len(group), "params": without_seeds(dict(best.data.params))}


def runner_name(ci_job_url: str | None) -> str:
    return ci_job_url or f"local:{socket.gethostname()}"


def find_runs(uri: str, project: str, branch: str | None = None, commit: str | None = None, limit: int = 1,
              tags: dict[str, str] | None = None) -> list:
    """Finished runs of the project's experiments (`<project>/<kind>`), newest first, by branch, commit or tags."""
    from mlflow.exceptions import MlflowException

    wanted = {**(tags or {}), **({TAG_BRANCH: branch} if branch is not None else {}),
              **({TAG_COMMIT: commit} if commit is not None else {})}
    if any("'" in v or "\\" in v for v in (project, *wanted.values())):
        return []  # not a value MLflow's filter can quote; nothing tracked carries it
    clauses = ["attributes.status = 'FINISHED'"] + [f"tags.`{tag}` = '{value}'" for tag, value in wanted.items()]
    try:
        client = mlflow_client(uri)
        experiments = [e.experiment_id for e in client.search_experiments(filter_string=f"name LIKE '{experiment_name(project, '%')}'")]
        if not experiments:
            return []
        return list(client.search_runs(experiments, " and ".join(clauses), order_by=["attributes.start_time DESC"],
                                       max_results=limit))
    except (MlflowException, OSError) as exc:
        raise TrackingUnavailable(f"tracking server {uri}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def version_by_alias(client, model: str, alias: str):
    """The registered model version `alias` points to; None when the model or the alias is not there."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def aliased_run(uri: str, model: str, alias: str):
    """(run, version) of the registered model version `alias` points to; None when there is none."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(uri)
    try:
        version = version_by_alias(client, model, alias)
        return (client.get_run(version.run_id), str(version.version)) if version else None
    except MlflowException as exc:
        raise TrackingUnavailable(f"tracking server {redact_url(uri)}: {str(exc).splitlines()[0]}") from None


def download_files(uri: str, run_id: str, paths: list[str], folder: str) -> int:
    """The run's artifacts at `paths` (project paths) into `folder`; best effort: how many were there."""
    from mlflow.exceptions import MlflowException

    client, found = mlflow_client(uri), 0
    os.makedirs(folder, exist_ok=True)
    for path in paths:
        with tempfile.TemporaryDirectory(dir=folder) as staging:
            try:  # a file comes down by its base name, whatever folder it was logged under: moved to its path
                local = client.download_artifacts(run_id, path, staging)
            except (MlflowException, OSError):
                continue  # a run tracked before plots kept their paths, or a plot the run did not write
            destination = os.path.join(folder, path)
            os.makedirs(os.path.dirname(destination) or folder, exist_ok=True)
            shutil.move(local, destination)
            found += 1
    return found


def run_url(uri: str, run) -> str:
    """A link to the run in the MLflow UI, or where it is stored."""
    if uri.startswith(("http://", "https://")):
        return f"{redact_url(uri).rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    return f"run {run.info.run_id} in {redact_url(uri)}"
