"""Better, worse or within noise: the interval of a change in a proportion metric."""

from __future__ import annotations

import pytest

from alops.core.config import PrimaryMetric
from alops.report import merge_request as report
from alops.runs.noise import change, sample_count


def test_the_interval_is_newcombes_hybrid_score_interval():
    """Newcombe (1998), Statistics in Medicine 17:873, table II example (56/70 vs 48/80): 0.0524 to 0.3339."""
    found = change(56 / 70, 48 / 80, {"val_samples": 70}, {"val_samples": 80}, "val_accuracy")
    assert found.low == pytest.approx(0.0524, abs=5e-5) and found.high == pytest.approx(0.3339, abs=5e-5)
    assert found.verdict == "better" and found.samples == (70, 80)


@pytest.mark.parametrize("current, before, direction, verdict", [
    (0.9638, 0.9415, "max", "within noise"),  # 2.2 points on 359 validation samples: noise
    (0.99, 0.90, "max", "better"),
    (0.90, 0.99, "max", "worse"),
    (0.05, 0.20, "min", "better"),  # an error rate: lower is better
    (0.20, 0.05, "min", "worse"),
])
def test_verdicts_follow_the_metrics_direction(current, before, direction, verdict):
    counts = {"val_samples": 359}
    assert change(current, before, counts, counts, "val_accuracy", direction).verdict == verdict


def test_no_interval_without_sample_counts_or_for_values_that_are_not_proportions():
    assert change(0.9, 0.8, {}, {"val_samples": 100}, "val_accuracy") is None
    assert change(2.5, 1.5, {"val_samples": 9}, {"val_samples": 9}, "val_loss") is None  # not a proportion
    assert sample_count({"val_samples": 0}, "val_accuracy") is None and sample_count({"acc": 1}, "accuracy") is None
    assert sample_count({"samples": 50}, "accuracy") == 50
    assert sample_count({"test_samples": 120.0}, "test_f1") == 120


def test_the_reports_verdict_says_when_a_gain_is_within_noise():
    current = report.Side("workspace", {"val_accuracy": 0.9638, "val_samples": 359})
    baseline = report.Side("tracked run of main", {"val_accuracy": 0.9415, "val_samples": 359})
    built = report.Report("experiment/x", "main", "experiment", current, baseline,
                          primary=PrimaryMetric("val_accuracy"))
    text = report.render(built)
    assert "**`val_accuracy`: 0.9638** vs 0.9415 (+0.0223 (+2.4%)): better." in text
    assert "the change's 95% interval is -0.0095 to +0.0551 (359 vs 359 samples), so it is **within noise**." in text
    baseline.metrics.pop("val_samples")
    assert "Sampling noise" not in report.render(built)  # no count on one side: no claim


def test_means_equal_up_to_rounding_show_no_change():
    """A per-class recall of 0.1 on every seed of both sides: the means differ in the last bit only."""
    current = report.Side("workspace", {"recall": sum([0.1] * 3) / 3, "loss": 0.5})
    baseline = report.Side("tracked run of main", {"recall": 0.1, "loss": 0.4})
    assert current.metrics["recall"] != baseline.metrics["recall"]
    text = report.render(report.Report("experiment/x", "main", "experiment", current, baseline))
    assert "| `recall` | 0.1 | 0.1 | +0 (+0.0%) |" in text and "| `loss` | 0.5 | 0.4 | +0.1 (+25.0%) |" in text
