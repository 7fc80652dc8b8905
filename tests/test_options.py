"""Option mapping, in-process (click's CliRunner): what a flag or an environment variable becomes, where a
subprocess adds nothing. The end-to-end behaviour of each command is tested through the console script."""

from __future__ import annotations

import contextlib

import click
import pytest
from click.testing import CliRunner

from alops.cli import cli, main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(_commands(cli)), ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and f"Usage: cli {' '.join(path)}" in result.output


class Stop(Exception):
    pass


@pytest.mark.parametrize("env, args, expected", [
    ({"ALOPS_RELEASE_METRIC": "", "ALOPS_RELEASE_DIRECTION": "", "ALOPS_RELEASE_MIN_DELTA": "",
      "ALOPS_RELEASE_BEYOND_NOISE": "false"}, [], (None, None, None, False)),
    ({"ALOPS_RELEASE_METRIC": "val_loss", "ALOPS_RELEASE_DIRECTION": "min", "ALOPS_RELEASE_MIN_DELTA": "0.5",
      "ALOPS_RELEASE_BEYOND_NOISE": "true"}, [], ("val_loss", "min", 0.5, True)),
    ({"ALOPS_RELEASE_METRIC": "val_loss"}, ["--metric", "f1", "--direction", "max"], ("f1", "max", None, False)),
    ({}, ["--beyond-noise"], (None, None, None, True)),
])
def test_release_gate_options_from_flags_and_the_templates_variables(monkeypatch, tmp_path, env, args, expected):
    """The templates pass the gate as ALOPS_RELEASE_* variables; empty ones mean: alops.yaml decides."""
    seen = {}

    def capture(project, metric, direction, min_delta, min_relative=0.0, beyond_noise=False):
        seen["gate"] = (metric, direction, min_delta, beyond_noise)
        raise Stop

    monkeypatch.setattr("alops.release.gate.project_gate", capture)
    monkeypatch.setattr("alops.core.project.Project.open", classmethod(lambda cls, *a, **k: contextlib.nullcontext(object())))
    result = CliRunner().invoke(cli, ["release", *args], env=env)
    assert isinstance(result.exception, Stop), result.output
    assert seen["gate"] == expected


def test_main_maps_a_usage_error_to_exit_2(capsys):
    assert main(["release", "--direction", "up"]) == 2
    assert "Invalid value for '--direction'" in capsys.readouterr().err
