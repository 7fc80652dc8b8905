"""Streaming, sharded scoring through the CLI and the library: the same selection however it is split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_alops

from alops.al.scoring import Shard, merge, pool_digest, select_streaming


@pytest.fixture
def pool_file(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10) * 0.3, size=50_000).astype(np.float32)
    probs[1000:1100] = probs[1000]  # a block of exact ties
    path = tmp_path / "pool.npy"
    np.save(path, probs)
    return path, probs


def formula_scores(probs: np.ndarray, strategy: str) -> np.ndarray:
    """The strategies' formulas in float64, written from their definitions (higher: more uncertain)."""
    p = probs.astype(np.float64)
    top = np.sort(p, axis=1)
    if strategy == "least-confidence":
        return 1 - top[:, -1]
    if strategy == "margin":
        return -(top[:, -1] - top[:, -2])
    return -(p * np.log(np.where(p > 0, p, 1))).sum(axis=1)


def top_k_reference(scores: np.ndarray, k: int) -> list[int]:
    """The k highest scores, exact ties to the lower row."""
    return np.lexsort((np.arange(scores.size), -scores))[:k].tolist()


@pytest.mark.parametrize("strategy", ["least-confidence", "margin", "entropy"])
def test_streaming_picks_the_formulas_top_k_and_shards_merge_exactly(pool_file, strategy):
    """Against the formula in float64 and a brute-force sort, not against another alops kernel."""
    path, probs = pool_file
    single = select_streaming(str(path), strategy, 300, seed=4, chunk_rows=7_777)
    assert sorted(single.indices) == sorted(top_k_reference(formula_scores(probs, strategy), 300))
    for count in (2, 3, 7):
        shards = [select_streaming(str(path), strategy, 300, seed=4, shard=Shard(i, count), chunk_rows=5_000) for i in range(count)]
        assert merge(shards).indices == single.indices


def test_bald_streams_passes_from_disk_in_small_chunks_and_shards_merge_exactly(tmp_path, monkeypatch):
    """(T, N, C) passes read a few rows at a time (T reads per chunk): the picks are the formula's top k."""
    from alops.al.scoring import PassesSource

    rng = np.random.default_rng(5)
    mc = rng.dirichlet(np.ones(5), size=(7, 3000)).astype(np.float32)
    mc[:, 100:140] = mc[:, 100:101]  # exact ties
    np.save(tmp_path / "mc.npy", mc)
    passes = mc.astype(np.float64)
    mean = passes.mean(axis=0)
    expected = -(mean * np.log(mean)).sum(axis=1) + (passes * np.log(passes)).sum(axis=2).mean(axis=0)
    monkeypatch.setattr(PassesSource, "CHUNK_BYTES", 7 * 5 * 4 * 333)  # 333 rows a chunk: many chunks, a short last
    single = select_streaming(str(tmp_path / "mc.npy"), "bald", 60, chunk_rows=10_000)
    assert sorted(single.indices) == sorted(top_k_reference(expected, 60))
    shards = [select_streaming(str(tmp_path / "mc.npy"), "bald", 60, shard=Shard(i, 3)) for i in range(3)]
    assert merge(shards).indices == single.indices
    mc[3, 2500, 0] = -0.5
    mc[3, 2500, 1] += 0.5
    np.save(tmp_path / "bad.npy", mc)
    with pytest.raises(Exception, match="row 2500"):
        select_streaming(str(tmp_path / "bad.npy"), "bald", 60)


def test_random_selection_is_uniform_seeded_and_merges_exactly(pool_file):
    path, probs = pool_file
    picks = [select_streaming(str(path), "random", 300, seed=seed).indices for seed in (4, 4, 5)]
    assert picks[0] == picks[1] != picks[2] and len(set(picks[0])) == 300
    quarters = np.bincount(np.array(picks[0]) * 4 // len(probs), minlength=4)
    assert quarters.min() >= 45  # 75 expected per quarter of the pool; a skewed sampler lands far below
    shards = [select_streaming(str(path), "random", 300, seed=4, shard=Shard(i, 3)) for i in range(3)]
    assert merge(shards).indices == picks[0]


def test_parquet_pool_gives_the_npy_selection(pool_file, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path, probs = pool_file
    pq.write_table(pa.table({f"p{i}": probs[:, i] for i in range(10)}), tmp_path / "pool.parquet", row_group_size=4096)
    from_parquet = select_streaming(str(tmp_path / "pool.parquet"), "margin", 100, chunk_rows=3000)
    assert from_parquet.indices == select_streaming(str(path), "margin", 100).indices


def test_cli_shards_and_merge(pool_file, tmp_path):
    path, _ = pool_file
    for i in range(4):
        result = run_alops("query", "select", str(path), "-k", "50", "--strategy", "entropy", "--shard", f"{i}/4",
                           "--out", str(tmp_path / f"s{i}.json"), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    merged = run_alops("query", "merge", *[str(tmp_path / f"s{i}.json") for i in range(4)], "--out", str(tmp_path / "m.json"), cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    one = run_alops("query", "select", str(path), "-k", "50", "--strategy", "entropy", "--out", str(tmp_path / "one.json"),
                    cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert json.loads((tmp_path / "m.json").read_text())["indices"] == json.loads((tmp_path / "one.json").read_text())["indices"]


def test_cli_in_memory_strategies_pick_what_their_definitions_pick(tmp_path):
    """core-set, hybrid, BALD and balanced margin through the CLI, each against a reference written from its
    definition (brute-force k-center, the BALD formula, per-class top-k)."""
    from test_al_strategies import _k_center_reference

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=500).astype(np.float32)
    embeddings, labeled = rng.normal(size=(500, 8)), rng.normal(size=(40, 8))
    mc = np.stack([rng.dirichlet(np.ones(4), size=500) for _ in range(5)]).astype(np.float32)
    for name, array in (("probs", probs), ("emb", embeddings), ("labeled", labeled), ("mc", mc)):
        np.save(tmp_path / f"{name}.npy", array)

    def picks(*args):
        result = run_alops("query", "select", *args, "-k", "20", "--out", "sel.json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return sorted(json.loads((tmp_path / "sel.json").read_text())["indices"])

    core_set = picks("probs.npy", "--strategy", "core-set", "--embeddings", "emb.npy", "--labeled-embeddings", "labeled.npy")
    assert core_set == sorted(_k_center_reference(embeddings, 20, labeled))
    candidates = top_k_reference(formula_scores(probs, "margin"), 4 * 20)  # hybrid: beta = 4
    diverse = _k_center_reference(embeddings[candidates], 20, labeled)
    hybrid = picks("probs.npy", "--strategy", "hybrid", "--embeddings", "emb.npy", "--labeled-embeddings", "labeled.npy")
    assert hybrid == sorted(candidates[j] for j in diverse)
    passes = mc.astype(np.float64)
    mean = passes.mean(axis=0)
    bald_scores = -(mean * np.log(mean)).sum(axis=1) + (passes * np.log(passes)).sum(axis=2).mean(axis=0)
    assert picks("mc.npy", "--strategy", "bald") == sorted(top_k_reference(bald_scores, 20))
    predicted, margin = probs.argmax(axis=1), formula_scores(probs, "margin")
    per_class = [i for c in range(4) for i in top_k_reference(np.where(predicted == c, margin, -np.inf), 5)]
    assert picks("probs.npy", "--strategy", "margin", "--balanced") == sorted(per_class)  # 20 over 4 classes: 5 each


@pytest.mark.parametrize("mutate,args,message", [
    (lambda p: p.__setitem__((7, 2), np.nan), [], "row 7: not a probability distribution"),
    (lambda p: p.__setitem__(12345, p[12345] * 3), [], "row 12345: not a probability distribution"),
    (None, ["-k", "60000"], "larger than the pool (50000 samples)"),
    (None, ["--shard", "3/2"], "--shard '3/2': expected i/n"),
    (None, ["--shard", "two"], "expected i/n"),
    (None, ["--strategy", "core-set"], "needs embeddings"),
])
def test_bad_pools_and_options_fail_clearly_and_write_nothing(pool_file, tmp_path, mutate, args, message):
    path, probs = pool_file
    if mutate:
        probs = probs.copy()
        mutate(probs)
        np.save(path, probs)
    options = ["-k", "10", *args] if "-k" not in args else args
    result = run_alops("query", "select", str(path), *options, "--out", str(tmp_path / "sel.json"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "sel.json").exists()


def test_merge_refuses_missing_or_mismatched_shards(pool_file, tmp_path):
    path, _ = pool_file
    shards = [select_streaming(str(path), "margin", 10, shard=Shard(i, 3)) for i in range(3)]
    with pytest.raises(Exception, match="exactly once"):
        merge(shards[:2])
    shards[1].k = 11
    with pytest.raises(Exception, match="disagree on k"):
        merge(shards)


def test_truncated_npy_is_a_clear_error(pool_file, tmp_path):
    path, _ = pool_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = run_alops("query", "select", str(path), "-k", "5", "--out", str(tmp_path / "x.json"), cwd=tmp_path)
    assert result.returncode == 2 and "truncated" in result.stderr


def test_score_with_a_torchscript_model_then_select(tmp_path):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4))
    torch.jit.save(torch.jit.script(model), tmp_path / "model.pt")
    inputs = np.random.default_rng(0).normal(size=(5000, 6)).astype(np.float32)
    np.save(tmp_path / "pool.npy", inputs)
    scored = run_alops("query", "score", "model.pt", "pool.npy", "--out", "probs.npy", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(inputs)), dim=1).numpy()
    assert np.allclose(np.load(tmp_path / "probs.npy"), expected, atol=1e-6)
    assert run_alops("query", "select", "probs.npy", "-k", "10", cwd=tmp_path).returncode == 0


def test_score_with_a_scikit_learn_model(tmp_path):
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    model = LogisticRegression(max_iter=500).fit(digits.data[:500], digits.target[:500])
    joblib.dump(model, tmp_path / "model.joblib")
    np.save(tmp_path / "pool.npy", digits.data[500:])
    assert run_alops("query", "score", "model.joblib", "pool.npy", cwd=tmp_path).returncode == 0
    assert np.allclose(np.load(tmp_path / "pool_probs.npy"), model.predict_proba(digits.data[500:]), atol=1e-6)


def _small_torch_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4)).eval()


def test_a_torch_export_program_scores_like_the_module_it_came_from(tmp_path):
    """torch.export (`.pt2`, dynamic batch): the probabilities are the module's softmax, over blocks of any size."""
    import torch

    model = _small_torch_model()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (torch.zeros(8, 6),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "model.pt2")
    inputs = np.random.default_rng(1).normal(size=(3001, 6)).astype(np.float32)
    np.save(tmp_path / "pool.npy", inputs)
    scored = run_alops("query", "score", "model.pt2", "pool.npy", "--out", "probs.npy", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(inputs)), dim=1).numpy()
    assert np.allclose(np.load(tmp_path / "probs.npy"), expected, atol=1e-6)
    fused = run_alops("query", "select", "pool.npy", "--model", "model.pt2", "-k", "25", "--strategy", "margin",
                      "--out", "sel.json", cwd=tmp_path)
    assert fused.returncode == 0, fused.stderr
    picked = json.loads((tmp_path / "sel.json").read_text())["indices"]
    assert sorted(picked) == sorted(top_k_reference(formula_scores(expected, "margin"), 25))


def test_a_registered_model_is_scored_from_the_mlflow_registry_by_alias(tmp_path, mlflow_server):
    """`--model models:/name@champion`: the version the alias points at is downloaded and scores the pool; the
    selection names the URI and the digest of what it downloaded."""
    import torch
    from conftest import clean_env
    from mlflow.tracking import MlflowClient

    model = _small_torch_model()
    torch.jit.save(torch.jit.script(model), tmp_path / "model.pt")
    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment(f"scoring-{tmp_path.name}")
    run = client.create_run(experiment)
    client.log_artifact(run.info.run_id, str(tmp_path / "model.pt"))
    name = f"scorer-{tmp_path.name}".replace("_", "-")
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model.pt", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    inputs = np.random.default_rng(2).normal(size=(2000, 6)).astype(np.float32)
    np.save(tmp_path / "pool.npy", inputs)
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    result = run_alops("query", "select", "pool.npy", "--model", f"models:/{name}@champion", "-k", "15",
                       "--strategy", "entropy", "--out", "sel.json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    selection = json.loads((tmp_path / "sel.json").read_text())
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(inputs)), dim=1).numpy()
    assert sorted(selection["indices"]) == sorted(top_k_reference(formula_scores(expected, "entropy"), 15))
    assert selection["model"] == f"models:/{name}@champion"
    assert selection["model_digest"] == pool_digest(str(tmp_path / "model.pt"))  # what was downloaded and ran
    missing = run_alops("query", "select", "pool.npy", "--model", f"models:/{name}@nobody", "-k", "15",
                        "--out", "other.json", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "cannot download the model" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "other.json").exists()


def test_mlflow_model_folders_of_the_sklearn_and_pytorch_flavours_score_the_pool(tmp_path, mlflow_server):
    """What teams log with mlflow.sklearn / mlflow.pytorch: a registered sklearn-flavour model by alias, and a
    pytorch-flavour folder on disk; their probabilities are the estimator's and the module's softmax."""
    import mlflow.pytorch
    import mlflow.sklearn
    import torch
    from conftest import clean_env
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(6)
    inputs = rng.normal(size=(1500, 6)).astype(np.float32)
    np.save(tmp_path / "pool.npy", inputs)
    estimator = LogisticRegression(max_iter=300).fit(inputs[:300], (inputs[:300, 0] > 0).astype(int) + (inputs[:300, 1] > 0.5))
    mlflow.sklearn.save_model(estimator, str(tmp_path / "sk-model"))
    client = MlflowClient(mlflow_server)
    run = client.create_run(client.create_experiment(f"flavours-{tmp_path.name}"))
    client.log_artifacts(run.info.run_id, str(tmp_path / "sk-model"), "model")
    name = f"flavoured-{tmp_path.name}".replace("_", "-")
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    for shard in ("0/2", "1/2"):
        result = run_alops("query", "select", "pool.npy", "--model", f"models:/{name}@champion", "-k", "20",
                           "--shard", shard, "--out", f"sk-{shard[0]}.json", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    assert run_alops("query", "merge", "sk-0.json", "sk-1.json", "--out", "sk.json", cwd=tmp_path).returncode == 0
    selection = json.loads((tmp_path / "sk.json").read_text())
    expected = estimator.predict_proba(inputs).astype(np.float32)
    assert selection["indices"] == top_k_reference(formula_scores(expected, "margin"), 20)

    module = _small_torch_model()
    mlflow.pytorch.save_model(module, str(tmp_path / "torch-model"), serialization_format="pickle")
    scored = run_alops("query", "score", "torch-model", "pool.npy", "--out", "probs.npy", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    with torch.no_grad():
        softmax = torch.softmax(module(torch.from_numpy(inputs)), dim=1).numpy()
    assert np.allclose(np.load(tmp_path / "probs.npy"), softmax, atol=1e-6)

    (tmp_path / "pyfunc").mkdir()
    (tmp_path / "pyfunc/MLmodel").write_text("flavors:\n  python_function:\n    loader_module: custom\n")
    other = run_alops("query", "score", "pyfunc", "pool.npy", "--out", "other.npy", cwd=tmp_path)
    assert other.returncode == 2 and "alops scores the sklearn and pytorch flavours" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1 and not (tmp_path / "other.npy").exists()


def test_score_with_a_broken_model_writes_nothing(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"not a model")
    np.save(tmp_path / "pool.npy", np.zeros((10, 3), np.float32))
    result = run_alops("query", "score", "model.pt", "pool.npy", cwd=tmp_path)
    assert result.returncode == 2 and "not a TorchScript model" in result.stderr
    assert not (tmp_path / "pool_probs.npy").exists() and not list(tmp_path.glob(".alops-*"))


def test_rows_that_cancel_out_within_a_block_are_still_caught(tmp_path):
    probs = np.full((1000, 4), 0.25, np.float32)
    probs[10] = [0.75, 0.25, 0.25, 0.25]  # sums to 1.5
    probs[11] = [0.0, 0.25, 0.25, 0.0]  # sums to 0.5: the block's total is still 1000
    np.save(tmp_path / "pool.npy", probs)
    for strategy in ("least-confidence", "margin", "entropy"):
        result = run_alops("query", "select", "pool.npy", "-k", "5", "--strategy", strategy, cwd=tmp_path)
        assert result.returncode == 2 and "row 10: not a probability distribution" in result.stderr, strategy
    passes = np.stack([np.full((1000, 4), 0.25, np.float32)] * 3)
    passes[2, 10:12] = probs[10:12]  # one pass of BALD's MC-dropout file: the same two rows
    np.save(tmp_path / "mc.npy", passes)
    result = run_alops("query", "select", "mc.npy", "-k", "5", "--strategy", "bald", cwd=tmp_path)
    assert result.returncode == 2 and "row 10: not a probability distribution" in result.stderr


def test_in_memory_strategies_write_their_scores(tmp_path):
    """BALD through the CLI: the scores in selection.json are the mutual information of the chosen rows."""
    rng = np.random.default_rng(4)
    mc = rng.dirichlet(np.ones(3), size=(5, 80)).astype(np.float32)
    np.save(tmp_path / "mc.npy", mc)
    result = run_alops("query", "select", "mc.npy", "-k", "7", "--strategy", "bald", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    selection = json.loads((tmp_path / "selection.json").read_text())
    passes = np.clip(mc.astype(np.float64), 1e-12, 1.0)
    mean = passes.mean(axis=0)
    information = -(mean * np.log(mean)).sum(axis=1) + (passes * np.log(passes)).sum(axis=2).mean(axis=0)
    assert selection["indices"] == np.argsort(-information, kind="stable")[:7].tolist()
    assert np.allclose(selection["scores"], information[selection["indices"]])


def test_shards_of_different_pools_never_merge(tmp_path):
    rng = np.random.default_rng(6)
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", rng.dirichlet(np.ones(3), size=400).astype(np.float32))
    for shard, pool in (("0/2", "a"), ("1/2", "b")):  # same size, strategy, k and seed: only the data differ
        result = run_alops("query", "select", f"{pool}.npy", "-k", "5", "--shard", shard, "--out", f"{shard[0]}.json",
                           cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    merged = run_alops("query", "merge", "0.json", "1.json", cwd=tmp_path)
    assert merged.returncode == 2 and "disagree on pool_digest" in merged.stderr
    assert not (tmp_path / "selection.json").exists()


def test_balanced_selection_cannot_be_sharded(tmp_path):
    np.save(tmp_path / "p.npy", np.full((10, 2), 0.5, np.float32))
    result = run_alops("query", "select", "p.npy", "-k", "2", "--balanced", "--shard", "0/2", cwd=tmp_path)
    assert result.returncode == 2 and "cannot be sharded" in result.stderr


def test_a_float64_parquet_pool_keeps_its_precision_and_order(tmp_path):
    """Two rows whose margins differ below float32's resolution: the float64 pool's order must hold."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # margins 2e-12 and 1e-12: row 1 is the more uncertain; in float32 both are 0 and the tie goes to row 0
    probs = np.array([[0.5 + 1e-12, 0.5 - 1e-12, 0.0], [0.5 + 5e-13, 0.5 - 5e-13, 0.0], [0.9, 0.05, 0.05]], np.float64)
    pq.write_table(pa.table({f"p{i}": probs[:, i] for i in range(3)}), tmp_path / "pool.parquet")
    np.save(tmp_path / "pool.npy", probs)
    from_parquet = select_streaming(str(tmp_path / "pool.parquet"), "margin", 1).indices
    assert from_parquet == select_streaming(str(tmp_path / "pool.npy"), "margin", 1).indices == [1]


def test_fused_scoring_with_the_model_over_shards_merges_into_the_formulas_selection(tmp_path):
    """Each shard runs the model over its rows and keeps its top k; the merge equals the formula over all rows."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    model = LogisticRegression(max_iter=200).fit(x[:500], (x[:500, 0] + x[:500, 1] > 0).astype(int) + (x[:500, 2] > 1))
    joblib.dump(model, tmp_path / "model.joblib")
    np.save(tmp_path / "inputs.npy", x)
    (tmp_path / "ids.txt").write_text("".join(f"s{i}\n" for i in range(len(x))))
    for i in range(3):
        result = run_alops("query", "select", "inputs.npy", "--model", "model.joblib", "--ids", "ids.txt", "-k", "25",
                           "--strategy", "margin", "--shard", f"{i}/3", "--out", f"shard-{i}.json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    merged = run_alops("query", "merge", "shard-0.json", "shard-1.json", "shard-2.json", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    selection = json.loads((tmp_path / "selection.json").read_text())
    probs = model.predict_proba(x).astype(np.float32).astype(np.float64)
    top = np.sort(probs, axis=1)
    margin = top[:, -2] - top[:, -1]  # higher: more uncertain
    expected = sorted(range(len(x)), key=lambda r: (-margin[r], r))[:25]
    assert sorted(selection["indices"]) == sorted(expected)
    assert sorted(selection["sample_ids"]) == sorted(f"s{r}" for r in expected)
    assert selection["model"] == "model.joblib" and not (tmp_path / "pool_probs.npy").exists()


def test_scoring_on_every_core_gives_the_formulas_selection_and_the_first_bad_row(tmp_path):
    """More rows than one scoring piece, so pieces are scored in parallel threads; checked against NumPy."""
    from alops.al.topk import SCORE_ROWS

    rng = np.random.default_rng(9)
    probs = rng.dirichlet(np.ones(6), size=SCORE_ROWS * 3 + 17).astype(np.float32)
    np.save(tmp_path / "pool.npy", probs)
    for strategy in ("least-confidence", "margin", "entropy"):
        selection = select_streaming(str(tmp_path / "pool.npy"), strategy, 50)
        p = probs.astype(np.float64)
        top = np.sort(p, axis=1)
        score = {"least-confidence": 1 - top[:, -1], "margin": top[:, -2] - top[:, -1],
                 "entropy": -(p * np.log(np.maximum(p, 1e-300))).sum(axis=1)}[strategy]
        expected = np.lexsort((np.arange(len(p)), -score))[:50]
        assert sorted(selection.indices) == sorted(expected.tolist()), strategy
    broken = probs.copy()
    broken[SCORE_ROWS * 2 + 5] = 0.5  # in the third piece
    broken[SCORE_ROWS + 3] = -0.1  # in the second: the one to name
    np.save(tmp_path / "broken.npy", broken)
    result = run_alops("query", "select", "broken.npy", "-k", "5", "--strategy", "margin", cwd=tmp_path)
    assert result.returncode == 2 and f"row {SCORE_ROWS + 3}:" in result.stderr


def test_running_top_k_is_the_exact_top_k_whatever_order_the_blocks_arrive_in():
    """Ties at the worst kept score go to the lowest row, also when a lower row's block comes last."""
    from alops.al.topk import RunningTopK, top_k

    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.9, 0.1, 0.5, 0.7])
    expected = top_k(np.arange(scores.size), scores, 4)
    blocks = [(0, scores[:3]), (3, scores[3:6]), (6, scores[6:])]
    for order in (blocks, blocks[::-1], [blocks[1], blocks[2], blocks[0]]):
        best = RunningTopK(4)
        for offset, block in order:
            best.add(block, offset)
        assert best.rows.tolist() == expected[0].tolist() == [1, 4, 7, 0]
        assert best.scores.tolist() == expected[1].tolist()
