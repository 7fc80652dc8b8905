"""`alops track`, `alops select-best` and `alops metrics`: runs on the tracking server, and the metrics a run
writes."""

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


@click.group("metrics")
def metrics_group() -> None:
    """The metrics a run writes, for DVC, the report and the gate."""


@metrics_group.command("from-text")
@click.argument("log", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--out", "-o", default="metrics.json", show_default=True, help="The metrics file to write (JSON).")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="Keep only this metric, and fail when it is missing. Repeatable.")
def metrics_from_text(log, out, names) -> None:
    """Turn the metrics a script prints (`accuracy: 0.93`, `val_loss=0.21`) into a metrics file.

    For training scripts that print their metrics instead of writing a file: the last value of each name wins,
    and nothing found (or a --name missing) is an error, so a stage never records an empty metrics file.
    LOG is a file, or - for standard input.

    \b
    Example (a dvc.yaml stage; declare metrics.json under `metrics:` with `cache: false`):
      cmd: python train.py > train.log && alops metrics from-text train.log --out metrics.json
    """
    import json

    from alops.core.files import atomic_write
    from alops.runs.metrics import metrics_from_text as parse

    with click.open_file(log, encoding="utf-8", errors="replace") as handle:
        found = parse(handle.read(), list(names) or None)
    atomic_write(out, json.dumps(found, indent=2, sort_keys=True) + "\n")
    click.echo(f"metrics: {len(found)} written to {out} ({', '.join(f'{k}={v:g}' for k, v in sorted(found.items()))})")


commands = [track_group, select_best, metrics_group]
