"""Hostile input: every case exits non-zero with one readable line, changes no file, leaks no credential."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import clean_env, git, run_alops
from datasets import write_full_dataset


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".git" not in p.parts and "cache" not in p.parts
            and "tmp" not in p.parts}


def assert_one_line_refusal(result, code: int, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("alops: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def tracked(dvc_project: Path) -> Path:
    return dvc_project


@pytest.mark.parametrize("dev", [".", "data/full", "data", "data/full/dev"])
def test_dev_folders_that_would_destroy_data_are_refused(tracked, dev):
    (tracked / "alops.yaml").write_text(f"data: {{full: data/full, dev: {dev}}}\n")
    before = checksums(tracked)
    result = run_alops("data", "make-dev", "--fraction", "0.5", cwd=tracked)
    assert_one_line_refusal(result, 2, "data.dev")
    assert checksums(tracked) == before
    assert (tracked / ".git").is_dir() and (tracked / ".dvc").is_dir()


def test_a_link_out_of_the_dataset_is_refused_not_copied(tracked, tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("not data")
    rows = write_full_dataset(tracked / "data" / "full", n=60)
    os.remove(tracked / "data" / "full" / rows[0]["path"])
    os.symlink(secret, tracked / "data" / "full" / rows[0]["path"])
    result = run_alops("data", "make-dev", "--fraction", "1.0", "--no-track", cwd=tracked)
    assert_one_line_refusal(result, 2, "outside the dataset folder")
    assert not (tracked / "data" / "dev").exists()


def test_credentials_in_the_tracking_uri_never_appear(tracked):
    env = clean_env(MLFLOW_TRACKING_URI="http://alice:pw-canary-77@127.0.0.1:9/", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                    MLFLOW_HTTP_REQUEST_TIMEOUT="2")
    result = run_alops("select-best", "--metric", "acc", "--kind", "experiment", cwd=tracked, env=env)
    assert result.returncode != 0
    assert "pw-canary-77" not in result.stdout + result.stderr and "alice" not in result.stderr
    assert "http://***@127.0.0.1:9" in result.stderr  # shown masked, as docs/operations.md says
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_nan_and_infinite_params_are_refused(tracked, value):
    (tracked / "params.yaml").write_text(f"train:\n  lr: {value}\n")
    (tracked / "params.schema.yaml").write_text("train.lr: {type: float, min: 0.0, max: 1.0}\n")
    result = run_alops("params", "check", cwd=tracked)
    assert result.returncode == 2 and "train.lr" in result.stderr


def test_a_schema_with_a_non_numeric_bound_is_one_line(tracked):
    (tracked / "params.yaml").write_text("train:\n  lr: 0.1\n")
    (tracked / "params.schema.yaml").write_text("train.lr: {type: float, min: low}\n")
    assert_one_line_refusal(run_alops("params", "check", cwd=tracked), 2, "train.lr.min", "not a number")


@pytest.mark.parametrize("strategy", ["least-confidence", "margin", "entropy"])
def test_negative_probabilities_are_refused_by_every_uncertainty_strategy(tmp_path, strategy):
    probs = np.full((50, 3), 1 / 3, dtype=np.float32)
    probs[17] = [0.6, -0.2, 0.6]  # sums to 1
    np.save(tmp_path / "pool.npy", probs)
    result = run_alops("query", "select", "pool.npy", "-k", "5", "--strategy", strategy, cwd=tmp_path)
    assert_one_line_refusal(result, 2, "row 17", ">= 0")
    assert not (tmp_path / "selection.json").exists()


def test_report_values_render_as_inert_text():
    from alops.report.merge_request import Report, Side, code, render

    hostile = ["@all", "![x](https://evil.example/beacon.png)", "a`b``c", "[click](https://evil.example)", "<img src=x>"]
    current = Side("workspace", {name: 1.0 for name in hostile}, {name: name for name in hostile}, "dv-1")
    baseline = Side("committed", {}, {name: "old" for name in hostile}, "dv-0")
    text = render(Report(branch="feature/@all`x", target="main", kind="feature", current=current, baseline=baseline))
    outside = text
    for value in hostile + ["feature/@all`x"]:
        outside = outside.replace(code(value), "")
    for value in hostile:
        assert value not in outside  # every hostile value sits only inside its code span
    assert code("a`b``c") == "```a`b``c```"


def test_label_studio_config_escapes_class_names():
    import xml.etree.ElementTree as ElementTree

    from alops.labels.handoff import label_config

    names = ['cat"/><Script>x</Script><Choice value="', "dog & <b>"]
    root = ElementTree.fromstring(label_config(names))
    assert [c.get("value") for c in root.iter("Choice")] == names


def test_metric_names_mlflow_refuses_are_normalised():
    from alops.runs.metrics import metric_name

    assert metric_name("loss//val") == "loss/val" and metric_name("/x/") == "x" and metric_name("acc..test") == "acc.test"



def test_params_check_without_a_schema_is_a_notice(tracked):
    (tracked / "params.yaml").write_text("train:\n  lr: 0.1\n")
    result = run_alops("params", "check", cwd=tracked)
    assert result.returncode == 0 and "notice: no params.schema.yaml" in result.stderr


def test_dataset_is_optional_in_the_schema(tracked):
    (tracked / "params.yaml").write_text("train:\n  lr: 0.1\n")
    (tracked / "params.schema.yaml").write_text("dataset: {type: str, allowed: [dev, full]}\ntrain.lr: {type: float}\n")
    result = run_alops("params", "check", cwd=tracked)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["{{ cookiecutter.__class__ }}", "{% raw %}x", "a\nb"])
def test_a_project_name_is_data_never_a_template(tmp_path, name):
    result = run_alops("new", str(tmp_path / "p"), "--name", name, cwd=tmp_path)
    assert_one_line_refusal(result, 2, "--name")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", ["<f2", ">f4", ">f8"])
def test_half_precision_and_big_endian_pools_select_as_float32_does(tmp_path, dtype):
    probs = np.random.default_rng(8).dirichlet(np.ones(4), size=300)
    np.save(tmp_path / "native.npy", probs.astype(dtype).astype(np.float32))
    np.save(tmp_path / "other.npy", probs.astype(dtype))
    for name in ("native", "other"):
        result = run_alops("query", "select", f"{name}.npy", "-k", "9", "--out", f"{name}.json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    import json

    assert json.loads((tmp_path / "other.json").read_text())["indices"] == \
        json.loads((tmp_path / "native.json").read_text())["indices"]


def test_a_pool_without_classes_is_one_line(tmp_path):
    np.save(tmp_path / "pool.npy", np.empty((20, 0), np.float32))
    assert_one_line_refusal(run_alops("query", "select", "pool.npy", "-k", "3", cwd=tmp_path), 2, "no classes")


def test_a_truncated_buffered_run_is_one_line_and_kept(tracked):
    folder = tracked / ".alops" / "tracking-buffer" / "abc"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text('{"experiment": "x"')
    result = run_alops("track", "sync", cwd=tracked)
    assert_one_line_refusal(result, 2, "not a complete buffered run")
    assert (folder / "run.json").exists()


def test_unknown_params_and_sets_are_refused_with_the_closest_name(tracked):
    (tracked / "params.yaml").write_text("train:\n  lr: 0.1\n  lrr: 0.01\n")
    (tracked / "params.schema.yaml").write_text("train.lr: {type: float}\n")
    result = run_alops("params", "check", cwd=tracked)
    assert result.returncode == 2 and "train.lrr: not in params.schema.yaml" in result.stderr
    assert "did you mean 'train.lr'?" in result.stderr
    (tracked / "params.yaml").write_text("train:\n  lr: 0.1\n")
    git(tracked, "switch", "-q", "-c", "feature/typo")
    before = (tracked / "params.yaml").read_text()
    dry = run_alops("run", "--dry-run", "--set", "train.lrr=0.01", cwd=tracked)
    assert_one_line_refusal(dry, 2, "--set train.lrr: no such parameter; did you mean 'train.lr'?")
    assert (tracked / "params.yaml").read_text() == before


def test_a_manifest_line_of_several_mb_is_one_line(tmp_path):
    from alops.core.errors import ConfigError
    from alops.data.manifest import inspect_manifest, iter_batches

    path = tmp_path / "manifest.csv"
    path.write_text("id,label,split\n" + "".join(f"{i},a,train\n" for i in range(10)) + "10," + "x" * (5 << 20) + ",train\n")
    with pytest.raises(ConfigError, match="a line is longer than the 1 MiB"):
        sum(batch.num_rows for batch in iter_batches(inspect_manifest(str(path))))


@pytest.mark.parametrize("name, content, words", [
    ("dvc.yaml", b"- a\n- b\n", ["dvc.yaml", "mapping"]),
    ("dvc.yaml", b"stages: [train, evaluate]\n", ["dvc.yaml", "`stages:` must map"]),
    ("dvc.yaml", b"stages:\n  train: python train.py\n", ["dvc.yaml", "`stages:` must map"]),
    ("dvc.yaml", b"stages: \xff\n", ["dvc.yaml", "UTF-8"]),
    ("params.yaml", b"lr: \xff\n", ["params.yaml", "UTF-8"]),
    (".gitignore", b"\xff\xfe/data\n", [".gitignore", "UTF-8"]),
])
def test_init_on_a_malformed_or_non_utf8_team_file_is_one_line_and_writes_nothing(repo, name, content, words):
    (repo / name).write_bytes(content)
    before = checksums(repo)
    assert_one_line_refusal(run_alops("init", cwd=repo), 2, *words)
    assert checksums(repo) == before


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory) -> Path:
    """The selections of both shards of a 10-row pool, as `alops query select --shard` writes them."""
    folder = tmp_path_factory.mktemp("shards")
    np.save(folder / "pool.npy", np.full((10, 3), 1 / 3, np.float32))
    for shard in ("0/2", "1/2"):
        written = run_alops("query", "select", "pool.npy", "-k", "2", "--shard", shard, "--out", f"s{shard[0]}.json",
                            cwd=folder)
        assert written.returncode == 0, written.stderr
    return folder


@pytest.mark.parametrize("field, value", [("indices", {"0": 1}), ("indices", [0, 99]), ("scores", [0.5]),
                                          ("sample_ids", [1, 2]), ("k", "2"), ("rows", None), ("strategy", ["margin"])])
def test_a_selection_file_of_the_wrong_shape_is_one_line_naming_the_field(two_shards, tmp_path, field, value):
    import json
    import shutil

    for name in ("s0.json", "s1.json"):
        shutil.copy(two_shards / name, tmp_path / name)
    selection = json.loads((tmp_path / "s1.json").read_text())
    selection.update({"sample_ids": ["a", "b"], field: value})
    (tmp_path / "s1.json").write_text(json.dumps(selection))
    result = run_alops("query", "merge", "s0.json", "s1.json", cwd=tmp_path)
    assert_one_line_refusal(result, 2, "s1.json", field, "alops query select")
    assert not (tmp_path / "selection.json").exists()
