"""`alops params`: params.yaml and its allowed values."""

from __future__ import annotations

import click

from alops.commands.options import notice
from alops.core.errors import ConfigError
from alops.core.project import Project


@click.group("params")
def params_group() -> None:
    """params.yaml and its allowed values (params.schema.yaml)."""


@params_group.command("check")
def params_check() -> None:
    """Validate params.yaml against params.schema.yaml: one line per problem, exit 2 (a notice without a schema)."""
    from alops.core import params

    with Project.open() as project:
        root = project.root
    schema = params.load_schema(root)
    if schema is None:
        notice(f"no {params.SCHEMA_FILE}: nothing to check (list each parameter's type and allowed values in it; "
               "see docs/run.md)")
        return
    errors = params.check(params.load_params(root), schema)
    for error in errors:
        click.echo(f"{params.PARAMS_FILE}: {error}", err=True)
    if errors:
        raise ConfigError(f"{len(errors)} parameter(s) not allowed")
    click.echo(f"{params.PARAMS_FILE}: {len(schema)} parameters allowed")


GITLAB_MATRIX_LIMIT = 200  # GitLab's most jobs per parallel:matrix


@params_group.command("matrix")
@click.option("--format", "fmt", type=click.Choice(["gitlab", "github", "json"]), default="json", show_default=True)
@click.option("--sample", type=int, help="Pick this many combinations at random (with --seed).")
@click.option("--seed", type=int, default=0, show_default=True)
def params_matrix(fmt, sample, seed) -> None:
    """Print the allowed parameter combinations for CI to test on the dev dataset.

    \b
    gitlab: a `parallel: matrix:` block to paste into a job (PARAM_TRAIN_LR: [...]); github: {"include": [...]}
    for fromJSON(); json: the combinations.
    Each combination runs as: alops run --set train.lr="$PARAM_TRAIN_LR" ...
    """
    import json

    from alops.core import params

    with Project.open() as project:
        schema = params.load_schema(project.root)
    if schema is None:
        raise ConfigError(f"no {params.SCHEMA_FILE} here: list the values to try under `values:`")
    if sample is not None and sample < 1:
        raise ConfigError("--sample must be at least 1")
    combos = params.matrix(schema, sample, seed)
    if fmt == "gitlab":
        import yaml

        if len(combos) > GITLAB_MATRIX_LIMIT:
            raise ConfigError(f"{len(combos)} combinations: GitLab runs at most {GITLAB_MATRIX_LIMIT} jobs of one "
                              "parallel:matrix; pick some with --sample N")
        click.echo(yaml.safe_dump({"parallel": {"matrix": params.gitlab_matrix(combos)}}, sort_keys=False,
                                  default_flow_style=None), nl=False)
        return
    click.echo(json.dumps(params.github_matrix(combos) if fmt == "github" else combos))


commands = [params_group]
