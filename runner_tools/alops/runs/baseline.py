"""`alops baseline`: a tracked run of the target branch on the dataset this branch trains on, made when there is
none, so that the report compares like with like.

An experiment branch trains on the full data while main trains on the dev data, so an experiment's report would
find no run of main to compare with ("No baseline"). This looks for a finished run of the target's last commit
on this branch's dataset; when there is none, it checks that commit out in a temporary clone (sharing the
project's git objects, DVC settings and cache), runs its pipeline there on that dataset and tracks the run as
the target's, on the project's tracking store (no baseline when the store stops answering). The report then
finds it as "the latest tracked run of main on the full dataset".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace

from alops.core.errors import AlopsError, ConfigError
from alops.core.git import fetch_branch, git


def target_commit(root: str, target: str) -> str:
    """The target's last commit: the local branch, else origin's (fetched: a CI clone holds one ref)."""
    local = git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{target}^{{commit}}", check=False)
    if local.returncode == 0:
        return local.stdout.strip()
    fetch_branch(root, target)
    remote = git(root, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{target}^{{commit}}", check=False)
    if remote.returncode == 0:
        return remote.stdout.strip()
    raise ConfigError(f"no branch {target!r} here or on origin: pass the branch to compare with as --target")


def _checkout(root: str, commit: str, folder: str) -> str:
    """A clone of `root` at `commit` in `folder`, its objects borrowed from the project (nothing copied), its
    origin the project's (the project's name and remote, as CI has them)."""
    clone = os.path.join(folder, os.path.basename(os.path.abspath(root)))  # the same name where nothing gives one
    git(folder, "clone", "--quiet", "--shared", "--no-checkout", root, clone)
    git(clone, "checkout", "--quiet", "--detach", commit)
    origin = git(root, "remote", "get-url", "origin", check=False).stdout.strip()
    if origin:
        git(clone, "remote", "set-url", "origin", origin)
    return clone


def _share_dvc_settings(root: str, clone: str, cache_dir: str) -> None:
    """The clone reads DVC as the project does: its local config (remote credentials, cache dir), its remotes
    (a relative folder path still names the project's), and the project's cache: nothing is downloaded twice."""
    from dvc.repo import Repo

    from alops.data.storage import point_local_remotes

    if not os.path.isdir(os.path.join(clone, ".dvc")):
        return
    local = os.path.join(root, ".dvc", "config.local")
    if os.path.isfile(local):
        shutil.copyfile(local, os.path.join(clone, ".dvc", "config.local"))
    point_local_remotes(root, clone)
    with Repo(clone) as repo, repo.config.edit("local") as config:
        config["cache"]["dir"] = cache_dir


def ensure(project, target: str, device: str | None = None, allow_cpu: bool = False, echo=print, seeds: int = 1) -> str:
    """The target's run on this branch's dataset (`seeds` of them: alops.runs.seeds), found or made; one line saying
    which."""
    from alops.core.params import load_params
    from alops.core.project import TAG_DATASET, Project
    from alops.runs import pipeline, tracking
    from alops.runs.seeds import run_seeds, seed_values, tracked_seeds

    dataset, uri = project.context.profile.dataset, project.tracking_uri
    if target == project.context.branch:
        raise ConfigError(f"{target!r} is this branch: a baseline is the branch it merges into (--target)")
    commit = target_commit(project.root, target)
    found = tracking.find_runs(uri, project.name, branch=target, commit=commit, limit=1, tags={TAG_DATASET: dataset})
    have = len(tracked_seeds(uri, project.name, found[0])) if found else 0
    if found and have >= seeds:
        return (f"{target}@{commit[:8]} has {f'{have} seeds of its ' if seeds > 1 else 'a '}tracked run on the "
                f"{dataset} dataset: {tracking.run_url(uri, found[0])}")
    echo(f"{target}@{commit[:8]} has {have or 'no'} tracked run(s) on the {dataset} dataset: running its pipeline on "
         f"it{f' with {seeds} seeds' if seeds > 1 else ''}, in a temporary clone")
    cache_dir = project.dvc.cache.local_cache_dir
    folder = tempfile.mkdtemp(prefix="alops-baseline-")
    here = os.getcwd()
    try:
        clone = _checkout(project.root, commit, folder)
        _share_dvc_settings(project.root, clone, cache_dir)
        profile = replace(project.context.profile, tracking=True)  # this branch's dataset and device
        os.chdir(clone)  # DVC resolves a pipeline's stages from the working directory
        # tracked in the project's store, not a new one in the clone
        with Project.open(clone, branch=target, profile=profile, tracking_uri=uri) as base:
            if seeds > 1:
                seed_values(load_params(clone), seeds)  # no seed param: said before any run
            tracked = []

            def run_one(sets: dict):
                result = pipeline.run_pipeline(base, device=device, allow_cpu=allow_cpu, sets=sets, track=True,
                                               echo=lambda line: echo(f"{target}: {line}"))
                if not result.tracking:
                    raise AlopsError(f"the pipeline of {target}@{commit[:8]} was up to date, so nothing was tracked: "
                                     "run it once with `alops run` on that commit")
                if result.tracking[0] != "sent":  # buffered in the clone, which goes away: no use to the report
                    raise AlopsError(f"{target}@{commit[:8]} trained, but the tracking server stopped answering: no "
                                     "baseline this time (the next job makes it)")
                tracked.append(result.tracking[1])
                return result

            if seeds > 1:
                run_seeds(base, seeds, run_one, echo=lambda line: echo(f"{target}: {line}"))
            else:
                run_one({})
        return f"{target}@{commit[:8]} trained on the {dataset} dataset and tracked: run {', '.join(tracked)}"
    finally:
        os.chdir(here)
        shutil.rmtree(folder, ignore_errors=True)
