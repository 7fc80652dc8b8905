"""Releases: gate the candidate against the `champion`, register it, move the alias, record provenance.

MLflow registry aliases carry the state (`champion`; the deprecated stages are not used). Each released
version records the version it replaced in its `alops.previous_champion` tag, which is what `rollback`
moves the alias back to. A missing or NaN metric fails the gate closed.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
from dataclasses import asdict, dataclass

from alops.core.errors import AlopsError, ConfigError
from alops.core.files import atomic_write
from alops.core.project import (
    TAG_BRANCH,
    TAG_COMMIT,
    TAG_CPU_FALLBACK,
    TAG_DATA_VERSION,
    TAG_DEVICE,
    TAG_DIRTY,
    TAG_LOCK,
    TAG_PREVIOUS_CHAMPION,
    TAG_ROLLED_BACK,
    device_of,
)
from alops.core.secrets import redact_url
from alops.release.registry import CHALLENGER, candidate_run
from alops.release.registry import CHAMPION as ALIAS
from alops.runs.noise import change, mean, seed_change
from alops.runs.pipeline import lock_digest
from alops.runs.tracking import mlflow_client, version_by_alias

PREVIOUS_TAG = TAG_PREVIOUS_CHAMPION
DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class Gate:
    """The rule a candidate must pass: `metric` better by at least `min_delta` (absolute) and `min_relative`."""

    metric: str
    direction: str = "max"
    min_delta: float = 0.0
    min_relative: float = 0.0
    beyond_noise: bool = False  # the gain's 95% interval (alops.runs.noise) must also clear 0 and min_delta


@dataclass
class Decision:
    passed: bool
    reason: str
    candidate: float
    champion: float | None


def judge(gate: Gate, candidate: float | None, champion: float | None, first_release: bool) -> Decision:
    """Whether `candidate` may replace the champion; missing or NaN values fail closed."""
    if candidate is None or math.isnan(candidate):
        what = "is NaN" if candidate is not None else "is missing"
        return Decision(False, f"the candidate's {gate.metric} {what}: the gate fails closed", float("nan"), champion)
    if first_release:
        return Decision(True, f"first release: no {ALIAS} yet, so there is nothing to compare with", candidate, None)
    if champion is None or math.isnan(champion):
        what = "is NaN" if champion is not None else "is missing"
        return Decision(False, f"the {ALIAS}'s {gate.metric} {what}: the gate fails closed", candidate, champion)
    gain = candidate - champion if gate.direction == "max" else champion - candidate
    relative = gain / abs(champion) if champion else (math.inf if gain > 0 else 0.0)
    summary = f"{gate.metric} {candidate:.6g} vs {ALIAS} {champion:.6g} (gain {gain:+.6g}, {relative:+.2%})"
    if gain < gate.min_delta:
        return Decision(False, f"{summary}: below the minimum gain {gate.min_delta:g}", candidate, champion)
    if relative < gate.min_relative:
        return Decision(False, f"{summary}: below the minimum relative gain {gate.min_relative:.2%}", candidate, champion)
    return Decision(True, summary, candidate, champion)


def judge_noise(gate: Gate, decision: Decision, noise) -> Decision:
    """A passed decision held against noise (`noise`: alops.runs.noise.Change over seeds or samples, or None): with
    the gate's `beyond_noise`, a gain within noise, one with nothing to judge it by, or one whose interval reaches
    below `min_delta`, fails."""
    if not (gate.beyond_noise and decision.passed and decision.champion is not None):
        return decision
    if noise is None:
        return Decision(False, f"{decision.reason}: no sample counts to judge noise by (log <prefix>_samples beside "
                               f"{gate.metric}, e.g. val_samples, on both runs)", decision.candidate, decision.champion)
    if noise.verdict != "better":
        return Decision(False, f"{decision.reason}: {noise.verdict}, not beyond {'seed' if noise.unit == 'seeds' else 'sampling'} noise (95% interval of the change "
                               f"{noise.low:+.4f} to {noise.high:+.4f})", decision.candidate, decision.champion)
    least = noise.low if gate.direction == "max" else -noise.high  # the smallest gain the interval allows
    if least < gate.min_delta:
        return Decision(False, f"{decision.reason}: the 95% interval of the gain reaches {least:+.4f}, below the minimum "
                               f"gain {gate.min_delta:g}", decision.candidate, decision.champion)
    return decision


def _paired(run, champion, gate: Gate):
    """(candidate, champion, alops.runs.noise.Change) as `alops rescore` logged them on the candidate's run: both models
    on the candidate's test set, for an accuracy gate; None when it scored no champion or another version."""
    from alops.release.rescore import RESCORED_METRICS, TAG_RESCORED, judges
    from alops.runs.noise import Change, verdict_of

    metrics = run.data.metrics
    if (champion is None or run.data.tags.get(TAG_RESCORED) != str(champion.version) or not judges(gate.metric)
            or gate.direction != "max" or not all(name in metrics for name in RESCORED_METRICS)):
        return None  # (the smoke set's accuracy: higher is better)
    now, before, low, high, samples = (metrics[name] for name in RESCORED_METRICS)
    return now, before, Change(low, high, (int(samples), int(samples)), verdict_of(low, high, "max"), "paired")


def _seed_values(uri: str, project: str, metric: str, run, champion_run) -> tuple[list[float], list[float]]:
    """The metric over the candidate's and the champion's seed runs (alops.runs.seeds: one each without seeds)."""
    from alops.runs.seeds import tracked_seeds

    candidate, champion = ([found[metric] for found in tracked_seeds(uri, project, side) if metric in found] if side else []
                           for side in (run, champion_run))
    return candidate, champion


@dataclass
class Provenance:
    """What was released, from what: the record written to a file and published as the release notes."""

    model: str
    version: str
    previous_version: str | None
    run_id: str
    metric: str
    value: float
    champion_value: float | None
    gate: str
    git_tag: str
    git_commit: str  # a commit whose code, params and data (its dvc.lock) reproduce the model
    branch: str  # the release branch
    trained_on: str  # the branch of the candidate run
    data_version: str
    tracking_uri: str
    released_at: str
    noise: str = "not measured"  # the gain against noise: better, within noise, worse (with its interval)
    device: str = "unknown"  # what trained the model: cuda, cpu, or a CPU fallback of a GPU profile
    run_commit: str = ""  # the commit the run was made at (git_commit's parent when it ran before a commit)
    tree: str = "unknown"  # clean, or the uncommitted changes the run was made with

    def markdown(self) -> str:
        rows = [(k, v) for k, v in asdict(self).items() if k != "tracking_uri" or not v.startswith("sqlite")]
        return "\n".join(["| | |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in rows]) + "\n"


def _reproducible(run, root: str) -> str:
    """The run's tree as the release records it; AlopsError for a run made from uncommitted changes that the
    released commit does not reproduce (its dvc.lock names other outputs)."""
    dirty = run.data.tags.get(TAG_DIRTY)
    if dirty is None:
        return "unknown (the run predates the record)"
    if dirty == "false":
        return "clean"
    lock = os.path.join(root, "dvc.lock")
    if os.path.isfile(lock) and run.data.tags.get(TAG_LOCK) == lock_digest(root):
        return f"dirty at {run.data.tags.get(TAG_COMMIT, '?')[:12]} ({dirty}); this commit's dvc.lock names its outputs"
    raise AlopsError(f"run {run.info.run_id} was made from uncommitted changes ({dirty}) at commit "
                     f"{run.data.tags.get(TAG_COMMIT, '?')[:12]}, and this commit's dvc.lock names other outputs, so "
                     "no commit reproduces its model: commit the change, then `alops run` (or pass --run-id of a "
                     "clean run)")


def _registered_version(client, model: str, run, artifact: str) -> str:
    """The model version of `run` (registered now, or found from an earlier attempt)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    existing = client.search_model_versions(f"name = '{model}' and run_id = '{run.info.run_id}'")
    if existing:
        return str(existing[0].version)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    if artifact not in names:
        raise AlopsError(f"run {run.info.run_id} has no artifact {artifact!r} (it has: {', '.join(sorted(names)) or 'none'}); "
                         "pass --artifact with the model folder the run logged")
    if f"{artifact}/MLmodel" not in {a.path for a in client.list_artifacts(run.info.run_id, artifact)}:
        raise ConfigError(f"run {run.info.run_id}'s artifact {artifact!r} is not an MLflow model (no MLmodel file), so no "
                          "serving runtime can load it: save the model with mlflow.pytorch.save_model(net, 'model') "
                          "(or mlflow.sklearn.save_model) as the dvc.yaml output (docs/deploy.md)")
    made = client.create_model_version(model, f"{run.info.artifact_uri.rstrip('/')}/{artifact}", run_id=run.info.run_id)
    return str(made.version)


def _refuse_rolled_back(client, model: str, run) -> None:
    """A version `alops rollback` took back is never promoted again, whichever job re-runs."""
    for version in client.search_model_versions(f"name = '{model}' and run_id = '{run.info.run_id}'"):
        if version.tags.get(TAG_ROLLED_BACK) == "true":
            raise AlopsError(f"version {version.version} of {model} (run {run.info.run_id}) was rolled back; the release "
                             "does not promote it again: push a new candidate commit")


def release(uri: str, root: str, project: str, context, gate: Gate, model: str, artifact: str,
            run_id: str | None = None, echo=print, alias: str = ALIAS) -> Provenance:
    """Gate the candidate run, register it and move `alias` (the champion, or the challenger a deploy step
    promotes); the provenance of what was released."""
    from mlflow.exceptions import MlflowException

    if gate.direction not in DIRECTIONS:
        raise ConfigError(f"--direction {gate.direction!r}: expected max or min")
    if context.kind != "release":
        raise ConfigError(f"alops release runs on release branches; {context.branch or context.tag!r} is {context.kind}")
    if not re.fullmatch(r"[\w.\-]+", model):
        raise ConfigError(f"--model {model!r}: a registered model name has letters, digits, _ . - only")
    try:
        client = mlflow_client(uri)
        run = candidate_run(client, uri, root, project, context.commit, run_id)
        _refuse_rolled_back(client, model, run)
        tree = _reproducible(run, root)
        champion = version_by_alias(client, model, ALIAS)
        champion_run = client.get_run(champion.run_id) if champion is not None and champion.run_id else None
        champion_metrics = champion_run.data.metrics if champion_run is not None else {}
        champion_value = champion_metrics.get(gate.metric)
        noise_verdict = "not measured: no champion to compare with" if champion is None else "not measured"
        if champion is not None and champion.run_id == run.info.run_id:
            echo(f"release: version {champion.version} of {model} is already the {ALIAS}")
            decision = Decision(True, "already released", run.data.metrics.get(gate.metric, float("nan")), champion_value)
        else:
            if gate.metric not in run.data.metrics:
                raise AlopsError(f"release gate failed: the candidate's {gate.metric} is missing: the gate fails "
                                 f"closed (run {run.info.run_id} has: {', '.join(sorted(run.data.metrics)) or 'no metrics'}; "
                                 "set metric.name in alops.yaml or pass --metric)")
            values = _seed_values(uri, project, gate.metric, run, champion_run)
            over_seeds = max(map(len, values)) > 1
            candidate_value, champion_value = (mean(v) if v else None for v in values) if over_seeds else (
                run.data.metrics.get(gate.metric), champion_value)
            paired = None if over_seeds else _paired(run, champion, gate)
            if paired is not None:
                echo(f"gate: the {ALIAS} (version {champion.version}) scored on this candidate's test set: "
                     f"{paired[1]:.6g} (its own run measured {champion_value:.6g})")
                candidate_value, champion_value = paired[0], paired[1]
            decision = judge(gate, candidate_value, champion_value, champion is None)
            echo(f"gate: {decision.reason}" + (f" (means of {len(values[0])} vs {len(values[1])} seeds)" if over_seeds else
                                               " (both on the candidate's test set)" if paired else ""))
            if not decision.passed or decision.champion is None:
                noise = None
            elif paired is not None:
                noise = paired[2]
            elif over_seeds:
                noise = seed_change(*values, gate.direction)
            else:
                noise = change(decision.candidate, decision.champion, run.data.metrics, champion_metrics, gate.metric,
                               gate.direction)
            if noise is not None:
                echo(f"gate: {'seed' if over_seeds else 'paired' if paired else 'sampling'} noise: the change's 95% interval is "
                     f"{noise.describe()}: {noise.verdict}")
            decision = judge_noise(gate, decision, noise)
            if noise is not None:
                noise_verdict = f"{noise.verdict} (95% interval of the change {noise.describe()})"
            if noise is not None and noise.verdict != "better" and decision.passed and decision.champion is not None:
                echo(f"gate: passed, but the gain is {noise.verdict}: the release notes say so (--beyond-noise, the "
                     "release-beyond-noise input, refuses such a gain)")
            if not decision.passed:
                raise AlopsError(f"release gate failed: {decision.reason}; the {ALIAS} stays version "
                                 f"{champion.version if champion else '(none)'}")
        version = _registered_version(client, model, run, artifact)
        previous = champion.version if champion is not None and str(champion.version) != version else None
        if previous is None and champion is not None:
            previous = client.get_model_version(model, version).tags.get(PREVIOUS_TAG) or None
        tags = run.data.tags
        record = Provenance(
            model=model, version=version, previous_version=str(previous) if previous else None,
            run_id=run.info.run_id, metric=gate.metric, value=decision.candidate, champion_value=decision.champion,
            gate=decision.reason, git_tag=f"{model}-v{version}",
            git_commit=(context.commit or "") if tree.startswith("dirty") else tags.get(TAG_COMMIT, context.commit or ""),
            branch=context.branch or "", trained_on=tags.get(TAG_BRANCH, ""), data_version=tags.get(TAG_DATA_VERSION, "unknown"),
            tracking_uri=redact_url(uri), released_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            noise=noise_verdict, device=device_of(tags.get(TAG_DEVICE), tags.get(TAG_CPU_FALLBACK) == "true") or "unknown",
            run_commit=tags.get(TAG_COMMIT, ""), tree=tree,
        )
        if previous:
            client.set_model_version_tag(model, version, PREVIOUS_TAG, str(previous))
        for key in ("git_commit", "data_version", "git_tag"):
            client.set_model_version_tag(model, version, f"alops.{key}", str(getattr(record, key)))
        client.set_registered_model_alias(model, alias, version)
    except MlflowException as exc:
        raise AlopsError(f"model registry at {uri}: {str(exc).splitlines()[0]}") from None
    return record


def rollback(uri: str, model: str) -> tuple[str, str, str | None]:
    """Move the champion alias back to the version the current champion replaced; (from, to, the git tag of
    the release that left, when alops released it)."""
    from mlflow.exceptions import MlflowException

    try:
        client = mlflow_client(uri)
        champion = version_by_alias(client, model, ALIAS)
        if champion is None:
            raise AlopsError(f"model {model!r} has no {ALIAS}: nothing to roll back")
        previous = champion.tags.get(PREVIOUS_TAG)
        if not previous:
            raise AlopsError(f"{ALIAS} version {champion.version} of {model!r} replaced no earlier version: nothing to roll back to")
        client.set_registered_model_alias(model, ALIAS, previous)
        client.set_model_version_tag(model, champion.version, TAG_ROLLED_BACK, "true")
    except MlflowException as exc:
        raise AlopsError(f"model registry at {uri}: {str(exc).splitlines()[0]}") from None
    return str(champion.version), str(previous), champion.tags.get("alops.git_tag")


def mark_rolled_back(target_forge, tag: str | None, moved_from: str, moved_to: str):
    """Mark the forge release (`tag`) of the version that left the champion alias; None when alops did not
    release that version. The alias has moved already: a failure says so."""
    import datetime

    if not tag:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    try:
        return target_forge.mark_release(tag, f"Rolled back on {stamp} UTC: version {moved_from} left {ALIAS}, "
                                              f"version {moved_to} serves again.")
    except AlopsError as exc:
        raise AlopsError(f"{exc}; the {ALIAS} is back on version {moved_to} already: mark release {tag} on the "
                         "forge by hand (a second rollback would go back further)") from None


def write_record(record: Provenance, path: str) -> None:
    """The provenance as JSON, written whole or not at all."""
    atomic_write(path, json.dumps(asdict(record), indent=1, sort_keys=True) + "\n")


def project_gate(project, metric: str | None, direction: str | None, min_delta: float | None,
                 min_relative: float = 0.0, beyond_noise: bool = False) -> Gate:
    """The gate: the options given, else the project's primary metric (alops.yaml `metric:`)."""
    primary = project.config.metric
    if metric is None and primary is None:
        raise ConfigError("no release metric: declare the primary metric in alops.yaml (metric: {name: ..., "
                          "direction: max}) or pass --metric")
    same = primary is not None and (metric is None or metric == primary.name)
    return Gate(metric or primary.name, direction or (primary.direction if same else "max"),
                min_delta if min_delta is not None else (primary.min_gain if same else 0.0), min_relative, beyond_noise)


def release_project(project, gate: Gate, model: str | None, artifact: str | None, run_id: str | None,
                    record_path: str, publish: bool, echo=print, alias: str = ALIAS):
    """Release the project's candidate: gate, register, alias, provenance record, and (with `publish`) the
    forge release. Returns the provenance and the forge's outcome (None without `publish`)."""
    from alops.forge import client as forge
    from alops.runs.pipeline import pipeline_files

    if artifact is None:
        models = pipeline_files(project)["models"]
        if not models:
            raise ConfigError("dvc.yaml declares no model output: pass --artifact with the model file the run logged")
        artifact = models[0]  # tracked under its project path
    target_forge = forge.connect(project.context) if publish else None  # a missing token fails before anything moves
    provenance = release(project.tracking_uri, project.root, project.name, project.context, gate, model or project.name,
                         artifact, run_id, echo=echo, alias=alias)
    write_record(provenance, record_path)
    published = None
    if target_forge is not None:
        try:
            published = target_forge.publish_release(provenance.git_tag, f"{provenance.model} v{provenance.version}",
                                                     provenance.markdown(), provenance.git_commit)
        except AlopsError as exc:
            restored = _restore_alias(project.tracking_uri, provenance, alias)
            raise AlopsError(f"{exc}; the forge release failed, so the {alias} alias went back to {restored} "
                             "(re-run the release job once the forge answers)") from None
    return provenance, published


def _restore_alias(uri: str, provenance: Provenance, alias: str) -> str:
    """Undo the alias move of a release whose publication failed; what the alias points at now."""
    client = mlflow_client(uri)
    if alias == CHALLENGER:
        client.delete_registered_model_alias(provenance.model, CHALLENGER)
        return "no version"
    if provenance.previous_version:
        client.set_registered_model_alias(provenance.model, ALIAS, provenance.previous_version)
        return f"version {provenance.previous_version}"
    client.delete_registered_model_alias(provenance.model, ALIAS)
    return "no version (first release)"
