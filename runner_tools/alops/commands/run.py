"""`alops run`: the pipeline as the runner runs it for the branch."""

from __future__ import annotations

import click

from alops.commands.options import notice
from alops.core.errors import ConfigError
from alops.core.project import Project


@click.command("run")
@click.argument("stages", nargs=-1)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Default: the branch profile's device.")
@click.option("--allow-cpu", is_flag=True, envvar="ALOPS_ALLOW_CPU",
              help="Run on the CPU when the profile asks for a GPU and none is visible (env: ALOPS_ALLOW_CPU=true).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Run with a parameter changed (repeatable); the run and dvc.lock record it, params.yaml stays.")
@click.option("--keep-sets", is_flag=True, help="Also keep the --set values in params.yaml after the run.")
@click.option("--track/--no-track", default=None, help="Default: on where the profile tracks or MLFLOW_TRACKING_URI is set.")
@click.option("--seeds", type=int, default=1, show_default=True, envvar="ALOPS_SEEDS",
              help="Run N times, the seed params (keys named seed) counting up from params.yaml's; the report "
                   "compares the mean with an interval (env: ALOPS_SEEDS).")
@click.option("--candidate", metavar="I/N", envvar="ALOPS_CANDIDATE",
              help="Run combination I of `alops params matrix --sample N` (a CI matrix job's share; env: ALOPS_CANDIDATE).")
@click.option("--seed-share", metavar="I/N", envvar="ALOPS_SEED_SHARE",
              help="Run only the I-th seed --seeds N would run (one of N parallel jobs; env: ALOPS_SEED_SHARE).")
@click.option("--dry-run", is_flag=True, help="Print the plan and do nothing.")
def run_command(stages, device, allow_cpu, assignments, keep_sets, track, seeds, candidate, seed_share, dry_run) -> None:
    """Run the pipeline as the runner does for this branch: data, dvc repro, tracking, push.

    \b
    Examples:
      alops run                          # feature branch: dev data, CPU
      alops run --dry-run
      alops run --set train.lr=0.01 train
      alops run --set train.lr=0.01 --keep-sets   # and write it into params.yaml
      alops run --seeds 3                # three seeds: the report's mean and interval
      alops run --candidate 2/3          # the second of `alops params matrix --sample 3`
      alops run --seed-share 1/3         # the first of three seeds, in one of three parallel jobs
    """
    from alops.core.params import parse_assignment
    from alops.runs import seeds as spread
    from alops.runs.pipeline import run_pipeline

    asked = dict(parse_assignment(a) for a in assignments)
    sets = dict(asked)  # and the candidate's and seed's values, which say so as they are set
    echo = lambda line: click.echo(f"alops: {line}", err=True)
    with Project.open() as project:
        if project.context.notice:
            notice(project.context.notice)
        if candidate:
            from alops.report.candidates import candidate_sets

            chosen = candidate_sets(project.root, candidate)
            echo(f"candidate {candidate}: " + ", ".join(f"{k}={v}" for k, v in chosen.items()))
            sets = {**chosen, **sets}
        if seed_share:
            from alops.core.params import load_params

            if seeds != 1:
                raise ConfigError("--seed-share runs one seed of N in parallel jobs: leave --seeds (ALOPS_SEEDS) at 1")
            chosen, line = spread.seed_share(load_params(project.root), seed_share)
            echo(line)
            sets = {**sets, **chosen}

        def run_one(extra: dict):
            return run_pipeline(project, list(stages), device, allow_cpu, {**sets, **extra}, track, dry_run,
                                echo=echo, keep_sets=keep_sets)

        if seeds == 1 or dry_run:
            result = run_one({})
            if not dry_run:
                spread.forget(project.root)
            metrics = result.metrics
        else:
            runs = spread.run_seeds(project, seeds, run_one, echo)
            metrics = spread.mean_metrics([run["metrics"] for run in runs])
            result = None
    for name, value in sorted(metrics.items()):
        click.echo(f"{name}: {value:g}" + ("" if result else f" (mean of {seeds} seeds)"))
    if result is None:
        return
    if asked and not keep_sets and not dry_run and result.ran:
        notice(f"{', '.join(f'{k}={v}' for k, v in asked.items())} held for this run only: params.yaml (what CI "
               "runs) is as it was; to keep them, run again with --keep-sets and commit params.yaml")


commands = [run_command]
