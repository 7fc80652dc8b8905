"""The hand-off to labelers: selections become Label Studio tasks; their exports become labels in the pool.

Export writes `tasks.json` (Label Studio tasks whose predictions carry `model_version` and `score`, so
labelers can sort by uncertainty), `tasks.csv` and `batch.json` (which samples went out). Import validates
an export against its batch before it changes anything, then writes the new labels into the manifest in one
rename; importing the same export twice changes nothing.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alops.core.errors import ConfigError
from alops.core.files import atomic_path, atomic_write

if TYPE_CHECKING:
    from alops.al.selection import Selection

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single">
{choices}
  </Choices>
</View>"""


STRATEGY_TRAILER = "Alops-Strategy"
# a strategy name as the trailer may carry it: one line of names joined by + (least-confidence, margin+balanced)
_TRAILER_VALUE = re.compile(r"[A-Za-z0-9_.+-]{1,80}")


def label_config(classes: list[str]) -> str:
    """The Label Studio labeling interface for single-choice image classification."""
    from xml.sax.saxutils import quoteattr

    return LABEL_CONFIG.format(choices="\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes))


def _unlabeled_rows(manifest: str) -> list[dict]:
    from alops.data.manifest import inspect_manifest, iter_batches

    info = inspect_manifest(manifest)
    rows = []
    for batch in iter_batches(info):
        for row in batch.to_pylist():
            if row["label"] is None:
                rows.append(row)
    return rows


def _rows_by_id(manifest: str, ids: list[str]) -> list[dict | None]:
    """The manifest rows of `ids` (streamed; memory: the selected rows), in that order; None for a row that is
    labeled already. One line naming an id the manifest does not have."""
    from alops.data.manifest import inspect_manifest, iter_batches

    wanted: dict[str, dict | None] = {str(sample): None for sample in ids}
    for batch in iter_batches(inspect_manifest(manifest)):
        for row in batch.to_pylist():
            if str(row["id"]) in wanted:
                wanted[str(row["id"])] = row
    unknown = [sample for sample, row in wanted.items() if row is None]
    if unknown:
        raise ConfigError(f"{len(unknown)} selected sample(s) are not in {manifest} (first: {unknown[0]!r}): the pool "
                          "was scored on other data; score it again")
    rows = [wanted[str(sample)] or {} for sample in ids]  # every one found (checked above)
    return [row if row.get("label") is None else None for row in rows]


def export_tasks(selection: Selection, manifest: str, out_dir: str, classes: list[str], model_version: str,
                 image_prefix: str = "") -> dict:
    """Write tasks.json, tasks.csv and batch.json for the selected samples.

    A selection that names its samples (`alops query select --ids`) is joined with the manifest by id; samples
    labeled since are left out. Without ids, pool row i is the manifest's i-th unlabeled sample (the order the
    pipeline scored them in), which holds only when the pool was scored on this manifest.
    """
    if selection.sample_ids is not None:
        rows = _rows_by_id(manifest, selection.sample_ids)
    else:
        pool = _unlabeled_rows(manifest)
        if selection.pool_rows != len(pool):
            raise ConfigError(f"the selection scored {selection.pool_rows} pool rows but {manifest} has {len(pool)} "
                              "unlabeled samples; score the pool again, or select with --ids to join by sample id")
        rows = [pool[index] for index in selection.indices]
    scores = selection.scores
    ids = [str(row["id"]) for row in rows if row is not None]
    batch_id = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
    tasks, lines = [], []
    for row, score in zip(rows, scores):
        if row is None:
            continue
        data = {"sample_id": str(row["id"]), "image": image_prefix + (row.get("path") or ""), "batch_id": batch_id}
        task: dict[str, object] = {"data": data}
        if score is not None:
            task["predictions"] = [{"model_version": model_version, "score": float(score), "result": []}]
        tasks.append(task)
        lines.append({"sample_id": data["sample_id"], "image": data["image"], "score": "" if score is None else score})
    batch = {"batch_id": batch_id, "sample_ids": ids,
             "classes": classes, "model_version": model_version, "strategy": selection.strategy,
             "k": selection.k, "pool_digest": selection.pool_digest,
             "scored_at_commit": selection.commit, "data_version": selection.data_version,
             "labeled_since": sum(row is None for row in rows)}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["sample_id", "image", "score"])
    writer.writeheader()
    writer.writerows(lines)
    atomic_write(os.path.join(out_dir, "tasks.json"), json.dumps(tasks, indent=1))
    atomic_write(os.path.join(out_dir, "tasks.csv"), buffer.getvalue())
    atomic_write(os.path.join(out_dir, "batch.json"), json.dumps(batch, indent=1))
    return batch


@dataclass
class Vote:
    sample_id: str
    task_id: object
    annotator: str
    label: str | None
    cancelled: bool = False


@dataclass
class ImportReport:
    accepted: dict[str, str] = field(default_factory=dict)
    requeued: dict[str, str] = field(default_factory=dict)  # sample id -> reason
    cancelled: int = 0
    changed: int = 0


def _choice(result, where: str) -> str | None:
    """The first chosen label of an annotation's result list (None when nothing was chosen)."""
    for item in result or []:
        value = item.get("value") if isinstance(item, dict) else None
        choices = value.get("choices") if isinstance(value, dict) else None
        if choices is None or choices == []:
            continue
        if not isinstance(choices, list) or not isinstance(choices[0], (str, int)):
            raise ConfigError(f"{where}: `choices` must be a list of labels, got {type(choices).__name__}; export the "
                              "project again from Label Studio")
        return str(choices[0])
    return None


def _identifier(value, what: str, where: str) -> str | int | None:
    """A task or sample id as Label Studio writes it: a string or an integer (None when absent)."""
    if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}: {what} must be a string or an integer, got {type(value).__name__}; export the "
                      "project again from Label Studio")


def read_export(path: str) -> list[Vote]:
    """Votes from a Label Studio JSON, JSON-MIN or CSV export."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the export ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, so not a Label Studio export (JSON, JSON-MIN or CSV)") from None
    if path.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        if rows and not {"sample_id", "label"} <= set(rows[0]):
            raise ConfigError(f"{path}: a CSV export needs sample_id and label columns")
        return [Vote(r["sample_id"], r.get("id") or r["sample_id"], r.get("annotator", ""), r["label"] or None) for r in rows]
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at character {exc.pos}); is the export truncated?") from None
    if not isinstance(tasks, list):
        raise ConfigError(f"{path}: expected a list of tasks (a Label Studio JSON or JSON-MIN export)")
    votes: list[Vote] = []
    seen: set = set()  # task ids (full export), (task id, annotator) pairs (JSON-MIN)
    for number, task in enumerate(tasks, 1):
        if not isinstance(task, dict):
            raise ConfigError(f"{path}: every task must be an object")
        where = f"{path}: task {number}"
        task_id = _identifier(task.get("id"), "its id", where)
        if "annotations" in task or "data" in task:  # full JSON export
            if task_id in seen:
                raise ConfigError(f"{path}: task {task_id} appears twice; export the project again")
            seen.add(task_id)
            data, annotations = task.get("data") or {}, task.get("annotations") or []
            if not isinstance(data, dict) or not isinstance(annotations, list) or \
                    not all(isinstance(a, dict) and isinstance(a.get("result") or [], list) for a in annotations):
                raise ConfigError(f"{path}: task {task_id}: data must be an object and annotations a list of "
                                  "objects with a result list; export the project again as JSON")
            sample = str(_identifier(data.get("sample_id", ""), "data.sample_id", where))
            for annotation in annotations:
                votes.append(Vote(sample, task_id, str(annotation.get("completed_by", "")),
                                  _choice(annotation.get("result"), where), bool(annotation.get("was_cancelled"))))
        else:  # JSON-MIN: one record per annotation
            if "sample_id" not in task:
                raise ConfigError(f"{where} has no sample_id: not a task alops exported, or an error answer "
                                  "instead of an export; export the project again")
            key = (task_id, str(task.get("annotator")))
            if key in seen:
                raise ConfigError(f"{path}: task {task_id} is in the export twice for one annotator")
            seen.add(key)
            label = task.get("label")
            label = _choice([{"value": label}], where) if isinstance(label, dict) else label
            if isinstance(label, (list, dict)):
                raise ConfigError(f"{where}: label must be one label, got {type(label).__name__}")
            votes.append(Vote(str(_identifier(task["sample_id"], "sample_id", where)), task_id,
                              str(task.get("annotator", "")), None if label in (None, "") else str(label)))
    return votes


def check_batch(batch: dict, where: str = "the batch") -> None:
    """A batch record's shape: sample_ids a list of ids, classes a list of labels (or None: the project's)."""
    ids, classes = batch.get("sample_ids"), batch.get("classes")
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
        raise ConfigError(f"{where}: sample_ids must be a list of sample ids; export the batch again "
                          "(`alops labels export`)")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, (str, int)) for c in classes)):
        raise ConfigError(f"{where}: classes must be a list of labels; export the batch again (`alops labels export`)")


def decide(votes: list[Vote], batch: dict, min_agreement: float, allow_partial: bool) -> ImportReport:
    """Validate votes against the batch and take the majority label where annotators agree enough."""
    check_batch(batch)
    expected = {str(i) for i in batch["sample_ids"]}
    classes = {str(c) for c in batch["classes"]}
    report = ImportReport()
    by_sample: dict[str, dict[str, str]] = {}  # sample -> annotator -> label: one vote per annotator
    for vote in votes:
        if vote.sample_id not in expected:
            raise ConfigError(f"sample {vote.sample_id!r} (task {vote.task_id}) was not in batch {batch['batch_id']}; "
                              "import the export of this batch")
        if vote.cancelled:
            report.cancelled += 1
            continue
        if vote.label is not None and vote.label not in classes:
            raise ConfigError(f"task {vote.task_id}: label {vote.label!r} is not a class ({', '.join(sorted(classes))})")
        if vote.label is not None:  # an annotator's latest vote counts once, across tasks of one sample
            by_sample.setdefault(vote.sample_id, {})[vote.annotator or f"task {vote.task_id}"] = vote.label
    missing = sorted(expected - {v.sample_id for v in votes})
    if missing and not allow_partial:
        raise ConfigError(f"the export covers {len(expected) - len(missing)} of {len(expected)} samples of batch "
                          f"{batch['batch_id']} (missing e.g. {missing[0]}); export again, or pass --partial")
    for sample in missing:
        report.requeued[sample] = "not in the export"
    for sample in sorted(expected - set(missing)):
        labels = list(by_sample.get(sample, {}).values())
        if not labels:
            report.requeued[sample] = "no annotation (cancelled or empty)"
            continue
        (top, count), *rest = Counter(labels).most_common()
        if (rest and rest[0][1] == count) or count / len(labels) < min_agreement:
            report.requeued[sample] = f"annotators disagree ({dict(Counter(labels))})"
            continue
        report.accepted[sample] = top
    return report


def apply_labels(manifest: str, labels: dict[str, str]) -> int:
    """Write `labels` (sample id -> label) into the manifest in one rename; the number of rows changed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from alops.data.manifest import ManifestWriter, inspect_manifest, iter_batches

    info = inspect_manifest(manifest)
    ids = pa.array(list(labels), pa.string())
    values = pa.array(list(labels.values()), pa.string())
    changed, writer = 0, None
    with atomic_path(manifest) as staged:
        for batch in iter_batches(info):
            where = pc.index_in(pc.cast(batch.column("id"), pa.string()), value_set=ids)
            new = pc.take(values, where)
            old = batch.column("label")
            update = pc.and_(pc.is_valid(where), pc.invert(pc.fill_null(pc.equal(old, new), False)))
            changed += pc.sum(pc.cast(update, pa.int64())).as_py() or 0
            columns = [pc.if_else(update, new, old) if name == "label" else batch.column(name) for name in batch.schema.names]
            batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
            writer = writer or ManifestWriter(staged.path, batch.schema)
            writer.write(batch)
        if writer:
            writer.close()
        staged.keep = changed > 0
    return changed


def read_batch(batch_path: str) -> dict:
    """A batch file written by `alops labels export`."""
    try:
        with open(batch_path, encoding="utf-8") as handle:
            batch = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{batch_path}: not a batch file written by `alops labels export` ({exc})") from None
    if not isinstance(batch, dict) or not isinstance(batch.get("sample_ids"), list):
        raise ConfigError(f"{batch_path}: not a batch file written by `alops labels export` (no sample_ids list)")
    check_batch(batch, batch_path)
    return batch


def batch_of_export(export_path: str) -> dict:
    """The batch an export covers, read from its tasks (alops' tasks carry sample and batch ids), for an import
    without the batch file: a fresh clone in an import pipeline. Classes: the project's."""
    ids = list(dict.fromkeys(vote.sample_id for vote in read_export(export_path)))
    batches: set[str] = set()
    with contextlib.suppress(OSError, ValueError):
        with open(export_path, encoding="utf-8") as handle:
            tasks = json.load(handle)
        batches = {str(t["data"]["batch_id"]) for t in tasks if isinstance(t, dict) and isinstance(t.get("data"), dict)
                   and t["data"].get("batch_id")} if isinstance(tasks, list) else set()
    return {"batch_id": "+".join(sorted(batches)) or "export", "sample_ids": ids, "classes": None}


def import_labels(export_path: str, batch: dict, manifest: str, min_agreement: float = 0.5,
                  allow_partial: bool = False) -> ImportReport:
    """Validate the export against its batch, then update the manifest (nothing changes on any error)."""
    report = decide(read_export(export_path), batch, min_agreement, allow_partial)
    report.changed = apply_labels(manifest, report.accepted) if report.accepted else 0
    return report


def project_classes(config, manifest: str) -> list[str]:
    """The classes alops.yaml declares, else the labels the manifest already uses."""
    if config.data.classes:
        return list(config.data.classes)
    from alops.data.manifest import inspect_manifest, iter_batches

    seen: set = set()
    for batch in iter_batches(inspect_manifest(manifest)):
        seen.update(v for v in batch.column("label").to_pylist() if v is not None)
    if not seen:
        raise ConfigError("no classes known: declare data.classes in alops.yaml")
    return sorted(seen, key=lambda v: (len(v), v))


def export_batch(project, selection: Selection, out_dir: str, model_version: str | None, image_prefix: str) -> tuple[dict, list[str]]:
    """Tasks, CSV, batch record and Label Studio config for `selection` against the full manifest."""
    manifest = project.manifest("full")
    classes = project_classes(project.config, manifest)
    batch = export_tasks(selection, manifest, out_dir, classes,
                         model_version or (project.context.commit or "local")[:12], image_prefix)
    atomic_write(os.path.join(out_dir, "label_config.xml"), label_config(classes))
    return batch, classes


def import_commit_message(batch: dict) -> str:
    """The label import's commit message; its strategy trailer names the branch's strategy in the report (a
    value that is not a plain strategy name is left out: it is data, never a second trailer or line)."""
    message = f"Labels of batch {batch.get('batch_id', '?')}"
    strategy = batch.get("strategy")
    if isinstance(strategy, str) and _TRAILER_VALUE.fullmatch(strategy):
        message += f"\n\n{STRATEGY_TRAILER}: {strategy}"
    return message


def import_into_project(project, export_path: str, batch: dict, min_agreement: float, allow_partial: bool,
                        record: bool | None) -> tuple[ImportReport, str | None]:
    """Import labels into the full dataset's manifest; on al/ branches (or `record`) commit and push the
    new data version. Returns the import report and the pushed commit (None when nothing was recorded)."""
    manifest = project.manifest("full")
    context = project.context
    if batch.get("classes") is None:  # a batch read back from Label Studio: the project's classes
        batch = {**batch, "classes": project_classes(project.config, manifest)}
    if not (record if record is not None else context.profile.data_commits):
        return import_labels(export_path, batch, manifest, min_agreement, allow_partial), None
    from alops.data.record import commit_data_change

    outcome = {}

    def apply() -> int:
        outcome["report"] = import_labels(export_path, batch, manifest, min_agreement, allow_partial)
        return outcome["report"].changed

    commit = commit_data_change(project, project.dataset_folder("full"), apply, import_commit_message(batch),
                                context.branch)
    return outcome["report"], commit
