"""The release gate (`release.judge`) at its boundaries and in both directions: values chosen to be exact in binary
floating point, so a boundary is a boundary."""

from __future__ import annotations

import math

import pytest

from alops.release.gate import Gate, judge


@pytest.mark.parametrize("direction, candidate, champion, min_delta, passed", [
    ("max", 0.75, 0.5, 0.25, True),    # gain exactly the minimum: passes
    ("max", 0.625, 0.5, 0.25, False),  # below it
    ("max", 0.5, 0.5, 0.0, True),      # non-regression: equal passes with no minimum
    ("max", 0.375, 0.5, 0.0, False),   # a regression
    ("min", 0.25, 0.5, 0.25, True),    # lower is better: gain exactly the minimum
    ("min", 0.375, 0.5, 0.25, False),
    ("min", 0.75, 0.5, 0.0, False),    # a higher loss is a regression
    ("min", 0.5, 0.5, 0.0, True),
])
def test_the_gate_holds_the_minimum_gain_in_the_metrics_direction(direction, candidate, champion, min_delta, passed):
    decision = judge(Gate("m", direction, min_delta), candidate, champion, first_release=False)
    assert decision.passed is passed, decision.reason
    assert (decision.candidate, decision.champion) == (candidate, champion)


@pytest.mark.parametrize("min_relative, passed", [(0.25, True), (0.25 + 2 ** -20, False)])
def test_the_relative_gain_is_a_boundary_too(min_relative, passed):
    decision = judge(Gate("m", "max", 0.0, min_relative), 0.625, 0.5, first_release=False)  # +25% exactly
    assert decision.passed is passed
    assert not passed or "+25.00%" in decision.reason


@pytest.mark.parametrize("candidate, champion, first_release, words", [
    (None, 0.5, False, "is missing"),
    (math.nan, 0.5, False, "is NaN"),
    (math.nan, None, True, "is NaN"),  # even the first release needs a number
    (0.75, None, False, "champion's m is missing"),
    (0.75, math.nan, False, "champion's m is NaN"),
])
def test_missing_or_nan_values_fail_closed(candidate, champion, first_release, words):
    decision = judge(Gate("m"), candidate, champion, first_release)
    assert not decision.passed and words in decision.reason and "fails closed" in decision.reason


def test_the_first_release_passes_with_nothing_to_compare():
    decision = judge(Gate("m", "max", 0.5), 0.125, None, first_release=True)
    assert decision.passed and decision.champion is None and "first release" in decision.reason


def test_beyond_noise_holds_a_passing_gain_to_its_sampling_interval():
    """With beyond_noise, 0.9638 vs 0.9415 on 359 samples each passes the minimum gain but not the noise test;
    0.99 vs 0.90 passes both; no sample counts fail closed; without it the decision is the plain gate's."""
    from alops.release.gate import judge_noise
    from alops.runs.noise import change

    counts = {"val_samples": 359}
    strict, plain = Gate("val_accuracy", beyond_noise=True), Gate("val_accuracy")
    small = judge(strict, 0.9638, 0.9415, first_release=False)
    noise = change(0.9638, 0.9415, counts, counts, "val_accuracy")
    assert judge_noise(plain, small, noise) is small and small.passed
    held = judge_noise(strict, small, noise)
    assert not held.passed and "within noise, not beyond sampling noise" in held.reason
    large = judge(strict, 0.99, 0.90, first_release=False)
    assert judge_noise(strict, large, change(0.99, 0.90, counts, counts, "val_accuracy")).passed
    unknown = judge_noise(strict, large, None)
    assert not unknown.passed and "no sample counts to judge noise by" in unknown.reason
    first = judge(strict, 0.5, None, first_release=True)
    assert judge_noise(strict, first, None).passed  # nothing to compare with: the first release passes


def test_beyond_noise_judges_the_minimum_gain_against_the_interval_over_seeds():
    """A mean gain of 0.03 over 3 seeds each, interval about +0.007 to +0.053: beyond noise, and beyond a minimum
    gain of 0.005, but not beyond one of 0.01 (the interval allows a smaller gain); lower is better mirrored."""
    from alops.release.gate import judge_noise
    from alops.runs.noise import seed_change

    now, before = [0.93, 0.94, 0.95], [0.90, 0.91, 0.92]
    noise = seed_change(now, before)
    assert noise.verdict == "better" and 0.005 < noise.low < 0.01
    for min_delta, passes in ((0.005, True), (0.01, False)):
        gate = Gate("val_accuracy", min_delta=min_delta, beyond_noise=True)
        decision = judge_noise(gate, judge(gate, 0.94, 0.91, first_release=False), noise)
        assert decision.passed is passes
        if not passes:
            assert f"reaches {noise.low:+.4f}, below the minimum gain 0.01" in decision.reason
    loss = Gate("val_loss", direction="min", min_delta=0.02, beyond_noise=True)
    held = judge_noise(loss, judge(loss, 0.91, 0.94, first_release=False), seed_change(before, now, "min"))
    assert not held.passed and "below the minimum gain 0.02" in held.reason
    within = judge_noise(Gate("val_accuracy", beyond_noise=True), judge(Gate("val_accuracy"), 0.94, 0.93, False),
                         seed_change(now, [0.95, 0.92, 0.92]))
    assert not within.passed and "within noise, not beyond seed noise" in within.reason
