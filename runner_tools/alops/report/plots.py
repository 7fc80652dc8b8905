"""The pipeline's plots as PNGs for the report: DVC plot definitions (dvc.yaml's top-level `plots:`, by name or
by file, as dvclive writes them) resolved to their data files and drawn with matplotlib.

Linear templates (linear, simple, scatter, smooth, the default) draw y over x (x: the definition's, else a row's
step or epoch), the target's curves dashed beside the branch's when the report has the target's files;
confusion templates draw one matrix of (actual, predicted) counts per data file. Data files are JSON (a list of rows, or one key holding it), CSV or TSV.
A definition whose data is missing or unreadable is skipped: plots never fail a report.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from alops.core.files import save_png

MAX_PLOTS = 6
CONFUSION = ("confusion", "confusion_normalized")


@dataclass
class PlotSpec:
    title: str
    template: str = "linear"
    x: str | None = None
    series: list[tuple[str, str | None]] = field(default_factory=list)  # (file, y field or None: every number)


def specs(document: dict) -> list[PlotSpec]:
    """The top-level plot definitions of a parsed dvc.yaml, else one per stage plot file."""
    found = []
    for item in document.get("plots") or []:
        for key, config in ({item: {}} if isinstance(item, str) else item).items() if isinstance(item, (str, dict)) else []:
            config = config if isinstance(config, dict) else {}
            template = str(config.get("template") or "linear")
            x = config.get("x") if isinstance(config.get("x"), str) else None
            y = config.get("y")
            if isinstance(y, dict):  # a named definition: {file: field or [fields]}
                series: list[tuple[str, str | None]] = [(str(path), str(name)) for path, names in y.items()
                          for name in (names if isinstance(names, list) else [names])]
            else:  # the key is a file (or folder) of data
                names = y if isinstance(y, list) else [y] if isinstance(y, str) else [None]
                series = [(str(key), None if name is None else str(name)) for name in names]
            found.append(PlotSpec(str(key), template, x, series))
    if not found:
        for stage in (document.get("stages") or {}).values():
            for item in stage.get("plots") or [] if isinstance(stage, dict) else []:
                path = next(iter(item)) if isinstance(item, dict) else str(item)
                found.append(PlotSpec(str(path), series=[(str(path), None)]))
    return found


def _rows(path: str) -> list[dict]:
    """The rows of a JSON, CSV or TSV plot file; [] when it cannot be read."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if path.endswith(".json"):
                data = json.load(handle)
                if isinstance(data, dict) and len(data) == 1:
                    data = next(iter(data.values()))
                return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []
            if path.endswith((".csv", ".tsv")):
                return list(csv.DictReader(handle, delimiter="\t" if path.endswith(".tsv") else ","))
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    return []


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is no point


def _files(root: str, path: str) -> list[str]:
    full = os.path.join(root, path)
    if os.path.isdir(full):
        return sorted(os.path.join(folder, name) for folder, _, names in os.walk(full) for name in names)
    return [full] if os.path.isfile(full) else []


X_FIELDS = ("step", "epoch")  # what a training curve's rows count by, when the definition names no x


def _points(rows: list[dict], x_field: str | None, column: str) -> list[tuple[float, float]]:
    points = [(_number(row.get(x_field)) if x_field else index, _number(row.get(column))) for index, row in enumerate(rows)]
    return [(x, y) for x, y in points if x is not None and y is not None]


def _band(axes, file: str, root: str, seed_roots: list[str], x_field, column: str, label: str, style: str) -> bool:
    """A side's curve over its seeds: the mean, and ± one standard deviation shaded, where every seed's file
    has the same x values; False when they do not."""
    import numpy as np

    curves = []
    for seed_root in seed_roots:
        rows = _rows(os.path.join(seed_root, os.path.relpath(file, root)))
        curves.append(dict(_points(rows, x_field, column)) if rows else {})
    xs = sorted(curves[0]) if curves else []
    if len(curves) < 2 or not xs or any(sorted(curve) != xs for curve in curves):
        return False
    values = np.array([[curve[x] for x in xs] for curve in curves])
    mean, deviation = values.mean(0), values.std(0, ddof=1)
    line, = axes.plot(xs, mean, style, label=f"{label}, mean of {len(curves)} seeds ± 1 sd")
    axes.fill_between(xs, mean - deviation, mean + deviation, color=line.get_color(), alpha=0.2)
    return True


def _draw_linear(axes, spec: PlotSpec, root: str, baseline_root: str | None, names: tuple[str, str],
                 seed_roots: tuple[str, ...] | list[str] = (), baseline_seed_roots: tuple[str, ...] | list[str] = ()) -> bool:
    """y over x for each series; with `baseline_root`, the target's same files dashed beside the branch's; with
    `seed_roots` (alops.runs.seeds: each seed's plot files), the branch's mean over seeds with its spread as a band,
    and likewise the target's over `baseline_seed_roots`."""
    drawn, x_label, columns = False, None, set()
    sides = [(root, names[0], "-", list(seed_roots))]
    sides += [(baseline_root, names[1], "--", list(baseline_seed_roots))] if baseline_root else []
    for path, name in spec.series:
        for side_root, side_name, style, side_seeds in sides:
            for file in _files(side_root, path):
                rows = _rows(file)
                if not rows:
                    continue
                x_field = spec.x if spec.x and spec.x in rows[0] else next((f for f in X_FIELDS if f in rows[0]), None)
                x_label = x_label or x_field or "row"
                fields = [name] if name else [k for k in rows[0] if k != x_field and k not in X_FIELDS
                                              and _number(rows[0][k]) is not None]
                for column in fields:
                    points = _points(rows, x_field, column)
                    if points:
                        where = os.path.relpath(file, side_root)
                        label = column if len(spec.series) == 1 and where == path else f"{where}: {column}"
                        label = f"{label} ({side_name})" if baseline_root else label
                        if not _band(axes, file, side_root, side_seeds, x_field, column, label, style):
                            axes.plot(*zip(*points), style, label=label)
                        drawn = True
                        columns.add(column)
    if drawn:
        if x_label in X_FIELDS + ("row",):
            from matplotlib.ticker import MaxNLocator

            axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.25
        axes.set_xlabel(x_label)
        axes.set_ylabel(next(iter(columns)) if len(columns) == 1 else "value")
        axes.legend(fontsize="small")
    return drawn


def _confusion_files(spec: PlotSpec, root: str) -> list[tuple[str, str | None]]:
    """(file, predicted field) of each confusion data file: one matrix per file (train and test apart)."""
    return [(file, name) for path, name in spec.series for file in _files(root, path)]


def _draw_confusion(axes, spec: PlotSpec, file: str, name: str | None) -> bool:
    counts: dict[tuple[str, str], int] = {}
    for row in _rows(file):
        if spec.x in row and name in row:
            key = (str(row[spec.x]), str(row[name]))
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return False
    labels = sorted({a for a, _ in counts} | {p for _, p in counts}, key=lambda v: (len(v), v))
    matrix = [[counts.get((actual, predicted), 0) for predicted in labels] for actual in labels]
    image = axes.imshow(matrix, cmap="Blues")
    axes.figure.colorbar(image, ax=axes, label="samples")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted" if name == "predicted" else f"predicted ({name})")
    axes.set_ylabel("actual" if spec.x == "actual" else f"actual ({spec.x})")
    top = max(max(row) for row in matrix)
    for i, cells in enumerate(matrix):
        for j, value in enumerate(cells):
            axes.text(j, i, str(value), ha="center", va="center", fontsize="small",
                      color="white" if value > top / 2 else "black")
    return True


def figures(document: dict, root: str, baseline_root: str | None = None,
            names: tuple[str, str] = ("this branch", "target"), seed_roots: tuple[str, ...] | list[str] = (),
            baseline_seed_roots: tuple[str, ...] | list[str] = ()) -> list[tuple[str, Any]]:
    """(title, matplotlib figure) of each plot the pipeline defines, at most MAX_PLOTS; line plots carry the
    target's curves from `baseline_root` (the same files as the target has them) where it has them, and each
    side's spread over its seeds' files (`seed_roots`, `baseline_seed_roots`) as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    for spec in specs(document):
        if spec.template in CONFUSION:
            files = _confusion_files(spec, root)
            for file, name in files:
                figure, axes = plt.subplots(figsize=(6, 4.5))
                if _draw_confusion(axes, spec, file, name):
                    where = os.path.relpath(file, root)
                    title = spec.title if len(files) == 1 and where == spec.series[0][0] else f"{spec.title}: {where}"
                    axes.set_title(f"{title} ({names[0]})")
                    drawn.append((title, figure))
                else:
                    plt.close(figure)
            continue
        figure, axes = plt.subplots(figsize=(6, 4))
        if _draw_linear(axes, spec, root, baseline_root, names, seed_roots, baseline_seed_roots):
            axes.set_title(f"{spec.title}: {names[0]} vs {names[1]}" if baseline_root else spec.title)
            axes.grid(alpha=0.3)
            drawn.append((spec.title, figure))
        else:
            plt.close(figure)
    for _, figure in drawn[MAX_PLOTS:]:
        plt.close(figure)
    return drawn[:MAX_PLOTS]


def render(document: dict, root: str, folder: str, baseline_root: str | None = None,
           names: tuple[str, str] = ("this branch", "target"), seed_roots: tuple[str, ...] | list[str] = (),
           baseline_seed_roots: tuple[str, ...] | list[str] = ()) -> list[str]:
    """PNGs of the pipeline's plots (`figures`) in `folder`; the paths written."""
    return [save_png(figure, os.path.join(folder, "plot-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", title).strip("-.") + ".png"))
            for title, figure in figures(document, root, baseline_root, names, seed_roots, baseline_seed_roots)]
