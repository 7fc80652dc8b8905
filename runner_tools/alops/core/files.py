"""Writing output files whole or not at all: a temporary file beside the target, then a rename.

Every file alops writes goes through `atomic_path`; files get the mode the umask gives (0644 under 022).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import dataclass

TEMPORARY_PREFIX = ".alops-"
_TEMPORARY_NAME = re.compile(re.escape(TEMPORARY_PREFIX) + r"[0-9a-f]{12}(\.[^.]*)?")


@dataclass
class Staged:
    """A temporary file beside `target`; it replaces `target` when the block ends unless `keep` is False."""

    path: str
    target: str
    keep: bool = True


@contextlib.contextmanager
def atomic_path(path: str, suffix: str | None = None):
    """Yield a `Staged` temporary file beside `path` (folder created when missing); rename it on success.

    On an exception, or with `staged.keep = False`, the temporary file is removed and `path` is untouched.
    The suffix defaults to the target's, so writers that pick a format by extension keep working.
    """
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(target)[1] if suffix is None else suffix
    temporary = os.path.join(folder, f"{TEMPORARY_PREFIX}{uuid.uuid4().hex[:12]}{suffix}")
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies
    staged = Staged(temporary, target)
    try:
        yield staged
        if staged.keep:
            os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write(path: str, content: str | bytes) -> None:
    """Write text or bytes to `path` whole or not at all."""
    with atomic_path(path) as staged:
        if isinstance(content, bytes):
            with open(staged.path, "wb") as out:
                out.write(content)
        else:
            with open(staged.path, "w", encoding="utf-8", newline="") as out:
                out.write(content)


def stays_inside(root: str, path: str) -> bool:
    """Whether `path`, links and `..` resolved, lies inside the folder `root`."""
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def sample_path_problem(rel) -> str | None:
    """Why `rel`, a path a log names, cannot name a sample's file beside the log (None when it can): it must be
    relative text that stays in the log's folder."""
    if not isinstance(rel, str) or not rel:
        return f"path {rel!r} is not a relative file path (text)"
    if "\0" in rel or "\\" in rel:
        return f"path {rel!r} holds a NUL byte or a backslash"
    if rel.startswith("/") or ".." in rel.split("/"):
        return f"path {rel!r} must be relative and stay inside the log's folder"
    return None


def sample_file_problem(folder: str, rel) -> str | None:
    """Why `folder`/`rel` is not a sample file the pool may copy (None when it is): the path's problem, a
    symbolic link anywhere below `folder`, a special file, or no file at all."""
    import stat

    problem = sample_path_problem(rel)
    if problem:
        return problem
    current = folder
    for part in rel.split("/"):
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return f"path {rel!r}: no such file next to the log; copy the samples' files there first"
        if stat.S_ISLNK(mode):
            return f"path {rel!r} is or passes a symbolic link; the pool copies regular files only"
    if not stat.S_ISREG(mode):
        return f"path {rel!r} is not a regular file"
    if not stays_inside(folder, current):
        return f"path {rel!r} must be relative and stay inside the log's folder"
    return None


def copy_file(source: str, target: str) -> None:
    """Copy a file with its metadata, creating the target's folder."""
    import shutil

    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    shutil.copy2(source, target)


def rename(source: str, target: str) -> None:
    """Give a finished file its final name in the same folder, at once (a rotated log, for instance)."""
    os.replace(source, target)


def write_json(path: str, data, indent: int | None = None) -> None:
    """Write `data` as JSON (sorted keys when indented), whole or not at all."""
    import json

    text = json.dumps(data, indent=indent, sort_keys=indent is not None)
    atomic_write(path, text + ("\n" if indent is not None else ""))


def save_png(figure, path: str) -> str:
    """Save a matplotlib figure as a PNG, whole or not at all, then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path, suffix=".png") as staged:
            figure.savefig(staged.path, dpi=100, format="png")
    finally:
        plt.close(figure)
    return path


def remove_interrupted_writes(folder: str) -> list[str]:
    """Delete the temporary files a killed alops process left in `folder` (only alops' own names); their paths."""
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if _TEMPORARY_NAME.fullmatch(name):
            os.remove(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
    return removed
