"""Options and printers that several command modules share."""

from __future__ import annotations

import sys

import click

DATASET_OPTION = click.option(
    "--dataset",
    type=click.Choice(["dev", "full"]),
    help="Which dataset; default: the one the branch kind's profile names.",
)
REMOTE_OPTION = click.option("--remote", metavar="NAME", help="DVC remote to use instead of the default one.")
TARGET_OPTION = click.option("--target", metavar="BRANCH",
                             help="Branch to compare with / merge into; default: the MR's target, else the default branch.")
LABEL_STUDIO_URL = click.option("--label-studio-url", metavar="URL", envvar="LABEL_STUDIO_URL",
                                help="A Label Studio server (env: LABEL_STUDIO_URL; token in LABEL_STUDIO_API_KEY).")
LABEL_STUDIO_PROJECT = click.option("--project", "studio_project", default="alops", show_default=True,
                                    envvar="LABEL_STUDIO_PROJECT", help="Label Studio project title (env: LABEL_STUDIO_PROJECT).")


def notice(message: str) -> None:
    click.echo(f"alops: notice: {message}", err=True)


def progress_printer():
    """Progress on a terminal (one rewritten line); silent in CI logs."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\rscoring: {done:,}/{total:,} rows ({100 * done / max(total, 1):.0f}%)", err=True,
                   nl=done >= total)

    return show
