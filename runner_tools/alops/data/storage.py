"""DVC for the branch: pull and push the dataset the branch kind needs, track dev datasets, data version.

Everything goes through DVC's Python API (`dvc.repo.Repo`), imported inside the functions. Remotes are
read with `verify = true`, so a corrupted object fails the pull instead of landing in the workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re

from alops.core.errors import AlopsError
from alops.core.files import atomic_path

VERSION_PREFIX = "dv-"
# the temporary name DVC gives a file while it checks it out: "." + a 22-character short uuid + ".tmp"
_CHECKOUT_TEMPORARY = re.compile(r"\.[A-Za-z0-9_-]{22}\.tmp")
_EMPTY_MD5 = hashlib.md5(b"").hexdigest()


def dvc_failure(action: str, exc: Exception) -> AlopsError:
    """DVC's message (and its cause) as one line."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in message:
        message += f": {' '.join(str(cause).split())}"
    return AlopsError(f"dvc {action} failed: {message}")


_REMOTE_EXTRAS = {"s3": "s3", "gs": "gs", "gcs": "gs", "azure": "azure", "ssh": "ssh"}


def missing_remote_extra(action: str, exc: Exception) -> Exception:
    """DVC cannot reach a remote whose filesystem package is not installed: name alops' extra (never the URL).
    `exc` is DVC's ImportError ("s3 is supported, but requires 'dvc-s3' to be installed") or
    RemoteMissingDepsError; anything else comes back unchanged."""
    found = re.match(r"(\w+) is supported, but requires", str(exc))
    protocol = getattr(exc, "protocol", None) or (found and found.group(1))
    if not protocol:
        return exc
    extra = _REMOTE_EXTRAS.get(protocol)
    install = f"pip install 'alops[{extra}]'" if extra else f"install DVC's {protocol} support"
    return AlopsError(f"dvc {action} failed: the remote is {protocol}:// and DVC's support for it is not "
                      f"installed: {install} (in CI, that requirement as the alops-version input)")


@contextlib.contextmanager
def quiet_dvc():
    """DVC's banners ("Initialized DVC repository", "You can now commit") and info lines silenced: alops says
    what happened and what to commit."""
    dvc_logger = logging.getLogger("dvc")
    level = dvc_logger.level
    dvc_logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        dvc_logger.setLevel(level)


def init_with_remote(root: str, url: str, name: str = "storage") -> None:
    """`dvc init` at `root` with `url` as the default remote `name`, quietly (DVC's errors pass through)."""
    from dvc.repo import Repo

    with quiet_dvc():
        Repo.init(root)
        with Repo(root) as repo, repo.config.edit() as config:
            config["remote"][name] = {"url": url}
            config["core"]["remote"] = name


def untracked_dataset(project, dataset: str) -> str | None:
    """Why the branch cannot get the `dev` or `full` dataset (one line with the fix), or None: its folder is
    neither in the workspace, nor tracked by a `.dvc` file, nor an output of a dvc.yaml stage."""
    folder = project.dataset_folder(dataset)
    if os.path.isdir(folder) or os.path.exists(folder + ".dvc") or _stage_output(project, folder):
        return None
    relative = os.path.relpath(folder, project.root)
    make = ("make it with `alops data make-dev` and commit " + relative + ".dvc" if dataset == "dev" else
            f"track it with `dvc add {relative}` and commit {relative}.dvc")
    return (f"the {dataset} dataset ({relative}) is not on this branch (no {relative}.dvc, no stage makes it): {make}, "
            f"or set data.{dataset} in alops.yaml to the folder your data is in")


def _stage_output(project, folder: str) -> bool:
    from dvc.exceptions import DvcException

    try:
        return any(out.fs_path == folder for stage in project.dvc.index.stages for out in stage.outs)
    except DvcException:
        return False  # an invalid dvc.yaml is reported by the command that reads it


def pull(project, targets: list[str], remote: str | None = None, allow_missing: bool = False) -> dict:
    """Fetch and check out `targets` (paths of tracked data) from the remote, verified; one line on failure."""
    from dvc.exceptions import CheckoutError, DvcException, NoOutputOrStageError
    from dvc_objects.fs.errors import RemoteMissingDepsError

    for target in targets:
        remove_interrupted_checkout(target)
        remove_interrupted_links(project, target)
    try:
        return project.dvc.pull(targets=targets, remote=remote, allow_missing=allow_missing)
    except CheckoutError as exc:
        failed = sorted(str(p) for p in (exc.result or {}).get("failed", []) or exc.target_infos)
        unrecorded = _unrecorded_outputs(project, failed)
        if unrecorded:
            raise AlopsError(f"{', '.join(unrecorded)}: an output of this branch's pipeline that its dvc.lock does not "
                             "record (the stage never ran on this branch), so there is nothing to pull: train the "
                             "branch first (`alops run`, or push it so its training job runs), then pull") from None
        _check_local_remote(project, remote)
        name = remote or project.dvc.config["core"].get("remote") or "the default remote"
        raise AlopsError(
            f"dvc pull failed: {', '.join(failed[:3])}{' ...' if len(failed) > 3 else ''} could not be checked out: "
            f"the object on remote {name!r} is missing or failed verification (verify = true), so nothing corrupt "
            "was checked out; push it again from a workspace that has the data (`dvc push`)") from None
    except (ImportError, RemoteMissingDepsError) as exc:
        raise missing_remote_extra("pull", exc) from None
    except NoOutputOrStageError as exc:
        untracked = exc.args[0].split("'")[1] if "'" in exc.args[0] else "a target"
        raise AlopsError(f"dvc pull failed: {os.path.relpath(untracked, project.root)} is not tracked on this branch "
                         "(no .dvc file, no stage output): check the path, or `dvc add` it and commit the .dvc file") from None
    except DvcException as exc:
        _check_local_remote(project, remote)
        raise dvc_failure("pull", exc) from None


def _unrecorded_outputs(project, paths: list[str]) -> list[str]:
    """Those of `paths` that a stage of dvc.yaml outputs and dvc.lock has no hash for (relative to the root)."""
    import yaml

    if not os.path.isfile(os.path.join(project.root, "dvc.yaml")):
        return []  # data tracked by .dvc files alone: no stage outputs anything
    relative = [os.path.relpath(path, project.root) if os.path.isabs(path) else path for path in paths]
    declared = {os.path.normpath(str(out if isinstance(out, str) else next(iter(out))))
                for stage in (project.pipeline.get("stages") or {}).values() if isinstance(stage, dict)
                for out in stage.get("outs") or []}
    lock_path = os.path.join(project.root, "dvc.lock")
    recorded: set[str] = set()
    if os.path.isfile(lock_path):
        with open(lock_path, encoding="utf-8") as handle:
            lock = yaml.safe_load(handle) or {}
        recorded = {os.path.normpath(out["path"]) for stage in (lock.get("stages") or {}).values()
                    for out in stage.get("outs") or [] if out.get("md5") or out.get("hash")}
    return [path for path in map(os.path.normpath, relative) if path in declared and path not in recorded]


def _check_local_remote(project, remote: str | None) -> None:
    """After a failed pull: a remote that is a folder this machine lacks (the scaffold's default,
    `<project>-dvc-storage` beside the project, seen from a CI runner) is the cause, said in one line (DVC
    reports every object as missing)."""
    name = remote or project.dvc.config["core"].get("remote")
    url = str(project.dvc.config["remote"].get(name, {}).get("url", "")) if name else ""
    if url and "://" not in url and not os.path.isdir(url):
        raise AlopsError(f"dvc pull failed: DVC remote {name!r} is a local folder this machine does not have ({url}): "
                         "give the project a remote its runners reach (`dvc remote add -d -f storage s3://bucket/path`, "
                         "see docs/data.md#remotes) and push the data there")


def remove_interrupted_checkout(target: str) -> int:
    """Delete the temporary files a killed DVC checkout left under `target` (DVC refuses to overwrite them).

    Only DVC's own temporary names are touched; the user's files stay. Returns how many were removed.
    """
    removed = 0
    for folder, _subfolders, files in os.walk(target):
        for name in files:
            if _CHECKOUT_TEMPORARY.fullmatch(name):
                os.remove(os.path.join(folder, name))
                removed += 1
    return removed


def remove_interrupted_links(project, target: str) -> int:
    """Delete the empty files a killed DVC checkout left at the names of tracked files whose data is not empty.

    DVC tries a reflink first: it creates the file, then asks the file system to clone the data into it, and
    deletes it when the file system cannot. Killed in between, an empty file stays, which the next checkout
    refuses to replace ("unsaved files"). Only zero-byte files are touched: no data is lost. Returns how many.
    """
    from dvc.exceptions import DvcException

    path = os.path.abspath(target)
    try:
        outs = [out for out in project.dvc.index.outs if out.fs_path == path and out.hash_info]
    except DvcException:
        return 0  # an invalid dvc.yaml is reported by the pull
    removed = 0
    for out in outs:
        if out.hash_info.isdir:
            listing = out.get_obj()  # None until the download has brought the folder's listing
            files = [(os.path.join(path, *key), oid.value) for key, _meta, oid in listing] if listing else []
        else:
            files = [(path, out.hash_info.value)]
        for file, md5 in files:
            if md5 != _EMPTY_MD5 and os.path.isfile(file) and not os.path.islink(file) and os.path.getsize(file) == 0:
                os.remove(file)
                removed += 1
    return removed



def point_local_remotes(root: str, clone: str) -> None:
    """In a clone of the project in another folder, each DVC remote that is a relative folder path (the
    scaffold's `../<project>-dvc-storage`) points to the project's folder, in the clone's config.local."""
    import configparser

    from alops.core.git import git

    config = os.path.join(clone, ".dvc", "config")
    if not os.path.isfile(config):
        return
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

def push(project, targets: list[str] | None, remote: str | None = None, run_cache: bool = False) -> int:
    """Upload `targets` (all tracked data when None; with `run_cache`, DVC's run cache too); files pushed."""
    from dvc.exceptions import DvcException
    from dvc_objects.fs.errors import RemoteMissingDepsError

    try:
        return project.dvc.push(targets=targets, remote=remote, run_cache=run_cache)
    except (ImportError, RemoteMissingDepsError) as exc:
        raise missing_remote_extra("push", exc) from None
    except DvcException as exc:
        raise dvc_failure("push", exc) from None


def track(project, path: str, committed: bool = False) -> str:
    """`dvc add` a folder or file; returns the path of its `.dvc` file. `committed`: alops commits the change
    itself, so DVC's "To track the changes with git, run: git add ..." hint stays unsaid."""
    from dvc.exceptions import DvcException

    if committed:
        project.dvc.scm_context.quiet = True
    try:
        project.dvc.add(os.path.relpath(os.path.abspath(path), project.root))
    except DvcException as exc:
        raise dvc_failure("add", exc) from None
    return path + ".dvc"


def register_metrics(root: str, metrics_path: str) -> None:
    """List `metrics_path` under `metrics:` in dvc.yaml (kept as is otherwise), so `dvc metrics show` reports it."""
    from ruamel.yaml import YAML

    yaml = YAML()
    dvc_yaml = os.path.join(root, "dvc.yaml")
    relative = os.path.relpath(os.path.abspath(metrics_path), root)
    document: dict = {}
    if os.path.exists(dvc_yaml):
        with open(dvc_yaml, encoding="utf-8") as handle:
            document = yaml.load(handle) or {}
    metrics = document.setdefault("metrics", [])
    if relative in metrics:
        return
    metrics.append(relative)
    with atomic_path(dvc_yaml) as staged, open(staged.path, "w", encoding="utf-8") as out:
        yaml.dump(document, out)


SKIPPED_FOLDERS = ("mlartifacts", "mlruns", "node_modules", "__pycache__")


def _entries(document_outs, base: str) -> list[tuple[str, str]]:
    found = []
    for out in document_outs or []:
        if isinstance(out, dict):
            digest = out.get("md5") or out.get("etag") or out.get("checksum") or ""
            found.append((os.path.normpath(os.path.join(base, out.get("path", ""))), str(digest)))
    return found


def tracked_data(root: str, lock_text: str | None = None) -> list[tuple[str, str]]:
    """(path, hash) of the data: what `.dvc` files track, and the data folders dvc.lock (`lock_text` when the
    caller has read it) records as stage inputs that no stage produces. Models, features and other outputs are
    not data; neither is anything under hidden folders or MLflow's local artifact store."""
    import yaml

    entries = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in SKIPPED_FOLDERS]
        base = os.path.relpath(folder, root)
        for name in files:
            if name.endswith(".dvc"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    entries += _entries((yaml.safe_load(handle) or {}).get("outs"), base)
    lock = os.path.join(root, "dvc.lock")
    if lock_text is None and os.path.isfile(lock):
        with open(lock, encoding="utf-8") as handle:
            lock_text = handle.read()
    if lock_text is not None:
        stages = list(((yaml.safe_load(lock_text) or {}).get("stages") or {}).values())
        produced = {path for stage in stages for path, _ in _entries(stage.get("outs"), ".")}
        for stage in stages:
            entries += [(path, digest) for path, digest in _entries(stage.get("deps"), ".")
                        if digest.endswith(".dir") and path not in produced]
    return sorted(set(entries))


def data_version(root: str, lock_text: str | None = None) -> dict:
    """A stable identifier of the data the workspace's DVC files record (the same after retraining on the same
    data), plus the hash of each data entry."""
    entries = tracked_data(root, lock_text)
    if not entries:
        raise AlopsError("no data tracked by DVC here (no .dvc files, no data folders in dvc.lock); `dvc add` the "
                         "datasets first")
    digest = hashlib.sha256("".join(f"{path}\t{value}\n" for path, value in entries).encode()).hexdigest()
    return {"version": VERSION_PREFIX + digest[:16], "outputs": dict(entries)}


@contextlib.contextmanager
def _stage_environment(**values: str):
    """`values` in the environment the stages' commands inherit, for the length of a `dvc repro` only (DVC's
    API takes no environment); the process's own is as it was afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def reproduce(project, targets: list[str], device: str, frozen: str | None = None) -> list[str]:
    """`dvc repro` of `targets` (checked with `check_stages`); the stages that ran (none when up to date). The
    `frozen` stage is taken as its outputs are, as DVC takes a frozen stage: never run, its inputs not needed."""
    from dvc.exceptions import DvcException
    from dvc.repo import lock_repo

    repo = project.dvc
    try:
        with lock_repo(repo), _stage_environment(ALOPS_DEVICE=device):  # DVC reads dvc.yaml again when it takes the lock: freeze inside the same lock
            for stage in repo.index.stages if frozen else ():
                if stage.addressing == frozen:
                    stage.frozen = True
            stages = repo.reproduce(targets=targets or None)
    except DvcException as exc:
        raise dvc_failure("repro", exc) from None
    return [getattr(stage, "addressing", str(stage)) for stage in stages]
