"""Uncertainty scores over (N, C) probabilities.

Reductions over the short class axis are slow in NumPy (`probs.max(axis=1)` costs ~23x one read of the
array). Least confidence and margin are compiled row loops (numba) that also sum each row in the same pass;
entropy takes NumPy's vectorised logarithm over cache-sized blocks, then a compiled row sum; BALD is one
compiled sweep over the (passes, rows, classes) block in float64.
Every row is checked (finite, summing to 1) in the compiled loops' own pass; an exact per-row search then
names the first bad row.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from alops.core.errors import ConfigError

BLOCK_ROWS = 16384  # 640 KiB of float32 x 10: entropy's log pass stays in L2
SUM_TOLERANCE = 1e-3


def check_rows(block: np.ndarray, offset: int) -> None:
    """Fast block-level check (one sum: catches NaN, inf and rows that do not sum to 1); the exact
    per-row search only runs when it fails, to name the row."""
    total = float(block.sum())
    rows = block.shape[0]
    if np.isfinite(total) and abs(total - rows) <= SUM_TOLERANCE + rows * 1e-6 and (rows == 0 or block.min() >= 0):
        return
    sums = block.sum(axis=1, dtype=np.float64)
    bad = ~(np.abs(sums - 1.0) <= SUM_TOLERANCE) | ~np.isfinite(block).all(axis=1) | (block < 0).any(axis=1)
    bad_row(block, offset, int(np.flatnonzero(bad)[0]) if bad.any() else 0)


def bad_row(block: np.ndarray, offset: int, row: int) -> None:
    """Raise the error naming row `row` of the block (global row offset + row) and its values."""
    values = np.array2string(block[row], precision=4, separator=", ", threshold=12, edgeitems=4,
                             max_line_width=10**6)  # one line, however many classes
    raise ConfigError(
        f"row {offset + row}: not a probability distribution {values} "
        "(expected finite values >= 0 summing to 1; pass softmax outputs)"
    )


@numba.njit(cache=True, nogil=True)
def _least_confidence_rows(block, out):  # pragma: no cover - compiled
    """out = 1 - max p per row, in one pass that also sums the row; the first bad row's index, or -1."""
    bad = -1
    for i in range(block.shape[0]):
        top = block[i, 0]
        low = block[i, 0]
        total = block[i, 0]
        for j in range(1, block.shape[1]):
            value = block[i, j]
            total += value
            top = max(top, value)
            low = min(low, value)
        out[i] = 1.0 - top
        if bad < 0 and not (abs(total - 1.0) <= SUM_TOLERANCE and low >= 0):
            bad = i
    return bad


@numba.njit(cache=True, nogil=True)
def _margin_rows(block, out):  # pragma: no cover - compiled
    """out = second - first largest p per row (branch-free running top two), plus the row-sum check."""
    bad = -1
    for i in range(block.shape[0]):
        first = block[i, 0]
        second = -np.inf
        low = block[i, 0]
        total = block[i, 0]
        for j in range(1, block.shape[1]):
            value = block[i, j]
            total += value
            second = max(second, min(first, value))
            first = max(first, value)
            low = min(low, value)
        out[i] = second - first
        if bad < 0 and not (abs(total - 1.0) <= SUM_TOLERANCE and low >= 0):
            bad = i
    return bad


def _compiled(kernel, block: np.ndarray, offset: int) -> np.ndarray:
    block = np.ascontiguousarray(block)
    out = np.empty(block.shape[0], dtype=block.dtype)
    row = kernel(block, out)
    if row >= 0:
        bad_row(block, offset, row)
    return out


def least_confidence(block: np.ndarray, offset: int = 0) -> np.ndarray:
    """1 - max p."""
    return _compiled(_least_confidence_rows, block, offset)


def smallest_margin(block: np.ndarray, offset: int = 0) -> np.ndarray:
    """-(p_first - p_second): the smaller the margin, the higher the score."""
    return _compiled(_margin_rows, block, offset)


@numba.njit(cache=True, nogil=True)
def _negative_row_sums(terms, block, out):  # pragma: no cover - compiled
    """out = -sum of each row of `terms`, with the row-sum check of `block` in the same pass."""
    bad = -1
    for i in range(terms.shape[0]):
        value = 0.0
        total = 0.0
        low = 0.0
        for j in range(terms.shape[1]):
            value -= terms[i, j]
            total += block[i, j]
            low = min(low, block[i, j])
        out[i] = value
        if bad < 0 and not (abs(total - 1.0) <= SUM_TOLERANCE and low >= 0):
            bad = i
    return bad


def entropy(block: np.ndarray, offset: int = 0) -> np.ndarray:
    """-sum p log p (0 log 0 = 0): NumPy's vectorised log over the block, then a compiled row sum."""
    block = np.ascontiguousarray(block)
    terms = np.maximum(block, np.finfo(block.dtype).tiny)
    np.log(terms, out=terms)
    np.multiply(terms, block, out=terms)
    out = np.empty(block.shape[0], dtype=block.dtype)
    row = _negative_row_sums(terms, block, out)
    if row >= 0:
        bad_row(block, offset, row)
    return out


@numba.njit(cache=True, nogil=True)
def _bald_rows(passes, out, mean, entropies):  # pragma: no cover - compiled
    """out = entropy of the mean prediction - mean entropy of the passes, per sample of (T, rows, C), in float64
    with p clipped to [1e-12, 1]; every pass's rows checked in the same sweep. The first bad sample (lowest row,
    then lowest pass) as row * T + pass, or -1."""
    count, rows, classes = passes.shape
    mean[:rows] = 0.0
    entropies[:rows] = 0.0
    bad = -1
    for t in range(count):
        for i in range(rows):
            total = 0.0
            low = 0.0
            terms = 0.0
            for c in range(classes):
                value = np.float64(passes[t, i, c])
                total += value
                low = min(low, value)
                p = min(max(value, 1e-12), 1.0)
                mean[i, c] += p
                terms += p * math.log(p)
            entropies[i] += terms
            if not (abs(total - 1.0) <= SUM_TOLERANCE and low >= 0) and (bad < 0 or i * count + t < bad):
                bad = i * count + t
    for i in range(rows):
        spread = 0.0
        for c in range(classes):
            m = mean[i, c] / count
            spread -= m * math.log(m)
        out[i] = spread + entropies[i] / count
    return bad


def bald(passes: np.ndarray, offset: int = 0) -> np.ndarray:
    """BALD of each sample of MC-dropout passes (T, rows, C), float64, over cache-sized blocks of samples; a bad
    row (of any pass) stops with its global row number and values."""
    count, rows, classes = passes.shape
    out = np.empty(rows, dtype=np.float64)
    mean, entropies = np.empty((BLOCK_ROWS, classes)), np.empty(BLOCK_ROWS)
    for start in range(0, rows, BLOCK_ROWS):
        block = passes[:, start:start + BLOCK_ROWS]
        bad = _bald_rows(block, out[start:start + block.shape[1]], mean, entropies)
        if bad >= 0:
            row, one = divmod(bad, count)
            bad_row(passes[one, start:start + block.shape[1]], offset + start, row)
    return out


KERNELS = {"least-confidence": least_confidence, "margin": smallest_margin, "entropy": entropy}


def random_keys(seed: int, rows: np.ndarray) -> np.ndarray:
    """Uniform keys in [0, 1) from (seed, global row number): the same row gets the same key in any shard."""
    with np.errstate(over="ignore"):  # splitmix64: wrap-around is the point
        x = rows.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def scores(strategy: str, block: np.ndarray, offset: int, seed: int) -> np.ndarray:
    """Scores of one block of rows starting at global row `offset` (higher = queried first)."""
    if strategy == "random":
        return random_keys(seed, np.arange(offset, offset + block.shape[0]))
    if strategy != "entropy":
        return KERNELS[strategy](block, offset)
    scored = np.empty(block.shape[0], dtype=block.dtype)
    for start in range(0, block.shape[0], BLOCK_ROWS):
        part = block[start:start + BLOCK_ROWS]
        scored[start:start + part.shape[0]] = KERNELS[strategy](part, offset + start)
    return scored
