"""`alops track` and `alops select-best`: runs on the tracking server."""

from __future__ import annotations

import click

from alops.core.errors import ConfigError
from alops.core.project import Project


@click.group("track")
def track_group() -> None:
    """Tracking (MLflow): runs buffered during an outage."""


@track_group.command("sync")
def track_sync() -> None:
    """Send runs buffered while the tracking server was unreachable; each is recorded once."""
    from alops.runs import tracking

    with Project.open() as project:
        sent, left = tracking.sync(project.root, project.tracking_uri)
        click.echo(f"{sent} buffered run(s) sent" + (f", {left} left" if left else ""))


@click.command("select-best")
@click.argument("reports", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--metric", help="Metric to rank tracked runs by, e.g. val_accuracy (default: alops.yaml's metric).")
@click.option("--mode", type=click.Choice(["max", "min"]), help="Default: alops.yaml's metric direction, else max.")
@click.option("--kind", help="Branch kind whose experiment to search; default: this branch's.")
@click.option("--commit", help="Only runs of this commit (default: the current one, when known).")
@click.option("--target", metavar="BRANCH", help="With REPORTS: the branch to compare the pick with (default: the "
              "MR's target, else the default branch).")
@click.option("--out", default="report.md", show_default=True, help="With REPORTS: the pick's report.")
@click.option("--json", "json_path", metavar="PATH", help="With REPORTS: also keep the pick's report as data.")
def select_best(reports, metric, mode, kind, commit, target, out, json_path) -> None:
    """Pick the best candidate by the mean of a metric over its seeds.

    \b
    Without REPORTS: among the tracked runs (of this commit), grouped by params but their seeds; prints the
    pick's params as JSON. With REPORTS (each candidate job's `alops report --json`): the pick's report, with
    every candidate's mean in a table, compared with the target's baseline, and params-pick.patch beside it.

    \b
    Examples:
      alops select-best --metric val_accuracy
      alops select-best candidate-*/report.json --json report.json   # CI's select job
    """
    import json

    from alops.runs import tracking

    with Project.open() as project:
        if reports:
            from alops.core.files import atomic_write
            from alops.report import candidates
            from alops.report import merge_request as report_mod

            built, pngs, summary = candidates.pick(project, list(reports), out, project.target_branch(target), metric,
                                                   mode)
            if json_path:
                report_mod.save(built, pngs, json_path)
            atomic_write(out, report_mod.render(built))
            click.echo(f"select-best: {summary}; report: {out}" + (f", {report_mod.PATCH_FILE}" if built.pick_patch else ""))
            return
        primary = project.config.metric
        metric = metric or (primary.name if primary else None)
        if metric is None:
            raise ConfigError("--metric is needed: alops.yaml names no metric")
        mode = mode or (primary.direction if primary and primary.name == metric else "max")
        best = tracking.best_run(project.tracking_uri, project.experiment(kind), metric, mode,
                                 commit or project.context.commit)
        click.echo(json.dumps(best, indent=2, sort_keys=True))


commands = [track_group, select_best]
