"""`alops.yaml`: the project's overrides of branch patterns and profiles, validated.

    default_branch: main            # optional; else from CI variables or origin/HEAD
    branches:                       # glob patterns per kind (a string or a list)
      feature: [feature/*, fix/*]
      active-learning: al/*
    profiles:                       # per-kind changes to the default profiles
      experiment: {device: auto}
    data:                           # where the datasets live (folders tracked by DVC)
      full: data/full
      dev: data/dev
      manifest: manifest.csv        # the manifest's file name inside each dataset folder
      rows: ['*.csv']               # instead of a manifest: row files (CSV, Parquet, JSON Lines) to sample
      label: sentiment              # the label column of row files (default: label)
      dev_stage: make_dev           # instead of sampling: the dvc.yaml stage that writes the dev dataset
      classes: [cat, dog]           # optional: the labels a manifest may use
      check_dev_use: true           # refuse dev runs when no stage reads `dataset` (false: run anyway)
    metric:                         # the primary metric: report's first row, release gate
      name: val_accuracy
      direction: max                # or min
      min_gain: 0.0                 # smallest gain over the champion a release needs
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

from alops.core.branches import (
    DEFAULT_PATTERNS,
    DEFAULT_PROFILES,
    KINDS,
    PATTERN_KINDS,
    PROFILE_CHOICES,
    BranchSettings,
    pattern_problem,
)
from alops.core.errors import ConfigError

CONFIG_NAME = "alops.yaml"
CONFIG_ENV = "ALOPS_CONFIG"
TOP_LEVEL_KEYS = ("project", "default_branch", "branches", "profiles", "data", "metric")
PROJECT_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
METRIC_KEYS = ("name", "direction", "min_gain")
DATA_KEYS = ("full", "dev", "manifest", "rows", "label", "dev_stage", "classes", "check_dev_use")


@dataclass(frozen=True)
class DataSettings:
    """Dataset folders (relative to the project root) and the manifest's file name."""

    full: str = "data/full"
    dev: str = "data/dev"
    manifest: str = "manifest.csv"
    rows: tuple[str, ...] | None = None  # glob patterns of row files inside the dataset folder (no manifest)
    label: str = "label"  # the label column (row files name theirs; a manifest's is `label`)
    dev_stage: str | None = None  # a dvc.yaml stage that writes the dev dataset (the project's own sampler)
    classes: tuple[str, ...] | None = None
    check_dev_use: bool = True  # refuse a dev run whose pipeline never reads the dataset choice


@dataclass(frozen=True)
class PrimaryMetric:
    """The metric a project is judged by: the report's first row, the release gate, select-best."""

    name: str
    direction: str = "max"
    min_gain: float = 0.0
    implied: bool = False  # not named in alops.yaml: taken from the metric's name (alops.report.merge_request)


@dataclass(frozen=True)
class ProjectConfig:
    """Everything `alops.yaml` configures; `root` is the folder holding it (None: no file)."""

    branches: BranchSettings = field(default_factory=BranchSettings)
    data: DataSettings = field(default_factory=DataSettings)
    root: str | None = None
    metric: PrimaryMetric | None = None
    project: str | None = None  # the name tracking experiments carry (`<project>/<kind>`), whatever the clone's folder


def find_config(start: str | None = None) -> str | None:
    """`$ALOPS_CONFIG`, else the nearest `alops.yaml` from `start` up to the repository root."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        if not os.path.isfile(explicit):
            raise ConfigError(f"{CONFIG_ENV}={explicit}: no such file; point it at the project's alops.yaml")
        return explicit
    folder = os.path.realpath(start or os.getcwd())
    while True:
        candidate = os.path.join(folder, CONFIG_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if os.path.exists(os.path.join(folder, ".git")) or parent == folder:
            return None
        folder = parent


def _choices(values: tuple) -> str:
    return ", ".join("true" if v is True else "false" if v is False else str(v) for v in values)


def _type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _unknown_key(where: str, key: object, allowed: tuple) -> ConfigError:
    return ConfigError(f"{where}: unknown key {key!r} (expected one of: {', '.join(allowed)})")


def _parse_patterns(path: str, raw: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: branches: expected a mapping of kind to patterns, got {_type_name(raw)}")
    patterns = dict(DEFAULT_PATTERNS)
    owner: dict[str, str] = {}
    for kind, value in raw.items():
        if kind not in PATTERN_KINDS:
            raise _unknown_key(f"{path}: branches", kind, PATTERN_KINDS)
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: branches.{kind}: expected a pattern or a list of patterns, got {_type_name(value)}")
        for pattern in values:
            problem = pattern_problem(pattern)
            if problem:
                raise ConfigError(f"{path}: branches.{kind}: {pattern!r} is not a branch pattern (expected {problem})")
        patterns[kind] = tuple(values)
    for kind in PATTERN_KINDS:
        for pattern in patterns[kind]:
            if pattern in owner:
                raise ConfigError(f"{path}: branches.{kind}: pattern {pattern!r} is also given for {owner[pattern]}")
            owner[pattern] = kind
    return patterns


def _parse_profiles(path: str, raw: object) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: profiles: expected a mapping of kind to profile fields, got {_type_name(raw)}")
    profiles = dict(DEFAULT_PROFILES)
    for kind, fields in raw.items():
        if kind not in KINDS:
            raise _unknown_key(f"{path}: profiles", kind, KINDS)
        if not isinstance(fields, dict):
            raise ConfigError(f"{path}: profiles.{kind}: expected a mapping of profile fields, got {_type_name(fields)}")
        for key, value in fields.items():
            if key not in PROFILE_CHOICES:
                raise _unknown_key(f"{path}: profiles.{kind}", key, tuple(PROFILE_CHOICES))
            allowed = PROFILE_CHOICES[key]
            if not any(value is choice or (type(value) is type(choice) and value == choice) for choice in allowed):
                raise ConfigError(
                    f"{path}: profiles.{kind}.{key}: {value!r} is not allowed (expected one of: {_choices(allowed)})"
                )
        profiles[kind] = replace(profiles[kind], **fields)
    return profiles


def _parse_data(path: str, raw: object) -> DataSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: data: expected a mapping with keys {', '.join(DATA_KEYS)}, got {_type_name(raw)}")
    values: dict = {}
    for key, value in raw.items():
        if key not in DATA_KEYS:
            raise _unknown_key(f"{path}: data", key, DATA_KEYS)
        if key == "check_dev_use":
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: data.check_dev_use: expected true or false, got {value!r}")
            values[key] = value
        elif key == "rows":
            patterns = [value] if isinstance(value, str) else value
            if (not isinstance(patterns, list) or not patterns
                    or any(not isinstance(p, str) or not p or os.path.isabs(p) or ".." in p.split("/") for p in patterns)):
                raise ConfigError(f"{path}: data.rows: expected glob patterns inside the dataset folder, "
                                  "e.g. ['*.csv'] or [train.parquet, test.parquet]")
            values[key] = tuple(patterns)
        elif key in ("label", "dev_stage"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}: data.{key}: expected a name, got {value!r}")
            values[key] = value
        elif key == "classes":
            if not isinstance(value, list) or not value or any(isinstance(v, (dict, list)) or v is None for v in value):
                raise ConfigError(f"{path}: data.classes: expected a non-empty list of labels, got {_type_name(value)}")
            values[key] = tuple(str(v) for v in value)
        elif not isinstance(value, str) or not value or os.path.isabs(value) or ".." in value.split("/"):
            raise ConfigError(f"{path}: data.{key}: {value!r} is not a relative path inside the project")
        else:
            values[key] = value.rstrip("/")
    settings = DataSettings(**values)
    full, dev = (os.path.normpath(p) for p in (settings.full, settings.dev))
    if "." in (full, dev) or full == dev or full.startswith(dev + "/") or dev.startswith(full + "/"):
        raise ConfigError(f"{path}: data.full {settings.full!r} and data.dev {settings.dev!r} must be two separate "
                          "folders inside the project, neither the project root nor one inside the other")
    return settings


def _parse_metric(path: str, raw: object) -> PrimaryMetric:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ConfigError(f"{path}: metric: expected a name, or {{name: val_accuracy, direction: max, min_gain: 0.005}}")
    for key in raw:
        if key not in METRIC_KEYS:
            raise _unknown_key(f"{path}: metric", key, METRIC_KEYS)
    direction = raw.get("direction", "max")
    if direction not in ("max", "min"):
        raise ConfigError(f"{path}: metric.direction: {direction!r} is not allowed (expected one of: max, min)")
    gain = raw.get("min_gain", 0.0)
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain >= 0:
        raise ConfigError(f"{path}: metric.min_gain: {gain!r} is not a number >= 0")
    return PrimaryMetric(raw["name"], direction, float(gain))


def parse_settings(path: str, raw: object) -> ProjectConfig:
    """Validate the parsed content of `alops.yaml`; every error names the file and key."""
    root = os.path.dirname(os.path.abspath(path))
    if raw is None:
        return ProjectConfig(root=root)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}, got {_type_name(raw)}")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise _unknown_key(path, key, TOP_LEVEL_KEYS)
    default_branch = raw.get("default_branch")
    if default_branch is not None and (not isinstance(default_branch, str) or pattern_problem(default_branch) or "*" in default_branch):
        raise ConfigError(f"{path}: default_branch: {default_branch!r} is not a branch name (expected e.g. main)")
    branches = BranchSettings(
        patterns=_parse_patterns(path, raw["branches"]) if "branches" in raw else dict(DEFAULT_PATTERNS),
        profiles=_parse_profiles(path, raw["profiles"]) if "profiles" in raw else dict(DEFAULT_PROFILES),
        default_branch=default_branch,
    )
    project = raw.get("project")
    if project is not None and not (isinstance(project, str) and re.fullmatch(PROJECT_NAME, project)):
        raise ConfigError(f"{path}: project: {project!r} is not a project name (letters, digits, _ . -; e.g. digits)")
    data = _parse_data(path, raw["data"]) if "data" in raw else DataSettings()
    metric = _parse_metric(path, raw["metric"]) if "metric" in raw else None
    return ProjectConfig(branches=branches, data=data, root=root, metric=metric, project=project)


def load_config(start: str | None = None) -> ProjectConfig:
    """The project's configuration: defaults merged with the nearest `alops.yaml`."""
    path = find_config(start)
    if path is None:
        return ProjectConfig()
    import yaml  # only when there is a file to read

    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_settings(path, raw)
