"""`alops run` on the test project: branch profiles, DVC's run cache, MLflow tracking and its outage policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import clean_env, dvc, free_port, git, run_alops


def lock_deps(project) -> set[str]:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {dep["path"] for stage in lock["stages"].values() for dep in stage.get("deps", [])}


def mlflow_client(url):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=url)


def runs_of(url, project, kind):
    """The runs of `kind` on the session's tracking server made from this project's commits (every copy of the
    session's project has the same name, and so the same experiments)."""
    client = mlflow_client(url)
    found = client.get_experiment_by_name(f"{project.name}/{kind}")
    commits = set(git(project, "rev-list", "--all").split())
    return [run for run in client.search_runs([found.experiment_id]) if run.data.tags.get("git.commit") in commits] if found else []


def test_feature_branch_runs_on_dev_data_and_cpu(ml_project):
    git(ml_project, "switch", "-q", "-c", "feature/tune")
    result = run_alops("run", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    assert "repro: on cpu with the dev dataset" in result.stderr
    assert yaml.safe_load((ml_project / "params.yaml").read_text())["dataset"] == "dev"
    assert "data/dev" in lock_deps(ml_project) and "data/full" not in lock_deps(ml_project)
    metrics = json.loads((ml_project / "metrics.json").read_text())
    assert "val_accuracy: " in result.stdout and metrics["val_samples"] < 200  # a fifth of 359 val samples
    assert not (ml_project / "mlflow.db").exists()  # feature runs are not tracked without a server
    assert "# which dataset" in (ml_project / "params.yaml").read_text()  # comments kept


def test_experiment_branch_without_gpu_fails_unless_allowed(ml_project):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    git(ml_project, "switch", "-q", "-c", "experiment/full")
    result = run_alops("run", cwd=ml_project)
    assert result.returncode == 1
    assert "asks for a GPU and no CUDA device is visible" in result.stderr and "--allow-cpu" in result.stderr
    assert not (ml_project / "metrics.json").exists()


@pytest.mark.parametrize("forge, names", [("local", "pass --allow-cpu"),
                                         ("gitlab", "set the component's input `allow-cpu: true`"),
                                         ("github", "set the workflow's input `allow-cpu: true`")])
def test_the_gpu_guard_names_what_allows_the_cpu_where_the_run_is(monkeypatch, forge, names):
    """In CI the team sets a template input, not a command-line flag: the error names the one they can set."""
    from alops.core.errors import AlopsError
    from alops.runs import pipeline

    monkeypatch.setattr(pipeline, "cuda_device_count", lambda: 0)
    with pytest.raises(AlopsError, match="no CUDA device is visible") as error:
        pipeline.resolve_device(None, "gpu", "experiment", allow_cpu=False, forge=forge)
    assert names in str(error.value) and ("--allow-cpu" in str(error.value)) == (forge == "local")
    assert pipeline.resolve_device(None, "gpu", "experiment", allow_cpu=True, forge=forge) == "cpu"


def test_experiment_run_on_full_data_is_tracked_with_every_tag(ml_project, mlflow_server):
    git(ml_project, "switch", "-q", "-c", "experiment/full")
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    result = run_alops("run", "--allow-cpu", cwd=ml_project, env=env)
    assert result.returncode == 0, result.stderr
    assert "data/full" in lock_deps(ml_project)
    runs = runs_of(mlflow_server, ml_project, "experiment")
    assert len(runs) == 1
    run = runs[0]
    tags = run.data.tags
    assert tags["git.commit"] == git(ml_project, "rev-parse", "HEAD")
    assert tags["git.branch"] == "experiment/full"
    assert tags["alops.kind"] == "experiment" and tags["alops.dataset"] == "full"
    assert tags["alops.data_version"] == run_alops("data", "version", cwd=ml_project).stdout.strip()
    assert tags["alops.runner"].startswith("local:") and tags["alops.device"] == "cpu"
    assert tags["alops.cpu_fallback"] == "true" and tags["alops.dirty"] == "false"  # a clean tree, a GPU profile
    assert "device: the CPU, not the GPU the experiment profile asks for (allowed by allow-cpu)" in result.stderr
    assert run.data.params["train.lr"] == "0.01" and run.data.params["dataset"] == "full"
    assert "val_accuracy" in run.data.metrics, (run.data.metrics, result.stdout)
    assert run.data.metrics["val_accuracy"] == json.loads((ml_project / "metrics.json").read_text())["val_accuracy"]
    history = mlflow_client(mlflow_server).get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]
    artifacts = {a.path for a in mlflow_client(mlflow_server).list_artifacts(run.info.run_id)}
    assert {"model", "dvc.lock", "plots"} <= artifacts  # plots/train.json, at its project path


def test_second_identical_run_is_a_no_op(ml_project, mlflow_server):
    git(ml_project, "switch", "-q", "-c", "experiment/again")
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    assert run_alops("run", "--allow-cpu", cwd=ml_project, env=env).returncode == 0
    model = (ml_project / "model" / "MLmodel").stat().st_mtime_ns
    again = run_alops("run", "--allow-cpu", cwd=ml_project, env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing ran, nothing tracked" in again.stderr
    first = [r for r in runs_of(mlflow_server, ml_project, "experiment") if r.data.tags["git.branch"] == "experiment/again"]
    assert f"its outputs are run {first[0].info.run_id}'s (the same dvc.lock)" in again.stderr  # the report links it
    recorded = json.loads((ml_project / ".alops/run.json").read_text())
    assert (recorded["run_id"], recorded["restored"]) == (first[0].info.run_id, True)
    assert (ml_project / "model" / "MLmodel").stat().st_mtime_ns == model
    assert len([r for r in runs_of(mlflow_server, ml_project, "experiment") if r.data.tags["git.branch"] == "experiment/again"]) == 1


def test_a_run_from_uncommitted_changes_on_the_cpu_says_so_in_its_tags_and_its_report(ml_project, mlflow_server):
    """params.yaml changed and not committed, a GPU profile run on the CPU: the run's tags, and the report's
    table of both sides, name the device, the fallback and the uncommitted file, and link the run."""
    git(ml_project, "switch", "-q", "-c", "experiment/dirty")
    params = ml_project / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 5", "epochs: 2"))
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    result = run_alops("run", "--allow-cpu", cwd=ml_project, env=env)
    assert result.returncode == 0, result.stderr
    assert "tree: uncommitted changes to params.yaml: the run is tagged dirty" in result.stderr
    run = [r for r in runs_of(mlflow_server, ml_project, "experiment") if r.data.tags["git.branch"] == "experiment/dirty"][0]
    assert run.data.tags["alops.dirty"] == "params.yaml" and len(run.data.tags["alops.dirty_diff"]) == 16
    assert "run.json" not in git(ml_project, "status", "--porcelain", "--untracked-files=all")  # .alops ignores itself
    report = run_alops("report", "--target", "main", "--out", "report.md", cwd=ml_project, env=env)
    assert report.returncode == 0, report.stderr
    text = (ml_project / "report.md").read_text()
    assert "| device | `cpu (CPU fallback: the profile asks for a GPU)` |" in text
    assert "| uncommitted changes | **1 file(s)**: `params.yaml` | none |" in text
    assert f"runs/{run.info.run_id})" in text.split("| run |")[1].split("\n")[0]  # this branch's run, linked


def test_dead_server_on_feature_buffers_and_sync_delivers_once(ml_project, mlflow_server):
    git(ml_project, "switch", "-q", "-c", "feature/outage")
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_alops("run", "--track", cwd=ml_project, env=clean_env(MLFLOW_TRACKING_URI=dead))
    assert result.returncode == 0, result.stderr
    assert "run buffered" in result.stderr
    buffered = list((ml_project / ".alops/tracking-buffer").iterdir())
    assert len(buffered) == 1
    live = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    synced = run_alops("track", "sync", cwd=ml_project, env=live)
    assert synced.returncode == 0, synced.stderr
    assert "1 buffered run(s) sent" in synced.stdout
    again = run_alops("track", "sync", cwd=ml_project, env=live)
    assert "0 buffered run(s) sent" in again.stdout
    runs = [r for r in runs_of(mlflow_server, ml_project, "feature") if r.data.tags["git.branch"] == "feature/outage"]
    assert len(runs) == 1
    assert "model" in {a.path for a in mlflow_client(mlflow_server).list_artifacts(runs[0].info.run_id)}
    assert git(ml_project, "status", "--porcelain", "--", ".alops") == ""  # the buffer is not committed by accident


def test_the_next_run_sends_what_an_outage_buffered_and_keeps_it_while_the_server_is_still_down(ml_project, mlflow_server):
    git(ml_project, "switch", "-q", "-c", "feature/outage-twice")
    dead = clean_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    assert run_alops("run", "--track", cwd=ml_project, env=dead).returncode == 0
    still_down = run_alops("run", "--track", "--set", "train.epochs=6", cwd=ml_project, env=dead)
    assert still_down.returncode == 0, still_down.stderr
    assert "tracking: buffered runs kept" in still_down.stderr
    assert len(list((ml_project / ".alops/tracking-buffer").iterdir())) == 2  # the first one, and this one
    back = run_alops("run", "--track", "--set", "train.epochs=7", cwd=ml_project, env=clean_env(MLFLOW_TRACKING_URI=mlflow_server))
    assert back.returncode == 0, back.stderr
    assert "tracking: 2 run(s) buffered by earlier jobs sent" in back.stderr
    runs = [r for r in runs_of(mlflow_server, ml_project, "feature") if r.data.tags["git.branch"] == "feature/outage-twice"]
    assert sorted(r.data.params["train.epochs"] for r in runs) == ["5", "6", "7"]
    assert list((ml_project / ".alops/tracking-buffer").iterdir()) == []


def test_dead_server_on_release_fails_closed(ml_project):
    git(ml_project, "switch", "-q", "-c", "release/1.0")
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_alops("run", "--device", "cpu", cwd=ml_project, env=clean_env(MLFLOW_TRACKING_URI=dead))
    assert result.returncode == 1
    assert "release runs must be tracked" in result.stderr and "Traceback" not in result.stderr
    assert not (ml_project / ".alops/tracking-buffer").exists()


def test_invalid_params_stop_before_any_work(ml_project):
    git(ml_project, "switch", "-q", "-c", "feature/bad")
    before = (ml_project / "params.yaml").read_text()
    result = run_alops("run", "--set", "train.lr=5", "--set", "train.hidden=48", cwd=ml_project)
    assert result.returncode == 2
    assert "train.lr: 5 is not allowed (expected a float >= 1e-05 <= 1.0)" in result.stderr
    assert "train.hidden: 48 is not allowed (expected one of 16, 32, 64)" in result.stderr
    assert (ml_project / "params.yaml").read_text() == before
    assert not (ml_project / "dvc.lock").exists()


def test_params_check_lists_each_problem(ml_project):
    (ml_project / "params.yaml").write_text("dataset: huge\ntrain: {lr: 0.1, epochs: 0}\n")
    result = run_alops("params", "check", cwd=ml_project)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "params.yaml: dataset: 'huge' is not allowed (expected one of dev, full)" in lines
    assert "params.yaml: train.epochs: 0 is not allowed (expected a int >= 1 <= 200)" in lines
    assert "params.yaml: train.hidden: missing (expected one of 16, 32, 64)" in lines


def test_params_matrix_for_gitlab_and_github(ml_project):
    printed = run_alops("params", "matrix", "--format", "gitlab", cwd=ml_project).stdout
    assert printed.startswith("parallel:\n  matrix:\n")  # a block to paste into a job
    gitlab = yaml.safe_load(printed)["parallel"]["matrix"]
    assert len(gitlab) == 4 and {"PARAM_TRAIN_LR": ["0.05"], "PARAM_TRAIN_HIDDEN": ["16"]} in gitlab
    github = json.loads(run_alops("params", "matrix", "--format", "github", cwd=ml_project).stdout)
    assert {"train.lr": 0.01, "train.hidden": 32} in github["include"]
    sample = json.loads(run_alops("params", "matrix", "--sample", "2", "--seed", "1", cwd=ml_project).stdout)
    assert len(sample) == 2 and all(combo in json.loads(run_alops("params", "matrix", cwd=ml_project).stdout) for combo in sample)


def test_candidates_and_select_best(ml_project, mlflow_server):
    git(ml_project, "switch", "-q", "-c", "feature/candidates")
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server)
    for lr in ("0.001", "0.05"):
        assert run_alops("run", "--set", f"train.lr={lr}", "--set", "train.epochs=30", cwd=ml_project, env=env).returncode == 0
    result = run_alops("select-best", "--metric", "val_accuracy", cwd=ml_project, env=env)
    assert result.returncode == 0, result.stderr
    best = json.loads(result.stdout)
    runs = [r for r in runs_of(mlflow_server, ml_project, "feature") if r.data.tags["git.branch"] == "feature/candidates"]
    assert len(runs) == 2
    assert best["value"] == max(r.data.metrics["val_accuracy"] for r in runs)
    lowest = json.loads(run_alops("select-best", "--metric", "val_accuracy", "--mode", "min", cwd=ml_project,
                                  env=env).stdout)
    assert lowest["value"] == min(r.data.metrics["val_accuracy"] for r in runs)
    # from another branch: name the experiment (--kind) and the commit the candidates ran on (--commit)
    commit = git(ml_project, "rev-parse", "HEAD")
    git(ml_project, "switch", "-q", "-c", "experiment/elsewhere")
    git(ml_project, "commit", "-q", "--allow-empty", "-m", "another commit")
    found = run_alops("select-best", "--metric", "val_accuracy", "--kind", "feature", "--commit", commit,
                      cwd=ml_project, env=env)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["value"] == best["value"]
    none = run_alops("select-best", "--metric", "val_accuracy", "--kind", "feature", cwd=ml_project, env=env)
    assert none.returncode != 0  # the current commit has no feature runs


def test_unknown_stage_and_broken_metrics(ml_project):
    git(ml_project, "switch", "-q", "-c", "feature/broken")
    unknown = run_alops("run", "deploy", cwd=ml_project)
    assert unknown.returncode == 2 and "stage 'deploy' is not in dvc.yaml (stages: train, evaluate)" in unknown.stderr
    evaluate = ml_project / "evaluate.py"
    evaluate.write_text(evaluate.read_text() + "\nopen('metrics.json', 'w').write('accuracy: high')\n")
    broken = run_alops("run", cwd=ml_project)
    assert broken.returncode == 1
    assert "metrics.json: not valid JSON" in broken.stderr and "Traceback" not in broken.stderr


def test_dry_run_prints_the_plan_and_changes_nothing(ml_project):
    git(ml_project, "switch", "-q", "-c", "al/round-1")
    before = (ml_project / "params.yaml").read_text()
    result = run_alops("run", "--dry-run", cwd=ml_project)
    assert result.returncode == 0
    assert "is active-learning: dataset=full" in result.stderr and "dvc repro" in result.stderr
    assert (ml_project / "params.yaml").read_text() == before and not (ml_project / "dvc.lock").exists()


def test_fresh_runner_on_an_unchanged_commit_is_a_no_op(ml_project, tmp_path):
    git(ml_project, "switch", "-q", "-c", "feature/cached")
    assert run_alops("run", cwd=ml_project).returncode == 0  # pushes outputs and the run cache
    git(ml_project, "add", "-A")
    git(ml_project, "commit", "-q", "-m", "pipeline results")
    runner = tmp_path / "runner"
    git(tmp_path, "clone", "-q", "-b", "feature/cached", str(ml_project), str(runner))
    result = run_alops("run", cwd=runner)
    assert result.returncode == 0, result.stderr
    assert "nothing ran, nothing tracked" in result.stderr
    assert (runner / "model/MLmodel").read_bytes() == (ml_project / "model/MLmodel").read_bytes()


def test_a_dev_run_whose_stages_ignore_the_dataset_choice_is_refused(repo):
    """A feature branch must not train on the full data under a dev label."""
    from conftest import dvc

    dvc(repo, "init", "-q")
    (repo / "train.py").write_text("import json\njson.dump({'a': 1}, open('m.json', 'w'))\n")
    (repo / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python train.py\n"
                                   "    deps: [train.py, data/full]\n    metrics:\n      - m.json:\n          cache: false\n")
    (repo / "data" / "full").mkdir(parents=True)
    (repo / "data" / "full" / "rows.csv").write_text("x\n1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a pipeline that always reads the full data")
    git(repo, "switch", "-q", "-c", "feature/x")
    refused = run_alops("run", cwd=repo)
    assert refused.returncode == 2 and "reads the dataset choice" in refused.stderr
    assert not (repo / "m.json").exists()
    (repo / "alops.yaml").write_text("data:\n  check_dev_use: false\n")
    allowed = run_alops("run", cwd=repo)
    assert allowed.returncode == 0, allowed.stderr
    assert "a: 1" in allowed.stdout


def test_the_data_version_means_the_data_not_the_model(ml_project):
    """Retraining on the same data (new model, new dvc.lock outputs, MLflow's local artifact copies) keeps it."""
    git(ml_project, "switch", "-q", "-c", "feature/version")
    before = run_alops("data", "version", cwd=ml_project).stdout.strip()
    first = run_alops("run", "--track", cwd=ml_project)
    assert first.returncode == 0, first.stderr
    lock_after_first = (ml_project / "dvc.lock").read_text()
    second = run_alops("run", "--no-track", "--set", "train.epochs=2", cwd=ml_project)  # the copies stay
    assert second.returncode == 0, second.stderr
    assert (ml_project / "dvc.lock").read_text() != lock_after_first  # a different model was trained
    assert (ml_project / "mlartifacts").is_dir()  # the local store copied dvc.lock and the model
    assert run_alops("data", "version", cwd=ml_project).stdout.strip() == before
    detail = json.loads(run_alops("data", "version", "--format", "json", cwd=ml_project).stdout)
    assert set(detail["outputs"]) == {"data/full", "data/dev"}


def changed_files(project) -> set[str]:
    return {line.split(maxsplit=1)[1] for line in git(project, "status", "--porcelain", "--untracked-files=all").splitlines()}


@pytest.mark.parametrize("branch", ["feature/clean", "experiment/clean",  # dev data and full data
                                    *(pytest.param(b, marks=pytest.mark.slow) for b in ("al/clean", "release/clean"))])
def test_a_run_leaves_the_tree_as_it_was_but_for_what_dvc_writes(ml_project, branch):
    """params.yaml commits `dataset: dev`; the run uses the profile's dataset and puts the file back."""
    git(ml_project, "switch", "-q", "-c", branch)
    before = (ml_project / "params.yaml").read_bytes()
    result = run_alops("run", "--allow-cpu", "--no-track", "--set", "train.epochs=2", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    assert (ml_project / "params.yaml").read_bytes() == before
    assert "train.epochs=2 held for this run only: params.yaml (what CI runs) is as it was; to keep them, run " \
        "again with --keep-sets and commit params.yaml" in result.stderr  # a pushed branch would train otherwise
    # DVC's lock, its outputs and the .gitignore line it adds for model/
    assert changed_files(ml_project) <= {"dvc.lock", "metrics.json", "plots/train.json", ".gitignore"}
    lock = yaml.safe_load((ml_project / "dvc.lock").read_text())["stages"]["train"]["params"]["params.yaml"]
    dataset = "dev" if branch.startswith("feature/") else "full"
    assert lock["dataset"] == dataset and lock["train"]["epochs"] == 2  # the lock records what ran
    again = run_alops("run", "--allow-cpu", "--no-track", "--set", "train.epochs=2", cwd=ml_project)
    assert "pipeline up to date" in again.stderr  # the same run is recognised although params.yaml says otherwise


def test_keep_sets_writes_the_values_into_params_yaml(ml_project):
    git(ml_project, "switch", "-q", "-c", "feature/keep")
    result = run_alops("run", "--set", "train.epochs=2", "--keep-sets", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    assert "held for this run only" not in result.stderr
    params = yaml.safe_load((ml_project / "params.yaml").read_text())
    assert params["train"]["epochs"] == 2 and params["dataset"] == "dev"
    assert "# which dataset" in (ml_project / "params.yaml").read_text()  # comments kept


def test_a_run_killed_mid_pipeline_gets_params_yaml_back_on_the_next_run(repo):
    """The stage kill -9s alops (its nearest alops ancestor) while params.yaml holds the run's values."""
    from conftest import dvc

    dvc(repo, "init", "-q")
    (repo / "params.yaml").write_text("# committed\ndataset: dev\nsteps: 1\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: python train.py\n    deps: [train.py]\n    params: [dataset, steps]\n"
        "    metrics:\n      - m.json:\n          cache: false\n")
    (repo / "train.py").write_text(
        "import json, os, signal, yaml\np = yaml.safe_load(open('params.yaml'))\n"
        "def alops_ancestor():\n"  # DVC may run the stage under a shell: find alops itself
        "    pid = os.getppid()\n"
        "    while pid > 1:\n"
        "        if b'alops' in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
        "            return pid\n"
        "        pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "    raise SystemExit('no alops process above the stage')\n"
        "if os.path.exists('kill-me'):\n    os.kill(alops_ancestor(), signal.SIGKILL)\n"
        "json.dump({'steps': p['steps']}, open('m.json', 'w'))\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    before = (repo / "params.yaml").read_bytes()
    git(repo, "switch", "-q", "-c", "experiment/killed")
    (repo / "kill-me").write_text("")
    killed = run_alops("run", "--allow-cpu", "--no-track", "--set", "steps=7", cwd=repo)
    assert killed.returncode != 0
    assert (repo / "params.yaml").read_bytes() != before  # the kill landed while the run's values were in place
    assert (repo / ".alops/params-of-the-run.json").exists()
    (repo / "kill-me").unlink()
    rerun = run_alops("run", "--allow-cpu", "--no-track", cwd=repo)
    assert rerun.returncode == 0, rerun.stderr
    assert (repo / "params.yaml").read_bytes() == before
    assert not (repo / ".alops/params-of-the-run.json").exists()
    assert "steps: 1" in rerun.stdout  # the killed run's --set did not leak into the next run


DVCLIVE_STYLE = """stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [dataset]
    metrics:
      - live/metrics.json:
          cache: false
    plots:
      - live/plots/metrics:
          cache: false
    outs:
      - eval:
          cache: false
plots:
  - live/plots/metrics:
      x: step
  - ROC:
      template: simple
      x: fpr
      y:
        eval/roc.json: tpr
  - Confusion-Matrix:
      template: confusion
      x: actual
      y:
        eval/confusion.json: predicted
"""
WRITE_PLOTS = """import json, os
os.makedirs('live/plots/metrics', exist_ok=True); os.makedirs('eval', exist_ok=True)
open('live/plots/metrics/acc.tsv', 'w').write('step\\tacc\\n0\\t0.5\\n1\\t0.7\\n')
json.dump({'acc': 0.7}, open('live/metrics.json', 'w'))
json.dump({'roc': [{'fpr': 0, 'tpr': 0}, {'fpr': 1, 'tpr': 1}]}, open('eval/roc.json', 'w'))
json.dump([{'actual': 'a', 'predicted': 'b'}], open('eval/confusion.json', 'w'))
"""


def test_plots_defined_by_name_are_resolved_to_their_files_and_tracked(repo):
    """dvclive writes top-level plot definitions by name; the files they read are the run's plot artifacts."""
    from conftest import dvc

    dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(DVCLIVE_STYLE)
    (repo / "params.yaml").write_text("dataset: full\n")
    (repo / "train.py").write_text(WRITE_PLOTS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvclive-style project")
    git(repo, "switch", "-q", "-c", "experiment/plots")
    result = run_alops("run", "--allow-cpu", "--track", cwd=repo)
    assert result.returncode == 0, result.stderr
    client = mlflow_client(f"sqlite:///{repo / 'mlflow.db'}")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert logged == {"eval", "live", "dvc.lock"}, logged  # under their project paths; plot names are not files
    assert {a.path for a in client.list_artifacts(run.info.run_id, "eval")} == {"eval/roc.json", "eval/confusion.json"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "live/plots/metrics")} == {"live/plots/metrics/acc.tsv"}
    assert run.data.metrics["acc"] == 0.7
    assert not {"fpr", "tpr", "roc.fpr", "roc.tpr"} & set(run.data.metrics)  # plot points are not metrics


COLLIDING = """stages:
  evaluate:
    cmd: python evaluate.py
    params: [dataset]
    metrics:
      - metrics.json:
          cache: false
    plots:
      - roc/train.json:
          cache: false
      - prc/train.json:
          cache: false
      - cm/train.json:
          cache: false
      - curve.json:
          cache: false
"""
WRITE_COLLIDING = """import json, os
for folder in ('roc', 'prc', 'cm'):
    os.makedirs(folder, exist_ok=True)
json.dump({'roc': [{'fpr': i / 200, 'tpr': (i / 200) ** 0.5, 'threshold': 1 - i / 200} for i in range(201)]}, open('roc/train.json', 'w'))
json.dump({'prc': [{'precision': 1 - i / 100, 'recall': i / 100} for i in range(101)]}, open('prc/train.json', 'w'))
json.dump([{'actual': 'a', 'predicted': 'b'}], open('cm/train.json', 'w'))
json.dump([{'epoch': e, 'loss': 1 / (e + 1)} for e in range(3)], open('curve.json', 'w'))
json.dump({'acc': 0.8}, open('metrics.json', 'w'))
"""


def test_plot_files_of_one_basename_all_reach_tracking_and_plot_points_are_not_metrics(repo, tmp_path):
    """roc/train.json, prc/train.json and cm/train.json (DVC's own example layout) each stay an artifact at its
    path, also through an outage buffer; ROC and PR points stay data, an epoch curve becomes a metric's steps."""
    from conftest import dvc

    dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(COLLIDING)
    (repo / "params.yaml").write_text("dataset: full\n")
    (repo / "evaluate.py").write_text(WRITE_COLLIDING)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "three plots named train.json")
    git(repo, "switch", "-q", "-c", "feature/plots")
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_alops("run", "--track", cwd=repo, env=clean_env(MLFLOW_TRACKING_URI=dead))
    assert result.returncode == 0 and "run buffered" in result.stderr, result.stderr
    store = f"sqlite:///{tmp_path / 'store.db'}"
    synced = run_alops("track", "sync", cwd=repo, env=clean_env(MLFLOW_TRACKING_URI=store))
    assert synced.returncode == 0 and "1 buffered run(s) sent" in synced.stdout, synced.stderr
    client = mlflow_client(store)
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    for folder in ("roc", "prc", "cm"):
        assert [a.path for a in client.list_artifacts(run.info.run_id, folder)] == [f"{folder}/train.json"]
    downloaded = client.download_artifacts(run.info.run_id, "prc/train.json", str(tmp_path))
    assert json.loads(Path(downloaded).read_text()) == json.loads((repo / "prc/train.json").read_text())
    assert set(run.data.metrics) == {"acc", "loss"}, run.data.metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [0, 1, 2]


def test_release_and_report_read_the_run_alops_run_tracked_with_one_data_version(ml_project, mlflow_server):
    """No hand-made runs: `alops run` tracks on a release branch; `release` and `report` consume that run."""
    git(ml_project, "switch", "-q", "-c", "release/1.0")
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server, CI_PROJECT_NAME=f"linked-{ml_project.parent.name}"[:60])
    trained = run_alops("run", "--allow-cpu", cwd=ml_project, env=env)
    assert trained.returncode == 0, trained.stderr
    version = run_alops("data", "version", cwd=ml_project).stdout.strip()
    released = run_alops("release", "--metric", "val_accuracy", cwd=ml_project, env=env)
    assert released.returncode == 0, released.stderr
    record = json.loads((ml_project / "release.json").read_text())
    run = mlflow_client(mlflow_server).get_run(record["run_id"])
    assert run.data.tags["git.branch"] == "release/1.0" and run.data.tags["alops.data_version"] == version
    assert record["data_version"] == version and record["branch"] == "release/1.0"
    assert record["metric"] == "val_accuracy" and record["value"] == run.data.metrics["val_accuracy"]
    reported = run_alops("report", "--target", "main", cwd=ml_project, env=env)
    assert reported.returncode == 0, reported.stderr
    text = (ml_project / "report.md").read_text()
    assert f"| data version | `{version}` |" in text
    assert run.info.run_id in text  # the report links the run alops run tracked for this commit


def test_the_gpu_path_on_a_cuda_device(ml_project):
    """Where a CUDA device is visible, an experiment runs on it without --allow-cpu; skipped elsewhere."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    git(ml_project, "switch", "-q", "-c", "experiment/gpu")
    result = run_alops("run", "--track", cwd=ml_project)
    assert result.returncode == 0, result.stderr
    assert "repro: on cuda with the full dataset" in result.stderr
    client = mlflow_client(f"sqlite:///{ml_project / 'mlflow.db'}")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    assert run.data.tags["alops.device"] == "cuda"


def test_stages_read_the_dataset_folder_alops_yaml_names_through_dataset_dir(repo):
    """cookiecutter-data-science's layout as it is (data/raw, a dev folder of the team's choice): params.yaml's
    `dataset_dir` is set to the run's folder from alops.yaml, recorded in dvc.lock, and put back afterwards."""
    dvc(repo, "init", "-q")
    for folder, rows in (("data/raw", 100), ("data/interim/dev", 10)):
        (repo / folder).mkdir(parents=True)
        (repo / folder / "data.csv").write_text("".join(f"{i},{i % 3}\n" for i in range(rows)))
        dvc(repo, "add", "-q", folder)
    (repo / "count.py").write_text("import json, sys\nrows = open(sys.argv[1] + '/data.csv').read().count('\\n')\n"
                                   "json.dump({'rows': rows}, open('metrics.json', 'w'))\n")
    (repo / "dvc.yaml").write_text("stages:\n  count:\n    cmd: python count.py ${dataset_dir}\n    deps:\n"
                                   "      - count.py\n      - ${dataset_dir}\n    params:\n      - dataset_dir\n"
                                   "    metrics:\n      - metrics.json:\n          cache: false\n")
    params = "dataset: dev\ndataset_dir: data/interim/dev  # alops run sets it from alops.yaml\n"
    (repo / "params.yaml").write_text(params)
    (repo / "alops.yaml").write_text("data:\n  full: data/raw\n  dev: data/interim/dev\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a team's layout")
    for branch, dataset, folder, rows in (("feature/x", "dev", "data/interim/dev", 10), ("experiment/x", "full", "data/raw", 100)):
        git(repo, "switch", "-q", "-c", branch)
        plan = run_alops("run", "--dry-run", cwd=repo)
        assert f"set dataset={dataset}, dataset_dir={folder} in params.yaml" in plan.stderr, plan.stderr
        result = run_alops("run", "--allow-cpu", "--no-track", cwd=repo)
        assert result.returncode == 0, result.stderr
        assert json.loads((repo / "metrics.json").read_text()) == {"rows": rows}
        locked = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["count"]
        assert locked["params"]["params.yaml"] == {"dataset_dir": folder}
        assert (repo / "params.yaml").read_text() == params
