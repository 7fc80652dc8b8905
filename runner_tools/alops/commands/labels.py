"""`alops labels`: the hand-off to labelers (export tasks, import their labels)."""

from __future__ import annotations

import os

import click

from alops.commands.options import LABEL_STUDIO_PROJECT, LABEL_STUDIO_URL
from alops.core.project import Project


@click.group("labels")
def labels_group() -> None:
    """The hand-off to labelers: export tasks, import their labels."""


@labels_group.command("export")
@click.argument("selection", type=click.Path(dir_okay=False))
@click.option("--out", "out", default="labeling", show_default=True, help="Folder for tasks.json, tasks.csv, batch.json.")
@click.option("--model-version", default=None, help="Shown to labelers with each prediction; default: the commit.")
@click.option("--image-prefix", default="", help="Prefix for image paths, e.g. the URL the files are served from.")
@LABEL_STUDIO_URL
@LABEL_STUDIO_PROJECT
def labels_export(selection, out, model_version, image_prefix, label_studio_url, studio_project) -> None:
    """Turn a selection into Label Studio tasks (with uncertainty scores) and a CSV for labelers.

    With --label-studio-url (and LABEL_STUDIO_API_KEY) the tasks are also created in the project; a re-run
    adds none twice.
    """
    from alops.al.selection import Selection
    from alops.labels.handoff import export_batch, label_config

    with Project.open() as project:
        batch, classes = export_batch(project, Selection.read(selection), out, model_version, image_prefix)
        click.echo(f"{out}: {len(batch['sample_ids'])} tasks in batch {batch['batch_id']} (tasks.json, tasks.csv, label_config.xml)"
                   + (f"; {batch['labeled_since']} selected samples are labeled already and were left out"
                      if batch["labeled_since"] else ""))
        if label_studio_url:
            from alops.labels.labelstudio import send_tasks

            project_id, added = send_tasks(label_studio_url, studio_project, label_config(classes),
                                           os.path.join(out, "tasks.json"))
            click.echo(f"Label Studio project {studio_project!r} (id {project_id}): {added} tasks added")


@labels_group.command("import")
@click.argument("export", type=click.Path(dir_okay=False), default="labeling/export.json")
@click.option("--batch", "batch_path", default="labeling/batch.json", show_default=True)
@click.option("--min-agreement", type=float, default=0.5, show_default=True,
              help="Share of annotators that must agree; below it the sample goes back to the queue.")
@click.option("--partial", is_flag=True, help="Accept an export that covers only part of the batch.")
@LABEL_STUDIO_URL
@LABEL_STUDIO_PROJECT
@click.option("--commit/--no-commit", "record", default=None,
              help="Record the new data version (dvc add/push, git commit/push); default: on active-learning branches.")
def labels_import(export, batch_path, min_agreement, partial, label_studio_url, studio_project, record) -> None:
    """Validate a Label Studio export (JSON, JSON-MIN or CSV) against its batch and label the pool.

    With --label-studio-url (or LABEL_STUDIO_URL) the project's export is fetched first and saved as EXPORT.
    Without the batch file (a fresh clone in an import pipeline) the export's tasks are the batch (they carry
    alops' sample and batch ids) and what is annotated so far is imported. On an al/ branch the new data
    version is committed and pushed; a push rejected by a concurrent import is retried on top of it.
    """
    from alops.labels.handoff import batch_of_export, import_into_project, read_batch

    given = click.get_current_context().get_parameter_source("batch_path") != click.core.ParameterSource.DEFAULT
    batch = read_batch(batch_path) if given or os.path.exists(batch_path) else None
    if label_studio_url:
        from alops.labels.labelstudio import fetch_export

        fetch_export(label_studio_url, studio_project, export, batch)
    if batch is None:  # no batch file here: the export's own tasks say what was asked; some may be unlabeled yet
        batch, partial = batch_of_export(export), True
    with Project.open() as project:
        report, commit = import_into_project(project, export, batch, min_agreement, partial, record)
        if commit:
            click.echo(f"recorded the new data version in {commit[:12]} on {project.context.branch}")
    for sample, reason in sorted(report.requeued.items()):
        click.echo(f"back to the queue: {sample}: {reason}")
    click.echo(f"{len(report.accepted)} labels accepted, {report.changed} samples changed, "
               f"{len(report.requeued)} back to the queue, {report.cancelled} cancelled annotations ignored")


commands = [labels_group]
