"""DVC for a repository that has none (`alops init --dvc-remote URL`): dvc init, the default remote, `dvc add`
of the data folder, after checking that no .gitignore rule would hide its `.dvc` file from DVC."""

from __future__ import annotations

import os
import shutil

from alops.core.errors import AlopsError, ConfigError
from alops.core.git import git
from alops.core.secrets import redact_url
from alops.data.storage import init_with_remote, quiet_dvc

REMOTE = "storage"


def hiding_rules(root: str, dvc_files: list[str]) -> list[tuple[str, str]]:
    """(.dvc file, the rule) for each `.dvc` file DVC would never see: DVC reads .gitignore as git patterns and
    does not look inside a folder they ignore (`/data/*` ignores data/ for it, whatever `!` lines follow) nor
    at an ignored file. The rule is named as git finds it for the data path."""
    from dvc.scm import SCM

    scm = SCM(root)
    found = []
    for path in dvc_files:
        parts = path.split("/")
        folders = [os.path.join(root, *parts[:i]) + os.sep for i in range(1, len(parts))]
        if any(scm.is_ignored(folder) for folder in folders) or scm.is_ignored(os.path.join(root, path)):
            named = git(root, "check-ignore", "-v", "--no-index", path.removesuffix(".dvc"), check=False).stdout.strip()
            where = named.partition("\t")[0].split(":", 2) if named else []
            found.append((path, f"{where[0]}:{where[1]}: {where[2]}" if len(where) == 3 else "a .gitignore rule"))
    return found


def hidden_message(path: str, rule: str) -> str:
    folder = os.path.dirname(path)
    inside = f", {folder}/ included" if folder else ""
    return (f"{rule} hides {path} from DVC (DVC skips what .gitignore ignores{inside}): ignore only the folders "
            f"you mean instead (e.g. `/{folder + '/' if folder else ''}processed/`; DVC keeps the data itself out of git)")


def in_git(root: str, data_folder: str) -> list[str]:
    """The files under `data_folder` that git tracks (they move to DVC: `git rm --cached`, the files stay)."""
    return [line for line in git(root, "ls-files", "--", data_folder).stdout.splitlines() if line]


def resumable(root: str, remote_url: str) -> bool:
    """Whether DVC is set up here as an interrupted `alops init --dvc-remote remote_url` left it (.dvc with that
    default remote): running it again continues instead of refusing."""
    from dvc.repo import Repo

    if not os.path.isdir(os.path.join(root, ".dvc")):
        return False
    with quiet_dvc(), Repo(root) as repo:
        config = repo.config
        return config["core"].get("remote") == REMOTE and str(config["remote"].get(REMOTE, {}).get("url")) == remote_url


def setup_dvc(root: str, data_folder: str, remote_url: str) -> list[str]:
    """dvc init, the remote `storage` (default) at `remote_url`, `dvc add` of `data_folder` (relative to root);
    files of the folder that git tracked leave git's index first (`git rm -r --cached`: the files stay, DVC
    tracks them). Refuses, writing nothing, when the data folder is missing or its `.dvc` file would be
    git-ignored; a failure puts back what it changed; a set-up an interruption left (same remote) continues.
    Returns the files written for git to commit."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    resuming = resumable(root, remote_url)
    if os.path.isdir(os.path.join(root, ".dvc")) and not resuming:
        raise ConfigError("DVC is set up already (.dvc exists): add the remote with `dvc remote add -d storage URL`")
    if not os.path.isdir(os.path.join(root, data_folder)):
        raise ConfigError(f"{data_folder} is not a folder: put the data there, or set data.full in alops.yaml and run "
                          "alops init --dvc-remote again")
    hidden = hiding_rules(root, [data_folder + ".dvc"])
    if hidden:
        raise ConfigError(hidden_message(*hidden[0]) + ", then run alops init --dvc-remote again")
    created = [name for name in (".dvc", ".dvcignore") if not os.path.exists(os.path.join(root, name))]
    tracked = in_git(root, data_folder)
    try:
        if not resuming:
            init_with_remote(root, remote_url, REMOTE)
        if tracked:
            git(root, "rm", "-r", "--cached", "--quiet", "--", data_folder)
        with quiet_dvc(), Repo(root) as repo:  # no "git add" hint: the checklist says what to commit
            repo.scm_context.quiet = True
            repo.add(data_folder)
    except DvcException as exc:
        _undo(root, created, data_folder, tracked)
        raise AlopsError(f"DVC set-up failed: {' '.join(str(exc).split())} (remote {redact_url(remote_url)}); "
                         "nothing was changed") from None
    except BaseException:
        _undo(root, created, data_folder, tracked)
        raise
    ignore = os.path.join(os.path.dirname(data_folder), ".gitignore")
    return [".dvc/config", ".dvc/.gitignore", ".dvcignore", data_folder + ".dvc", ignore]


def _undo(root: str, created: list[str], data_folder: str, tracked: list[str]) -> None:
    """Put back what a failed set-up changed: the files git tracked in its index, DVC's files it created."""
    if tracked:
        git(root, "reset", "--quiet", "--", data_folder, check=False)
    for name in created:
        git(root, "rm", "-r", "-f", "--cached", "--quiet", "--ignore-unmatch", "--", name, check=False)  # dvc init stages them
        path = os.path.join(root, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)
