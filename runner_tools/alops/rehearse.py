"""`alops rehearse`: the project's own .gitlab-ci.yml run offline by gitlab-ci-local, as GitLab would run it.

The rehearsal runs in a clone of the project's last commit (what a push sends) in a temporary folder: the
kit's components of this alops (`alops.components`) are copied into it as `templates/`, the include points
at them (gitlab-ci-local resolves `$CI_SERVER_FQDN/$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA` to that folder),
and the event's predefined variables are set. The project itself is never written to.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib.resources import files

from alops import __version__
from alops.errors import ConfigError
from alops.git import git, identity_args

EVENTS = ("push", "merge-request", "schedule")
SCHEDULES = ("query", "intake", "dev-check", "make-dev")
TOOL = "gitlab-ci-local"
INSTALL_TOOL = "npm install -g gitlab-ci-local@4.64.1 (4.64.1 runs on Node 20; newer releases need Node 22)"
INCLUDE = re.compile(r"^(\s*-?\s*component:\s*)(\S+)/([a-z]+)@(\S+)\s*$", re.MULTILINE)
LOCAL_ADDRESS = "$CI_SERVER_FQDN/$CI_PROJECT_PATH"
# predefined variables the rehearsal sets itself, which gitlab-ci-local would otherwise derive
OWN_VARIABLES = "GITLAB_CI,CI_PIPELINE_SOURCE,CI_COMMIT_REF_PROTECTED,CI_PROJECT_ID"


@dataclass(frozen=True)
class Rehearsal:
    """What to rehearse: the event, the branch it is about, and the variables the forge would set."""

    event: str
    branch: str
    variables: dict[str, str]


def plan(event: str, branch: str, target: str = "main", schedule: str | None = None, protected: bool = False,
         extra: dict[str, str] | None = None) -> Rehearsal:
    """The predefined variables of `event` on `branch` (a merge request from `branch` into `target`)."""
    variables = {"GITLAB_CI": "true", "CI_PROJECT_ID": "1"}
    if event == "push":
        variables["CI_PIPELINE_SOURCE"] = "push"
    elif event == "merge-request":
        variables.update({"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "1",
                          "CI_MERGE_REQUEST_PROJECT_ID": "1", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "1",
                          "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": branch, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": target})
    elif event == "schedule":
        if schedule not in SCHEDULES:
            raise ConfigError(f"a schedule rehearsal needs --schedule, one of {', '.join(SCHEDULES)}")
        variables.update({"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": schedule})
    else:
        raise ConfigError(f"event {event!r}: rehearse one of {', '.join(EVENTS)}")
    if protected:
        variables["CI_COMMIT_REF_PROTECTED"] = "true"
    return Rehearsal(event, branch, {**variables, **(extra or {})})


def tool() -> str:
    """gitlab-ci-local's path (ALOPS_GITLAB_CI_LOCAL, else on PATH), and rsync, which it copies jobs with."""
    found = os.environ.get("ALOPS_GITLAB_CI_LOCAL") or shutil.which(TOOL)
    if not found or not os.access(found, os.X_OK):
        raise ConfigError(f"{TOOL} is not installed: {INSTALL_TOOL}")
    if shutil.which("rsync") is None:
        raise ConfigError(f"rsync is not installed ({TOOL} copies each job's folder with it): install it with your "
                          "package manager, e.g. `apt-get install rsync`")
    return found


def _included(ci_text: str, ci_file: str) -> list[re.Match]:
    found = list(INCLUDE.finditer(ci_text))
    if not found:
        raise ConfigError(f"{ci_file} includes no alops component: run `alops init` (or add the include, "
                          "docs/adopt.md)")
    return found


def prepare(root: str, folder: str, branch: str | None) -> tuple[str, str, list[str]]:
    """A clone of `root`'s last commit on `branch` in `folder`, its CI file pointed at this alops' components:
    (the clone, the branch, notices)."""
    ci_file = os.path.join(root, ".gitlab-ci.yml")
    if not os.path.isfile(ci_file):
        raise ConfigError("no .gitlab-ci.yml here: run `alops init --forge gitlab` first")
    current = git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
    branch = branch or current
    if not branch:
        raise ConfigError("HEAD is detached: pass --branch NAME (the branch the pipeline runs for)")
    if git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode != 0:
        raise ConfigError(f"no local branch {branch!r}: create it (`git switch -c {branch}`) or pass another --branch")
    notices = []
    if git(root, "status", "--porcelain", "--untracked-files=no", check=False).stdout.strip() and branch == current:
        notices.append("uncommitted changes are not rehearsed: the pipeline runs the last commit, as a push sends it")
    clone = os.path.join(folder, os.path.basename(os.path.abspath(root)))
    git(folder, "clone", "--quiet", "--branch", branch, root, clone)
    origin = git(root, "remote", "get-url", "origin", check=False).stdout.strip()
    if origin:
        git(clone, "remote", "set-url", "origin", origin)  # the project's name and the forge, as CI has them
    _local_dvc_remotes(root, clone)

    with open(os.path.join(clone, ".gitlab-ci.yml"), encoding="utf-8") as handle:
        text = handle.read()
    names = set()
    for match in _included(text, ".gitlab-ci.yml"):
        names.add(match.group(3))
        if match.group(4) not in (__version__, "$CI_COMMIT_SHA"):
            notices.append(f"the include pins {match.group(3)}@{match.group(4)}: the rehearsal runs this alops' "
                           f"components ({__version__})")
    components = files("alops.components")
    for name in sorted(names):
        shipped = components / f"{name}.yml"
        if not shipped.is_file():
            raise ConfigError(f".gitlab-ci.yml includes component {name!r}, which alops {__version__} does not have")
        os.makedirs(os.path.join(clone, "templates"), exist_ok=True)
        with open(os.path.join(clone, "templates", f"{name}.yml"), "w", encoding="utf-8") as handle:
            handle.write(shipped.read_text(encoding="utf-8"))
    text = INCLUDE.sub(lambda m: f"{m.group(1)}{LOCAL_ADDRESS}/{m.group(3)}@$CI_COMMIT_SHA", text)
    with open(os.path.join(clone, ".gitlab-ci.yml"), "w", encoding="utf-8") as handle:
        handle.write(text)
    with open(os.path.join(clone, ".gitignore"), "a", encoding="utf-8") as handle:
        handle.write("\n.gitlab-ci-local/\n")
    git(clone, "add", "-A")
    git(clone, *identity_args(clone), "commit", "--quiet", "--no-verify", "-m", "alops rehearse: this alops' components")
    return clone, branch, notices


def _local_dvc_remotes(root: str, clone: str) -> None:
    """A DVC remote that is a relative folder path points from the clone to the project's folder."""
    config = os.path.join(root, ".dvc", "config")
    if not os.path.isfile(config):
        return
    import configparser

    parser = configparser.ConfigParser()
    try:
        parser.read(config, encoding="utf-8")
    except configparser.Error:
        return
    for section in parser.sections():
        found = re.fullmatch(r"""remote\s+["']?([^"']+)["']?""", section)
        url = parser.get(section, "url", fallback="")
        if found and url and "://" not in url and not os.path.isabs(url):
            git(clone, "config", "--file", os.path.join(clone, ".dvc", "config.local"),
                f"remote.{found.group(1)}.url", os.path.normpath(os.path.join(root, ".dvc", url)))


def command(gitlab_ci_local: str, rehearsal: Rehearsal, jobs: tuple[str, ...], listing: bool) -> list[str]:
    """gitlab-ci-local's command line (`tags: []`, GitLab's default, is valid; its schema asks for a tag)."""
    line = [gitlab_ci_local, "--force-shell-executor", "--shell-isolation", "--no-color", "--concurrency", "1",
            "--ignore-schema-paths", "#/definitions/tags/minItems"]
    if listing:
        line.append("--list")
    for key, value in rehearsal.variables.items():
        line += ["--variable", f"{key}={value}"]
    return line + list(jobs)


def run(root: str, rehearsal_for, jobs: tuple[str, ...] = (), listing: bool = False, keep: bool = False,
        branch: str | None = None, notice=print) -> int:
    """Rehearse in a temporary clone; gitlab-ci-local's exit status. `rehearsal_for(branch)` gives the plan."""
    gitlab_ci_local = tool()
    folder = tempfile.mkdtemp(prefix="alops-rehearsal-")
    try:
        clone, branch, notices = prepare(root, folder, branch)
        for line in notices:
            notice(line)
        rehearsal = rehearsal_for(branch)
        notice(f"rehearsing a {rehearsal.event} pipeline of {branch!r} in {clone}")
        env = {**os.environ, "GCL_IGNORE_PREDEFINED_VARS": OWN_VARIABLES}
        return subprocess.run(command(gitlab_ci_local, rehearsal, jobs, listing), cwd=clone, env=env).returncode
    finally:
        if keep:
            notice(f"the rehearsal's folder is kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
