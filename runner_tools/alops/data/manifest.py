"""Dataset manifests and row files (CSV, Parquet or JSON Lines), read and written in batches so memory stays bounded.

A manifest has one row per sample: `id`, `label` (empty for an unlabeled sample), `split`, and either
`path` (a file relative to the manifest's folder) or inline features; numeric columns other than `id`
are the features. Labels and splits are read as text.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from alops.core.errors import ConfigError

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
    stored: pa.Schema | None = None  # the file's own column types, restored when rows are written back

    @property
    def label(self) -> str:
        return self.text[0]


ROW_FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson")


def _is_parquet(path: str) -> bool:
    return path.endswith((".parquet", ".pq"))


def _is_jsonl(path: str) -> bool:
    return path.endswith((".jsonl", ".ndjson"))


def _json_reader(path: str, schema: pa.Schema | None = None):
    from pyarrow import json

    parse = json.ParseOptions(explicit_schema=schema) if schema is not None else None
    return json.open_json(path, read_options=json.ReadOptions(block_size=CSV_BLOCK_BYTES), parse_options=parse)


def _json_types(path: str) -> dict[str, pa.DataType]:
    """Column types of a JSON Lines file as its first block shows them; numbers read as float64 later on."""
    reader = _json_reader(path)
    schema = reader.schema
    reader.close()
    return {name: schema.field(name).type for name in schema.names}


def _csv_schema(path: str) -> pa.Schema:
    from pyarrow import csv

    reader = csv.open_csv(path, read_options=csv.ReadOptions(block_size=1 << 16))
    schema = reader.schema
    reader.close()
    duplicates = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if duplicates or any(not n.strip() for n in schema.names):
        raise ConfigError(f"{path}: the first line must name every column once "
                          f"({'repeated: ' + ', '.join(map(repr, duplicates)) if duplicates else 'a column has no name'})")
    return schema


def _read_types(schema: pa.Schema, text: tuple[str, ...]) -> dict[str, pa.DataType]:
    """Types to read a CSV with: text for label/split/path, float64 for numeric features (stable over batches)."""
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

            stored = pq.ParquetFile(path).schema_arrow
            types = {n: stored.field(n).type for n in stored.names}
        elif _is_jsonl(path):
            types = _json_types(path)
            stored = pa.schema(list(types.items()))
        else:
            inferred = _csv_schema(path)
            types = _read_types(inferred, text)
            stored = pa.schema([(n, pa.int64() if pa.types.is_integer(inferred.field(n).type) and t == pa.float64()
                                 else t) for n, t in types.items()])  # text stays text as written
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
    return ManifestInfo(path, tuple(types), numeric, "path" in types, schema, text, os.path.dirname(path), stored)


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
        elif _is_jsonl(info.path):
            source = _json_reader(info.path, pa.schema(
                [(f.name, pa.float64() if f.name in info.numeric else f.type) for f in info.schema]))
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
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

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


def restore_types(batch: pa.RecordBatch, stored: pa.Schema | None) -> pa.RecordBatch:
    """The batch with each column back in the file's own type where that loses nothing (labels read as text,
    integer features read as float64)."""
    if stored is None:
        return batch
    columns = {}
    for name in batch.schema.names:
        column = batch.column(name)
        if name in stored.names and column.type != stored.field(name).type:
            try:
                column = pc.cast(column, stored.field(name).type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # e.g. a column typed int in the first block holds fractions later: keep float64
        columns[name] = column
    return pa.RecordBatch.from_pydict(columns)


class ManifestWriter:
    """Writes batches to a CSV, Parquet or JSON Lines file (the format follows the file name).

    CSV values are quoted only where they must be (a delimiter, quote or line break), as spreadsheets and
    pandas write them, so sampled rows read as the same text."""

    def __init__(self, path: str, schema: pa.Schema, append: bool = False):
        """`append` adds rows after a CSV or JSON Lines file's own bytes (Parquet files are written whole)."""
        self.path = path
        self._schema = schema
        self._writer = None
        self._header = not append
        if _is_parquet(path):
            import pyarrow.parquet as pq

            if append:
                raise ValueError("Parquet files cannot be appended to")
            self._writer = pq.ParquetWriter(path, schema)
        else:
            self._file = open(path, "ab" if append else "wb")
            if append and self._file.tell() and not _ends_with_newline(path):
                self._file.write(b"\n")

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is not None:
            self._writer.write(batch)
        elif _is_jsonl(self.path):
            import json

            self._file.writelines((json.dumps(row, ensure_ascii=False) + "\n").encode() for row in batch.to_pylist())
        else:
            self._file.write(_csv_text(batch, self._header))
            self._header = False

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            return
        if self._header and not _is_jsonl(self.path):
            self._file.write(_csv_text(self._schema.empty_table(), True))
        self._file.close()


def appendable(path: str) -> bool:
    return not _is_parquet(path)


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _csv_text(data, header: bool) -> bytes:
    import io

    from pyarrow import csv

    def written(style: str) -> bytes:
        buffer = io.BytesIO()
        csv.write_csv(data, buffer, csv.WriteOptions(include_header=header, quoting_style=style))
        return buffer.getvalue()

    try:
        return written("none")
    except pa.ArrowInvalid:  # a value holds a delimiter, quote or line break
        return written("needed")


def labeled_count(path: str) -> int:
    """How many samples of the manifest carry a label (streamed)."""
    info = inspect_manifest(path)
    return sum(batch.num_rows - batch.column("label").null_count for batch in iter_batches(info))


def labeled_ids(path: str) -> set[str]:
    """The ids of the manifest's labeled samples (streamed; memory: those ids)."""
    import pyarrow.compute as pc

    found: set[str] = set()
    for batch in iter_batches(inspect_manifest(path)):
        labeled = batch.filter(pc.is_valid(batch.column("label")))
        found.update(str(sample) for sample in labeled.column("id").to_pylist())
    return found
