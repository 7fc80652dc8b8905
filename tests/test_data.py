"""`alops data pull/push/version` against real DVC repositories with a local remote."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ALOPS, clean_env, dvc, git, run_alops
from datasets import read_manifest, write_full_dataset


@pytest.fixture
def origin(dvc_project: Path) -> Path:
    """A project whose full and dev datasets are tracked, committed and pushed."""
    assert run_alops("data", "make-dev", "--fraction", "0.1", cwd=dvc_project).returncode == 0
    git(dvc_project, "add", "-A")
    git(dvc_project, "commit", "-q", "-m", "dev dataset")
    assert run_alops("data", "push", "--dataset", "all", cwd=dvc_project).returncode == 0
    return dvc_project


def clone(origin: Path, tmp_path: Path, branch: str) -> Path:
    target = tmp_path / f"clone-{branch.replace('/', '-')}"
    git(tmp_path, "clone", "-q", str(origin), str(target))
    git(target, "switch", "-q", "-c", branch) if branch != "main" else None
    return target


def files_match_dvc(project: Path, folder: str) -> bool:
    status = subprocess.run([str(Path(ALOPS).with_name("dvc")), "status", f"{folder}.dvc"], cwd=project, capture_output=True, text=True)
    return status.returncode == 0 and "changed" not in status.stdout and "deleted" not in status.stdout


def md5_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def push_full_data(project: Path, n: int) -> None:
    """A full dataset of `n` samples, tracked, committed and pushed to the project's remote."""
    write_full_dataset(project / "data/full", n=n, seed=9)
    dvc(project, "add", "-q", "data/full")
    git(project, "commit", "-q", "-am", f"{n} samples")
    dvc(project, "push", "-q")


def test_feature_branch_pulls_only_the_dev_dataset(origin, tmp_path):
    work = clone(origin, tmp_path, "feature/a")
    result = run_alops("data", "pull", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "pulling the dev dataset (data/dev) for feature branch 'feature/a'" in result.stderr
    assert md5_tree(work / "data/dev") == md5_tree(origin / "data/dev")
    assert not (work / "data/full").exists()
    cached = [p for p in (work / ".dvc/cache").rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    assert len(cached) == len(read_manifest(work / "data/dev/manifest.csv")) + 1  # its files and manifest only


def test_experiment_branch_pulls_the_full_dataset(origin, tmp_path):
    work = clone(origin, tmp_path, "experiment/b")
    result = run_alops("data", "pull", cwd=work)
    assert result.returncode == 0, result.stderr
    assert md5_tree(work / "data/full") == md5_tree(origin / "data/full")
    assert not (work / "data/dev").exists()


def test_allow_missing_is_refused_on_experiment_and_release(origin, tmp_path):
    for branch in ("experiment/b", "release/1.0"):
        result = run_alops("data", "pull", "--allow-missing", cwd=clone(origin, tmp_path, branch))
        assert result.returncode == 2
        assert "--allow-missing is refused" in result.stderr


def test_corrupted_remote_object_fails_the_pull(origin, tmp_path):
    remote = tmp_path / "remote"
    victim = next(p for p in remote.rglob("*") if p.is_file() and not p.name.endswith(".dir"))
    victim.chmod(0o644)
    victim.write_bytes(b"bit rot")
    work = clone(origin, tmp_path, "experiment/b")
    result = run_alops("data", "pull", cwd=work)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("alops: error: dvc pull failed")
    assert "remote 'store'" in result.stderr and "failed verification" in result.stderr and "dvc push" in result.stderr
    assert "Traceback" not in result.stderr
    checked_out = md5_tree(work / "data/full") if (work / "data/full").exists() else {}
    assert hashlib.md5(b"bit rot").hexdigest() not in checked_out.values()


def _file_count(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder)) if folder.exists() else 0


def _kill_when(command: list[str], cwd: Path, partial) -> bool:
    """Start `command`, SIGKILL it as soon as `partial()` holds; False when it ended first."""
    process = subprocess.Popen(command, cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None:
        if partial():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow  # kills and resumes a process at each point
@pytest.mark.parametrize("phase", ["download into the cache", "checkout into the workspace"])
def test_pull_killed_mid_transfer_then_rerun_completes(dvc_project, tmp_path, phase):
    """Killed while some but not all files are there (the test watches the files, not a clock)."""
    push_full_data(dvc_project, n=4000)
    total = _file_count(dvc_project / "data/full")
    for attempt in range(3):  # the transfer may finish between two looks; then try again from a fresh clone
        (tmp_path / f"attempt-{attempt}").mkdir()
        work = clone(dvc_project, tmp_path / f"attempt-{attempt}", "experiment/big")
        if phase == "download into the cache":
            watched = work / ".dvc/cache/files/md5"
        else:
            dvc(work, "fetch", "-q", "data/full.dvc")
            watched = work / "data/full"
        killed = _kill_when([ALOPS, "data", "pull"], work, lambda: 0 < _file_count(watched) < total)  # noqa: B023
        if killed and 0 < _file_count(watched) < total:  # the kill landed mid-transfer: some files there, not all
            break
    else:
        pytest.fail(f"the pull ended three times before it could be killed during the {phase}")
    result = run_alops("data", "pull", cwd=work)
    assert result.returncode == 0, result.stderr
    assert md5_tree(work / "data/full") == md5_tree(dvc_project / "data/full")
    assert files_match_dvc(work, "data/full")


def test_pull_clears_a_killed_checkout_temporary_file(dvc_project, tmp_path):
    push_full_data(dvc_project, n=50)
    work = clone(dvc_project, tmp_path, "experiment/big")
    images = work / "data/full/images"
    images.mkdir(parents=True)
    leftover = images / ".22RQsm2AXLxSI2xpGLackg.tmp"  # the name DVC gives a file it is checking out
    leftover.write_bytes(b"half a png")
    result = run_alops("data", "pull", cwd=work)
    assert result.returncode == 0, result.stderr
    assert not leftover.exists()
    assert md5_tree(work / "data/full") == md5_tree(dvc_project / "data/full")


def test_pull_replaces_the_empty_file_a_killed_reflink_left(dvc_project, tmp_path):
    """DVC creates a file before it clones data into it; a kill in between leaves it empty under its own name."""
    push_full_data(dvc_project, n=50)
    work = clone(dvc_project, tmp_path, "experiment/big")
    dvc(work, "fetch", "-q", "data/full.dvc")  # the download had ended: the checkout was killed
    (work / "data/full").mkdir(parents=True)
    (work / "data/full/manifest.csv").write_bytes(b"")  # what it left
    result = run_alops("data", "pull", cwd=work)
    assert result.returncode == 0, result.stderr
    assert md5_tree(work / "data/full") == md5_tree(dvc_project / "data/full")
    assert files_match_dvc(work, "data/full")


def test_pull_keeps_a_changed_file_that_is_not_empty(dvc_project, tmp_path):
    push_full_data(dvc_project, n=50)
    work = clone(dvc_project, tmp_path, "experiment/big")
    dvc(work, "fetch", "-q", "data/full.dvc")
    (work / "data/full").mkdir(parents=True)
    (work / "data/full/manifest.csv").write_text("path,label\nmine.png,1\n")  # the user's own edit
    result = run_alops("data", "pull", cwd=work)
    assert result.returncode != 0
    assert (work / "data/full/manifest.csv").read_text() == "path,label\nmine.png,1\n"


def test_active_learning_data_merged_into_experiment_is_pulled(origin, tmp_path):
    git(origin, "switch", "-q", "-c", "al/round-1")
    rows = read_manifest(origin / "data/full/manifest.csv")
    for row in rows[:50]:
        row["label"] = row["label"] or "2"  # newly labeled samples
    from datasets import write_manifest

    write_manifest(origin / "data/full/manifest.csv", rows)
    dvc(origin, "add", "-q", "data/full")
    assert run_alops("data", "push", cwd=origin).returncode == 0  # al/ pushes the full dataset
    git(origin, "commit", "-q", "-am", "labels round 1")
    git(origin, "switch", "-q", "-c", "experiment/more-labels", "main")
    git(origin, "merge", "-q", "--no-edit", "al/round-1")
    git(origin, "switch", "-q", "main")  # the origin's HEAD names the default branch of clones
    work = tmp_path / "runner"
    git(tmp_path, "clone", "-q", "-b", "experiment/more-labels", str(origin), str(work))
    assert run_alops("data", "pull", cwd=work).returncode == 0
    assert read_manifest(work / "data/full/manifest.csv") == rows


def test_data_version_is_stable_and_follows_the_data(origin, tmp_path):
    first = run_alops("data", "version", cwd=origin)
    assert first.returncode == 0 and first.stdout.startswith("dv-")
    work = clone(origin, tmp_path, "feature/a")
    assert run_alops("data", "version", cwd=work).stdout == first.stdout  # from DVC files, no pull needed
    detail = json.loads(run_alops("data", "version", "--format", "json", cwd=origin).stdout)
    assert set(detail["outputs"]) == {"data/full", "data/dev"}
    assert run_alops("data", "make-dev", "--fraction", "0.1", "--seed", "5", cwd=origin).returncode == 0
    assert run_alops("data", "version", cwd=origin).stdout != first.stdout


def test_pull_outside_a_dvc_repository_is_a_clear_error(repo):
    result = run_alops("data", "pull", cwd=repo)
    assert result.returncode == 2
    assert "not inside a DVC repository" in result.stderr


def test_pull_without_a_remote_fails_with_dvcs_message(dvc_project, tmp_path):
    dvc(dvc_project, "remote", "remove", "store")
    shutil.rmtree(dvc_project / "data/full")
    shutil.rmtree(dvc_project / ".dvc/cache", ignore_errors=True)
    git(dvc_project, "switch", "-q", "-c", "experiment/x")
    result = run_alops("data", "pull", cwd=dvc_project)
    assert result.returncode == 1
    assert "dvc pull failed" in result.stderr


def test_pull_names_its_dataset_and_its_remote(origin, tmp_path):
    """--dataset overrides the branch's choice; --remote reads another remote (here a mirror; the default is gone)."""
    mirror = tmp_path / "mirror"
    shutil.copytree(tmp_path / "remote", mirror)
    work = clone(origin, tmp_path, "feature/mirror")
    dvc(work, "remote", "add", "mirror", str(mirror))
    shutil.rmtree(tmp_path / "remote")  # the default remote is unreachable now
    failed = run_alops("data", "pull", "--dataset", "full", cwd=work)
    assert failed.returncode == 1 and [line for line in failed.stderr.splitlines() if "error:" in line]
    result = run_alops("data", "pull", "--dataset", "full", "--remote", "mirror", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "pulling the full dataset (data/full) for feature branch" in result.stderr  # not the branch's dev data
    assert md5_tree(work / "data/full") == md5_tree(origin / "data/full")
    assert not (work / "data/dev").exists()


def test_outside_any_project_the_error_says_to_change_folder_not_to_run_dvc_init(tmp_path):
    """Someone in the wrong folder (no git, no DVC, no alops.yaml above it) is told where to go, not `dvc init`."""
    elsewhere = tmp_path / "downloads"
    elsewhere.mkdir()
    for command in (["data", "pull"], ["run"], ["report"], ["params", "check"]):
        result = run_alops(*command, cwd=elsewhere)
        assert result.returncode == 2, (command, result.stderr)
        assert "not inside a project" in result.stderr and "cd into your project" in result.stderr, command
        assert "dvc init" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("action", ["pull", "push"])
def test_a_remote_whose_dvc_extra_is_missing_names_the_pip_command_and_hides_the_url(dvc_project, action):
    dvc(dvc_project, "remote", "add", "-f", "-d", "cloud", "s3://secret-bucket/store")
    dvc(dvc_project, "remote", "modify", "cloud", "access_key_id", "AKIAEXAMPLE")
    result = run_alops("data", action, "--dataset", "full", cwd=dvc_project)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "pip install 'alops[s3]'" in result.stderr and "secret-bucket" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("alops: error:")]
    assert len(errors) == 1 and "s3://" in errors[0]


def test_a_branch_without_its_dataset_is_told_the_command_that_makes_it(ml_project):
    """No data/dev.dvc on the branch: pull and run name make-dev (not DVC's 'not an output or stage name' or a
    raw [Errno 2] from the stage)."""
    git(ml_project, "rm", "-q", "-r", "--cached", "data/dev.dvc")
    (ml_project / "data/dev.dvc").unlink()
    shutil.rmtree(ml_project / "data/dev")
    git(ml_project, "commit", "-q", "-m", "no dev dataset")
    for command in (["data", "pull"], ["run"]):
        result = run_alops(*command, cwd=ml_project)
        errors = [line for line in result.stderr.splitlines() if line.startswith("alops: error:")]
        assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "the dev dataset (data/dev) is not on this branch" in errors[0], command
        assert "alops data make-dev" in errors[0] and "data.dev in alops.yaml" in errors[0]
    untracked = run_alops("data", "pull", "models/nothing.pt", cwd=ml_project)
    assert untracked.returncode == 1 and "models/nothing.pt is not tracked on this branch" in untracked.stderr


def test_a_local_remote_this_machine_lacks_is_named_as_such(origin, tmp_path):
    """The scaffold's default remote is a folder beside the project; a runner elsewhere does not have it."""
    work = clone(origin, tmp_path, "feature/elsewhere")
    dvc(work, "remote", "modify", "store", "url", str(tmp_path / "on-the-laptop"))
    result = run_alops("data", "pull", cwd=work)
    assert result.returncode == 1, result.stderr
    assert "DVC remote 'store' is a local folder this machine does not have" in result.stderr
    assert "docs/data.md#remotes" in result.stderr and not (work / "data/dev").exists()


def test_pulling_an_output_a_branch_never_trained_says_to_train_it_first(dvc_project):
    """A scheduled query round on an al/ branch that never trained pulls the pool scores its query stage would
    write: the line names the missing run, not the DVC remote."""
    (dvc_project / "dvc.yaml").write_text("stages:\n  query:\n    cmd: python query.py\n    outs: [pool_probs.npy]\n")
    git(dvc_project, "add", "dvc.yaml")
    git(dvc_project, "commit", "-q", "-m", "a query stage")
    git(dvc_project, "switch", "-q", "-c", "al/untrained")
    result = run_alops("data", "pull", "pool_probs.npy", cwd=dvc_project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("pool_probs.npy: an output of this branch's pipeline that its dvc.lock does not record (the stage never "
            "ran on this branch), so there is nothing to pull: train the branch first (`alops run`") in result.stderr
    assert "remote" not in result.stderr.splitlines()[-1]
