"""Dataset manifests (CSV or Parquet), read and written in batches so memory stays bounded.

A manifest has one row per sample: `id`, `label` (empty for an unlabeled sample), `split`, and either
`path` (a file relative to the manifest's folder) or inline features; numeric columns other than `id`
are the features. Labels and splits are read as text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from alops.errors import ConfigError

REQUIRED = ("id", "label", "split")
TEXT_COLUMNS = ("label", "split", "path")
BATCH_ROWS = 1 << 18
CSV_BLOCK_BYTES = 1 << 20
SPOOL_SUFFIX = ".alops-spool.arrow"  # larger blocks make pyarrow read ahead hundreds of MB


@dataclass(frozen=True)
class ManifestInfo:
    """The columns of a manifest, as read."""

    path: str
    columns: tuple[str, ...]
    numeric: tuple[str, ...]
    has_path: bool
    schema: pa.Schema
    text: tuple[str, ...] = TEXT_COLUMNS
    root: str = ""  # the folder `path` values are relative to (the manifest's own folder)


def _is_parquet(path: str) -> bool:
    return path.endswith((".parquet", ".pq"))


def _csv_types(path: str, text: tuple[str, ...]) -> dict[str, pa.DataType]:
    """Column types for a CSV: text for label/split/path, float64 for numeric features (stable over batches)."""
    from pyarrow import csv

    reader = csv.open_csv(path, read_options=csv.ReadOptions(block_size=1 << 16))
    schema = reader.schema
    reader.close()
    duplicates = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if duplicates or any(not n.strip() for n in schema.names):
        raise ConfigError(f"{path}: the first line must name every column once "
                          f"({'repeated: ' + ', '.join(map(repr, duplicates)) if duplicates else 'a column has no name'})")
    types: dict[str, pa.DataType] = {}
    for name in schema.names:
        kind = schema.field(name).type
        if name in text:
            types[name] = pa.string()
        elif name == "id":
            types[name] = pa.int64() if pa.types.is_integer(kind) else pa.string()
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            types[name] = pa.float64()
        else:
            types[name] = pa.string()
    return types


def _normalise(batch: pa.RecordBatch, info: ManifestInfo) -> pa.RecordBatch:
    columns = {}
    for name in batch.schema.names:
        column = batch.column(name)
        if name in info.text and not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        elif name in info.numeric and not pa.types.is_float64(column.type):
            column = pc.cast(column, pa.float64())
        if name in info.text[:1]:
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        columns[name] = column
    return pa.RecordBatch.from_pydict(columns)


def inspect_manifest(path: str, required: tuple[str, ...] = REQUIRED, label: str = "label") -> ManifestInfo:
    """The manifest's columns; a missing file or required column is a clear error.

    `label` names the label column (read as text, empty means unlabeled); a log of production inputs
    may call it e.g. `prediction` and need no id or split (`required=()`).
    """
    text = (label, *(c for c in TEXT_COLUMNS if c != label))
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such manifest; create it, or set data.manifest in alops.yaml")
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            schema = pq.ParquetFile(path).schema_arrow
            types = {n: schema.field(n).type for n in schema.names}
        else:
            types = _csv_types(path, text)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{path}: cannot read the manifest: {' '.join(str(exc).split())}") from None
    if any(not str(name).strip() for name in types):
        raise ConfigError(f"{path}: a column has no name; the first line must name every column")
    missing = [c for c in required if c not in types]
    if missing:
        raise ConfigError(
            f"{path}: missing required column(s) {', '.join(missing)} (a manifest has id, label, split, and path or features)"
        )
    numeric = tuple(
        n for n, t in types.items() if n not in ("id", *text) and (pa.types.is_integer(t) or pa.types.is_floating(t))
    )
    schema = pa.schema(list(types.items()))
    return ManifestInfo(path, tuple(types), numeric, "path" in types, schema, text, os.path.dirname(path))


def iter_batches(info: ManifestInfo, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The manifest's rows in batches, label/split/path as text (empty label -> null), features as float64."""
    if info.path.endswith(SPOOL_SUFFIX):
        with pa.OSFile(info.path) as handle:  # read, not mapped: resident memory stays at one batch
            reader = pa.ipc.open_file(handle)
            for index in range(reader.num_record_batches):
                yield reader.get_batch(index)
        return
    try:
        if _is_parquet(info.path):
            import pyarrow.parquet as pq

            source = pq.ParquetFile(info.path, pre_buffer=False).iter_batches(batch_size=batch_rows)
        else:
            from pyarrow import csv

            source = csv.open_csv(
                info.path,
                read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=csv.ConvertOptions(
                    column_types=dict(zip(info.schema.names, info.schema.types)), strings_can_be_null=False
                ),
            )
        for batch in _rebatch(source, batch_rows):
            yield _normalise(batch, info)
    except pa.ArrowException as exc:
        if "straddl" in str(exc):
            raise ConfigError(f"{info.path}: a line is longer than the {CSV_BLOCK_BYTES // 2**20} MiB the reader takes "
                              "at once (a field of several MB?); keep each manifest line below that, e.g. store large "
                              "values in files the path column names") from None
        raise ConfigError(f"{info.path}: malformed manifest: {' '.join(str(exc).split())}") from None


class Spool:
    """A local Arrow copy of a manifest, written during a first pass so later passes skip parsing."""

    def __init__(self, info: ManifestInfo, folder: str):
        import dataclasses

        self.info = dataclasses.replace(info, path=os.path.join(folder, "manifest" + SPOOL_SUFFIX))
        self._writer = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._writer = pa.ipc.new_file(self.info.path, batch.schema)
        self._writer.write_batch(batch)

    def close(self) -> ManifestInfo:
        if self._writer is not None:
            self._writer.close()
        return self.info


def _rebatch(source, rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of about `rows` rows from a source of small ones."""
    pending, count = [], 0
    for batch in source:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


class ManifestWriter:
    """Writes batches to a CSV or Parquet manifest (the format follows the file name)."""

    def __init__(self, path: str, schema: pa.Schema):
        self.path = path
        if _is_parquet(path):
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(path, schema)
        else:
            from pyarrow import csv

            self._writer = csv.CSVWriter(path, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write(batch)

    def close(self) -> None:
        self._writer.close()


def labeled_count(path: str) -> int:
    """How many samples of the manifest carry a label (streamed)."""
    info = inspect_manifest(path)
    return sum(batch.num_rows - batch.column("label").null_count for batch in iter_batches(info))
