"""DVC for a repository that has none (`alops init --dvc-remote URL`): dvc init, the default remote, `dvc add`
of the data folder, after checking that no .gitignore rule would hide its `.dvc` file from DVC."""

from __future__ import annotations

import os

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


def setup_dvc(root: str, data_folder: str, remote_url: str) -> list[str]:
    """dvc init, the remote `storage` (default) at `remote_url`, `dvc add` of `data_folder` (relative to root).
    Refuses, writing nothing, when the data folder is missing or its `.dvc` file would be git-ignored. Returns
    the files written for git to commit."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    if os.path.isdir(os.path.join(root, ".dvc")):
        raise ConfigError("DVC is set up already (.dvc exists): add the remote with `dvc remote add -d storage URL`")
    if not os.path.isdir(os.path.join(root, data_folder)):
        raise ConfigError(f"{data_folder} is not a folder: put the data there, or set data.full in alops.yaml and run "
                          "alops init --dvc-remote again")
    hidden = hiding_rules(root, [data_folder + ".dvc"])
    if hidden:
        raise ConfigError(hidden_message(*hidden[0]) + ", then run alops init --dvc-remote again")
    try:
        init_with_remote(root, remote_url, REMOTE)
        with quiet_dvc(), Repo(root) as repo:  # no "git add" hint: the checklist says what to commit
            repo.scm_context.quiet = True
            repo.add(data_folder)
    except DvcException as exc:
        raise AlopsError(f"DVC set-up failed: {' '.join(str(exc).split())} (remote {redact_url(remote_url)})") from None
    ignore = os.path.join(os.path.dirname(data_folder), ".gitignore")
    return [".dvc/config", ".dvc/.gitignore", ".dvcignore", data_folder + ".dvc", ignore]
