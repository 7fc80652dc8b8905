"""`alops new` and `alops demo`: a new project from the scaffold, and the whole flow on it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from alops.core.errors import ConfigError


@click.command()
@click.option("--keep", "folder", metavar="DIR", help="Run in DIR and keep it (default: a new temporary folder, kept).")
def demo(folder: str | None) -> None:
    """Run the whole flow on the digits example: scaffold, dev data, feature and experiment runs, a report,
    three active-learning rounds with an oracle, a release with its gate. No network; a few minutes.

    \b
    Examples:
      alops demo
      alops demo --keep /tmp/alops-demo
    """
    from alops.setup.demo import run_demo

    if folder and os.path.exists(folder) and os.listdir(folder):
        raise ConfigError(f"{folder} exists and is not empty: choose a new folder for the demo")
    run_demo(folder, echo=click.echo)


@click.command()
@click.argument("path")
@click.option("--name", help="Project name shown in its README; default: the folder name.")
@click.option("--forge", type=click.Choice(["gitlab", "github", "both"]), default="gitlab", show_default=True,
              help="Which CI file the project gets.")
@click.option("--version", "version", metavar="REF", help="alops version (component / workflow ref) the CI file pins.")
@click.option("--remote", metavar="URL", help="Default DVC remote; default: a folder beside the project.")
@click.option("--gitlab-kit", metavar="HOST/GROUP/PROJECT", help="Where the kit's components live on your GitLab (the include's address).")
@click.option("--github-kit", metavar="OWNER/REPO", help="Where the kit's reusable workflow lives on GitHub (the uses: address).")
@click.option("--classes", default="0,1,2,3,4,5,6,7,8,9", show_default=True, help="The label names, comma-separated.")
@click.option("--example", type=click.Choice(["none", "digits"]), default="none", show_default=True,
              help="digits adds scripts/prepare_digits.py, which renders scikit-learn's digits as the dataset.")
def new(path: str, name, forge, version, remote, gitlab_kit, github_kit, classes, example) -> None:
    """Scaffold an active-learning project wired to alops: stages, dvc.yaml, params, CI, DVC remote.

    PATH must not exist, be empty, or be a git repository with nothing else in it (its .git and remotes are
    kept). Its name is the repository name (letters, digits, - and _); the Python name replaces - with _.
    The project is committed as the first commit.

    \b
    Examples:
      alops new digits_al --forge both --example digits
      alops new digits_al --gitlab-kit gitlab.example.com/tools/alops
    """
    from alops.setup.scaffold import default_remote, new_project, placeholders_in

    made = new_project(path, name, forge, version, remote, classes, example, gitlab_kit, github_kit)
    click.echo(f"new: project in {made}; next: cd {path} && alops context")
    ci_files = [os.path.join(made, name) for name in (".gitlab-ci.yml", ".github/workflows/ci.yml")]
    ci_text = "".join(Path(path).read_text(encoding="utf-8") for path in ci_files if os.path.exists(path))
    for placeholder, option in placeholders_in(ci_text):
        click.echo(f"new: the CI file names the kit at the placeholder {placeholder}: replace it with where the kit "
                   f"lives on your forge ({option} next time; docs/install.md#building-the-wheel)")
    if remote is None:
        click.echo(f"new: DVC remote 'storage' is {default_remote(made)}, a folder on this machine only; CI runners "
                   "need one they reach: `dvc remote modify storage url s3://bucket/path` (docs/data.md#remotes)")


commands = [new, demo]
