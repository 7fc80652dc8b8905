"""Deterministic top-k over streamed scores: highest score first, ties to the lower row number.

Because the order is total, the top k of a union equals the top k of the per-part top-k lists: shards
selected apart and merged give exactly the single-pass selection.
"""

from __future__ import annotations

import os

import numpy as np

from alops.al.kernels import scores as block_scores

SCORE_ROWS = 1 << 17  # rows scored before the running top-k filters them


def top_k(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (rows, scores), best first."""
    if k <= 0:
        return rows[:0], scores[:0]
    if rows.size > k:
        threshold = np.partition(scores, rows.size - k)[rows.size - k]
        keep = scores >= threshold  # everything tied at the boundary stays for the exact ordering below
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))[:k]
    return rows[order], scores[order]


class RunningTopK:
    """Keeps the best k rows seen so far; memory bounded by k plus one block."""

    def __init__(self, k: int):
        self.k = k
        self.rows = np.empty(0, np.int64)
        self.scores = np.empty(0, np.float64)

    def add(self, scores: np.ndarray, offset: int) -> None:
        if self.rows.size >= self.k:
            candidates = np.flatnonzero(scores >= self.scores[-1])  # worst kept score
        else:
            candidates = np.arange(scores.size)
        if candidates.size == 0:
            return
        rows = np.concatenate([self.rows, candidates + offset])
        values = np.concatenate([self.scores, scores[candidates].astype(np.float64)])
        self.rows, self.scores = top_k(rows, values, self.k)


_POOL: list = []


def _threads():
    """One thread per core, made once: the kernels release the GIL (numba nogil, NumPy's ufuncs)."""
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="alops-score"))
    return _POOL[0]


def on_every_core(function, items):
    """`map(function, items)` in order, on one thread per core when there is more than one of each."""
    items = list(items)
    return _threads().map(function, items) if len(items) > 1 and (os.cpu_count() or 1) > 1 else map(function, items)


def add_scored(best: RunningTopK, strategy: str, array: np.ndarray, offset: int, seed: int) -> None:
    """Score `array` (rows starting at global row `offset`) in pieces, on every core, and feed the running top-k
    in row order (the result is the single-threaded one; a bad row is the first one, as in one pass)."""
    starts = range(0, array.shape[0], SCORE_ROWS)
    score = lambda start: block_scores(strategy, array[start:start + SCORE_ROWS], offset + start, seed)
    for start, scores in zip(starts, on_every_core(score, starts)):
        best.add(scores, offset + start)
