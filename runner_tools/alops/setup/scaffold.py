"""`alops new`: a project from the kit's cookiecutter template, wired to alops, DVC and the chosen forge.

The template renders into a temporary folder beside the target, which is renamed into place only when every
step (hooks included) succeeded: a refused option or a failed hook leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from alops import __version__
from alops.core.errors import AlopsError, ConfigError
from alops.core.git import git, identity_args

FORGES = ("gitlab", "github", "both")
EXAMPLES = ("none", "digits")
SLUG = re.compile(r"[a-z][a-z0-9_]{0,63}")
CLASS = re.compile(r"[\w.\-]{1,64}")
REPOSITORY = re.compile(r"[a-z][a-z0-9_\-]{0,63}")
NAME = re.compile(r"[\w .,'()&+\-]{1,100}")  # shown in the README; never template syntax ({ } %)
REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-+]{0,99}")
# Where the kit lives on the team's forge, written into the CI files. Until given, placeholders no one can
# mistake for the real thing (and that GitLab and GitHub cannot resolve).
GITLAB_KIT_PLACEHOLDER = "gitlab.example.com/your-group/alops"
GITHUB_KIT_PLACEHOLDER = "your-org/alops"
_GITLAB_KIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[A-Za-z0-9_][A-Za-z0-9_.-]*){2,}")
_GITHUB_KIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9_.-]{1,100}")


def kit_addresses(gitlab: str | None, github: str | None) -> tuple[str, str]:
    """The kit's GitLab project path (host/group/project) and GitHub repository (owner/repo), placeholders
    where not given; anything else is refused (it lands in YAML)."""
    if gitlab is not None and not _GITLAB_KIT.fullmatch(gitlab):
        raise ConfigError(f"--gitlab-kit {gitlab!r}: give the kit's project path on your GitLab, host/group/project "
                          "(e.g. gitlab.example.com/tools/alops)")
    if github is not None and not _GITHUB_KIT.fullmatch(github):
        raise ConfigError(f"--github-kit {github!r}: give the kit's repository on GitHub, owner/repo (e.g. acme/alops)")
    return gitlab or GITLAB_KIT_PLACEHOLDER, github or GITHUB_KIT_PLACEHOLDER


def placeholders_in(text: str) -> list[tuple[str, str]]:
    """(placeholder, the option that replaces it) for each kit placeholder the CI file text still names."""
    return [(placeholder, option) for placeholder, option in
            ((GITLAB_KIT_PLACEHOLDER, "--gitlab-kit"), (GITHUB_KIT_PLACEHOLDER, "--github-kit")) if f"{placeholder}/" in text]


def template_dir() -> str:
    """The cookiecutter template shipped in the package (`alops.scaffold_template`), or `$ALOPS_TEMPLATE`."""
    import importlib.util

    configured = os.environ.get("ALOPS_TEMPLATE")
    spec = None if configured else importlib.util.find_spec("alops.scaffold_template")
    folder = configured or (list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else "")
    if not os.path.isfile(os.path.join(folder, "cookiecutter.json")):
        raise ConfigError(f"no cookiecutter template at {folder}: set ALOPS_TEMPLATE to the kit's cookiecutter/ folder")
    return folder


def check_options(slug: str, forge: str, classes: str) -> None:
    """A clear error for an option the project cannot be made with."""
    if not SLUG.fullmatch(slug):
        raise ConfigError(f"project slug {slug!r} is not valid: use lowercase letters, digits and _, starting with a letter")
    if forge not in FORGES:
        raise ConfigError(f"forge {forge!r} is not one of {', '.join(FORGES)}")
    names = [c.strip() for c in classes.split(",")]
    if len(names) < 2 or len(set(names)) != len(names) or not all(CLASS.fullmatch(c) for c in names):
        raise ConfigError(f"classes {classes!r}: give two or more distinct names (letters, digits, _ . -), comma-separated")


def _run(folder: str, *command: str) -> None:
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise AlopsError(f"{' '.join(command[:3])} failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")


def finish_project(folder: str, forge: str, example: str, dvc_remote: str) -> None:
    """Keep the chosen forge's CI file and example, then git init, dvc init and the default DVC remote."""
    if forge == "github":
        os.remove(os.path.join(folder, ".gitlab-ci.yml"))
    if forge == "gitlab":
        shutil.rmtree(os.path.join(folder, ".github"))
    if example != "digits":
        shutil.rmtree(os.path.join(folder, "scripts"))
    _run(folder, "git", "init", "-q", "-b", "main")
    from dvc.exceptions import DvcException

    from alops.data.storage import init_with_remote

    try:
        init_with_remote(folder, dvc_remote)  # quietly: alops commits next
    except DvcException as exc:
        raise AlopsError(f"dvc init failed: {exc}") from None


def default_remote(target: str) -> str:
    """The DVC remote a project gets without --remote: a folder beside it, on this machine only."""
    return os.path.join(os.path.dirname(target), f"{os.path.basename(target)}-dvc-storage")


def new_project(path: str, name: str | None = None, forge: str = "gitlab", version: str | None = None,
                remote: str | None = None, classes: str = "0,1,2,3,4,5,6,7,8,9", example: str = "none",
                gitlab_kit: str | None = None, github_kit: str | None = None) -> str:
    """Render the project at `path` (new, empty, or a git repository with nothing else) and make its first
    commit; its absolute path."""
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    target = os.path.abspath(path)
    repository = os.path.basename(target.rstrip(os.sep))
    if not REPOSITORY.fullmatch(repository):
        raise ConfigError(f"project folder {repository!r} is not a valid name: use lowercase letters, digits, - and _, "
                          "starting with a letter")
    slug = repository.replace("-", "_")  # the Python-friendly name; the folder keeps the repository's name
    check_options(slug, forge, classes)
    if name is not None and not NAME.fullmatch(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, spaces and . , ' ( ) & + - (up to 100)")
    if version is not None and not REF.fullmatch(version):
        raise ConfigError(f"--version {version!r} is not a tag or commit (letters, digits, . _ - +)")
    component_path, workflow_repo = kit_addresses(gitlab_kit, github_kit)
    if example not in EXAMPLES:
        raise ConfigError(f"example {example!r} is not one of {', '.join(EXAMPLES)}")
    existing_repository = os.path.isdir(target) and os.listdir(target) == [".git"]
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)) and not existing_repository:
        raise ConfigError(f"{path} exists and is not empty: choose a new folder (an empty git repository is fine; "
                          "for a repository with files, see docs/adopt.md)")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise ConfigError(f"{parent} does not exist: create it first")
    context = {"project_name": name or repository, "project_slug": slug, "forge": forge, "classes": classes,
               "example": example, "dvc_remote": remote or default_remote(target),
               "alops_version": version or __version__, "gitlab_component_path": component_path,
               "github_workflow_repo": workflow_repo}
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{slug}-")
    try:
        cookiecutter(template_dir(), no_input=True, extra_context=context, output_dir=staging)
        made = os.path.join(staging, slug)
        if existing_repository:  # keep the repository's own .git (history, remotes); move the files in
            shutil.rmtree(os.path.join(made, ".git"))
            for name in os.listdir(made):
                os.rename(os.path.join(made, name), os.path.join(target, name))
        else:
            if os.path.isdir(target):
                os.rmdir(target)  # empty, checked above
            os.rename(made, target)
    except CookiecutterException as exc:
        raise AlopsError(f"the project template failed: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    git(target, "add", "-A")
    git(target, *identity_args(target), "commit", "-q", "-m", f"New alops project {repository} (alops new)")
    return target
