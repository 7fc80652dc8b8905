"""Scored data from production joins the pool: `alops pool add LOG` appends the samples of a
prediction log to the full dataset's manifest as unlabeled rows, a new data version on an al/ branch.

Each new sample's split is drawn from its id in the manifest's split shares (`--split by-id`, the default), so
labeled live samples reach validation and test as well as training, and the gate measures production data; their
ids are listed in `live_ids.txt` beside the manifest, so evaluation can report the production slice.
A log is CSV, Parquet or JSON Lines with an `id` per sample and, like the manifest, either a `path` (the
sample's file, relative to the log's folder; copied into the dataset) or the manifest's numeric features.
Other columns (probabilities, the model version) are not data: they are named in the outcome, with the
values of a `model_version` column. Samples whose id the manifest has are skipped, so a re-run adds nothing
twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from alops.core.errors import ConfigError
from alops.core.files import atomic_path, atomic_write, copy_file, sample_file_problem, stays_inside
from alops.data.manifest import ManifestWriter, appendable, inspect_manifest, iter_batches, restore_types

MODEL_VERSION = "model_version"
LIVE_IDS = "live_ids.txt"  # beside the manifest: the ids of the samples that came from production, one per line
BY_ID = "by-id"  # the split of each new sample drawn from its id, in the manifest's split shares


@dataclass
class PoolAddition:
    """What `add_to_pool` did."""

    added: int = 0
    skipped: int = 0  # ids the manifest already had
    ignored_columns: list[str] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)  # new samples per split


def split_summary(splits: dict[str, int]) -> str:
    """`train 180, test 60, val 60`: where the new samples went."""
    return ", ".join(f"{name} {count}" for name, count in sorted(splits.items())) or "none"


def manifest_ids(info) -> set[str]:
    """Every sample id of the manifest, as text."""
    ids: set[str] = set()
    for batch in iter_batches(info):
        ids.update(pc.cast(batch.column("id"), pa.string()).to_pylist())
    return ids


def split_shares(info) -> list[tuple[str, float]]:
    """Each split's share of the manifest's rows, by split name."""
    counts: dict[str, int] = {}
    for batch in iter_batches(info):
        for item in pc.value_counts(pc.drop_null(batch.column("split"))).to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    total = sum(counts.values())
    return [(name, count / total) for name, count in sorted(counts.items()) if name]


def splits_by_id(ids: list[str], shares: list[tuple[str, float]]) -> list[str]:
    """A split per id, the same on every machine and run: the id's SHA-256 as a number in [0, 1) against the
    shares' running sum (so labeled live samples land in train, validation and test like the rest)."""
    edges, running = [], 0.0
    for name, share in shares:
        running += share
        edges.append((running, name))
    chosen = []
    for sample in ids:
        point = int(hashlib.sha256(sample.encode()).hexdigest()[:15], 16) / 16 ** 15
        chosen.append(next((name for edge, name in edges if point < edge), edges[-1][1]))
    return chosen


def _read_log(log: str, manifest_info, known: set[str]) -> tuple[list[pa.RecordBatch], PoolAddition]:
    """The log's new samples as manifest-shaped batches (unlabeled, split still empty), checked whole."""
    info = inspect_manifest(log, required=("id",))
    outcome = PoolAddition()
    needed = [c for c in manifest_info.columns if c not in ("id", "label", "split")]
    missing = [c for c in needed if c not in info.columns]
    if missing:
        raise ConfigError(f"{log}: no column {', '.join(missing)}, which every sample of the manifest has; "
                          "log what the model saw (the file path or the features)")
    outcome.ignored_columns = [c for c in info.columns if c not in manifest_info.columns]
    seen: set[str] = set()
    versions: set[str] = set()
    batches = []
    for batch in iter_batches(info):
        kind = batch.column("id").type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
                or pa.types.is_null(kind)):
            raise ConfigError(f"{log}: the id column holds {kind} values; an id is text or an integer")
        if "path" in info.columns and not (pa.types.is_string(batch.column("path").type)
                                           or pa.types.is_null(batch.column("path").type)):
            raise ConfigError(f"{log}: the path column holds {batch.column('path').type} values; a path is text")
        ids = pc.cast(batch.column("id"), pa.string()).to_pylist()
        for number, value in enumerate(ids):
            if value is None or not value.strip():
                raise ConfigError(f"{log}: a row without an id (row {len(seen) + number + 2}); every sample needs one")
            if value in seen:
                raise ConfigError(f"{log}: id {value!r} appears twice; a log names each sample once")
            seen.add(value)
        if MODEL_VERSION in info.columns:
            versions.update(str(v) for v in batch.column(MODEL_VERSION).to_pylist() if v is not None)
        new = pa.array([value not in known for value in ids])
        outcome.skipped += batch.num_rows - pc.sum(pc.cast(new, pa.int64())).as_py()
        kept = batch.filter(new)
        if kept.num_rows:
            batches.append(kept)
    if not seen:
        raise ConfigError(f"{log}: no samples in the log")
    outcome.model_versions = sorted(versions)
    return batches, outcome


def _check_files(log: str, full: str, batches: list[pa.RecordBatch]) -> None:
    """Each new sample's file exists next to the log, and its path stays inside the log's folder and the dataset."""
    folder = os.path.dirname(log)
    for batch in batches:
        for rel in batch.column("path").to_pylist():
            problem = sample_file_problem(folder, rel)
            if problem is None and not stays_inside(full, os.path.join(full, rel)):
                problem = f"path {rel!r} must stay inside the dataset"
            if problem:
                raise ConfigError(f"{log}: {problem}")


def _copy_files(log: str, full: str, batches: list[pa.RecordBatch]) -> None:
    for batch in batches:
        for rel in batch.column("path").to_pylist():
            copy_file(os.path.join(os.path.dirname(log), rel), os.path.join(full, rel))


def check_log(manifest: str, log: str, split: str):
    """Everything `add_to_pool` checks, without writing: the manifest as read, the new samples as manifest
    rows, and the outcome."""
    if not split or not split.strip():
        raise ConfigError(f"--split must name a split, e.g. train, or be {BY_ID}")
    manifest_info = inspect_manifest(manifest)
    split_by: str | list[tuple[str, float]] = split
    if split == BY_ID:
        shares = split_shares(manifest_info)
        if not shares:
            raise ConfigError(f"{manifest}: no split in any row to share new samples by; name one with --split train")
        split_by = shares
    batches, outcome = _read_log(log, manifest_info, manifest_ids(manifest_info))
    if manifest_info.has_path:
        _check_files(log, os.path.dirname(manifest), batches)
    return manifest_info, [_as_manifest_rows(batch, manifest_info, split_by, log) for batch in batches], outcome


def add_to_pool(manifest: str, log: str, split: str) -> PoolAddition:
    """Append the log's new samples to `manifest` (label empty, `split`), files first, the manifest in one
    rename. Validates everything before writing anything."""
    manifest_info, rows, outcome = check_log(manifest, log, split)
    if not rows:
        return outcome
    ids = [i for batch in rows for i in pc.cast(batch.column("id"), pa.string()).to_pylist()]
    if any("\n" in i or "\r" in i for i in ids):
        raise ConfigError(f"{log}: an id holds a line break; ids name samples on one line")
    if manifest_info.has_path:
        _copy_files(log, os.path.dirname(manifest), rows)
    _list_live(os.path.dirname(manifest), ids)  # before the manifest: a crash between lists ids a re-run adds again
    with atomic_path(manifest) as staged:
        if appendable(manifest):  # CSV, JSON Lines: the existing rows stay byte for byte
            shutil.copyfile(manifest, staged.path)
            writer = _Appender(staged.path, manifest_info.stored, append=True)
        else:
            writer = _Appender(staged.path, manifest_info.stored)
            for batch in iter_batches(manifest_info):
                writer.write(batch)
        for batch in rows:
            writer.write(batch)
            outcome.added += batch.num_rows
            for item in pc.value_counts(batch.column("split")).to_pylist():
                outcome.splits[item["values"]] = outcome.splits.get(item["values"], 0) + item["counts"]
        writer.close()
    return outcome


def _list_live(folder: str, ids: list[str]) -> None:
    """Add `ids` to the dataset's live_ids.txt (each once), so evaluation can measure the production slice."""
    path = os.path.join(folder, LIVE_IDS)
    listed = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            listed = handle.read()
    known = set(listed.splitlines())
    new = [i for i in dict.fromkeys(ids) if i not in known]
    atomic_write(path, listed + ("" if not listed or listed.endswith("\n") else "\n") + "".join(f"{i}\n" for i in new))


def _as_manifest_rows(batch: pa.RecordBatch, manifest_info, split, log: str) -> pa.RecordBatch:
    """The log's rows with the manifest's columns: unlabeled, in `split` (a name, or shares to draw each row's
    split from its id), ids and features in its types."""
    rows = batch.num_rows
    columns = {}
    for name in manifest_info.columns:
        if name == "label":
            columns[name] = pa.nulls(rows, pa.string())
        elif name == "split":
            named = [split] * rows if isinstance(split, str) else \
                splits_by_id(pc.cast(batch.column("id"), pa.string()).to_pylist(), split)
            columns[name] = pa.array(named, pa.string())
        else:
            try:
                columns[name] = pc.cast(batch.column(name), manifest_info.schema.field(name).type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ConfigError(f"{log}: column {name}: {' '.join(str(exc).split())[:200]} (the manifest's "
                                  f"{name} is {manifest_info.schema.field(name).type})") from None
    return pa.RecordBatch.from_pydict(columns)


class _Appender:
    """Writes batches in the manifest file's own types, all in the schema of the first one."""

    def __init__(self, path: str, stored: pa.Schema | None, append: bool = False):
        self.path, self.stored, self.append = path, stored, append
        self.writer: ManifestWriter | None = None
        self.schema: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        batch = restore_types(batch, self.stored)
        if self.writer is None:
            self.writer, self.schema = ManifestWriter(self.path, batch.schema, self.append), batch.schema
        self.writer.write(batch.cast(self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def add_to_project(project, log: str, split: str, record: bool | None) -> tuple[PoolAddition, str | None]:
    """`add_to_pool` on the project's full dataset; on al/ branches (or `record`) commit and push the new data
    version. Returns the outcome and the pushed commit (None when nothing was recorded)."""
    manifest = project.manifest("full")
    context = project.context
    if not (record if record is not None else context.profile.data_commits):
        return add_to_pool(manifest, log, split), None
    from alops.data.record import commit_data_change

    check_log(manifest, log, split)  # a bad log stops here, before the recording begins

    outcome = {}

    def apply() -> int:
        outcome["addition"] = add_to_pool(manifest, log, split)
        return outcome["addition"].added

    message = f"Pool: samples from {os.path.basename(log)}"
    commit = commit_data_change(project, project.dataset_folder("full"), apply, message, context.branch)
    return outcome["addition"], commit
