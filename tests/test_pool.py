"""`alops pool add`: a production prediction log becomes unlabeled samples, a new data version on al/ branches."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from conftest import git, run_alops
from datasets import read_manifest
from test_hostile import checksums
from test_labels_record import checkout


def write_log(folder, ids, name="predictions.csv", extra_rows=(), with_files=True):
    """A prediction log as a service writes it: the sample's file, the model's probabilities and version."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "served").mkdir(exist_ok=True)
    lines = ["id,path,x,p0,p1,p2,p3,model_version"]
    for i in ids:
        if with_files:
            (folder / "served" / f"{i}.bin").write_bytes(f"sample {i}".encode())
        lines.append(f"{i},served/{i}.bin,0.5,0.7,0.1,0.1,0.1,v7")
    lines += list(extra_rows)
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


def test_a_log_on_an_al_branch_becomes_unlabeled_samples_and_a_pushed_data_version(al_remote, tmp_path):
    work = checkout(al_remote, tmp_path, "runner")
    before = read_manifest(work / "data/full/manifest.csv")
    log = write_log(tmp_path / "logs", [str(90000 + i) for i in range(5)])
    result = run_alops("pool", "add", str(log), cwd=work)
    assert result.returncode == 0, result.stderr
    summary = re.search(r"5 samples added as unlabeled \(([^)]*)\)", result.stdout).group(1)
    assert "not data: p0, p1, p2, p3, model_version" in result.stdout and "scored by model v7" in result.stdout
    reader = checkout(al_remote, tmp_path, "reader")  # the next job: a fresh clone of the pushed branch
    assert git(reader, "log", "-1", "--format=%s") == "Pool: samples from predictions.csv"
    after = read_manifest(reader / "data/full/manifest.csv")
    assert after[: len(before)] == before  # existing rows untouched, in order
    added = after[len(before):]
    assert [r["id"] for r in added] == [str(90000 + i) for i in range(5)]
    assert all(r["label"] == "" for r in added)
    splits = Counter(r["split"] for r in added)  # drawn from each id in the manifest's shares, as reported
    assert summary == ", ".join(f"{name} {count}" for name, count in sorted(splits.items()))
    assert set(splits) <= {r["split"] for r in before}
    assert (reader / "data/full/served/90003.bin").read_bytes() == b"sample 90003"
    # the production samples are listed for evaluation's live slice, in the same data version
    assert (reader / "data/full/live_ids.txt").read_text() == "".join(f"{90000 + i}\n" for i in range(5))
    again = run_alops("pool", "add", str(log), cwd=work)  # a re-run (or the same log twice) adds nothing
    assert again.returncode == 0 and "0 samples added" in again.stdout and "5 already in the manifest" in again.stdout
    assert git(work, "log", "-1", "--format=%s") == "Pool: samples from predictions.csv"
    assert len(read_manifest(work / "data/full/manifest.csv")) == len(after)
    more = run_alops("pool", "add", str(write_log(tmp_path / "later", ["90003", "90005"])), cwd=work)
    assert more.returncode == 0 and "1 samples added" in more.stdout
    assert (work / "data/full/live_ids.txt").read_text() == "".join(f"{i}\n" for i in [*range(90000, 90005), 90005])


def test_without_commit_the_manifest_grows_and_nothing_is_recorded(al_remote, tmp_path):
    work = checkout(al_remote, tmp_path, "runner")
    head = git(work, "rev-parse", "HEAD")
    log = write_log(tmp_path / "logs", ["91001", "91002"], name="predictions.jsonl", with_files=True)
    rows = [{"id": r.split(",")[0], "path": r.split(",")[1], "x": 0.1, "p0": 0.9} for r in
            (tmp_path / "logs/predictions.jsonl").read_text().splitlines()[1:]]
    log.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_alops("pool", "add", str(log), "--no-commit", "--split", "unlabeled-pool", cwd=work)
    assert result.returncode == 0, result.stderr
    added = read_manifest(work / "data/full/manifest.csv")[-2:]
    assert [(r["id"], r["split"], r["label"]) for r in added] == [("91001", "unlabeled-pool", ""), ("91002", "unlabeled-pool", "")]
    assert git(work, "rev-parse", "HEAD") == head


@pytest.mark.parametrize("extra,columns,message", [
    ([], "path,x,p0", "missing required column(s) id"),
    (["prod-7,served/80001.bin,0.5,0.7,0.1,0.1,0.1,v7"], None, "the manifest's id is int64"),
    (["7777,served/dup.bin,0.5,0.7,0.1,0.1,0.1,v7", "7777,served/dup.bin,0.5,0.7,0.1,0.1,0.1,v7"], None, "id '7777' appears twice"),
    (["7778,../outside.bin,0.5,0.7,0.1,0.1,0.1,v7"], None, "must be relative and stay inside the log's folder"),
    (["7779,served/gone.bin,0.5,0.7,0.1,0.1,0.1,v7"], None, "no such file next to the log"),
    ([], "id,path,p0", "no column x"),
])
def test_a_bad_log_is_one_line_and_changes_nothing(al_remote, tmp_path, extra, columns, message):
    work = checkout(al_remote, tmp_path, "runner")
    log = write_log(tmp_path / "logs", ["80001"], extra_rows=extra)
    (tmp_path / "logs/served/dup.bin").write_bytes(b"dup")
    if columns:
        log.write_text(columns + "\n" + ",".join(["80001", "served/80001.bin", "0.5"][: columns.count(",") + 1]) + "\n")
    before = checksums(work / "data")
    result = run_alops("pool", "add", str(log), cwd=work)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert checksums(work / "data") == before
    assert git(work, "status", "--porcelain") == ""


def test_new_samples_take_the_manifests_split_shares_by_id_the_same_on_every_run():
    """by-id: a sample's split depends on its id alone (a re-run, another runner: the same split), and over many
    samples the shares are the manifest's (3,000 ids: within 3 standard deviations of each share)."""
    from alops.data.pool import splits_by_id

    shares = [("test", 0.2), ("train", 0.6), ("val", 0.2)]
    ids = [f"live-{number}" for number in range(3000)]
    first = splits_by_id(ids, shares)
    assert first == splits_by_id(list(ids), shares) and first[:5] == splits_by_id(ids[:5], shares)
    counts = Counter(first)
    for name, share in shares:
        assert abs(counts[name] - 3000 * share) < 3 * (3000 * share * (1 - share)) ** 0.5, counts
