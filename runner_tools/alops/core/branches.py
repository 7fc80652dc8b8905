"""Branch kinds, their patterns and profiles, and the context a command runs in.

The kinds and profiles are defined here once; templates and the other modules read them from here.
The context comes from GitLab CI variables, GitHub Actions variables or local git, so the same
command gives the same answer on a laptop and on a runner.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from alops.core.errors import ContextError

FEATURE = "feature"
EXPERIMENT = "experiment"
RELEASE = "release"
ACTIVE_LEARNING = "active-learning"
MAIN = "main"
OTHER = "other"

KINDS = (FEATURE, EXPERIMENT, RELEASE, ACTIVE_LEARNING, MAIN, OTHER)
PATTERN_KINDS = (FEATURE, EXPERIMENT, RELEASE, ACTIVE_LEARNING)

DEFAULT_PATTERNS: dict[str, tuple[str, ...]] = {
    FEATURE: ("feature/*",),
    EXPERIMENT: ("experiment/*",),
    RELEASE: ("release/*",),
    ACTIVE_LEARNING: ("al/*",),
}
FALLBACK_DEFAULT_BRANCH = "main"

DATASETS = ("dev", "full")
DEVICES = ("cpu", "gpu", "auto")
REPORT_TARGETS = ("merge-request", "release", "none")


@dataclass(frozen=True)
class Profile:
    """What the runners do for one branch kind."""

    dataset: str  # dev | full
    device: str  # cpu | gpu | auto
    tracking: bool  # log runs to the tracking server
    deploy: bool  # gate, register and move the champion alias
    data_commits: bool  # commit new data versions (label imports) to the branch
    report_target: str  # merge-request | release | none

    def as_dict(self) -> dict:
        return asdict(self)


PROFILE_CHOICES: dict[str, tuple] = {
    "dataset": DATASETS,
    "device": DEVICES,
    "tracking": (True, False),
    "deploy": (True, False),
    "data_commits": (True, False),
    "report_target": REPORT_TARGETS,
}

DEFAULT_PROFILES: dict[str, Profile] = {
    FEATURE: Profile("dev", "cpu", False, False, False, "merge-request"),
    EXPERIMENT: Profile("full", "gpu", True, False, False, "merge-request"),
    RELEASE: Profile("full", "auto", True, True, False, "release"),
    ACTIVE_LEARNING: Profile("full", "auto", True, False, True, "merge-request"),
    MAIN: Profile("dev", "cpu", False, False, False, "none"),
}
DEFAULT_PROFILES[OTHER] = DEFAULT_PROFILES[FEATURE]

_PATTERN_CHARS = re.compile(r"^[A-Za-z0-9._/*+@=-]+$")


def pattern_problem(pattern: object) -> str | None:
    """Why `pattern` is not a usable branch glob, or None when it is."""
    if not isinstance(pattern, str) or not pattern:
        return "a non-empty string"
    if not _PATTERN_CHARS.match(pattern):
        return "only letters, digits and . _ / * + @ = -"
    if pattern.startswith(("/", "-", ".")) or pattern.endswith(("/", ".")) or ".." in pattern or "//" in pattern:
        return "a valid git ref name (no leading '/', '-' or '.', no '..' or '//')"
    if not pattern.replace("*", "").strip("/"):
        return "a glob with a fixed part, such as 'feature/*'"
    return None


def pattern_regex(pattern: str) -> str:
    """The anchored regular expression of a branch glob (`*` matches any characters)."""
    return "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"


def kind_of(branch: str, patterns: Mapping[str, tuple[str, ...]], default_branch: str) -> str:
    """The kind of `branch`: main for the default branch, the first kind whose pattern matches, else other."""
    if branch == default_branch:
        return MAIN
    for kind in PATTERN_KINDS:
        if any(re.match(pattern_regex(p), branch) for p in patterns.get(kind, ())):
            return kind
    return OTHER


@dataclass(frozen=True)
class MergeRequest:
    """The merge-request / pull-request case: the pipeline runs for source -> target."""

    number: str | None
    source_branch: str
    target_branch: str
    source_kind: str
    target_kind: str
    from_fork: bool


@dataclass(frozen=True)
class Context:
    """Where a command runs: branch, kind, profile and the CI event."""

    kind: str
    branch: str | None
    tag: str | None
    default_branch: str
    commit: str | None
    forge: str  # gitlab | github | local
    event: str  # push | merge_request | schedule | manual | tag | local | other
    profile: Profile
    merge_request: MergeRequest | None = None
    notice: str | None = None
    ci_job_url: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["profile"] = self.profile.as_dict()
        return {"schema": 1, **data}


@dataclass(frozen=True)
class BranchSettings:
    """The project's branch settings (defaults, or `alops.yaml`)."""

    patterns: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_PATTERNS))
    profiles: Mapping[str, Profile] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    default_branch: str | None = None


@dataclass(frozen=True)
class _Refs:
    """What a forge or local git says about the refs, before kinds are applied."""

    forge: str
    event: str
    branch: str | None = None
    tag: str | None = None
    commit: str | None = None
    default_branch: str | None = None
    mr_number: str | None = None
    mr_source: str | None = None
    mr_target: str | None = None
    from_fork: bool = False
    job_url: str | None = None


_GITLAB_EVENTS = {
    "push": "push",
    "merge_request_event": "merge_request",
    "external_pull_request_event": "merge_request",
    "schedule": "schedule",
    "web": "manual",
    "api": "manual",
    "trigger": "manual",
    "pipeline": "manual",
    "chat": "manual",
    "parent_pipeline": "push",
}
_GITHUB_EVENTS = {
    "push": "push",
    "pull_request": "merge_request",
    "pull_request_target": "merge_request",
    "schedule": "schedule",
    "workflow_dispatch": "manual",
    "repository_dispatch": "manual",
}


def _gitlab_refs(env: Mapping[str, str]) -> _Refs:
    source = env.get("CI_PIPELINE_SOURCE", "push")
    event = _GITLAB_EVENTS.get(source, "other")
    if env.get("CI_COMMIT_TAG") and event == "push":
        event = "tag"
    mr_source = env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or None
    if mr_source:
        event = "merge_request"
    project, source_project = env.get("CI_MERGE_REQUEST_PROJECT_ID"), env.get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID")
    return _Refs(
        forge="gitlab",
        event=event,
        branch=mr_source or env.get("CI_COMMIT_BRANCH") or None,
        tag=env.get("CI_COMMIT_TAG") or None,
        commit=env.get("CI_COMMIT_SHA") or None,
        default_branch=env.get("CI_DEFAULT_BRANCH") or None,
        mr_number=env.get("CI_MERGE_REQUEST_IID") or None,
        mr_source=mr_source,
        mr_target=env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME") or None,
        from_fork=bool(mr_source and project and source_project and project != source_project),
        job_url=env.get("CI_JOB_URL") or None,
    )


def _github_event_payload(env: Mapping[str, str]) -> dict:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ContextError(f"cannot read the GitHub event payload {path}: {exc}") from None
    return payload if isinstance(payload, dict) else {}


def _github_refs(env: Mapping[str, str]) -> _Refs:
    name = env.get("GITHUB_EVENT_NAME", "push")
    event = _GITHUB_EVENTS.get(name, "other")
    payload = _github_event_payload(env)
    ref = env.get("GITHUB_REF", "")
    branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None
    tag = ref[len("refs/tags/"):] if ref.startswith("refs/tags/") else None
    if tag and event == "push":
        event = "tag"
    mr_source = mr_target = mr_number = None
    from_fork = False
    if event == "merge_request":
        mr_source = env.get("GITHUB_HEAD_REF") or None
        mr_target = env.get("GITHUB_BASE_REF") or None
        branch = mr_source
        pull = payload.get("pull_request") or {}
        number = pull.get("number") or payload.get("number")
        match = re.match(r"^refs/pull/(\d+)/", ref)
        mr_number = str(number) if number else (match.group(1) if match else None)
        head_repo = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
        base_repo = ((pull.get("base") or {}).get("repo") or {}).get("full_name")
        from_fork = bool(head_repo and base_repo and head_repo != base_repo)
    repository = payload.get("repository") or {}
    server, repo, run_id = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    return _Refs(
        forge="github",
        event=event,
        branch=branch,
        tag=tag,
        commit=env.get("GITHUB_SHA") or None,
        default_branch=repository.get("default_branch") or None,
        mr_number=mr_number,
        mr_source=mr_source,
        mr_target=mr_target,
        from_fork=from_fork,
        job_url=f"{server}/{repo}/actions/runs/{run_id}" if server and repo and run_id else None,
    )


def _git(args: list[str], cwd: str | None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ContextError(
            "git is not installed or not on PATH: install git, or pass --branch NAME to name the branch"
        ) from None


def _local_refs(cwd: str | None) -> _Refs:
    head = _git(["symbolic-ref", "--quiet", "HEAD"], cwd)
    if head.returncode == 1:
        raise ContextError("detached HEAD: check out a branch (git switch NAME), or pass --branch NAME to name it")
    if head.returncode != 0:
        raise ContextError("not inside a git repository: run in the project's checkout, or pass --branch NAME")
    ref = head.stdout.strip()
    origin_head = "refs/remotes/origin/HEAD"
    listing = _git(["for-each-ref", "--format=%(refname)%00%(objectname)%00%(symref)", ref, origin_head], cwd)
    commit = default = None
    for line in listing.stdout.splitlines():
        name, objectname, symref = line.split("\0")
        if name == ref:
            commit = objectname
        elif name == origin_head and symref.startswith("refs/remotes/origin/"):
            default = symref[len("refs/remotes/origin/"):]
    return _Refs(
        forge="local",
        event="local",
        branch=ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref,
        commit=commit,
        default_branch=default,
    )


def _detect_refs(env: Mapping[str, str], cwd: str | None) -> _Refs:
    if env.get("GITLAB_CI") == "true":
        return _gitlab_refs(env)
    if env.get("GITHUB_ACTIONS") == "true":
        return _github_refs(env)
    return _local_refs(cwd)


def near_pattern(branch: str, patterns: Mapping[str, tuple[str, ...]]) -> str | None:
    """A branch pattern whose prefix the branch's first segment nearly spells, the segment ending at a `/`, `-`,
    `_` or `.` (`experiments/x`, `experiment-1`: `experiment/*`)."""
    import difflib

    parts = re.split(r"[/_.-]", branch, maxsplit=1)
    if len(parts) < 2:
        return None
    prefixes = {p.split("/", 1)[0].lower(): p for kind in patterns for p in patterns[kind] if "/" in p}
    close = difflib.get_close_matches(parts[0].lower(), list(prefixes), n=1, cutoff=0.75)
    return prefixes[close[0]] if close else None


def resolve_context(
    settings: BranchSettings | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    branch: str | None = None,
) -> Context:
    """Resolve the context from CI variables or local git; `branch` names the branch explicitly."""
    settings = settings or BranchSettings()
    env = os.environ if env is None else env
    refs = _Refs(forge="local", event="local", branch=branch) if branch else _detect_refs(env, cwd)
    default_branch = settings.default_branch or refs.default_branch or FALLBACK_DEFAULT_BRANCH

    notice = None
    if refs.branch:
        kind = kind_of(refs.branch, settings.patterns, default_branch)
        if kind == OTHER:
            notice = f"branch {refs.branch!r} matches no branch pattern; it runs as a feature branch"
            suggestion = near_pattern(refs.branch, settings.patterns)
            if suggestion:
                notice += f" (did you mean {suggestion}? rename it with `git branch -m`)"
    elif refs.tag:
        kind = OTHER
        notice = f"tag {refs.tag!r}: tag pipelines run as a feature branch"
    else:
        raise ContextError("the CI variables name no branch or tag: run in a branch, tag or merge-request pipeline")

    merge_request = None
    if refs.event == "merge_request":
        if not (refs.mr_source and refs.mr_target):
            raise ContextError("merge-request pipeline without source and target branch variables")
        merge_request = MergeRequest(
            number=refs.mr_number,
            source_branch=refs.mr_source,
            target_branch=refs.mr_target,
            source_kind=kind,
            target_kind=kind_of(refs.mr_target, settings.patterns, default_branch),
            from_fork=refs.from_fork,
        )

    return Context(
        kind=kind,
        branch=refs.branch,
        tag=refs.tag,
        default_branch=default_branch,
        commit=refs.commit,
        forge=refs.forge,
        event=refs.event,
        profile=settings.profiles[kind],
        merge_request=merge_request,
        notice=notice,
        ci_job_url=refs.job_url,
    )
