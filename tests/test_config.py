"""`alops.yaml`: overrides take effect; malformed files give one line naming file, key and expected value."""

from __future__ import annotations

import json
import re

import pytest
from conftest import git, run_alops

from alops.core.errors import ConfigError


def write_config(repo, text: str):
    (repo / "alops.yaml").write_text(text)


def test_overrides_patterns_profiles_and_default_branch(repo):
    write_config(
        repo,
        "default_branch: trunk\n"
        "branches:\n  feature: [feature/*, fix/*]\n  active-learning: labels/*\n"
        "profiles:\n  experiment: {device: auto}\n",
    )
    git(repo, "switch", "-q", "-c", "fix/typo")
    assert json.loads(run_alops("context", "--format", "json", cwd=repo).stdout)["kind"] == "feature"
    for branch, kind in [("labels/r1", "active-learning"), ("al/r1", "other"), ("trunk", "main"), ("main", "other")]:
        data = json.loads(run_alops("context", "--branch", branch, "--format", "json", cwd=repo).stdout)
        assert data["kind"] == kind, branch
    data = json.loads(run_alops("context", "--branch", "experiment/x", "--format", "json", cwd=repo).stdout)
    assert (data["profile"]["device"], data["profile"]["dataset"]) == ("auto", "full")


def test_config_is_found_from_a_subfolder(repo):
    write_config(repo, "branches:\n  experiment: exp/*\n")
    (repo / "src").mkdir()
    data = json.loads(run_alops("context", "--branch", "exp/1", "--format", "json", cwd=repo / "src").stdout)
    assert data["kind"] == "experiment"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("brnches:\n  feature: f/*\n", "unknown key 'brnches' (expected one of: project, default_branch, branches, profiles, data, metric)"),
        ("branches:\n  feature: 'feat ure/*'\n", "branches.feature: 'feat ure/*' is not a branch pattern"),
        ("branches:\n  feature: '*'\n", "branches.feature: '*' is not a branch pattern"),
        ("branches:\n  bugfix: fix/*\n", "branches: unknown key 'bugfix'"),
        ("branches:\n  feature: 3\n", "branches.feature: expected a pattern or a list of patterns, got int"),
        ("branches: [feature/*]\n", "branches: expected a mapping of kind to patterns, got a list"),
        ("branches:\n  experiment: feature/*\n", "branches.experiment: pattern 'feature/*' is also given for feature"),
        ("profiles:\n  experiment: {device: tpu}\n", "profiles.experiment.device: 'tpu' is not allowed (expected one of: cpu, gpu, auto)"),
        ("profiles:\n  feature: {tracking: 'yes please'}\n", "profiles.feature.tracking: 'yes please' is not allowed (expected one of: true, false)"),
        ("profiles:\n  feature: {gpus: 2}\n", "profiles.feature: unknown key 'gpus'"),
        ("default_branch: [main]\n", "default_branch: ['main'] is not a branch name"),
        ("- just\n- a list\n", "expected a mapping with keys project, default_branch, branches, profiles, data, metric, got a list"),
        ("branches:\n  feature: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_malformed_config_gives_one_line_and_exit_2(repo, text, expected):
    write_config(repo, text)
    result = run_alops("context", cwd=repo)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert "alops.yaml" in message
    assert expected in message


def test_alops_config_variable_points_at_a_file(repo, tmp_path):
    from conftest import clean_env

    config = tmp_path / "team.yaml"
    config.write_text("branches:\n  release: rel/*\n")
    env = clean_env(ALOPS_CONFIG=str(config))
    data = json.loads(run_alops("context", "--branch", "rel/3", "--format", "json", cwd=repo, env=env).stdout)
    assert data["kind"] == "release"
    missing = run_alops("context", cwd=repo, env=clean_env(ALOPS_CONFIG=str(tmp_path / "nope.yaml")))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_the_primary_metric_is_declared_once(tmp_path):
    from alops.core.config import load_config

    (tmp_path / "alops.yaml").write_text("metric: {name: val_loss, direction: min, min_gain: 0.01}\n")
    metric = load_config(str(tmp_path)).metric
    assert (metric.name, metric.direction, metric.min_gain) == ("val_loss", "min", 0.01)
    (tmp_path / "alops.yaml").write_text("metric: val_accuracy\n")
    assert load_config(str(tmp_path)).metric.direction == "max"


@pytest.mark.parametrize("text, message", [
    ("metric: {name: acc, direction: up}\n", "metric.direction"),
    ("metric: {name: acc, min_gain: -1}\n", "metric.min_gain"),
    ("metric: {name: acc, gain: 1}\n", "unknown key 'gain'"),
    ("metric: [acc]\n", "metric: expected a name"),
])
def test_a_bad_primary_metric_is_one_line(tmp_path, text, message):
    from alops.core.config import load_config

    (tmp_path / "alops.yaml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(str(tmp_path))


def test_the_experiment_name_does_not_depend_on_the_clones_folder(tmp_path, monkeypatch):
    """alops.yaml's project first; without it the origin remote's repository name (a URL, not a local path);
    the folder's name only when there is neither."""
    from alops.core.project import Project

    for name in ("CI_PROJECT_NAME", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    clone = tmp_path / "digits-copy-2"
    clone.mkdir()
    git(clone, "init", "-q")
    (clone / "alops.yaml").write_text("default_branch: main\n")
    git(clone, "remote", "add", "origin", "git@gitlab.example.com:team/digits.git")
    assert Project.open(str(clone)).name == "digits"
    git(clone, "remote", "set-url", "origin", "https://github.com/team/digits")
    assert Project.open(str(clone)).name == "digits"
    git(clone, "remote", "set-url", "origin", str(tmp_path / "bare.git"))
    assert Project.open(str(clone)).name == "digits-copy-2"
    (clone / "alops.yaml").write_text("project: digits-classifier\n")
    assert Project.open(str(clone)).name == "digits-classifier"
    (clone / "alops.yaml").write_text("project: ../escape\n")
    with pytest.raises(ConfigError, match=r"project: '\.\./escape' is not a project name"):
        Project.open(str(clone))
