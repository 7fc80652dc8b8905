"""The one git wrapper: run a git command in the project, one readable line when it fails."""

from __future__ import annotations

import hashlib
import subprocess

from alops.core.errors import AlopsError


def git(root: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`git ARGS` in `root`; raises AlopsError with git's message when `check` and it fails."""
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AlopsError(f"git {args[0]} failed: {' '.join(result.stderr.split())}")
    return result


def first_commit(root: str, revisions: tuple[str, ...]) -> str | None:
    """The commit of the first of `revisions` that exists; None when none does."""
    for rev in revisions:
        found = git(root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
        if found.returncode == 0:
            return found.stdout.strip()
    return None


def show(root: str, revisions: tuple[str, ...], relative: str) -> str | None:
    """A file as committed at the first of `revisions` that has it; None when none does."""
    for rev in revisions:
        result = git(root, "show", f"{rev}:{relative}", check=False)
        if result.returncode == 0:
            return result.stdout
    return None


def identity_args(root: str) -> list[str]:
    """`-c user.name/-c user.email` for commits alops makes where git has no identity configured (CI runners)."""
    configured = git(root, "config", "user.email", check=False).stdout.strip()
    return [] if configured else ["-c", "user.name=alops", "-c", "user.email=alops@localhost"]


def fetch_branch(root: str, branch: str, remote: str = "origin") -> bool:
    """Make `remote/branch` present (a CI clone holds only the pipeline's ref); whether it is there now."""
    if git(root, "rev-parse", "--verify", "--quiet", f"refs/remotes/{remote}/{branch}", check=False).returncode == 0:
        return True
    fetched = git(root, "fetch", "--quiet", "--depth=1", remote,
                  f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}", check=False)
    return fetched.returncode == 0


def changed_files(root: str) -> list[str]:
    """The tracked files under `root` whose content differs from HEAD (staged or not), relative to `root`;
    untracked files are not part of any commit and are left out; none before the first commit."""
    listed = git(root, "diff", "HEAD", "--name-only", "-z", "--relative", "--no-renames", check=False)
    return sorted(name for name in listed.stdout.split("\0") if name) if listed.returncode == 0 else []


def diff_digest(root: str, paths: list[str]) -> str:
    """A digest of how `paths` differ from HEAD: the same uncommitted change gives the same digest."""
    diff = git(root, "diff", "--binary", "--relative", "HEAD", "--", *paths).stdout if paths else ""
    return hashlib.sha256(diff.encode("utf-8", "surrogateescape")).hexdigest()[:16]
