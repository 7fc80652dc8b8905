"""On an active-learning branch a label import records the new data version; racing imports both land."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import ALOPS, clean_env, dvc, git, kill_inside, run_alops
from datasets import read_manifest


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


def test_a_refused_import_leaves_nothing_pending_and_the_next_commit_claims_nothing(al_remote, tmp_path):
    """A label outside the classes is refused before anything is written; the next import's commit is its own,
    without "Completes the interrupted recording" of a batch that was never recorded."""
    work = checkout(al_remote, tmp_path, "runner")
    unlabeled = [r["id"] for r in read_manifest(work / "data/full/manifest.csv") if r["label"] == ""]
    write_batch(tmp_path / "bad", "bad", unlabeled[:3], "9")
    refused = run_alops(*import_args(tmp_path / "bad"), cwd=work)
    assert refused.returncode == 2 and not (work / ".alops/pending-record.json").exists(), refused.stderr
    write_batch(tmp_path / "good", "good", unlabeled[:3], "1")
    recorded = run_alops(*import_args(tmp_path / "good"), cwd=work)
    assert recorded.returncode == 0, recorded.stderr
    assert git(work, "log", "-1", "--format=%B").strip().splitlines()[0] == "Labels of batch good"
    assert "interrupted" not in git(work, "log", "-1", "--format=%B")


KILL_POINTS = {  # where the import is killed: (function, before/after the call, a word its arguments mention)
    "manifest half written": ("alops.data.manifest:ManifestWriter.close", "before", ""),
    "manifest replaced": ("alops.labels.handoff:apply_labels", "after", ""),
    "dvc add done": ("alops.data.storage:track", "after", ""),
    "data pushed": ("alops.data.storage:push", "after", ""),
    "commit made": ("alops.data.record:git", "after", "'commit'"),
    "branch pushed": ("alops.data.record:git", "after", "'push'"),
}


@pytest.mark.slow  # kills and resumes a process at each point
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_import_killed_at_any_point_then_rerun_records_every_label_once(al_remote, tmp_path, point):
    work = checkout(al_remote, tmp_path, "runner")
    rows = read_manifest(work / "data/full/manifest.csv")
    chosen = [r["id"] for r in rows if r["label"] == ""][:6]
    write_batch(tmp_path / "batch", "b1", chosen, "3")
    start = git(work, "rev-parse", "HEAD")
    target, when, word = KILL_POINTS[point]
    kill_inside(work, import_args(tmp_path / "batch"), target, when, word, marker_dir=tmp_path)
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
