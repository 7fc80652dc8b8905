"""Whether a change in a proportion metric (accuracy, recall, ... measured on n samples) is more than sampling
noise: the 95% interval of the difference of two independent proportions (Newcombe's hybrid score interval,
built from each side's Wilson interval by scipy). Each side's n is the `<prefix>_samples` metric beside
`<prefix>_<name>` (`val_samples` for `val_accuracy`, as the scaffold's evaluate stage writes it), or `samples`
beside a name without a prefix.

Two runs scored on the same samples would allow a paired test, which is narrower: this interval errs towards
"within noise".
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
    samples: tuple[int, int]  # (current, before)
    verdict: str  # "better", "worse" or "within noise"


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
    counts = sample_count(metrics_now, name), sample_count(metrics_before, name)
    if None in counts or not all(0.0 <= v <= 1.0 for v in (current, before)):
        return None
    (low_now, high_now), (low_before, high_before) = _wilson(current, counts[0]), _wilson(before, counts[1])
    difference = current - before
    low = difference - math.hypot(current - low_now, high_before - before)
    high = difference + math.hypot(high_now - current, before - low_before)
    sign = 1 if direction == "max" else -1
    better, worse = (low > 0, high < 0) if sign > 0 else (high < 0, low > 0)
    return Change(low, high, counts, "better" if better else "worse" if worse else "within noise")
