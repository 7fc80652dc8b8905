"""`alops init`: wire an existing git (and DVC) repository to alops without touching what it has.

Detects the pipeline (stages, params, metrics, plots), the tracked data and the forge, then plans the files
alops needs: alops.yaml, a params schema inferred from params.yaml, the CI file of each forge (rendered from
the scaffold's own templates) and the .gitignore lines. Each file alops writes starts with a stamp holding the
digest of the rest: while it matches, the file is alops' and `force` may refresh it; once the team edits it, or
for any file alops did not write, it is the team's and is never replaced. A team's own `.gitlab-ci.yml` gets the
component's include merged in (its jobs, `stages:` and comments kept; the component's stage set to one of its
stages). Planning twice on an adopted repository changes nothing. The plan ends with what the team must still do.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

from alops import __version__
from alops.core.errors import ConfigError
from alops.core.git import git
from alops.data.storage import tracked_data
from alops.setup.bootstrap import hidden_message, hiding_rules, in_git, resumable, setup_dvc

GITIGNORE_LINES = ("mlflow.db", "mlartifacts/", ".alops/", "report.md", "report.json", "learning_curve.png",
                   "plot-*.png", "release.json", "selection*.json", "labeling/")


STAMP = "# alops init {digest}: written by `alops init`; `alops init --force` refreshes it until you edit it\n"
_STAMP_LINE = re.compile(r"# alops init ([0-9a-f]{16}): ")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamped(content: str) -> str:
    """A file's content as alops writes it: the ownership stamp, then the content."""
    return STAMP.format(digest=_digest(content)) + content


def alops_owns(text: str) -> bool:
    """Whether a file is alops' own as written: its stamp's digest matches the rest (the team never edited it)."""
    first, _, rest = text.partition("\n")
    found = _STAMP_LINE.match(first)
    return found is not None and found.group(1) == _digest(rest)


@dataclass
class Change:
    """One file of the plan: what it will contain and what happens to it."""

    path: str  # relative to the repository root
    content: str
    action: str  # create, replace (alops' own, with force), merge, append, unchanged, kept


@dataclass
class Plan:
    root: str
    forge: str
    changes: list[Change] = field(default_factory=list)
    checklist: list[str] = field(default_factory=list)
    found: dict[str, list[str]] = field(default_factory=dict)
    dvc_setup: tuple[str, str] | None = None  # (data folder, remote URL): DVC set up for a repository without it
    data_in_git: list[str] = field(default_factory=list)  # files of that folder git tracks: they move to DVC
    proposed: list = field(default_factory=list)  # stages.ProposedStage read from the Makefile (no dvc.yaml yet)


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
    from alops.core.params import flatten

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


def _render_scaffold_file(relative: str, forge: str, version: str, kit: tuple[str, str]) -> str:
    import jinja2

    from alops.setup.scaffold import template_dir

    path = os.path.join(template_dir(), "{{cookiecutter.project_slug}}", relative)
    with open(path, encoding="utf-8") as handle:
        template = jinja2.Environment(keep_trailing_newline=True).from_string(handle.read())
    return template.render(cookiecutter={"alops_version": version, "gitlab_component_path": kit[0],
                                         "github_workflow_repo": kit[1], "forge": forge})


def repository_default_branch(root: str) -> str:
    """The repository's default branch: origin's HEAD, else a local main or master, else the branch checked out."""
    remote = git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", check=False).stdout.strip()
    if remote.startswith("origin/"):
        return remote.removeprefix("origin/")
    for usual in ("main", "master"):
        if git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{usual}", check=False).returncode == 0:
            return usual
    return git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip() or "main"


def _alops_yaml(name: str, full: str, dev: str, rows: list[str], default_branch: str) -> str:
    text = ("# alops for this repository (written by `alops init`); see docs/adopt.md\n"
            f"project: {name}  # tracking experiments are <project>/<branch kind>, whatever a clone's folder\n"
            f"default_branch: {json.dumps(default_branch)}  # read from the repository (origin's HEAD, else main or master)\n"
            "data:\n"
            f"  full: {full}\n"
            f"  dev: {dev}\n")
    if rows:
        text += (f"  rows: [{', '.join(json.dumps(r) for r in rows)}]  # row files `alops data make-dev` samples\n"
                 "  label: label  # their label column: change it to yours\n")
    return text


def _row_files(folder: str) -> list[str]:
    """Row files directly in a dataset folder without a manifest (what data.rows would name)."""
    from alops.data.manifest import ROW_FILE_SUFFIXES

    if not os.path.isdir(folder) or os.path.exists(os.path.join(folder, "manifest.csv")):
        return []
    return sorted(n for n in os.listdir(folder) if n.endswith(ROW_FILE_SUFFIXES))


def plan_init(root: str, forge: str | None = None, version: str | None = None, force: bool = False,
              gitlab_kit: str | None = None, github_kit: str | None = None, dvc_remote: str | None = None,
              stages_from_makefile: bool = False) -> Plan:
    """What `alops init` would write in the repository at `root`, and the checklist after it."""
    from alops.core.config import CONFIG_NAME, load_config
    from alops.core.params import PARAMS_FILE, SCHEMA_FILE, load_params
    from alops.core.project import Project
    from alops.setup.scaffold import kit_addresses

    kit = kit_addresses(gitlab_kit, github_kit)

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
    layout = next((c for c in ("data/raw", "data/full") if os.path.isdir(os.path.join(root, c))), "data/full")
    full = next((d for d in data if not d.rstrip("/").endswith("dev")), layout)  # data/raw: cookiecutter-data-science
    full_folder = full if os.path.isdir(os.path.join(root, full)) else os.path.dirname(full) or "data"
    dev = os.path.join(os.path.dirname(full_folder), "dev") if os.path.dirname(full_folder) else "data/dev"
    if dev == full_folder or dev.startswith(full_folder.rstrip("/") + "/"):
        dev = full_folder.rstrip("/") + "-dev"
    if dvc_remote is not None:
        if os.path.isdir(os.path.join(root, ".dvc")) and not resumable(root, dvc_remote):
            raise ConfigError("--dvc-remote sets DVC up, and this repository has it (.dvc): add a remote with "
                              "`dvc remote add -d storage URL` instead")
        hidden = hiding_rules(root, [full_folder + ".dvc"])
        if hidden:
            raise ConfigError(hidden_message(*hidden[0]) + ", then run alops init --dvc-remote again")
        plan.dvc_setup = (full_folder, dvc_remote)
        plan.data_in_git = in_git(root, full_folder)
    rows = _row_files(os.path.join(root, full_folder))
    plan.found["row files"] = rows
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", project.name).strip("-._") or "project"
    wanted = [(CONFIG_NAME, _alops_yaml(name, full_folder, dev, rows, repository_default_branch(root)))]
    wanted += _proposed_stages(plan, pipeline, full_folder, dev, stages_from_makefile)
    if os.path.isfile(os.path.join(root, PARAMS_FILE)):
        wanted.append((SCHEMA_FILE, infer_schema(load_params(root))))
    version = version or __version__
    if plan.forge in ("gitlab", "both"):
        wanted.append((".gitlab-ci.yml", _render_scaffold_file(".gitlab-ci.yml", plan.forge, version, kit)))
    if plan.forge in ("github", "both"):
        wanted.append((".github/workflows/alops.yml", _render_scaffold_file(".github/workflows/ci.yml", plan.forge, version, kit)))
        wanted.append((".github/zizmor.yml", _render_scaffold_file(".github/zizmor.yml", plan.forge, version, kit)))
    for relative, content in wanted:
        plan.changes.append(_change(root, relative, stamped(content), force, version, kit[0]))
    plan.changes.append(_gitignore_change(root))
    plan.checklist = _checklist(project, plan, pipeline, data, full_folder, dev, rows)
    return plan


def _proposed_stages(plan: Plan, pipeline, full: str, dev: str, write: bool) -> list[tuple[str, str]]:
    """Stages from the Makefile when there is no dvc.yaml (kept in `plan.proposed`); with `write`, the files
    that carry them: dvc.yaml, and params.yaml when there is none and a stage reads `${dataset_dir}`."""
    from alops.core.params import PARAMS_FILE
    from alops.setup.stages import propose, render

    makefile = os.path.join(plan.root, "Makefile")
    if pipeline is not None or not os.path.isfile(makefile):
        if write:
            raise ConfigError("--stages-from-makefile proposes stages where there is a Makefile and no dvc.yaml "
                              + ("(this repository has dvc.yaml)" if pipeline is not None else "(there is no Makefile)"))
        return []
    plan.proposed = propose(plan.root, makefile, full)
    if not write:
        return []
    if not plan.proposed:
        raise ConfigError("the Makefile runs no Python script of this repository (python path/to/script.py or "
                          "python -m module): write dvc.yaml yourself (docs/adopt.md, section 3)")
    files = [("dvc.yaml", render(plan.proposed))]
    if any(stage.reads_dataset for stage in plan.proposed) and not os.path.isfile(os.path.join(plan.root, PARAMS_FILE)):
        files.append((PARAMS_FILE, f"dataset: dev\ndataset_dir: {dev}  # alops run sets both per branch (data.dev or "
                                   "data.full of alops.yaml)\n"))
    return files


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; alops init leaves it as it is: convert it or move it aside") from None


def _change(root: str, relative: str, content: str, force: bool, version: str, component_path: str) -> Change:
    """What happens to one wanted file: created, left alone, refreshed (alops' own, with force) or merged."""
    path = os.path.join(root, relative)
    if not os.path.exists(path):
        return Change(relative, content, "create")
    existing = _read(path)
    if existing == content:
        return Change(relative, content, "unchanged")
    if alops_owns(existing):
        return Change(relative, content, "replace" if force else "kept")
    if relative == ".gitlab-ci.yml":
        merged = merge_gitlab_include(existing, version, component_path, relative)
        return Change(relative, existing, "unchanged") if merged is None else Change(relative, merged, "merge")
    return Change(relative, existing, "kept")  # the team's file: never replaced


class _GitLabLoader:
    """A YAML loader that reads GitLab CI files, their `!reference` and other tags included (as nothing)."""

    @staticmethod
    def load(text: str):
        import yaml

        loader: type[yaml.SafeLoader] = type("GitLabCiLoader", (yaml.SafeLoader,), {})
        loader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)
        return yaml.load(text, Loader=loader)


def merge_gitlab_include(text: str, version: str, component_path: str, name: str = ".gitlab-ci.yml") -> str | None:
    """The team's GitLab CI file with the alops component added to its `include:` as text, so every line of
    theirs stays as it is; None when it already includes the component. The component's stage is one the file
    defines. An `include:` that is not a block list gets a one-line error naming the entry to add by hand."""
    import yaml

    try:
        document = _GitLabLoader.load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML ({str(exc).splitlines()[0]}); fix it, then run alops init again") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{name}: not a mapping of jobs; add the include from docs/adopt.md by hand")
    include = document.get("include")
    entries = [] if include is None else include if isinstance(include, list) else [include]
    if any(isinstance(e, dict) and "/alops@" in str(e.get("component", "")) for e in entries):
        return None
    stages = document.get("stages")
    stage = str(stages[-1]) if isinstance(stages, list) and stages and "test" not in stages else None

    def entry(indent: str) -> list[str]:
        lines = [f"{indent}- component: {component_path}/alops@{version}", f"{indent}  inputs:",
                 f"{indent}    gpu-tags: [gpu]"]
        return lines + ([f"{indent}    stage: {json.dumps(stage)}  # one of this file's stages"] if stage else [])

    lines = text.splitlines()
    if include is None:
        top = 0
        while top < len(lines) and (not lines[top].strip() or lines[top].startswith("#")):
            top += 1
        added = ["include:  # the alops flow (added by `alops init`; see docs/adopt.md)", *entry("  "), ""]
        return "\n".join(lines[:top] + added + lines[top:]) + "\n"
    at = next((i for i, line in enumerate(lines) if re.match(r"include:\s*(#.*)?$", line)), None)
    following = next((line for line in lines[at + 1:] if line.strip() and not line.lstrip().startswith("#")), "") \
        if at is not None else ""
    indent = re.match(r"(\s*)- ", following)
    if at is None or indent is None:
        raise ConfigError(f"{name}: its include: is not a block list, so alops init leaves the file as it is; add "
                          f"`- component: {component_path}/alops@{version}` to it by hand (docs/adopt.md)")
    return "\n".join(lines[:at + 1] + entry(indent.group(1)) + lines[at + 1:]) + "\n"


def _gitignore_change(root: str) -> Change:
    path = os.path.join(root, ".gitignore")
    existing = _read(path) if os.path.exists(path) else ""
    present = {line.strip() for line in existing.splitlines()}
    missing = [line for line in GITIGNORE_LINES if line not in present]
    if not missing:
        return Change(".gitignore", existing, "unchanged")
    separator = "" if not existing or existing.endswith("\n") else "\n"
    return Change(".gitignore", existing + separator + "# alops\n" + "\n".join(missing) + "\n", "append")


def _checklist(project, plan: Plan, pipeline, data: list[str], full: str, dev: str, rows: list[str]) -> list[str]:
    from alops.runs.pipeline import reads_dataset_choice
    from alops.setup.scaffold import placeholders_in

    root, todo = project.root, []
    if not os.path.isdir(os.path.join(root, ".dvc")) and plan.dvc_setup is None:
        todo.append("set DVC up: `alops init --dvc-remote s3://bucket/path` runs dvc init, adds that remote and "
                    "`dvc add`s the data folder (alops pulls and versions data through DVC)")
    written = any(c.path == "dvc.yaml" and c.action == "create" for c in plan.changes)
    names = ", ".join(stage.name for stage in plan.proposed)
    if written:
        todo.append(f"review dvc.yaml: the stages {names} come from the Makefile's targets; add what a script reads or "
                    "writes without being told on its command line, then commit it")
        if any(s.reads_dataset for s in plan.proposed) and "dataset_dir" not in _params_text(root):
            todo.append(f"add `dataset_dir: {dev}` to params.yaml: the proposed stages read ${{dataset_dir}} "
                        "(alops run sets it per branch; docs/adopt.md, section 3)")
    elif pipeline is None and plan.proposed:
        todo.append(f"describe the pipeline's stages in dvc.yaml: `alops init --stages-from-makefile` proposes {names} "
                    "from the Makefile's targets for you to review (alops runs them with `dvc repro`)")
    elif pipeline is None:
        todo.append("describe the pipeline's stages in dvc.yaml (alops runs them with `dvc repro`)")
    else:
        if not reads_dataset_choice(project) and (full, dev) == ("data/full", "data/dev"):
            todo.append(f"make a stage read the dataset choice: list `dataset` under its params and read "
                        f"`data/${{dataset}}` (alops sets dataset: dev|full per branch; the dev data lives in {dev})")
        elif not reads_dataset_choice(project):
            todo.append(f"make a stage read the dataset's folder: add `dataset_dir: {dev}` to params.yaml, list "
                        f"`dataset_dir` under the stage's params and read `${{dataset_dir}}` (alops run sets it to "
                        f"{dev} or {full} per branch; docs/adopt.md, section 3)")
    if plan.dvc_setup:
        todo.append(f"commit what DVC wrote (.dvc/, {plan.dvc_setup[0]}.dvc) and push the data: `dvc push`")
    elif not data:
        todo.append("track the full dataset with DVC (`dvc add`) and push it to a DVC remote")
    todo += [hidden_message(path, rule) for path, rule in hiding_rules(root, [f"{d}.dvc" for d in data if not d.endswith(".dvc")])]
    has_dev = os.path.isdir(os.path.join(root, dev)) or os.path.exists(os.path.join(root, dev + ".dvc"))
    if rows and not has_dev:
        todo.append(f"set data.label in alops.yaml to the label column of {', '.join(rows)}, then sample the dev "
                    f"dataset into {dev}: `alops data make-dev --fraction 0.05` (docs/data.md, row files)")
    elif not has_dev:
        todo.append(f"create the dev dataset in {dev} (docs/adopt.md: `alops data make-dev` samples a manifest or "
                    "row files; data.dev_stage runs your own sampler stage)")
    if not os.path.isfile(os.path.join(root, "requirements.txt")):
        elsewhere = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "*", "requirements*.txt"))
                           + glob.glob(os.path.join(root, "requirements", "*.txt")))
        todo.append(f"your dependencies are in {elsewhere[0]}: set the templates' `requirements` input to it (every CI "
                    "job installs that file; docs/install.md)" if elsewhere else
                    "list the project's own dependencies in requirements.txt (every CI job installs it)")
    if any(c.action == "kept" and c.path.endswith((".gitlab-ci.yml", "alops.yml")) for c in plan.changes):
        todo.append("your CI file exists and was kept: add the alops include / uses: line from docs/adopt.md to it")
    ci_text = "".join(c.content for c in plan.changes if c.path in (".gitlab-ci.yml", ".github/workflows/alops.yml"))
    for placeholder, option in placeholders_in(ci_text):
        todo.append(f"point the CI file at the kit on your forge: it names the placeholder {placeholder} "
                    f"(`alops init {option} ...` for alops' own file, or edit the address; docs/install.md#building-the-wheel)")
    todo.append("set the forge token (GITLAB_TOKEN or the workflow's permissions) and MLFLOW_TRACKING_URI as CI "
                "variables (docs/operations.md)")
    return todo


def _params_text(root: str) -> str:
    from alops.core.params import PARAMS_FILE

    path = os.path.join(root, PARAMS_FILE)
    return _read(path) if os.path.isfile(path) else "dataset_dir"  # none: alops writes it with the key


def apply_plan(plan: Plan) -> list[Change]:
    """Write the plan's create/replace/append changes (each whole or not at all); the changes written."""
    from alops.core.files import atomic_write

    if plan.dvc_setup:
        setup_dvc(plan.root, *plan.dvc_setup)
    written = [c for c in plan.changes if c.action in ("create", "replace", "merge", "append")]
    for change in written:
        atomic_write(os.path.join(plan.root, change.path), change.content)
    return written
