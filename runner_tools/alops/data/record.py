"""Record a data change on the branch: dvc add, dvc push, git commit, git push, racing writers included.

When the push is rejected because another job pushed first, the local commit is dropped, the branch is
reset to the remote's tip, its data checked out, and the change applied again on top: a data file
(`.dvc`) cannot be merged line by line, but the change (new labels) can be re-applied. Never a force push.

Crash safety: the intent is written to `.alops/pending-record.json` before the data changes and removed
once the push landed. A run killed at any point leaves that note; the next run in the checkout applies the
change again (a no-op when it is already in the data) and finishes what the note names: `dvc add`,
`dvc push`, the commit of the `.dvc` file, the push.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from alops.core.errors import AlopsError, ConfigError
from alops.core.files import remove_interrupted_writes, write_json
from alops.core.git import git, identity_args
from alops.data import storage as data

PENDING = os.path.join(".alops", "pending-record.json")


def _pending(root: str) -> dict | None:
    """The note of an interrupted recording in this checkout, if any."""
    try:
        with open(os.path.join(root, PENDING), encoding="utf-8") as handle:
            note = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise ConfigError(f"{PENDING} is unreadable: delete it and run the import again") from None
    return note if isinstance(note, dict) else None


def _changed_paths(root: str, *paths: str) -> list[str]:
    """Tracked paths (all, or among `paths`) that differ from HEAD."""
    status = git(root, "status", "--porcelain", "--untracked-files=no", "--", *paths).stdout
    return [line[3:] for line in status.splitlines() if line.strip()]


def commit_data_change(project, folder: str, apply: Callable[[], int], message: str, branch: str,
                       remote: str = "origin", attempts: int = 5, also: tuple[str, ...] = (),
                       reads: tuple[str, ...] = ()) -> str | None:
    """Apply the change, record it, push; on a rejected push start again from the remote's tip. `also`: more
    files the change writes (relative to the root), committed with it; `reads`: tracked folders the change reads
    (pulled again at the tip: a dev sample is drawn from the tip's full data).

    Returns the pushed commit, or None when the change left the data as it was and nothing was pending.
    """
    root = project.root
    relative = os.path.relpath(os.path.abspath(folder), root)
    ignore = os.path.join(os.path.dirname(relative), ".gitignore")
    owned = [relative + ".dvc", ignore, *also]
    pending = _pending(root)
    if pending and pending.get("branch") != branch:
        raise ConfigError(f"an interrupted label recording for branch {pending.get('branch')!r} is pending in this "
                          f"checkout: switch to that branch and run the import again")
    dirty = [path for path in _changed_paths(root) if not (pending and path in owned)]
    if dirty:
        raise ConfigError("the checkout has uncommitted changes: commit or stash them before labels are recorded")
    if pending:
        remove_interrupted_writes(os.path.dirname(project.manifest("full")))
        if pending.get("message") and pending["message"] != message.split("\n")[0]:
            subject, _, trailers = message.partition("\n\n")
            message = f"{subject}\n\nCompletes the interrupted recording: {pending['message']}" + \
                (f"\n\n{trailers}" if trailers else "")
    note = os.path.join(root, PENDING)
    write_json(note, {"branch": branch, "folder": relative, "message": message.split("\n")[0]})
    for _ in range(attempts):
        try:
            changed = apply()
        except AlopsError:  # refused before writing (validation): nothing of this change is pending
            if pending:
                write_json(note, pending)
            else:
                os.remove(note)
            raise
        if not changed and not pending:
            os.remove(note)
            return None
        data.track(project, folder, committed=True)
        data.push(project, [folder])
        if _changed_paths(root, *owned):
            git(root, "add", *(path for path in owned if os.path.exists(os.path.join(root, path))))
            git(root, *identity_args(root), "commit", "-q", "-m", message)
        pushed = git(root, "push", "-q", remote, f"HEAD:refs/heads/{branch}", check=False)
        if pushed.returncode == 0:
            os.remove(note)
            return git(root, "rev-parse", "HEAD").stdout.strip()
        if "rejected" not in pushed.stderr and "fetch first" not in pushed.stderr:
            raise AlopsError(f"git push failed: {' '.join(pushed.stderr.split())}")
        git(root, "fetch", "-q", remote, branch)
        git(root, "reset", "-q", "--hard", "FETCH_HEAD")
        data.pull(project, [folder, *reads])
        pending = None
    raise AlopsError(f"git push to {branch} was rejected {attempts} times: other jobs keep pushing; run the import again")
