"""The pipeline's plots as PNGs for the report: DVC plot definitions (dvc.yaml's top-level `plots:`, by name or
by file, as dvclive writes them) resolved to their data files and drawn with matplotlib.

Linear templates (linear, simple, scatter, smooth, the default) draw y over x; confusion templates draw the
matrix of (actual, predicted) counts. Data files are JSON (a list of rows, or one key holding it), CSV or TSV.
A definition whose data is missing or unreadable is skipped: plots never fail a report.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field

from alops.files import save_png

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
                series = [(str(path), str(name)) for path, names in y.items()
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


def _draw_linear(axes, spec: PlotSpec, root: str) -> bool:
    drawn = False
    for path, name in spec.series:
        for file in _files(root, path):
            rows = _rows(file)
            if not rows:
                continue
            x_field = spec.x if spec.x and spec.x in rows[0] else "step" if "step" in rows[0] else None
            fields = [name] if name else [k for k in rows[0] if k != x_field and _number(rows[0][k]) is not None]
            for column in fields:
                points = [(_number(row.get(x_field)) if x_field else index, _number(row.get(column)))
                          for index, row in enumerate(rows)]
                points = [(x, y) for x, y in points if x is not None and y is not None]
                if points:
                    axes.plot(*zip(*points), label=column if len(spec.series) == 1 else f"{os.path.basename(file)}: {column}")
                    drawn = True
            axes.set_xlabel(x_field or "row")
    if drawn:
        axes.legend(fontsize="small")
    return drawn


def _draw_confusion(axes, spec: PlotSpec, root: str) -> bool:
    counts: dict[tuple[str, str], int] = {}
    for path, name in spec.series:
        for file in _files(root, path):
            for row in _rows(file):
                if spec.x in row and name in row:
                    key = (str(row[spec.x]), str(row[name]))
                    counts[key] = counts.get(key, 0) + 1
    if not counts:
        return False
    labels = sorted({a for a, _ in counts} | {p for _, p in counts}, key=lambda v: (len(v), v))
    matrix = [[counts.get((actual, predicted), 0) for predicted in labels] for actual in labels]
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel(f"predicted ({name})")
    axes.set_ylabel(f"actual ({spec.x})")
    top = max(max(row) for row in matrix)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center", fontsize="small",
                      color="white" if value > top / 2 else "black")
    return True


def render(document: dict, root: str, folder: str) -> list[str]:
    """PNGs of the pipeline's plots (at most MAX_PLOTS) in `folder`; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for spec in specs(document)[:MAX_PLOTS]:
        figure, axes = plt.subplots(figsize=(6, 4))
        drawn = (_draw_confusion if spec.template in CONFUSION else _draw_linear)(axes, spec, root)
        if not drawn:
            plt.close(figure)
            continue
        axes.set_title(spec.title)
        name = "plot-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.title).strip("-.") + ".png"
        written.append(save_png(figure, os.path.join(folder, name)))
    return written
