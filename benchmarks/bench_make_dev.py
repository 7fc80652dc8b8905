"""`alops data make-dev`, called as users call it, against pandas `groupby().sample()` in its strongest setup.

Data: a 10,000,000-row manifest (id, label: 10 classes with 30% unlabeled, split: 3, two numeric columns) and
the same rows as a row file without id and split (`data.rows`). Each contender samples 1% by label (x split)
and writes the sample as CSV. Contenders, each in its own process, the same repetitions, the median quoted:
- alops: the CLI, `alops data make-dev --fraction 0.01 --no-track` in a DVC project (process start included);
- pandas, default parser (`read_csv`, C engine, text as object);
- pandas, C parser with label and split as categories (the fastest setup measured here);
- pandas, pyarrow parser with categories (the multithreaded parser).
Peak memory is each process's own high-water mark (VmHWM; for the CLI the maximum RSS of the alops process).
Targets: alops at most 0.5x the fastest pandas contender's median time, peak under 512 MiB, largest
per-stratum share deviation at most 0.5 percentage points; on both inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from child import PEAK, report, run_child

ROWS = int(os.environ.get("ALOPS_BENCH_ROWS", 10_000_000))
REPEATS = int(os.environ.get("ALOPS_BENCH_REPEATS", 3))
FRACTION = 0.01
RATIO_TARGET, MEMORY_TARGET_MIB, DEVIATION_TARGET_PP = 0.5, 512, 0.5

GENERATE = """
import sys, numpy as np, pyarrow as pa, pyarrow.csv as csv
rows, manifest, row_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(1)
schema = pa.schema([("id", pa.int64()), ("label", pa.string()), ("split", pa.string()),
                    ("x1", pa.float64()), ("x2", pa.float64())])
with csv.CSVWriter(manifest, schema) as writer, csv.CSVWriter(row_file, schema.remove(2).remove(0)) as rows_writer:
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        label = rng.integers(0, 10, n).astype(str).astype(object)
        label[rng.random(n) < 0.3] = None
        split = np.array(["train", "val", "test"])[rng.choice(3, n, p=[0.7, 0.15, 0.15])]
        batch = pa.record_batch({"id": np.arange(start, start + n), "label": pa.array(label, pa.string()),
                                 "split": split, "x1": rng.normal(0, 1, n), "x2": rng.exponential(2, n)})
        writer.write(batch)
        rows_writer.write(batch.drop_columns(["id", "split"]))
"""

CLI = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[2:], cwd=sys.argv[1], check=True, stdout=subprocess.DEVNULL)
seconds = time.perf_counter() - start
report = json.load(open(sys.argv[1] + "/metrics/dev_fidelity.json"))
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "deviation_pp": report["max_abs_deviation_pp"], "dev_rows": report["dev_rows"]}))
"""

PANDAS = """
import sys, json
import pandas as pd
path, out, fraction, setup = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
keys = [k for k in ("label", "split") if k in open(path).readline().strip().replace(chr(34), "").split(",")]
if setup == "default":
    full = pd.read_csv(path, keep_default_na=False)
elif setup == "c-categories":
    full = pd.read_csv(path, keep_default_na=False, dtype={k: "category" for k in keys})
else:
    full = pd.read_csv(path, engine="pyarrow", dtype={k: "category" for k in keys})
    full["label"] = full["label"].cat.add_categories([""]).fillna("")
dev = full.groupby(keys, observed=True).sample(frac=fraction, random_state=0)
shares = full.groupby(keys, observed=True).size() / len(full)
dev_shares = dev.groupby(keys, observed=True).size().reindex(shares.index, fill_value=0) / len(dev)
dev.to_csv(out, index=False)
print(json.dumps({"deviation_pp": float(100 * (shares - dev_shares).abs().max()), "dev_rows": len(dev), "peak_mib": PEAK}))
""".replace("PEAK", PEAK)

PANDAS_SETUPS = {"pandas, default parser": "default", "pandas, C parser + categories": "c-categories",
                 "pandas, pyarrow parser + categories": "pyarrow-categories"}


def project(folder: str, data_file: str, config: str) -> str:
    """A git + DVC project whose data/full holds `data_file` (moved in), with alops.yaml `config`."""
    root = os.path.join(folder, "project-" + os.path.basename(data_file).split(".")[0])
    os.makedirs(os.path.join(root, "data", "full"))
    shutil.move(data_file, os.path.join(root, "data", "full", os.path.basename(data_file)))
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, check=True)
    with open(os.path.join(root, "alops.yaml"), "w") as handle:
        handle.write(config)
    return root


def alops_command() -> list[str]:
    return [os.path.join(os.path.dirname(sys.executable), "alops"), "data", "make-dev", "--fraction", str(FRACTION),
            "--no-track"]


def median_run(measure) -> tuple[float, float, dict]:
    """Median seconds, the largest peak MiB and the last output over REPEATS runs."""
    runs = [measure() for _ in range(REPEATS)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def compare(title: str, root: str, data_file: str, out: str) -> list[str]:
    def cli():
        _, output = run_child(CLI, root, *alops_command())
        return output["seconds"], output["peak_mib"], output

    def pandas(setup):
        def run():
            seconds, output = run_child(PANDAS, data_file, out, str(FRACTION), setup)
            return seconds, output["peak_mib"], output
        return run

    results = {"alops data make-dev (CLI)": median_run(cli)}
    for name, setup in PANDAS_SETUPS.items():
        results[name] = median_run(pandas(setup))
    print(f"-- {title} ({REPEATS} runs each, median)")
    print(f"{'contender':38} {'median s':>8} {'peak MiB':>9} {'max dev pp':>11} {'rows':>9}")
    for name, (seconds, mib, output) in results.items():
        print(f"{name:38} {seconds:8.2f} {mib:9.0f} {output['deviation_pp']:11.4f} {output['dev_rows']:9,}")
    alops = results["alops data make-dev (CLI)"]
    strongest = min((r for n, r in results.items() if n.startswith("pandas")), key=lambda r: r[0])
    fastest = next(n for n, r in results.items() if r is strongest)
    ratio = alops[0] / strongest[0]
    print(f"alops / fastest pandas ({fastest}): time {ratio:.2f}x, peak memory {alops[1] / strongest[1]:.2f}x")
    missed = []
    if ratio > RATIO_TARGET:
        missed.append(f"{title}: time {ratio:.2f}x the fastest pandas setup > {RATIO_TARGET}x")
    if alops[1] > MEMORY_TARGET_MIB:
        missed.append(f"{title}: peak memory {alops[1]:.0f} MiB > {MEMORY_TARGET_MIB} MiB")
    if alops[2]["deviation_pp"] > DEVIATION_TARGET_PP:
        missed.append(f"{title}: deviation {alops[2]['deviation_pp']:.3f} pp > {DEVIATION_TARGET_PP} pp")
    return missed


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        manifest, row_file = os.path.join(folder, "manifest.csv"), os.path.join(folder, "rows.csv")
        subprocess.run([sys.executable, "-c", GENERATE, str(ROWS), manifest, row_file], check=True)
        print(f"{ROWS:,} rows: manifest {os.path.getsize(manifest) / 2**20:.0f} MiB, "
              f"row file {os.path.getsize(row_file) / 2**20:.0f} MiB; dev fraction {FRACTION}")
        manifest_root = project(folder, manifest, "data:\n  manifest: manifest.csv\n")
        rows_root = project(folder, row_file, "data:\n  rows: rows.csv\n  label: label\n")
        out = os.path.join(folder, "pandas-dev.csv")
        missed = compare("manifest (id, label, split)", manifest_root,
                         os.path.join(manifest_root, "data", "full", "manifest.csv"), out)
        missed += compare("row file (label only)", rows_root, os.path.join(rows_root, "data", "full", "rows.csv"), out)
    print(json.dumps({"missed": len(missed)}))
    return report(missed)


if __name__ == "__main__":
    sys.exit(main())
