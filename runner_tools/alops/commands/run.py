"""`alops run`: the pipeline as the runner runs it for the branch."""

from __future__ import annotations

import click

from alops.commands.options import notice
from alops.project import Project


@click.command("run")
@click.argument("stages", nargs=-1)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Default: the branch profile's device.")
@click.option("--allow-cpu", is_flag=True, envvar="ALOPS_ALLOW_CPU",
              help="Run on the CPU when the profile asks for a GPU and none is visible (env: ALOPS_ALLOW_CPU=true).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Run with a parameter changed (repeatable); the run and dvc.lock record it, params.yaml stays.")
@click.option("--keep-sets", is_flag=True, help="Also keep the --set values in params.yaml after the run.")
@click.option("--track/--no-track", default=None, help="Default: on where the profile tracks or MLFLOW_TRACKING_URI is set.")
@click.option("--dry-run", is_flag=True, help="Print the plan and do nothing.")
def run_command(stages, device, allow_cpu, assignments, keep_sets, track, dry_run) -> None:
    """Run the pipeline as the runner does for this branch: data, dvc repro, tracking, push.

    \b
    Examples:
      alops run                          # feature branch: dev data, CPU
      alops run --dry-run
      alops run --set train.lr=0.01 train
      alops run --set train.lr=0.01 --keep-sets   # and write it into params.yaml
    """
    from alops.params import parse_assignment
    from alops.pipeline import run_pipeline

    sets = dict(parse_assignment(a) for a in assignments)
    with Project.open() as project:
        if project.context.notice:
            notice(project.context.notice)
        result = run_pipeline(project, list(stages), device, allow_cpu, sets, track, dry_run,
                              echo=lambda line: click.echo(f"alops: {line}", err=True), keep_sets=keep_sets)
    for name, value in sorted(result.metrics.items()):
        click.echo(f"{name}: {value:g}")
    if sets and not keep_sets and not dry_run and result.ran:
        notice(f"{', '.join(f'{k}={v}' for k, v in sets.items())} held for this run only: params.yaml (what CI "
               "runs) is as it was; to keep them, run again with --keep-sets and commit params.yaml")


commands = [run_command]
