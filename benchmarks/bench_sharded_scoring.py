"""Scoring a pool with the model, fused with the selection (`alops query select INPUTS --model MODEL`), in
shards as n CI jobs would run it, against one job over the whole pool.

A 1,000,000 x 32 float32 pool, a small scikit-learn model (an MLP, 32-256-256-10), margin top-1000.
Each shard runs in its own process (a job of its own); the merged selection must equal the single pass.
Reported: wall time and peak memory of the single pass and of each shard (the slowest shard is the wall time of
the parallel jobs), plus the reference: scoring to a probabilities file first, then selecting from it.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import warnings

import numpy as np
from child import PEAK, report, run_child

ROWS = int(os.environ.get("ALOPS_BENCH_SCORING_ROWS", 1_000_000))
SHARDS = 4
K = 1000
REPEATS = 3

FUSED = f"""
import json, sys
from alops.al.scoring import parse_shard, select_scored_by_model
model, inputs, shard = sys.argv[1:4]
result = select_scored_by_model(model, inputs, "margin", {K}, shard=parse_shard(shard) if shard != "-" else None)
print(json.dumps({{"indices": result["indices"], "scores": result["scores"], "peak_mib": {PEAK}}}))
"""
TWO_STEP = f"""
import json, os, sys
from alops.al.scoring import score_with_model, select_streaming
model, inputs, folder = sys.argv[1:4]
score_with_model(model, inputs, os.path.join(folder, "probs.npy"))
result = select_streaming(os.path.join(folder, "probs.npy"), "margin", {K})
print(json.dumps({{"indices": result["indices"], "peak_mib": {PEAK}}}))
"""


def median_run(code: str, *args: str) -> tuple[float, dict]:
    runs = [run_child(code, *args) for _ in range(REPEATS)]
    return statistics.median(seconds for seconds, _ in runs), runs[-1][1]


def main() -> int:
    import joblib
    from sklearn.neural_network import MLPClassifier

    from alops.al.scoring import merge

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        inputs = os.path.join(folder, "inputs.npy")
        x = rng.normal(size=(ROWS, 32)).astype(np.float32)
        np.save(inputs, x)
        y = np.digitize(x[:20_000, :3].sum(axis=1), np.linspace(-3, 3, 9))
        model = os.path.join(folder, "model.joblib")
        with warnings.catch_warnings():  # 20 iterations are enough for a model to score with
            warnings.simplefilter("ignore")
            joblib.dump(MLPClassifier((256, 256), max_iter=20, random_state=0).fit(x[:20_000], y), model)
        del x

        single_s, single = median_run(FUSED, model, inputs, "-")
        shard_runs = [median_run(FUSED, model, inputs, f"{i}/{SHARDS}") for i in range(SHARDS)]
        two_step_s, two_step = median_run(TWO_STEP, model, inputs, folder)

    shards = [{"schema": 1, "strategy": "margin", "k": K, "seed": 0, "pool_rows": ROWS, "pool_digest": "p",
               "shard": f"{i}/{SHARDS}", "indices": out["indices"], "scores": out["scores"]}
              for i, (_, out) in enumerate(shard_runs)]
    merged = merge(shards)["indices"]
    slowest = max(seconds for seconds, _ in shard_runs)
    print(f"pool {ROWS:,} x 32 float32, MLP 32-256-256-10 (scikit-learn), margin top-{K}; medians of {REPEATS} runs"
          " (each a process of its own, start-up included)")
    print(f"  one job, fused:        {single_s:6.2f} s, peak {single['peak_mib']:.0f} MiB")
    for i, (seconds, out) in enumerate(shard_runs):
        print(f"  shard {i}/{SHARDS}, fused:     {seconds:6.2f} s, peak {out['peak_mib']:.0f} MiB")
    print(f"  {SHARDS} parallel jobs:       {slowest:6.2f} s wall (the slowest shard), {single_s / slowest:.2f}x faster")
    print(f"  score file, then select: {two_step_s:6.2f} s, peak {two_step['peak_mib']:.0f} MiB (reference)")
    missed = []
    if sorted(merged) != sorted(single["indices"]):
        missed.append("the merged shards differ from the single pass")
    if sorted(two_step["indices"]) != sorted(single["indices"]):
        missed.append("the fused selection differs from scoring to a file, then selecting")
    print("merged shards == single pass:", not missed)
    return report(missed)


if __name__ == "__main__":
    sys.exit(main())
