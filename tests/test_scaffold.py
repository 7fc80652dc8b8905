"""`alops new` (the cookiecutter template): every option combination baked, its tree, its tests, `alops run`."""

from __future__ import annotations

import csv
import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import clean_env, dvc, git, run_alops

KIT = Path(__file__).parents[1]
COMMON = {".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitignore", "README.md", "alops.yaml", "dvc.yaml",
          "params.schema.yaml", "params.yaml", "requirements.txt", "stages/__init__.py", "stages/common.py", "stages/evaluate.py",
          "stages/load.py", "stages/model.py", "stages/process.py", "stages/query.py", "stages/train.py",
          "tests/test_stages.py"}
FORGE_FILES = {"gitlab": {".gitlab-ci.yml"}, "github": {".github/workflows/ci.yml", ".github/zizmor.yml"},
               "both": {".gitlab-ci.yml", ".github/workflows/ci.yml", ".github/zizmor.yml"}}
EXAMPLE_FILES = {"none": set(), "digits": {"scripts/prepare_digits.py"}}


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(folder).parts[:1] and "/.dvc/tmp/" not in f"/{p.relative_to(folder)}"}


def write_images(folder: Path, classes: list[str], n: int = 120) -> None:
    """A small image dataset: a manifest and 8x8 PNGs, a third of the training samples unlabeled."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "label", "split"])
        for index in range(n):
            label = classes[index % len(classes)]
            pixels = (rng.random((8, 8)) * 60 + 150 * (index % len(classes)) / len(classes)).astype(np.uint8)
            Image.fromarray(pixels).save(folder / "images" / f"{index}.png")
            split = ["train", "train", "train", "val", "test"][index % 5]
            writer.writerow([index, f"images/{index}.png", "" if split == "train" and index % 3 == 0 else label, split])


@pytest.mark.parametrize("forge", ["gitlab", "github", "both"])
@pytest.mark.parametrize("example", ["none", "digits"])
def test_every_option_combination_bakes_a_working_project(tmp_path, forge, example):
    project = tmp_path / f"al_{forge}_{example}"
    result = run_alops("new", str(project), "--forge", forge, "--example", example, "--classes", "cat,dog",
                       "--version", "2.1.0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert tree(project) == COMMON | FORGE_FILES[forge] | EXAMPLE_FILES[example]
    for path in tree(project):
        assert "{{" not in (project / path).read_text() or path.endswith("ci.yml"), path
    if forge != "github":
        assert "alops/alops@2.1.0" in (project / ".gitlab-ci.yml").read_text()
    if forge != "gitlab":
        workflow = (project / ".github/workflows/ci.yml").read_text()
        assert "alops.yml@2.1.0" in workflow and "${{ secrets.MLFLOW_TRACKING_URI }}" in workflow
        zizmor = subprocess.run([str(Path(sys.executable).with_name("zizmor")), "--offline", "--no-progress", ".github"],
                                cwd=project, capture_output=True, text=True)
        assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr
    assert ("scikit-learn" in (project / "requirements.txt").read_text()) == (example == "digits")
    assert 'classes: ["cat", "dog"]' in (project / "alops.yaml").read_text()
    assert (tmp_path / f"al_{forge}_{example}-dvc-storage").name in (project / ".dvc/config").read_text()

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=project,
                           env=clean_env(), capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr

    git(project, "config", "user.email", "dev@example.com")
    git(project, "config", "user.name", "Dev")
    write_images(project / "data/full", ["cat", "dog"])
    dvc(project, "add", "-q", "data/full")
    made = run_alops("data", "make-dev", "--fraction", "0.5", cwd=project)
    assert made.returncode == 0, made.stderr
    assert run_alops("params", "check", cwd=project).returncode == 0
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    git(project, "switch", "-q", "-c", "feature/first")
    run = run_alops("run", cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "repro: on cpu with the dev dataset" in run.stdout + run.stderr
    metrics = json.loads((project / "metrics.json").read_text())
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and metrics["val_samples"] > 0
    # each class's precision and recall, and the (actual, predicted) pairs of the confusion matrix, by class name
    assert set(metrics["per_class"]) == {"cat", "dog"}
    assert sum(row["samples"] for row in metrics["per_class"].values()) == metrics["val_samples"]
    pairs = json.loads((project / "plots/confusion.json").read_text())
    assert len(pairs) == metrics["val_samples"] and {p["actual"] for p in pairs} <= {"cat", "dog"}
    right = sum(p["actual"] == p["predicted"] for p in pairs)
    assert right == round(metrics["val_accuracy"] * metrics["val_samples"])
    report = run_alops("report", "--out", "report/report.md", cwd=project)
    assert report.returncode == 0, report.stderr
    text = (project / "report/report.md").read_text()
    assert "<details><summary>Per-class metrics (6)</summary>" in text and "| `per_class.cat.recall` |" in text
    assert (project / "report/plot-Confusion-matrix-validation-split.png").is_file()
    assert (project / "report/plot-Training-loss.png").is_file()
    from alops.report import plots

    drawn = dict(plots.figures(yaml.safe_load((project / "dvc.yaml").read_text()), str(project)))
    confusion = drawn["Confusion matrix (validation split)"].axes[0]
    assert (confusion.get_xlabel(), confusion.get_ylabel()) == ("predicted", "actual")
    assert sum(int(t.get_text()) for t in confusion.texts) == metrics["val_samples"]
    curve = drawn["Training loss"].axes[0]
    assert (curve.get_xlabel(), curve.get_ylabel()) == ("epoch", "loss")
    unlabeled = sum(1 for row in csv.DictReader(open(project / "data/dev/manifest.csv")) if not row["label"])
    assert np.load(project / "pool_probs.npy").shape == (unlabeled, 2)


@pytest.mark.parametrize("args, message", [
    (["--forge", "gitea"], "Invalid value for '--forge'"),
    (["--classes", "cat"], "two or more distinct names"),
    (["--gitlab-kit", "gitlab.acme.io/x; rm -rf ~"], "--gitlab-kit 'gitlab.acme.io/x; rm -rf ~': give the kit's project path"),
    (["--github-kit", "acme/alops/.github@main"], "--github-kit 'acme/alops/.github@main': give the kit's repository"),
])
def test_bad_options_write_nothing(tmp_path, args, message):
    result = run_alops("new", str(tmp_path / "fine_name"), *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_invalid_slug_writes_nothing(tmp_path):
    result = run_alops("new", str(tmp_path / "Bad-Name"), cwd=tmp_path)
    assert result.returncode == 2
    assert "project folder 'Bad-Name' is not a valid name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_non_empty_folder_is_refused_and_kept(tmp_path):
    target = tmp_path / "project_x"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = run_alops("new", str(target), cwd=tmp_path)
    assert result.returncode == 2
    assert "exists and is not empty" in result.stderr
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project_x"]


def test_the_ci_files_pin_the_installed_alops_version_by_default(tmp_path):
    from alops import __version__

    project = tmp_path / "pinned"
    result = run_alops("new", str(project), "--forge", "both", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"alops/alops@{__version__}\n" in (project / ".gitlab-ci.yml").read_text()
    assert f"alops.yml@{__version__}\n" in (project / ".github/workflows/ci.yml").read_text()


def test_a_version_that_is_not_a_ref_is_refused_and_writes_nothing(tmp_path):
    result = run_alops("new", str(tmp_path / "p"), "--version", "1.0\n  - remote: https://evil/x.yml", cwd=tmp_path)
    assert result.returncode == 2 and "--version" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_examples_digits_is_the_scaffold_output(tmp_path):
    """examples/digits is `alops new digits --example digits --forge both` without its .git (and DVC's remote)."""
    fresh = tmp_path / "digits"
    result = run_alops("new", str(fresh), "--forge", "both", "--example", "digits", "--name", "digits",
                       "--remote", "../digits-dvc-storage", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    example = KIT / "examples/digits"
    assert tree(example) == tree(fresh)
    mismatched = [p for p in tree(fresh) if not filecmp.cmp(example / p, fresh / p, shallow=False)]
    assert mismatched == [], "examples/digits is stale: regenerate it (see examples/README.md)"
    assert not (example / ".git").exists()


def test_a_hyphenated_repository_in_an_existing_empty_git_repository(tmp_path):
    target = tmp_path / "text-classifier"
    target.mkdir()
    git(target, "init", "-q", "-b", "trunk")
    git(target, "remote", "add", "origin", "https://gitlab.example.com/team/text-classifier.git")
    result = run_alops("new", str(target), "--forge", "gitlab", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert git(target, "remote", "get-url", "origin").endswith("text-classifier.git")  # the team's .git was kept
    assert git(target, "branch", "--show-current") == "trunk"
    assert git(target, "log", "--format=%s") == "New alops project text-classifier (alops new)"
    assert git(target, "status", "--porcelain") == ""  # everything is in the first commit
    assert "text-classifier" in (target / "README.md").read_text()
    assert (tmp_path / "text-classifier-dvc-storage").name in (target / ".dvc/config").read_text()
    again = run_alops("new", str(target), cwd=tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_new_says_the_default_remote_is_this_machines_and_shows_no_dvc_hints(tmp_path):
    """alops commits the project: DVC's "You can now commit the changes to git" would be stale advice."""
    made = run_alops("new", str(tmp_path / "proj"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    output = made.stdout + made.stderr
    assert "commit the changes" not in output and "Initialized DVC repository" not in output
    assert f"DVC remote 'storage' is {tmp_path / 'proj-dvc-storage'}, a folder on this machine only" in made.stdout
    named = run_alops("new", str(tmp_path / "other"), "--remote", "s3://bucket/store", cwd=tmp_path)
    assert named.returncode == 0 and "a folder on this machine only" not in named.stdout


def test_the_kit_address_is_what_the_team_gives_or_a_placeholder_that_says_so(tmp_path):
    """The CI files point at the kit where the team hosts it; without --gitlab-kit/--github-kit they name
    placeholders no one takes for real, and alops new says so."""
    given = run_alops("new", str(tmp_path / "given"), "--forge", "both", "--gitlab-kit", "gitlab.acme.io:8443/ml/tools/alops",
                      "--github-kit", "acme/alops", cwd=tmp_path)
    assert given.returncode == 0, given.stderr
    assert "component: gitlab.acme.io:8443/ml/tools/alops/alops@0.1.0\n" in (tmp_path / "given/.gitlab-ci.yml").read_text()
    assert "uses: acme/alops/.github/workflows/alops.yml@0.1.0\n" in (tmp_path / "given/.github/workflows/ci.yml").read_text()
    assert "placeholder" not in given.stdout
    default = run_alops("new", str(tmp_path / "default"), "--forge", "both", cwd=tmp_path)
    assert "component: gitlab.example.com/your-group/alops/alops@" in (tmp_path / "default/.gitlab-ci.yml").read_text()
    assert "the kit at the placeholder gitlab.example.com/your-group/alops" in default.stdout
    assert "the kit at the placeholder your-org/alops" in default.stdout and "--github-kit next time" in default.stdout


def test_labeled_production_samples_get_their_own_metric_beside_the_overall_one(tmp_path):
    """Samples `alops pool add` took from production are listed in live_ids.txt; once labeled, the scaffold's
    evaluate stage reports the validation accuracy on them (live_accuracy, live_samples) beside val_accuracy."""
    project = tmp_path / "live_slice"
    assert run_alops("new", str(project), "--classes", "cat,dog", cwd=tmp_path).returncode == 0
    git(project, "config", "user.email", "dev@example.com")
    git(project, "config", "user.name", "Dev")
    write_images(project / "data/full", ["cat", "dog"])
    live = [str(index) for index in range(3, 120, 5)][:10]  # ten validation samples came from production
    (project / "data/full/live_ids.txt").write_text("".join(f"{i}\n" for i in live))
    dvc(project, "add", "-q", "data/full")
    assert run_alops("data", "make-dev", "--fraction", "0.5", cwd=project).returncode == 0
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    git(project, "switch", "-q", "-c", "experiment/live")
    run = run_alops("run", "--allow-cpu", "--no-track", cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics["live_samples"] == 10 and metrics["val_samples"] == 24
    assert 0.0 <= metrics["live_accuracy"] <= 1.0
    report = run_alops("report", "--target", "main", cwd=project)
    assert report.returncode == 0, report.stderr
    assert "| `live_accuracy` |" in (project / "report.md").read_text()
