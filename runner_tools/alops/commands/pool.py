"""`alops pool`: scored data from production joins the pool of unlabeled samples."""

from __future__ import annotations

import click

from alops.core.project import Project


@click.group("pool")
def pool_group() -> None:
    """The pool of unlabeled samples: add what the model scored in production."""


@pool_group.command("add")
@click.argument("log", type=click.Path(dir_okay=False, exists=True))
@click.option("--split", default="by-id", show_default=True,
              help="Split of the new samples: by-id draws each one's split from its id in the manifest's split "
                   "shares (live samples reach validation and test too); or a split name, e.g. train.")
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
    from alops.data.pool import add_to_project, split_summary

    with Project.open() as project:
        addition, commit = add_to_project(project, log, split, record)
    click.echo(f"pool: {addition.added} samples added as unlabeled ({split_summary(addition.splits)}), "
               f"{addition.skipped} already in the "
               "manifest" + (f"; not data: {', '.join(addition.ignored_columns)}" if addition.ignored_columns else "")
               + (f"; scored by model {', '.join(addition.model_versions)}" if addition.model_versions else ""))
    if commit:
        click.echo(f"pool: recorded the new data version in {commit[:12]} and pushed it")


@pool_group.command("intake")
@click.argument("source")
@click.option("--pattern", default="predictions-*.jsonl", show_default=True,
              help="Finished logs in SOURCE (the live predictions.jsonl is not one).")
@click.option("--split", default="by-id", show_default=True,
              help="Split of the new samples: by-id draws each one's split from its id in the manifest's split "
                   "shares (live samples reach validation and test too); or a split name, e.g. train.")
@click.option("--new-samples", default="intake/new-samples.jsonl", show_default=True, type=click.Path(dir_okay=False),
              help="Where the new samples go as logged (predictions included), for `alops data check-dev --against`.")
@click.option("--commit/--no-commit", "record", default=None,
              help="Record the new data version (dvc add, dvc push, git commit, git push); default: on al/ branches.")
@click.option("--branch", metavar="NAME",
              help="The al/ branch checked out here, when the CI variables name another (a GitHub schedule runs on "
                   "the default branch): the new data version is pushed to it.")
def pool_intake(source, pattern, split, new_samples, record, branch) -> None:
    """Add the finished prediction logs at SOURCE to the pool, each log once (a scheduled CI job).

    SOURCE is a folder or an fsspec URL (s3://bucket/logs/ needs alops[s3]) where the serving host's finished
    logs are copied, each with the files its rows name. The logs taken are named in the dataset's ledger
    (.alops-intake.json), which is part of the new data version: a second run takes nothing twice.

    \b
    Examples:
      alops pool intake s3://team-logs/digits/       # on an al/ branch: one data version, pushed
      alops pool intake /mnt/serving/predictions --no-commit
      git switch al/production && alops pool intake s3://team-logs/digits/ --branch al/production
    """
    from alops.data.intake import take_into_project
    from alops.data.pool import split_summary

    with Project.open(branch=branch) as project:
        intake, commit = take_into_project(project, source, split, new_samples, record, pattern)
    click.echo(f"pool intake: {len(intake.taken)} new log(s), {intake.known} taken before; {intake.added} samples "
               f"added as unlabeled ({split_summary(intake.splits)}), {intake.skipped} already in the pool; {intake.new_samples} new samples "
               f"in {new_samples}")
    if commit:
        click.echo(f"pool intake: recorded the new data version in {commit[:12]} and pushed it")


commands = [pool_group]
