"""`alops rescore`: the champion scored beside this commit's model on this commit's test set."""

from __future__ import annotations

import click

from alops.core.project import Project


@click.command("rescore")
@click.option("--model", metavar="NAME", help="Registered model name; default: the project name.")
def rescore(model: str | None) -> None:
    """Score the `champion` version and this commit's model on this commit's smoke set (smoke.json), and log
    both accuracies and the paired interval of the change on this commit's tracked run, so that `alops release`
    gates on the same samples (the champion measured on this data version, not its own).

    \b
    Example (the release training job, after `alops run`; needs the project's packages to load both models):
      alops rescore      # rescore: the champion (version 3) on this commit's test set (smoke.json, 359 samples): ...
    """
    from alops.release import rescore as rescore_mod

    with Project.open() as project:
        rescore_mod.rescore_champion(project, model or project.name, echo=click.echo)


commands = [rescore]
