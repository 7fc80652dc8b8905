"""Spread over seeds: the pipeline run N times with its seed params set to s+1, ..., s+N-1 and last s (the seed
params.yaml holds, so the workspace and dvc.lock end as the file says), each run tracked as any run is; what each
measured is kept in .alops/seeds.json for the report. A seed param is any params.yaml key named `seed`
(`train.seed`); the runs of one set of params differ only there.
"""

from __future__ import annotations

import os
import shutil

from alops.core.errors import ConfigError
from alops.core.files import write_json
from alops.core.params import seed_keys, without_seeds

SEEDS_FILE = os.path.join(".alops", "seeds.json")
SEED_PLOTS = os.path.join(".alops", "seeds")  # <seed>/<plot path>: each seed's plot files, for the report's bands
MOST_SEEDS = 50


def seed_values(params: dict, count: int) -> tuple[list[str], list[int]]:
    """The seed keys and the seeds to run, the one params.yaml holds last; ConfigError when there is no seed."""
    from alops.core.params import PARAMS_FILE, flatten

    if not 1 <= count <= MOST_SEEDS:
        raise ConfigError(f"--seeds {count}: expected 1 to {MOST_SEEDS}")
    keys = seed_keys(params)
    if not keys:
        raise ConfigError(f"--seeds needs a seed in {PARAMS_FILE}: a key named seed (e.g. train.seed) that the "
                          "training stage lists under its params and uses")
    flat = flatten(params)
    base = flat[keys[0]]
    if isinstance(base, bool) or not isinstance(base, int):
        raise ConfigError(f"{PARAMS_FILE}: {keys[0]} is {base!r}; --seeds counts up from an integer seed")
    return keys, [base + offset for offset in range(1, count)] + [base]


def seed_share(params: dict, spec: str) -> tuple[dict, str]:
    """The seed params of share I of N (`alops run --seed-share I/N`, one CI job of N running seeds in parallel):
    the I-th seed `--seeds N` would run; and a line saying which."""
    from alops.core.params import job_share

    index, count = job_share(spec, "--seed-share")
    keys, seeds = seed_values(params, count)
    return {key: seeds[index - 1] for key in keys}, f"seed {seeds[index - 1]} ({index} of {count}): {', '.join(keys)}"


def run_seeds(project, count: int, run_one, echo=print) -> list[dict]:
    """`run_one(sets)` (alops.runs.pipeline.run_pipeline with the caller's options) once per seed; the per-seed
    metrics (the model's: not the dev dataset's fidelity), kept in SEEDS_FILE with the params they share."""
    from alops.core.params import load_params
    from alops.runs.metrics import is_fidelity_file, workspace_metrics_by_file
    from alops.runs.pipeline import params_used

    root = project.root
    keys, seeds = seed_values(load_params(root), count)
    forget(root)
    runs = []
    for number, seed in enumerate(seeds, 1):
        echo(f"seed {seed} ({number} of {len(seeds)}): {', '.join(keys)} = {seed}")
        run_one({key: seed for key in keys})
        _keep_plots(project, seed)
        metrics = {name: value for path, found in workspace_metrics_by_file(project).items()
                   if not is_fidelity_file(path) for name, value in found.items()}
        runs.append({"seed": seed, "metrics": metrics})
    shared = without_seeds(params_used(root))  # as the report reads them: dvc.lock's over params.yaml
    write_json(os.path.join(root, SEEDS_FILE), {"alops_seeds": 1, "keys": keys, "commit": project.context.commit,
                                                 "params": shared, "runs": runs}, indent=1)
    return runs


def _keep_plots(project, seed: int) -> None:
    """The plot files dvc.yaml declares, as this seed's run wrote them, under SEED_PLOTS/<seed>/."""
    from alops.runs.pipeline import pipeline_files

    for path in pipeline_files(project)["plots"]:
        source = os.path.join(project.root, path)
        target = os.path.join(project.root, SEED_PLOTS, str(seed), path)
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif os.path.isfile(source):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(source, target)


def plot_roots(root: str) -> list[str]:
    """The folders holding each seed's plot files of the last `--seeds` run."""
    folder = os.path.join(root, SEED_PLOTS)
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)) if os.path.isdir(folder) else []


def forget(root: str) -> None:
    """A run that is not over seeds makes the last seeds' record stale."""
    try:
        os.remove(os.path.join(root, SEEDS_FILE))
    except FileNotFoundError:
        pass
    shutil.rmtree(os.path.join(root, SEED_PLOTS), ignore_errors=True)


def workspace_seeds(root: str, params: dict[str, str], commit: str | None) -> list[dict[str, float]]:
    """The per-seed metrics of the last `--seeds` run when it ran these params (seeds aside) at this commit;
    empty otherwise."""
    import json

    try:
        with open(os.path.join(root, SEEDS_FILE), encoding="utf-8") as handle:
            record = json.load(handle)
        runs = [{str(k): float(v) for k, v in run["metrics"].items()} for run in record["runs"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    if record.get("commit") != commit or record.get("params") != without_seeds(params):
        return []
    return runs


def seed_runs(uri: str, project: str, run) -> list:
    """The tracked runs that share `run`'s commit, branch, dataset and params but their seeds, one per seed (the
    newest of each), `run` first."""
    from alops.core.project import TAG_BRANCH, TAG_COMMIT, TAG_DATASET
    from alops.runs import tracking

    tags = run.data.tags
    if not tags.get(TAG_COMMIT):
        return [run]
    found = tracking.find_runs(uri, project, branch=tags.get(TAG_BRANCH), commit=tags[TAG_COMMIT], limit=MOST_SEEDS * 2,
                               tags={TAG_DATASET: tags[TAG_DATASET]} if tags.get(TAG_DATASET) else None)
    shared = without_seeds(dict(run.data.params))
    by_seed: dict[tuple, object] = {}
    for other in [run, *found]:
        params = dict(other.data.params)
        if without_seeds(params) == shared:
            by_seed.setdefault(tuple(sorted(set(params.items()) - set(shared.items()))), other)
    return list(by_seed.values())


def tracked_seeds(uri: str, project: str, run) -> list[dict[str, float]]:
    """The metrics of `run`'s seed runs (`seed_runs`), `run`'s first."""
    return [dict(other.data.metrics) for other in seed_runs(uri, project, run)]


def mean_metrics(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the runs that have it."""
    from alops.runs.noise import mean

    names = sorted({name for run in runs for name in run})
    return {name: mean([run[name] for run in runs if name in run]) for name in names}
