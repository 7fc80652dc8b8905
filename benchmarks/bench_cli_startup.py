"""CLI start-up: `alops --help` and `alops context` against `dvc --help` and `mlflow --help`.

Target: alops at most 0.10 s median and below `dvc --help`, measured in the same run.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TARGET_S = 0.10


def median_wall(cmd: list[str], cwd: str, env: dict, runs: int) -> float:
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "GITLAB_", "GITHUB_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what an installed package does: cached bytecode
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).parents[1] / "runner_tools")], check=True)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["git", "init", "-q", "-b", "feature/bench", folder], check=True)
        cases = {
            "alops --help": ([str(BIN / "alops"), "--help"], 31),
            "alops context": ([str(BIN / "alops"), "context"], 31),
            "alops context --format json": ([str(BIN / "alops"), "context", "--format", "json"], 31),
            "dvc --help": ([str(BIN / "dvc"), "--help"], 15),
            "mlflow --help": ([str(BIN / "mlflow"), "--help"], 3),
        }
        results = {name: median_wall(cmd, folder, env, runs) for name, (cmd, runs) in cases.items()}
    dvc = results["dvc --help"]
    print(f"{'command':32} {'median s':>9} {'vs dvc --help':>14}")
    for name, seconds in results.items():
        print(f"{name:32} {seconds:9.3f} {seconds / dvc:13.2f}x")
    missed = [n for n, s in results.items() if n.startswith("alops") and (s > TARGET_S or s >= dvc)]
    for name in missed:
        print(f"MISSED: {name} takes {results[name]:.3f} s (target <= {TARGET_S:.2f} s and below dvc --help)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
