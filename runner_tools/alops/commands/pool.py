"""`alops pool`: scored data from production joins the pool of unlabeled samples."""

from __future__ import annotations

import click

from alops.project import Project


@click.group("pool")
def pool_group() -> None:
    """The pool of unlabeled samples: add what the model scored in production."""


@pool_group.command("add")
@click.argument("log", type=click.Path(dir_okay=False, exists=True))
@click.option("--split", default="train", show_default=True, help="Split of the new samples.")
@click.option("--commit/--no-commit", "record", default=None,
              help="Record the new data version (dvc add, dvc push, git commit, git push); default: on al/ branches.")
def pool_add(log, split, record) -> None:
    """Append the samples of a prediction log to the full dataset as unlabeled samples.

    LOG is CSV, Parquet or JSON Lines with an `id` per sample and what the manifest has for each sample: a
    `path` (relative to the log's folder; the file is copied into the dataset) or the numeric features.
    Samples already in the manifest are skipped; probabilities and a `model_version` column are not data.

    \b
    Examples:
      alops pool add logs/2026-11-23.csv            # on an al/ branch: a new data version, pushed
      alops pool add predictions.parquet --no-commit
    """
    from alops.pool import add_to_project

    with Project.open() as project:
        addition, commit = add_to_project(project, log, split, record)
    click.echo(f"pool: {addition.added} samples added as unlabeled ({split}), {addition.skipped} already in the "
               "manifest" + (f"; not data: {', '.join(addition.ignored_columns)}" if addition.ignored_columns else "")
               + (f"; scored by model {', '.join(addition.model_versions)}" if addition.model_versions else ""))
    if commit:
        click.echo(f"pool: recorded the new data version in {commit[:12]} and pushed it")


commands = [pool_group]
