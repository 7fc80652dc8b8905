"""Shared by the benchmarks: run a contender in its own process and read its own peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time

# Appended to a child's code: prints its VmHWM (its own high-water mark; ru_maxrss would also count the
# parent's pages at fork) as "peak_mib" in the JSON object it prints last.
PEAK = 'int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024'


def run_child(code: str, *args: str) -> tuple[float, dict]:
    """Wall seconds and the JSON object the child printed."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, check=True)
    return time.perf_counter() - start, json.loads(result.stdout)


def report(missed: list[str]) -> int:
    """Print the missed targets; the exit status."""
    for line in missed:
        print("MISSED:", line)
    return 1 if missed else 0
