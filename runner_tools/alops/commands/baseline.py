"""`alops baseline`: the target branch's tracked run on this branch's dataset, made when missing."""

from __future__ import annotations

import click

from alops.core.project import Project


@click.command("baseline")
@click.option("--target", metavar="BRANCH", help="The branch to compare with; default: the MR's target, else the default branch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Default: this branch profile's device.")
@click.option("--allow-cpu", is_flag=True, envvar="ALOPS_ALLOW_CPU",
              help="Run on the CPU when the profile asks for a GPU and none is visible (env: ALOPS_ALLOW_CPU=true).")
@click.option("--seeds", type=int, default=1, show_default=True, envvar="ALOPS_SEEDS",
              help="Track the target's run with N seeds, as `alops run --seeds N` (env: ALOPS_SEEDS).")
def baseline(target, device, allow_cpu, seeds) -> None:
    """Make sure the target branch has a tracked run on the dataset this branch trains on, so the report
    compares like with like: when its last commit has none, run that commit's pipeline as this branch runs
    (dataset, device) in a temporary clone and track it as the target's run.

    \b
    Example (an experiment job, before `alops report`; main itself trains on the dev data):
      alops baseline            # main@1a2b3c4d trained on the full dataset and tracked: run ...
    """
    from alops.runs import baseline as baseline_mod

    with Project.open() as project:
        line = baseline_mod.ensure(project, project.target_branch(target), device, allow_cpu,
                                   echo=lambda text: click.echo(f"alops: baseline: {text}", err=True), seeds=seeds)
    click.echo(f"baseline: {line}")


commands = [baseline]
