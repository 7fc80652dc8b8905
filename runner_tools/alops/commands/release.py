"""`alops release` and `alops rollback`: the champion model."""

from __future__ import annotations

import os

import click

from alops.core.project import Project


@click.command("release")
@click.option("--metric", metavar="NAME", envvar="ALOPS_RELEASE_METRIC",
              help="Metric the gate compares with the champion's; default: metric.name in alops.yaml.")
@click.option("--direction", type=click.Choice(["max", "min"]), envvar="ALOPS_RELEASE_DIRECTION",
              help="Default: metric.direction in alops.yaml, else max.")
@click.option("--min-delta", type=float, envvar="ALOPS_RELEASE_MIN_DELTA",
              help="Smallest absolute gain that passes; default: metric.min_gain in alops.yaml, else 0.")
@click.option("--min-relative", type=float, default=0.0, show_default=True, help="Smallest relative gain that passes (0.01 = 1%).")
@click.option("--beyond-noise", is_flag=True, envvar="ALOPS_RELEASE_BEYOND_NOISE",
              help="The gain must also be more than sampling noise (the 95% interval of the change excludes 0; "
                   "both runs log <prefix>_samples, e.g. val_samples).")
@click.option("--model", metavar="NAME", help="Registered model name; default: the project name.")
@click.option("--artifact", metavar="PATH", help="The run's model artifact; default: the model file dvc.yaml declares.")
@click.option("--run-id", metavar="ID", help="Candidate run; default: the latest tracked run of this commit.")
@click.option("--record", default="release.json", show_default=True, help="Where to write the provenance record.")
@click.option("--publish", is_flag=True, help="Publish the record as a GitLab / GitHub release.")
@click.option("--challenger", is_flag=True, help="Move the `challenger` alias instead: `alops deploy` smoke-tests it, "
              "then makes it the champion; default: on when ALOPS_DEPLOY_TARGET is set (the deploy-target input).")
def release_command(metric, direction, min_delta, min_relative, beyond_noise, model, artifact, run_id, record,
                    publish, challenger) -> None:
    """Gate the candidate against the champion, register it, move the `champion` alias (release branches).

    A missing or NaN metric fails closed; the first release (no champion yet) passes and says so.

    \b
    Examples:
      alops release --publish                   # the gate of alops.yaml's metric:
      alops release --metric accuracy --min-delta 0.005 --publish
      alops release --beyond-noise              # and more than sampling noise
      alops release --challenger && alops deploy --target serve --endpoint http://host:8080
    """
    from alops.release import gate as release_mod
    from alops.release.registry import CHALLENGER, CHAMPION

    with Project.open() as project:
        gate = release_mod.project_gate(project, metric, direction, min_delta, min_relative, beyond_noise)
        deploying = challenger or bool(os.environ.get("ALOPS_DEPLOY_TARGET"))
        alias = CHALLENGER if deploying else CHAMPION
        provenance, published = release_mod.release_project(project, gate, model, artifact, run_id, record, publish,
                                                             echo=click.echo, alias=alias)
        click.echo(f"release: {provenance.model} version {provenance.version} is the {alias} "
                   f"(previous: {provenance.previous_version or 'none'}); record {record}")
        if published is not None:
            click.echo(f"release: {published.action} {published.url}")


@click.command()
@click.option("--model", metavar="NAME", help="Registered model name; default: the project name.")
@click.option("--target", type=click.Choice(["serve", "kserve", "command"]), envvar="ALOPS_DEPLOY_TARGET",
              help="Redeploy the earlier version there (as `alops deploy`); default: only the alias moves.")
@click.option("--endpoint", metavar="URL", envvar="ALOPS_DEPLOY_ENDPOINT", help="serve: the `alops serve` address.")
@click.option("--environment", default="production", show_default=True, envvar="ALOPS_ENVIRONMENT")
@click.option("--command", "command", metavar="SHELL", envvar="ALOPS_DEPLOY_COMMAND", help="command: the deploy command.")
@click.option("--publish", is_flag=True,
              help="Mark the forge release of the version that leaves as rolled back (GITLAB_TOKEN / GITHUB_TOKEN).")
def rollback(model: str | None, target: str | None, endpoint: str | None, environment: str, command: str | None,
             publish: bool) -> None:
    """Move the `champion` alias back to the version the current champion replaced, and mark that one rolled
    back (no release re-run promotes it again); with --target, deploy the earlier version there.

    \b
    Examples:
      alops rollback --model digits
      ALOPS_SERVE_TOKEN=... alops rollback --target serve --endpoint http://10.0.0.5:8080
      alops rollback --publish                 # in CI: the forge release of that version says so too
    """
    from alops.forge import client as forge
    from alops.release import gate as release_mod

    with Project.open() as project:
        name, uri = model or project.name, project.tracking_uri
        target_forge = forge.connect(project.context) if publish else None  # a missing token fails before anything moves
    if target:
        from alops.release.deploy import check_target

        check_target(target, endpoint, os.environ.get("ALOPS_SERVE_TOKEN"), command)  # before the alias moves
    moved_from, moved_to, tag = release_mod.rollback(uri, name)
    click.echo(f"rollback: {name} champion moved from version {moved_from} back to {moved_to}")
    if target_forge is not None:
        marked = release_mod.mark_rolled_back(target_forge, tag, moved_from, moved_to)
        click.echo(f"rollback: release {tag} marked rolled back ({marked.url})" if marked and marked.url else
                   f"rollback: no forge release of version {moved_from} to mark")
    if target:
        from alops.release.deploy import deploy

        deploy(uri, name, target, environment, None, moved_to, endpoint, os.environ.get("ALOPS_SERVE_TOKEN"),
               command=command, echo=click.echo)
        click.echo(f"rollback: version {moved_to} deployed in {environment} via {target}")


commands = [release_command, rollback]
