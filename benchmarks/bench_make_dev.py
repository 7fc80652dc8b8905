"""`alops data make-dev` on a generated 10,000,000-row manifest against a pandas groupby-sample baseline.

Manifest: 10 classes, 3 splits, 30% unlabeled, 2 numeric columns. Targets: at most 15 s and 1 GiB peak
memory, largest per-stratum share deviation at most 0.5 percentage points, and at least as fast as
`pandas.read_csv(...).groupby([label, split]).sample(frac=...)` measured in the same run.
Each contender runs in its own process; peak memory is that process's VmHWM (its own high-water mark).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from child import PEAK, report, run_child

ROWS = int(os.environ.get("ALOPS_BENCH_ROWS", 10_000_000))
FRACTION = 0.01
TIME_TARGET_S, MEMORY_TARGET_MIB, DEVIATION_TARGET_PP = 15.0, 1024, 0.5

GENERATE = """
import sys, numpy as np, pyarrow as pa, pyarrow.csv as csv
rows, out = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(1)
with csv.CSVWriter(out, pa.schema([("id", pa.int64()), ("label", pa.string()), ("split", pa.string()),
                                   ("x1", pa.float64()), ("x2", pa.float64())])) as writer:
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        label = rng.integers(0, 10, n).astype(str).astype(object)
        label[rng.random(n) < 0.3] = None
        split = np.array(["train", "val", "test"])[rng.choice(3, n, p=[0.7, 0.15, 0.15])]
        writer.write(pa.record_batch({"id": np.arange(start, start + n), "label": pa.array(label, pa.string()),
                                      "split": split, "x1": rng.normal(0, 1, n), "x2": rng.exponential(2, n)}))
"""

ALOPS = """
import sys, json
from alops.devset import DevSize, make_dev
report = make_dev(sys.argv[1], sys.argv[2], sys.argv[3], DevSize(fraction=float(sys.argv[4])))
print(json.dumps({"deviation_pp": report["max_abs_deviation_pp"], "dev_rows": report["dev_rows"], "peak_mib": PEAK}))
""".replace("PEAK", PEAK)

PANDAS = """
import sys, json, pandas as pd
full = pd.read_csv(sys.argv[1], keep_default_na=False)
dev = full.groupby(["label", "split"]).sample(frac=float(sys.argv[4]), random_state=0)
shares = full.groupby(["label", "split"]).size() / len(full)
dev_shares = dev.groupby(["label", "split"]).size().reindex(shares.index, fill_value=0) / len(dev)
dev.to_csv(sys.argv[2] + ".csv", index=False)
print(json.dumps({"deviation_pp": float(100 * (shares - dev_shares).abs().max()), "dev_rows": len(dev), "peak_mib": PEAK}))
""".replace("PEAK", PEAK)


def measure(code: str, *args: str) -> tuple[float, float, dict]:
    """Wall seconds, the child's own peak resident MiB (VmHWM) and the JSON it printed."""
    elapsed, output = run_child(code, *args)
    return elapsed, output["peak_mib"], output


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        manifest = os.path.join(folder, "manifest.csv")
        subprocess.run([sys.executable, "-c", GENERATE, str(ROWS), manifest], check=True)
        size_mib = os.path.getsize(manifest) / 2**20
        print(f"manifest: {ROWS:,} rows, {size_mib:.0f} MiB; dev fraction {FRACTION}")
        args = (manifest, os.path.join(folder, "dev"), os.path.join(folder, "report.json"), str(FRACTION))
        alops = measure(ALOPS, *args)
        baseline = measure(PANDAS, *args)
    print(f"{'contender':34} {'wall s':>7} {'peak MiB':>9} {'max dev pp':>11} {'rows':>9}")
    for name, (seconds, mib, out) in (("alops make-dev (streaming)", alops), ("pandas groupby().sample()", baseline)):
        print(f"{name:34} {seconds:7.2f} {mib:9.0f} {out['deviation_pp']:11.4f} {out['dev_rows']:9,}")
    print(f"alops / pandas: time {alops[0] / baseline[0]:.2f}x, peak memory {alops[1] / baseline[1]:.2f}x")
    missed = []
    if alops[0] > TIME_TARGET_S:
        missed.append(f"time {alops[0]:.1f} s > {TIME_TARGET_S} s")
    if alops[1] > MEMORY_TARGET_MIB:
        missed.append(f"peak memory {alops[1]:.0f} MiB > {MEMORY_TARGET_MIB} MiB")
    if alops[2]["deviation_pp"] > DEVIATION_TARGET_PP:
        missed.append(f"deviation {alops[2]['deviation_pp']:.3f} pp > {DEVIATION_TARGET_PP} pp")
    if alops[0] > baseline[0]:
        missed.append("slower than the pandas baseline")
    return report(missed)


if __name__ == "__main__":
    sys.exit(main())
