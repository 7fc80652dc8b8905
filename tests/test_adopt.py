"""`alops init` on a repository alops did not create: detection, the files, dry run, idempotence, --force."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from conftest import dvc, git, run_alops

DVC_YAML = """stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw/data.xml]
    params: [prepare]
    outs: [work/prepared]
  train:
    cmd: python train.py
    deps: [train.py, work/prepared]
    params: [train]
    outs: [model.pkl]
    metrics:
      - eval/metrics.json
plots:
  - ROC:
      template: simple
      x: fpr
      y: {eval/plots/roc.json: tpr}
"""


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".git" not in p.parts}


def existing_project(repo: Path) -> Path:
    """A text classifier as teams write them: raw single-file data, nested params, its own requirements."""
    dvc(repo, "init", "-q")
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "data.xml").write_text("<posts><row Id='1' Body='hi'/></posts>\n")
    dvc(repo, "add", "-q", "data/raw/data.xml")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("prepare:\n  split: 0.2\n  seed: 20170428\ntrain:\n  n_est: 50\n  min_split: 0.01\n"
                                      "  criterion: gini\n  shuffle: true\n")
    (repo / "requirements.txt").write_text("scikit-learn\n")
    (repo / ".gitignore").write_text("/model.pkl\n")
    git(repo, "remote", "add", "origin", "git@github.com:team/text-classifier.git")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the team's project")
    return repo


def test_init_detects_and_writes_what_alops_needs(repo):
    project = existing_project(repo)
    before = digest(project)
    dry = run_alops("init", "--dry-run", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert digest(project) == before  # a dry run writes nothing
    assert "github repository" in dry.stdout and "prepare, train" in dry.stdout and "data/raw/data.xml" in dry.stdout
    assert "create    alops.yaml" in dry.stdout and "append    .gitignore" in dry.stdout

    done = run_alops("init", cwd=project)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((project / "alops.yaml").read_text())
    assert config["data"] == {"full": "data/raw", "dev": "data/dev"}
    schema = yaml.safe_load((project / "params.schema.yaml").read_text())
    assert schema["train.n_est"] == {"type": "int"} and schema["train.min_split"] == {"type": "float"}
    assert schema["train.criterion"] == {"type": "str"} and schema["train.shuffle"] == {"type": "bool"}
    workflow = (project / ".github/workflows/alops.yml").read_text()
    from alops import __version__

    assert f"alops.yml@{__version__}" in workflow and "{{" not in workflow.replace("${{", "")
    assert "mlflow.db" in (project / ".gitignore").read_text() and "/model.pkl" in (project / ".gitignore").read_text()
    assert "make a stage read the dataset choice" in done.stdout  # the stages never read `dataset`
    assert run_alops("params", "check", cwd=project).returncode == 0

    after = digest(project)
    again = run_alops("init", cwd=project)
    assert again.returncode == 0 and digest(project) == after  # twice changes nothing
    assert "  create " not in again.stdout and "  append " not in again.stdout


def test_init_keeps_an_existing_file_unless_forced(repo):
    project = existing_project(repo)
    (project / "alops.yaml").write_text("default_branch: trunk\n")
    kept = run_alops("init", "--forge", "gitlab", cwd=project)
    assert kept.returncode == 0, kept.stderr
    assert "kept      alops.yaml" in kept.stdout and (project / "alops.yaml").read_text() == "default_branch: trunk\n"
    forced = run_alops("init", "--forge", "gitlab", "--force", cwd=project)
    assert forced.returncode == 0 and "replace   alops.yaml" in forced.stdout
    assert "data:" in (project / "alops.yaml").read_text()
    assert (project / ".gitlab-ci.yml").exists() and not (project / ".github").exists()


def test_init_outside_a_git_repository_is_one_line(tmp_path):
    result = run_alops("init", cwd=tmp_path)
    assert result.returncode == 2 and "not a git repository" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_names_row_files_it_finds_and_make_dev_then_samples_them(repo):
    """A repository whose full data is two CSV files (no manifest): init writes data.rows, the checklist asks
    for the label column, and after the team sets it make-dev samples both files."""
    dvc(repo, "init", "-q")
    full = repo / "data" / "full"
    full.mkdir(parents=True)
    for name, rows in (("train.csv", 400), ("test.csv", 100)):
        (full / name).write_text("text,sentiment\n" + "".join(f"t{i},{i % 4 == 0}\n" for i in range(rows)))
    dvc(repo, "add", "-q", "data/full")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    result = run_alops("init", "--forge", "gitlab", cwd=repo)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((repo / "alops.yaml").read_text())
    assert config["data"]["rows"] == ["test.csv", "train.csv"] and config["data"]["dev"] == "data/dev"
    assert "set data.label in alops.yaml to the label column of test.csv, train.csv" in result.stdout
    (repo / "alops.yaml").write_text((repo / "alops.yaml").read_text().replace("label: label", "label: sentiment"))
    made = run_alops("data", "make-dev", "--fraction", "0.1", cwd=repo)
    assert made.returncode == 0, made.stderr
    assert "50 of 500 samples" in made.stdout
    train = (repo / "data" / "dev" / "train.csv").read_text().splitlines()
    assert len(train) == 41 and sum(line.endswith(",True") for line in train) == 10  # 1 in 4, as in the full file
