"""`alops init`: wire an existing git (and DVC) repository to alops without touching what it has.

Detects the pipeline (stages, params, metrics, plots), the tracked data and the forge, then plans the files
alops needs: alops.yaml, a params schema inferred from params.yaml, the CI file of each forge (rendered from
the scaffold's own templates) and the .gitignore lines. An existing file is never replaced without `force`;
planning twice on an adopted repository changes nothing. The plan ends with what the team must still do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from alops import __version__
from alops.data import tracked_data
from alops.errors import ConfigError
from alops.git import git

GITIGNORE_LINES = ("mlflow.db", "mlartifacts/", ".alops/", "report.md", "report.json", "learning_curve.png",
                   "plot-*.png", "release.json", "selection*.json", "labeling/")
COMPONENT_PATH = "gitlab.com/alops/alops"
WORKFLOW_REPO = "alops/alops"


@dataclass
class Change:
    """One file of the plan: what it will contain and what happens to it."""

    path: str  # relative to the repository root
    content: str
    action: str  # create, replace, append, unchanged, kept (exists and differs; --force replaces)


@dataclass
class Plan:
    root: str
    forge: str
    changes: list[Change] = field(default_factory=list)
    checklist: list[str] = field(default_factory=list)
    found: dict[str, list[str]] = field(default_factory=dict)


def detect_forge(root: str) -> str:
    """gitlab or github from the origin remote's URL; both when it says neither."""
    url = git(root, "remote", "get-url", "origin", check=False).stdout.strip().lower()
    if "github" in url:
        return "github"
    if "gitlab" in url:
        return "gitlab"
    return "both"


def infer_schema(params: dict) -> str:
    """params.schema.yaml text: each parameter's type, with its current value as a comment to bound it by."""
    from alops.params import flatten

    lines = ["# the allowed values of each parameter (written by `alops init` from params.yaml): add min/max,",
             "# allowed or values where you know them; `alops params check` runs before every pipeline"]
    for name, value in sorted(flatten(params).items()):
        if name == "dataset":
            lines.append("dataset: {type: str, allowed: [dev, full]}")
            continue
        kind = {bool: "bool", int: "int", float: "float"}.get(type(value), "str")
        if kind == "str" and not isinstance(value, str):
            continue  # lists and other values: not checked
        lines.append(f"{name}: {{type: {kind}}}  # now {value!r}")
    return "\n".join(lines) + "\n"


def _render_scaffold_file(relative: str, forge: str, version: str) -> str:
    import jinja2

    from alops.scaffold import template_dir

    path = os.path.join(template_dir(), "{{cookiecutter.project_slug}}", relative)
    with open(path, encoding="utf-8") as handle:
        template = jinja2.Environment(keep_trailing_newline=True).from_string(handle.read())
    return template.render(cookiecutter={"alops_version": version, "gitlab_component_path": COMPONENT_PATH,
                                         "github_workflow_repo": WORKFLOW_REPO, "forge": forge})


def _alops_yaml(full: str, dev: str, rows: list[str]) -> str:
    text = ("# alops for this repository (written by `alops init`); see docs/adopt.md\n"
            "default_branch: main\n"
            "data:\n"
            f"  full: {full}\n"
            f"  dev: {dev}\n")
    if rows:
        text += (f"  rows: [{', '.join(json.dumps(r) for r in rows)}]  # row files `alops data make-dev` samples\n"
                 "  label: label  # their label column: change it to yours\n")
    return text


def _row_files(folder: str) -> list[str]:
    """Row files directly in a dataset folder without a manifest (what data.rows would name)."""
    from alops.manifest import ROW_FILE_SUFFIXES

    if not os.path.isdir(folder) or os.path.exists(os.path.join(folder, "manifest.csv")):
        return []
    return sorted(n for n in os.listdir(folder) if n.endswith(ROW_FILE_SUFFIXES))


def plan_init(root: str, forge: str | None = None, version: str | None = None, force: bool = False) -> Plan:
    """What `alops init` would write in the repository at `root`, and the checklist after it."""
    from alops.config import CONFIG_NAME, load_config
    from alops.params import PARAMS_FILE, SCHEMA_FILE, load_params
    from alops.project import Project

    if git(root, "rev-parse", "--show-toplevel", check=False).returncode != 0:
        raise ConfigError(f"{root} is not a git repository: run `git init` first (or `alops new` for a new project)")
    plan = Plan(root, forge or detect_forge(root))
    if plan.forge not in ("gitlab", "github", "both"):
        raise ConfigError(f"--forge {plan.forge!r}: expected gitlab, github or both")
    project = Project(root, load_config(root))
    pipeline = project.pipeline if os.path.isfile(os.path.join(root, "dvc.yaml")) else None
    stages = list((pipeline or {}).get("stages") or {})
    data = [path for path, _digest in tracked_data(root)]
    plan.found = {"stages": stages, "tracked data": data}
    full = next((d for d in data if not d.rstrip("/").endswith("dev")), "data/full")
    full_folder = full if os.path.isdir(os.path.join(root, full)) else os.path.dirname(full) or "data"
    dev = os.path.join(os.path.dirname(full_folder), "dev") if os.path.dirname(full_folder) else "data/dev"
    if dev == full_folder or dev.startswith(full_folder.rstrip("/") + "/"):
        dev = full_folder.rstrip("/") + "-dev"
    rows = _row_files(os.path.join(root, full_folder))
    plan.found["row files"] = rows
    wanted = [(CONFIG_NAME, _alops_yaml(full_folder, dev, rows))]
    if os.path.isfile(os.path.join(root, PARAMS_FILE)):
        wanted.append((SCHEMA_FILE, infer_schema(load_params(root))))
    version = version or __version__
    if plan.forge in ("gitlab", "both"):
        wanted.append((".gitlab-ci.yml", _render_scaffold_file(".gitlab-ci.yml", plan.forge, version)))
    if plan.forge in ("github", "both"):
        wanted.append((".github/workflows/alops.yml", _render_scaffold_file(".github/workflows/ci.yml", plan.forge, version)))
        wanted.append((".github/zizmor.yml", _render_scaffold_file(".github/zizmor.yml", plan.forge, version)))
    for relative, content in wanted:
        path = os.path.join(root, relative)
        if not os.path.exists(path):
            plan.changes.append(Change(relative, content, "create"))
        else:
            with open(path, encoding="utf-8") as handle:
                same = handle.read() == content
            plan.changes.append(Change(relative, content, "unchanged" if same else "replace" if force else "kept"))
    plan.changes.append(_gitignore_change(root))
    plan.checklist = _checklist(project, plan, pipeline, data, dev, rows)
    return plan


def _gitignore_change(root: str) -> Change:
    path = os.path.join(root, ".gitignore")
    existing = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            existing = handle.read()
    present = {line.strip() for line in existing.splitlines()}
    missing = [line for line in GITIGNORE_LINES if line not in present]
    if not missing:
        return Change(".gitignore", existing, "unchanged")
    separator = "" if not existing or existing.endswith("\n") else "\n"
    return Change(".gitignore", existing + separator + "# alops\n" + "\n".join(missing) + "\n", "append")


def _checklist(project, plan: Plan, pipeline, data: list[str], dev: str, rows: list[str]) -> list[str]:
    from alops.pipeline import reads_dataset_choice

    root, todo = project.root, []
    if not os.path.isdir(os.path.join(root, ".dvc")):
        todo.append("run `dvc init` and track the data with `dvc add` (alops pulls and versions data through DVC)")
    if pipeline is None:
        todo.append("describe the pipeline's stages in dvc.yaml (alops runs them with `dvc repro`)")
    else:
        if not reads_dataset_choice(project):
            todo.append(f"make a stage read the dataset choice: list `dataset` under its params and read "
                        f"`data/${{dataset}}` (alops sets dataset: dev|full per branch; the dev data lives in {dev})")
    if not data:
        todo.append("track the full dataset with DVC (`dvc add`) and push it to a DVC remote")
    if rows:
        todo.append(f"set data.label in alops.yaml to the label column of {', '.join(rows)}, then sample the dev "
                    f"dataset into {dev}: `alops data make-dev --fraction 0.05` (docs/data.md, row files)")
    else:
        todo.append(f"create the dev dataset in {dev} (docs/adopt.md: `alops data make-dev` samples a manifest or "
                    "row files; data.dev_stage runs your own sampler stage)")
    if not os.path.isfile(os.path.join(root, "requirements.txt")):
        todo.append("list the project's own dependencies in requirements.txt (every CI job installs it)")
    if any(c.action == "kept" and c.path.endswith((".gitlab-ci.yml", "alops.yml")) for c in plan.changes):
        todo.append("your CI file exists and was kept: add the alops include / uses: line from docs/adopt.md to it")
    todo.append("set the forge token (GITLAB_TOKEN or the workflow's permissions) and MLFLOW_TRACKING_URI as CI "
                "variables (docs/operations.md)")
    return todo


def apply_plan(plan: Plan) -> list[Change]:
    """Write the plan's create/replace/append changes (each whole or not at all); the changes written."""
    from alops.files import atomic_write

    written = [c for c in plan.changes if c.action in ("create", "replace", "append")]
    for change in written:
        atomic_write(os.path.join(plan.root, change.path), change.content)
    return written
