"""Scoring large pools: streaming top-k over `.npy` or Parquet probabilities, in shards that merge exactly.

A `.npy` file is read chunk by chunk into one reused buffer (a memory map would grow resident memory to
the file's size as it is scanned), so memory stays at one chunk plus k. `--shard i/n` scores rows
[i*N/n, (i+1)*N/n); `merge` combines the shards' selections into exactly the single-pass selection.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from alops.al.selection import Selection
from alops.al.strategies import STREAMABLE, EmptyPoolError, PoolTooSmallError, make_strategy
from alops.al.topk import top_k
from alops.core.errors import ConfigError
from alops.core.extras import require
from alops.core.files import atomic_path

CHUNK_ROWS = 1 << 20


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def rows(self, total: int) -> tuple[int, int]:
        return self.index * total // self.count, (self.index + 1) * total // self.count


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ConfigError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4 for the first of four shards")
    return Shard(int(match.group(1)), int(match.group(2)))


def _npy_header(path: str) -> tuple[tuple, bool, np.dtype, int]:
    """Shape, Fortran order, dtype and the data's offset of a `.npy` file."""
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
        except ValueError as exc:
            raise ConfigError(f"{path}: not a .npy file ({exc})") from None
        return shape, fortran, dtype, handle.tell()


class NpySource:
    """Rows of a 2-D float `.npy` file, read into a reused buffer; with `samples`, model inputs of any shape
    per sample (N, ...), e.g. images (N, 1, H, W), yielded in that shape."""

    def __init__(self, path: str, samples: bool = False):
        self.path = path
        shape, fortran, dtype, self.offset = _npy_header(path)
        if (len(shape) != 2 and not (samples and len(shape) > 2)) or fortran or dtype.kind not in "fiu":
            wanted = "(samples, ...) model inputs" if samples else "a 2-D C-ordered numeric array (rows, columns)"
            raise ConfigError(f"{path}: expected {wanted}, got {shape} {dtype}")
        self.sample_shape = tuple(shape[1:])
        shape = (shape[0], int(np.prod(shape[1:])))
        if shape[1] == 0:
            raise ConfigError(f"{path}: the array has no columns (no classes); expected (rows, classes) probabilities")
        self.shape, self.dtype = shape, dtype
        # the kernels work on native float32/float64: float16, integers and big-endian data are converted per block
        self.work = None if dtype.isnative and dtype in (np.float32, np.float64) else \
            np.dtype(np.float64 if dtype.itemsize > 4 else np.float32)

    def chunks(self, start: int, stop: int, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        width = self.shape[1]
        buffer = np.empty((min(rows, max(stop - start, 1)), width), dtype=self.dtype)
        with open(self.path, "rb", buffering=0) as handle:
            handle.seek(self.offset + start * width * self.dtype.itemsize)
            position = start
            while position < stop:
                count = min(buffer.shape[0], stop - position)
                view = buffer[:count]
                if handle.readinto(memoryview(view).cast("B")) != view.nbytes:  # type: ignore[arg-type]
                    raise ConfigError(f"{self.path}: the file is shorter than its header says; it is truncated")
                block = view if self.work is None else view.astype(self.work)
                yield position, block.reshape((count, *self.sample_shape))
                position += count


class PassesSource:
    """MC-dropout passes (T, N, C) of a `.npy` file, read by samples: a chunk of rows is T reads (one per pass)
    into one of two reused buffers of about CHUNK_BYTES each, so memory does not grow with N or the file."""

    CHUNK_BYTES = 64 * 2**20

    def __init__(self, path: str):
        self.path = path
        shape, fortran, dtype, self.offset = _npy_header(path)
        if len(shape) != 3 or fortran or dtype.kind != "f" or 0 in shape:
            raise ConfigError(f"{path}: expected MC-dropout probabilities (passes, samples, classes) as a C-ordered "
                              f"float .npy, got {shape} {dtype}")
        self.passes, rows, classes = shape
        self.shape, self.dtype = (rows, classes), dtype
        self.work = None if dtype.isnative and dtype in (np.float32, np.float64) else np.dtype(np.float64)

    def chunks(self, start: int, stop: int, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Chunks of samples; the next one is read (on a thread of its own) while the caller scores this one."""
        from concurrent.futures import ThreadPoolExecutor

        width, size = self.shape[1], self.dtype.itemsize
        rows = max(1, min(rows, self.CHUNK_BYTES // (self.passes * width * size), max(stop - start, 1)))
        buffers = [np.empty((self.passes, rows, width), dtype=self.dtype) for _ in range(2)]
        positions = list(range(start, stop, rows))
        with open(self.path, "rb", buffering=0) as handle, ThreadPoolExecutor(1) as reader:
            read = lambda index: reader.submit(self._read, handle, buffers[index % 2], positions[index],
                                               min(rows, stop - positions[index]))
            pending = read(0) if positions else None
            for index, position in enumerate(positions):
                assert pending is not None  # read(index) was submitted for every position
                block = pending.result()
                if index + 1 < len(positions):
                    pending = read(index + 1)  # into the other buffer, which the caller is done with
                yield position, block if self.work is None else block.astype(self.work)

    def _read(self, handle, buffer: np.ndarray, position: int, count: int) -> np.ndarray:
        """Samples position..position+count of every pass into `buffer`: one read per pass."""
        total, width, size = self.shape[0], self.shape[1], self.dtype.itemsize
        for one in range(self.passes):
            handle.seek(self.offset + ((one * total) + position) * width * size)
            view = buffer[one, :count]
            if handle.readinto(memoryview(view).cast("B")) != view.nbytes:  # type: ignore[arg-type]
                raise ConfigError(f"{self.path}: the file is shorter than its header says; it is truncated")
        return buffer[:, :count]


class ParquetSource:
    """Rows of a Parquet file whose float columns p0..pC-1 hold probabilities; float64 columns stay float64
    (casting them would change the order of near ties), anything narrower is read as float32."""

    def __init__(self, path: str):
        import pyarrow.parquet as pq

        self.path = path
        self.file = pq.ParquetFile(path, pre_buffer=False)
        names = self.file.schema_arrow.names
        self.columns = sorted((n for n in names if re.fullmatch(r"p\d+", n)), key=lambda n: int(n[1:]))
        if not self.columns:
            raise ConfigError(f"{path}: no probability columns p0, p1, ... found")
        self.shape = (self.file.metadata.num_rows, len(self.columns))
        import pyarrow as pa

        wide = any(pa.types.is_float64(self.file.schema_arrow.field(name).type) for name in self.columns)
        self.dtype = np.dtype(np.float64 if wide else np.float32)

    def chunks(self, start: int, stop: int, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        position = 0
        for batch in self.file.iter_batches(batch_size=rows, columns=self.columns):
            lo, hi = max(start - position, 0), min(stop - position, batch.num_rows)
            if lo < hi:
                block = np.stack([batch.column(c).to_numpy(zero_copy_only=False)[lo:hi] for c in self.columns], axis=1)
                yield position + lo, np.ascontiguousarray(block, dtype=self.dtype)
            position += batch.num_rows
            if position >= stop:
                break


def pool_digest(path: str) -> str:
    """Identifies a pool file cheaply (its size, first and last MiB): shards of different pools never merge."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def open_pool(path: str, passes: bool = False, inputs: bool = False):
    """The pool file for streaming: probabilities (.npy or Parquet), with `passes` MC-dropout passes (.npy), with
    `inputs` a model's inputs (.npy of any per-sample shape, or Parquet)."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such pool file (.npy or .parquet of probabilities)")
    if passes:
        if path.endswith((".parquet", ".pq")):
            raise ConfigError(f"{path}: BALD reads MC-dropout passes from a (passes, samples, classes) .npy file")
        return PassesSource(path)
    return ParquetSource(path) if path.endswith((".parquet", ".pq")) else NpySource(path, samples=inputs)


def _sized_pool(path: str, k: int, passes: bool = False, inputs: bool = False):
    """The pool file opened for streaming and its row count, once k is known to fit it."""
    source = open_pool(path, passes, inputs)
    total = source.shape[0]
    if total == 0:
        raise EmptyPoolError(f"{path}: the pool is empty")
    if k < 1:
        raise ConfigError(f"k={k}: ask for at least one sample")
    if k > total:
        raise PoolTooSmallError(f"k={k} is larger than the pool ({total} samples); ask for at most {total}")
    return source, total


def select_streaming(
    path: str, strategy: str, k: int, seed: int = 0, shard: Shard | None = None,
    chunk_rows: int = CHUNK_ROWS, progress: Callable[[int, int], None] | None = None,
) -> Selection:
    """Score the pool (or one shard of it) chunk by chunk and keep the top k."""
    chosen = make_strategy(strategy)
    if not chosen.streams:
        raise ConfigError(f"strategy {strategy!r} cannot stream; streaming strategies: {', '.join(STREAMABLE)}")
    source, total = _sized_pool(path, k, passes=chosen.needs == "mc_probs")
    start, stop = shard.rows(total) if shard else (0, total)
    report = (lambda done: progress(done - start, stop - start)) if progress else None
    best = chosen.stream(source.chunks(start, stop, chunk_rows), k, seed, report)
    return Selection(strategy=strategy, k=k, seed=seed, pool=os.path.basename(path), pool_rows=total,
                     pool_digest=pool_digest(path), shard=f"{shard.index}/{shard.count}" if shard else None,
                     rows=[start, stop], indices=best.rows.tolist(), scores=best.scores.tolist())


def select_scored_by_model(model_path: str, inputs_path: str, strategy: str, k: int, seed: int = 0,
                           shard: Shard | None = None, device: str = "cpu", chunk_rows: int = 65536,
                           progress: Callable[[int, int], None] | None = None) -> Selection:
    """Scoring and selection in one pass: the model runs over the inputs (or one shard of them) chunk by chunk
    and only the running top k is kept, so n jobs score n parts of the pool and `merge` gives the one-pass
    selection. The probabilities are never written."""
    chosen = make_strategy(strategy)
    if not chosen.streams or chosen.needs != "probs":
        raise ConfigError(f"strategy {strategy!r} does not score one model's probabilities; with --model use one of: "
                          f"{', '.join(s for s in STREAMABLE if s != 'bald')}")
    source, total = _sized_pool(inputs_path, k, inputs=True)
    start, stop = shard.rows(total) if shard else (0, total)
    report = (lambda done: progress(done - start, stop - start)) if progress else None
    with tempfile.TemporaryDirectory(prefix="alops-model-") as folder:
        local = model_file(model_path, folder)
        predict = _predictor(local, device)
        blocks = ((offset, np.ascontiguousarray(predict(block), dtype=np.float32))
                  for offset, block in source.chunks(start, stop, chunk_rows))
        best = chosen.stream(blocks, k, seed, report)
        digest = model_digest(local)
    registry = model_path.startswith(MODEL_URI_PREFIXES)
    return Selection(strategy=strategy, k=k, seed=seed, pool=os.path.basename(inputs_path), pool_rows=total,
                     pool_digest=pool_digest(inputs_path),
                     model=model_path if registry else os.path.basename(model_path), model_digest=digest,
                     shard=f"{shard.index}/{shard.count}" if shard else None, rows=[start, stop],
                     indices=best.rows.tolist(), scores=best.scores.tolist())


def score_with_model(model_path: str, inputs_path: str, out_path: str, device: str = "cpu",
                     chunk_rows: int = 65536, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Probabilities of a model over an inputs `.npy` (N, features, or N samples of any shape such as images
    (N, 1, H, W)), streamed into an (N, C) float32 `.npy`.

    The model (a file or an MLflow URI, see `model_file`) is TorchScript (`torch.jit.save`) or a torch.export
    program (`.pt2`; softmax over their outputs) or a pickled scikit-learn estimator with `predict_proba`
    (`.joblib` / `.pkl`: load only models you trust). Returns (N, C).
    """
    source = open_pool(inputs_path, inputs=True)
    total = source.shape[0]
    if total == 0:
        raise EmptyPoolError(f"{inputs_path}: no rows to score")
    classes = 0
    with (tempfile.TemporaryDirectory(prefix="alops-model-") as folder,
          atomic_path(out_path, suffix=".npy") as staged, open(staged.path, "wb") as out):
        predict = _predictor(model_file(model_path, folder), device)
        for offset, block in source.chunks(0, total, chunk_rows):
            probs = np.ascontiguousarray(predict(block), dtype=np.float32)
            if not classes:
                classes = probs.shape[1]
                np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": (total, classes)})
            out.write(probs.tobytes())
            if progress:
                progress(offset + block.shape[0], total)
    return total, classes


MODEL_URI_PREFIXES = ("models:/", "runs:/")


def is_mlflow_model(path: str) -> bool:
    """A folder MLflow wrote with `log_model` / `save_model` (it holds an `MLmodel` file)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "MLmodel"))


def model_file(model: str, folder: str) -> str:
    """The local model of `model`: a file or an MLflow model folder, or an MLflow URI (`models:/name@champion`,
    `models:/name/3`, `runs:/<run id>/model.pt`) downloaded into `folder` from $MLFLOW_TRACKING_URI's server."""
    if not model.startswith(MODEL_URI_PREFIXES):
        if not (os.path.isfile(model) or is_mlflow_model(model)):
            raise ConfigError(f"{model}: no such model file or MLflow model folder")
        return model
    mlflow = require("mlflow", "track", "a model from the MLflow registry")
    from mlflow.exceptions import MlflowException

    from alops.core.secrets import redact_url

    try:
        source = _version_source(model) if model.startswith("models:/") else model
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=folder)
    except (MlflowException, OSError) as exc:
        detail = redact_url(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        raise ConfigError(f"{model}: cannot download the model ({detail}); check the name, version or alias and "
                          "MLFLOW_TRACKING_URI") from None
    if os.path.isdir(local) and not is_mlflow_model(local):
        files = [os.path.join(d, n) for d, _, names in os.walk(local) for n in names]
        if len(files) != 1:
            raise ConfigError(f"{model}: the model version holds {len(files)} files and no MLmodel; register the model "
                              "file itself, or log it with mlflow.sklearn or mlflow.pytorch")
        local = files[0]
    return local


def model_digest(path: str) -> str:
    """The digest of a model file, or of an MLflow model folder's files (names and bytes)."""
    if not os.path.isdir(path):
        return pool_digest(path)
    digest = hashlib.sha256()
    for name in sorted(os.path.relpath(os.path.join(d, n), path) for d, _, names in os.walk(path) for n in names):
        digest.update(name.encode() + b"\0" + pool_digest(os.path.join(path, name)).encode())
    return digest.hexdigest()[:16]


def _mlflow_predictor(path: str, device: str):
    """Class probabilities from an MLflow model folder of the scikit-learn (`predict_proba`) or PyTorch
    (softmax over the outputs) flavour."""
    import yaml

    mlflow = require("mlflow", "track", "an MLflow model")
    with open(os.path.join(path, "MLmodel"), encoding="utf-8") as handle:
        flavours = (yaml.safe_load(handle) or {}).get("flavors") or {}
    if "sklearn" in flavours:
        model = mlflow.sklearn.load_model(path)
        if not hasattr(model, "predict_proba"):
            raise ConfigError(f"{path}: the estimator has no predict_proba")
        return lambda block: model.predict_proba(block)
    if "pytorch" in flavours:
        return _torch_probabilities(mlflow.pytorch.load_model(path, map_location=device).eval(), path, device)
    raise ConfigError(f"{path}: an MLflow model of flavour(s) {', '.join(sorted(flavours)) or 'none'}; alops scores "
                      "the sklearn and pytorch flavours (class probabilities)")


def _version_source(uri: str) -> str:
    """Where a registered version's files are (`models:/name@alias` or `models:/name/<version>`): a version
    registered from a run's file (as `alops release` does) downloads as that file."""
    from mlflow.tracking import MlflowClient

    reference = uri[len("models:/"):]
    client = MlflowClient()
    if "@" in reference:
        name, _, alias = reference.partition("@")
        return client.get_model_version_by_alias(name, alias).source or ""
    name, _, number = reference.rpartition("/")
    return client.get_model_version(name, number).source or ""


def _predictor(model_path: str, device: str):
    """A function from an input block to class probabilities, for a TorchScript (`.pt`), torch.export
    (`.pt2`) or pickled scikit-learn (`.joblib`/`.pkl`, `predict_proba`) model file, or an MLflow model folder."""
    if is_mlflow_model(model_path):
        return _mlflow_predictor(model_path, device)
    if model_path.endswith((".joblib", ".pkl")):
        joblib = require("joblib", "sim", "a scikit-learn model")

        model = joblib.load(model_path)
        if not hasattr(model, "predict_proba"):
            raise ConfigError(f"{model_path}: the estimator has no predict_proba")
        return lambda block: model.predict_proba(block)
    torch = require("torch", "torch", "a PyTorch model")

    if model_path.endswith(".pt2"):
        try:
            model = torch.export.load(model_path).module()
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(f"{model_path}: not a torch.export program ({str(exc).splitlines()[0]}); save it with "
                              "torch.export.save") from None
        model.to(device)
    else:
        try:
            model = torch.jit.load(model_path, map_location=device)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"{model_path}: not a TorchScript model ({str(exc).splitlines()[0]}); save it with "
                              "torch.jit.save, or torch.export.save as .pt2") from None
        model.eval()
    return _torch_probabilities(model, model_path, device)


def _torch_probabilities(model, model_path: str, device: str):
    """Softmax over a PyTorch model's outputs, block by block."""
    import torch

    def predict(block):
        with torch.no_grad():
            try:
                outputs = model(torch.from_numpy(np.asarray(block, dtype=np.float32)).to(device))
            except (RuntimeError, AssertionError) as exc:
                raise ConfigError(f"{model_path}: the model refused a block of {len(block)} rows "
                                  f"({str(exc).splitlines()[0]}); export it with a dynamic batch dimension") from None
            return torch.softmax(outputs, dim=1).cpu().numpy()

    return predict


def _load(path: str | None, what: str, dims: int) -> np.ndarray | None:
    if path is None:
        return None
    try:
        array = np.load(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc})") from None
    if array.ndim != dims:
        raise ConfigError(f"{path}: expected {what} with {dims} dimensions, got shape {array.shape}")
    return array


def select_in_memory(path: str, strategy: str, k: int, seed: int, balanced: bool,
                     embeddings: str | None, labeled_embeddings: str | None) -> Selection:
    """Strategies that need the whole pool at once (BALD, core-set, hybrid, class-balanced)."""
    from alops.al.kernels import check_rows
    from alops.al.strategies import Pool, make_strategy

    chosen = make_strategy(strategy, balanced)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such pool file")
    pool = Pool(embeddings=_load(embeddings, "embeddings", 2), labeled_embeddings=_load(labeled_embeddings, "labeled embeddings", 2))
    if strategy == "bald":
        pool.mc_probs = _load(path, "MC-dropout probabilities (passes, N, C)", 3)  # BALD checks while it scores
    elif chosen.name != "core-set":  # core-set needs distances only: POOL may be the embeddings file itself
        source = open_pool(path)
        pool.probs = np.concatenate([block.copy() for _, block in source.chunks(0, source.shape[0], CHUNK_ROWS)]) \
            if source.shape[0] else np.empty((0, source.shape[1]), np.float32)
        if len(pool.probs):
            check_rows(pool.probs, 0)
    if pool.embeddings is not None and len(pool.embeddings) != len(pool):
        raise ConfigError(f"{embeddings}: {len(pool.embeddings)} rows, but the pool has {len(pool)}")
    indices, scores = chosen.select(pool, k, np.random.default_rng(seed))
    return Selection(strategy=chosen.name, k=k, seed=seed, pool=os.path.basename(path), pool_rows=len(pool),
                     pool_digest=pool_digest(path), rows=[0, len(pool)], indices=indices.tolist(),
                     scores=[float(x) if np.isfinite(x) else None for x in scores])  # JSON has no inf


def merge(selections: list[Selection]) -> Selection:
    """Combine the selections of all shards of one query into the single-pass selection."""
    if not selections:
        raise ConfigError("no shard selections to merge")
    first = selections[0]
    keys = ("strategy", "k", "seed", "pool_rows", "pool_digest", "model_digest", "commit", "data_version")
    for other in selections[1:]:
        for key in keys:
            if getattr(other, key) != getattr(first, key):
                raise ConfigError(f"shard selections disagree on {key}: {getattr(first, key)!r} vs {getattr(other, key)!r}")
    shards = sorted(s.shard or "" for s in selections)
    count = int(shards[0].split("/")[1]) if shards[0] else 0
    if not count or shards != sorted(f"{i}/{count}" for i in range(count)):
        raise ConfigError(f"merge needs each shard 0/n .. n-1/n exactly once; got {', '.join(shards)}")
    named = [s.sample_ids is not None for s in selections]
    if any(named) and not all(named):
        raise ConfigError("some shard selections name their samples (--ids) and some do not: select every shard "
                          "with the same --ids")
    rows = np.concatenate([np.array(s.indices, np.int64) for s in selections])
    scores = np.concatenate([np.array(s.scores, np.float64) for s in selections])
    rows, scores = top_k(rows, scores, first.k)
    merged = dataclasses.replace(first, shard=None, rows=[0, first.pool_rows], indices=rows.tolist(),
                                 scores=scores.tolist(), sample_ids=None, skipped_labeled=None)
    if all(named):
        ids = {row: sample for s in selections for row, sample in zip(s.indices, s.sample_ids or [])}
        merged.sample_ids = [ids[row] for row in merged.indices]
    return merged




def _pool_ids(ids_path: str) -> Iterator[tuple[int, str]]:
    """(pool row, sample id) for each line of a text file with one id per pool row, streamed."""
    try:
        with open(ids_path, encoding="utf-8") as handle:
            for row, line in enumerate(handle):
                yield row, line.rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{ids_path}: cannot read the pool's ids ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{ids_path}: not a text file of sample ids (one per pool row)") from None


def sample_ids(ids_path: str, rows: list[int], pool_rows: int) -> list[str]:
    """The ids of pool `rows` from a text file with one id per pool row, streamed (memory: the chosen ids)."""
    wanted: dict[int, str | None] = {row: None for row in rows}
    count = 0
    for count, (row, sample) in enumerate(_pool_ids(ids_path), start=1):  # noqa: B007 (count: after the loop)
        if row in wanted:
            wanted[row] = sample
    if count != pool_rows:
        raise ConfigError(f"{ids_path}: {count} ids for a pool of {pool_rows} rows; write one id per pool row, "
                          "in the pool's order")
    missing = [row for row, found in wanted.items() if not found]
    if missing:
        raise ConfigError(f"{ids_path}: line {missing[0] + 1} is empty; every pool row needs a sample id")
    return [str(wanted[row]) for row in rows]  # every one found (checked above)


def rows_of_ids(ids_path: str, wanted: set[str]) -> tuple[list[int], int]:
    """The pool rows whose id (one per line of `ids_path`) is in `wanted`, and the number of rows; streamed."""
    rows, count = [], 0
    for count, (row, sample) in enumerate(_pool_ids(ids_path), start=1):  # noqa: B007 (count: after the loop)
        if sample in wanted:
            rows.append(row)
    return rows, count


def select(pool: str, strategy: str, k: int, seed: int = 0, shard: str | None = None, balanced: bool = False,
           embeddings: str | None = None, labeled_embeddings: str | None = None, progress=None,
           ids: str | None = None, model: str | None = None, device: str = "cpu",
           skip_ids: set[str] | None = None) -> Selection:
    """The selection of `k` samples from the pool file: streamed (and sharded) where the strategy allows it;
    with `ids` (one sample id per pool row) it names the samples, so the export joins by id; with `model`, `pool`
    holds the model's inputs and scoring is fused with the selection. Samples named in `skip_ids` (labeled since
    the pool was scored) are never picked: the top k + (skipped rows) less the skipped rows is the top k of the
    rest, so shards still merge exactly."""
    if skip_ids is not None and not ids:
        raise ConfigError("skipping labeled samples needs the pool's sample ids: add --ids")
    if skip_ids is not None and (strategy not in STREAMABLE or balanced):
        raise ConfigError(f"skipping labeled samples keeps the selection exact for the top-k strategies only "
                          f"({', '.join(STREAMABLE)}, without --balanced); score the pool again instead")
    if shard and balanced:
        raise ConfigError("--balanced needs the whole pool's predicted classes, so it cannot be sharded: drop --shard, "
                          "or --balanced")
    if ids and not os.path.isfile(ids):
        raise ConfigError(f"{ids}: no such ids file (one sample id per pool row, in the pool's order)")
    skipped: list[int] = []
    if skip_ids and ids:  # skip_ids without ids was refused above
        skipped, count = rows_of_ids(ids, skip_ids)
        if k > count - len(skipped):
            raise PoolTooSmallError(f"k={k} is larger than the {count - len(skipped)} pool samples still unlabeled "
                                    f"({len(skipped)} were labeled since the pool was scored); ask for fewer, or score "
                                    "the pool again")
    wider = k + len(skipped)
    if model:
        if balanced or embeddings:
            raise ConfigError("--model scores and selects in one streaming pass: --balanced and --embeddings need the "
                              "whole pool's probabilities; write them with `alops query score` first")
        result = select_scored_by_model(model, pool, strategy, wider, seed, parse_shard(shard) if shard else None,
                                        device, progress=progress)
    elif shard or (strategy in STREAMABLE and not balanced):
        result = select_streaming(pool, strategy, wider, seed, parse_shard(shard) if shard else None, progress=progress)
    else:
        result = select_in_memory(pool, strategy, wider, seed, balanced, embeddings, labeled_embeddings)
    if skip_ids is not None:
        left_out = set(skipped)
        kept = [(row, score) for row, score in zip(result.indices, result.scores) if row not in left_out][:k]
        result = dataclasses.replace(result, k=k, indices=[row for row, _ in kept], scores=[score for _, score in kept],
                                     skipped_labeled=len(skipped))
    if ids:
        result.sample_ids = sample_ids(ids, result.indices, result.pool_rows)
    return result
