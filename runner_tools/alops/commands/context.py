"""`alops context`: what the current branch means."""

from __future__ import annotations

import os

import click

from alops.core.errors import ConfigError
from alops.core.formats import FORMATS


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people; json for scripts; env for `eval`; dotenv for GitLab "
    "artifacts:reports:dotenv; github appends step outputs to $GITHUB_OUTPUT.",
)
@click.option("--branch", metavar="NAME", help="Resolve this branch instead of reading CI variables or git.")
def context(fmt: str, branch: str | None) -> None:
    """Print the branch kind and its profile (dataset, device, tracking, ...).

    \b
    Examples:
      alops context
      alops context --format json | jq -r .profile.dataset
      eval "$(alops context --format env)"; echo "$ALOPS_KIND"
    """
    from alops.core import formats
    from alops.core.branches import resolve_context
    from alops.core.config import load_config

    resolved = resolve_context(load_config().branches, branch=branch)
    if resolved.notice:
        click.echo(f"alops: notice: {resolved.notice}", err=True)
    if fmt == "github":
        path = os.environ.get("GITHUB_OUTPUT")
        if not path:
            raise ConfigError("GITHUB_OUTPUT is not set: --format github runs in GitHub Actions; use --format json elsewhere")
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(formats.render_github_outputs(resolved))
        click.echo(formats.render_text(resolved), nl=False)
        return
    render = {
        "text": formats.render_text,
        "json": formats.render_json,
        "env": formats.render_env,
        "dotenv": formats.render_dotenv,
    }[fmt]
    click.echo(render(resolved), nl=False)


commands = [context]
