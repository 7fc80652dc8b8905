"""`alops pool intake`: the finished prediction logs at a source join the pool once each, as one data version."""

from __future__ import annotations

import json

import pytest
from conftest import git, run_alops
from datasets import read_manifest
from test_hostile import checksums
from test_labels_record import checkout


def finished_log(source, name, ids, prediction="1"):
    """A log as `alops serve` leaves it once rotated: one JSON object a line, each sample's file beside it."""
    (source / "inputs").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in ids:
        (source / "inputs" / f"{i}.bin").write_bytes(f"sample {i}".encode())
        lines.append(json.dumps({"id": i, "path": f"inputs/{i}.bin", "x": 0.25, "prediction": prediction,
                                 "probabilities": [0.1, 0.7, 0.1, 0.1], "model_version": "3",
                                 "time": "2026-12-03T10:00:00Z"}))
    (source / name).write_text("\n".join(lines) + "\n")


def test_each_finished_log_joins_the_pool_once_in_one_pushed_data_version(al_remote, tmp_path):
    work = checkout(al_remote, tmp_path, "runner")
    before = read_manifest(work / "data/full/manifest.csv")
    source = tmp_path / "served"
    finished_log(source, "predictions-20261203T0900-1-1.jsonl", [90001, 90002, 90003])
    finished_log(source, "predictions-20261203T1000-1-2.jsonl", [90004, 90005])
    finished_log(source, "predictions.jsonl", [90099])  # still being written: not taken
    result = run_alops("pool", "intake", str(source), "--split", "train", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "2 new log(s), 0 taken before; 5 samples added as unlabeled (train 5)" in result.stdout
    assert "5 new samples in intake/new-samples.jsonl" in result.stdout
    assert "recorded the new data version" in result.stdout
    fresh = [json.loads(line) for line in (work / "intake/new-samples.jsonl").read_text().splitlines()]
    assert [row["id"] for row in fresh] == [90001, 90002, 90003, 90004, 90005]
    assert {row["prediction"] for row in fresh} == {"1"}  # as logged, for the drift check

    reader = checkout(al_remote, tmp_path, "reader")  # the next scheduled job: a fresh clone of the branch
    assert git(reader, "log", "-1", "--format=%s") == "Pool: intake of prediction logs"
    after = read_manifest(reader / "data/full/manifest.csv")
    assert after[: len(before)] == before
    assert [(r["id"], r["label"], r["split"]) for r in after[len(before):]] == \
        [(str(90000 + i), "", "train") for i in range(1, 6)]
    assert (reader / "data/full/inputs/90004.bin").read_bytes() == b"sample 90004"
    ledger = json.loads((reader / "data/full/.alops-intake.json").read_text())
    assert ledger == {"predictions-20261203T0900-1-1.jsonl": {"added": 3, "samples": 3},
                      "predictions-20261203T1000-1-2.jsonl": {"added": 2, "samples": 2}}

    head = git(reader, "rev-parse", "HEAD")
    again = run_alops("pool", "intake", str(source), cwd=reader)
    assert again.returncode == 0, again.stderr
    assert "0 new log(s), 2 taken before; 0 samples added" in again.stdout and "recorded" not in again.stdout
    assert git(reader, "rev-parse", "HEAD") == head and (reader / "intake/new-samples.jsonl").read_text() == ""

    finished_log(source, "predictions-20261203T1100-1-3.jsonl", [90005, 90006])  # 90005 was served twice
    third = run_alops("pool", "intake", str(source), "--split", "train", cwd=reader)
    assert third.returncode == 0, third.stderr
    assert "1 new log(s), 2 taken before; 1 samples added as unlabeled (train 1), 1 already in the pool" in third.stdout
    assert [r["id"] for r in read_manifest(reader / "data/full/manifest.csv")[len(before):]] == \
        [str(90000 + i) for i in range(1, 7)]


def test_a_bad_log_stops_the_intake_before_the_pool_changes(al_remote, tmp_path):
    work = checkout(al_remote, tmp_path, "runner")
    source = tmp_path / "served"
    finished_log(source, "predictions-1.jsonl", [90001])
    (source / "predictions-2.jsonl").write_text('{"id": 90002, "path": "../../etc/passwd", "x": 0.1}\n')
    before, head = checksums(work / "data"), git(work, "rev-parse", "HEAD")
    result = run_alops("pool", "intake", str(source), cwd=work)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "predictions-2.jsonl: path '../../etc/passwd' must be relative" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert checksums(work / "data") == before and git(work, "rev-parse", "HEAD") == head

    missing = run_alops("pool", "intake", str(tmp_path / "nowhere"), cwd=work)
    assert missing.returncode != 0 and "is not a folder" in missing.stderr and "Traceback" not in missing.stderr

    # recording on a branch that is not an al/ branch (a GitHub schedule runs on main): one line, nothing changed
    git(work, "switch", "-q", "-c", "main")
    wrong = run_alops("pool", "intake", str(tmp_path / "served"), "--commit", cwd=work)
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    assert "'main' is a main branch: check an al/ branch out (and name it with --branch in CI)" in wrong.stderr
    named = run_alops("pool", "intake", str(tmp_path / "served"), "--commit", "--branch", "release/1", cwd=work)
    assert named.returncode != 0 and "'release/1' is a release branch" in named.stderr
    assert checksums(work / "data") == before and git(work, "rev-parse", "HEAD") == head


def test_a_sample_served_twice_in_one_intake_is_one_new_sample(tmp_path):
    """Two logs of one intake both name 90005 (a retried request): the pool and the drift check's new-samples
    file hold it once."""
    from datasets import write_full_dataset

    from alops.data.intake import take

    write_full_dataset(tmp_path / "full", n=20)
    source = tmp_path / "served"
    finished_log(source, "predictions-20261203T0900-1-1.jsonl", [90004, 90005])
    finished_log(source, "predictions-20261203T1000-1-2.jsonl", [90005, 90006])
    outcome = take(str(tmp_path / "full/manifest.csv"), str(source), "train", str(tmp_path / "new-samples.jsonl"))
    fresh = [json.loads(line)["id"] for line in (tmp_path / "new-samples.jsonl").read_text().splitlines()]
    assert fresh == [90004, 90005, 90006] and outcome.new_samples == 3
    assert [row["id"] for row in read_manifest(tmp_path / "full/manifest.csv")][-3:] == ["90004", "90005", "90006"]


HOSTILE_PATHS = {
    "a symlink to a file outside": ("inputs/link.bin", "symbolic link"),
    "a symlinked folder": ("linked/secret.txt", "symbolic link"),
    "an absolute path": ("/etc/passwd", "must be relative"),
    "a path up and out": ("inputs/../../secret.txt", "must be relative"),
    "a NUL byte": ("inputs/a\u0000.bin", "NUL byte"),
    "a number": (5, "not a relative file path|path '5': no such file"),  # pool add reads a CSV-like column
    "a list": (["inputs/1.bin"], "not a relative file path|malformed manifest"),
    "a folder": ("inputs", "not a regular file"),
}


@pytest.mark.parametrize("case", HOSTILE_PATHS)
def test_pool_add_and_the_intake_take_only_regular_files_inside_the_logs_folder(tmp_path, case):
    """A log naming a file through a symlink, outside its folder, or as no path at all is refused by both
    `pool add` and `pool intake` in one line; nothing is copied and the manifest is unchanged."""
    from datasets import write_full_dataset

    from alops.core.errors import ConfigError
    from alops.data.intake import take
    from alops.data.pool import add_to_pool

    write_full_dataset(tmp_path / "full", n=20)
    manifest = tmp_path / "full/manifest.csv"
    before = manifest.read_bytes()
    (tmp_path / "secret.txt").write_text("the runner's file")
    source = tmp_path / "served"
    finished_log(source, "predictions-1.jsonl", [90001])
    (source / "inputs/link.bin").symlink_to(tmp_path / "secret.txt")
    (source / "linked").symlink_to(tmp_path)
    path, words = HOSTILE_PATHS[case]
    (source / "predictions-2.jsonl").write_text(json.dumps({"id": 90002, "path": path, "x": 0.1}) + "\n")
    with pytest.raises(ConfigError, match=words):
        take(str(manifest), str(source), "train", str(tmp_path / "new.jsonl"))
    with pytest.raises(ConfigError, match=words):
        add_to_pool(str(manifest), str(source / "predictions-2.jsonl"), "train")
    assert manifest.read_bytes() == before
    assert not any(p.name in ("secret.txt", "link.bin") for p in (tmp_path / "full").rglob("*"))


def test_a_log_whose_ids_are_lists_is_one_line(tmp_path):
    from datasets import write_full_dataset

    from alops.core.errors import ConfigError
    from alops.data.pool import add_to_pool

    write_full_dataset(tmp_path / "full", n=20)
    (tmp_path / "log.jsonl").write_text(json.dumps({"id": [1, 2], "path": "a.bin", "x": 0.1}) + "\n")
    with pytest.raises(ConfigError, match="an id is text or an integer"):
        add_to_pool(str(tmp_path / "full/manifest.csv"), str(tmp_path / "log.jsonl"), "train")
