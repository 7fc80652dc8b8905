"""`alops report` and `alops promote`: the metrics report and the merge request."""

from __future__ import annotations

import os

import click

from alops.commands.options import TARGET_OPTION, notice
from alops.core.errors import ConfigError
from alops.core.project import Project


@click.command()
@TARGET_OPTION
@click.option("--out", default="report.md", show_default=True, help="Where to write the markdown.")
@click.option("--post", is_flag=True, help="Create or update the one alops comment on the MR/PR of this pipeline or branch.")
@click.option("--post-if-open", is_flag=True,
              help="As --post, but only a notice when no MR/PR is open for the branch or no forge token is set.")
@click.option("--metric", "curve_metric", metavar="NAME", help="Metric of the learning curve (default: accuracy).")
@click.option("--simulation", type=click.Path(dir_okay=False, exists=True),
              help="simulation.csv from `alops simulate`: random and the branch's strategy, in a panel of their own.")
@click.option("--json", "json_path", metavar="PATH", help="Also keep the report as data, for `--from` in another job.")
@click.option("--from", "from_path", metavar="PATH",
              help="Post a report kept with --json instead of building one: needs no checkout, data or tracking.")
def report(target: str | None, out: str, post: bool, post_if_open: bool, curve_metric: str | None,
           simulation: str | None, json_path: str | None, from_path: str | None) -> None:
    """Write the metrics report of this run against the target branch (and post it on the MR/PR).

    Metrics with deltas, params that changed, the data version and, on al/ branches, labels added and a
    learning curve. `--post` keeps ONE comment per MR/PR: re-runs update it.

    \b
    Examples:
      alops report --target main
      alops report --post            # in a merge-request pipeline, or a branch with an open MR
      alops report --post-if-open    # in a branch pipeline: post when an MR is open
      alops report --json report.json                 # the training job: no forge token
      alops report --from report.json --post-if-open  # a job of its own holds the token
    """
    from alops.core.config import load_config
    from alops.core.files import atomic_write
    from alops.report import merge_request as report_mod

    # the posting job (--from): the CI context is all it needs, not the project's code or data
    with Project(os.getcwd(), load_config()) if from_path else Project.open() as project:
        if from_path:
            built, pngs = report_mod.load(from_path)
        else:
            built, pngs = report_mod.build(project, project.target_branch(target), curve_metric, simulation, out)
            if json_path:
                report_mod.save(built, pngs, json_path)
        atomic_write(out, report_mod.render(built))
        click.echo(f"report: {out}" + (f", images {', '.join(os.path.basename(p) for p in pngs)}" if pngs else ""))
        if post or post_if_open:
            posted = report_mod.post(project, built, pngs, out, post_if_open, notice)
            if posted:
                number, outcome = posted
                click.echo(f"report: comment {outcome.action} on #{number}: {outcome.url}")


@click.command()
@TARGET_OPTION
@click.option("--title", help="Title of the MR/PR; default: from the branch name.")
@click.option("--label", "labels", multiple=True, metavar="NAME", help="Label to add (repeatable).")
@click.option("--draft", is_flag=True, help="Open it as a draft.")
@click.option("--report", "report_path", default="report.md", show_default=True,
              help="Markdown for the description (written by `alops report`; made now when missing).")
def promote(target: str | None, title: str | None, labels: tuple[str, ...], draft: bool, report_path: str) -> None:
    """Open or update the MR/PR from this experiment or al/ branch to its target; never a second one.

    \b
    Examples:
      alops promote --label experiment --draft
    """
    from alops.forge import client as forge
    from alops.report import merge_request as report_mod

    with Project.open() as project:
        context = project.context
        if context.kind not in ("experiment", "active-learning"):
            raise ConfigError(f"alops promote opens MRs from experiment and al/ branches; {context.branch!r} is {context.kind}")
        target = project.target_branch(target)
        if os.path.exists(report_path):
            with open(report_path, encoding="utf-8") as handle:
                description = handle.read()
        else:
            description = report_mod.render(report_mod.collect(project, target))
        title = title or f"{context.kind}: {context.branch}"
        outcome = forge.connect(context).upsert_merge_request(context.branch, target, title, description, labels, draft)
        click.echo(f"promote: merge request {outcome.action}: {outcome.url}")


commands = [report, promote]
