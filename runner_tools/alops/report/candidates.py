"""Parallel candidates: CI trains N combinations of `alops params matrix --sample N` side by side (job I of N
runs `alops run --candidate I/N`, each writes its report), then `alops select-best` picks the best mean over
seeds from those reports, compares it with the target's baseline and writes the pick as a params.yaml change.
Reports that differ only in their seeds (seeds in parallel jobs, `alops run --seed-share I/N`) are one candidate.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile

from alops.core.errors import ConfigError
from alops.core.files import atomic_write
from alops.report.merge_request import PATCH_FILE


def candidate_sets(root: str, spec: str) -> dict:
    """The params of candidate I of N: combination I of `alops params matrix --sample N` (the same N always
    gives the same combinations)."""
    from alops.core import params

    index, count = params.job_share(spec, "--candidate")
    schema = params.load_schema(root)
    if schema is None:
        raise ConfigError(f"--candidate needs {params.SCHEMA_FILE}: list the values to try under `values:`")
    combos = params.matrix(schema, count)
    if len(combos) < count:
        raise ConfigError(f"{params.SCHEMA_FILE} gives {len(combos)} combination(s), fewer than {count} candidates: "
                          f"ask for at most {len(combos)}")
    return combos[index - 1]


def pick(project, paths: list[str], out: str, target: str, metric: str | None = None, mode: str | None = None,
         patch: str = PATCH_FILE):
    """The best candidate report among `paths` by `metric`'s mean over seeds (default: the primary metric's, as
    the reports judged it, in its direction; else `mode`, else max), with every candidate
    in its table, compared with the target's baseline (found again: made after the candidates ran); the pick's
    params change written to `patch` (empty when params.yaml has them already). Returns (report, its PNGs, a line
    naming the pick)."""
    from alops.core import params
    from alops.report import merge_request as report_mod
    from alops.runs.noise import spread

    loaded = [(path, *report_mod.load(path)) for path in paths]
    if not loaded:
        raise ConfigError("no candidate reports: pass the report.json each candidate job wrote")
    primary = project.config.metric or next((report.primary for _, report, _ in loaded if report.primary), None)
    name = metric or (primary.name if primary else None)
    if name is None:
        raise ConfigError("select-best needs a metric: pass --metric, or name it in alops.yaml under metric: name:")
    missing = [path for path, report, _ in loaded if name not in report.current.metrics]
    if missing:
        raise ConfigError(f"{missing[0]}: no {name!r} among its metrics: pass the metric to pick by as --metric")
    direction = mode or (primary.direction if primary and primary.name == name else "max")
    sign = 1 if direction == "max" else -1
    groups = _by_candidate(loaded)
    path, best, pngs = max(groups, key=lambda item: sign * item[1].current.metrics[name])
    varied = sorted({key for _, report, _ in groups for key in report.current.params
                     if len({r.current.params.get(key) for _, r, _ in groups}) > 1})
    best.candidates = [
        {"report": os.path.relpath(p),
         "params": {key: report.current.params.get(key, "") for key in varied},
         "metric": name, "mean": report.current.metrics[name],
         "spread": spread([run[name] for run in report.current.seeds if name in run]),
         "seeds": len(report.current.seeds) or 1, "picked": report is best}
        for p, report, _ in groups] if len(groups) > 1 else []
    best.baseline, _, reasons, committed = report_mod.find_baseline(project, target, best.current)
    best.no_baseline = "; ".join(reasons) if best.baseline is None else ""
    best.target_params = committed.params if best.baseline is None and committed is not None else None
    schema = params.load_schema(project.root)  # the pick's whole combination, not only what the candidates varied
    combination = set(params.matrix_axes(schema)) if schema else set(varied)
    best.pick_patch = params_patch(project.root, {name: best.current.params[name] for name in sorted(combination)
                                                  if name in best.current.params})
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    if best.pick_patch:
        atomic_write(os.path.join(folder, patch), best.pick_patch)
    copied = []
    for png in pngs:  # the pick's pictures beside the report
        destination = os.path.join(folder, os.path.basename(png))
        if os.path.abspath(png) != destination:
            shutil.copyfile(png, destination)
        copied.append(destination)
    chosen: dict = next((row["params"] for row in best.candidates if row["picked"]), {})
    seeds = len(best.current.seeds) or 1
    summary = (f"{os.path.relpath(path)}" + (f" ({', '.join(f'{k}={v}' for k, v in chosen.items())})" if chosen else "")
               + f": {name} {best.current.metrics[name]:g}, mean of {seeds} seed(s)")
    return best, copied, summary


def _by_candidate(loaded: list[tuple]) -> list[tuple]:
    """The reports grouped by their params but the seeds (seeds trained in parallel jobs, one report each): one
    (path, report, PNGs) per candidate, its seeds gathered into `current.seeds` and their mean into its metrics;
    the report kept is the one of params.yaml's seed (the last a share runs), else the last."""
    from alops.core.params import without_seeds
    from alops.runs.seeds import mean_metrics

    groups: dict[tuple, list[tuple]] = {}
    for item in loaded:
        groups.setdefault(tuple(sorted(without_seeds(item[1].current.params).items())), []).append(item)
    merged = []
    for members in groups.values():
        path, report, pngs = members[-1]
        if len(members) > 1:
            runs = [run for _, member, _ in members for run in (member.current.seeds or [member.current.metrics])]
            report.current.seeds = runs
            report.current.metrics = {**report.current.metrics, **mean_metrics(runs)}
        merged.append((path, report, pngs))
    return merged


def params_patch(root: str, values: dict[str, str]) -> str:
    """A unified diff (for `git apply`) that sets `values` (as YAML text) in params.yaml, comments kept; empty
    when nothing changes."""
    from alops.core.params import PARAMS_FILE, parse_assignment, set_params

    path = os.path.join(root, PARAMS_FILE)
    with open(path, encoding="utf-8") as handle:
        before = handle.read()
    with tempfile.TemporaryDirectory(prefix="alops-pick-") as staging:
        shutil.copyfile(path, os.path.join(staging, PARAMS_FILE))
        set_params(staging, dict(parse_assignment(f"{name}={value}") for name, value in values.items()))
        with open(os.path.join(staging, PARAMS_FILE), encoding="utf-8") as handle:
            after = handle.read()
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{PARAMS_FILE}", f"b/{PARAMS_FILE}"))
