"""Scheduled intake: the prediction logs serving has finished reach the pool, each once.

`alops pool intake SOURCE` lists SOURCE (a folder, or an fsspec URL such as `s3://team-logs/digits/` with DVC's
matching extra installed) for finished logs (`predictions-*.jsonl`: `alops serve` and `alops capture` rename a log
so when it is full), leaves out those the dataset's ledger names, downloads the others with the sample files
their rows name, and adds them to the full dataset's pool (`alops.data.pool`) in one data version. The ledger
(`.alops-intake.json` in the dataset folder) is part of that data version, so a log is taken once; a run that
stopped half-way is completed by the next (the pool skips ids it has). The new samples, as logged (predictions
included), are written to one JSON Lines file for the drift check.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from dataclasses import dataclass, field

from alops.core.branches import ACTIVE_LEARNING
from alops.core.errors import ConfigError
from alops.core.files import atomic_write, sample_file_problem, sample_path_problem

LEDGER = ".alops-intake.json"
PATTERN = "predictions-*.jsonl"


@dataclass
class Intake:
    """What one intake did."""

    taken: list[str] = field(default_factory=list)  # log names added this run
    known: int = 0  # logs at the source the ledger already names
    added: int = 0
    skipped: int = 0  # samples whose id the pool had
    new_samples: int = 0  # rows written to the new-samples file
    splits: dict[str, int] = field(default_factory=dict)  # new samples per split


def _source(source: str):
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(source)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"intake source {source.split('?')[0]!r}: {str(exc).splitlines()[0]} (an s3:// or gs:// "
                          "source needs alops' matching extra, e.g. pip install 'alops[s3]')") from None
    return fs, root.rstrip("/")


def list_logs(source: str, pattern: str = PATTERN):
    """The filesystem and the finished logs at the source, sorted by name."""
    if not pattern.endswith(".jsonl") or "/" in pattern:
        raise ConfigError(f"--pattern {pattern!r}: intake reads JSON Lines logs in the source folder (e.g. {PATTERN})")
    fs, root = _source(source)
    try:
        if not fs.isdir(root):
            raise ConfigError(f"intake source {source.split('?')[0]!r} is not a folder: give the folder the prediction "
                              "logs are copied to")
        return fs, root, sorted(fs.glob(posixpath.join(root, pattern)), key=posixpath.basename)
    except OSError as exc:
        raise ConfigError(f"intake source {source.split('?')[0]!r}: {str(exc).splitlines()[0]}") from None


def read_ledger(folder: str) -> dict[str, dict]:
    path = os.path.join(folder, LEDGER)
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            ledger = json.load(handle)
        if not isinstance(ledger, dict) or not all(isinstance(v, dict) for v in ledger.values()):
            raise ValueError("not an object of logs")
    except ValueError as exc:
        raise ConfigError(f"{path}: unreadable intake ledger ({exc}); restore it from git (dvc checkout)") from None
    return ledger


def _rows(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise ConfigError(f"{path}: line {number} is not JSON; a finished log holds one JSON object a line") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
    return rows


def _fetch(fs, remote: str, staging: str) -> str:
    """Download a log and the files its rows name (relative to the log's folder) into `staging`."""
    local = os.path.join(staging, posixpath.basename(remote))
    fs.get_file(remote, local)
    folder = posixpath.dirname(remote)
    local_source = "file" in (fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,))
    for row in _rows(local):
        if "path" not in row:
            continue
        rel = row["path"]
        problem = sample_file_problem(folder, rel) if local_source else sample_path_problem(rel)
        if problem:
            raise ConfigError(f"{posixpath.basename(remote)}: {problem}; nothing was taken")
        target = os.path.join(staging, *rel.split("/"))
        if not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fs.get_file(posixpath.join(folder, rel), target)
    return local


def take(manifest: str, source: str, split: str, new_samples: str, pattern: str = PATTERN) -> Intake:
    """Add the source's logs that the ledger does not name to the pool, then name them there (the change to
    record); write the new samples as logged to `new_samples`. Validates every log before the pool changes."""
    from alops.data.manifest import inspect_manifest
    from alops.data.pool import add_to_pool, check_log, manifest_ids

    folder = os.path.dirname(manifest)
    ledger = read_ledger(folder)
    fs, _, logs = list_logs(source, pattern)
    outcome = Intake(known=sum(1 for log in logs if posixpath.basename(log) in ledger))
    waiting = [log for log in logs if posixpath.basename(log) not in ledger]
    known_ids = manifest_ids(inspect_manifest(manifest))
    fresh: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="alops-intake-") as staging:
        staged = []
        for log in waiting:
            os.makedirs(os.path.join(staging, posixpath.basename(log) + ".d"))
            staged.append(_fetch(fs, log, os.path.join(staging, posixpath.basename(log) + ".d")))
        for local in staged:
            check_log(manifest, local, split)  # every log whole before the pool changes
        for local in staged:
            addition = add_to_pool(manifest, local, split)
            outcome.added += addition.added
            outcome.skipped += addition.skipped
            for name, count in addition.splits.items():
                outcome.splits[name] = outcome.splits.get(name, 0) + count
            for row in _rows(local):
                if str(row.get("id")) not in known_ids:
                    known_ids.add(str(row.get("id")))
                    fresh.append(row)
            name = os.path.basename(local)
            ledger[name] = {"samples": addition.added + addition.skipped, "added": addition.added}
            outcome.taken.append(name)
    if outcome.taken:
        atomic_write(os.path.join(folder, LEDGER), json.dumps(ledger, indent=1, sort_keys=True) + "\n")
    atomic_write(new_samples, "".join(json.dumps(row, sort_keys=True) + "\n" for row in fresh))
    outcome.new_samples = len(fresh)
    return outcome


def take_into_project(project, source: str, split: str, new_samples: str, record: bool | None,
                      pattern: str = PATTERN) -> tuple[Intake, str | None]:
    """`take` on the project's full dataset; on al/ branches (or `record`) the change is one data version,
    committed and pushed. Returns the outcome and the pushed commit (None when nothing was recorded)."""
    manifest = project.manifest("full")
    if not (record if record is not None else project.context.profile.data_commits):
        return take(manifest, source, split, new_samples, pattern), None
    if project.context.kind != ACTIVE_LEARNING:
        raise ConfigError(f"the intake records data versions on al/ branches, and {project.context.branch!r} is a "
                          f"{project.context.kind} branch: check an al/ branch out (and name it with --branch in CI)")
    from alops.data.record import commit_data_change

    outcome = {}

    def apply() -> int:
        outcome["intake"] = take(manifest, source, split, new_samples, pattern)
        return len(outcome["intake"].taken)

    commit = commit_data_change(project, project.dataset_folder("full"), apply, "Pool: intake of prediction logs",
                                project.context.branch)
    return outcome["intake"], commit
