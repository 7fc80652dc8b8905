"""`alops run`: what the runner does for the branch, on a laptop too.

check params -> pull the profile's data and DVC's run cache -> `dvc repro` with `dataset` (and --set values)
in params.yaml for the length of the run and ALOPS_DEVICE in the stages' environment -> params.yaml put back
byte for byte -> track the run -> push outputs and run cache. An unchanged pipeline reproduces nothing and
records nothing. The tree is left as it was but for what DVC writes (dvc.lock, outputs): dvc.lock records the
params the run used.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from dataclasses import dataclass, field

from alops.core import params as params_mod
from alops.core.errors import AlopsError, ConfigError
from alops.core.files import atomic_write, write_json
from alops.data.storage import reproduce

MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".onnx", ".pkl", ".joblib", ".safetensors")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass
class RunResult:
    ran: list[str] = field(default_factory=list)  # stages reproduced
    device: str = "cpu"
    tracking: tuple[str, str] | None = None  # ("sent", run id) or ("buffered", folder)
    metrics: dict[str, float] = field(default_factory=dict)


RUN_FILE = os.path.join(".alops", "run.json")  # the workspace's last run, for the report beside it


def uncommitted_inputs(project) -> list[str]:
    """The tracked files that differ from the commit, but for what the pipeline writes itself (dvc.lock, its
    outputs, metrics and plots): what makes a run's commit not the code, params and data that trained it."""
    from alops.core.git import changed_files

    document = project.pipeline
    written = {"dvc.lock", *_entries(document.get("metrics"))}
    for stage in (document.get("stages") or {}).values():
        for key in ("outs", "metrics", "plots"):
            written.update(os.path.normpath(path) for path in _entries(stage.get(key)))
    return [path for path in changed_files(project.root)
            if not any(path == out or path.startswith(out.rstrip("/") + "/") for out in written)]


def write_run_file(root: str, commit: str | None, device: str, cpu_fallback: bool, dirty: list[str],
                   run_id: str | None, run_url: str | None, restored: bool = False) -> None:
    """What the report says of this branch's run: its commit, device, whether the tree was clean, and the run.
    `.alops/` ignores itself (as pytest's cache does), so the record never shows as a change to commit."""
    ignore = os.path.join(root, ".alops", ".gitignore")
    if not os.path.exists(ignore):
        atomic_write(ignore, "# written by alops: nothing in this folder is committed\n*\n")
    write_json(os.path.join(root, RUN_FILE), {"commit": commit, "device": device, "cpu_fallback": cpu_fallback,
                                              "dirty": dirty, "run_id": run_id, "run_url": run_url,
                                              "restored": restored}, indent=2)


def read_run_file(root: str, commit: str | None) -> dict | None:
    """The workspace's run record when it is this commit's (an older one says nothing of this checkout)."""
    try:
        with open(os.path.join(root, RUN_FILE), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("commit") == commit else None


def resolve_device(requested: str | None, profile_device: str, kind: str, allow_cpu: bool, forge: str = "local") -> str:
    """cpu or cuda: the profile's device unless one is requested; a GPU branch without CUDA fails unless allowed
    (the error names what allows it where the run is: the flag locally, the template's input in CI)."""
    choice = requested or {"gpu": "cuda"}.get(profile_device, profile_device)
    if choice not in DEVICE_CHOICES:
        raise ConfigError(f"--device {choice!r}: expected one of {', '.join(DEVICE_CHOICES)}")
    if choice == "cpu":
        return "cpu"
    if cuda_device_count() > 0:
        return "cuda"
    if choice == "auto":
        return "cpu"
    if allow_cpu:
        return "cpu"
    allow = ("pass --allow-cpu" if forge == "local" else
             f"set the {'component' if forge == 'gitlab' else 'workflow'}'s input `allow-cpu: true`")
    raise AlopsError(f"the {kind} profile asks for a GPU and no CUDA device is visible: run on a GPU runner, "
                     f"or {allow} to run on the CPU")


def cuda_device_count() -> int:
    """CUDA devices the driver shows (honouring CUDA_VISIBLE_DEVICES), asked without importing torch."""
    import ctypes

    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


RUN_PARAMS_NOTE = os.path.join(".alops", "params-of-the-run.json")
DATASET_DIR = "dataset_dir"  # a params.yaml key alops run sets to the run's dataset folder, when the file has it


@contextlib.contextmanager
def run_params(root: str, validated: tuple[dict, dict, dict], keep: dict | None = None):
    """params.yaml with the `validated_params` applied while the block runs; then the file as it was, byte for
    byte, plus the values in `keep`. Yields the params in force.

    A note under .alops/ holds the original until it is back, so a killed run is undone by the next one.
    """
    merged, current, updates = validated
    if merged == current:
        yield merged
        return
    path, note = os.path.join(root, params_mod.PARAMS_FILE), os.path.join(root, RUN_PARAMS_NOTE)
    original = open(path, encoding="utf-8").read() if os.path.exists(path) else None
    params_mod.set_params(root, updates)
    with open(path, "rb") as handle:
        written = hashlib.sha256(handle.read()).hexdigest()
    write_json(note, {"original": original, "written": written})
    try:
        yield merged
    finally:
        _put_back(path, original)
        if keep:
            params_mod.set_params(root, keep)
        os.remove(note)


def _put_back(path: str, original: str | None) -> None:
    if original is None:
        os.remove(path)
    else:
        atomic_write(path, original)


def restore_interrupted_run_params(root: str) -> None:
    """Put params.yaml back after a run that was killed while it held the run's values (and only then: a file
    edited since is left alone)."""
    note = os.path.join(root, RUN_PARAMS_NOTE)
    try:
        with open(note, encoding="utf-8") as handle:
            saved = json.load(handle)
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        raise ConfigError(f"{RUN_PARAMS_NOTE} is unreadable: check params.yaml against git, then delete the note") from None
    path = os.path.join(root, params_mod.PARAMS_FILE)
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
        if hashlib.sha256(handle.read()).hexdigest() == saved.get("written"):
            _put_back(path, saved.get("original"))
    os.remove(note)


def validated_params(root: str, dataset: str, sets: dict, folder: str | None = None) -> tuple[dict, dict, dict]:
    """(params with `dataset`, `dataset_dir` (the dataset's `folder`, when params.yaml has the key) and `sets`
    applied, params as they are, the updates); ConfigError when invalid."""
    current = params_mod.load_params(root)
    schema = params_mod.load_schema(root)
    params_mod.check_assignments(current, schema, sets)
    merged = copy.deepcopy(current)
    updates = {"dataset": dataset, **({DATASET_DIR: folder} if folder and DATASET_DIR in current else {}), **sets}
    for name, value in updates.items():
        params_mod.set_nested(merged, name, value)
    if schema is not None:
        errors = params_mod.check(merged, schema)
        if errors:
            raise ConfigError(f"{params_mod.PARAMS_FILE}: " + "; ".join(errors))
    return merged, current, updates


def locked_params(lock_text: str | None) -> dict:
    """The params.yaml values dvc.lock records for its stages (the params the last run used), nested."""
    import yaml

    try:
        lock = yaml.safe_load(lock_text) if lock_text else None
    except yaml.YAMLError:
        return {}
    used: dict = {}
    for stage in (lock.get("stages") or {}).values() if isinstance(lock, dict) else []:
        values = (stage.get("params") or {}).get(params_mod.PARAMS_FILE) if isinstance(stage, dict) else None
        for name, value in (values or {}).items():
            params_mod.set_nested(used, str(name), value)
    return used


def params_used(root: str) -> dict[str, str]:
    """Flat params of the workspace's last run: params.yaml, with the values dvc.lock records over it (a run's
    --set values and `dataset`)."""
    used = params_mod.flatten(params_mod.load_params(root))
    lock = os.path.join(root, "dvc.lock")
    if os.path.exists(lock):
        with open(lock, encoding="utf-8") as handle:
            used.update(params_mod.flatten(locked_params(handle.read())))
    return {name: str(value) for name, value in used.items()}


def _entries(items) -> list[str]:
    paths = []
    for item in items or []:
        paths.append(next(iter(item)) if isinstance(item, dict) else str(item))
    return paths


def _plot_files(item) -> list[str]:
    """The files a top-level dvc.yaml plot entry reads: a path (file or folder), or the files a named
    definition maps in its `y` (and `x`), as dvclive writes them (`ROC: {x: fpr, y: {eval/roc.json: tpr}}`)."""
    if isinstance(item, str):
        return [item]
    files: list[str] = []
    for key, config in item.items() if isinstance(item, dict) else []:
        axes = [axis for axis in (config.get("y"), config.get("x")) if isinstance(axis, dict)] if isinstance(config, dict) else []
        if axes:
            files += [str(path) for axis in axes for path in axis if str(path) not in files]
        elif not str(key).startswith(("{", "$")):
            files.append(str(key))
    return files


def pipeline_files(project) -> dict[str, list[str]]:
    """metrics, plots and model files that dvc.yaml declares (relative paths)."""
    document = project.pipeline
    metrics, plots, models = _entries(document.get("metrics")), [], []
    for item in document.get("plots") or []:
        plots += [path for path in _plot_files(item) if path not in plots]
    for stage in (document.get("stages") or {}).values():
        metrics += _entries(stage.get("metrics"))
        plots += _entries(stage.get("plots"))
        models += [p for p in _entries(stage.get("outs")) if p.endswith(MODEL_SUFFIXES) or os.path.basename(p).startswith("model")]
    return {"metrics": metrics, "plots": plots, "models": models}


def _read_json(root: str, relative: str):
    path = os.path.join(root, relative)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except ValueError as exc:
        raise AlopsError(f"{relative}: not valid JSON ({exc}); the stage must write JSON") from None


def read_metrics(project, files: dict[str, list[str]]) -> tuple[dict[str, float], dict[str, list]]:
    """Final metrics through DVC (JSON, YAML, TOML); step series from JSON plots whose rows carry a "step" or
    "epoch" (a training curve). Other plot data (ROC points, confusion pairs) are artifacts, not metrics."""
    from alops.runs.metrics import flat_numbers, metric_name, workspace_metrics

    root = project.root
    metrics = workspace_metrics(project) if files["metrics"] else {}
    steps: dict[str, list] = {}
    for relative in files["plots"]:
        if not relative.endswith(".json") or not os.path.exists(os.path.join(root, relative)):
            continue
        data = _read_json(root, relative)
        rows = next(iter(data.values()), []) if isinstance(data, dict) and len(data) == 1 else data
        if not isinstance(rows, list):
            continue
        for row in rows:
            if not isinstance(row, dict) or ("step" not in row and "epoch" not in row):
                continue
            step = int(row["step"] if "step" in row else row["epoch"])
            for name, value in flat_numbers(row).items():
                if name not in ("step", "epoch"):
                    steps.setdefault(metric_name(name), []).append((step, value))
    return metrics, steps


def reads_dataset_choice(project) -> bool:
    """Whether a stage of dvc.yaml consumes `dataset` or `dataset_dir`: as a param, or `${dataset}`,
    `${dataset_dir}` or the dev folder in its command or dependencies."""
    dev = project.config.data.dev
    for stage in (project.pipeline.get("stages") or {}).values():
        if not isinstance(stage, dict):
            continue
        if any({"dataset", DATASET_DIR} & _param_names(entry) for entry in stage.get("params") or []):
            return True
        text = " ".join(map(str, [stage.get("cmd", ""), *(stage.get("deps") or [])]))
        if "${dataset}" in text or f"${{{DATASET_DIR}}}" in text or dev in text.split():
            return True
    return False


def _param_names(entry) -> set[str]:
    """The params.yaml keys one entry of a stage's `params:` names (a key, or {file: [keys]})."""
    if isinstance(entry, dict):
        return {str(name) for keys in entry.values() for name in keys or []}
    return {str(entry)}


def depends_on_dataset(project, dataset: str) -> bool:
    """Whether a stage lists the `dev` or `full` dataset's folder (or a path inside it) among its deps, with
    `${dataset}` read as `dataset`."""
    folder = os.path.normpath(os.path.relpath(project.dataset_folder(dataset), project.root))
    for stage in (project.pipeline.get("stages") or {}).values():
        for dep in (stage.get("deps") or []) if isinstance(stage, dict) else []:
            path = os.path.normpath(str(dep).replace(f"${{{DATASET_DIR}}}", folder).replace("${dataset}", dataset))
            if path == folder or path.startswith(folder + os.sep):
                return True
    return False


def check_stages(project, targets: list[str]) -> None:
    known = project.stages
    for target in targets:
        if target not in known:
            raise ConfigError(f"stage {target!r} is not in dvc.yaml (stages: {', '.join(known) or 'none'})")


def _missing_lock_outputs(root: str) -> bool:
    """Whether an output dvc.lock records is absent from the workspace (a fresh runner's checkout)."""
    import yaml

    path = os.path.join(root, "dvc.lock")
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as handle:
        lock = yaml.safe_load(handle) or {}
    outs = [o["path"] for stage in (lock.get("stages") or {}).values() for o in stage.get("outs") or []]
    return any(not os.path.exists(os.path.join(root, out)) for out in outs)


def pull_previous_outputs(project, stages: list[str]) -> None:
    """On a fresh checkout, check out the outputs dvc.lock records (where the remote has them) and DVC's
    run cache, so unchanged code, params and data reproduce nothing. A workspace that has them skips this."""
    from dvc.exceptions import DvcException

    if not _missing_lock_outputs(project.root):
        return
    try:
        project.dvc.pull(targets=stages, run_cache=True, allow_missing=True)
    except DvcException:
        pass  # a first run: nothing pushed yet; repro decides what to run


def run_pipeline(
    project,
    targets: tuple[str, ...] | list[str] = (),
    device: str | None = None,
    allow_cpu: bool = False,
    sets: dict | None = None,
    track: bool | None = None,
    dry_run: bool = False,
    echo=print,
    keep_sets: bool = False,
) -> RunResult:
    """Run the project's pipeline the way the runner does for its branch context."""
    from alops.data import storage as data
    from alops.runs import tracking

    root, context = project.root, project.context
    profile = context.profile
    track = project.tracks(track)
    folder = os.path.relpath(project.dataset_folder(profile.dataset), root)
    if dry_run:  # a plan for params that would be refused is no plan
        updates = validated_params(root, profile.dataset, sets or {}, folder)[2]
        for line in _plan(context, targets, device, updates, track):
            echo(line)
        return RunResult()
    check_stages(project, list(targets))
    if profile.dataset == "dev" and project.config.data.check_dev_use and not reads_dataset_choice(project):
        raise ConfigError(
            "no stage in dvc.yaml reads the dataset choice, so this dev run would train on the full data: list "
            "`dataset` under a stage's params and use it (e.g. deps: data/${dataset}), or `dataset_dir` (a "
            "params.yaml key alops sets to the dataset's folder: deps: ${dataset_dir}), or set "
            "data.check_dev_use: false in alops.yaml to run anyway")
    restore_interrupted_run_params(root)  # a killed run's values are not this run's
    validated = validated_params(root, profile.dataset, sets or {}, folder)  # refused before any data moves
    chosen = resolve_device(device, profile.device, context.kind, allow_cpu, context.forge)
    cpu_fallback = chosen == "cpu" and (device or profile.device) in ("gpu", "cuda")
    if cpu_fallback:
        echo(f"device: the CPU, not the GPU the {context.kind} profile asks for (allowed by allow-cpu); the run, "
             "its report and its release say so")
    dirty = uncommitted_inputs(project)
    on_file = params_mod.flatten(validated[1])
    held = sorted(name for name, value in (sets or {}).items() if on_file.get(name) != value)
    if held and params_mod.PARAMS_FILE not in dirty:  # values no commit holds (--set, a candidate's, a seed's)
        dirty.append(params_mod.PARAMS_FILE)
    if dirty:
        echo(f"tree: uncommitted changes to {', '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}: the run is "
             "tagged dirty, and a release takes it only from a commit whose dvc.lock names its outputs; commit, then run")
    missing = depends_on_dataset(project, profile.dataset) and data.untracked_dataset(project, profile.dataset)
    if missing:  # a stage reads the dataset's folder, and this branch cannot have it
        raise ConfigError(missing)
    if project.has_remote:
        echo(f"pull: {profile.dataset} dataset, the pipeline's last outputs and the run cache")
        folder = project.dataset_folder(profile.dataset)
        if os.path.exists(folder + ".dvc"):
            data.pull(project, [folder])
        pull_previous_outputs(project, list(targets) or project.stages)
    else:
        echo("pull: skipped (no DVC remote configured); using the data in the workspace")
    echo(f"repro: on {chosen} with the {profile.dataset} dataset")
    with run_params(root, validated, keep=sets if keep_sets else None) as used:
        sampler = project.config.data.dev_stage if profile.dataset == "dev" else None  # a dev run never samples
        result = RunResult(ran=reproduce(project, list(targets), chosen, frozen=sampler), device=chosen)
    if not result.ran:
        made_by = _run_of_outputs(project) if track else None
        echo("pipeline up to date: nothing ran, nothing tracked" +
             (f"; its outputs are run {made_by[0]}'s (the same dvc.lock)" if made_by else ""))
        run_id, run_link = made_by or (None, None)
        write_run_file(root, context.commit, chosen, cpu_fallback, dirty, run_id, run_link, restored=True)
        return result
    files = pipeline_files(project)
    result.metrics, steps = read_metrics(project, files)
    if track:
        _send_buffered(root, project.tracking_uri, echo)
        record = tracking.RunRecord(
            experiment=project.experiment(),
            run_name=f"{context.branch or context.tag}@{(context.commit or 'uncommitted')[:8]}",
            params={k: str(v) for k, v in params_mod.flatten(used).items()},
            metrics=result.metrics,
            steps=steps,
            tags=_tags(project, chosen, cpu_fallback, dirty),
            artifacts=files["models"] + files["plots"] + ["dvc.lock"], artifact_root=root,
        )
        result.tracking = tracking.track(record, root, context.kind, project.tracking_uri)
        state, where = result.tracking
        echo(f"tracking: run {where} sent" if state == "sent" else
             f"tracking: server unreachable; run buffered in {os.path.relpath(where, root)} (send it with `alops track sync`)")
    sent_id = result.tracking[1] if result.tracking is not None and result.tracking[0] == "sent" else None
    write_run_file(root, context.commit, chosen, cpu_fallback, dirty, sent_id,
                   _run_url(project, sent_id) if sent_id else None)
    if project.has_remote:
        echo("push: outputs and run cache")
        data.push(project, None, run_cache=True)
    return result


def _send_buffered(root: str, uri: str, echo) -> None:
    """Runs that earlier jobs buffered during an outage (a CI cache brings `.alops/tracking-buffer/` back) go to
    the server before this run; if they cannot, they stay buffered and this run goes on."""
    from alops.runs import tracking

    try:
        sent, left = tracking.sync(root, uri)
    except AlopsError as exc:
        echo(f"tracking: buffered runs kept ({exc}); `alops track sync` sends them later")
        return
    if sent:
        echo(f"tracking: {sent} run(s) buffered by earlier jobs sent" + (f", {left} left" if left else ""))


def lock_digest(root: str, lock_text: str | None = None) -> str:
    """A digest of dvc.lock (`lock_text` when the caller has read it): the same for every commit whose pipeline
    produced exactly these outputs."""
    if lock_text is None:
        with open(os.path.join(root, "dvc.lock"), encoding="utf-8", newline="") as handle:
            lock_text = handle.read()
    return hashlib.sha256(lock_text.encode()).hexdigest()[:16]


def _run_of_outputs(project) -> tuple[str, str] | None:
    """(run id, link) of the tracked run whose dvc.lock is the workspace's: the run that made the outputs a
    run-cache restore or an up-to-date pipeline left here; None when none is found or tracking is unreachable."""
    from alops.core.project import TAG_LOCK
    from alops.runs import tracking

    if not os.path.isfile(os.path.join(project.root, "dvc.lock")) or not project.tracking_store_exists:
        return None
    try:
        runs = tracking.find_runs(project.tracking_uri, project.name, tags={TAG_LOCK: lock_digest(project.root)})
    except AlopsError:
        return None
    return (runs[0].info.run_id, tracking.run_url(project.tracking_uri, runs[0])) if runs else None


def _run_url(project, run_id: str) -> str | None:
    from mlflow.exceptions import MlflowException

    from alops.runs import tracking

    try:
        return tracking.run_url(project.tracking_uri, tracking.mlflow_client(project.tracking_uri).get_run(run_id))
    except (MlflowException, OSError):  # a link is a convenience: the run id is recorded either way
        return None


def _tags(project, device: str, cpu_fallback: bool = False, dirty: list[str] | None = None) -> dict[str, str]:
    from alops.core.git import diff_digest
    from alops.core.project import (
        TAG_BRANCH,
        TAG_COMMIT,
        TAG_CPU_FALLBACK,
        TAG_DATA_VERSION,
        TAG_DATASET,
        TAG_DEVICE,
        TAG_DIRTY,
        TAG_DIRTY_DIFF,
        TAG_KIND,
        TAG_LABELED,
        TAG_LOCK,
        TAG_RUNNER,
    )
    from alops.data import storage as data
    from alops.runs import tracking

    root, context = project.root, project.context
    lock = os.path.join(root, "dvc.lock")
    lock_text = None
    if os.path.isfile(lock):
        with open(lock, encoding="utf-8", newline="") as handle:
            lock_text = handle.read()
    try:
        version = data.data_version(root, lock_text)["version"]
    except AlopsError:
        version = "untracked"
    tags = {
        TAG_COMMIT: context.commit or "",
        TAG_BRANCH: context.branch or context.tag or "",
        TAG_KIND: context.kind,
        TAG_DATASET: context.profile.dataset,
        TAG_DATA_VERSION: version,
        TAG_RUNNER: tracking.runner_name(context.ci_job_url),
        TAG_DEVICE: device,
        TAG_CPU_FALLBACK: str(cpu_fallback).lower(),
        TAG_DIRTY: ",".join(dirty)[:250] if dirty else "false",
    }
    if dirty:
        tags[TAG_DIRTY_DIFF] = diff_digest(root, dirty)
    if lock_text is not None:
        tags[TAG_LOCK] = lock_digest(root, lock_text)
    manifest = project.manifest(context.profile.dataset)
    if os.path.isfile(manifest):
        from alops.data.manifest import labeled_count

        tags[TAG_LABELED] = str(labeled_count(manifest))
    return tags


def _plan(context, targets, device, updates, track) -> list[str]:
    profile = context.profile
    settings = ", ".join(f"{k}={v}" for k, v in updates.items())
    return [
        f"branch {context.branch!r} is {context.kind}: dataset={profile.dataset}, device={device or profile.device}",
        "1. check params.yaml against params.schema.yaml",
        f"2. set {settings} in params.yaml",
        f"3. pull the {profile.dataset} dataset, the outputs dvc.lock records and DVC's run cache (with a remote)",
        f"4. dvc repro {' '.join(targets) or '(all stages)'} with ALOPS_DEVICE set",
        "5. " + ("track the run (MLflow: params, metrics, tags, model, plots, dvc.lock)" if track else "no tracking on this branch kind"),
        "6. push outputs and the run cache (when a remote is configured)",
    ]
