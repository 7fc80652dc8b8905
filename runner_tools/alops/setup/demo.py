"""`alops demo`: the whole flow on the digits example in a temporary folder, with an oracle for the labelers.

Scaffold -> digits data and dev dataset -> feature branch (dev data) -> experiment branch (full data, tracked),
merged -> a second experiment with a report against main -> three active-learning rounds on `al/round-1`
(query, hand-off, the oracle's labels imported and committed, retrain) beside the same rounds with the random
strategy on `al/random` -> learning curve -> a release with its gate. Every step is the `alops` command a
team would run; no network.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from alops.core.errors import AlopsError

ROUNDS = 3
PER_ROUND = 60


@dataclass
class Demo:
    folder: str
    echo: Callable[[str], object] = print
    steps: list[tuple[str, float]] = field(default_factory=list)
    total_steps: int = 0

    @property
    def project(self) -> str:
        return os.path.join(self.folder, "digits_al")

    def env(self) -> dict[str, str]:
        bin_dir = os.path.dirname(sys.executable)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CI_", "GITLAB_", "GITHUB_", "MLFLOW_", "ALOPS_")) and k not in ("CI",)}
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env.update(GIT_AUTHOR_NAME="alops demo", GIT_AUTHOR_EMAIL="demo@localhost", GIT_COMMITTER_NAME="alops demo",
                   GIT_COMMITTER_EMAIL="demo@localhost")
        return env

    def run(self, *command: str, cwd: str | None = None) -> str:
        """Run one command in the project; its output, or an error with the output's tail."""
        if command[0] == "alops":
            command = (sys.executable, "-m", "alops", *command[1:])
        result = subprocess.run(command, cwd=cwd or self.project, env=self.env(), capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise AlopsError(f"demo step `{' '.join(command[-4:])}` failed:\n{tail}")
        return result.stdout

    def step(self, title: str, *commands: tuple[str, ...]) -> str:
        number = len(self.steps) + 1
        self.echo(f"[{number:2d}/{self.total_steps}] {title} ...")
        start = time.perf_counter()
        output = "".join(self.run(*command) for command in commands)
        seconds = time.perf_counter() - start
        self.steps.append((title, seconds))
        self.echo(f"        done in {seconds:.1f} s")
        return output

    def metric(self, name: str = "val_accuracy") -> float:
        with open(os.path.join(self.project, "metrics.json"), encoding="utf-8") as handle:
            return float(json.load(handle)[name])

    @staticmethod
    def commit(message: str) -> tuple[tuple[str, ...], ...]:
        """Record the run's results (dvc.lock, metrics, plots) so the next step starts from a clean checkout."""
        return ("git", "add", "-A"), ("git", "commit", "-q", "--allow-empty", "-m", message)


def _oracle_answers(project: str, oracle: dict[str, str], out: str) -> None:
    """Stand in for the labelers: the true label of every sample in the exported batch, as a CSV export."""
    with open(os.path.join(project, "labeling", "batch.json"), encoding="utf-8") as handle:
        batch = json.load(handle)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "label", "annotator"])
        writer.writerows((sample, oracle[sample], "oracle") for sample in batch["sample_ids"])


def _al_rounds(demo: Demo, branch: str, strategy: str, oracle: dict[str, str]) -> list[tuple[int, float]]:
    """Rounds of query -> hand-off -> oracle -> import on `branch`; (labeled, val_accuracy) after each training."""
    demo.run("git", "switch", "-q", "-c", branch, "main")
    curve = []
    for number in range(1, ROUNDS + 1):
        answers = os.path.join(demo.folder, f"answers-{branch.replace('/', '-')}-{number}.csv")
        demo.step(f"{branch} round {number}: train, select {PER_ROUND} ({strategy}), label, import",
                  ("alops", "run", "--allow-cpu"), *demo.commit(f"{branch}: round {number} training"),
                  ("alops", "query", "select", "pool_probs.npy", "--ids", "pool_ids.txt", "-k", str(PER_ROUND),
                   "--strategy", strategy),
                  ("alops", "labels", "export", "selection.json"))
        curve.append((int(demo.metric("labeled")), demo.metric()))
        _oracle_answers(demo.project, oracle, answers)
        demo.run("alops", "labels", "import", answers, "--commit")
    demo.step(f"{branch}: train on the last round's labels", ("alops", "run", "--allow-cpu"),
              *demo.commit(f"{branch}: trained on round {ROUNDS}"), ("git", "push", "-q", "origin", branch))
    curve.append((int(demo.metric("labeled")), demo.metric()))
    return curve


def run_demo(folder: str | None = None, echo=print) -> dict:
    """Run the demo; a summary (timings, accuracies, paths)."""
    from alops.core.extras import require
    from alops.setup.scaffold import new_project

    for module, extra in (("torch", "torch"), ("sklearn", "sim"), ("PIL", "torch")):
        require(module, extra, "the demo (a PyTorch model on scikit-learn's digits)")
    start = time.perf_counter()
    demo = Demo(folder or tempfile.mkdtemp(prefix="alops-demo-"), echo)
    demo.total_steps = 7 + 2 * (ROUNDS + 1)
    os.makedirs(demo.folder, exist_ok=True)
    echo(f"alops demo in {demo.folder}")
    origin, oracle_path = os.path.join(demo.folder, "origin.git"), os.path.join(demo.folder, "oracle.csv")
    demo.run("git", "init", "-q", "--bare", origin, cwd=demo.folder)

    demo.echo(f"[ 1/{demo.total_steps}] scaffold the project (alops new --example digits) ...")
    begin = time.perf_counter()
    new_project(demo.project, "digits-al", forge="both", remote=os.path.join(demo.folder, "dvc-storage"),
                example="digits")
    demo.steps.append(("scaffold", time.perf_counter() - begin))
    demo.step("digits as images + manifest (60% of training unlabeled), dev dataset, push",
              ("python", "scripts/prepare_digits.py", "data/full", "--unlabeled", "0.6", "--oracle", oracle_path),
              ("dvc", "add", "-q", "data/full"), ("alops", "data", "make-dev", "--fraction", "0.25"),
              ("git", "add", "-A"), ("git", "commit", "-q", "-m", "digits project"),
              ("git", "remote", "add", "origin", origin), ("git", "push", "-q", "origin", "main"),
              ("alops", "data", "push", "--dataset", "all"))
    with open(oracle_path, newline="", encoding="utf-8") as handle:
        oracle = {row["sample_id"]: row["label"] for row in csv.DictReader(handle)}

    demo.run("git", "switch", "-q", "-c", "feature/first-model")
    demo.step("feature/first-model: pipeline on the dev dataset (CPU)", ("alops", "run"),
              ("python", "-m", "pytest", "-q", "tests"))
    feature = demo.metric()
    demo.run("git", "switch", "-q", "-c", "experiment/baseline", "main")
    demo.step("experiment/baseline: full data, tracked, merged into main", ("alops", "run", "--allow-cpu"),
              *demo.commit("baseline on full data"), ("git", "switch", "-q", "main"),
              ("git", "merge", "-q", "--ff-only", "experiment/baseline"), ("git", "push", "-q", "origin", "main"))
    baseline = demo.metric()
    demo.run("git", "switch", "-q", "-c", "experiment/more-epochs")
    demo.step("experiment/more-epochs: full data, report against main",
              ("alops", "run", "--allow-cpu", "--set", "train.epochs=25"), *demo.commit("25 epochs"),
              ("alops", "report", "--target", "main", "--out", os.path.join(demo.folder, "experiment-report.md")))
    experiment = demo.metric()

    curves = {"margin": _al_rounds(demo, "al/round-1", "margin", oracle)}
    curves["random"] = _al_rounds(demo, "al/random", "random", oracle)
    baseline_csv = os.path.join(demo.folder, "random-baseline.csv")
    with open(baseline_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["strategy", "seed", "round", "labels", "accuracy"])
        writer.writerows(("random", 0, i, labels, accuracy) for i, (labels, accuracy) in enumerate(curves["random"]))
    demo.run("git", "switch", "-q", "al/round-1")
    report_dir = os.path.join(demo.folder, "al-report")
    demo.step("al/round-1: report with the learning curve against the random strategy",
              ("alops", "report", "--target", "main", "--simulation", baseline_csv, "--out",
               os.path.join(report_dir, "report.md")))

    demo.run("git", "switch", "-q", "-c", "release/1.0")
    release = demo.step("release/1.0: gate against the champion, register, move the alias",
                        ("alops", "run", "--allow-cpu"),
                        ("alops", "release", "--record", os.path.join(demo.folder, "release.json")))
    summary = {
        "folder": demo.folder, "project": demo.project, "seconds": time.perf_counter() - start,
        "feature_val_accuracy": feature, "baseline_val_accuracy": baseline, "experiment_val_accuracy": experiment,
        "learning_curves": curves, "learning_curve_png": os.path.join(report_dir, "learning_curve.png"),
        "experiment_report": os.path.join(demo.folder, "experiment-report.md"),
        "tracking": os.path.join(demo.project, "mlflow.db"), "release_record": os.path.join(demo.folder, "release.json"),
        "gate": next((line for line in release.splitlines() if line.startswith("gate:")), ""),
        "steps": demo.steps,
    }
    _print_summary(summary, echo)
    return summary


def _print_summary(summary: dict, echo) -> None:
    echo("")
    echo("what happened")
    echo(f"  feature branch (dev data):          val_accuracy {summary['feature_val_accuracy']:.3f}")
    echo(f"  experiment/baseline (full data):    val_accuracy {summary['baseline_val_accuracy']:.3f}")
    echo(f"  experiment/more-epochs (full data): val_accuracy {summary['experiment_val_accuracy']:.3f}")
    for strategy, curve in summary["learning_curves"].items():
        points = ", ".join(f"{labels} labels: {accuracy:.3f}" for labels, accuracy in curve)
        echo(f"  active learning, {strategy:6}: {points}")
    echo(f"  release: {summary['gate']}")
    echo("where things are")
    echo(f"  project:        {summary['project']}")
    echo(f"  learning curve: {summary['learning_curve_png']}")
    echo(f"  reports:        {summary['experiment_report']}, {os.path.dirname(summary['learning_curve_png'])}/report.md")
    echo(f"  tracking data:  {summary['tracking']} (mlflow ui --backend-store-uri sqlite:///{summary['tracking']})")
    echo(f"  release record: {summary['release_record']}")
    echo(f"demo finished in {summary['seconds']:.0f} s")
