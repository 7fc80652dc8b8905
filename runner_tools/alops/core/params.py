"""`params.yaml` and its allowed values (`params.schema.yaml`): validation and configuration matrices.

    # params.schema.yaml: one entry per (dotted) parameter
    train.lr:     {type: float, min: 0.00001, max: 1.0, values: [0.001, 0.01]}   # values: tried by the matrix
    train.epochs: {type: int, min: 1}
    model.arch:   {type: str, allowed: [cnn, mlp]}
    dataset:      {type: str, allowed: [dev, full]}
"""

from __future__ import annotations

import itertools
import math
import os
import random
import re

from alops.core.errors import ConfigError

PARAMS_FILE = "params.yaml"
SCHEMA_FILE = "params.schema.yaml"
MOST_JOBS = 200  # GitLab's most jobs of one `parallel:`
TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}
RULE_KEYS = ("type", "allowed", "min", "max", "values", "required", "allow_nonfinite")


def _load_yaml(path: str):
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{path}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text: save it as UTF-8") from None


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}"""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def is_seed(name: str) -> bool:
    """Whether a dotted params.yaml key is a seed: named `seed`."""
    return name.rpartition(".")[2] == "seed"


def seed_keys(params: dict) -> list[str]:
    """The dotted params.yaml keys named `seed`."""
    return sorted(name for name in flatten(params) if is_seed(name))


def without_seeds(params: dict[str, str]) -> dict[str, str]:
    """Flat params but their seeds: what the runs of one candidate share."""
    return {name: value for name, value in params.items() if not is_seed(name)}


def load_params(root: str) -> dict:
    path = os.path.join(root, PARAMS_FILE)
    if not os.path.exists(path):
        return {}
    params = _load_yaml(path) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of parameters")
    return params


def load_schema(root: str) -> dict | None:
    path = os.path.join(root, SCHEMA_FILE)
    if not os.path.exists(path):
        return None
    schema = _load_yaml(path) or {}
    if not isinstance(schema, dict):
        raise ConfigError(f"{path}: expected a mapping of parameter name to rules")
    for name, rules in schema.items():
        if not isinstance(rules, dict):
            raise ConfigError(f"{path}: {name}: expected rules such as {{type: float, min: 0}}")
        unknown = set(rules) - set(RULE_KEYS)
        if unknown:
            raise ConfigError(f"{path}: {name}: unknown rule {sorted(unknown)[0]!r} (expected one of: {', '.join(RULE_KEYS)})")
        if rules.get("type", "str") not in TYPES:
            raise ConfigError(f"{path}: {name}.type: {rules['type']!r} is not one of {', '.join(TYPES)}")
        for bound in ("min", "max"):
            if bound in rules and (isinstance(rules[bound], bool) or not isinstance(rules[bound], (int, float))):
                raise ConfigError(f"{path}: {name}.{bound}: {rules[bound]!r} is not a number")
        for listed in ("allowed", "values"):
            if listed in rules and not isinstance(rules[listed], list):
                raise ConfigError(f"{path}: {name}.{listed}: expected a list of values, got {rules[listed]!r}")
    return schema


def _describe(rules: dict) -> str:
    if "allowed" in rules:
        return "one of " + ", ".join(map(str, rules["allowed"]))
    bounds = [f">= {rules['min']}" if "min" in rules else "", f"<= {rules['max']}" if "max" in rules else ""]
    return " ".join(filter(None, [f"a {rules.get('type', 'str')}", *bounds]))


def value_problem(value, rules: dict) -> bool:
    expected = TYPES[rules.get("type", "str")]
    if isinstance(value, bool) and rules.get("type") != "bool":
        return True
    if not isinstance(value, expected):  # type: ignore[arg-type]  # TYPES maps names to classes or tuples
        return True
    if isinstance(value, float) and not math.isfinite(value) and not rules.get("allow_nonfinite", False):
        return True  # NaN passes every comparison, so min/max alone would let it through
    if "allowed" in rules and value not in rules["allowed"]:
        return True
    if "min" in rules and value < rules["min"]:
        return True
    return "max" in rules and value > rules["max"]


def closest(name: str, known) -> str:
    """`; did you mean 'x'?` for the nearest known name, or nothing."""
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def check(params: dict, schema: dict) -> list[str]:
    """One line per problem: key, value and the allowed values; keys the schema does not know."""
    flat = flatten(params)
    errors = [f"{name}: not in {SCHEMA_FILE} (a typo trains with the old value){closest(name, schema)}"
              for name, value in flat.items()
              if name not in schema and name != "dataset" and not isinstance(value, (list, dict))]  # scalars only
    for name, rules in schema.items():
        if name not in flat:
            if rules.get("required", name != "dataset"):  # alops sets `dataset` itself on every run
                errors.append(f"{name}: missing (expected {_describe(rules)})")
            continue
        if value_problem(flat[name], rules):
            errors.append(f"{name}: {flat[name]!r} is not allowed (expected {_describe(rules)})")
    return errors


def check_project(root: str) -> dict:
    """Validate the project's params.yaml against its schema; raises ConfigError listing every problem."""
    params, schema = load_params(root), load_schema(root)
    if schema is None:
        return params
    errors = check(params, schema)
    if errors:
        raise ConfigError(f"{PARAMS_FILE}: " + "; ".join(errors))
    return params


def matrix_axes(schema: dict) -> dict[str, list]:
    """The parameters a matrix spreads, with their values: each one that lists `values` (or `allowed`) but the
    dataset (the branch's to choose)."""
    axes = {name: rules.get("values", rules.get("allowed")) for name, rules in schema.items()}
    return {name: values for name, values in axes.items() if values and name != "dataset"}


def matrix(schema: dict, sample: int | None = None, seed: int = 0) -> list[dict]:
    """The allowed combinations of every parameter that lists `values` (or `allowed`), optionally a sample."""
    axes = matrix_axes(schema)
    for name, values in axes.items():
        for value in values:
            if value_problem(value, schema[name]):
                raise ConfigError(f"{SCHEMA_FILE}: {name}.values: {value!r} breaks its own rules ({_describe(schema[name])})")
    names = sorted(axes)
    combos = [dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]
    if sample is not None and sample < len(combos):
        combos = random.Random(seed).sample(combos, sample)
    return combos


def variable_name(param: str) -> str:
    """The CI variable carrying a parameter: train.lr -> PARAM_TRAIN_LR."""
    return "PARAM_" + "".join(c if c.isalnum() else "_" for c in param).upper()


def job_share(spec: str, option: str) -> tuple[int, int]:
    """(I, N) of a CI job's share `I/N` (GitLab's CI_NODE_INDEX/CI_NODE_TOTAL): `--candidate`, `--seed-share`."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec or "")
    if not found or not 1 <= int(found[1]) <= int(found[2]) <= MOST_JOBS:
        raise ConfigError(f"{option} {spec!r}: expected I/N with 1 <= I <= N <= {MOST_JOBS}, e.g. 2/3")
    return int(found[1]), int(found[2])


def gitlab_matrix(combos: list[dict]) -> list[dict]:
    """`parallel: matrix:` entries: one entry per combination, each variable with a one-value list."""
    return [{variable_name(k): [str(v)] for k, v in combo.items()} for combo in combos]


def github_matrix(combos: list[dict]) -> dict:
    """`strategy.matrix` for `fromJSON()`: include one object per combination."""
    return {"include": [{k: v for k, v in combo.items()} for combo in combos]}


def parse_assignment(text: str) -> tuple[str, object]:
    """'train.lr=0.01' -> ('train.lr', 0.01): the value is read as YAML (numbers, booleans, text)."""
    import yaml

    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return name, value


def check_assignments(params: dict, schema: dict | None, sets: dict) -> None:
    """Refuse `--set` keys that neither the schema nor params.yaml knows, naming the closest one."""
    known = set(schema) if schema is not None else set(flatten(params))
    for name in sets:
        if name not in known and name != "dataset":
            raise ConfigError(f"--set {name}: no such parameter{closest(name, known)}")


def set_nested(tree: dict, dotted: str, value) -> None:
    """Set `a.b.c` in a nested mapping, creating the mappings on the way."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(tree.get(part), dict):
            tree[part] = {}
        tree = tree[part]
    tree[leaf] = value


def set_params(root: str, updates: dict) -> None:
    """Write dotted `updates` into params.yaml, keeping its comments and order; atomic."""
    from ruamel.yaml import YAML

    from alops.core.files import atomic_path

    yaml = YAML()
    path = os.path.join(root, PARAMS_FILE)
    document: dict = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            document = yaml.load(handle) or {}
    for name, value in updates.items():
        set_nested(document, name, value)
    with atomic_path(path) as staged, open(staged.path, "w", encoding="utf-8") as out:
        yaml.dump(document, out)
