"""`alops track` and `alops select-best`: runs on the tracking server."""

from __future__ import annotations

import click

from alops.project import Project


@click.group("track")
def track_group() -> None:
    """Tracking (MLflow): runs buffered during an outage."""


@track_group.command("sync")
def track_sync() -> None:
    """Send runs buffered while the tracking server was unreachable; each is recorded once."""
    from alops import tracking

    with Project.open() as project:
        sent, left = tracking.sync(project.root, project.tracking_uri)
        click.echo(f"{sent} buffered run(s) sent" + (f", {left} left" if left else ""))


@click.command("select-best")
@click.option("--metric", required=True, help="Metric to rank by, e.g. val_accuracy.")
@click.option("--mode", type=click.Choice(["max", "min"]), default="max", show_default=True)
@click.option("--kind", help="Branch kind whose experiment to search; default: this branch's.")
@click.option("--commit", help="Only runs of this commit (default: the current one, when known).")
def select_best(metric, mode, kind, commit) -> None:
    """Pick the best candidate run by a metric (e.g. after a params matrix) and print its params as JSON."""
    import json

    from alops import tracking

    with Project.open() as project:
        best = tracking.best_run(project.tracking_uri, project.experiment(kind), metric, mode,
                                 commit or project.context.commit)
        click.echo(json.dumps(best, indent=2, sort_keys=True))


commands = [track_group, select_best]
