"""Drift tests that account for sample size: Pearson's chi-square test of class shares between two samples
and the two-sample Kolmogorov-Smirnov test per numeric column (scipy.stats).

Each test reports an effect size and a p-value; a column drifts when the p-value is below `alpha` and the
effect reaches `min_effect` (Cramér's V for classes, the KS statistic D for numeric columns), so noise in a
small log is not flagged and a negligible shift in a huge one is not either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.01
MIN_EFFECT = 0.1


@dataclass(frozen=True)
class Test:
    """One drift test: the effect size, its p-value and the verdict under the thresholds."""

    effect: float
    p_value: float
    drifted: bool

    def summary(self, effect_name: str) -> str:
        return f"{effect_name} {self.effect:.3f}, p {self.p_value:.2g}"


def _verdict(effect: float, p_value: float, alpha: float, min_effect: float) -> Test:
    return Test(effect, p_value, p_value < alpha and effect >= min_effect)


def class_shares(dev: dict[str, int], live: dict[str, int], alpha: float = ALPHA,
                 min_effect: float = MIN_EFFECT) -> tuple[Test, list[str]]:
    """Chi-square test of the 2 x K table of class counts; with the classes that moved (adjusted residual beyond
    the Bonferroni-corrected two-sided `alpha`), largest move first; the largest mover when none passes alone."""
    from scipy.stats import chi2_contingency, norm

    names = [name for name in sorted(set(dev) | set(live)) if dev.get(name, 0) + live.get(name, 0) > 0]
    if len(names) < 2:
        return Test(0.0, 1.0, False), []
    table = np.array([[dev.get(n, 0) for n in names], [live.get(n, 0) for n in names]], dtype=np.float64)
    if (table.sum(axis=1) == 0).any():
        return Test(0.0, 1.0, False), []
    statistic, p_value, _dof, expected = chi2_contingency(table, correction=False)
    total = table.sum()
    test = _verdict(math.sqrt(statistic / total), float(p_value), alpha, min_effect)  # Cramér's V of a 2 x K table
    if not test.drifted:
        return test, []
    rows, columns = table.sum(axis=1, keepdims=True) / total, table.sum(axis=0, keepdims=True) / total
    residual = ((table - expected) / np.sqrt(expected * (1 - rows) * (1 - columns)))[1]
    order = np.argsort(-np.abs(residual), kind="stable")
    limit = norm.isf(alpha / (2 * len(names)))
    moved = [names[i] for i in order if abs(residual[i]) > limit] or [names[order[0]]]
    return test, moved


def numeric_column(statistic: float, n: int, m: int, alpha: float = ALPHA, min_effect: float = MIN_EFFECT) -> Test:
    """The two-sample KS test of a statistic D between samples of n and m values (scipy's asymptotic p-value)."""
    from scipy.stats import kstwo

    if n == 0 or m == 0:
        return Test(0.0, 1.0, False)
    return _verdict(statistic, float(kstwo.sf(statistic, round(n * m / (n + m)))), alpha, min_effect)
