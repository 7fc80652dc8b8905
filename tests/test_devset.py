"""`alops data make-dev` and `check-dev` against real DVC repositories."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import dvc, kill_inside, run_alops
from datasets import read_manifest, write_full_dataset, write_manifest
from scipy import stats

from alops.data.devset import _chi_square, ks_statistic


def strata(rows):
    return Counter((r["label"], r["split"]) for r in rows)


def test_make_dev_keeps_strata_tracks_with_dvc_and_reports(dvc_project):
    result = run_alops("data", "make-dev", "--fraction", "0.25", cwd=dvc_project)
    assert result.returncode == 0, result.stderr
    full = read_manifest(dvc_project / "data/full/manifest.csv")
    dev = read_manifest(dvc_project / "data/dev/manifest.csv")
    assert len(dev) == 100
    full_strata, dev_strata = strata(full), strata(dev)
    assert set(dev_strata) == set(full_strata)
    # largest remainder, exactly: each stratum gets the floor or the ceiling of its share of 100, and every
    # stratum rounded up had a remainder at least as large as every stratum rounded down
    exact = {key: 100 * count / len(full) for key, count in full_strata.items()}
    assert all(math.floor(exact[key]) <= dev_strata[key] <= math.ceil(exact[key]) for key in exact), dev_strata
    up = [exact[k] % 1 for k in exact if dev_strata[k] > math.floor(exact[k])]
    down = [exact[k] % 1 for k in exact if dev_strata[k] == math.floor(exact[k]) and exact[k] % 1]
    assert not up or not down or min(up) >= max(down)
    assert sum(1 for r in dev if r["label"] == "") == pytest.approx(0.3 * len(dev), abs=8)
    for row in dev:
        assert (dvc_project / "data/dev" / row["path"]).read_bytes() == (dvc_project / "data/full" / row["path"]).read_bytes()
    assert len(list((dvc_project / "data/dev/images").iterdir())) == len(dev)
    assert (dvc_project / "data/dev.dvc").is_file()
    report = json.loads((dvc_project / "metrics/dev_fidelity.json").read_text())
    assert report["dev_rows"] == 100 and report["full_rows"] == 400
    assert report["max_abs_deviation_pp"] < 2
    assert 0 <= report["labels_chi2"]["p_value"] <= 1
    assert set(report["ks"]) == {"x"}
    shown = json.loads(dvc(dvc_project, "metrics", "show", "--json"))
    assert "metrics/dev_fidelity.json" in json.dumps(shown)


def test_make_dev_is_deterministic_for_a_seed(dvc_project):
    def make(seed: str) -> bytes:
        result = run_alops("data", "make-dev", "--count", "60", "--seed", seed, "--no-track", cwd=dvc_project)
        assert result.returncode == 0, result.stderr
        return (dvc_project / "data/dev/manifest.csv").read_bytes()

    first = make("7")
    assert make("7") == first and make("8") != first
    assert not [p for p in (dvc_project / "data").iterdir() if p.name.startswith(".alops-")]


def test_time_budget_sizes_the_dev_dataset(dvc_project):
    result = run_alops("data", "make-dev", "--time-budget", "30", "--seconds-per-sample", "0.5", "--no-track", cwd=dvc_project)
    assert result.returncode == 0, result.stderr
    assert len(read_manifest(dvc_project / "data/dev/manifest.csv")) == 60


def test_outliers_and_corrupt_samples_are_always_included(repo):
    dvc(repo, "init", "-q")
    folder = repo / "data/full"
    rows = write_full_dataset(folder, n=2000)
    rows[10]["x"] = "250.0"  # statistical outlier
    rows[20]["x"] = ""  # missing field
    (folder / rows[30]["path"]).write_bytes(b"")  # unreadable: empty file
    (folder / rows[40]["path"]).unlink()  # unreadable: missing file
    write_manifest(folder / "manifest.csv", rows)
    result = run_alops("data", "make-dev", "--fraction", "0.05", "--outlier-share", "0.1", "--no-track", cwd=repo)
    assert result.returncode == 0, result.stderr
    dev_ids = {r["id"] for r in read_manifest(repo / "data/dev/manifest.csv")}
    assert {"10", "20", "30", "40"} <= dev_ids
    report = json.loads((repo / "metrics/dev_fidelity.json").read_text())
    assert report["outliers_and_corrupt"]["found"] >= 4
    assert report["outliers_and_corrupt"]["included"] == report["outliers_and_corrupt"]["found"]


def test_z_outlier_sets_what_counts_as_a_statistical_outlier(repo):
    """x = 6 sd from the mean is an outlier at --z-outlier 4 (the default) and not at 8."""
    dvc(repo, "init", "-q")
    rows = write_full_dataset(repo / "data/full", n=2000)
    values = [float(r["x"]) for r in rows if r["x"]]
    mean, sd = np.mean(values), np.std(values)
    rows[10]["x"] = f"{mean + 6 * sd:.4f}"
    write_manifest(repo / "data/full/manifest.csv", rows)
    found = {}
    for z in ("4", "8"):
        result = run_alops("data", "make-dev", "--fraction", "0.05", "--z-outlier", z, "--no-track", cwd=repo)
        assert result.returncode == 0, result.stderr
        found[z] = "10" in {r["id"] for r in read_manifest(repo / "data/dev/manifest.csv")}
    assert found == {"4": True, "8": False}  # seed 0: the random 5% does not hold row 10 by chance


def test_outlier_share_caps_forced_samples(repo):
    dvc(repo, "init", "-q")
    rows = write_full_dataset(repo / "data/full", n=1000)
    for row in rows[:100]:
        row["x"] = ""
    write_manifest(repo / "data/full/manifest.csv", rows)
    run_alops("data", "make-dev", "--count", "100", "--outlier-share", "0.1", "--no-track", cwd=repo)
    dev = read_manifest(repo / "data/dev/manifest.csv")
    assert sum(1 for r in dev if r["x"] == "") == 10


def test_parquet_manifest(repo):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    dvc(repo, "init", "-q")
    write_full_dataset(repo / "data/full", n=300)
    pq.write_table(pacsv.read_csv(repo / "data/full/manifest.csv"), repo / "data/full/manifest.parquet")
    (repo / "alops.yaml").write_text("data:\n  manifest: manifest.parquet\n")
    result = run_alops("data", "make-dev", "--fraction", "0.1", "--no-track", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert pq.read_table(repo / "data/dev/manifest.parquet").num_rows == 30


BAD_INPUTS = [
    ("missing column", lambda rows: [{k: v for k, v in r.items() if k != "split"} for r in rows], "missing required column(s) split"),
    ("duplicate id", lambda rows: rows + [dict(rows[5])], "duplicate id"),
    ("unknown class", lambda rows: rows[:-1] + [{**rows[-1], "label": "9"}], "label '9' is not a declared class"),
    ("escaping path", lambda rows: rows[:3] + [{**rows[3], "path": "../../etc/passwd"}] + rows[4:], "escapes the dataset folder"),
    ("absolute path", lambda rows: [{**rows[0], "path": "/etc/passwd"}] + rows[1:], "escapes the dataset folder"),
    ("empty dataset", lambda rows: [], "the full dataset is empty"),
]


@pytest.mark.parametrize("name,mutate,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_manifest_exits_2_and_writes_nothing(dvc_project, name, mutate, message):
    (dvc_project / "alops.yaml").write_text("data:\n  classes: ['0', '1', '2', '3']\n")
    manifest = dvc_project / "data/full/manifest.csv"
    write_manifest(manifest, mutate(read_manifest(manifest)))
    before = sorted(str(p) for p in dvc_project.rglob("*") if ".git" not in p.parts)
    result = run_alops("data", "make-dev", "--fraction", "0.5", cwd=dvc_project)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert sorted(str(p) for p in dvc_project.rglob("*") if ".git" not in p.parts) == before


@pytest.mark.parametrize("args,message", [
    (["--fraction", "0"], "outside (0, 1]"),
    (["--fraction", "1.5"], "outside (0, 1]"),
    ([], "no dev dataset yet to keep the size of: give --fraction, --count or --time-budget"),
    (["--fraction", "0.1", "--count", "5"], "give exactly one of"),
    (["--time-budget", "60"], "--seconds-per-sample"),
])
def test_bad_size_exits_2_and_writes_nothing(dvc_project, args, message):
    result = run_alops("data", "make-dev", *args, cwd=dvc_project)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (dvc_project / "data/dev").exists() and not (dvc_project / "metrics").exists()


MAKE_DEV_KILL_POINTS = {  # (function, before/after the call)
    "full data spooled": ("alops.data.manifest:Spool.close", "after"),
    "dev manifest half written": ("alops.data.manifest:ManifestWriter.close", "before"),
    "dev folder built, not swapped in": ("alops.data.devset:_replace_folder", "before"),
    "swapped in, not yet tracked": ("alops.data.storage:track", "before"),
}


def _dev_ids_if_complete(repo):
    """The dev manifest's ids, after checking the folder is whole: 1,500 rows, exactly their image files."""
    dev = read_manifest(repo / "data/dev/manifest.csv")
    assert len(dev) == 1500
    assert sorted(p.name for p in (repo / "data/dev/images").iterdir()) == sorted(os.path.basename(r["path"]) for r in dev)
    return sorted(r["id"] for r in dev)


@pytest.mark.slow  # kills and resumes a process at each point
@pytest.mark.parametrize("point", list(MAKE_DEV_KILL_POINTS))
def test_make_dev_killed_inside_each_step_leaves_a_whole_dev_dataset_and_a_rerun_completes(repo, tmp_path, point):
    """The process is killed where it is (it signals the step), not after a guessed delay."""
    import shutil

    write_full_dataset(repo / "data/full", n=3000)
    dvc(repo, "init", "-q")
    args = ["data", "make-dev", "--fraction", "0.5"]
    reference = tmp_path / "reference"
    shutil.copytree(repo, reference)
    assert run_alops(*args, "--seed", "2", cwd=reference).returncode == 0
    assert run_alops(*args, "--seed", "1", cwd=repo).returncode == 0
    old = _dev_ids_if_complete(repo)
    kill_inside(repo, [*args, "--seed", "2"], *MAKE_DEV_KILL_POINTS[point], marker_dir=tmp_path)
    assert _dev_ids_if_complete(repo) in (old, _dev_ids_if_complete(reference))  # the old dataset or the new one
    result = run_alops(*args, "--seed", "2", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert _dev_ids_if_complete(repo) == _dev_ids_if_complete(reference) != old
    assert not [p for p in (repo / "data").iterdir() if p.name.startswith(".alops-")]
    assert "data/dev" not in dvc(repo, "status", "data/dev.dvc")  # tracked content matches the workspace


def test_check_dev_passes_for_a_fresh_dev_dataset(dvc_project):
    run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project)
    result = run_alops("data", "check-dev", cwd=dvc_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "representative" in result.stdout


def test_check_dev_flags_shifted_live_data(dvc_project, tmp_path):
    run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project)
    rng = np.random.default_rng(0)
    log = [{"prediction": "3" if rng.random() < 0.6 else str(int(rng.integers(0, 3))), "x": f"{rng.normal():.4f}"} for _ in range(500)]
    write_manifest(tmp_path / "live.csv", log)
    result = run_alops("data", "check-dev", "--against", str(tmp_path / "live.csv"), "--label-column", "prediction", cwd=dvc_project)
    assert result.returncode == 1
    assert "label 3:" in result.stdout and "% in live data" in result.stdout
    assert "run `alops data make-dev --count 200 --like " in result.stderr


def _threshold_model(folder: Path, cut: float) -> str:
    """An MLflow scikit-learn model that says "1" when x > cut: with cut below 0 it calls 1 more often than the
    labels (1 when x > 0) do, as a model biased towards one class."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    x = pd.DataFrame({"x": np.linspace(-3, 3, 601)})
    model = LogisticRegression(C=1e4).fit(x, np.where(x["x"] > cut, "1", "0"))
    mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(x, model.predict(x)))
    return str(folder)


@pytest.mark.slow  # a model saved and loaded by MLflow for three checks
def test_a_biased_models_predictions_are_compared_with_its_own_predictions_not_with_labels(dvc_project, tmp_path):
    """Labels 1 when x > 0; the deployed model says 1 when x > -0.5. A log of the same distribution, scored by
    that model, holds about 69% ones: against the dev labels (50%) that is a false alarm; against the same
    model's predictions on the dev rows (--model) it passes. A log of larger x still fails, naming the class."""
    rng = np.random.default_rng(11)
    rows = [{"id": str(i), "label": str(int(x > 0)), "split": "train", "path": f"images/{i:05d}.bin", "x": f"{x:.6f}"}
            for i, x in enumerate(rng.normal(size=800))]
    write_full_dataset(dvc_project / "data/full", n=0, extra_rows=rows)
    for row in rows:
        (dvc_project / "data/full" / row["path"]).write_bytes(b"x")
    assert run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project).returncode == 0
    model = _threshold_model(tmp_path / "model", -0.5)

    def log(name: str, shift: float) -> str:
        xs = rng.normal(loc=shift, size=600)
        write_manifest(tmp_path / name, [{"prediction": str(int(x > -0.5)), "x": f"{x:.6f}"} for x in xs])
        return str(tmp_path / name)

    same = ["data", "check-dev", "--against", log("same.csv", 0.0), "--label-column", "prediction"]
    unlike = run_alops(*same, cwd=dvc_project)
    assert unlike.returncode == 1 and "label 1:" in unlike.stdout  # the model's bias read as drift
    assert "pass --model (the model that made them)" in unlike.stderr
    like = run_alops(*same, "--model", model, cwd=dvc_project)
    assert like.returncode == 0, like.stdout + like.stderr
    assert "dev dataset is representative" in like.stdout
    shifted = run_alops("data", "check-dev", "--against", log("shifted.csv", 1.0), "--label-column", "prediction",
                        "--model", model, cwd=dvc_project)
    assert shifted.returncode == 1 and "predicted class 1:" in shifted.stdout


@pytest.mark.slow  # a model saved and loaded by MLflow for three checks
def test_image_rows_are_predicted_from_their_files_as_the_capture_feeds_the_endpoint(dvc_project, tmp_path):
    """Images whose label is 1 when their mean brightness passes 0.5, and a PyTorch model that says 1 past 0.25
    (N x 1 x 8 x 8 tensors in [0, 1], as the scaffold's model): its log of the same images is flagged against the
    dev labels and passes with --model, which reads each dev image file as the endpoint would get it."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from alops.serve.capture import png_bytes

    rng = np.random.default_rng(12)
    images = dvc_project / "data/full/images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, mean in enumerate(rng.uniform(0, 1, size=600)):
        pixels = np.clip(mean + rng.normal(0, 0.02, size=(8, 8)), 0, 1)
        (images / f"{i:05d}.png").write_bytes(png_bytes(pixels))
        rows.append({"id": str(i), "label": str(int(pixels.mean() > 0.5)), "split": "train", "path": f"images/{i:05d}.png"})
    write_full_dataset(dvc_project / "data/full", n=0, extra_rows=rows)
    assert run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project).returncode == 0
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    with torch.no_grad():  # logit(1) - logit(0) = 40 * (mean - 0.25)
        net[1].weight.copy_(torch.stack([torch.zeros(64), torch.full((64,), 40 / 64)]))
        net[1].bias.copy_(torch.tensor([0.0, -10.0]))
    example = rng.uniform(0, 1, size=(3, 1, 8, 8)).astype(np.float32)
    mlflow.pytorch.save_model(net, str(tmp_path / "model"), signature=infer_signature(example, net(torch.tensor(example)).detach().numpy()),
                              serialization_format="pickle")

    def log(name: str, low: float) -> str:
        write_manifest(tmp_path / name, [{"prediction": str(int(m > 0.25))} for m in rng.uniform(low, 1, size=600)])
        return str(tmp_path / name)

    same = ["data", "check-dev", "--against", log("same.csv", 0.0), "--label-column", "prediction"]
    assert run_alops(*same, cwd=dvc_project).returncode == 1  # about 75% ones against 50% of the labels
    like = run_alops(*same, "--model", str(tmp_path / "model"), cwd=dvc_project)
    assert like.returncode == 0, like.stdout + like.stderr
    shifted = run_alops("data", "check-dev", "--against", log("bright.csv", 0.3), "--label-column", "prediction",
                        "--model", str(tmp_path / "model"), cwd=dvc_project)
    assert shifted.returncode == 1 and "predicted class 1:" in shifted.stdout
    assert "check-dev --model: the model predicted 300 of 300 dev rows" in like.stdout
    for image in (dvc_project / "data/dev/images").iterdir():  # as `alops data pull --manifest-only` leaves them
        image.unlink()
    blind = run_alops(*same, "--model", str(tmp_path / "model"), cwd=dvc_project)
    assert blind.returncode == 1 and "representative" not in blind.stdout, blind.stdout + blind.stderr
    assert ("drift check not made: the model predicted 0 of 300 dev rows (300 image file(s) missing or unreadable), "
            "fewer than 90%: pull the dev dataset's files (`alops data pull --dataset dev`") in blind.stderr


@pytest.mark.parametrize("dev_predicted, log_rows, message", [
    ({}, [{"prediction": "1", "x": "0.1"}] * 20, "drift check not made: 0 dev rows and 20 compared rows have a predicted class"),
    (None, [{"prediction": "1"}] * 20, "shares neither the labels ('label') nor a numeric column with the dev dataset"),
])
def test_a_drift_check_that_compared_nothing_fails_and_counts_what_it_had(tmp_path, dev_predicted, log_rows, message):
    """No dev row predicted (a model that answered nothing); a log without the label column or a shared numeric
    column: neither is 'representative'."""
    from alops.core.errors import AlopsError
    from alops.data.devset import check_dev

    write_manifest(tmp_path / "dev.csv", [{"id": str(i), "label": str(i % 2), "path": f"{i}.png"} for i in range(40)])
    write_manifest(tmp_path / "live.csv", log_rows)
    with pytest.raises(AlopsError, match=re.escape(message)):
        check_dev(str(tmp_path / "dev.csv"), str(tmp_path / "live.csv"),
                  "prediction" if dev_predicted is not None else "label", dev_predicted=dev_predicted)


def test_a_model_whose_inputs_the_dev_dataset_lacks_is_one_line(dvc_project, tmp_path):
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project)
    frame = pd.DataFrame({"pixel_0": [0.0, 1.0]})
    model = LogisticRegression().fit(frame, ["0", "1"])
    mlflow.sklearn.save_model(model, str(tmp_path / "model"), signature=infer_signature(frame, model.predict(frame)))
    write_manifest(tmp_path / "live.csv", [{"prediction": "1", "x": "0.1"}] * 20)
    result = run_alops("data", "check-dev", "--against", str(tmp_path / "live.csv"), "--label-column", "prediction",
                       "--model", str(tmp_path / "model"), cwd=dvc_project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the model's inputs pixel_0 are not numeric columns of the dev dataset" in result.stderr


def test_after_a_class_shift_the_named_remedy_makes_check_dev_pass(dvc_project, tmp_path):
    """The failure names the command; run as printed, it maps the log's class shares into the dev dataset (the
    labeled samples), and the same check passes. Unlabeled samples keep their share."""
    import shlex

    run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project)
    rng = np.random.default_rng(5)
    shares = [0.4, 0.2, 0.2, 0.2]  # the full data's labeled samples: about a quarter each
    log = [{"prediction": str(rng.choice(4, p=shares[::-1])), "x": f"{rng.normal():.4f}"} for _ in range(500)]
    write_manifest(tmp_path / "live.csv", log)
    check = ["data", "check-dev", "--against", str(tmp_path / "live.csv"), "--label-column", "prediction",
             "--verdict", str(tmp_path / "drift.json"), "--branch", "al/production"]
    failed = run_alops(*check, cwd=dvc_project)
    assert failed.returncode == 1 and "label 3:" in failed.stdout
    remedy = failed.stderr.split("run `", 1)[1].split("`", 1)[0]
    assert remedy == "alops data make-dev --count 200 --like ../live.csv --label-column prediction"  # from the cwd
    verdict = json.loads((tmp_path / "drift.json").read_text())  # what `alops data drift-issue` posts
    assert (verdict["representative"], verdict["remedy"], verdict["branch"], verdict["compared"]) == \
        (False, remedy, "al/production", "../live.csv")
    assert verdict["problems"][0].startswith("label 3:") and verdict["tests"]["labels"]["drifted"] is True
    made = run_alops(*shlex.split(remedy)[1:], cwd=dvc_project)
    assert made.returncode == 0, made.stderr
    assert "sampled with the class shares of ../live.csv, 200 of 400 samples" in made.stdout
    dev = read_manifest(dvc_project / "data/dev/manifest.csv")
    labeled = Counter(r["label"] for r in dev if r["label"])
    full = read_manifest(dvc_project / "data/full/manifest.csv")
    unlabeled = 200 * sum(1 for r in full if not r["label"]) / 400  # their share kept, up to rounding per split
    assert abs(sum(1 for r in dev if not r["label"]) - unlabeled) < 3
    live = Counter(row["prediction"] for row in log)
    for name in "0123":  # the log's shares, up to one sample per split
        assert abs(labeled[name] - sum(labeled.values()) * live[name] / len(log)) < 3, (labeled, live)
    report = json.loads((dvc_project / "metrics/dev_fidelity.json").read_text())
    assert report["mapped_to"]["file"] == "../live.csv" and report["max_abs_deviation_pp"] < 1.5
    passed = run_alops(*check, cwd=dvc_project)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "dev dataset is representative" in passed.stdout
    assert json.loads((tmp_path / "drift.json").read_text())["representative"] is True


def test_make_dev_remedy_does_what_the_verdict_asks_and_the_check_passes(dvc_project, tmp_path):
    """The CI remedy job's step: the size and the class shares come from the verdict file, not from a command
    line read back from it."""
    run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project)
    rng = np.random.default_rng(5)
    log = [{"prediction": str(rng.choice(4, p=[0.2, 0.2, 0.2, 0.4])), "x": f"{rng.normal():.4f}"} for _ in range(500)]
    write_manifest(tmp_path / "live.csv", log)
    check = ["data", "check-dev", "--against", str(tmp_path / "live.csv"), "--label-column", "prediction",
             "--verdict", str(tmp_path / "drift.json")]
    assert run_alops(*check, cwd=dvc_project).returncode == 1
    verdict = json.loads((tmp_path / "drift.json").read_text())
    assert (verdict["against"], verdict["label_column"], verdict["dev_rows"]) == ("../live.csv", "prediction", 200)
    made = run_alops("data", "make-dev", "--remedy", str(tmp_path / "drift.json"), "--no-track", cwd=dvc_project)
    assert made.returncode == 0, made.stderr
    assert "sampled with the class shares of ../live.csv, 200 of 400 samples" in made.stdout
    assert run_alops(*check, cwd=dvc_project).returncode == 0
    again = run_alops("data", "make-dev", "--remedy", str(tmp_path / "drift.json"), cwd=dvc_project)
    assert again.returncode == 2 and "the dev dataset was representative: nothing to remedy" in again.stderr
    mixed = run_alops("data", "make-dev", "--remedy", str(tmp_path / "drift.json"), "--count", "9", cwd=dvc_project)
    assert mixed.returncode == 2 and "--remedy takes the size and the class shares from the verdict" in mixed.stderr


def test_a_class_the_full_data_has_no_label_for_cannot_be_mapped(dvc_project, tmp_path):
    run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project)
    write_manifest(tmp_path / "live.csv", [{"prediction": str(k % 5)} for k in range(100)])
    before = read_manifest(dvc_project / "data/dev/manifest.csv")
    result = run_alops("data", "make-dev", "--count", "200", "--like", str(tmp_path / "live.csv"),
                       "--label-column", "prediction", cwd=dvc_project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no labeled sample of class '4' (20.0% of the live data) to map: label some of the pool first" in result.stderr
    assert read_manifest(dvc_project / "data/dev/manifest.csv") == before


def test_check_dev_flags_a_shifted_feature(dvc_project, tmp_path):
    run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project)
    log = [{"x": f"{v:.4f}"} for v in np.random.default_rng(1).normal(1.5, 1, 400)]
    write_manifest(tmp_path / "live.csv", log)
    result = run_alops("data", "check-dev", "--against", str(tmp_path / "live.csv"), cwd=dvc_project)
    assert result.returncode == 1
    assert "feature x: KS statistic" in result.stdout


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fidelity_chi_square_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    observed = rng.integers(1, 200, 6).astype(float)
    expected = rng.random(6) + 0.1
    expected *= observed.sum() / expected.sum()
    reference = stats.chisquare(observed, expected)
    ours = _chi_square(observed, expected)
    assert ours["statistic"] == pytest.approx(reference.statistic, rel=1e-12)
    assert ours["p_value"] == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_ks_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    full = np.round(rng.normal(size=5000), 2)  # ties on purpose
    dev = np.sort(rng.choice(full, 300, replace=False))
    at_or_below = np.searchsorted(np.sort(full), dev, side="right")
    below = np.searchsorted(np.sort(full), dev, side="left")
    assert ks_statistic(at_or_below, below, full.size, dev) == pytest.approx(stats.ks_2samp(full, dev).statistic)


def test_check_dev_thresholds_decide_what_counts_as_drift(dvc_project, tmp_path):
    """The same mild shift passes when the minimum effect is above it and fails when it is below (--min-effect),
    and a significance level that lets everything through flags the small differences of a label log (--alpha)."""
    run_alops("data", "make-dev", "--fraction", "0.5", "--no-track", cwd=dvc_project)
    rng = np.random.default_rng(4)
    log = [{"x": f"{v:.4f}"} for v in rng.normal(0.3, 1, 600)]
    write_manifest(tmp_path / "live.csv", log)
    against = ["--against", str(tmp_path / "live.csv")]
    loose = run_alops("data", "check-dev", *against, "--min-effect", "0.9", cwd=dvc_project)
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert "feature x: effect" in loose.stdout and "min effect 0.9" in loose.stdout
    tight = run_alops("data", "check-dev", *against, "--min-effect", "0.01", cwd=dvc_project)
    assert tight.returncode == 1 and "feature x: KS statistic" in tight.stdout
    labels = [{"prediction": str(int(v))} for v in rng.integers(0, 4, 600)]
    write_manifest(tmp_path / "labels.csv", labels)
    by_label = ["--against", str(tmp_path / "labels.csv"), "--label-column", "prediction"]
    assert run_alops("data", "check-dev", *by_label, "--min-effect", "0.9", cwd=dvc_project).returncode == 0
    strict = run_alops("data", "check-dev", *by_label, "--alpha", "0.99", "--min-effect", "0", cwd=dvc_project)
    assert strict.returncode == 1 and "% in live data" in strict.stdout
    bad = run_alops("data", "check-dev", *by_label, "--alpha", "0", cwd=dvc_project)
    assert bad.returncode == 2 and "--alpha" in bad.stderr and "Traceback" not in bad.stderr


def _row_project(repo, files: dict, config: str):
    """A DVC project whose full data is row files (no manifest), with alops.yaml naming them."""
    full = repo / "data" / "full"
    full.mkdir(parents=True)
    for name, write in files.items():
        write(full / name)
    (repo / "alops.yaml").write_text(config)
    dvc(repo, "init", "-q")
    dvc(repo, "add", "-q", "data/full")
    return full


def _reviews(rows: int, seed: int):
    """Text reviews with an imbalanced integer sentiment (70/20/10) and an integer length feature."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    sentiment = rng.choice([0, 1, 2], rows, p=[0.7, 0.2, 0.1])
    return pa.table({"text": [f"review {seed}-{i}" for i in range(rows)], "sentiment": sentiment,
                     "length": rng.integers(5, 500, rows)})


def test_make_dev_samples_row_files_without_a_manifest_by_label_and_keeps_their_format(repo):
    """Multi-file CSV (no id, no split, label column `sentiment`): each file sampled into the same name with
    its label shares; other files copied; the integer columns stay integers; check-dev passes."""
    import pyarrow.csv as pcsv

    full = _row_project(repo, {
        "train.csv": lambda p: pcsv.write_csv(_reviews(3000, 1), p),
        "test.csv": lambda p: pcsv.write_csv(_reviews(1000, 2), p),
        "vocab.txt": lambda p: p.write_text("good\nbad\n"),
    }, "data:\n  rows: ['*.csv']\n  label: sentiment\n")
    result = run_alops("data", "make-dev", "--fraction", "0.1", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "400 of 4000 samples" in result.stdout
    dev = repo / "data" / "dev"
    assert sorted(p.name for p in dev.iterdir()) == ["test.csv", "train.csv", "vocab.txt"]
    assert (dev / "vocab.txt").read_text() == (full / "vocab.txt").read_text()
    for name, rows in (("train.csv", 300), ("test.csv", 100)):
        sample, whole = pcsv.read_csv(dev / name), pcsv.read_csv(full / name)
        assert sample.num_rows == rows and sample.schema == whole.schema  # same columns, ints stay ints
        assert set(sample.column("text").to_pylist()) <= set(whole.column("text").to_pylist())
        shares = Counter(sample.column("sentiment").to_pylist())
        expected = Counter(whole.column("sentiment").to_pylist())
        for label, count in expected.items():
            assert abs(shares[label] / rows - count / whole.num_rows) <= 1 / rows + 1e-9
    report = json.loads((repo / "metrics" / "dev_fidelity.json").read_text())
    assert set(report["files"]) == {"train.csv", "test.csv"} and report["dev_rows"] == 400
    assert (repo / "data" / "dev.dvc").exists()
    check = run_alops("data", "check-dev", cwd=repo)
    assert check.returncode == 0, check.stderr + check.stdout


@pytest.mark.parametrize("name", ["rows.parquet", "rows.jsonl"])
def test_make_dev_samples_a_single_parquet_or_json_lines_file(repo, name):
    import pyarrow.parquet as pq

    table = _reviews(2000, 3)

    def write(path):
        if name.endswith(".parquet"):
            pq.write_table(table, path)
        else:
            path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))

    _row_project(repo, {name: write}, f"data:\n  rows: {name}\n  label: sentiment\n")
    result = run_alops("data", "make-dev", "--count", "200", cwd=repo)
    assert result.returncode == 0, result.stderr
    dev = repo / "data" / "dev" / name
    if name.endswith(".parquet"):
        sample = pq.read_table(dev)
        assert sample.schema == table.schema  # int64 label and feature, not text or float64
        rows = sample.to_pylist()
    else:
        rows = [json.loads(line) for line in dev.read_text().splitlines()]
        assert all(isinstance(r["sentiment"], int) and isinstance(r["length"], int) for r in rows)
    assert len(rows) == 200
    assert {r["text"] for r in rows} <= set(table.column("text").to_pylist())
    counts = Counter(r["sentiment"] for r in rows)
    assert counts[0] == pytest.approx(140, abs=2) and counts[2] == pytest.approx(20, abs=2)


def test_row_files_that_match_nothing_are_a_clear_error(repo):
    import pyarrow.csv as pcsv

    _row_project(repo, {"train.csv": lambda p: pcsv.write_csv(_reviews(10, 1), p)}, "data:\n  rows: '*.parquet'\n")
    result = run_alops("data", "make-dev", "--fraction", "0.5", cwd=repo)
    assert result.returncode == 2 and "matches no .csv, .parquet or .jsonl file" in result.stderr
    assert "Traceback" not in result.stderr and not (repo / "data" / "dev").exists()


def test_make_dev_runs_the_projects_own_sampler_stage_and_reports_on_it(repo):
    """data.dev_stage: alops runs the stage (here: the first 100 rows) and compares what it wrote with the
    full data; size options are refused, since the stage sizes the dev dataset."""
    import pyarrow.csv as pcsv

    _row_project(repo, {"reviews.csv": lambda p: pcsv.write_csv(_reviews(1000, 4), p)},
                 "data:\n  rows: reviews.csv\n  label: sentiment\n  dev_stage: sample\n")
    (repo / "sample.py").write_text(
        "import os\nos.makedirs('data/dev', exist_ok=True)\n"
        "lines = open('data/full/reviews.csv').read().splitlines()[:101]\n"
        "open('data/dev/reviews.csv', 'w').write('\\n'.join(lines) + '\\n')\n")
    (repo / "dvc.yaml").write_text("stages:\n  sample:\n    cmd: python sample.py\n    deps:\n      - sample.py\n"
                                   "      - data/full\n    outs:\n      - data/dev\n")
    refused = run_alops("data", "make-dev", "--fraction", "0.1", cwd=repo)
    assert refused.returncode == 2 and "drop --fraction" in refused.stderr
    result = run_alops("data", "make-dev", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "made by stage sample, 100 of 1000 samples" in result.stdout
    report = json.loads((repo / "metrics" / "dev_fidelity.json").read_text())
    full_shares = Counter(_reviews(1000, 4).column("sentiment").to_pylist())
    first = Counter(_reviews(1000, 4).column("sentiment").to_pylist()[:100])
    assert report["stage"] == "sample" and report["dev_rows"] == 100
    assert report["max_abs_deviation_pp"] == pytest.approx(
        max(abs(first[k] - full_shares[k] / 10) for k in full_shares), abs=1e-6)
    assert "sample" in (repo / "dvc.lock").read_text()  # DVC ran it and tracks its output


def test_a_dev_dataset_pinned_to_another_revision_with_dvc_import_is_pulled_and_checked(repo, tmp_path):
    """docs/data.md's pinned dev dataset: `dvc import --rev small` of a data registry; a fresh clone pulls
    it with `alops data pull`, check-dev compares it with the full data, and make-dev refuses to replace it."""
    import pyarrow.csv as pcsv
    from conftest import git

    registry = tmp_path / "registry"
    registry.mkdir()
    git(registry, "init", "-q", "-b", "main")
    git(registry, "config", "user.email", "t@example.com")
    git(registry, "config", "user.name", "t")
    dvc(registry, "init", "-q")
    dvc(registry, "remote", "add", "-d", "store", str(tmp_path / "registry-store"))
    (registry / "data" / "full").mkdir(parents=True)
    for rows, message in ((200, "small"), (2000, "everything")):
        pcsv.write_csv(_reviews(rows, 5), registry / "data" / "full" / "reviews.csv")
        dvc(registry, "add", "-q", "data/full")
        git(registry, "add", "-A")
        git(registry, "commit", "-q", "-m", message)
        if message == "small":
            git(registry, "tag", "small")
    dvc(registry, "push", "-q", "-a", "-T")
    (repo / "data").mkdir()
    dvc(repo, "init", "-q")
    dvc(repo, "import", "-q", str(registry), "data/full", "-o", "data/full")
    dvc(repo, "import", "-q", str(registry), "data/full", "-o", "data/dev", "--rev", "small")
    (repo / "alops.yaml").write_text("data:\n  rows: ['*.csv']\n  label: sentiment\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "full and pinned dev data")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    for dataset in ("dev", "full"):
        pulled = run_alops("data", "pull", "--dataset", dataset, cwd=clone)
        assert pulled.returncode == 0, pulled.stderr
    assert pcsv.read_csv(clone / "data" / "dev" / "reviews.csv").num_rows == 200
    checked = run_alops("data", "check-dev", cwd=clone)
    assert checked.returncode == 0 and "200 dev rows vs 2000" in checked.stdout, checked.stderr
    refused = run_alops("data", "make-dev", "--fraction", "0.1", cwd=clone)
    assert refused.returncode == 2 and "dvc update --rev REV data/dev.dvc" in refused.stderr
    assert pcsv.read_csv(clone / "data" / "dev" / "reviews.csv").num_rows == 200


def _png(path: Path, rng) -> None:
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(path)


def test_truncated_and_undecodable_images_are_found_named_and_kept(repo):
    """Four PNGs cut short and a JPEG cut short are found in every row by their missing end marker and forced
    into the dev set; a PNG whose pixel data is garbled (its end intact) is found by the full decode of the rows
    a dev set takes."""
    from PIL import Image

    dvc(repo, "init", "-q")
    folder = repo / "data/full"
    rows = write_full_dataset(folder, n=600)
    rng = np.random.default_rng(0)
    for row in rows:
        row["path"] = row["path"].replace(".bin", ".png")
        _png(folder / row["path"], rng)
    for i in (11, 22, 33, 44):  # truncated mid-data, as an interrupted copy leaves them
        data = (folder / rows[i]["path"]).read_bytes()
        (folder / rows[i]["path"]).write_bytes(data[: len(data) // 2])
    rows[55]["path"] = "images/00055.jpg"
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / rows[55]["path"], quality=90)
    jpeg = (folder / rows[55]["path"]).read_bytes()
    (folder / rows[55]["path"]).write_bytes(jpeg[:-40])
    garbled = bytearray((folder / rows[66]["path"]).read_bytes())
    garbled[45:60] = b"\x00" * 15  # inside the IDAT chunk: the zlib stream breaks
    (folder / rows[66]["path"]).write_bytes(bytes(garbled))
    write_manifest(folder / "manifest.csv", rows)

    result = run_alops("data", "make-dev", "--fraction", "0.05", "--outlier-share", "0.2", "--no-track", cwd=repo)
    assert result.returncode == 0, result.stderr
    dev_ids = {r["id"] for r in read_manifest(repo / "data/dev/manifest.csv")}
    assert {"11", "22", "33", "44", "55"} <= dev_ids
    found = 5 + ("66" in dev_ids)  # the garbled one is found where it is sampled
    assert f"{found} damaged file(s) in the data, e.g. images/00011.png: truncated (no end marker)" in result.stdout
    report = json.loads((repo / "metrics/dev_fidelity.json").read_text())
    listed = {f["path"]: f["problem"] for f in report["damaged_files"]["listed"]}
    assert {listed[rows[i]["path"]] for i in (11, 22, 33, 44, 55)} == {"truncated (no end marker)"}
    assert (repo / "data/dev" / rows[11]["path"]).read_bytes() == (folder / rows[11]["path"]).read_bytes()  # kept as is

    everything = run_alops("data", "make-dev", "--fraction", "1.0", "--no-track", cwd=repo)
    assert everything.returncode == 0, everything.stderr
    report = json.loads((repo / "metrics/dev_fidelity.json").read_text())
    listed = {f["path"]: f["problem"] for f in report["damaged_files"]["listed"]}
    assert report["damaged_files"]["found"] == 6 and listed[rows[66]["path"]].startswith("does not decode")


def test_make_dev_commit_keeps_the_size_and_pushes_one_dev_data_version(dvc_project, tmp_path):
    """What the CI job runs: no size given (the dev dataset keeps its number of samples), the dev folder, its
    .dvc file and the fidelity report in one commit, pushed; the same sample again records nothing."""
    from conftest import git

    dvc(dvc_project, "remote", "add", "-f", "-d", "store", str(tmp_path / "store"))
    first = run_alops("data", "make-dev", "--fraction", "0.25", cwd=dvc_project)
    assert first.returncode == 0 and "To track the changes with git" in first.stdout + first.stderr  # DVC's hint
    git(dvc_project, "add", "-A")
    git(dvc_project, "commit", "-q", "-m", "a dev dataset")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(dvc_project, "remote", "add", "origin", str(origin))
    git(dvc_project, "push", "-q", "origin", "HEAD:refs/heads/main")
    before = read_manifest(dvc_project / "data/dev/manifest.csv")

    again = run_alops("data", "make-dev", "--seed", "7", "--commit", cwd=dvc_project)
    assert again.returncode == 0, again.stderr
    assert f"sampled, {len(before)} of 400 samples" in again.stdout and "recorded the new dev dataset in" in again.stdout
    assert "To track the changes with git" not in again.stdout + again.stderr  # alops committed it
    reader = tmp_path / "reader"
    git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(reader))
    assert git(reader, "log", "-1", "--format=%s") == "Dev dataset: sampled again"
    assert set(git(reader, "show", "--name-only", "--format=", "HEAD").split()) <= {"data/dev.dvc", "metrics/dev_fidelity.json", "dvc.yaml", "data/.gitignore"}
    dvc(reader, "remote", "add", "-f", "-d", "store", str(tmp_path / "store"))
    dvc(reader, "pull", "-q", "data/dev")
    after = read_manifest(reader / "data/dev/manifest.csv")
    assert len(after) == len(before) and after != before  # the same size, another sample, pushed
    same = run_alops("data", "make-dev", "--seed", "7", "--commit", cwd=dvc_project)
    assert same.returncode == 0 and "the same sample as committed: nothing to record" in same.stdout


def test_the_dev_dataset_carries_its_share_of_the_production_samples_list(dvc_project):
    """live_ids.txt (pool add's list of production samples) follows the sample into the dev folder, so a dev run
    reports the live slice too; a full dataset without the list gives a dev folder without one."""
    full = read_manifest(dvc_project / "data/full/manifest.csv")
    live = [row["id"] for row in full[::7]]
    (dvc_project / "data/full/live_ids.txt").write_text("".join(f"{i}\n" for i in live))
    assert run_alops("data", "make-dev", "--fraction", "0.25", "--no-track", cwd=dvc_project).returncode == 0
    dev_ids = [row["id"] for row in read_manifest(dvc_project / "data/dev/manifest.csv")]
    carried = (dvc_project / "data/dev/live_ids.txt").read_text().splitlines()
    assert carried == [i for i in dev_ids if i in set(live)] and carried  # in dev order, only dev samples
    (dvc_project / "data/full/live_ids.txt").unlink()
    assert run_alops("data", "make-dev", "--fraction", "0.25", "--no-track", cwd=dvc_project).returncode == 0
    assert not (dvc_project / "data/dev/live_ids.txt").exists()


def test_a_feature_runner_with_only_the_sampler_stages_dev_data_runs_the_pipeline(ml_project, tmp_path):
    """docs/data.md's sampler stage: make-dev runs it, its output is pushed with the pipeline, and a fresh clone
    on a feature branch (the dev data only: no data/full) runs `alops run` without touching the sampler."""
    from conftest import git, use_sampler_stage

    pipeline = use_sampler_stage(ml_project)
    clone = tmp_path / "runner"
    git(tmp_path, "clone", "-q", str(ml_project), str(clone))
    git(clone, "switch", "-q", "-c", "feature/faster")
    result = run_alops("run", cwd=clone)
    assert result.returncode == 0, result.stderr + result.stdout
    assert json.loads((clone / "metrics.json").read_text())  # trained and evaluated on the dev data
    assert not (clone / "data" / "full").exists()  # never needed the full data
    assert (clone / "data" / "dev" / "manifest.csv").read_text() == (ml_project / "data" / "dev" / "manifest.csv").read_text()
    import yaml

    assert (clone / "dvc.yaml").read_text() == pipeline  # the sampler was taken as it is, not frozen in the file
    locked = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    assert locked["sample"] == yaml.safe_load((ml_project / "dvc.lock").read_text())["stages"]["sample"]
    assert {"train", "evaluate"} <= set(locked)
