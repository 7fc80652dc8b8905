"""Dev datasets: stratified, deterministic sampling of the full data, fidelity report, representativeness check.

The sample keeps the share of every stratum (label x split; unlabeled samples are their own label) and always
takes outliers and corrupt samples (missing fields, missing, empty or truncated files (alops.data.integrity), numeric
values beyond `z_outlier` standard deviations), up to `outlier_share` of the dev dataset; the images it takes are
decoded in full, and every damaged file is named in the report. It streams: one pass parses the manifest
(counting strata and spooling an Arrow copy next to the dev folder), two more read the copy (select, write), with
memory bounded by the sample.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alops.core.errors import AlopsError, ConfigError
from alops.core.files import copy_file, stays_inside, write_json
from alops.data import drift, integrity
from alops.data.manifest import (
    ROW_FILE_SUFFIXES,
    ManifestInfo,
    ManifestWriter,
    Spool,
    inspect_manifest,
    iter_batches,
    restore_types,
)

UNLABELED = "<unlabeled>"
_SPLITS = 1 << 12  # stratum code = label code * _SPLITS + split code
_STRATUM = "__alops_stratum"  # the spooled copy's column of stratum codes
LISTED = 100  # damaged files named in the report (all are counted)


@dataclass(frozen=True)
class DevSize:
    """How big the dev dataset is: a fraction of the full data, a row count, or a time budget."""

    fraction: float | None = None
    count: int | None = None
    time_budget_s: float | None = None
    seconds_per_sample: float | None = None

    def rows(self, total: int) -> int:
        if self.count is not None:
            wanted = self.count
        elif self.time_budget_s is not None and self.seconds_per_sample:
            wanted = int(self.time_budget_s / self.seconds_per_sample)
        elif self.fraction is not None:
            wanted = round(self.fraction * total)
        else:
            raise ConfigError("a dev dataset's size needs --fraction, --count or --time-budget")
        return max(1, min(total, wanted))


def check_size(size: DevSize) -> None:
    """Exactly one way of sizing, with a value in range."""
    given = [v is not None for v in (size.fraction, size.count, size.time_budget_s)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of --fraction, --count or --time-budget")
    if size.fraction is not None and not 0 < size.fraction <= 1:
        raise ConfigError(f"--fraction {size.fraction} is outside (0, 1]; use e.g. --fraction 0.05")
    if size.count is not None and size.count < 1:
        raise ConfigError(f"--count {size.count} must be at least 1")
    if size.time_budget_s is not None and (size.time_budget_s <= 0 or not size.seconds_per_sample or size.seconds_per_sample <= 0):
        raise ConfigError("--time-budget needs a positive budget and --seconds-per-sample > 0 (the pipeline's cost per sample)")


class _Codes:
    """Stable integer codes for text values seen across batches (labels, splits)."""

    def __init__(self, first: tuple[str, ...] = ()):
        self.values: list[str] = list(first)
        self._index = {v: i for i, v in enumerate(self.values)}

    def encode(self, column: pa.Array, null_as: str) -> np.ndarray:
        column = pc.fill_null(column, null_as)
        for value in pc.unique(column).to_pylist():
            if value not in self._index:
                self._index[value] = len(self.values)
                self.values.append(value)
        return pc.index_in(column, value_set=pa.array(self.values, pa.string())).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass
class _Census:
    """What pass one learns: stratum counts, feature moments, row count."""

    rows: int
    strata: dict[int, int]
    mean: dict[str, float]
    std: dict[str, float]


def _id_hashes(column: pa.Array) -> np.ndarray:
    if pa.types.is_integer(column.type):
        return column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False).view(np.uint64)
    import pandas as pd

    return pd.util.hash_array(column.to_numpy(zero_copy_only=False))


def _check_paths(info: ManifestInfo, batch: pa.RecordBatch, offset: int) -> None:
    paths = pc.fill_null(batch.column("path"), "")
    escaping = pc.or_(pc.starts_with(paths, "/"), pc.match_substring_regex(paths, r"(^|/)\.\.(/|$)|\\"))
    if pc.any(escaping).as_py():
        row = pc.index(escaping, True).as_py()
        raise ConfigError(
            f"{info.path}: row {offset + row + 2}: path {paths[row].as_py()!r} escapes the dataset folder; "
            "paths must be relative and stay inside it"
        )


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    """A text column, or nulls where the file has none (row files without a label or split)."""
    if name in batch.schema.names:
        return batch.column(name)
    return pa.nulls(batch.num_rows, pa.string())


def _strata(batch: pa.RecordBatch, info: ManifestInfo, labels: _Codes, splits: _Codes) -> np.ndarray:
    return labels.encode(_column(batch, info.label), UNLABELED) * _SPLITS + splits.encode(_column(batch, "split"), "")


def _census(info: ManifestInfo, labels: _Codes, splits: _Codes, classes: tuple[str, ...] | None, spool: Spool) -> _Census:
    strata: dict[int, int] = {}
    sums = {c: [0.0, 0.0, 0] for c in info.numeric}
    hashes = []
    rows = 0
    for batch in iter_batches(info):
        label = _column(batch, info.label)
        if classes is not None:
            unknown = pc.and_(pc.is_valid(label), pc.invert(pc.is_in(label, value_set=pa.array(classes, pa.string()))))
            if pc.any(unknown).as_py():
                row = pc.index(unknown, True).as_py()
                raise ConfigError(
                    f"{info.path}: row {rows + row + 2}: label {label[row].as_py()!r} is not a declared class "
                    f"({', '.join(classes)}); fix the row or data.classes in alops.yaml"
                )
        if info.has_path:
            _check_paths(info, batch, rows)
        code = _strata(batch, info, labels, splits)
        for value, count in _count(code).items():
            strata[value] = strata.get(value, 0) + count
        for column in info.numeric:
            values = batch.column(column).to_numpy(zero_copy_only=False)
            finite = values[np.isfinite(values)]
            sums[column][0] += float(finite.sum())
            sums[column][1] += float(np.square(finite).sum())
            sums[column][2] += finite.size
        if "id" in info.columns:
            hashes.append(_id_hashes(batch.column("id")))
        spool.write(batch.append_column(_STRATUM, pa.array(code)))  # later passes read the codes
        rows += batch.num_rows
    if rows == 0:
        raise ConfigError(f"{info.path}: the full dataset is empty; add samples before making a dev dataset")
    if len(splits.values) > _SPLITS:
        raise ConfigError(f"{info.path}: more than {_SPLITS} distinct splits; the split column names train/val/test")
    if hashes:
        _check_unique_ids(info, np.concatenate(hashes))
    mean, std = {}, {}
    for column, (total, squares, n) in sums.items():
        mean[column] = total / n if n else 0.0
        std[column] = float(np.sqrt(max(squares / n - mean[column] ** 2, 0.0))) if n else 0.0
    return _Census(rows, strata, mean, std)


def _check_unique_ids(info: ManifestInfo, hashes: np.ndarray) -> None:
    hashes.sort()
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    if repeated.size == 0:
        return
    for batch in iter_batches(info):  # a hash collision is not a duplicate: compare the ids themselves
        ids = batch.column("id")
        hit = np.isin(_id_hashes(ids), repeated)
        seen: set = set()
        for value in ids.filter(pa.array(hit)).to_pylist():
            if value in seen:
                raise ConfigError(f"{info.path}: duplicate id {value!r}; every sample needs its own id")
            seen.add(value)


def _mapped(census: _Census, labels: _Codes, like: dict[str, float], path: str) -> dict[int, float]:
    """Stratum weights whose labeled part has the class shares `like` (each class spread over its splits as in
    the full data); unlabeled strata keep their size. A class `like` has and no labeled sample carries stops."""
    per_label: dict[str, int] = {}
    for code, count in census.strata.items():
        name = labels.values[code // _SPLITS]
        per_label[name] = per_label.get(name, 0) + count
    labeled = sum(count for name, count in per_label.items() if name != UNLABELED)
    missing = sorted((name for name, share in like.items() if share > 0 and name not in per_label), key=lambda n: -like[n])
    if missing:
        raise ConfigError(f"{path}: no labeled sample of class {missing[0]!r} ({100 * like[missing[0]]:.1f}% of the "
                          "live data) to map: label some of the pool first (the query round), then make the dev "
                          "dataset again")
    weights = {}
    for code, count in census.strata.items():
        name = labels.values[code // _SPLITS]
        weights[code] = count if name == UNLABELED else like.get(name, 0.0) * labeled * count / per_label[name]
    return weights


def _quotas(strata: dict[int, float], total: float, wanted: int) -> dict[int, int]:
    """Per-stratum sample sizes proportional to the strata's sizes (largest remainder), at least one per stratum."""
    exact = {s: wanted * n / total for s, n in strata.items()}
    quota = {s: int(v) for s, v in exact.items()}
    for s in sorted(exact, key=lambda s: (quota[s] - exact[s], s))[: wanted - sum(quota.values())]:
        quota[s] += 1
    if wanted >= len(strata):
        for s in quota:
            quota[s] = max(quota[s], 1)
    return quota


def _damaged(root: str, paths: list, found: list[tuple[str, str]]) -> np.ndarray:
    """Per row, whether its file is missing, empty or cut short (appended to `found` as (path, problem))."""
    bad = np.zeros(len(paths), dtype=bool)
    for i, rel in enumerate(paths):
        problem = integrity.file_problem(os.path.join(root, rel)) if rel else "missing"
        if problem:
            bad[i] = True
            found.append((rel or "", problem))
    return bad


@dataclass
class _Selection:
    rows: np.ndarray  # sorted row numbers in the full manifest
    strata: np.ndarray  # per selected row: its stratum code
    special: np.ndarray  # per selected row: outlier or corrupt
    special_found: int
    features: dict[str, np.ndarray]  # numeric columns of the selected rows
    damaged: list[tuple[str, str]]  # (path, problem) of every damaged file in the full data


def _select(info, census, labels, splits, wanted, seed, z_outlier, outlier_share, weights) -> _Selection:
    rng = np.random.default_rng(seed)
    quota = _quotas(weights, sum(weights.values()), wanted)
    special_cap = {0: int(np.ceil(outlier_share * wanted))}
    empty = (np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64)) + tuple(
        np.empty(0, np.float64) for _ in info.numeric
    )
    normal_pool, special_pool = empty, empty
    limits = _KeyLimits()
    found = 0
    damaged: list[tuple[str, str]] = []
    offset = 0
    feature_columns = [c for c in info.columns if c not in ("id", info.label)]
    for batch in iter_batches(info):
        n = batch.num_rows
        keys = rng.random(n)
        code = batch.column(_STRATUM).to_numpy()
        special = np.zeros(n, dtype=bool)
        for column in feature_columns:
            special |= batch.column(column).is_null().to_numpy(zero_copy_only=False)
        features = [batch.column(column).to_numpy(zero_copy_only=False) for column in info.numeric]
        for column, values in zip(info.numeric, features):
            if census.std[column] > 0:
                with np.errstate(invalid="ignore"):
                    special |= ~(np.abs(values - census.mean[column]) <= z_outlier * census.std[column])
        if info.has_path:
            special |= _damaged(info.root, batch.column("path").to_pylist(), damaged)
        found += int(special.sum())
        columns = (np.arange(offset, offset + n), keys, code, *features)
        special_pool = _bottom_k(_join(special_pool, columns, special), special_cap, by_stratum=False)
        normal_pool = _bottom_k(_join(normal_pool, columns, ~special & (keys < limits.of(code))), quota)
        limits.update(normal_pool, quota)
        offset += n
    forced_per_stratum = _count(special_pool[2])
    reduced = {s: max(q - forced_per_stratum.get(s, 0), 0) for s, q in quota.items()}
    normal_pool = _bottom_k(normal_pool, reduced)
    merged = [np.concatenate(pair) for pair in zip(normal_pool, special_pool)]
    flags = np.concatenate([np.zeros(normal_pool[0].size, bool), np.ones(special_pool[0].size, bool)])
    order = np.argsort(merged[0], kind="stable")
    rows, _, strata, *features = (column[order] for column in merged)
    return _Selection(rows, strata, flags[order], found, dict(zip(info.numeric, features)), damaged)


class _KeyLimits:
    """Per stratum, the largest key a row may have to still enter a full pool (1.0 while it is not full)."""

    def __init__(self):
        self.table = np.ones(0)

    def of(self, codes: np.ndarray) -> np.ndarray:
        if codes.size and codes.max() >= self.table.size:
            self.table = np.r_[self.table, np.ones(codes.max() + 1 - self.table.size)]
        return self.table[codes]

    def update(self, pool: tuple, quota: dict[int, int]) -> None:
        strata, keys = pool[2], pool[1]  # sorted by stratum, then key
        if not strata.size:
            return
        ends = np.flatnonzero(np.r_[strata[1:] != strata[:-1], True])
        counts = np.diff(np.r_[-1, ends])
        for stratum, count, last in zip(strata[ends], counts, keys[ends]):
            if count >= quota.get(int(stratum), 0):
                self.of(np.array([stratum]))
                self.table[stratum] = last


def _join(pool: tuple, columns: tuple, mask: np.ndarray) -> tuple:
    return tuple(np.concatenate([old, new[mask]]) for old, new in zip(pool, columns))


def _bottom_k(pool: tuple, quota: dict[int, int], by_stratum: bool = True) -> tuple:
    """Keep the rows with the smallest keys, at most quota[stratum] per stratum (or quota[0] in all).

    `pool` is (rows, keys, strata, *features), arrays of equal length.
    """
    keys, strata = pool[1], pool[2]
    groups = strata if by_stratum else np.zeros_like(strata)
    order = np.lexsort((keys, groups))
    groups = groups[order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if groups.size else np.empty(0, np.int64)
    lengths = np.diff(np.r_[starts, groups.size])
    rank = np.arange(groups.size) - np.repeat(starts, lengths)
    limit = np.array([quota.get(int(g), 0) for g in groups[starts]], dtype=np.int64)
    keep = order[rank < np.repeat(limit, lengths)]
    return tuple(column[keep] for column in pool)


def ks_statistic(at_or_below: np.ndarray, below: np.ndarray, full_n: int, dev_sorted: np.ndarray) -> float:
    """Two-sample KS statistic; `at_or_below[i]`/`below[i]` count full values <= / < the i-th dev value."""
    if dev_sorted.size == 0 or full_n == 0:
        return 0.0
    n = dev_sorted.size
    gap_at = np.abs(at_or_below / full_n - np.searchsorted(dev_sorted, dev_sorted, side="right") / n)
    gap_below = np.abs(below / full_n - np.searchsorted(dev_sorted, dev_sorted, side="left") / n)
    return float(max(gap_at.max(), gap_below.max()))


class _FullCdf:
    """Counts of full-data values at and below each dev value, accumulated batch by batch."""

    def __init__(self, dev_sorted: np.ndarray):
        self.dev_sorted = dev_sorted
        self.at_or_below = np.zeros(dev_sorted.size, np.int64)
        self.below = np.zeros(dev_sorted.size, np.int64)
        self.n = 0

    def add(self, values: np.ndarray) -> None:
        values = np.sort(values[np.isfinite(values)])
        self.at_or_below += np.searchsorted(values, self.dev_sorted, side="right")
        self.below += np.searchsorted(values, self.dev_sorted, side="left")
        self.n += values.size

    def ks(self) -> float:
        return ks_statistic(self.at_or_below, self.below, self.n, self.dev_sorted)


def _take(batch: pa.RecordBatch, rows: np.ndarray, offset: int) -> pa.RecordBatch:
    lo, hi = np.searchsorted(rows, [offset, offset + batch.num_rows])
    return batch.take(pa.array(rows[lo:hi] - offset))


def _write(info: ManifestInfo, selection: _Selection, target: str, name: str) -> dict[str, float]:
    """Write the dev manifest and copy its files into `target`, decoding each image (a damaged one is kept and
    added to `selection.damaged`); returns the KS statistic per numeric column."""
    known = {path for path, _ in selection.damaged}
    cdfs = {}
    for column, values in selection.features.items():
        cdfs[column] = _FullCdf(np.sort(values[np.isfinite(values)]))
    writer = None
    offset = 0
    for batch in iter_batches(info):
        picked = restore_types(_take(batch.drop_columns([_STRATUM]), selection.rows, offset), info.stored)
        offset += batch.num_rows
        if writer is None:
            writer = ManifestWriter(os.path.join(target, name), picked.schema)
        writer.write(picked)
        for column, cdf in cdfs.items():
            cdf.add(batch.column(column).to_numpy(zero_copy_only=False))
        if info.has_path:
            for rel in picked.column("path").to_pylist():
                source = os.path.join(info.root, rel or "")
                if rel and not stays_inside(info.root, source):
                    raise ConfigError(f"{info.path}: path {rel!r} leads outside the dataset folder (a link or ..): "
                                      "keep every sample's file inside the dataset")
                if rel and os.path.isfile(source):
                    copy_file(source, os.path.join(target, rel))
                    problem = None if rel in known else integrity.decode_problem(source)
                    if problem:
                        selection.damaged.append((rel, problem))
    if writer is None:
        raise ConfigError(f"{info.path}: no rows to sample a dev dataset from")
    writer.close()
    return {column: cdf.ks() for column, cdf in cdfs.items()}


def _count(codes: np.ndarray) -> dict[int, int]:
    """How often each stratum code occurs (a bincount while codes are small: 30x faster than np.unique)."""
    if codes.size and codes.max() < 1 << 20:
        counts = np.bincount(codes)
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    return {int(v): int(c) for v, c in zip(*np.unique(codes, return_counts=True))}


def _chi_square(observed: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """Pearson's goodness-of-fit test (scipy.stats.chisquare's result; scipy.special imports 5x faster)."""
    from scipy.special import chdtrc

    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return {"statistic": statistic, "p_value": float(chdtrc(observed.size - 1, statistic))}


def _fidelity(census: _Census, selection: _Selection, labels: _Codes, splits: _Codes, ks: dict, seed: int,
              weights: Mapping[int, float]) -> dict:
    """The dev dataset against its target: the full data's strata, or (make-dev --like) the mapped ones."""
    dev_total = selection.rows.size
    dev_strata = _count(selection.strata)
    weight_total = sum(weights.values())
    strata, deviations = [], []
    for code, count in sorted(census.strata.items()):
        full_share, dev_share = count / census.rows, dev_strata.get(code, 0) / dev_total
        target = weights[code] / weight_total
        deviations.append(abs(target - dev_share))
        strata.append({
            "label": labels.values[code // _SPLITS], "split": splits.values[code % _SPLITS],
            "full": count, "dev": dev_strata.get(code, 0), "full_share": full_share, "dev_share": dev_share,
            **({"target_share": target} if target != full_share else {}),
        })
    target_labels: dict[int, float] = {}
    for code, weight in weights.items():
        target_labels[code // _SPLITS] = target_labels.get(code // _SPLITS, 0) + weight
    dev_labels = _count(selection.strata // _SPLITS)
    keys = sorted(k for k, weight in target_labels.items() if weight > 0)
    observed = np.array([dev_labels.get(k, 0) for k in keys], float)
    expected = np.array([target_labels[k] for k in keys], float) / weight_total * dev_total
    chi2 = _chi_square(observed, expected * observed.sum() / expected.sum()) if len(keys) > 1 else None
    return {
        "seed": seed,
        "full_rows": census.rows,
        "dev_rows": int(dev_total),
        "dev_fraction": dev_total / census.rows,
        "max_abs_deviation_pp": 100 * max(deviations),
        "labels_chi2": chi2,
        "ks": ks,
        "outliers_and_corrupt": {"found": selection.special_found, "included": int(selection.special.sum())},
        "damaged_files": {"found": len(selection.damaged),
                          "listed": [{"path": path, "problem": problem} for path, problem in selection.damaged[:LISTED]]},
        "strata": strata,
    }


def _replace_folder(new: str, target: str) -> None:
    """Move `new` to `target`, replacing what was there; a crash leaves either folder, never a mix."""
    parent = os.path.dirname(target) or "."
    if os.path.exists(target):
        old = tempfile.mkdtemp(dir=parent, prefix=".alops-old-")
        os.rmdir(old)
        os.rename(target, old)
        os.rename(new, target)
        shutil.rmtree(old)
    else:
        os.rename(new, target)


def _clean_leftovers(parent: str) -> None:
    """Remove temporary folders that an interrupted run left behind."""
    if os.path.isdir(parent):
        for name in os.listdir(parent):
            if name.startswith((".alops-dev-", ".alops-old-")):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def row_files(folder: str, patterns: tuple[str, ...]) -> list[str]:
    """The row files of a dataset folder matching `patterns` (globs relative to it), as sorted relative paths."""
    import glob

    found = set()
    for pattern in patterns:
        for path in glob.glob(pattern, root_dir=folder, recursive=True):
            if path.endswith(ROW_FILE_SUFFIXES) and os.path.isfile(os.path.join(folder, path)):
                found.add(path)
    if not found:
        raise ConfigError(f"{folder}: data.rows ({', '.join(patterns)}) matches no .csv, .parquet or .jsonl file; "
                          "fix data.rows in alops.yaml or pull the data (`alops data pull --dataset full`)")
    return sorted(found)


def _copy_other_files(full: str, files: list[str], target: str) -> None:
    """Copy what the folder holds besides its row files (a vocabulary, a README), refusing links that leave it."""
    for folder, _, names in os.walk(full):
        for name in names:
            source = os.path.join(folder, name)
            rel = os.path.relpath(source, full)
            if rel in files:
                continue
            if not stays_inside(full, source):
                raise ConfigError(f"{full}: {rel!r} leads outside the dataset folder (a link): keep the dataset's "
                                  "files inside it")
            copy_file(source, os.path.join(target, rel))


def _combined(reports: dict[str, dict], seed: int) -> dict:
    """One fidelity report over several row files: totals, the worst deviation, and each file's report."""
    full_rows = sum(r["full_rows"] for r in reports.values())
    dev_rows = sum(r["dev_rows"] for r in reports.values())
    return {
        "seed": seed,
        "full_rows": full_rows,
        "dev_rows": dev_rows,
        "dev_fraction": dev_rows / full_rows,
        "max_abs_deviation_pp": max(r["max_abs_deviation_pp"] for r in reports.values()),
        "outliers_and_corrupt": {key: sum(r["outliers_and_corrupt"][key] for r in reports.values())
                                 for key in ("found", "included")},
        "damaged_files": {"found": sum(r["damaged_files"]["found"] for r in reports.values()),
                          "listed": [f for r in reports.values() for f in r["damaged_files"]["listed"]][:LISTED]},
        "files": reports,
    }


def make_dev(
    full: str,
    dev_dir: str,
    report_path: str,
    size: DevSize,
    seed: int = 0,
    classes: tuple[str, ...] | None = None,
    z_outlier: float = 4.0,
    outlier_share: float = 0.02,
    rows: tuple[str, ...] | None = None,
    label: str = "label",
    like: dict | None = None,
) -> dict:
    """Sample the dev dataset into `dev_dir`; write and return the fidelity report.

    With `like` ({"file": a log, "shares": {class: share}}), the labeled samples take the log's class shares
    instead of the full data's (a shifted live distribution mapped into the dev dataset).

    `full` is the full manifest; with `rows` (glob patterns) it is the folder of row files, each sampled into
    the same name in `dev_dir` (label column `label`, when the file has it), other files copied unchanged.
    Everything is validated before anything is written; the dev folder is replaced in one rename.
    """
    check_size(size)
    if not 0 <= outlier_share <= 1:
        raise ConfigError(f"--outlier-share {outlier_share} is outside [0, 1]")
    if z_outlier <= 0:
        raise ConfigError(f"--z-outlier {z_outlier} must be positive")
    if rows is None:
        folder, files = os.path.dirname(full), [os.path.basename(full)]
        infos = [inspect_manifest(full)]
    else:
        folder, files = full, row_files(full, rows)
        infos = [inspect_manifest(os.path.join(full, f), required=(), label=label) for f in files]
    parent = os.path.dirname(os.path.abspath(dev_dir))
    _clean_leftovers(parent)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(dir=parent, prefix=".alops-dev-")
    try:
        censuses = []
        for number, info in enumerate(infos):
            codes = (_Codes((UNLABELED,)), _Codes())
            os.mkdir(os.path.join(work, str(number)))
            spool = Spool(info, os.path.join(work, str(number)))
            try:
                census = _census(info, *codes, classes, spool)
            finally:
                spooled = spool.close()
            censuses.append((spooled, census, codes))
        total = sum(census.rows for _, census, _ in censuses)
        wanted = _quotas(dict(enumerate(c.rows for _, c, _ in censuses)), total, size.rows(total))
        staging = os.path.join(work, "dev")
        os.mkdir(staging)
        reports = {}
        for number, (name, (spooled, census, codes)) in enumerate(zip(files, censuses)):
            weights = _mapped(census, codes[0], like["shares"], like["file"]) if like else census.strata
            selection = _select(spooled, census, *codes, max(wanted[number], 1), seed, z_outlier, outlier_share, weights)
            os.makedirs(os.path.dirname(os.path.join(staging, name)), exist_ok=True)
            ks = _write(spooled, selection, os.path.join(staging, os.path.dirname(name)), os.path.basename(name))
            reports[name] = _fidelity(census, selection, *codes, ks, seed, weights)
            if like:
                reports[name]["mapped_to"] = like
        if rows is not None:
            _copy_other_files(folder, files, staging)
        else:
            _carry_live_ids(folder, staging, files[0])
        report = reports[files[0]] if rows is None else {**_combined(reports, seed), **({"mapped_to": like} if like else {})}
        _replace_folder(staging, os.path.abspath(dev_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(report_path, report, indent=2)
    return report


def _carry_live_ids(folder: str, staging: str, manifest: str) -> None:
    """The dev dataset's share of the production samples' list (`alops pool add` writes it beside the full
    manifest), so runs on the dev data report the live slice too."""
    from alops.data.pool import LIVE_IDS

    source = os.path.join(folder, LIVE_IDS)
    if not os.path.exists(source):
        return
    with open(source, encoding="utf-8") as handle:
        live = {line.rstrip("\n") for line in handle}
    info = inspect_manifest(os.path.join(staging, manifest))
    kept = [i for batch in iter_batches(info) for i in pc.cast(batch.column("id"), pa.string()).to_pylist() if i in live]
    with open(os.path.join(staging, LIVE_IDS), "w", encoding="utf-8") as out:
        out.write("".join(f"{i}\n" for i in kept))


def _label_and_feature_profile(infos: list[ManifestInfo], dev_values: dict | None):
    """Label counts over files (each with its own label column); with `dev_values`, also the full-data CDF at
    those values."""
    numeric = sorted({c for info in infos for c in info.numeric})
    counts: dict[str, int] = {}
    cdfs = {c: _FullCdf(np.sort(v[np.isfinite(v)])) for c, v in (dev_values or {}).items() if c in numeric}
    values: dict[str, list] = {c: [] for c in numeric}
    rows = 0
    for info in infos:
        for batch in iter_batches(info):
            rows += batch.num_rows
            if info.label in info.columns:
                uniques = pc.value_counts(pc.fill_null(batch.column(info.label), UNLABELED))
                for item in uniques.to_pylist():
                    counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
            for column in info.numeric:
                data = batch.column(column).to_numpy(zero_copy_only=False)
                if column in cdfs:
                    cdfs[column].add(data)
                elif dev_values is None:
                    values[column].append(data)
    collected = {c: np.concatenate(v) if v else np.empty(0) for c, v in values.items()}
    return rows, counts, collected, cdfs


def class_shares(path: str, label: str) -> dict:
    """The class shares of a log's labeled rows (e.g. a model's predictions), for make-dev --like."""
    _, counts, _, _ = _label_and_feature_profile(_inspect_all([path], label), None)
    counts.pop(UNLABELED, None)
    if not counts:
        raise ConfigError(f"{path}: no {label!r} values to map the dev dataset to; name the log's class column "
                          "with --label-column (e.g. prediction)")
    total = sum(counts.values())
    return {"file": path, "label_column": label, "shares": {name: count / total for name, count in sorted(counts.items())}}


def _inspect_all(paths: list[str], label: str) -> list[ManifestInfo]:
    return [inspect_manifest(path, required=(), label=label) for path in paths]


def check_dev(
    dev: str | list[str],
    against: str | list[str],
    label: str = "label",
    alpha: float = drift.ALPHA,
    min_effect: float = drift.MIN_EFFECT,
    dev_label: str = "label",
    dev_predicted: dict[str, int] | None = None,
) -> dict:
    """Compare the dev dataset (a manifest or row files) with the full data or a log of production inputs.

    Returns {"representative": bool, "problems": [...], "labels": {...}, "ks": {...}, "tests": {...}}: the class
    shares are compared by a chi-square test and each numeric column by a two-sample KS test (alops.data.drift); a
    problem is a test below `alpha` whose effect reaches `min_effect`, naming the classes or the column that
    moved. `label` names the label column in `against` (e.g. a model's `prediction` in a production log);
    `dev_predicted` (alops.serve.drift_model: the dev rows per class as the model that made those predictions puts
    them) replaces the dev labels, so predictions are compared with predictions.
    """
    dev_files = [dev] if isinstance(dev, str) else dev
    live_files = [against] if isinstance(against, str) else against
    dev_infos = _inspect_all(dev_files, dev_label)
    live_infos = _inspect_all(live_files, label)
    dev_rows, dev_counts, dev_values, _ = _label_and_feature_profile(dev_infos, None)
    live_rows, live_counts, _, cdfs = _label_and_feature_profile(live_infos, dev_values)
    if dev_rows == 0:
        raise ConfigError(f"{dev_files[0]}: the dev dataset is empty; run `alops data make-dev`")
    if live_rows == 0:
        raise ConfigError(f"{live_files[0]}: no rows to compare with")
    if dev_predicted is not None:
        dev_counts = dev_predicted
    kind = "predicted class" if dev_predicted is not None else "label"
    problems, labels, tests = [], {}, {}
    if any(info.label in info.columns for info in live_infos) and any(v != UNLABELED for v in live_counts):
        both = UNLABELED in dev_counts and UNLABELED in live_counts  # unlabeled rows compare only with their like
        dev_classes = {k: v for k, v in dev_counts.items() if k != UNLABELED or both}
        live_classes = {k: v for k, v in live_counts.items() if k != UNLABELED or both}
        if not sum(dev_classes.values()) or not sum(live_classes.values()):
            raise AlopsError(f"drift check not made: {sum(dev_classes.values())} dev rows and "
                             f"{sum(live_classes.values())} compared rows have a {kind} to compare")
        dev_total, live_total = sum(dev_classes.values()), sum(live_classes.values())
        for name in sorted(set(dev_classes) | set(live_classes)):
            labels[name] = {"dev_pct": 100 * dev_classes.get(name, 0) / dev_total,
                            "live_pct": 100 * live_classes.get(name, 0) / live_total}
        test, moved = drift.class_shares(dev_classes, live_classes, alpha, min_effect)
        tests["labels"] = test
        for name in moved:
            problems.append(f"{kind} {name}: {labels[name]['dev_pct']:.1f}% in dev, {labels[name]['live_pct']:.1f}% "
                            f"in live data (class shares: {test.summary('Cramér V')})")
    ks = {column: cdf.ks() for column, cdf in cdfs.items()}
    for column, statistic in ks.items():
        test = tests[f"feature {column}"] = drift.numeric_column(statistic, cdfs[column].dev_sorted.size,
                                                                 cdfs[column].n, alpha, min_effect)
        if test.drifted:
            problems.append(f"feature {column}: KS statistic {test.effect:.3f}, p {test.p_value:.2g} between dev "
                            "and live data")
    if not tests:
        raise AlopsError(f"drift check not made: {live_files[0]} shares neither the {kind}s ({label!r}) nor a numeric "
                         "column with the dev dataset, so nothing was compared; pass --label-column")
    return {"representative": not problems, "problems": problems, "labels": labels, "ks": ks,
            "tests": {name: {"effect": t.effect, "p_value": t.p_value, "drifted": t.drifted} for name, t in tests.items()},
            "dev_rows": dev_rows, "live_rows": live_rows, "alpha": alpha, "min_effect": min_effect}


def dataset_files(project, dataset: str) -> list[str]:
    """The files that describe a dataset's samples: its manifest, or its row files (data.rows)."""
    settings = project.config.data
    folder = project.dataset_folder(dataset)
    if settings.rows is None:
        return [os.path.join(folder, settings.manifest)]
    return [os.path.join(folder, name) for name in row_files(folder, settings.rows)]


def _stage_report(project, stage: str) -> dict:
    """What the project's own sampler stage made, compared with the full data (labels and numeric columns), or
    only file counts and sizes when the data is neither a manifest nor row files."""
    settings = project.config.data
    if settings.rows is not None or os.path.isfile(project.manifest("full")):
        compared = check_dev(dataset_files(project, "dev"), dataset_files(project, "full"), settings.label,
                             dev_label=settings.label)
        shares = [abs(v["dev_pct"] - v["live_pct"]) for v in compared["labels"].values()]
        return {"stage": stage, "full_rows": compared["live_rows"], "dev_rows": compared["dev_rows"],
                "dev_fraction": compared["dev_rows"] / compared["live_rows"],
                "max_abs_deviation_pp": max(shares, default=0.0), "labels": compared["labels"], "ks": compared["ks"]}
    sizes = {}
    for dataset in ("full", "dev"):
        files = [os.path.join(d, n) for d, _, names in os.walk(project.dataset_folder(dataset)) for n in names]
        sizes[dataset] = (len(files), sum(os.path.getsize(f) for f in files))
    return {"stage": stage, "full_files": sizes["full"][0], "dev_files": sizes["dev"][0],
            "full_bytes": sizes["full"][1], "dev_bytes": sizes["dev"][1],
            "dev_fraction": sizes["dev"][1] / max(sizes["full"][1], 1)}


def _refuse_imported(root: str, dev: str) -> None:
    """A dev dataset pinned by `dvc import --rev` is changed with `dvc update`, never replaced by a sample."""
    import yaml

    record = dev.rstrip(os.sep) + ".dvc"
    if os.path.isfile(record):
        with open(record, encoding="utf-8") as handle:
            deps = (yaml.safe_load(handle) or {}).get("deps") or []
        if any("repo" in dep for dep in deps):
            rel = os.path.relpath(record, root)
            raise ConfigError(f"{rel}: the dev dataset is imported from another revision (dvc import --rev); "
                              f"change it with `dvc update --rev REV {rel}`, or `dvc remove {rel}` to sample one")


def current_dev_rows(project) -> int | None:
    """How many samples the project's dev dataset has now (None when there is none): make-dev's default size."""
    files = [path for path in dataset_files(project, "dev") if os.path.isfile(path)]
    if not files:
        return None
    return sum(batch.num_rows for info in _inspect_all(files, project.config.data.label) for batch in iter_batches(info))


def commit_project_dev(project, report_path: str, make) -> tuple[dict, str | None]:
    """`make()` (a make-dev) recorded as one data version of the dev dataset with its fidelity report, committed
    and pushed to the branch: the report, and the new commit (None when the sample came out the same)."""
    from alops.core.git import git
    from alops.data.record import commit_data_change

    if project.config.data.dev_stage is not None:
        raise ConfigError(f"make-dev --commit samples with alops alone (it holds the push rights), and the stage "
                          f"{project.config.data.dev_stage!r} would run the project's code: run it in a training "
                          "job and commit its output there")
    before = git(project.root, "rev-parse", "HEAD").stdout.strip()
    outcome = {}

    def apply() -> int:
        project.dvc.scm_context.quiet = True  # alops commits the dev dataset: no "git add" hint from DVC
        outcome["report"] = make()
        return 1

    full = project.dataset_folder("full")
    commit = commit_data_change(project, project.dataset_folder("dev"), apply, "Dev dataset: sampled again",
                                project.context.branch, also=(report_path, "dvc.yaml"),
                                reads=(full,) if os.path.exists(full + ".dvc") else ())
    return outcome["report"], commit if commit != before else None


def make_project_dev(project, report_path: str, size: DevSize | None, seed: int = 0, z_outlier: float = 4.0,
                     outlier_share: float = 0.02, track: bool = True, like: dict | None = None) -> dict:
    """The project's dev dataset, sampled by `make_dev` (manifest or row files) or made by its own stage
    (data.dev_stage, run by `dvc repro`); writes the fidelity report. With `track`, a sampled dev folder is
    `dvc add`ed (a stage's output is DVC's already) and the report registered as a metrics file."""
    from alops.data import storage as data

    settings = project.config.data
    full, dev = project.dataset_folder("full"), project.dataset_folder("dev")
    check_dev_folder(project.root, full, dev)
    _refuse_imported(project.root, dev)
    report_file = os.path.join(project.root, report_path)
    if settings.dev_stage is not None:
        data.reproduce(project, [settings.dev_stage], "cpu")
        report = _stage_report(project, settings.dev_stage)
        write_json(report_file, report, indent=2)
    else:
        source = full if settings.rows is not None else os.path.join(full, settings.manifest)
        if size is None:
            raise ConfigError("make-dev needs a size: --fraction, --count or --time-budget")
        report = make_dev(source, dev, report_file, size, seed=seed, classes=settings.classes, z_outlier=z_outlier,
                          outlier_share=outlier_share, rows=settings.rows, label=settings.label, like=like)
        if track:
            data.track(project, dev)
    if track:
        data.register_metrics(project.root, report_file)
    return report


def check_dev_folder(root: str, full: str, dev: str) -> None:
    """Refuse a dev folder that replacing would destroy something alops did not make: the project root, a
    folder outside it, the full data or a folder nesting it, a git or DVC repository."""
    root, full, dev = (os.path.realpath(p) for p in (root, full, dev))
    inside = dev.startswith(root + os.sep)
    if not inside or dev == full or full.startswith(dev + os.sep) or dev.startswith(full + os.sep):
        raise ConfigError(f"data.dev {os.path.relpath(dev, root)!r} must be a folder of its own inside the project, "
                          "apart from data.full: fix data.dev in alops.yaml")
    if any(os.path.exists(os.path.join(dev, name)) for name in (".git", ".dvc", "alops.yaml", "dvc.yaml")):
        raise ConfigError(f"{os.path.relpath(dev, root)} holds a project (.git, .dvc, alops.yaml or dvc.yaml), "
                          "not a dev dataset: fix data.dev in alops.yaml")
