"""`alops data pull` of the dev dataset against the full dataset of the same repository.

A real DVC repository with a local remote: 5,000 files of 16 KiB in the full dataset, a 5% dev dataset.
Each pull runs in a fresh clone, three of each (the median quoted); the dev pull must move at most the dev
files (counted in the clone's cache).
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPEATS = int(os.environ.get("ALOPS_BENCH_REPEATS", 3))
BIN = Path(sys.executable).parent
FILES, FILE_BYTES, DEV_FRACTION = 5000, 16 * 1024, 0.05


def run(cwd: Path, *cmd: str) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)


def build(origin: Path, remote: Path) -> None:
    run(origin.parent, "git", "init", "-q", "-b", "main", str(origin))
    run(origin, "git", "config", "user.email", "bench@example.com")
    run(origin, "git", "config", "user.name", "bench")
    run(origin, str(BIN / "dvc"), "init", "-q")
    run(origin, str(BIN / "dvc"), "remote", "add", "-d", "store", str(remote))
    rng = np.random.default_rng(0)
    full = origin / "data/full"
    (full / "images").mkdir(parents=True)
    with open(full / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "split", "path"])
        for i in range(FILES):
            (full / f"images/{i}.bin").write_bytes(rng.bytes(FILE_BYTES))
            writer.writerow([i, "" if rng.random() < 0.3 else int(rng.integers(10)), ["train", "val", "test"][i % 3], f"images/{i}.bin"])
    run(origin, str(BIN / "dvc"), "add", "-q", "data/full")
    run(origin, str(BIN / "alops"), "data", "make-dev", "--fraction", str(DEV_FRACTION))
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-q", "-m", "data")
    run(origin, str(BIN / "alops"), "data", "push", "--dataset", "all")


def pull(origin: Path, target: Path, branch: str) -> tuple[float, int, int]:
    """Seconds, files and bytes that landed in the clone's DVC cache."""
    run(origin.parent, "git", "clone", "-q", str(origin), str(target))
    run(target, "git", "switch", "-q", "-c", branch)
    start = time.perf_counter()
    run(target, str(BIN / "alops"), "data", "pull")
    elapsed = time.perf_counter() - start
    cached = [p for p in (target / ".dvc/cache").rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    return elapsed, len(cached), sum(p.stat().st_size for p in cached)


def median_of(pulls: list[tuple[float, int, int]]) -> tuple[float, int, int]:
    """The median time; files and bytes of the last pull (every clone moves the same)."""
    return statistics.median(p[0] for p in pulls), pulls[-1][1], pulls[-1][2]


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        build(base / "origin", base / "remote")
        with open(base / "origin/data/dev/manifest.csv") as handle:
            dev_files = sum(1 for _ in handle)  # the samples (lines minus the header) plus the manifest itself
        dev = median_of([pull(base / "origin", base / f"feature-clone-{i}", "feature/bench") for i in range(REPEATS)])
        full = median_of([pull(base / "origin", base / f"experiment-clone-{i}", "experiment/bench") for i in range(REPEATS)])
    print(f"{'pull':28} {'median s':>8} {'files':>7} {'MiB':>8}   ({REPEATS} fresh clones each)")
    for name, (seconds, files, size) in (("dev (feature branch)", dev), ("full (experiment branch)", full)):
        print(f"{name:28} {seconds:8.2f} {files:7} {size / 2**20:8.1f}")
    print(f"dev / full: time {dev[0] / full[0]:.2f}x, bytes {dev[2] / full[2]:.3f}x")
    if dev[1] > dev_files:
        print(f"MISSED: the dev pull moved {dev[1]} files; the dev dataset has {dev_files}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
