"""Query strategies: one contract every strategy passes, plus what each strategy is for."""

from __future__ import annotations

import numpy as np
import pytest

from alops.al.strategies import (
    BALD,
    ClassBalanced,
    CoreSet,
    EmptyPoolError,
    Entropy,
    Hybrid,
    LeastConfidence,
    Pool,
    PoolTooSmallError,
    RandomSampling,
    SmallestMargin,
    k_center_greedy,
    mc_dropout_probs,
)
from alops.core.errors import ConfigError


def make_pool(n: int, seed: int = 0, classes: int = 5) -> Pool:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(classes) * 0.5, size=n).astype(np.float32)
    mc = np.stack([rng.dirichlet(np.ones(classes), size=n) for _ in range(6)]).astype(np.float32)
    embeddings = rng.normal(size=(n, 3))
    return Pool(probs=probs, embeddings=embeddings, mc_probs=mc)


def take(pool: Pool, keep: np.ndarray) -> Pool:
    return Pool(probs=pool.probs[keep], embeddings=pool.embeddings[keep], mc_probs=pool.mc_probs[:, keep])


class StrategyContract:
    """Every strategy: k unique pool indices, deterministic for a seed, exhausts a pool cleanly."""

    def make(self):
        raise NotImplementedError

    def test_returns_k_unique_indices_in_the_pool(self):
        chosen = self.make().query(make_pool(200), 17, np.random.default_rng(0))
        assert chosen.dtype == np.int64 and len(chosen) == 17 and len(set(chosen.tolist())) == 17
        assert chosen.min() >= 0 and chosen.max() < 200

    def test_deterministic_for_a_seed(self):
        pool = make_pool(300, seed=4)
        first = self.make().query(pool, 25, np.random.default_rng(11))
        second = self.make().query(pool, 25, np.random.default_rng(11))
        assert first.tolist() == second.tolist()

    def test_exhausts_a_pool_cleanly(self):
        pool, remaining, taken = make_pool(23, seed=2), np.arange(23), []
        rng = np.random.default_rng(0)
        while remaining.size:
            chosen = self.make().query(take(pool, remaining), min(5, remaining.size), rng)
            taken += remaining[chosen].tolist()
            remaining = np.delete(remaining, chosen)
        assert sorted(taken) == list(range(23))
        with pytest.raises(EmptyPoolError):
            self.make().query(take(pool, remaining), 1, rng)

    def test_k_larger_than_the_pool_is_a_typed_error(self):
        with pytest.raises(PoolTooSmallError, match="larger than the pool"):
            self.make().query(make_pool(4), 5, np.random.default_rng(0))
        with pytest.raises(ConfigError):
            self.make().query(make_pool(4), 0, np.random.default_rng(0))


class TestRandom(StrategyContract):
    def make(self):
        return RandomSampling()

    def test_seeds_differ(self):
        pool = make_pool(1000)
        assert RandomSampling().query(pool, 20, np.random.default_rng(1)).tolist() != \
            RandomSampling().query(pool, 20, np.random.default_rng(2)).tolist()


def brute_force(scores: np.ndarray, k: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


class TestLeastConfidence(StrategyContract):
    def make(self):
        return LeastConfidence()

    def test_matches_the_definition(self):
        pool = make_pool(500, seed=3)
        expected = brute_force(1 - pool.probs.astype(np.float64).max(axis=1), 30)
        assert sorted(self.make().query(pool, 30, np.random.default_rng(0)).tolist()) == sorted(expected)

    def test_ties_go_to_the_lower_index(self):
        pool = Pool(probs=np.full((10, 4), 0.25, np.float32))
        assert self.make().query(pool, 3, np.random.default_rng(5)).tolist() == [0, 1, 2]


class TestMargin(StrategyContract):
    def make(self):
        return SmallestMargin()

    def test_matches_the_definition(self):
        pool = make_pool(500, seed=5)
        top2 = np.sort(pool.probs.astype(np.float64), axis=1)[:, -2:]
        expected = brute_force(top2[:, 0] - top2[:, 1], 30)
        assert sorted(self.make().query(pool, 30, np.random.default_rng(0)).tolist()) == sorted(expected)


class TestEntropy(StrategyContract):
    def make(self):
        return Entropy()

    def test_matches_the_definition(self):
        pool = make_pool(500, seed=6)
        p = pool.probs.astype(np.float64)
        expected = brute_force(-(p * np.log(np.clip(p, 1e-300, 1))).sum(axis=1), 30)
        chosen = self.make().query(pool, 30, np.random.default_rng(0)).tolist()
        assert len(set(chosen) & set(expected)) >= 29  # float32 vs float64 may swap a boundary pair


class TestBALD(StrategyContract):
    def make(self):
        return BALD()

    def test_prefers_samples_the_passes_disagree_on(self):
        agree = np.tile([[0.5, 0.5]], (4, 1, 1)).repeat(3, axis=1)  # uncertain but consistent
        disagree = np.array([[[1, 0]], [[0, 1]], [[1, 0]], [[0, 1]]], dtype=float)
        mc = np.concatenate([agree, disagree], axis=1).astype(np.float32)  # sample 3 disagrees
        assert BALD().query(Pool(mc_probs=mc), 1, np.random.default_rng(0)).tolist() == [3]

    def test_mc_dropout_with_a_pytorch_model(self):
        import torch

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
        inputs = torch.randn(40, 4)
        passes = mc_dropout_probs(model, inputs, passes=8, seed=1)
        assert passes.shape == (8, 40, 3) and not np.allclose(passes[0], passes[1])
        assert np.allclose(passes.sum(axis=2), 1, atol=1e-5)
        assert not model.training and np.array_equal(passes, mc_dropout_probs(model, inputs, passes=8, seed=1))
        chosen = BALD().query(Pool(mc_probs=passes), 5, np.random.default_rng(0))
        assert len(set(chosen.tolist())) == 5


class TestCoreSet(StrategyContract):
    def make(self):
        return CoreSet()

    def test_picks_points_far_from_the_labeled_set(self):
        embeddings = np.array([[0, 0], [0.1, 0], [10, 10], [0, 0.2], [-9, 9]], dtype=float)
        pool = Pool(embeddings=embeddings, labeled_embeddings=np.zeros((1, 2)))
        assert sorted(CoreSet().query(pool, 2, np.random.default_rng(0)).tolist()) == [2, 4]


class TestHybrid(StrategyContract):
    def make(self):
        return Hybrid(beta=3)

    def test_selects_among_the_most_uncertain(self):
        pool = make_pool(400, seed=8)
        uncertain = set(brute_force(margin_of(pool.probs), 30))  # the margin formula, not the margin kernel
        assert set(Hybrid(beta=3).query(pool, 10, np.random.default_rng(0)).tolist()) <= uncertain


class TestClassBalanced(StrategyContract):
    def make(self):
        return ClassBalanced(Entropy())

    def test_spreads_k_over_predicted_classes(self):
        rng = np.random.default_rng(0)
        probs = np.full((300, 3), 0.05, np.float32)
        predicted = np.r_[np.zeros(250, int), np.ones(40, int), np.full(10, 2)]
        probs[np.arange(300), predicted] = 0.9
        probs += rng.uniform(0, 0.01, probs.shape).astype(np.float32)
        probs /= probs.sum(axis=1, keepdims=True)
        chosen = ClassBalanced(Entropy()).query(Pool(probs=probs), 9, rng)
        assert np.bincount(predicted[chosen], minlength=3).tolist() == [3, 3, 3]


def test_k_center_greedy_without_labeled_set_is_seeded():
    points = np.random.default_rng(0).normal(size=(50, 2))
    assert k_center_greedy(points, 5, None, np.random.default_rng(3)).tolist() == \
        k_center_greedy(points, 5, None, np.random.default_rng(3)).tolist()


def _k_center_reference(points, k, labeled):
    """k-center greedy written from its definition, with the full pairwise distance matrix."""
    distance = ((points[:, None, :] - labeled[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    chosen = []
    while len(chosen) < k:
        pick = max((i for i in range(len(points)) if i not in chosen), key=lambda i: (distance[i], -i))
        chosen.append(pick)
        distance = np.minimum(distance, ((points - points[pick]) ** 2).sum(axis=1))
    return chosen


def test_core_set_matches_the_definition_with_a_labeled_set():
    from alops.al.strategies import k_center_greedy

    rng = np.random.default_rng(1)
    points, labeled = rng.normal(size=(600, 8)), rng.normal(size=(150, 8))
    assert k_center_greedy(points, 15, labeled, rng).tolist() == _k_center_reference(points, 15, labeled)


@pytest.mark.parametrize("with_labeled", [False, True])
def test_core_set_never_returns_a_sample_twice_on_duplicate_embeddings(with_labeled):
    from alops.al.strategies import k_center_greedy

    labeled = np.ones((2, 4)) if with_labeled else None
    picks = k_center_greedy(np.ones((10, 4)), 3, labeled, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 3


def test_bald_in_blocks_equals_the_formula():
    from alops.al import strategies

    rng = np.random.default_rng(2)
    mc = rng.dirichlet(np.ones(4), size=(6, 500)).astype(np.float32)
    passes = np.clip(mc.astype(np.float64), 1e-12, 1.0)
    mean = passes.mean(axis=0)
    expected = -(mean * np.log(mean)).sum(axis=1) + (passes * np.log(passes)).sum(axis=2).mean(axis=0)
    from alops.al import kernels

    small_blocks = kernels.BLOCK_ROWS
    try:
        kernels.BLOCK_ROWS = 37  # 37 samples per block: many blocks, a short last one
        got = strategies.make_strategy("bald").score(strategies.Pool(mc_probs=mc))
    finally:
        kernels.BLOCK_ROWS = small_blocks
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


def margin_of(probs: np.ndarray) -> np.ndarray:
    top = np.sort(probs.astype(np.float64), axis=1)
    return -(top[:, -1] - top[:, -2])  # higher: more uncertain


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("k", [1, 3, 7, 40, 90])
def test_balanced_shares_differ_by_at_most_one_and_follow_the_formula_within_each_class(seed, k):
    """Checked against the margin formula and per-class brute force, not against the implementation."""
    rng = np.random.default_rng(seed)
    classes = 6
    # skewed predicted classes: some classes have few members, so their shares run out
    probs = rng.dirichlet(np.r_[np.full(2, 4.0), np.full(classes - 2, 0.3)], size=100).astype(np.float32)
    pool = Pool(probs=probs)
    chosen = ClassBalanced(SmallestMargin()).query(pool, k, np.random.default_rng(0))
    assert len(chosen) == k == len(set(chosen.tolist()))
    predicted, score = probs.argmax(axis=1), margin_of(probs)
    counts = {c: int((predicted[chosen] == c).sum()) for c in np.unique(predicted)}
    sizes = {c: int((predicted == c).sum()) for c in counts}
    open_classes = [c for c in counts if counts[c] < sizes[c]]  # classes not exhausted
    if open_classes:
        assert max(counts.values()) - min(counts[c] for c in open_classes) <= 1
    for c, n in counts.items():  # within a class: its n most uncertain, exact ties to the lowest row
        members = np.flatnonzero(predicted == c)
        expected = sorted(members, key=lambda r: (-score[r], r))[:n]
        assert sorted(chosen[predicted[chosen] == c].tolist()) == sorted(int(r) for r in expected)
    if k < len(counts):  # fewer picks than classes: the k classes holding the most uncertain samples, one each
        best = sorted(counts, key=lambda c: -score[predicted == c].max())[:k]
        assert sorted(counts[c] for c in best) == [1] * k and sum(counts.values()) == k
