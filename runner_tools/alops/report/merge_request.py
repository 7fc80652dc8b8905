"""The merge-request report: metrics with deltas against the target branch, changed params, data version,
active-learning progress with a learning curve, links to the runs.

The current numbers come from the workspace (the metrics files `alops run` just wrote). The baseline is
the latest tracked run of the target branch; without one, the metrics files and params.yaml as committed
on the target branch (what `dvc metrics diff` compares).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field

from alops.core.config import PrimaryMetric
from alops.core.errors import AlopsError, ConfigError
from alops.core.files import save_png, write_json
from alops.core.project import (
    TAG_COMMIT,
    TAG_CPU_FALLBACK,
    TAG_DATA_VERSION,
    TAG_DATASET,
    TAG_DEVICE,
    TAG_DIRTY,
    TAG_LABELED,
    device_of,
)
from alops.data.manifest import labeled_count
from alops.forge.client import REPORT_MARKER
from alops.release.registry import CHAMPION
from alops.release.rescore import SMOKE_FILE, judges, rescore

PATCH_FILE = "params-pick.patch"  # the pick among parallel candidates as a params change (alops.report.candidates)


@dataclass
class Side:
    """One side of the comparison: where it comes from and what it measured."""

    source: str  # a description: "tracked run ...", "committed on main", "workspace"
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    data_version: str | None = None
    labeled: int | None = None
    url: str | None = None
    dataset: str | None = None  # dev or full: only like is compared with like
    commit: str | None = None
    run_id: str | None = None  # the tracked run, when the side is one
    seeds: list[dict[str, float]] = field(default_factory=list)  # per-seed metrics (metrics holds their mean)
    seed_run_ids: list[str] = field(default_factory=list)  # a tracked side's seed runs, for its curves' band
    device: str | None = None  # what trained it: cuda, cpu, or a CPU fallback of a GPU profile
    dirty: list[str] = field(default_factory=list)  # tracked files that differed from its commit when it ran


@dataclass
class Report:
    branch: str
    target: str
    kind: str
    current: Side
    baseline: Side | None
    no_baseline: str = ""  # why no baseline qualifies
    primary: PrimaryMetric | None = None  # the first row, with a verdict
    curve: list[tuple[int, float]] = field(default_factory=list)  # (labels, metric) over the branch's runs
    curve_metric: str | None = None
    simulation: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # strategy: (labels, mean, sd)
    simulation_seeds: int = 0
    fidelity: dict[str, float] = field(default_factory=dict)  # the dev dataset's fidelity report, not model metrics
    strategy: str | None = None  # the query strategy of the branch's label imports (al/ branches)
    plots: list[str] = field(default_factory=list)  # PNG file names of the pipeline's plots, beside the report
    target_params: dict[str, str] | None = None  # without a baseline: the params the target committed
    candidates: list[dict] = field(default_factory=list)  # parallel candidates, when select-best picked this one
    pick_patch: str = ""  # the pick's params.yaml change (alops.report.candidates)
    rescored: dict | None = None  # both models on this branch's smoke set (alops.release.rescore): current, before, low, high, samples, verdict


def _committed_side(project, target: str) -> Side | None:
    """What the target committed: its metrics (through DVC: cached files too) and the params its dvc.lock
    records (else params.yaml); None when it has neither."""
    import yaml

    from alops.core.git import first_commit, show
    from alops.core.params import flatten
    from alops.runs.metrics import revision_metrics
    from alops.runs.pipeline import locked_params

    commit = first_commit(project.root, (f"origin/{target}", target))  # origin's branch first, else the local one
    if commit is None:
        return None
    metrics = revision_metrics(project, commit)
    params_text = show(project.root, (commit,), "params.yaml")
    if metrics is None and params_text is None:
        return None
    try:
        params = flatten(yaml.safe_load(params_text) or {}) if params_text else {}
    except yaml.YAMLError:
        params = {}
    params.update(flatten(locked_params(show(project.root, (commit,), "dvc.lock"))))  # what the committed run used
    dataset = params.get("dataset")
    return Side(f"committed on {code(target)}", metrics or {}, {k: str(v) for k, v in params.items()},
                dataset=str(dataset) if dataset in ("dev", "full") else None, commit=commit)


def _run_side(run, uri: str, project: str, description: str) -> Side:
    """A tracked run as a side; with its seeds' runs (alops.runs.seeds) when it has them, their mean as its metrics."""
    from alops.runs.seeds import mean_metrics, seed_runs
    from alops.runs.tracking import run_url

    labeled = run.data.tags.get(TAG_LABELED)
    runs = seed_runs(uri, project, run)
    runs = runs if len(runs) > 1 else []
    per_seed = [dict(other.data.metrics) for other in runs]
    if per_seed:
        description += f", mean of {len(per_seed)} seeds"
    return Side(description, {**run.data.metrics, **mean_metrics(per_seed)}, dict(run.data.params),
                run.data.tags.get(TAG_DATA_VERSION), int(labeled) if labeled and labeled.isdigit() else None,
                run_url(uri, run), run.data.tags.get(TAG_DATASET), run.data.tags.get(TAG_COMMIT), run.info.run_id,
                per_seed, [other.info.run_id for other in runs],
                device_of(run.data.tags.get(TAG_DEVICE), run.data.tags.get(TAG_CPU_FALLBACK) == "true"),
                [path for path in run.data.tags.get(TAG_DIRTY, "false").split(",") if path and path != "false"])


def _tracked_sides(project, uri: str, target: str, dataset: str, current: Side, reasons: list[str]):
    """The target's latest tracked run on `dataset` (or None, with the reason) and, on al/ branches, the
    branch's runs for the learning curve."""
    from alops.runs import tracking

    context, branch_runs, baseline = project.context, [], None
    found = tracking.find_runs(uri, project.name, branch=context.branch, commit=context.commit,
                               limit=1) if context.commit else []
    if found:
        current.url = tracking.run_url(uri, found[0])
    target_runs = tracking.find_runs(uri, project.name, branch=target, limit=1, tags={TAG_DATASET: dataset})
    champion = tracking.aliased_run(uri, project.name, CHAMPION) if not target_runs else None
    if target_runs:
        baseline = _run_side(target_runs[0], uri, project.name, f"latest tracked run of {code(target)} on the {dataset} dataset")
    elif champion and champion[0].data.tags.get(TAG_DATASET) == dataset:  # main trains on dev data: production
        run, version = champion                                           # is the full-data baseline
        baseline = _run_side(run, uri, project.name, f"the {CHAMPION} (model {code(project.name)} version {version}, its "
                                       f"tracked run on the {dataset} dataset; {code(target)} has none)")
    else:
        other = tracking.find_runs(uri, project.name, branch=target, limit=100)
        kinds = sorted({run.data.tags.get(TAG_DATASET, "unknown") for run in other})
        reasons.append(f"{len(other)} tracked run(s) of {code(target)}, on the {' and '.join(kinds)} dataset"
                       f" (none on the {dataset} dataset)" if other else f"no tracked run of {code(target)}")
        if dataset == "full":
            reasons.append(f"no {CHAMPION} model {code(project.name)} trained on the full dataset")
    if context.kind == "active-learning" and context.branch:
        branch_runs = tracking.find_runs(uri, project.name, branch=context.branch, limit=200)
    return baseline, branch_runs


def _branch_strategy(root: str) -> str | None:
    """The query strategy of the branch's latest label import (its commit's trailer)."""
    from alops.core.git import git
    from alops.labels.handoff import STRATEGY_TRAILER

    found = git(root, "log", "-1", f"--grep=^{STRATEGY_TRAILER}: ", "--format=%(trailers:key="
                f"{STRATEGY_TRAILER},valueonly,separator=)", check=False)
    return found.stdout.strip() or None if found.returncode == 0 else None


def find_baseline(project, target: str, current: Side):
    """(the baseline for `current`, the branch's tracked runs, why there is no baseline, the target's committed
    side): the target's tracked run on the same dataset (or the champion's), else what the target committed."""
    from alops.core.git import fetch_branch
    from alops.runs import tracking

    # nothing tracked here: compare with what the target branch committed
    uri = project.tracking_uri if project.tracking_store_exists else None
    baseline, branch_runs, dataset = None, [], current.dataset
    reasons: list[str] = []
    try:
        if uri:
            baseline, branch_runs = _tracked_sides(project, uri, target, dataset or "", current, reasons)
    except tracking.TrackingUnavailable as exc:  # an outage must not fail the job that trained and buffered
        reasons.append(f"the tracking server did not answer ({exc})")
    committed = None
    if baseline is None:
        fetch_branch(project.root, target)  # best effort: a CI clone lacks the target branch; a local one has it
        committed = _committed_side(project, target)
        if committed is None or not committed.metrics:
            reasons.append(f"no metrics committed on {code(target)} (is it fetched? `git fetch origin {target}`)")
        elif committed.dataset not in (None, dataset):
            reasons.append(f"the metrics committed on {code(target)} come from the {committed.dataset} dataset")
        else:
            baseline = committed
    return baseline, branch_runs, reasons, committed


def collect(project, target: str, curve_metric: str | None = None, simulation_csv: str | None = None) -> Report:
    """Everything the report shows, for the project's workspace against `target`."""
    from alops.data import storage as data
    from alops.runs import seeds
    from alops.runs.metrics import is_fidelity_file, workspace_metrics_by_file
    from alops.runs.pipeline import params_used, pipeline_files, read_run_file

    root, context = project.root, project.context
    if target.startswith("-"):
        raise ConfigError(f"--target {target!r} is not a branch name")
    files = pipeline_files(project)
    metrics: dict[str, float] = {}
    fidelity: dict[str, float] = {}
    for path, found in (workspace_metrics_by_file(project) if files["metrics"] else {}).items():
        (fidelity if is_fidelity_file(path) else metrics).update(found)
    if not metrics:
        raise AlopsError("no metrics in the workspace: run `alops run` first (dvc.yaml declares the metrics files)")
    try:
        version = data.data_version(root)["version"]
    except AlopsError:
        version = None
    manifest = project.manifest(context.profile.dataset)
    labeled = labeled_count(manifest) if os.path.isfile(manifest) else None
    dataset = context.profile.dataset
    used = params_used(root)  # as the run had them
    per_seed = seeds.workspace_seeds(root, used, context.commit)
    current = Side("workspace", {**metrics, **seeds.mean_metrics(per_seed)}, used, version, labeled, dataset=dataset,
                   commit=context.commit, seeds=per_seed)
    ran = read_run_file(root, context.commit)  # what `alops run` recorded of the run that left these metrics
    if ran:
        current.device = device_of(ran.get("device"), bool(ran.get("cpu_fallback")))
        current.dirty = list(ran.get("dirty") or [])
        current.run_id, current.url = ran.get("run_id"), ran.get("run_url") or ran.get("run_id")
    baseline, branch_runs, reasons, committed = find_baseline(project, target, current)
    primary = project.config.metric or _implied_primary(metrics)
    if primary is not None and primary.name not in metrics:
        raise ConfigError(f"alops.yaml metric.name {primary.name!r} is not among the metrics the pipeline wrote "
                          f"({', '.join(sorted(metrics))})")
    report = Report(context.branch or context.tag or "", target, context.kind, current, baseline,
                    no_baseline="; ".join(reasons) if baseline is None else "", primary=primary, fidelity=fidelity,
                    target_params=committed.params if baseline is None and committed is not None else None)
    if _rescoring_judges(primary, current, baseline):
        report.rescored = _rescored(project, baseline.run_id, primary.direction)
    if context.kind == "active-learning":
        report.strategy = _branch_strategy(root) or next(
            (value for name, value in sorted(current.params.items()) if name.rpartition(".")[2] == "strategy"), None)
        report.curve_metric = curve_metric or (primary.name if primary else _first_metric(metrics))
        points = {}
        for run in branch_runs:
            count = run.data.tags.get(TAG_LABELED, "")
            if count.isdigit() and report.curve_metric in run.data.metrics:
                points[int(count)] = run.data.metrics[report.curve_metric]
        if baseline and baseline.labeled is not None and report.curve_metric in baseline.metrics:
            points.setdefault(baseline.labeled, baseline.metrics[report.curve_metric])
        if labeled is not None:
            points[labeled] = metrics[report.curve_metric]
        report.curve = sorted(points.items())
        if simulation_csv:
            report.simulation, report.simulation_seeds = simulation_curves(simulation_csv, report.strategy)
    return report


def _rescoring_judges(primary, current: Side, baseline: Side | None) -> bool:
    """Whether the verdict rests on both models scored on this branch's smoke set: one run a side (no seeds), a
    tracked baseline and an accuracy (alops.release.rescore)."""
    return (primary is not None and judges(primary.name) and baseline is not None and bool(baseline.run_id)
            and not current.seeds and not baseline.seeds)


def _rescored(project, run_id: str, direction: str) -> dict | None:
    found, _ = rescore(project, run_id, direction)
    if found is None:
        return None
    change = found.change
    return {"current": found.current, "before": found.before, "low": change.low, "high": change.high,
            "samples": change.samples[0], "verdict": change.verdict}


HIGHER_IS_BETTER = ("val_accuracy", "accuracy", "test_accuracy", "f1", "val_f1")


def _implied_primary(metrics: dict[str, float]):
    """Without a metric in alops.yaml, a verdict on the first of the metrics whose direction is known."""
    name = next((name for name in HIGHER_IS_BETTER if name in metrics), None)
    return PrimaryMetric(name, implied=True) if name else None


def _first_metric(metrics: dict[str, float]) -> str:
    for preferred in ("accuracy", "f1", "val_accuracy"):
        if preferred in metrics:
            return preferred
    return sorted(metrics)[0]


def simulation_curves(path: str, strategy: str | None) -> tuple[dict[str, list[tuple[int, float, float]]], int]:
    """From `alops simulate`'s simulation.csv: per labels count, the mean accuracy and its standard deviation over
    the seeds, of random and of the branch's strategy (when simulated); and the number of seeds."""
    wanted = {"random", strategy} - {None}
    values: dict[str, dict[int, list[float]]] = {}
    seeds = set()
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("strategy") in wanted:
                    values.setdefault(row["strategy"], {}).setdefault(int(row["labels"]), []).append(float(row["accuracy"]))
                    seeds.add(row.get("seed"))
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: not a simulation.csv from `alops simulate` ({exc})") from None
    if "random" not in values:
        raise ConfigError(f"{path}: has no rows of the random strategy; run `alops simulate` with random among the strategies")
    curves = {name: [(n, sum(v) / len(v), math.sqrt(sum((x - sum(v) / len(v)) ** 2 for x in v) / len(v)))
                     for n, v in sorted(by_labels.items())] for name, by_labels in values.items()}
    return curves, len(seeds)


def learning_curve_png(report: Report, path: str) -> str:
    """`learning_curve_figure` as a PNG."""
    return save_png(learning_curve_figure(report), path)


def learning_curve_figure(report: Report):
    """The branch's learning curve (metric per labels count over its tracked runs), as a PNG; with a simulation,
    a panel of its own for the strategies `alops simulate` ran with one model and protocol (never on the
    branch's axes: another model, another range of labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if report.simulation else 1
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    branch = axes[0][0]
    branch.plot(*zip(*report.curve), marker="o", label=f"{report.branch} ({report.strategy or 'strategy unknown'})")
    branch.set_xlabel("labeled samples")
    branch.set_ylabel(report.curve_metric or "metric")
    branch.set_title(f"{report.branch}: {report.curve_metric or 'metric'} per labelling round")
    branch.legend(fontsize="small")
    if report.simulation:
        simulated = axes[0][1]
        for number, (name, rows) in enumerate(sorted(report.simulation.items(), key=lambda item: item[0] == "random")):
            labels, means, spread = zip(*rows)
            color = "grey" if name == "random" else f"C{number}"
            simulated.plot(labels, means, "--" if name == "random" else "-", color=color, label=name)
            if report.simulation_seeds > 1:
                simulated.fill_between(labels, [m - s for m, s in zip(means, spread)],
                                       [m + s for m, s in zip(means, spread)], color=color, alpha=0.2)
        simulated.set_xlabel("labeled samples")
        simulated.set_ylabel("accuracy")
        simulated.set_title(f"alops simulate: mean of {report.simulation_seeds} seed(s)"
                            + (", ± 1 sd shaded" if report.simulation_seeds > 1 else ""))
        simulated.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


def _delta(current: float, before: float | None) -> str:
    if before is None or math.isnan(before) or math.isnan(current):
        return "–"
    change = 0.0 if math.isclose(current, before, rel_tol=1e-9) else current - before  # means: no -1.1e-16
    relative = f" ({change / abs(before):+.1%})" if before else ""
    return f"{change:+.4g}{relative}"


def code(text) -> str:
    """Any value as an inert inline code span: no mention, link, image, HTML or table break survives."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _value(text) -> str:
    return "–" if text == "–" else code(text)


def _verdict(report: Report, primary) -> str:
    """One line on the primary metric against the baseline and the minimum gain, and whether the change is more
    than noise (alops.runs.noise): over seeds when a side ran several, else sampling noise when both sides say how many
    samples measured it."""
    from alops.runs.noise import change, seed_change

    name, now, base = code(primary.name), report.current, report.baseline
    current = now.metrics[primary.name]
    before = base.metrics.get(primary.name) if base else None
    if before is None or math.isnan(before) or math.isnan(current):
        return f"**{name}: {_number(current)}** (no baseline to compare with){_implied(primary)}."
    assert base is not None  # before came from it
    gain = current - before if primary.direction == "max" else before - current
    verdict = "better" if gain > 0 and gain >= primary.min_gain else "not better by the minimum gain" if gain > 0 else \
        "no gain" if gain == 0 else "worse"
    line = (f"**{name}: {_number(current)}** vs {_number(before)} ({_delta(current, before)}): {verdict}"
            + (f" (minimum gain {primary.min_gain:g})" if primary.min_gain else "") + _implied(primary) + ".")
    values = [[run[primary.name] for run in side.seeds if primary.name in run] or [value]
              for side, value in ((now, current), (base, before))]
    again = report.rescored
    if max(map(len, values)) > 1:
        noise, kind = seed_change(values[0], values[1], primary.direction), "Seed noise"
    elif again:
        return line + (f" Both models on this branch's test set ({code(SMOKE_FILE)}, {again['samples']} samples): the target's "
                       f"{_number(again['before'])}, this branch's {_number(again['current'])}; the change's 95% "
                       f"interval is {again['low']:+.4f} to {again['high']:+.4f} (paired bootstrap), so it is "
                       f"**{again['verdict']}**.")
    else:
        noise, kind = change(current, before, now.metrics, base.metrics, primary.name, primary.direction), "Sampling noise"
    if noise is not None:
        line += f" {kind}: the change's 95% interval is {noise.describe()}, so it is **{noise.verdict}**."
    return line


def _implied(primary) -> str:
    return " (alops.yaml names no metric: judged by this one, higher is better)" if primary.implied else ""


def _spread(side: Side | None, name: str) -> str:
    """A side's value of a metric; over seeds, the mean ± half its 95% interval."""
    from alops.runs.noise import spread

    value = side.metrics.get(name) if side else None
    half = spread([run[name] for run in side.seeds if name in run]) if side and value is not None else None
    return _number(value) + (f" ± {half:.2g}" if half else "")


def _run_link(side: Side | None) -> str:
    if side is None or not side.url:
        return "–"
    return f"[run]({side.url})" if side.url.startswith("http") else code(side.url)


def _dirty(side: Side | None) -> str:
    if side is None or not side.dirty:
        return "none"
    return f"**{len(side.dirty)} file(s)**: " + ", ".join(code(path) for path in side.dirty[:5])


def _sides(report: Report) -> list[str]:
    """Both sides' dataset, data version, commit and run, in one table under the header."""
    now, base = report.current, report.baseline
    version_now, version_base = now.data_version or "untracked", (base.data_version if base else None) or "unknown"
    rows = [
        ("dataset", now.dataset or "–", (base.dataset if base else None) or "not recorded"),
        ("data version", code(version_now),
         code(version_base) + (" (unchanged)" if version_now == version_base else "")),
        ("commit", code(now.commit[:12]) if now.commit else "–", code(base.commit[:12]) if base and base.commit else "–"),
        ("run", _run_link(now), _run_link(base)),
    ]
    if now.device or (base and base.device):
        rows.append(("device", code(now.device) if now.device else "–", code(base.device) if base and base.device else "–"))
    if now.dirty or (base and base.dirty):
        rows.append(("uncommitted changes", _dirty(now), _dirty(base)))
    if now.seeds or (base and base.seeds):
        rows.append(("seeds", str(len(now.seeds) or 1), str(len(base.seeds) or 1) if base else "–"))
    return ["| | this branch | target |", "|---|---|---|"] + [f"| {name} | {this} | {that} |" for name, this, that in rows]


LEARNING_CURVE = "learning_curve.png"


def _active_learning(report: Report, image: str | None) -> list[str]:
    lines = ["", "### Active learning", ""]
    if report.strategy:
        lines.append(f"Strategy: {code(report.strategy)}.")
    if report.current.labeled is not None and report.baseline and report.baseline.labeled is not None:
        lines.append(f"Labels added: {report.current.labeled - report.baseline.labeled:+d} "
                     f"({report.baseline.labeled} → {report.current.labeled} labeled samples).")
    elif report.current.labeled is not None:
        lines.append(f"Labeled samples: {report.current.labeled}.")
    if len(report.curve) > 1:
        lines += ["", f"| round | labeled | labels added | {code(report.curve_metric)} |", "|---:|---:|---:|---:|"]
        lines += [f"| {i} | {labeled} | {labeled - report.curve[i - 1][0] if i else '–'} | {_number(value)} |"
                  for i, (labeled, value) in enumerate(report.curve)]
    if image:
        lines += ["", image]
    if report.simulation:
        lines += ["", f"Simulated ({', '.join(code(name) for name in sorted(report.simulation))}): `alops simulate`, "
                      f"its own model and protocol, mean of {report.simulation_seeds} seed(s)"
                      + (" with ± one standard deviation shaded" if report.simulation_seeds > 1 else "")
                      + ", drawn in a panel of its own."]
    else:
        lines += ["", "No random baseline: pass `--simulation simulation/simulation.csv` from `alops simulate`."]
    return lines


def _candidates(report: Report) -> list[str]:
    """The parallel candidates' table (the pick in bold) and the pick's params change."""

    names = sorted({name for row in report.candidates for name in row["params"]})
    metric = code(report.candidates[0]["metric"])
    lines = ["", f"### Candidates ({len(report.candidates)}, picked on the mean over seeds)", "",
             "| candidate | " + " | ".join(code(n) for n in names) + f" | {metric} | seeds |",
             "|---|" + "---|" * len(names) + "---:|---:|"]
    for row in report.candidates:
        value = _number(row["mean"]) + (f" ± {row['spread']:.2g}" if row.get("spread") is not None else "")
        mark = "**picked**" if row["picked"] else ""
        lines.append(f"| {code(row['report'])} {mark} | " + " | ".join(_value(row["params"].get(n, "–")) for n in names)
                     + f" | {value} | {row['seeds']} |")
    if report.pick_patch:
        fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", report.pick_patch)), default=0) + 1)
        lines += ["", f"The pick as a params change (the job's `{PATCH_FILE}`; `git apply {PATCH_FILE}`):", "",
                  f"{fence}diff", report.pick_patch.rstrip("\n"), fence]
    else:
        lines += ["", "params.yaml holds the pick already."]
    return lines


PER_CLASS = "per_class."  # the scaffold's evaluate stage: each class's precision, recall and samples


def _metric_rows(report: Report, names: list[str]) -> list[str]:
    base = report.baseline
    lines = ["", "| metric | this branch | target | change |", "|---|---:|---:|---:|"]
    for name in names:
        before = base.metrics.get(name) if base else None
        lines.append(f"| {code(name)} | {_spread(report.current, name)} | {_spread(base, name)} | "
                     f"{_delta(report.current.metrics[name], before)} |")
    return lines


def render(report: Report, images: dict[str, str] | None = None) -> str:
    """The markdown, starting with the hidden marker that finds the comment again: the primary metric's verdict,
    the model metrics, both sides' provenance, params that changed, then collapsed detail. `images` maps each PNG
    (learning curve, plots) to its markdown; by default an image beside the report."""
    images = images if images is not None else {name: f"![{name}]({name})" for name in [LEARNING_CURVE, *report.plots]}
    base, primary = report.baseline, report.primary
    lines = [REPORT_MARKER, f"## alops report: {code(report.branch)} → {code(report.target)} ({report.kind})", ""]
    lines.append(f"Compared with: {base.source}." if base else
                 f"No baseline on the {report.current.dataset} dataset: {report.no_baseline}.")
    if primary is not None:
        lines += ["", _verdict(report, primary)]
    ordered = sorted(report.current.metrics, key=lambda name: (primary is None or name != primary.name, name))
    per_class = [name for name in ordered if name.startswith(PER_CLASS)]
    lines += _metric_rows(report, [name for name in ordered if name not in per_class])
    lines += ["", *_sides(report)]
    before = base.params if base else report.target_params
    if before is not None:
        changed = sorted(k for k in set(report.current.params) | set(before)
                         if report.current.params.get(k) != before.get(k))
        lines += ["", "### Params that changed" if base else
                  f"### Params that changed (against the params committed on {code(report.target)}: no run to compare)"]
        if changed:
            lines += ["", "| param | this branch | target |", "|---|---|---|"]
            lines += [f"| {code(k)} | {_value(report.current.params.get(k, '–'))} | {_value(before.get(k, '–'))} |"
                      for k in changed]
        else:
            lines += ["", "None."]
    if report.candidates:
        lines += _candidates(report)
    if report.kind == "active-learning":
        lines += _active_learning(report, images.get(LEARNING_CURVE) if report.curve else None)
    shown = list(dict.fromkeys(images[name] for name in report.plots if images.get(name)))
    if shown:
        lines += ["", f"<details><summary>Plots ({len(report.plots)})</summary>", "", *shown, "", "</details>"]
    if per_class:
        lines += ["", f"<details><summary>Per-class metrics ({len(per_class)})</summary>", *_metric_rows(report, per_class),
                  "", "</details>"]
    if report.fidelity:
        lines += ["", f"<details><summary>Dev dataset fidelity ({len(report.fidelity)} statistics)</summary>", "",
                  "| statistic | value |", "|---|---:|"]
        lines += [f"| {code(name)} | {_number(value)} |" for name, value in sorted(report.fidelity.items())]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _target_plot_files(project, baseline: Side | None, folder: str) -> int:
    """The plot files dvc.yaml declares, as the baseline has them, into `folder`: its tracked run's artifacts,
    else its commit's files (plots are committed with cache: false). Best effort: the count found."""
    from alops.core.git import git
    from alops.runs.pipeline import pipeline_files

    if baseline is None:
        return 0
    paths = pipeline_files(project)["plots"]
    if baseline.run_id and project.tracking_store_exists:
        from alops.runs.tracking import download_files

        return download_files(project.tracking_uri, baseline.run_id, paths, folder)
    if not baseline.commit:
        return 0
    found = 0
    for path in paths:
        listed = git(project.root, "ls-tree", "-r", "--name-only", baseline.commit, "--", path, check=False)
        for relative in listed.stdout.splitlines() if listed.returncode == 0 else []:
            content = git(project.root, "show", f"{baseline.commit}:{relative}", check=False)
            if content.returncode == 0:
                os.makedirs(os.path.dirname(os.path.join(folder, relative)) or folder, exist_ok=True)
                with open(os.path.join(folder, relative), "w", encoding="utf-8") as handle:
                    handle.write(content.stdout)
                found += 1
    return found


def _target_plot_roots(project, baseline: Side | None, folder: str) -> tuple[str | None, list[str]]:
    """Where the target's plot files are, downloaded under `folder`: (its run's or commit's root, or None; each of
    its seed runs' roots when it has several: the first is the run's own)."""
    if baseline is None or len(baseline.seed_run_ids) < 2 or not project.tracking_store_exists:
        return (folder if _target_plot_files(project, baseline, folder) else None), []
    from alops.runs.pipeline import pipeline_files
    from alops.runs.tracking import download_files

    paths = pipeline_files(project)["plots"]
    roots = {os.path.join(folder, str(number)): run_id for number, run_id in enumerate(baseline.seed_run_ids)}
    found = [root for root, run_id in roots.items() if download_files(project.tracking_uri, run_id, paths, root)]
    own = next(iter(roots))
    return (own if own in found else None), found


def build(project, target: str, curve_metric: str | None, simulation: str | None, out: str) -> tuple[Report, list[str]]:
    """The report of the project's workspace against `target`, and its PNGs beside `out`: the learning curve
    (al/ branches) and the pipeline's plots."""
    from alops.report import plots
    from alops.runs import seeds

    built = collect(project, target, curve_metric, simulation)
    folder = os.path.dirname(os.path.abspath(out))
    with tempfile.TemporaryDirectory(prefix="alops-target-plots-") as staging:
        baseline_root, baseline_seed_roots = _target_plot_roots(project, built.baseline, staging)
        seed_roots = seeds.plot_roots(project.root) if built.current.seeds else []
        pngs = plots.render(project.pipeline, project.root, folder, baseline_root, (built.branch, built.target),
                            seed_roots, baseline_seed_roots)
    built.plots = [os.path.basename(png) for png in pngs]
    if built.kind == "active-learning" and built.curve:
        pngs.insert(0, learning_curve_png(built, os.path.join(folder, LEARNING_CURVE)))
    return built, pngs


def save(report: Report, pngs: list[str], path: str) -> None:
    """Keep `report` as data (and the names of its PNGs, kept beside it) for `load` in another job."""
    write_json(path, {"alops_report": 3, "report": asdict(report), "images": [os.path.basename(p) for p in pngs]},
               indent=1)


def load(path: str) -> tuple[Report, list[str]]:
    """A report kept by `save`, and those of its PNGs that are beside the file."""
    problem = f"{path}: not a report saved by `alops report --json`"
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        fields = dict(document["report"])
        fields["current"] = Side(**fields["current"])
        fields["baseline"] = Side(**fields["baseline"]) if fields.get("baseline") else None
        fields["primary"] = PrimaryMetric(**fields["primary"]) if fields.get("primary") else None
        fields["curve"] = [(int(x), float(y)) for x, y in fields.get("curve") or []]
        fields["simulation"] = {str(name): [(int(n), float(mean), float(sd)) for n, mean, sd in rows]
                                for name, rows in (fields.get("simulation") or {}).items()}
        report = Report(**fields)
        names = [str(name) for name in document.get("images") or []]
    except OSError as exc:
        raise ConfigError(f"{problem} ({exc.strerror})") from None
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ConfigError(problem) from None
    folder = os.path.dirname(os.path.abspath(path))
    return report, [os.path.join(folder, os.path.basename(n)) for n in names if os.path.isfile(os.path.join(folder, os.path.basename(n)))]


def _uploaded(target_forge, pngs: list[str], job_url: str | None) -> dict[str, str]:
    """Markdown per PNG: uploaded and inline (GitLab), else one link to the job's artifacts (GitHub)."""
    images = {}
    for png in pngs:
        markdown = target_forge.upload_image(png)
        if markdown is None and job_url:  # one link for all: they are on one page
            markdown = f"[The report's images (the job's artifacts)]({job_url})"
        if markdown:
            images[os.path.basename(png)] = markdown
    return images


def post(project, built: Report, pngs: list[str], out: str, if_open: bool, notice):
    """Create or update the one report comment on the branch's MR/PR; the forge's outcome, or None with a
    `notice` when nothing was posted (a fork MR; with `if_open`: no token, no open MR)."""
    from alops.forge import client as forge

    context = project.context
    merge_request = context.merge_request
    if merge_request is not None and merge_request.from_fork:
        notice("the merge request comes from a fork: the report is not posted (no secrets for fork pipelines); "
               f"it is in {out}")
        return None
    try:
        target_forge = forge.connect(context)
    except ConfigError as exc:
        if not if_open:
            raise
        notice(f"report not posted: {exc}")
        return None
    try:
        number = merge_request.number if merge_request and merge_request.number else None
        if number is None and context.branch:
            found = target_forge.find_merge_request(context.branch)
            number = None if found is None else str(getattr(found, "iid", None) or found.number)
        if number is None:
            message = (f"no open merge request for branch {context.branch!r}: open one (`alops promote`), or post "
                       "from a merge-request pipeline")
            if if_open:
                notice(f"report not posted: {message}")
                return None
            raise AlopsError(message)
        return number, target_forge.post_comment(number, render(built, _uploaded(target_forge, pngs, context.ci_job_url)))
    except forge.ForgeError as exc:
        if not (if_open and exc.status in (401, 403)):
            raise
        notice(f"report not posted: {exc} (the training itself succeeded; the report is in {out})")
        return None
