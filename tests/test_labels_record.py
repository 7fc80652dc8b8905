"""On an active-learning branch a label import records the new data version; racing imports both land."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import ALOPS, clean_env, dvc, git, run_alops
from datasets import read_manifest, write_full_dataset


@pytest.fixture
def al_remote(repo, tmp_path):
    """A bare git remote whose branch al/round-1 tracks a full dataset, and its DVC remote."""
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "store", str(tmp_path / "dvc-remote"))
    (repo / "alops.yaml").write_text("data:\n  classes: ['0', '1', '2', '3']\n")
    write_full_dataset(repo / "data/full", n=80)
    dvc(repo, "add", "-q", "data/full")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    dvc(repo, "push", "-q")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "push", "-q", str(bare), "main:main", "main:al/round-1")
    return bare


def checkout(bare, folder, name):
    target = folder / name
    git(folder, "clone", "-q", "-b", "al/round-1", str(bare), str(target))
    git(target, "config", "user.email", f"{name}@example.com")
    git(target, "config", "user.name", name)
    dvc(target, "pull", "-q")
    return target


def write_batch(folder, name, sample_ids, label):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batch.json").write_text(json.dumps({"batch_id": name, "sample_ids": sample_ids, "classes": ["0", "1", "2", "3"]}))
    export = [{"id": i, "data": {"sample_id": s}, "annotations": [{"completed_by": 1, "result": [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]}]} for i, s in enumerate(sample_ids)]
    (folder / "export.json").write_text(json.dumps(export))


def import_args(folder):
    return ["labels", "import", str(folder / "export.json"), "--batch", str(folder / "batch.json")]


def test_racing_imports_on_an_al_branch_both_land(al_remote, tmp_path):
    first, second = checkout(al_remote, tmp_path, "runner-a"), checkout(al_remote, tmp_path, "runner-b")
    unlabeled = [r["id"] for r in read_manifest(first / "data/full/manifest.csv") if r["label"] == ""]
    write_batch(tmp_path / "batch-a", "batch-a", unlabeled[:5], "1")
    write_batch(tmp_path / "batch-b", "batch-b", unlabeled[5:10], "2")
    start = git(first, "rev-parse", "HEAD")

    landed_a = run_alops(*import_args(tmp_path / "batch-a"), cwd=first)
    assert landed_a.returncode == 0, landed_a.stderr
    assert "recorded the new data version" in landed_a.stdout
    landed_b = run_alops(*import_args(tmp_path / "batch-b"), cwd=second)  # its push is rejected: it must retry
    assert landed_b.returncode == 0, landed_b.stderr

    final = checkout(al_remote, tmp_path, "reader")
    labels = {r["id"]: r["label"] for r in read_manifest(final / "data/full/manifest.csv")}
    assert [labels[s] for s in unlabeled[:5]] == ["1"] * 5
    assert [labels[s] for s in unlabeled[5:10]] == ["2"] * 5
    subjects = git(final, "log", "--format=%s", f"{start}..HEAD").splitlines()
    assert subjects == ["Labels of batch batch-b", "Labels of batch batch-a"]
    git(final, "merge-base", "--is-ancestor", start, "HEAD")  # history kept: no force push


def test_concurrent_imports_both_land(al_remote, tmp_path):
    runners = [checkout(al_remote, tmp_path, f"runner-{i}") for i in range(3)]
    unlabeled = [r["id"] for r in read_manifest(runners[0] / "data/full/manifest.csv") if r["label"] == ""]
    processes = []
    for i, runner in enumerate(runners):
        write_batch(tmp_path / f"batch-{i}", f"batch-{i}", unlabeled[i * 4:(i + 1) * 4], str(i))
        processes.append(subprocess.Popen([ALOPS, *import_args(tmp_path / f"batch-{i}")], cwd=runner, env=clean_env(),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    labels = {r["id"]: r["label"] for r in read_manifest(checkout(al_remote, tmp_path, "reader") / "data/full/manifest.csv")}
    for i in range(3):
        assert [labels[s] for s in unlabeled[i * 4:(i + 1) * 4]] == [str(i)] * 4


def test_import_on_a_feature_branch_does_not_commit(al_remote, tmp_path):
    work = checkout(al_remote, tmp_path, "runner")
    git(work, "switch", "-q", "-c", "feature/x")
    unlabeled = [r["id"] for r in read_manifest(work / "data/full/manifest.csv") if r["label"] == ""]
    write_batch(tmp_path / "batch", "b", unlabeled[:3], "0")
    head = git(work, "rev-parse", "HEAD")
    result = run_alops(*import_args(tmp_path / "batch"), cwd=work)
    assert result.returncode == 0 and "recorded" not in result.stdout
    assert git(work, "rev-parse", "HEAD") == head


def test_dirty_checkout_is_refused_before_anything_changes(al_remote, tmp_path):
    work = checkout(al_remote, tmp_path, "runner")
    (work / "alops.yaml").write_text((work / "alops.yaml").read_text() + "# local edit\n")
    unlabeled = [r["id"] for r in read_manifest(work / "data/full/manifest.csv") if r["label"] == ""]
    write_batch(tmp_path / "batch", "b", unlabeled[:3], "0")
    before = (work / "data/full/manifest.csv").read_bytes()
    result = run_alops(*import_args(tmp_path / "batch"), cwd=work)
    assert result.returncode == 2 and "uncommitted changes" in result.stderr
    assert (work / "data/full/manifest.csv").read_bytes() == before


# Runs `alops labels import`, pausing at one point of the recording (the marker file says it got there) so the
# test can SIGKILL it inside that step; the product code is unchanged, only wrapped.
PAUSING_DRIVER = r'''
import os, sys, time
import alops.data, alops.labeling, alops.manifest, alops.record

point, marker = os.environ["PAUSE_AT"], os.environ["PAUSE_MARKER"]

def pause_around(owner, name, when, before=False):
    original = getattr(owner, name)
    def wrapped(*args, **kwargs):
        hit = when(*args)
        if hit and before:
            open(marker, "w").write(point); time.sleep(600)
        result = original(*args, **kwargs)
        if hit:
            open(marker, "w").write(point); time.sleep(600)
        return result
    setattr(owner, name, wrapped)

always = lambda *args: True
hooks = {
    "manifest half written": (alops.manifest.ManifestWriter, "close", always, True),
    "manifest replaced": (alops.labeling, "apply_labels", always, False),
    "dvc add done": (alops.data, "track", always, False),
    "data pushed": (alops.data, "push", always, False),
    "commit made": (alops.record, "git", lambda root, *args: "commit" in args, False),
    "branch pushed": (alops.record, "git", lambda root, *args: "push" in args, False),
}
pause_around(*hooks[point])
from alops.cli import main
sys.argv = ["alops", *sys.argv[1:]]
main()
'''


@pytest.mark.parametrize("point", ["manifest half written", "manifest replaced", "dvc add done", "data pushed",
                                   "commit made", "branch pushed"])
def test_import_killed_at_any_point_then_rerun_records_every_label_once(al_remote, tmp_path, point):
    import os
    import signal
    import sys
    import time

    work = checkout(al_remote, tmp_path, "runner")
    rows = read_manifest(work / "data/full/manifest.csv")
    chosen = [r["id"] for r in rows if r["label"] == ""][:6]
    write_batch(tmp_path / "batch", "b1", chosen, "3")
    start = git(work, "rev-parse", "HEAD")
    driver, marker = tmp_path / "driver.py", tmp_path / "paused"
    driver.write_text(PAUSING_DRIVER)
    process = subprocess.Popen([sys.executable, str(driver), *import_args(tmp_path / "batch")], cwd=work,
                               env=clean_env(PAUSE_AT=point, PAUSE_MARKER=str(marker)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists() and process.poll() is None, process.communicate()[1]  # the kill lands inside the step
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    if point == "manifest half written":
        assert [p.name for p in (work / "data/full").glob(".alops-*")], "the staged manifest should be left behind"

    rerun = run_alops(*import_args(tmp_path / "batch"), cwd=work)
    assert rerun.returncode == 0, rerun.stderr
    assert "recorded the new data version" in rerun.stdout

    assert git(work, "status", "--porcelain", "--untracked-files=no") == ""
    assert not list((work / "data/full").glob(".alops-*")) and not (work / ".alops/pending-record.json").exists()
    reader = checkout(al_remote, tmp_path, "reader")  # what the next job sees: the pushed branch and its data
    assert git(reader, "log", "--format=%s", f"{start}..HEAD").splitlines() == ["Labels of batch b1"]
    after = read_manifest(reader / "data/full/manifest.csv")
    assert sorted(r["id"] for r in after) == sorted(r["id"] for r in rows)  # no row lost or doubled
    labels = {r["id"]: r["label"] for r in after}
    assert [labels[s] for s in chosen] == ["3"] * 6
    assert {r["id"]: r["label"] for r in rows if r["id"] not in chosen} == {k: v for k, v in labels.items() if k not in chosen}
