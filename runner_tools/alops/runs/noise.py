"""Whether a change in a metric is more than noise, as a 95% interval of `current - before`:

- over seeds (`alops run --seeds N`): the difference of the two means, with Student's t on the variance the
  seeds show (pooled over both sides, so one run on a side is judged by the other side's spread);
- for one run a side, a proportion metric (accuracy, recall, ... measured on n samples): the difference of two
  independent proportions (Newcombe's hybrid score interval, built from each side's Wilson interval by scipy).
  Each side's n is the `<prefix>_samples` metric beside `<prefix>_<name>` (`val_samples` for `val_accuracy`, as
  the scaffold's evaluate stage writes it), or `samples` beside a name without a prefix. Two runs scored on the
  same samples allow a paired test, which is narrower (alops.release.rescore); this interval errs towards "within noise".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Change:
    """current - before, its interval, and what that says given the metric's direction."""

    low: float
    high: float
    samples: tuple[int, int]  # (current, before): samples measured, or seeds run (`unit`)
    verdict: str  # "better", "worse" or "within noise"
    unit: str = "samples"  # or "seeds", or "paired": both sides scored the same samples

    def describe(self) -> str:
        """The interval and its basis, e.g. "+0.0050 to +0.0220 (mean of 3 vs 3 seeds)"."""
        basis = {"seeds": f"mean of {self.samples[0]} vs {self.samples[1]} seeds",
                 "paired": f"paired bootstrap over {self.samples[0]} samples"}.get(
                     self.unit, f"{self.samples[0]} vs {self.samples[1]} samples")
        return f"{self.low:+.4f} to {self.high:+.4f} ({basis})"


def verdict_of(low: float, high: float, direction: str) -> str:
    better, worse = (low > 0, high < 0) if direction == "max" else (high < 0, low > 0)
    return "better" if better else "worse" if worse else "within noise"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def spread(values: list[float]) -> float | None:
    """Half the width of the 95% interval of the mean of `values` (Student's t), or None for fewer than two."""
    from scipy.stats import t

    if len(values) < 2:
        return None
    average = mean(values)
    deviation = math.sqrt(sum((v - average) ** 2 for v in values) / (len(values) - 1))
    return float(t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)) * deviation / math.sqrt(len(values))


def seed_change(now: list[float], before: list[float], direction: str = "max") -> Change | None:
    """The interval of mean(now) - mean(before) over seeds: Student's t with the variance pooled over both sides
    (a side with one run adds no degrees of freedom); None when neither side has two seeds."""
    from scipy.stats import t

    freedom = len(now) + len(before) - 2
    if not now or not before or freedom < 1:
        return None
    squares = sum((v - mean(side)) ** 2 for side in (now, before) for v in side)
    half = float(t.ppf(0.5 + CONFIDENCE / 2, freedom)) * math.sqrt(squares / freedom) * math.sqrt(1 / len(now) + 1 / len(before))
    difference = mean(now) - mean(before)
    low, high = difference - half, difference + half
    return Change(low, high, (len(now), len(before)), verdict_of(low, high, direction), "seeds")


def sample_count(metrics: dict[str, float], name: str) -> int | None:
    """The number of samples `name` was measured on: the `<prefix>_samples` metric (`samples` for a name without
    a prefix), when there is one."""
    value = metrics.get(f"{name.split('_', 1)[0]}_samples" if "_" in name else "samples")
    if value is None or not math.isfinite(value) or value < 1 or value != int(value):
        return None
    return int(value)


def _wilson(share: float, samples: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    interval = binomtest(round(share * samples), samples).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return interval.low, interval.high


def change(current: float, before: float, metrics_now: dict[str, float], metrics_before: dict[str, float],
           name: str, direction: str = "max") -> Change | None:
    """The interval of `current - before` for a proportion metric, or None when it is not one (a value outside
    [0, 1]) or either side lacks its sample count."""
    samples_now, samples_before = sample_count(metrics_now, name), sample_count(metrics_before, name)
    if samples_now is None or samples_before is None or not all(0.0 <= v <= 1.0 for v in (current, before)):
        return None
    counts = samples_now, samples_before
    (low_now, high_now), (low_before, high_before) = _wilson(current, samples_now), _wilson(before, samples_before)
    difference = current - before
    low = difference - math.hypot(current - low_now, high_before - before)
    high = difference + math.hypot(high_now - current, before - low_before)
    return Change(low, high, counts, verdict_of(low, high, direction))
