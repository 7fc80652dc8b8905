"""`alops init` on a repository alops did not create: detection, the files, dry run, idempotence, --force."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import dvc, git, run_alops

from alops import __version__

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
    # the stages never read the dataset choice, and the full data stays in data/raw: its folder goes in as a param
    assert "make a stage read the dataset's folder: add `dataset_dir: data/dev` to params.yaml" in done.stdout
    assert "(alops run sets it to data/dev or data/raw per branch" in done.stdout
    assert "it names the placeholder your-org/alops (`alops init --github-kit ...`" in done.stdout
    assert run_alops("params", "check", cwd=project).returncode == 0

    after = digest(project)
    again = run_alops("init", cwd=project)
    assert again.returncode == 0 and digest(project) == after  # twice changes nothing
    assert "  create " not in again.stdout and "  append " not in again.stdout


def test_force_refreshes_only_what_alops_wrote_and_nobody_edited(repo):
    project = existing_project(repo)
    (project / "alops.yaml").write_text("default_branch: trunk\n")  # the team's own
    first = run_alops("init", "--forge", "gitlab", "--version", "0.1.0", cwd=project)
    assert first.returncode == 0, first.stderr
    assert "kept      alops.yaml" in first.stdout and "create    .gitlab-ci.yml" in first.stdout
    schema = project / "params.schema.yaml"
    schema.write_text(schema.read_text() + "train.n_est: {type: int, min: 1}\n")  # edited: the team's now
    forced = run_alops("init", "--forge", "gitlab", "--version", "0.2.0", "--force", cwd=project)
    assert forced.returncode == 0, forced.stderr
    assert (project / "alops.yaml").read_text() == "default_branch: trunk\n"  # never replaced, even forced
    assert "kept      params.schema.yaml" in forced.stdout and "min: 1" in schema.read_text()
    assert "replace   .gitlab-ci.yml" in forced.stdout and "alops@0.2.0" in (project / ".gitlab-ci.yml").read_text()
    assert not (project / ".github").exists()


TEAM_GITLAB_CI = """# the team's pipeline
stages: [lint, train, report]

.rules: &on-main
  - if: $CI_COMMIT_BRANCH == "main"

lint:
  stage: lint
  script: [ruff check .]

train:
  stage: train
  rules: *on-main
  script:
    - dvc repro
    - !reference [.setup, script]

cml-report:
  stage: report
  script: [cml comment create report.md]
"""
TEAM_WORKFLOW = """name: team
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: pytest
"""


@pytest.mark.parametrize("force", [False, True])
def test_init_on_a_repository_with_its_own_ci_loses_none_of_it(repo, force):
    import yaml as pyyaml

    project = existing_project(repo)
    (project / ".gitlab-ci.yml").write_text(TEAM_GITLAB_CI)
    (project / ".github/workflows").mkdir(parents=True)
    (project / ".github/workflows/team.yml").write_text(TEAM_WORKFLOW)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the team's CI")
    done = run_alops("init", "--forge", "both", *(["--force"] if force else []), cwd=project)
    assert done.returncode == 0, done.stderr
    assert "merge     .gitlab-ci.yml" in done.stdout
    text = (project / ".gitlab-ci.yml").read_text()
    for line in TEAM_GITLAB_CI.splitlines():  # every line of theirs, comments and anchors included
        assert line in text, line
    loader = type("GitLabLoader", (pyyaml.SafeLoader,), {})
    loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))
    merged = pyyaml.load(text, Loader=loader)
    assert merged["stages"] == ["lint", "train", "report"]
    assert {"lint", "train", "cml-report"} <= set(merged)
    component = merged["include"][0]
    assert component["component"].endswith(f"/alops@{__version__}")
    assert component["inputs"]["stage"] == "report"  # one of their stages: the component's jobs fit in
    assert (project / ".github/workflows/team.yml").read_text() == TEAM_WORKFLOW
    assert (project / ".github/workflows/alops.yml").exists()  # beside theirs
    again = run_alops("init", "--forge", "both", "--force", cwd=project)
    assert again.returncode == 0 and (project / ".gitlab-ci.yml").read_text() == text  # merged once


def test_init_points_at_the_kit_the_team_names_and_lists_only_what_is_left(repo):
    project = existing_project(repo)
    (project / "src").mkdir(exist_ok=True)
    (project / "requirements.txt").rename(project / "src/requirements.txt")  # where this team keeps them
    (project / "data/dev").mkdir(parents=True)
    (project / "data/dev/data.xml").write_text("<rows/>\n")
    done = run_alops("init", "--forge", "gitlab", "--gitlab-kit", "gitlab.acme.io/ml/alops", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "component: gitlab.acme.io/ml/alops/alops@" in (project / ".gitlab-ci.yml").read_text()
    assert "placeholder" not in done.stdout and "create the dev dataset" not in done.stdout  # done already
    assert "your dependencies are in src/requirements.txt: set the templates' `requirements` input" in done.stdout


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


def test_init_sets_dvc_up_for_a_cookiecutter_data_science_repository_without_renaming_folders(repo, tmp_path):
    """data/raw, a Makefile, no DVC, and a `/data/*` .gitignore rule: DVC skips folders .gitignore ignores, so it
    would never see data/raw.dvc (even with `!/data/*.dvc` after it): --dvc-remote names the rule and writes
    nothing; with the rule narrowed it sets DVC up on data/raw as it is, and the data reaches the remote."""
    (repo / "data/raw").mkdir(parents=True)
    (repo / "data/processed").mkdir()
    (repo / "data/raw/train.csv").write_text("text,label\ngood,1\nbad,0\n")
    (repo / "Makefile").write_text("data:\n\tpython src/make_dataset.py data/raw data/processed\n")
    (repo / ".gitignore").write_text("*.pyc\n/data/*\n!/data/*.dvc\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the team's project")
    store = tmp_path / "store"
    refused = run_alops("init", "--forge", "gitlab", "--dvc-remote", str(store), cwd=repo)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert ".gitignore:2: /data/* hides data/raw.dvc from DVC" in refused.stderr and "`/data/processed/`" in refused.stderr
    assert not (repo / ".dvc").exists() and not (repo / "alops.yaml").exists()  # nothing written

    (repo / ".gitignore").write_text("*.pyc\n/data/processed/\n")
    git(repo, "commit", "-q", "-am", "ignore only the processed data")
    done = run_alops("init", "--forge", "gitlab", "--dvc-remote", str(store), cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "dvc       init, remote storage (default), dvc add data/raw" in done.stdout
    assert "To track the changes with git" not in done.stdout + done.stderr
    data = yaml.safe_load((repo / "alops.yaml").read_text())["data"]
    assert (data["full"], data["dev"], data["rows"]) == ("data/raw", "data/dev", ["train.csv"])  # the folder as it is
    assert "set DVC up" not in done.stdout and "commit what DVC wrote" in done.stdout
    git(repo, "add", "-A")
    assert {"data/raw.dvc", "data/.gitignore", ".dvc/config"} <= set(git(repo, "diff", "--cached", "--name-only").split())
    dvc(repo, "push", "-q")
    assert [p for p in store.rglob("*") if p.is_file()]  # the data reached the remote
    staged = git(repo, "diff", "--cached", "--name-only")
    again = run_alops("init", "--forge", "gitlab", "--dvc-remote", str(store), cwd=repo)  # a rerun: nothing new
    assert again.returncode == 0, again.stderr
    git(repo, "add", "-A")
    assert git(repo, "diff", "--cached", "--name-only") == staged
    other = run_alops("init", "--forge", "gitlab", "--dvc-remote", str(tmp_path / "elsewhere"), cwd=repo)
    assert other.returncode == 2 and "this repository has it (.dvc)" in other.stderr


def test_init_moves_data_kept_in_git_to_dvc_and_a_rerun_after_an_interruption_continues(repo, tmp_path):
    """A flat scikit-learn project: its CSV and a .gitkeep in git, on `master`. `--dvc-remote` says in its plan
    that the folder's files leave git's index for DVC (the files stay), does it, and writes default_branch:
    master; a set-up interrupted after `dvc init` (same remote) is continued by running the command again."""
    from alops.data.storage import init_with_remote

    git(repo, "branch", "-m", "main", "master")
    (repo / "data").mkdir()
    (repo / "data/iris.csv").write_text("a,b,label\n1,2,x\n3,4,y\n")
    (repo / "data/.gitkeep").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data in git")
    store = tmp_path / "store"
    init_with_remote(str(repo), str(store), "storage")  # as if the first run was killed after dvc init
    done = run_alops("init", "--forge", "gitlab", "--dvc-remote", str(store), cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "git       rm -r --cached data: its 2 file(s) in git move to DVC" in done.stdout
    assert git(repo, "ls-files", "data") == "" and (repo / "data/iris.csv").is_file() and (repo / "data.dvc").is_file()
    assert yaml.safe_load((repo / "alops.yaml").read_text())["default_branch"] == "master"
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "alops and DVC")
    dvc(repo, "push", "-q")
    assert [p for p in store.rglob("*") if p.is_file()]


def test_without_dvc_the_checklist_offers_the_set_up(repo):
    (repo / "data").mkdir()
    (repo / "data/rows.csv").write_text("a,label\n1,x\n")
    done = run_alops("init", "--dry-run", "--forge", "github", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "set DVC up: `alops init --dvc-remote s3://bucket/path`" in done.stdout


CCDS_MAKEFILE = """.PHONY: clean data lint requirements
PROJECT_NAME = reviews
PYTHON_INTERPRETER = python3

## Install Python Dependencies
requirements:
\t$(PYTHON_INTERPRETER) -m pip install -U pip
\t$(PYTHON_INTERPRETER) -m pip install -r requirements.txt

## Make Dataset
data: requirements
\t$(PYTHON_INTERPRETER) src/data/make_dataset.py data/raw data/processed

## Train
train: data
\t@$(PYTHON_INTERPRETER) src/models/train_model.py data/processed models/model.json

## Delete all compiled Python files
clean:
\tfind . -type f -name "*.py[co]" -delete

lint:
\tflake8 src
"""
MAKE_DATASET = """import csv, os, sys
source, target = sys.argv[1:]
os.makedirs(target, exist_ok=True)
rows = list(csv.DictReader(open(os.path.join(source, 'reviews.csv'))))
with open(os.path.join(target, 'reviews.csv'), 'w', newline='') as out:
    writer = csv.DictWriter(out, fieldnames=['text', 'label'])
    writer.writeheader()
    writer.writerows({'text': r['text'].lower(), 'label': r['label']} for r in rows)
"""
TRAIN_MODEL = """import csv, json, os, sys
source, model = sys.argv[1:]
rows = list(csv.DictReader(open(os.path.join(source, 'reviews.csv'))))
os.makedirs(os.path.dirname(model), exist_ok=True)
json.dump({'rows': len(rows)}, open(model, 'w'))
json.dump({'accuracy': 0.5, 'rows': len(rows)}, open('metrics.json', 'w'))
"""


def write_ccds_project(root) -> None:
    """cookiecutter-data-science's layout: 200 rows in data/raw, the two scripts, its Makefile, data not in git."""
    (root / "data/raw").mkdir(parents=True)
    (root / "data/raw/reviews.csv").write_text("text,label\n" + "".join(f"Review {i},{i % 2}\n" for i in range(200)))
    for path, text in (("src/data/make_dataset.py", MAKE_DATASET), ("src/models/train_model.py", TRAIN_MODEL)):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "Makefile").write_text(CCDS_MAKEFILE)
    (root / ".gitignore").write_text("/data/raw/\n/data/processed/\n/models/\n")  # the data was never in git


def test_a_cookiecutter_data_science_makefile_becomes_stages_that_run_on_dev_and_full_data(repo, tmp_path):
    """No DVC, data/raw, the template's Makefile: init sets DVC up and proposes the stages the Makefile runs (the
    install, clean and lint targets left out); after make-dev, a feature run reads the dev folder and an
    experiment run data/raw, with no folder renamed and no line of dvc.yaml edited."""
    write_ccds_project(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the team's project")
    offered = run_alops("init", "--forge", "gitlab", "--dry-run", cwd=repo)
    assert "`alops init --stages-from-makefile` proposes data, train from the Makefile's targets" in offered.stdout

    done = run_alops("init", "--forge", "gitlab", "--dvc-remote", str(tmp_path / "store"), "--stages-from-makefile", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "create    dvc.yaml" in done.stdout and "create    params.yaml" in done.stdout
    assert "review dvc.yaml: the stages data, train come from the Makefile's targets" in done.stdout
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert stages == {
        "data": {"cmd": "python3 src/data/make_dataset.py ${dataset_dir} data/processed",
                 "deps": ["src/data/make_dataset.py", "${dataset_dir}"], "params": ["dataset_dir"],
                 "outs": ["data/processed"]},
        "train": {"cmd": "python3 src/models/train_model.py data/processed models/model.json",
                  "deps": ["src/models/train_model.py", "data/processed"], "outs": ["models/model.json"]}}
    made = run_alops("data", "make-dev", "--fraction", "0.1", cwd=repo)
    assert made.returncode == 0, made.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "alops, DVC and the stages")
    for branch, rows in (("feature/first", 20), ("experiment/first", 200)):
        git(repo, "switch", "-q", "-c", branch)
        result = run_alops("run", "--allow-cpu", "--no-track", cwd=repo)
        assert result.returncode == 0, result.stderr
        assert yaml.safe_load((repo / "models/model.json").read_text()) == {"rows": rows}
    assert (repo / "Makefile").read_text() == CCDS_MAKEFILE and (repo / "data/raw/reviews.csv").exists()


@pytest.mark.parametrize("makefile, pipeline, words", [
    (None, None, "there is no Makefile"),
    ("data:\n\tpython prepare.py data/raw data/prepared\n", "stages: {}\n", "this repository has dvc.yaml"),
    ("lint:\n\tflake8 src\ninstall:\n\tpython -m pip install -r requirements.txt\n", None, "runs no Python script"),
])
def test_stages_from_a_makefile_that_cannot_give_them_is_one_line_and_writes_nothing(repo, makefile, pipeline, words):
    (repo / "prepare.py").write_text("print('prepared')\n")
    for name, text in (("Makefile", makefile), ("dvc.yaml", pipeline)):
        if text is not None:
            (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the team's project")
    before = digest(repo)
    result = run_alops("init", "--forge", "gitlab", "--stages-from-makefile", cwd=repo)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    assert digest(repo) == before


@pytest.mark.parametrize("setup, expected", [
    (lambda repo: git(repo, "branch", "-m", "main", "master"), "master"),
    (lambda repo: (git(repo, "update-ref", "refs/remotes/origin/develop", "HEAD"),
                   git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/develop")), "develop"),
    (lambda repo: None, "main"),
])
def test_init_writes_the_repositorys_own_default_branch(repo, setup, expected):
    """A repository on `master` gets default_branch: master (main would make every push of master a feature run)."""
    setup(repo)
    done = run_alops("init", "--forge", "gitlab", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((repo / "alops.yaml").read_text())["default_branch"] == expected
    if expected == "master":
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "alops")
        assert json.loads(run_alops("context", "--format", "json", cwd=repo).stdout)["kind"] == "main"


def test_a_failed_dvc_set_up_leaves_the_repository_as_it_was(repo, tmp_path, monkeypatch):
    """DVC fails in `dvc add` (here made to): the index holds the data files again and DVC's files are gone, so
    nothing was changed and the command can be run again."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    from alops.core.errors import AlopsError
    from alops.setup.bootstrap import setup_dvc

    (repo / "data").mkdir()
    (repo / "data/rows.csv").write_text("a,label\n1,x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data in git")

    def refuse(self, *args, **kwargs):
        raise DvcException("the disk is full")

    monkeypatch.setattr(Repo, "add", refuse)
    with pytest.raises(AlopsError, match="DVC set-up failed: the disk is full .*nothing was changed"):
        setup_dvc(str(repo), "data", str(tmp_path / "store"))
    assert git(repo, "status", "--porcelain") == "" and git(repo, "ls-files", "data") == "data/rows.csv"
    assert not (repo / ".dvc").exists() and not (repo / ".dvcignore").exists()
