"""Record a data change on the branch: dvc add, dvc push, git commit, git push, racing writers included.

When the push is rejected because another job pushed first, the local commit is dropped, the branch is
reset to the remote's tip, its data checked out, and the change applied again on top: a data file
(`.dvc`) cannot be merged line by line, but the change (new labels) can be re-applied. Never a force push.
"""

from __future__ import annotations

import os
from typing import Callable

from alops import data
from alops.errors import AlopsError, ConfigError
from alops.git import git, identity_args

def commit_data_change(project, folder: str, apply: Callable[[], int], message: str, branch: str,
                       remote: str = "origin", attempts: int = 5) -> str | None:
    """Apply the change, record it, push; on a rejected push start again from the remote's tip.

    Returns the pushed commit, or None when the change left the data as it was.
    """
    root = project.root
    if git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        raise ConfigError("the checkout has uncommitted changes: commit or stash them before labels are recorded")
    relative = os.path.relpath(os.path.abspath(folder), root)
    for _ in range(attempts):
        if not apply():
            return None
        data.track(project, folder)
        data.push(project, [folder])
        ignore = os.path.join(os.path.dirname(relative), ".gitignore")
        git(root, "add", relative + ".dvc", *([ignore] if os.path.exists(os.path.join(root, ignore)) else []))
        git(root, *identity_args(root), "commit", "-q", "-m", message)
        pushed = git(root, "push", "-q", remote, f"HEAD:refs/heads/{branch}", check=False)
        if pushed.returncode == 0:
            return git(root, "rev-parse", "HEAD").stdout.strip()
        if "rejected" not in pushed.stderr and "fetch first" not in pushed.stderr:
            raise AlopsError(f"git push failed: {' '.join(pushed.stderr.split())}")
        git(root, "fetch", "-q", remote, branch)
        git(root, "reset", "-q", "--hard", "FETCH_HEAD")
        data.pull(project, [folder])
    raise AlopsError(f"git push to {branch} was rejected {attempts} times: other jobs keep pushing; run the import again")
