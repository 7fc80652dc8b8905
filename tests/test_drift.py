"""The drift check's error rates, measured through `check_dev` on files as the CI job reads them: 100 draws of a
same-distribution log (false alarms) and 100 of a shifted one (misses), at the default thresholds. The figures are
the ones docs/data.md quotes."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import write_manifest

from alops.data import drift
from alops.data.devset import check_dev

CLASSES = np.array(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
SHARES = np.array([0.086, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.114])  # the digits log's class shares, roughly


def _log(path, rng, n, shares, shift, column):
    labels = rng.choice(CLASSES, n, p=shares)
    write_manifest(path, [{column: label, "x": f"{value:.5f}"} for label, value in zip(labels, rng.normal(shift, 1, n))])


def _draws(tmp_path, moved_shares, shift, draws=100):
    """(draws flagged, problems of the last flagged draw): a dev set of 359 rows against live logs of 400."""
    rng = np.random.default_rng(2026)
    flagged, last = 0, []
    for _ in range(draws):
        _log(tmp_path / "dev.csv", rng, 359, SHARES, 0.0, "label")
        _log(tmp_path / "live.csv", rng, 400, moved_shares, shift, "prediction")
        verdict = check_dev(str(tmp_path / "dev.csv"), str(tmp_path / "live.csv"), "prediction")
        if not verdict["representative"]:
            flagged, last = flagged + 1, verdict["problems"]
    return flagged, last


def test_a_same_distribution_log_passes_at_the_documented_false_alarm_rate(tmp_path):
    flagged, problems = _draws(tmp_path, SHARES, 0.0)
    assert flagged <= 2, problems  # two tests at alpha 0.01 each: at most about 2 in 100 by design; 1 measured


def test_a_shifted_log_fails_naming_the_class_and_the_column_that_moved(tmp_path):
    moved = SHARES.copy()
    moved[3], moved[0] = 0.25, 0.0  # class 3 takes over class 0's share
    moved /= moved.sum()
    flagged, problems = _draws(tmp_path, moved, 0.4)
    assert flagged >= 98
    named = [p.split(":")[0] for p in problems]
    assert set(named[:2]) == {"label 3", "label 0"} and named[2:] == ["feature x"], problems
    assert "Cramér V" in problems[0] and ", p " in problems[0]


def test_a_negligible_shift_in_a_huge_sample_is_not_drift():
    """Significant but tiny: 0.2 points on a million rows each is below the minimum effect."""
    dev = {"a": 500_000, "b": 500_000}
    live = {"a": 502_000, "b": 498_000}
    test, moved = drift.class_shares(dev, live)
    assert test.p_value < 0.01 and test.effect < 0.01 and not test.drifted and moved == []


@pytest.mark.parametrize("statistic, n, m", [(0.2, 359, 400), (0.05, 1000, 2000), (0.5, 20, 30)])
def test_the_ks_p_value_is_scipys(statistic, n, m):
    from scipy.stats import kstwo

    assert drift.numeric_column(statistic, n, m).p_value == pytest.approx(kstwo.sf(statistic, round(n * m / (n + m))))
