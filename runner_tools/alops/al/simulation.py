"""Oracle simulation of active learning: the labels are known, so strategies can be compared before a
labeler spends an hour (the reference loop's simulation mode).

Per seed: hold out a test split, start from a few random labels, then each round score a random batch of
unlabeled samples with the current model, let the strategy pick from it, reveal those labels, retrain.
The suite runs one plan over several data sets shipped inside installed packages and gives each strategy a
paired verdict against random (same seeds, same splits, same start).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass

import numpy as np

from alops.al.strategies import Pool, make_strategy
from alops.core.errors import ConfigError
from alops.core.extras import require
from alops.core.files import atomic_path, save_png

MODELS = ("logreg", "torch-mlp")


@dataclass(frozen=True)
class SimulationPlan:
    initial: int = 20
    rounds: int = 20
    per_round: int = 20
    scoring_pool: int = 300
    strategies: tuple[str, ...] = ("random", "least-confidence", "margin", "entropy")
    seeds: int = 5
    model: str = "logreg"
    test_share: float = 0.3


class TorchMLP:
    """A small PyTorch classifier with the fit / predict_proba interface the simulation uses."""

    def __init__(self, seed: int, epochs: int = 150, hidden: int = 64):
        self.seed, self.epochs, self.hidden = seed, epochs, hidden

    def fit(self, x, y):
        torch = require("torch", "torch", "the torch-mlp simulation")

        torch.manual_seed(self.seed)
        self.classes_ = np.unique(y)
        index = {c: i for i, c in enumerate(self.classes_)}
        target = torch.tensor([index[v] for v in y])
        self.net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], self.hidden), torch.nn.ReLU(),
                                       torch.nn.Dropout(0.2), torch.nn.Linear(self.hidden, len(self.classes_)))
        optimiser = torch.optim.Adam(self.net.parameters(), lr=0.01, weight_decay=1e-4)
        inputs = torch.tensor(x, dtype=torch.float32)
        self.net.train()
        for _ in range(self.epochs):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(self.net(inputs), target).backward()
            optimiser.step()
        return self

    def predict_proba(self, x):
        torch = require("torch", "torch", "the torch-mlp simulation")

        self.net.eval()
        with torch.no_grad():
            return torch.softmax(self.net(torch.tensor(x, dtype=torch.float32)), dim=1).numpy()


def _model(name: str, seed: int):
    if name == "logreg":
        LogisticRegression = require("sklearn.linear_model", "sim", "alops simulate").LogisticRegression

        return LogisticRegression(max_iter=2000)
    return TorchMLP(seed)


def _accuracy(model, x, y) -> float:
    probs = model.predict_proba(x)
    return float((model.classes_[probs.argmax(axis=1)] == y).mean())


def _full_probs(model, x, n_classes: int, classes) -> np.ndarray:
    """Probabilities over all classes, also when the labeled set has not seen every class yet."""
    probs = np.zeros((len(x), n_classes), np.float32)
    probs[:, classes] = model.predict_proba(x)
    return probs


def _initial_labels(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` random training samples holding at least two classes (a classifier cannot start from one)."""
    rng = np.random.default_rng(seed)
    while True:
        start = rng.choice(len(y), count, replace=False)
        if np.unique(y[start]).size > 1:
            return start


def check_plan(plan: SimulationPlan, samples: int) -> None:
    if plan.model not in MODELS:
        raise ConfigError(f"--model {plan.model!r}: expected one of {', '.join(MODELS)}")
    for name in plan.strategies:
        if name == "bald":
            raise ConfigError("bald needs MC-dropout passes; simulate it from Python with mc_dropout_probs")
        make_strategy(name)
    if min(plan.initial, plan.rounds, plan.per_round, plan.scoring_pool, plan.seeds) < 1:
        raise ConfigError("--initial, --rounds, --per-round, --scoring-pool and --seeds must be at least 1")
    if plan.initial < 2:
        raise ConfigError(f"--initial {plan.initial}: start from at least 2 labels (a classifier needs two classes)")
    if plan.per_round > plan.scoring_pool:
        raise ConfigError(f"--per-round {plan.per_round} is larger than --scoring-pool {plan.scoring_pool}")
    train = int(samples * (1 - plan.test_share))
    if plan.initial + plan.rounds * plan.per_round > train:
        raise ConfigError(f"{plan.initial} + {plan.rounds} x {plan.per_round} labels exceed the {train} training samples")


def simulate(x: np.ndarray, y: np.ndarray, plan: SimulationPlan, echo=print) -> dict:
    """Run every strategy over every seed; the rows (strategy, seed, round, labels, accuracy) and summaries."""
    train_test_split = require("sklearn.model_selection", "sim", "alops simulate").train_test_split

    check_plan(plan, len(y))
    classes = np.unique(y)
    rows, full_accuracy = [], []
    for seed in range(plan.seeds):
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=plan.test_share, random_state=seed, stratify=y)
        full_accuracy.append(_accuracy(_model(plan.model, seed).fit(x_train, y_train), x_test, y_test))
        start = _initial_labels(y_train, plan.initial, seed)
        for name in plan.strategies:
            strategy, rng = make_strategy(name), np.random.default_rng(seed)
            labeled = list(start)
            for round_number in range(plan.rounds + 1):
                model = _model(plan.model, seed).fit(x_train[labeled], y_train[labeled])
                rows.append({"strategy": name, "seed": seed, "round": round_number, "labels": len(labeled),
                             "accuracy": _accuracy(model, x_test, y_test)})
                if round_number == plan.rounds:
                    break
                unlabeled = np.setdiff1d(np.arange(len(y_train)), labeled)
                batch = rng.choice(unlabeled, min(plan.scoring_pool, unlabeled.size), replace=False)
                seen = np.searchsorted(classes, model.classes_)
                pool = Pool(probs=_full_probs(model, x_train[batch], len(classes), seen), embeddings=x_train[batch],
                            labeled_embeddings=x_train[labeled])
                labeled += batch[strategy.query(pool, plan.per_round, rng)].tolist()
        echo(f"seed {seed}: full-data accuracy {full_accuracy[-1]:.3f}")
    return {"rows": rows, "full_accuracy": float(np.mean(full_accuracy)), "summary": summarise(rows, float(np.mean(full_accuracy)))}


def summarise(rows: list[dict], full_accuracy: float) -> dict:
    """Per strategy: mean and spread of accuracy per labels count, and the labels needed for 95% of full data."""
    summary = {}
    for name in dict.fromkeys(r["strategy"] for r in rows):
        curve: dict = {}
        for row in rows:
            if row["strategy"] == name:
                curve.setdefault(row["labels"], []).append(row["accuracy"])
        labels = sorted(curve)
        mean = [float(np.mean(curve[n])) for n in labels]
        reached = next((n for n, m in zip(labels, mean) if m >= 0.95 * full_accuracy), None)
        summary[name] = {"labels": labels, "mean": mean, "std": [float(np.std(curve[n])) for n in labels],
                         "labels_to_95pct": reached}
    return summary


def write_outputs(result: dict, folder: str) -> tuple[str, str]:
    """`simulation.csv` and `learning_curve.png` in `folder`, each written to a temporary file then renamed."""
    os.makedirs(folder, exist_ok=True)
    csv_path, png_path = os.path.join(folder, "simulation.csv"), os.path.join(folder, "learning_curve.png")
    with atomic_path(csv_path) as staged, open(staged.path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["strategy", "seed", "round", "labels", "accuracy"])
        writer.writeheader()
        writer.writerows(result["rows"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, curve in result["summary"].items():
        mean, std = np.array(curve["mean"]), np.array(curve["std"])
        axes.plot(curve["labels"], mean, label=name, linestyle="--" if name == "random" else "-")
        axes.fill_between(curve["labels"], mean - std, mean + std, alpha=0.15)
    axes.axhline(result["full_accuracy"], color="grey", linewidth=0.8, label="full data")
    axes.set_xlabel("labels")
    axes.set_ylabel("test accuracy")
    axes.set_title("Active learning simulation (mean and spread over seeds)")
    axes.legend()
    save_png(figure, png_path)
    return csv_path, png_path


def digits_dataset() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (shipped with the package, no download): features and labels."""
    load_digits = require("sklearn.datasets", "sim", "alops simulate --digits").load_digits

    digits = load_digits()
    return digits.data, digits.target


def manifest_dataset(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The labeled rows of a manifest: its numeric feature columns (NaN as 0) and labels."""
    import pyarrow.compute as pc

    from alops.data.manifest import inspect_manifest, iter_batches

    info = inspect_manifest(path, required=("label",))
    if not info.numeric:
        raise ConfigError(f"{path}: no numeric feature columns to learn from")
    features, labels = [], []
    for batch in iter_batches(info):
        batch = batch.filter(pc.is_valid(batch.column("label")))
        features.append(np.column_stack([np.nan_to_num(batch.column(c).to_numpy(zero_copy_only=False)) for c in info.numeric]))
        labels.append(np.array(batch.column("label").to_pylist()))
    return np.concatenate(features), np.concatenate(labels)


def _standardised(x: np.ndarray) -> np.ndarray:
    """Features scaled to mean 0 and spread 1 (logistic regression converges on every suite data set)."""
    spread = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def _sklearn_dataset(loader: str):
    def load() -> tuple[np.ndarray, np.ndarray]:
        dataset = getattr(require("sklearn.datasets", "sim", "alops simulate --suite"), loader)()
        return _standardised(dataset.data), dataset.target
    return load


def _synthetic(noise: float, separation: float):
    def load() -> tuple[np.ndarray, np.ndarray]:
        make_classification = require("sklearn.datasets", "sim", "alops simulate --suite").make_classification
        return make_classification(n_samples=2000, n_features=20, n_informative=8, n_redundant=4, n_classes=5,
                                   n_clusters_per_class=2, class_sep=separation, flip_y=noise, random_state=7)
    return load


# data sets that ship inside installed packages (no download) or are generated
SUITE = {
    "digits": _sklearn_dataset("load_digits"),
    "breast-cancer": _sklearn_dataset("load_breast_cancer"),
    "wine": _sklearn_dataset("load_wine"),
    "synthetic-hard": _synthetic(noise=0.0, separation=0.6),
    "synthetic-noisy": _synthetic(noise=0.2, separation=1.0),
}


def suite_datasets(names: str | None) -> list[str]:
    chosen = [n.strip() for n in names.split(",") if n.strip()] if names else list(SUITE)
    unknown = [n for n in chosen if n not in SUITE]
    if unknown:
        raise ConfigError(f"unknown suite data set {unknown[0]!r} (expected: {', '.join(SUITE)})")
    return chosen


def _per_seed_curves(rows: list[dict], name: str) -> np.ndarray:
    """(seeds, rounds + 1) accuracies of one strategy."""
    seeds = sorted({r["seed"] for r in rows})
    rounds = sorted({r["round"] for r in rows})
    curves = np.zeros((len(seeds), len(rounds)))
    for r in rows:
        if r["strategy"] == name:
            curves[seeds.index(r["seed"]), rounds.index(r["round"])] = r["accuracy"]
    return curves


def verdicts(rows: list[dict], full_accuracy: float, target: float = 0.95) -> dict:
    """Per strategy, against random on the same seeds: area under the learning curve (mean accuracy over rounds)
    with its spread over seeds, the paired AULC gain, wins over seeds, labels to reach `target` of full-data
    accuracy, and the worst round: the mean gap to random there and random's spread over seeds at that round.
    `worse` when the paired gain is below zero by more than its spread over seeds, `better` when above, else `tie`;
    `below_spread` when at some round the mean is below random's by more than random's spread over seeds."""
    baseline = _per_seed_curves(rows, "random")
    summary = summarise(rows, full_accuracy)
    result = {}
    for name in dict.fromkeys(r["strategy"] for r in rows):
        curves = _per_seed_curves(rows, name)
        aulc = curves.mean(axis=1)
        gain = aulc - baseline.mean(axis=1)
        gap = curves.mean(axis=0) - baseline.mean(axis=0)
        spread = baseline.std(axis=0)
        worst = int(np.argmin(gap + spread))  # the round where the mean comes closest to (or furthest past) -spread
        reached = next((n for n, m in zip(summary[name]["labels"], summary[name]["mean"]) if m >= target * full_accuracy), None)
        verdict = "tie" if abs(gain.mean()) <= gain.std() else ("better" if gain.mean() > 0 else "worse")
        result[name] = {"aulc": float(aulc.mean()), "aulc_std": float(aulc.std()), "gain": float(gain.mean()),
                        "gain_std": float(gain.std()), "wins": int((gain > 0).sum()), "seeds": int(gain.size),
                        "labels_to_target": reached, "worst_round": worst, "worst_gap": float(gap[worst]),
                        "random_spread": float(spread[worst]), "below_spread": bool((gap < -spread).any()),
                        "verdict": "baseline" if name == "random" else verdict}
    return result


def run_suite(plan: SimulationPlan, datasets: list[str], echo=print) -> dict:
    """The plan over each data set; per data set its rows, full-data accuracy and verdicts."""
    if "random" not in plan.strategies:
        raise ConfigError("the suite compares every strategy with random: include random in --strategies")
    results = {}
    for name in datasets:
        x, y = SUITE[name]()
        echo(f"{name}: {len(y)} samples, {len(np.unique(y))} classes")
        run = simulate(x, y, plan, echo=lambda line: echo(f"  {line}"))
        results[name] = {"rows": run["rows"], "full_accuracy": run["full_accuracy"], "summary": run["summary"],
                         "verdicts": verdicts(run["rows"], run["full_accuracy"])}
    return {"plan": {k: getattr(plan, k) for k in ("initial", "rounds", "per_round", "scoring_pool", "seeds", "model")}
            | {"strategies": list(plan.strategies)}, "datasets": results}


def write_suite_outputs(result: dict, folder: str) -> tuple[str, str, str]:
    """`suite.csv` (every accuracy), `suite.json` (plan and verdicts, for CI) and `suite.png` (one learning curve
    per data set) in `folder`, each written to a temporary file then renamed."""
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"suite.{ext}") for ext in ("csv", "json", "png")]
    with atomic_path(paths[0]) as staged, open(staged.path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["dataset", "strategy", "seed", "round", "labels", "accuracy"])
        writer.writeheader()
        for name, run in result["datasets"].items():
            writer.writerows({"dataset": name, **row} for row in run["rows"])
    summary = {"plan": result["plan"], "datasets": {name: {"full_accuracy": run["full_accuracy"], "verdicts": run["verdicts"]}
                                                    for name, run in result["datasets"].items()}}
    with atomic_path(paths[1]) as staged, open(staged.path, "w", encoding="utf-8") as out:
        json.dump(summary, out, indent=2)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(result["datasets"])
    columns = min(3, count)
    figure, axes = plt.subplots((count + columns - 1) // columns, columns, figsize=(5 * columns, 3.6 * ((count + columns - 1) // columns)),
                                squeeze=False)
    for axis, (name, run) in zip(axes.flat, result["datasets"].items()):
        for strategy, curve in run["summary"].items():
            mean, std = np.array(curve["mean"]), np.array(curve["std"])
            axis.plot(curve["labels"], mean, label=strategy, linestyle="--" if strategy == "random" else "-")
            axis.fill_between(curve["labels"], mean - std, mean + std, alpha=0.12)
        axis.axhline(run["full_accuracy"], color="grey", linewidth=0.8)
        axis.set_title(name)
        axis.set_xlabel("labels")
        axis.set_ylabel("test accuracy")
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    save_png(figure, paths[2])
    return paths[0], paths[1], paths[2]
