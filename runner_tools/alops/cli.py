"""The `alops` command line: the root group, and the one place that turns errors into exit codes.

Commands live in `alops.commands.<area>`, each a thin layer over the library: 2 is a usage or
configuration error, 1 a failed operation. Heavy libraries are imported inside commands.
"""

from __future__ import annotations

import sys

import click

from alops import __version__
from alops.commands import (
    adopt,
    baseline,
    context,
    data,
    deploy,
    labels,
    params,
    pool,
    query,
    rehearse,
    release,
    report,
    rescore,
    run,
    scaffold,
    simulate,
    track,
)
from alops.core.errors import AlopsError
from alops.core.secrets import scrub


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="alops")
def cli() -> None:
    """Runner tools for the Git flow of active-learning projects.

    The branch decides what runs: feature branches use the dev dataset on CPU, experiment
    branches the full data on GPU, release branches gate and deploy, al/ branches carry new
    labels. Run `alops context` to see what the current branch means.
    """


for area in (context, adopt, data, run, baseline, params, track, query, pool, labels, simulate, report, release, rescore, deploy, scaffold,
             rehearse):
    for command in area.commands:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: one readable line and an exit code on error."""
    try:
        # without standalone mode, click hands a command's exit status back (click.exceptions.Exit is caught)
        status = cli.main(args=argv, prog_name="alops", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("alops: aborted", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except AlopsError as exc:
        click.echo(f"alops: error: {scrub(str(exc))}", err=True)
        return exc.exit_code
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
