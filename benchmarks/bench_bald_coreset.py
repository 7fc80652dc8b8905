"""BALD and core-set at the sizes the strategies are built for, each against a NumPy reference in the same run.

1. BALD top-1000 over 100 MC-dropout passes x 1,000,000 samples x 10 classes, float32, streamed from a 3.7 GiB
   `.npy` on disk: `alops query select mc.npy --strategy bald` (the CLI, as users call it) against the formula
   in chunked NumPy over a memory map (float64, as alops computes it, and float32, the fastest). Targets: peak
   memory under 1 GiB; time within 1.2x of the faster reference.
2. Core-set (k-center greedy) picks k=1,000 from 1,000,000 x 64 float32 embeddings with 10,000 labeled:
   `alops query select --strategy core-set` against a NumPy k-center greedy written from the definition
   (distances to the labeled set by matrix products, then one distance update per pick). Target: peak memory
   under 2 GiB; the picks equal the reference's.
Each contender runs in its own process (peak memory: its own high-water mark), the same repetitions
(ALOPS_BENCH_REPEATS, default 1 here: each run reads gigabytes), the median quoted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from child import PEAK, report, run_child

PASSES, SAMPLES, CLASSES = 100, int(os.environ.get("ALOPS_BENCH_BALD_SAMPLES", 1_000_000)), 10
EMBEDDED, DIMS, LABELED = int(os.environ.get("ALOPS_BENCH_CORESET_ROWS", 1_000_000)), 64, 10_000
K = 1000
REPEATS = int(os.environ.get("ALOPS_BENCH_REPEATS", 1))

GENERATE = """
import sys, numpy as np
passes, samples, classes, dims, embedded, labeled, folder = (*map(int, sys.argv[1:7]), sys.argv[7])
rng = np.random.default_rng(0)
header = {"descr": "<f4", "fortran_order": False, "shape": (passes, samples, classes)}
with open(folder + "/mc.npy", "wb") as handle:
    np.lib.format.write_array_header_1_0(handle, header)
    for _ in range(passes):
        for start in range(0, samples, 1_000_000):
            block = rng.random((min(1_000_000, samples - start), classes), dtype=np.float32) ** 4
            block /= block.sum(axis=1, keepdims=True)
            handle.write(block.tobytes())
np.save(folder + "/emb.npy", rng.normal(size=(embedded, dims)).astype(np.float32))
np.save(folder + "/labeled.npy", rng.normal(size=(labeled, dims)).astype(np.float32))
"""

CLI = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[2:], cwd=sys.argv[1], check=True, stdout=subprocess.DEVNULL)
seconds = time.perf_counter() - start
picked = json.load(open(sys.argv[1] + "/sel.json"))["indices"]
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "picks": sorted(picked)}))
"""

BALD_NUMPY = """
import json, sys, time, numpy as np
start = time.perf_counter()
mc = np.load(sys.argv[1], mmap_mode="r")
dtype = np.float64 if sys.argv[3] == "float64" else np.float32
k, chunk = int(sys.argv[2]), 8192
scores = np.empty(mc.shape[1], dtype=np.float64)
for lo in range(0, mc.shape[1], chunk):
    block = np.clip(np.asarray(mc[:, lo:lo + chunk], dtype=dtype), 1e-12, 1.0)
    mean = block.mean(axis=0)
    scores[lo:lo + chunk] = -(mean * np.log(mean)).sum(axis=1) + (block * np.log(block)).sum(axis=2).mean(axis=0)
top = np.lexsort((np.arange(scores.size), -scores))[:k]
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mib": PEAK, "picks": sorted(top.tolist())}))
""".replace("PEAK", PEAK)

CORESET_NUMPY = """
import json, sys, time, numpy as np
start = time.perf_counter()
points = np.load(sys.argv[1]).astype(np.float64)
labeled = np.load(sys.argv[2]).astype(np.float64)
k = int(sys.argv[3])
norms = (points ** 2).sum(axis=1)
nearest = np.full(len(points), np.inf)
for lo in range(0, len(labeled), 100):  # 100 labeled points at a time: an (N, 100) float64 temporary
    block = labeled[lo:lo + 100]
    squared = norms[:, None] + (block ** 2).sum(axis=1)[None, :] - 2.0 * (points @ block.T)
    nearest = np.minimum(nearest, np.maximum(squared.min(axis=1), 0.0))
picks = []
for _ in range(k):
    pick = int(np.argmax(nearest))
    picks.append(pick)
    nearest = np.minimum(nearest, ((points - points[pick]) ** 2).sum(axis=1))
    nearest[pick] = -1.0
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mib": PEAK, "picks": sorted(picks)}))
""".replace("PEAK", PEAK)


def median_run(measure) -> tuple[float, float, dict]:
    runs = [measure() for _ in range(REPEATS)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def child(code: str, *args: str):
    def measure():
        _, output = run_child(code, *args)
        return output["seconds"], output["peak_mib"], output
    return measure


def main() -> int:
    alops = os.path.join(os.path.dirname(sys.executable), "alops")
    missed = []
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-c", GENERATE, *map(str, (PASSES, SAMPLES, CLASSES, DIMS, EMBEDDED, LABELED)),
                        folder], check=True)
        size = os.path.getsize(os.path.join(folder, "mc.npy")) / 2**30
        print(f"-- BALD: {PASSES} x {SAMPLES:,} x {CLASSES} float32 ({size:.1f} GiB on disk), top-{K}, "
              f"{REPEATS} run(s) each, median")
        bald = {
            "alops query select (CLI, streamed)": median_run(child(
                CLI, folder, alops, "query", "select", "mc.npy", "--strategy", "bald", "-k", str(K), "--out", "sel.json")),
            "NumPy chunks over a memmap, float64": median_run(child(BALD_NUMPY, os.path.join(folder, "mc.npy"), str(K), "float64")),
            "NumPy chunks over a memmap, float32": median_run(child(BALD_NUMPY, os.path.join(folder, "mc.npy"), str(K), "float32")),
        }
        print(f"{'contender':40} {'median s':>8} {'peak MiB':>9}")
        for name, (seconds, mib, _) in bald.items():
            print(f"{name:40} {seconds:8.2f} {mib:9.0f}")
        ours = bald["alops query select (CLI, streamed)"]
        reference = min((r for n, r in bald.items() if n.startswith("NumPy")), key=lambda r: r[0])
        exact = bald["NumPy chunks over a memmap, float64"]
        print(f"alops / faster NumPy reference: time {ours[0] / reference[0]:.2f}x; picks equal to the float64 "
              f"formula's: {ours[2]['picks'] == exact[2]['picks']}")
        if ours[1] > 1024:
            missed.append(f"BALD peak memory {ours[1]:.0f} MiB > 1024 MiB")
        if ours[0] > 1.2 * reference[0]:
            missed.append(f"BALD time {ours[0] / reference[0]:.2f}x the NumPy reference > 1.2x")
        os.remove(os.path.join(folder, "mc.npy"))

        print(f"-- core-set: {EMBEDDED:,} x {DIMS} float32 embeddings, {LABELED:,} labeled, k={K}")
        coreset = {
            "alops query select (CLI)": median_run(child(
                CLI, folder, alops, "query", "select", "emb.npy", "--strategy", "core-set", "--embeddings", "emb.npy",
                "--labeled-embeddings", "labeled.npy", "-k", str(K), "--out", "sel.json")),
            "NumPy k-center greedy (definition)": median_run(child(
                CORESET_NUMPY, os.path.join(folder, "emb.npy"), os.path.join(folder, "labeled.npy"), str(K))),
        }
        print(f"{'contender':40} {'median s':>8} {'peak MiB':>9}")
        for name, (seconds, mib, _) in coreset.items():
            print(f"{name:40} {seconds:8.2f} {mib:9.0f}")
        ours, reference = coreset["alops query select (CLI)"], coreset["NumPy k-center greedy (definition)"]
        same = ours[2]["picks"] == reference[2]["picks"]
        print(f"alops / NumPy: time {ours[0] / reference[0]:.2f}x, peak memory {ours[1] / reference[1]:.2f}x; "
              f"same picks: {same}")
        if ours[1] > 2048:
            missed.append(f"core-set peak memory {ours[1]:.0f} MiB > 2048 MiB")
        if not same:
            missed.append("core-set picks differ from the k-center reference")
    print(json.dumps({"missed": len(missed)}))
    return report(missed)


if __name__ == "__main__":
    sys.exit(main())
