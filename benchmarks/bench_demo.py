"""`alops demo` end to end: scaffold, data, feature / experiment runs, a report, 2 x 3 active-learning rounds
and a release, on this machine.

Target: under 5 minutes (300 s). Baseline in the same run: one `alops run` of the experiment pipeline on the
same data, the unit the demo is made of.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_run import BIN, ENV  # noqa: E402

TARGET_S = 300


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = subprocess.run([str(BIN / "alops"), "demo", "--keep", f"{folder}/demo"], env=ENV, capture_output=True,
                                text=True)
        total = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:])
            return 1
        steps = re.findall(r"\] (.*) \.\.\.\n +done in ([\d.]+) s", result.stdout)
        one_run = next(float(s) for title, s in steps if title.startswith("experiment/baseline"))
    print(f"{'alops demo':44} {'wall s':>7}")
    for title, seconds in steps:
        print(f"  {title[:42]:42} {float(seconds):7.1f}")
    print(f"{'total':44} {total:7.1f}")
    print(f"total / one experiment run: {total / one_run:.1f}x; target {TARGET_S} s")
    if total >= TARGET_S:
        print(f"MISSED: the demo took {total:.0f} s, not under {TARGET_S} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
