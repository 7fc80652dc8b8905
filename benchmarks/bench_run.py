"""`alops run` on the test project (tests/project: digits, a PyTorch MLP): feature branch on the dev dataset
against experiment branch on the full data, and the no-op re-run on unchanged code, params and data.

Three fresh projects, medians quoted. Target: the no-op re-run takes under 10 s and under 1/5 of the first
run, measured in the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from datasets import write_digits  # noqa: E402

BIN = Path(sys.executable).parent
REPEATS = int(os.environ.get("ALOPS_BENCH_REPEATS", 3))
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("CI_", "GITLAB_", "GITHUB_", "MLFLOW_"))},
       "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def run(cwd: Path, *cmd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - start


def build(project: Path, remote: Path) -> None:
    shutil.copytree(HERE.parent / "tests/project", project)
    run(project, "git", "init", "-q", "-b", "main")
    run(project, "git", "config", "user.email", "bench@example.com")
    run(project, "git", "config", "user.name", "bench")
    run(project, str(BIN / "dvc"), "init", "-q")
    run(project, str(BIN / "dvc"), "remote", "add", "-d", "store", str(remote))
    write_digits(project / "data/full")
    run(project, str(BIN / "dvc"), "add", "-q", "data/full")
    run(project, str(BIN / "alops"), "data", "make-dev", "--fraction", "0.2")
    (project / ".gitignore").write_text("__pycache__/\nmlflow.db\nmlartifacts/\n")
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "project")
    run(project, str(BIN / "alops"), "data", "push", "--dataset", "all")


def one_round(folder: Path) -> tuple[float, float, float, float]:
    """A fresh project: feature first run and no-op re-run, then experiment first run and no-op re-run."""
    project = folder / "project"
    build(project, folder / "remote")
    run(project, "git", "switch", "-q", "-c", "feature/bench")
    feature = run(project, str(BIN / "alops"), "run")
    feature_noop = run(project, str(BIN / "alops"), "run")
    run(project, "git", "switch", "-q", "-c", "experiment/bench")
    experiment = run(project, str(BIN / "alops"), "run", "--allow-cpu")
    experiment_noop = run(project, str(BIN / "alops"), "run", "--allow-cpu")
    return feature, feature_noop, experiment, experiment_noop


def main() -> int:
    rounds = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as folder:
            rounds.append(one_round(Path(folder)))
    feature, feature_noop, experiment, experiment_noop = (statistics.median(column) for column in zip(*rounds))
    print(f"({REPEATS} fresh projects, medians)")
    print(f"{'alops run':42} {'wall s':>7}")
    for name, seconds in (("feature branch, dev dataset (first run)", feature), ("feature branch, no-op re-run", feature_noop),
                          ("experiment branch, full data (first run)", experiment), ("experiment branch, no-op re-run", experiment_noop)):
        print(f"{name:42} {seconds:7.2f}")
    print(f"feature / experiment: {feature / experiment:.2f}x; no-op / first run: feature {feature_noop / feature:.2f}x, "
          f"experiment {experiment_noop / experiment:.2f}x")
    missed = [n for n, noop, first in (("feature", feature_noop, feature), ("experiment", experiment_noop, experiment))
              if noop >= 10 or noop >= first / 5]
    for name in missed:
        print(f"MISSED: the {name} no-op re-run is not under 10 s and 1/5 of the first run")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
