"""Seeded mutations of the code a wrong answer would hurt most (the release gate, the shard merge, the query
strategies, the label import's validation, the secret scrubber, the atomic writers), each run against the fast
tests that should catch it. `make mutate` (not part of `make test`); prints each mutation's outcome and the score.
`python tests/mutate.py gate writer` runs the mutations whose names contain those words.

A mutation is one exact text replacement in one file; the file is restored after its run, even on Ctrl-C.
A survivor is a finding: a test that pins the behaviour is missing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KIT = Path(__file__).resolve().parents[1]
PACKAGE = "runner_tools/alops/"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    original: str
    mutated: str
    tests: tuple[str, ...]


GATE = ("tests/test_gate.py",)
SCORING = ("tests/test_al_scoring.py", "tests/test_al_strategies.py")
IMPORT = ("tests/test_labeling.py",)
SECRETS = ("tests/test_secrets.py", "tests/test_hostile.py")
WRITER = ("tests/test_atomic.py",)

MUTATIONS = [
    Mutation("gate: minimum gain inclusive", "release.py", "if gain < gate.min_delta:", "if gain <= gate.min_delta:", GATE),
    Mutation("gate: minimum relative gain inclusive", "release.py", "if relative < gate.min_relative:",
             "if relative <= gate.min_relative:", GATE),
    Mutation("gate: direction inverted", "release.py",
             'gain = candidate - champion if gate.direction == "max" else champion - candidate',
             'gain = champion - candidate if gate.direction == "max" else candidate - champion', GATE),
    Mutation("gate: a NaN candidate passes", "release.py", "if candidate is None or math.isnan(candidate):",
             "if candidate is None:", GATE),
    Mutation("gate: a missing champion passes", "release.py", "if champion is None or math.isnan(champion):",
             "if False:", GATE),
    Mutation("top-k: ties broken by the highest row", "al/topk.py", "order = np.lexsort((rows, -scores))[:k]",
             "order = np.lexsort((-rows, -scores))[:k]", SCORING),
    Mutation("running top-k: a tie with the worst kept score dropped", "al/topk.py",
             "candidates = np.flatnonzero(scores >= self.scores[-1])",
             "candidates = np.flatnonzero(scores > self.scores[-1])", SCORING),
    Mutation("merge: shards missing or twice accepted", "al/scoring.py",
             'if not count or shards != sorted(f"{i}/{count}" for i in range(count)):', "if not count:", SCORING),
    Mutation("merge: shards of different pools accepted", "al/scoring.py",
             'keys = ("strategy", "k", "seed", "pool_rows", "pool_digest", "model_digest", "commit", "data_version")',
             'keys = ("strategy", "k", "seed", "pool_rows", "model_digest", "commit", "data_version")', SCORING),
    Mutation("margin: the largest margin first", "al/kernels.py", "out[i] = second - first", "out[i] = first - second",
             SCORING),
    Mutation("import: labels outside the classes accepted", "labeling.py",
             "if vote.label is not None and vote.label not in classes:", "if False:", IMPORT),
    Mutation("import: a tie between annotators accepted", "labeling.py",
             "if (rest and rest[0][1] == count) or count / len(labels) < min_agreement:",
             "if count / len(labels) < min_agreement:", IMPORT),
    Mutation("import: samples outside the batch accepted", "labeling.py", "if vote.sample_id not in expected:",
             "if False:", IMPORT),
    Mutation("scrubber: the shorter secret first", "secrets.py", "key=len, reverse=True", "key=len", SECRETS),
    Mutation("scrubber: URL credentials kept", "secrets.py", 'return _USERINFO.sub(lambda m: f"{m[\'scheme\']}{MASK}@", uri)',
             "return uri", SECRETS),
    Mutation("writer: copied in place, not renamed", "files.py", "os.replace(temporary, target)",
             "open(target, 'wb').write(open(temporary, 'rb').read())", WRITER),
    Mutation("writer: the temporary file left behind on failure", "files.py",
             "        if os.path.exists(temporary):\n            os.remove(temporary)",
             "        pass", WRITER),
]


def run(mutation: Mutation) -> tuple[str, float]:
    path = KIT / PACKAGE / mutation.file
    source = path.read_text()
    if source.count(mutation.original) != 1:
        return "stale (the original text is not in the file once: update the mutation)", 0.0
    mutated = source.replace(mutation.original, mutation.mutated)
    start = time.perf_counter()
    try:
        path.write_text(mutated)
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider",
                                 *mutation.tests], cwd=KIT, capture_output=True, text=True,
                                timeout=900)
    except subprocess.TimeoutExpired:
        return "killed (timeout)", time.perf_counter() - start
    finally:
        path.write_text(source)
    outcome = "killed" if result.returncode == 1 else "SURVIVED" if result.returncode == 0 else \
        f"error (pytest exit {result.returncode})"
    return outcome, time.perf_counter() - start


def main(words: list[str]) -> int:
    """Every mutation, or those whose name contains one of `words`."""
    chosen = [m for m in MUTATIONS if not words or any(word in m.name for word in words)]
    killed = 0
    print(f"{'mutation':58} {'outcome':10} {'s':>6}")
    for mutation in chosen:
        outcome, seconds = run(mutation)
        killed += outcome.startswith("killed")
        print(f"{mutation.name:58} {outcome:10} {seconds:6.1f}", flush=True)
    print(f"mutation score: {killed}/{len(chosen)} killed")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
