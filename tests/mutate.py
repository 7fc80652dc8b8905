"""Seeded mutations of the code a wrong answer would hurt most (the release gate, the shard merge, the query
strategies, the label import's validation, the secret scrubber, the atomic writers, the deploy order and smoke
tolerance, rescoring's pairing, the intake's new samples, KServe event pairing), each run against the fast
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
DEPLOY = ("tests/test_capture.py",)
RESCORE = ("tests/test_rescore.py",)
INTAKE = ("tests/test_intake.py",)
EVENTS = ("tests/test_events.py",)

MUTATIONS = [
    Mutation("gate: minimum gain inclusive", "release/gate.py", "if gain < gate.min_delta:", "if gain <= gate.min_delta:", GATE),
    Mutation("gate: minimum relative gain inclusive", "release/gate.py", "if relative < gate.min_relative:",
             "if relative <= gate.min_relative:", GATE),
    Mutation("gate: direction inverted", "release/gate.py",
             'gain = candidate - champion if gate.direction == "max" else champion - candidate',
             'gain = champion - candidate if gate.direction == "max" else candidate - champion', GATE),
    Mutation("gate: a NaN candidate passes", "release/gate.py", "if candidate is None or math.isnan(candidate):",
             "if candidate is None:", GATE),
    Mutation("gate: a missing champion passes", "release/gate.py", "if champion is None or math.isnan(champion):",
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
    Mutation("import: labels outside the classes accepted", "labels/handoff.py",
             "if vote.label is not None and vote.label not in classes:", "if False:", IMPORT),
    Mutation("import: a tie between annotators accepted", "labels/handoff.py",
             "if (rest and rest[0][1] == count) or count / len(labels) < min_agreement:",
             "if count / len(labels) < min_agreement:", IMPORT),
    Mutation("import: samples outside the batch accepted", "labels/handoff.py", "if vote.sample_id not in expected:",
             "if False:", IMPORT),
    Mutation("scrubber: the shorter secret first", "core/secrets.py", "key=len, reverse=True", "key=len", SECRETS),
    Mutation("scrubber: URL credentials kept", "core/secrets.py", 'return _USERINFO.sub(lambda m: f"{m[\'scheme\']}{MASK}@", uri)',
             "return uri", SECRETS),
    Mutation("writer: copied in place, not renamed", "core/files.py", "os.replace(temporary, target)",
             "open(target, 'wb').write(open(temporary, 'rb').read())", WRITER),
    Mutation("writer: the temporary file left behind on failure", "core/files.py",
             "        if os.path.exists(temporary):\n            os.remove(temporary)",
             "        pass", WRITER),
    Mutation("deploy: the champion moved before the smoke test", "release/deploy.py",
             "        accuracy = rollout(place, release, smoke, expected, tolerance)\n"
             "        if current and current != number:",
             "        client.set_registered_model_alias(name, CHAMPION, number)\n"
             "        accuracy = rollout(place, release, smoke, expected, tolerance)\n"
             "        if current and current != number:", DEPLOY),
    Mutation("smoke: the tolerance edge fails", "release/deploy.py", "accuracy < expected - tolerance",
             "accuracy <= expected - tolerance", DEPLOY),
    Mutation("rescore: the target's answers misaligned", "release/rescore.py",
             "right_before = np.asarray([str(v) for v in answers_before]) == expected",
             "right_before = np.asarray([str(v) for v in answers_before])[::-1] == expected", RESCORE),
    Mutation("intake: an id served twice is two new samples", "data/intake.py",
             "                    known_ids.add(str(row.get(\"id\")))\n", "", INTAKE),
    Mutation("events: two halves of one kind paired", "serve/events.py", "if other is None or other[0] == kind:",
             "if other is None:", EVENTS),
]


TIMEOUT_S = 900


def _pytest(tests: tuple[str, ...]) -> int | None:
    """The fast tests' exit status; None when they ran past TIMEOUT_S."""
    try:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider",
                               *tests], cwd=KIT, capture_output=True, text=True, timeout=TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        return None


def run(mutation: Mutation) -> tuple[str, float]:
    """killed, SURVIVED, timeout (neither: a hang is not a caught mutation), stale or error; and its seconds."""
    path = KIT / PACKAGE / mutation.file
    source = path.read_text()
    if source.count(mutation.original) != 1:
        return "stale (the original text is not in the file once: update the mutation)", 0.0
    start = time.perf_counter()
    try:
        path.write_text(source.replace(mutation.original, mutation.mutated))
        status = _pytest(mutation.tests)
    finally:
        path.write_text(source)
    outcome = ("timeout" if status is None else "killed" if status == 1 else "SURVIVED" if status == 0 else
               f"error (pytest exit {status})")
    return outcome, time.perf_counter() - start


def main(words: list[str]) -> int:
    """Every mutation, or those whose name contains one of `words`; first the unmutated tests, which must pass
    (a test that fails already would count every mutation as killed)."""
    chosen = [m for m in MUTATIONS if not words or any(word in m.name for word in words)]
    for suite in dict.fromkeys(mutation.tests for mutation in chosen):
        baseline = _pytest(suite)
        if baseline != 0:
            print(f"the unmutated tests do not pass ({'timeout' if baseline is None else f'pytest exit {baseline}'}): "
                  f"{' '.join(suite)}; no score")
            return 1
    outcomes: dict[str, int] = {}
    print(f"{'mutation':58} {'outcome':10} {'s':>6}")
    for mutation in chosen:
        outcome, seconds = run(mutation)
        outcomes[outcome.split(" ")[0]] = outcomes.get(outcome.split(" ")[0], 0) + 1
        print(f"{mutation.name:58} {outcome:10} {seconds:6.1f}", flush=True)
    killed = outcomes.get("killed", 0)
    others = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()) if name != "killed")
    print(f"mutation score: {killed}/{len(chosen)} killed" + (f" ({others})" if others else ""))
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
