"""`alops labels export` / `import`: Label Studio tasks out, validated labels in, atomically and idempotently."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conftest import clean_env, dvc, git, run_alops
from datasets import read_manifest, write_full_dataset

from alops.core.errors import ConfigError


@pytest.fixture(scope="module")
def _batch_project_built(tmp_path_factory):
    from conftest import git_repo

    base = tmp_path_factory.mktemp("batch-project")
    repo = git_repo(base / "project")
    dvc(repo, "init", "-q")
    (repo / "alops.yaml").write_text("data:\n  classes: ['0', '1', '2', '3']\n")
    rows = write_full_dataset(repo / "data/full", n=60)
    unlabeled = [r for r in rows if r["label"] == ""]
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=len(unlabeled)).astype(np.float32)
    np.save(repo / "pool.npy", probs)
    assert run_alops("query", "select", "pool.npy", "-k", "6", "--strategy", "margin", cwd=repo).returncode == 0
    result = run_alops("labels", "export", "selection.json", "--model-version", "v7", cwd=repo)
    assert result.returncode == 0, result.stderr
    return base


@pytest.fixture
def batch_project(_batch_project_built, repo, tmp_path):
    """A project with a full dataset, a scored pool and an exported batch of 6 tasks."""
    from conftest import copy_of

    return copy_of(_batch_project_built, repo, tmp_path, remote=None)


def annotation(label, user=1, cancelled=False):
    return {"completed_by": user, "was_cancelled": cancelled,
            "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]}


def full_export(project, labels: dict[str, list]):
    tasks = json.loads((project / "labeling/tasks.json").read_text())
    export = []
    for number, task in enumerate(tasks, start=1):
        sample = task["data"]["sample_id"]
        if sample in labels:
            export.append({"id": number, "data": task["data"], "annotations": labels[sample]})
    return export


def batch_ids(project):
    return json.loads((project / "labeling/batch.json").read_text())["sample_ids"]


def manifest_hash(project):
    return hashlib.sha256((project / "data/full/manifest.csv").read_bytes()).hexdigest()


def test_export_writes_tasks_with_scores_csv_and_config(batch_project):
    tasks = json.loads((batch_project / "labeling/tasks.json").read_text())
    selection = json.loads((batch_project / "selection.json").read_text())
    assert len(tasks) == 6
    assert [t["predictions"][0]["score"] for t in tasks] == selection["scores"]
    assert all(t["predictions"][0]["model_version"] == "v7" for t in tasks)
    unlabeled = [r for r in read_manifest(batch_project / "data/full/manifest.csv") if r["label"] == ""]
    assert [t["data"]["sample_id"] for t in tasks] == [unlabeled[i]["id"] for i in selection["indices"]]
    assert tasks[0]["data"]["image"] == unlabeled[selection["indices"][0]]["path"]
    assert (batch_project / "labeling/tasks.csv").read_text().startswith("sample_id,image,score")
    assert '<Choice value="3"/>' in (batch_project / "labeling/label_config.xml").read_text()


def test_import_labels_the_pool_and_twice_changes_nothing(batch_project):
    ids = batch_ids(batch_project)
    export = full_export(batch_project, {s: [annotation(str(i % 4))] for i, s in enumerate(ids)})
    (batch_project / "export.json").write_text(json.dumps(export))
    result = run_alops("labels", "import", "export.json", cwd=batch_project)
    assert result.returncode == 0, result.stderr
    assert "6 labels accepted, 6 samples changed" in result.stdout
    labels = {r["id"]: r["label"] for r in read_manifest(batch_project / "data/full/manifest.csv")}
    assert [labels[s] for s in ids] == [str(i % 4) for i in range(6)]
    before = manifest_hash(batch_project)
    again = run_alops("labels", "import", "export.json", cwd=batch_project)
    assert again.returncode == 0 and "0 samples changed" in again.stdout
    assert manifest_hash(batch_project) == before


def test_without_the_batch_file_the_exports_own_tasks_are_the_batch(batch_project):
    """An import pipeline's fresh clone has the labelers' export, not the query pipeline's batch.json."""
    ids = batch_ids(batch_project)
    batch_id = json.loads((batch_project / "labeling/batch.json").read_text())["batch_id"]
    export = full_export(batch_project, {s: [annotation("3")] for s in ids[:4]})  # two still unlabeled
    (batch_project / "export.json").write_text(json.dumps(export))
    (batch_project / "labeling/batch.json").unlink()
    result = run_alops("labels", "import", "export.json", "--no-commit", cwd=batch_project)
    assert result.returncode == 0, result.stderr
    assert "4 labels accepted, 4 samples changed" in result.stdout
    assert all(task["data"]["batch_id"] == batch_id for task in export)  # the tasks carry their batch
    missing = run_alops("labels", "import", "export.json", "--batch", "elsewhere/batch.json", cwd=batch_project)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1  # asked for: must exist


def test_json_min_and_csv_exports(batch_project):
    ids = batch_ids(batch_project)
    minimal = [{"id": n, "sample_id": s, "label": "2", "annotator": "a@x"} for n, s in enumerate(ids)]
    (batch_project / "min.json").write_text(json.dumps(minimal))
    first = run_alops("labels", "import", "min.json", cwd=batch_project)
    assert first.returncode == 0 and "6 labels accepted" in first.stdout, first.stderr
    (batch_project / "export.csv").write_text("sample_id,label,annotator\n" + "".join(f"{s},1,b\n" for s in ids))
    result = run_alops("labels", "import", "export.csv", cwd=batch_project)
    assert result.returncode == 0 and "6 samples changed" in result.stdout, result.stderr
    assert {r["id"]: r["label"] for r in read_manifest(batch_project / "data/full/manifest.csv") if r["id"] in ids} == \
        dict.fromkeys(ids, "1")


def test_disagreement_and_cancelled_go_back_to_the_queue(batch_project):
    ids = batch_ids(batch_project)
    labels = {s: [annotation("1", 1), annotation("1", 2), annotation("2", 3)] for s in ids[:4]}
    labels[ids[4]] = [annotation("1", 1), annotation("3", 2)]  # a tie
    labels[ids[5]] = [annotation("0", 1, cancelled=True)]
    (batch_project / "export.json").write_text(json.dumps(full_export(batch_project, labels)))
    result = run_alops("labels", "import", "export.json", "--min-agreement", "0.6", cwd=batch_project)
    assert result.returncode == 0, result.stderr
    assert f"back to the queue: {ids[4]}: annotators disagree" in result.stdout
    assert f"back to the queue: {ids[5]}: no annotation" in result.stdout
    assert "4 labels accepted" in result.stdout and "1 cancelled annotations ignored" in result.stdout
    strict = run_alops("labels", "import", "export.json", "--min-agreement", "0.9", cwd=batch_project)
    assert "0 labels accepted" in strict.stdout


def test_an_annotator_votes_once_per_sample(batch_project):
    """One annotator repeated three times (or across two tasks of one sample) does not outvote two others."""
    ids = batch_ids(batch_project)
    labels = {s: [annotation("1", 1)] for s in ids}
    labels[ids[0]] = [annotation("2", 7), annotation("2", 7), annotation("2", 7), annotation("1", 1), annotation("1", 2)]
    export = full_export(batch_project, labels)
    export.append({"id": 50, "data": export[1]["data"], "annotations": [annotation("3", 9)]})
    export.append({"id": 51, "data": export[1]["data"], "annotations": [annotation("3", 9)]})  # same annotator again
    (batch_project / "export.json").write_text(json.dumps(export))
    result = run_alops("labels", "import", "export.json", "--min-agreement", "0.6", cwd=batch_project)
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r["label"] for r in read_manifest(batch_project / "data/full/manifest.csv")}
    assert rows[ids[0]] == "1"  # two annotators said 1, one (three times) said 2
    assert f"back to the queue: {ids[1]}: annotators disagree" in result.stdout  # annotator 1 vs 9, once each


BAD_EXPORTS = {
    "duplicate task": lambda ids, export: export + export[:1],
    "unknown class": lambda ids, export: [{**export[0], "annotations": [annotation("9")]}] + export[1:],
    "not in batch": lambda ids, export: export + [{"id": 99, "data": {"sample_id": "nope"}, "annotations": [annotation("1")]}],
    "partial": lambda ids, export: export[:3],
    "annotation not an object": lambda ids, export: [{**export[0], "annotations": ["1"]}] + export[1:],
    "data not an object": lambda ids, export: [{**export[0], "data": "x"}] + export[1:],
}
MESSAGES = {"annotation not an object": "annotations a list of objects", "data not an object": "data must be an object",
            "duplicate task": "appears twice", "unknown class": "label '9' is not a class",
            "not in batch": "sample 'nope' (task 99) was not in batch", "partial": "the export covers 3 of 6 samples"}


@pytest.mark.parametrize("case", list(BAD_EXPORTS))
def test_bad_exports_change_nothing(batch_project, case):
    ids = batch_ids(batch_project)
    export = full_export(batch_project, {s: [annotation("1")] for s in ids})
    (batch_project / "export.json").write_text(json.dumps(BAD_EXPORTS[case](ids, export)))
    before = manifest_hash(batch_project)
    result = run_alops("labels", "import", "export.json", cwd=batch_project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert MESSAGES[case] in result.stderr and "Traceback" not in result.stderr
    assert manifest_hash(batch_project) == before


def test_truncated_export_and_partial_flag(batch_project):
    ids = batch_ids(batch_project)
    text = json.dumps(full_export(batch_project, {s: [annotation("1")] for s in ids}))
    (batch_project / "export.json").write_text(text[: len(text) // 2])
    before = manifest_hash(batch_project)
    result = run_alops("labels", "import", "export.json", cwd=batch_project)
    assert result.returncode == 2 and "is the export truncated?" in result.stderr
    assert manifest_hash(batch_project) == before
    (batch_project / "export.json").write_text(json.dumps(full_export(batch_project, {s: [annotation("1")] for s in ids[:2]})))
    partial = run_alops("labels", "import", "export.json", "--partial", cwd=batch_project)
    assert partial.returncode == 0 and "2 labels accepted" in partial.stdout and "4 back to the queue" in partial.stdout


def test_hand_off_through_a_real_label_studio(batch_project, label_studio):
    import requests

    url, token = label_studio
    env = clean_env(LABEL_STUDIO_API_KEY=token)
    exported = run_alops("labels", "export", "selection.json", "--model-version", "v7", "--label-studio-url", url,
                         "--project", "digits round 1", cwd=batch_project, env=env)
    assert exported.returncode == 0, exported.stderr
    assert "6 tasks added" in exported.stdout
    again = run_alops("labels", "export", "selection.json", "--model-version", "v7", "--label-studio-url", url,
                      "--project", "digits round 1", cwd=batch_project, env=env)
    assert "0 tasks added" in again.stdout  # a restarted job adds nothing twice

    headers = {"Authorization": f"Token {token}"}
    project = next(p for p in requests.get(f"{url}/api/projects", headers=headers, timeout=30).json()["results"]
                   if p["title"] == "digits round 1")
    tasks = requests.get(f"{url}/api/tasks", params={"project": project["id"], "page_size": 100}, headers=headers, timeout=30).json()["tasks"]
    assert len(tasks) == 6
    wanted = {}
    for number, task in enumerate(tasks):
        wanted[task["data"]["sample_id"]] = str(number % 4)
        answer = {"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                              "value": {"choices": [str(number % 4)]}}], "was_cancelled": False}
        response = requests.post(f"{url}/api/tasks/{task['id']}/annotations", json=answer, headers=headers, timeout=30)
        assert response.status_code == 201, response.text

    imported = run_alops("labels", "import", "--label-studio-url", url, "--project", "digits round 1", cwd=batch_project, env=env)
    assert imported.returncode == 0, imported.stderr
    assert "6 labels accepted, 6 samples changed" in imported.stdout
    assert len(json.loads((batch_project / "labeling/export.json").read_text())) == 6
    for task in tasks:
        predictions = requests.get(f"{url}/api/predictions", params={"task": task["id"]}, headers=headers, timeout=30).json()
        assert predictions[0]["model_version"] == "v7" and isinstance(predictions[0]["score"], float)
    labels = {r["id"]: r["label"] for r in read_manifest(batch_project / "data/full/manifest.csv")}
    assert {s: labels[s] for s in wanted} == wanted
    assert token not in exported.stdout + exported.stderr + imported.stdout + imported.stderr


def test_an_import_job_on_a_fresh_clone_finds_the_batch_in_label_studio(batch_project, label_studio):
    """The query pipeline's files are gone (another pipeline, a fresh clone): the tasks in Label Studio carry the
    sample and batch ids, so the import fetches what is annotated so far; the rest comes with a later import."""
    import shutil

    import requests

    url, token = label_studio
    env = clean_env(LABEL_STUDIO_API_KEY=token, LABEL_STUDIO_URL=url, LABEL_STUDIO_PROJECT="fresh clone round")
    exported = run_alops("labels", "export", "selection.json", cwd=batch_project, env=env)  # URL from CI variables
    assert exported.returncode == 0 and "6 tasks added" in exported.stdout, exported.stderr
    batch_id = json.loads((batch_project / "labeling/batch.json").read_text())["batch_id"]
    shutil.rmtree(batch_project / "labeling")  # what the import pipeline's clone lacks

    headers = {"Authorization": f"Token {token}"}
    project = next(p for p in requests.get(f"{url}/api/projects", headers=headers, timeout=30).json()["results"]
                   if p["title"] == "fresh clone round")
    tasks = requests.get(f"{url}/api/tasks", params={"project": project["id"], "page_size": 100}, headers=headers,
                         timeout=30).json()["tasks"]
    assert {t["data"]["batch_id"] for t in tasks} == {batch_id}

    def annotate(task, label):
        answer = {"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                              "value": {"choices": [label]}}], "was_cancelled": False}
        assert requests.post(f"{url}/api/tasks/{task['id']}/annotations", json=answer, headers=headers,
                             timeout=30).status_code == 201

    for task in tasks[:3]:
        annotate(task, "2")
    first = run_alops("labels", "import", cwd=batch_project, env=env)
    assert first.returncode == 0, first.stderr
    assert "3 labels accepted, 3 samples changed" in first.stdout
    for task in tasks[3:]:
        annotate(task, "1")
    second = run_alops("labels", "import", cwd=batch_project, env=env)
    assert second.returncode == 0, second.stderr
    assert "6 labels accepted, 3 samples changed" in second.stdout  # the first three again: no change
    labels = {r["id"]: r["label"] for r in read_manifest(batch_project / "data/full/manifest.csv")}
    assert [labels[t["data"]["sample_id"]] for t in tasks] == ["2"] * 3 + ["1"] * 3
    assert token not in first.stdout + first.stderr + second.stdout + second.stderr


def test_label_studio_errors_are_one_line_without_the_token(batch_project, label_studio):
    url, _ = label_studio
    result = run_alops("labels", "export", "selection.json", "--label-studio-url", url, cwd=batch_project,
                       env=clean_env(LABEL_STUDIO_API_KEY="wrong-token-123"))
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr and "wrong-token-123" not in result.stderr
    missing = run_alops("labels", "export", "selection.json", "--label-studio-url", url, cwd=batch_project)
    assert missing.returncode == 2 and "LABEL_STUDIO_API_KEY" in missing.stderr


FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "labels"


@pytest.fixture
def fixture_pool(repo):
    """A pool whose unlabeled samples 101..106 match tests/fixtures/labels/batch.json."""
    from datasets import write_manifest

    dvc(repo, "init", "-q")
    (repo / "alops.yaml").write_text("data:\n  classes: ['0', '1', '2', '3']\n")
    (repo / "data/full").mkdir(parents=True)
    rows = [{"id": str(i), "label": "" if i > 100 else str(i % 4), "split": "train", "x": str(i / 10)} for i in (1, 2, 3, *range(101, 107))]
    write_manifest(repo / "data/full/manifest.csv", rows)
    return repo


@pytest.mark.parametrize("name,message", [
    ("duplicate_task.json", "task 1 appears twice"),
    ("unknown_class.json", "label '7' is not a class"),
    ("not_in_batch.json", "sample '999' (task 50) was not in batch fixture01"),
    ("partial.json", "the export covers 4 of 6 samples"),
    ("truncated.json", "is the export truncated?"),
])
def test_fixture_exports_that_must_be_refused(fixture_pool, name, message):
    before = manifest_hash(fixture_pool)
    result = run_alops("labels", "import", str(FIXTURES / name), "--batch", str(FIXTURES / "batch.json"), cwd=fixture_pool)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
    assert manifest_hash(fixture_pool) == before


@pytest.mark.parametrize("name", ["good.json", "good_min.json", "good.csv"])
def test_fixture_exports_in_each_format(fixture_pool, name):
    result = run_alops("labels", "import", str(FIXTURES / name), "--batch", str(FIXTURES / "batch.json"), cwd=fixture_pool)
    assert result.returncode == 0, result.stderr
    labels = {r["id"]: r["label"] for r in read_manifest(fixture_pool / "data/full/manifest.csv")}
    assert [labels[str(i)] for i in range(101, 107)] == ["0", "1", "2", "3", "0", "1"]
    assert [labels[str(i)] for i in (1, 2, 3)] == ["1", "2", "3"]  # labeled samples untouched


def test_fixture_disagreement_and_cancelled(fixture_pool):
    result = run_alops("labels", "import", str(FIXTURES / "disagreement_and_cancelled.json"), "--batch",
                       str(FIXTURES / "batch.json"), "--min-agreement", "0.6", cwd=fixture_pool)
    assert result.returncode == 0, result.stderr
    assert "back to the queue: 105: annotators disagree" in result.stdout
    assert "back to the queue: 106: no annotation (cancelled or empty)" in result.stdout
    labels = {r["id"]: r["label"] for r in read_manifest(fixture_pool / "data/full/manifest.csv")}
    assert [labels[str(i)] for i in range(101, 107)] == ["1", "1", "1", "1", "", ""]


def test_a_selection_with_ids_is_exported_by_id_even_when_scored_on_other_rows(repo):
    """The default branch scores its dev pool; the export runs against the full manifest: rows are joined by id,
    not by position (positions of a dev pool mean nothing in the full manifest)."""
    dvc(repo, "init", "-q")
    (repo / "alops.yaml").write_text("data:\n  classes: ['0', '1', '2', '3']\n")
    rows = write_full_dataset(repo / "data/full", n=60)
    unlabeled = [r["id"] for r in rows if r["label"] == ""]
    dev_pool = unlabeled[::3]  # a dev subset of the unlabeled rows, scored in its own order
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=len(dev_pool)).astype(np.float32)
    np.save(repo / "pool.npy", probs)
    (repo / "pool_ids.txt").write_text("".join(f"{s}\n" for s in dev_pool))
    shards = []
    for i in range(3):  # sharded selections carry the ids through the merge
        result = run_alops("query", "select", "pool.npy", "--ids", "pool_ids.txt", "-k", "4", "--strategy", "margin",
                           "--shard", f"{i}/3", "--out", f"s{i}.json", cwd=repo)
        assert result.returncode == 0, result.stderr
        shards.append(f"s{i}.json")
    assert run_alops("query", "merge", *shards, cwd=repo).returncode == 0
    selection = json.loads((repo / "selection.json").read_text())
    margin = -(np.sort(probs, axis=1)[:, -1] - np.sort(probs, axis=1)[:, -2])
    expected = sorted(range(len(dev_pool)), key=lambda r: (-margin[r], r))[:4]  # the formula, by brute force
    assert selection["indices"] == expected and selection["sample_ids"] == [dev_pool[r] for r in expected]
    exported = run_alops("labels", "export", "selection.json", cwd=repo)
    assert exported.returncode == 0, exported.stderr
    tasks = json.loads((repo / "labeling/tasks.json").read_text())
    assert [t["data"]["sample_id"] for t in tasks] == [dev_pool[r] for r in expected]
    by_id = {r["id"]: r for r in rows}
    assert [t["data"]["image"] for t in tasks] == [by_id[dev_pool[r]]["path"] for r in expected]


def test_ids_that_do_not_match_the_pool_are_one_line(repo):
    np.save(repo / "pool.npy", np.full((5, 2), 0.5, np.float32))
    (repo / "ids.txt").write_text("a\nb\nc\n")
    result = run_alops("query", "select", "pool.npy", "--ids", "ids.txt", "-k", "2", cwd=repo)
    assert result.returncode == 2 and not (repo / "selection.json").exists()
    assert result.stderr.strip().splitlines() == [
        "alops: error: ids.txt: 3 ids for a pool of 5 rows; write one id per pool row, in the pool's order"]


def test_image_prefix_points_tasks_at_where_the_files_are_served(batch_project):
    result = run_alops("labels", "export", "selection.json", "--image-prefix", "https://files.example.com/pool/",
                       "--out", "served", cwd=batch_project)
    assert result.returncode == 0, result.stderr
    tasks = json.loads((batch_project / "served/tasks.json").read_text())
    plain = json.loads((batch_project / "labeling/tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == ["https://files.example.com/pool/" + t["data"]["image"] for t in plain]


def test_selections_and_batches_record_the_commit_and_data_version_that_scored_them(batch_project):
    from conftest import git

    dvc(batch_project, "add", "-q", "data/full")
    git(batch_project, "add", "-A")
    git(batch_project, "commit", "-q", "-m", "scored")
    result = run_alops("query", "select", "pool.npy", "-k", "3", "--strategy", "margin", cwd=batch_project)
    assert result.returncode == 0, result.stderr
    selection = json.loads((batch_project / "selection.json").read_text())
    version = run_alops("data", "version", cwd=batch_project).stdout.strip()
    assert selection["commit"] == git(batch_project, "rev-parse", "HEAD") and selection["data_version"] == version
    assert run_alops("labels", "export", "selection.json", cwd=batch_project).returncode == 0
    batch = json.loads((batch_project / "labeling/batch.json").read_text())
    assert (batch["scored_at_commit"], batch["data_version"], batch["strategy"], batch["k"]) == \
        (selection["commit"], version, "margin", 3)


def test_a_pool_scored_before_the_last_import_skips_the_samples_labeled_since_and_shards_stay_exact(repo):
    """The scheduled query on an al/ branch reads a pool file written before labels were imported: with
    --skip-labeled those samples are never picked again, and k of the rest are, the formula's top k over them."""
    import csv

    (repo / "alops.yaml").write_text("data:\n  classes: ['0', '1', '2', '3']\n")
    rows = write_full_dataset(repo / "data/full", n=400)
    pool = [r["id"] for r in rows if r["label"] == ""]
    probs = np.random.default_rng(4).dirichlet(np.ones(4), size=len(pool)).astype(np.float32)
    np.save(repo / "pool.npy", probs)
    (repo / "ids.txt").write_text("".join(f"{sample}\n" for sample in pool))
    top = np.sort(probs.astype(np.float64), axis=1)
    ranked = [pool[row] for row in np.lexsort((np.arange(len(pool)), top[:, -1] - top[:, -2]))]
    labeled_since = set(ranked[:5]) | {ranked[40]}  # the last import labeled the best five and one further down
    manifest = repo / "data/full/manifest.csv"
    with open(manifest, newline="") as handle:
        table = list(csv.DictReader(handle))
    for row in table:
        if row["id"] in labeled_since:
            row["label"] = "1"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)

    for shard in ("0/3", "1/3", "2/3"):
        result = run_alops("query", "select", "pool.npy", "--ids", "ids.txt", "--skip-labeled", "-k", "10",
                           "--shard", shard, "--out", f"shard-{shard[0]}.json", cwd=repo)
        assert result.returncode == 0, result.stderr
        assert "6 pool samples labeled since were skipped" in result.stdout
    merged = run_alops("query", "merge", "shard-0.json", "shard-1.json", "shard-2.json", cwd=repo)
    assert merged.returncode == 0, merged.stderr
    selection = json.loads((repo / "selection.json").read_text())
    assert selection["sample_ids"] == [sample for sample in ranked if sample not in labeled_since][:10]
    single = run_alops("query", "select", "pool.npy", "--ids", "ids.txt", "--skip-labeled", "-k", "10",
                       "--out", "one.json", cwd=repo)
    assert single.returncode == 0 and json.loads((repo / "one.json").read_text())["indices"] == selection["indices"]

    for args, message in (
            (["--skip-labeled"], "add --ids"),
            (["--ids", "ids.txt", "--skip-labeled", "--strategy", "core-set", "--embeddings", "pool.npy"],
             "top-k strategies only"),
            (["--ids", "ids.txt", "--skip-labeled", "-k", str(len(pool) - 5)], "still unlabeled")):
        result = run_alops("query", "select", "pool.npy", *args, *([] if "-k" in args else ["-k", "3"]),
                           "--out", "bad.json", cwd=repo)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and not (repo / "bad.json").exists()
    manifest.unlink()
    missing = run_alops("query", "select", "pool.npy", "--ids", "ids.txt", "--skip-labeled", "-k", "3", cwd=repo)
    assert missing.returncode == 2 and "alops data pull --dataset full --manifest-only" in missing.stderr


@pytest.mark.parametrize("balanced", [False, True])
def test_every_strategy_name_reaches_the_report_through_the_import_commit_trailer(repo, balanced):
    """The al/ report names the branch's strategy from the label import's commit: every strategy the CLI
    offers (hyphens and the balanced variants' + included) survives the trip through git's trailer parser."""
    from alops.al.strategies import STRATEGIES, make_strategy
    from alops.labels.handoff import import_commit_message
    from alops.report.merge_request import _branch_strategy

    names = []
    for name in STRATEGIES:
        try:
            names.append(make_strategy(name, balanced=balanced).name)
        except ConfigError:  # strategies without a balanced variant
            continue
    assert len(names) >= 3
    for name in names:
        git(repo, "commit", "-q", "--allow-empty", "-m", import_commit_message({"batch_id": "b1", "strategy": name}))
        assert _branch_strategy(str(repo)) == name


@pytest.mark.parametrize("hostile", ["margin\nAlops-Strategy: random", "margin; rm -rf /", "", "x" * 81, ["margin"]])
def test_a_strategy_value_that_is_not_a_name_never_becomes_a_trailer(hostile):
    from alops.labels.handoff import STRATEGY_TRAILER, import_commit_message

    message = import_commit_message({"batch_id": "b1", "strategy": hostile})
    assert message == "Labels of batch b1" and STRATEGY_TRAILER not in message


def _answering(pages: dict[str, tuple[int, str, bytes]]):
    """An HTTP server on 127.0.0.1 answering each path (query string ignored) with (status, type, body)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            status, kind, body = pages.get(self.path.split("?")[0], (404, "application/json", b'{"detail": "no"}'))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


JSON = "application/json"


WRONG_ANSWERS = [
    ({"/api/projects": (200, "text/html", b"<html><body>Sign in</body></html>")}, "not JSON"),
    ({"/api/projects": (200, JSON, b"42")}, "unexpected shape"),
    ({"/api/projects": (200, JSON, b'{"results": [{"title": "alops"}]}')}, "without an integer id"),
    ({"/api/projects": (200, JSON, b'{"results": [{"title": "alops", "id": [1]}]}')}, "without an integer id"),
    ({"/api/projects": (200, JSON, b'{"results": "none"}')}, "not a list of objects"),
    ({"/api/projects": (200, JSON, b'[{"title": "alops", "id": 1}]'),
      "/api/projects/1/export": (200, JSON, b'{"detail": "later"}')}, "unexpected shape"),
    ({"/api/projects": (200, JSON, b'[{"title": "alops", "id": 1}]'),
      "/api/projects/1/export": (200, JSON, b'[1, 2]')}, "not a list of objects"),
    ({"/api/projects": (400, JSON, b'["an error list"]')}, "HTTP 400"),
]


def test_label_studio_answers_of_the_wrong_shape_are_one_line(batch_project):
    """An HTML login page, a number, projects without ids, pages that are not lists: one line each, no export."""
    for pages, words in WRONG_ANSWERS:
        server = _answering(pages)
        try:
            result = run_alops("labels", "import", "export.json", "--label-studio-url",
                               f"http://127.0.0.1:{server.server_address[1]}", "--project", "alops", "--no-commit",
                               cwd=batch_project, env=clean_env(LABEL_STUDIO_API_KEY="t0ken-secret"))
        finally:
            server.shutdown()
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and words in lines[0], result.stderr
        assert "Traceback" not in result.stderr and "t0ken-secret" not in result.stderr
        assert not (batch_project / "export.json").exists()


MALFORMED_EXPORTS = [
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
    (json.dumps([{"id": 1, "data": {"sample_id": "x"}, "annotations": [{"result": [{"value": {"choices": {"a": 1}}}]}]}]),
     "`choices` must be a list"),
    (json.dumps([{"id": 1, "data": {"sample_id": "x"}, "annotations": [{"result": [{"value": {"choices": 3}}]}]}]),
     "`choices` must be a list"),
    (json.dumps([{"id": [1], "data": {"sample_id": "x"}, "annotations": []}]), "its id must be a string or an integer"),
    (json.dumps([{"id": 1, "data": {"sample_id": {"a": 1}}, "annotations": []}]), "data.sample_id must be"),
    (json.dumps([{"detail": "Authentication credentials were not provided."}]), "has no sample_id"),
]


def test_malformed_exports_are_one_line_and_change_nothing(batch_project):
    before = manifest_hash(batch_project)
    for content, words in MALFORMED_EXPORTS:
        (batch_project / "export.json").write_bytes(content if isinstance(content, bytes) else content.encode())
        result = run_alops("labels", "import", "export.json", "--no-commit", cwd=batch_project)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and words in lines[0], result.stderr
        assert manifest_hash(batch_project) == before


def test_a_batch_record_of_the_wrong_types_is_one_line(batch_project):
    (batch_project / "export.json").write_text("[]")
    for batch, words in [({"sample_ids": "abc"}, "no sample_ids list"),
                         ({"sample_ids": [{"a": 1}]}, "sample_ids must be a list"),
                         ({"sample_ids": ["1"], "classes": 4}, "classes must be a list")]:
        (batch_project / "bad-batch.json").write_text(json.dumps({"batch_id": "b", **batch}))
        result = run_alops("labels", "import", "export.json", "--batch", "bad-batch.json", "--no-commit",
                           cwd=batch_project)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("min_agreement", [0.0, 0.5])
def test_a_tie_between_annotators_is_requeued_however_low_the_agreement_bar(min_agreement):
    """Two labels with the same count have no majority: neither wins, even when the bar would let a half pass."""
    from alops.labels.handoff import Vote, decide

    batch = {"batch_id": "b1", "sample_ids": ["s1", "s2"], "classes": ["cat", "dog"]}
    votes = [Vote("s1", 1, "ann", "cat"), Vote("s1", 1, "bob", "dog"),
             Vote("s2", 2, "ann", "dog"), Vote("s2", 2, "bob", "dog"), Vote("s2", 2, "cy", "cat")]
    report = decide(votes, batch, min_agreement, allow_partial=False)
    assert report.accepted == {"s2": "dog"}
    assert report.requeued == {"s1": "annotators disagree ({'cat': 1, 'dog': 1})"}
