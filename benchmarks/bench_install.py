"""A runner's install: the core wheel against the same wheel plus torch as pip resolves it by default.

Both go into fresh venvs with pip's cache warm (one unmeasured round first). The torch side is what a Linux
runner gets from `pip install alops torch` with no CPU index: the CUDA build. Targets: the core takes at most
35% of the time and 20% of the disk; no torch or nvidia-* distribution in the core install.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from child import report

KIT = Path(__file__).parents[1]


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def install(wheel: Path, extra: list[str], work: Path) -> tuple[float, int, list[str]]:
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    start = time.perf_counter()
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel), *extra], check=True)
    seconds = time.perf_counter() - start
    names = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                           check=True).stdout.lower().split()
    return seconds, folder_bytes(venv), names


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"),
                        str(KIT)], check=True, capture_output=True)
        (wheel,) = (work / "dist").glob("alops-*.whl")
        sides = {"core": [], "core + torch (pip's default build)": ["torch"]}
        for extra in sides.values():  # warm pip's cache for both
            install(wheel, extra, work)
        results = {name: install(wheel, extra, work) for name, extra in sides.items()}
    (core_s, core_b, core_names), (torch_s, torch_b, _) = results.values()
    for name, (seconds, size, names) in results.items():
        print(f"{name:40s} {seconds:7.1f} s {size / 2**20:9.0f} MiB {len(names):4d} distributions")
    print(f"core / with torch: time {core_s / torch_s:.2f}x, disk {core_b / torch_b:.2f}x")
    heavy = [n for n in core_names if n.startswith(("torch", "nvidia-"))]
    missed = []
    if core_s > 0.35 * torch_s:
        missed.append(f"core install time {core_s:.1f} s is above 35% of {torch_s:.1f} s")
    if core_b > 0.20 * torch_b:
        missed.append(f"core install size {core_b / 2**20:.0f} MiB is above 20% of {torch_b / 2**20:.0f} MiB")
    if heavy:
        missed.append(f"the core install has {', '.join(heavy)}")
    return report(missed)


if __name__ == "__main__":
    os.chdir(Path(__file__).parent)
    sys.exit(main())
