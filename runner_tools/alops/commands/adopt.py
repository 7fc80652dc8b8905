"""`alops init`: adopt alops in an existing repository."""

from __future__ import annotations

import click


@click.command("init")
@click.option("--forge", type=click.Choice(["gitlab", "github", "both"]), help="Default: from the origin remote's URL.")
@click.option("--version", "version", metavar="REF", help="alops version the CI file pins; default: this alops.")
@click.option("--dry-run", is_flag=True, help="Show every change and the checklist; write nothing.")
@click.option("--force", is_flag=True, help="Refresh the files alops wrote and nobody edited since (never a team's file).")
@click.option("--gitlab-kit", metavar="HOST/GROUP/PROJECT", help="Where the kit's components live on your GitLab (the include's address).")
@click.option("--github-kit", metavar="OWNER/REPO", help="Where the kit's reusable workflow lives on GitHub (the uses: address).")
@click.option("--dvc-remote", metavar="URL", help="For a repository without DVC: dvc init, this remote as the default "
              "(storage), and `dvc add` of the data folder (data/raw, data/full or data).")
@click.option("--stages-from-makefile", is_flag=True, help="Without dvc.yaml: write the stages the Makefile's targets "
              "run (python scripts of the project; paths sorted into deps and outs) for you to review.")
def init(forge: str | None, version: str | None, dry_run: bool, force: bool, gitlab_kit: str | None,
         github_kit: str | None, dvc_remote: str | None, stages_from_makefile: bool) -> None:
    """Wire this existing git (and DVC) repository to alops: alops.yaml, params schema, CI file, .gitignore.

    A team's own files are never replaced: an existing .gitlab-ci.yml gets the component's include merged in
    (its jobs and stages kept); --force refreshes only files alops wrote that nobody edited since. Running it
    twice changes nothing. Ends with a checklist of what the team must still do.

    \b
    Examples:
      alops init --dry-run
      alops init --forge gitlab --gitlab-kit gitlab.example.com/tools/alops
      alops init --dvc-remote s3://team-data/project   # a repository without DVC yet
      alops init --dvc-remote s3://team-data/project --stages-from-makefile
    """
    import os

    from alops.core.git import git
    from alops.setup.adopt import apply_plan, plan_init

    top = git(os.getcwd(), "rev-parse", "--show-toplevel", check=False).stdout.strip() or os.getcwd()
    plan = plan_init(top, forge, version, force, gitlab_kit, github_kit, dvc_remote, stages_from_makefile)
    click.echo(f"init: {plan.forge} repository at {plan.root}; stages: {', '.join(plan.found['stages']) or 'none'}; "
               f"tracked data: {', '.join(plan.found['tracked data']) or 'none'}")
    if plan.dvc_setup:
        folder = plan.dvc_setup[0]
        if plan.data_in_git:
            click.echo(f"  {'git':9s} rm -r --cached {folder}: its {len(plan.data_in_git)} file(s) in git move to DVC "
                       f"(the files stay; undo before committing: git reset -- {folder})")
        click.echo(f"  {'dvc':9s} init, remote storage (default), dvc add {folder}")
    for change in plan.changes:
        click.echo(f"  {change.action:9s} {change.path}")
    if not dry_run:
        apply_plan(plan)
    click.echo(("dry run: nothing written. " if dry_run else "") + "Still to do:")
    for number, item in enumerate(plan.checklist, 1):
        click.echo(f"  {number}. {item}")


commands = [init]
