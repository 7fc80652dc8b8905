"""The drift check's error rates: 100 same-distribution draws (false alarms) and 100 draws of each of three kinds
of shift (misses), through `check_dev` on CSV files as the CI job reads them, at the default thresholds.

Data: a dev set of 359 rows (the digits example's validation size) with ground-truth labels of 10 classes and two
numeric columns, against live logs of 400 rows whose `prediction` column holds the classes. Shifts:
- prior: one class takes another's share (10% -> 20%, its neighbour 10% -> 0%), features as before;
- covariate: both columns move by 0.4 standard deviations, the class shares as before;
- new class: 10% of the live rows predicted as a class the dev set has never seen ("10").
Baseline, measured in the same run on the same files: the check alops had before (a class share more than 2
percentage points off, or a KS statistic above 0.1), which ignored sample size.
Targets: a false-alarm rate of at most 5% (three tests at alpha 0.01: about 3% by design) and a detection rate of
at least 95% on each shift.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from alops.data.devset import check_dev

DRAWS = int(os.environ.get("ALOPS_BENCH_DRAWS", 100))
SEEDS = (2026, 2027, 2028)  # three runs of 100 draws: the range is what docs/data.md quotes
DEV_ROWS, LIVE_ROWS = 359, 400
CLASSES = [str(k) for k in range(10)]
SHARES = np.array([0.086, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.114])
FALSE_ALARM_TARGET, DETECTION_TARGET = 0.05, 0.95


def _prior(shares):
    moved = shares.copy()
    moved[7], moved[6] = moved[7] + moved[6], 0.0
    return moved


SCENARIOS = {  # name: (live class shares, new-class share, feature shift in standard deviations)
    "control": (SHARES, 0.0, 0.0),
    "prior": (_prior(SHARES), 0.0, 0.0),
    "covariate": (SHARES, 0.0, 0.4),
    "new class": (SHARES, 0.1, 0.0),
}


def _write(path, labels, features, column):
    with open(path, "w") as out:
        out.write(f"{column},x1,x2\n")
        out.writelines(f"{label},{a:.5f},{b:.5f}\n" for label, (a, b) in zip(labels, features))


def _draw(rng, n, shares, new_share, shift):
    labels = rng.choice(CLASSES, n, p=shares).astype(object)
    labels[rng.random(n) < new_share] = "10"
    return labels, rng.normal(shift, 1.0, (n, 2))


def _old_check(dev_labels, dev_features, live_labels, live_features) -> bool:
    """The former check: any class share more than 2 points off, or any column's KS statistic above 0.1."""
    for name in set(dev_labels) | set(live_labels):
        if abs(100 * np.mean(dev_labels == name) - 100 * np.mean(live_labels == name)) > 2.0:
            return True
    for column in range(dev_features.shape[1]):
        dev, live = np.sort(dev_features[:, column]), np.sort(live_features[:, column])
        grid = np.concatenate([dev, live])
        gap = np.abs(np.searchsorted(dev, grid, "right") / dev.size - np.searchsorted(live, grid, "right") / live.size)
        if gap.max() > 0.1:
            return True
    return False


def main() -> int:
    print(f"drift check: {len(SEEDS)} runs of {DRAWS} draws per scenario, dev {DEV_ROWS} rows vs live {LIVE_ROWS}, "
          "alpha 0.01, min effect 0.1")
    print(f"{'scenario':<11} {'alops flagged':>16} {'former check':>14}  named (alops, last draw)")
    met = True
    with tempfile.TemporaryDirectory() as folder:
        dev_path, live_path = os.path.join(folder, "dev.csv"), os.path.join(folder, "live.csv")
        for name, (shares, new_share, shift) in SCENARIOS.items():
            rates, old_rates, named = [], [], ""
            for seed in SEEDS:
                rng = np.random.default_rng(seed)
                flagged = old = 0
                for _ in range(DRAWS):
                    dev = _draw(rng, DEV_ROWS, SHARES, 0.0, 0.0)
                    live = _draw(rng, LIVE_ROWS, shares, new_share, shift)
                    _write(dev_path, *dev, "label")
                    _write(live_path, *live, "prediction")
                    verdict = check_dev(dev_path, live_path, "prediction")
                    if not verdict["representative"]:
                        flagged += 1
                        named = "; ".join(problem.split(":")[0] for problem in verdict["problems"])
                    old += _old_check(dev[0], dev[1], live[0], live[1])
                rates.append(flagged / DRAWS)
                old_rates.append(old / DRAWS)
            ok = max(rates) <= FALSE_ALARM_TARGET if name == "control" else min(rates) >= DETECTION_TARGET
            met &= ok
            print(f"{name:<11} {min(rates):>7.0%} to {max(rates):>4.0%} {min(old_rates):>5.0%} to {max(old_rates):>4.0%}"
                  f"  {named or '-'}{'' if ok else '   (target missed)'}")
    print("targets: false alarms <= 5%, detection >= 95% per shift:", "met" if met else "MISSED")
    return 0 if met else 1

if __name__ == "__main__":
    sys.exit(main())
