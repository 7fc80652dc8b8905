"""Query strategies: pick the k pool samples most worth labeling.

One interface for the in-memory and the streaming path: `QueryStrategy.select(pool, k, rng)` -> (k unique pool
indices, their scores); strategies that can stream (`streams`) also score a file block by block with
`stream(blocks, k, seed)`, which `alops query select` uses for large pools and shards. Each strategy declares
what it needs (`needs`: probs, mc_probs or embeddings); the request is validated once, in `select`. Random
generators are injected (never NumPy's global state); ties go to the lower index. Uncertainty strategies only
define a score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from alops.al.kernels import bald
from alops.al.kernels import scores as block_scores
from alops.al.topk import RunningTopK, add_scored, top_k
from alops.core.errors import ConfigError
from alops.core.extras import require

BLOCK_BYTES = 64 * 2**20  # the float64 work memory of core-set's blocks


class EmptyPoolError(ConfigError):
    """The pool has no samples left to query."""


class PoolTooSmallError(ConfigError):
    """More samples were asked for than the pool holds."""


@dataclass
class Pool:
    """What strategies may look at, per pool sample (row i of each array is sample i)."""

    probs: np.ndarray | None = None  # (N, C) class probabilities of the current model
    embeddings: np.ndarray | None = None  # (N, D) for diversity strategies
    labeled_embeddings: np.ndarray | None = None  # (M, D) of the labeled set, for core-set distances
    mc_probs: np.ndarray | None = None  # (T, N, C) MC-dropout passes, for BALD

    def __len__(self) -> int:
        for array in (self.probs, self.embeddings):
            if array is not None:
                return len(array)
        return self.mc_probs.shape[1] if self.mc_probs is not None else 0


class QueryStrategy:
    """Base class: checks the request, then `_select`s."""

    name = ""
    needs = "probs"
    streams = False  # can score a pool file block by block (`stream`)

    def query(self, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        """The k pool indices `select` picks."""
        return self.select(pool, k, rng)[0]

    def select(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """k unique pool indices and each one's score (higher: more worth labeling)."""
        if getattr(pool, self.needs) is None:
            raise ConfigError(f"strategy {self.name!r} needs {self.needs} for the pool")
        size = len(pool)
        if size == 0:
            raise EmptyPoolError("the pool is empty: every sample is labeled or the pool file has no rows")
        if k < 1:
            raise ConfigError(f"k={k}: ask for at least one sample")
        if k > size:
            raise PoolTooSmallError(f"k={k} is larger than the pool ({size} samples); ask for at most {size}")
        rows, scores = self._select(pool, k, rng)
        return np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float64)

    def stream(self, blocks, k: int, seed: int, progress=None) -> RunningTopK:
        """The running top k over `blocks` ((global row offset, (rows, C) block) pairs) of a pool file."""
        if not self.streams:
            raise ConfigError(f"strategy {self.name!r} cannot stream; streaming strategies: {', '.join(STREAMABLE)}")
        best = RunningTopK(k)
        for offset, block in blocks:
            add_scored(best, self.name, block, offset, seed)
            if progress:
                progress(offset + block.shape[0])
        return best

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class UncertaintyStrategy(QueryStrategy):
    """Template: the k highest scores."""

    streams = True

    def score(self, pool: Pool) -> np.ndarray:
        return block_scores(self.name, np.ascontiguousarray(pool.probs), 0, 0)

    def _select(self, pool, k, rng):
        if type(self).score is UncertaintyStrategy.score:  # the streaming kernels: no full score array
            best = self.stream([(0, np.ascontiguousarray(pool.probs))], k, 0)
            return best.rows, best.scores
        scores = self.score(pool).astype(np.float64)
        return top_k(np.arange(scores.size), scores, k)


class RandomSampling(QueryStrategy):
    """k samples uniformly at random; a sample's score is the random key that ranked it."""

    name = "random"
    streams = True

    def _select(self, pool, k, rng):
        keys = rng.random(len(pool))
        return top_k(np.arange(len(pool)), keys, k)


class LeastConfidence(UncertaintyStrategy):
    name = "least-confidence"


class SmallestMargin(UncertaintyStrategy):
    name = "margin"


class Entropy(UncertaintyStrategy):
    name = "entropy"


class BALD(UncertaintyStrategy):
    """Mutual information between prediction and model weights, from MC-dropout passes (`mc_dropout_probs`).
    Streams over samples: blocks of (T, rows, C) from a `.npy` file, scored on every core."""

    name = "bald"
    needs = "mc_probs"

    def score(self, pool):
        return bald(pool.mc_probs)

    def stream(self, blocks, k: int, seed: int, progress=None) -> RunningTopK:
        """The running top k over ((global row offset, (T, rows, C) passes) pairs), the samples of each block
        scored (and checked) on every core; a bad row is the first one, as in one pass."""
        from alops.al.topk import on_every_core

        best = RunningTopK(k)
        for offset, passes in blocks:
            bounds = np.linspace(0, passes.shape[1], (os.cpu_count() or 1) + 1).astype(int)
            parts = on_every_core(lambda part: bald(passes[:, bounds[part]:bounds[part + 1]], offset + bounds[part]),  # noqa: B023 (run at once)
                                  range(len(bounds) - 1))
            best.add(np.concatenate(list(parts)), offset)
            if progress:
                progress(offset + passes.shape[1])
        return best


def _squared_distances_to(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Each point's squared distance to its nearest row of `others`, as matrix products over row blocks
    (memory: one block of points x all others, about BLOCK_BYTES)."""
    nearest = np.empty(len(points), dtype=np.float64)
    others_norm = (others ** 2).sum(axis=1)
    rows = max(1, BLOCK_BYTES // (8 * max(len(others), 1)))
    for start in range(0, len(points), rows):
        block = points[start:start + rows]
        squared = (block ** 2).sum(axis=1)[:, None] + others_norm[None, :] - 2.0 * (block @ others.T)
        nearest[start:start + rows] = np.maximum(squared.min(axis=1), 0.0)
    return nearest


def k_center_greedy(embeddings: np.ndarray, k: int, labeled: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Core-set selection: repeatedly take the sample farthest from everything labeled or taken; never the
    same sample twice (duplicate embeddings included)."""
    return k_center_greedy_scored(embeddings, k, labeled, rng)[0]


def k_center_greedy_scored(embeddings: np.ndarray, k: int, labeled: np.ndarray | None,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`k_center_greedy` and each pick's squared distance to what was labeled or taken before it (inf: the
    random first pick of a cold start)."""
    points = embeddings.astype(np.float64)
    if labeled is not None and len(labeled):
        distance = _squared_distances_to(points, np.asarray(labeled, dtype=np.float64))
        chosen = []
    else:
        first = int(rng.integers(len(points)))
        distance = ((points - points[first]) ** 2).sum(axis=1)
        distance[first] = -np.inf
        chosen = [first]
    gaps = [np.inf] * len(chosen)
    while len(chosen) < k:
        pick = int(np.argmax(distance))  # argmax takes the lowest index among ties
        chosen.append(pick)
        gaps.append(float(distance[pick]))
        np.minimum(distance, ((points - points[pick]) ** 2).sum(axis=1), out=distance)
        distance[chosen] = -np.inf
    return np.array(chosen, dtype=np.int64), np.array(gaps, dtype=np.float64)


class CoreSet(QueryStrategy):
    """Diversity: k-center greedy over embeddings."""

    name = "core-set"
    needs = "embeddings"

    def _select(self, pool, k, rng):
        return k_center_greedy_scored(pool.embeddings, k, pool.labeled_embeddings, rng)


class Hybrid(QueryStrategy):
    """The beta*k most uncertain (by `base`), then k diverse ones among them."""

    name = "hybrid"
    needs = "embeddings"

    def __init__(self, base: UncertaintyStrategy | None = None, beta: int = 4):
        self.base = base or SmallestMargin()
        self.beta = beta

    def _select(self, pool, k, rng):
        candidates = self.base.query(pool, min(len(pool), self.beta * k), rng)
        picked, gaps = k_center_greedy_scored(pool.embeddings[candidates], k, pool.labeled_embeddings, rng)
        return candidates[picked], gaps


class ClassBalanced(QueryStrategy):
    """k spread over the predicted classes in rounds: each round takes every class's next most uncertain sample
    (by `base`), classes whose best sample is more uncertain first. So shares differ by at most one; with k below
    the number of classes the k classes holding the most uncertain samples get one each; a class that runs out
    leaves its share to the others in turn, never to one class."""

    def __init__(self, base: UncertaintyStrategy):
        self.base = base
        self.name = f"{base.name}+balanced"

    def _select(self, pool, k, rng):
        scores = self.base.score(pool).astype(np.float64)
        predicted = pool.probs.argmax(axis=1)
        ranked = []
        for label in np.unique(predicted):
            members = np.flatnonzero(predicted == label)
            ranked.append(top_k(members, scores[members], members.size)[0])
        ranked.sort(key=lambda rows: (-scores[rows[0]], rows[0]))
        chosen: list[int] = []
        for depth in range(max(len(rows) for rows in ranked)):
            chosen += [int(rows[depth]) for rows in ranked if depth < len(rows)][:k - len(chosen)]
            if len(chosen) == k:
                break
        chosen = np.array(chosen, dtype=np.int64)
        return chosen, scores[chosen]


STRATEGIES = {cls.name: cls for cls in (RandomSampling, LeastConfidence, SmallestMargin, Entropy, BALD, CoreSet, Hybrid)}
STREAMABLE = ("random", "least-confidence", "margin", "entropy", "bald")


def make_strategy(name: str, balanced: bool = False) -> QueryStrategy:
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r} (expected one of: {', '.join(STRATEGIES)})")
    strategy = STRATEGIES[name]()
    if balanced:
        if not isinstance(strategy, UncertaintyStrategy) or strategy.needs != "probs":
            raise ConfigError(f"--balanced works with least-confidence, margin and entropy, not {name!r}")
        return ClassBalanced(strategy)
    return strategy


def mc_dropout_probs(model, inputs, passes: int = 20, seed: int = 0) -> np.ndarray:
    """(passes, N, C) softmax outputs of a PyTorch model with its dropout layers active (MC dropout)."""
    torch = require("torch", "torch", "MC dropout")

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model.eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.train()
    try:
        with torch.no_grad():
            return np.stack([torch.softmax(model(inputs), dim=1).cpu().numpy() for _ in range(passes)])
    finally:
        model.eval()
        torch.random.set_rng_state(generator_state)
