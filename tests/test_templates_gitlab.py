"""The GitLab component under gitlab-ci-local (shell executor): which jobs run per branch kind, and what they do."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ALOPS, clean_env, git

KIT = Path(__file__).parents[1]
GITLAB_CI_LOCAL = KIT / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"
INCLUDE = """include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/alops@$CI_COMMIT_SHA
    inputs:
      install: false
      gpu-tags: []
      allow-cpu: true
{extra}"""


def use_component(project: Path, extra_inputs: str = "") -> None:
    """The kit's templates/ in the project, which includes the component at its own commit (as the kit's CI does)."""
    shutil.copytree(KIT / "templates", project / "templates", dirs_exist_ok=True)
    (project / ".gitlab-ci.yml").write_text(INCLUDE.format(extra=extra_inputs))
    (project / ".gitignore").write_text((project / ".gitignore").read_text() + ".gitlab-ci-local/\n"
                                        if (project / ".gitignore").exists() else ".gitlab-ci-local/\n")
    git(project, "remote", "add", "origin", "https://gitlab.example.com/team/project.git")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "use the alops component")


def gitlab_ci_local(project: Path, *args: str, variables: dict | None = None, timeout: int = 600,
                    own: str = ""):
    # GitLab accepts `tags: []` (an untagged job, the inputs' default); the community schema asks for one item
    command = [str(GITLAB_CI_LOCAL), "--force-shell-executor", "--shell-isolation", "--no-color",
               "--max-job-name-padding", "0", "--ignore-schema-paths", "#/definitions/tags/minItems", *args]
    for key, value in {"GITLAB_CI": "true", **(variables or {})}.items():
        command += ["--variable", f"{key}={value}"]
    ignored = "GITLAB_CI,CI_PIPELINE_SOURCE,CI_COMMIT_REF_PROTECTED,CI_PROJECT_ID" + (f",{own}" if own else "")
    env = clean_env(GCL_IGNORE_PREDEFINED_VARS=ignored)  # `own`: more predefined variables the test sets itself
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def planned_jobs(project: Path, variables: dict | None = None) -> set[str]:
    result = gitlab_ci_local(project, "--list-json", variables=variables)
    assert result.returncode == 0, result.stdout + result.stderr
    listing = result.stdout[result.stdout.index("["):]  # after gitlab-ci-local's own notices
    return {job["name"] for job in json.loads(listing) if job["when"] != "never"}


@pytest.fixture
def component_project(ml_project: Path) -> Path:
    use_component(ml_project)
    return ml_project


@pytest.mark.parametrize("branch, source, protected, expected", [
    ("feature/faster", "push", "false", {"alops-params-check", "alops-train-dev", "alops-report"}),
    ("main", "push", "false", {"alops-params-check", "alops-train-dev", "alops-make-dev"}),  # make-dev: manual
    ("experiment/lr", "push", "false", {"alops-params-check", "alops-train-full", "alops-report", "alops-promote"}),
    ("al/round-1", "push", "false", {"alops-params-check", "alops-train-al", "alops-report", "alops-promote",
                                     "alops-labels-import", "alops-make-dev"}),
    ("release/1.0", "push", "true", {"alops-params-check", "alops-release-train", "alops-release"}),
    ("release/1.0", "push", "false", {"alops-params-check"}),  # never from an unprotected ref
    ("main", "schedule", "false", set()),
])
def test_jobs_follow_the_branch_kind(component_project, branch, source, protected, expected):
    git(component_project, "switch", "-q", "-C", branch)
    jobs = planned_jobs(component_project, {"CI_PIPELINE_SOURCE": source, "CI_COMMIT_REF_PROTECTED": protected})
    assert jobs == expected


def test_merge_request_pipelines_run_checks_but_never_gpu_or_release_jobs(component_project):
    git(component_project, "switch", "-q", "-c", "experiment/from-a-fork")
    jobs = planned_jobs(component_project, {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_REF_PROTECTED": "true",
                                            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "experiment/from-a-fork"})
    assert jobs == {"alops-params-check"}


def test_schedules_select_with_shards_and_check_the_dev_dataset(component_project):
    query = planned_jobs(component_project, {"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "query"})
    assert query == {"alops-query: [1/2]", "alops-query: [2/2]", "alops-query-merge"}
    assert planned_jobs(component_project, {"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "dev-check"}) == {"alops-dev-check"}
    assert planned_jobs(component_project, {"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "make-dev"}) == {"alops-make-dev"}


def test_feature_pipeline_trains_on_the_dev_dataset(component_project):
    git(component_project, "switch", "-q", "-c", "feature/faster")
    result = gitlab_ci_local(component_project, variables={"CI_PIPELINE_SOURCE": "push"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "pull: dev dataset" in output
    assert "event:     push (gitlab)" in output  # the job read GitLab's variables
    assert "repro: on cpu with the dev dataset" in output
    assert "PASS  alops-train-dev" in output or "alops-train-dev  PASS" in output or "PASS alops-train-dev" in output


def test_a_feature_pipeline_with_a_sampler_stage_needs_only_the_dev_data(ml_project):
    """docs/data.md's sampler stage in CI: the runner's checkout has the dev data the lock records (pulled from
    the remote) and never the full data, and the pipeline trains on it."""
    from conftest import use_sampler_stage

    use_sampler_stage(ml_project)
    use_component(ml_project)
    shutil.rmtree(ml_project / "data" / "full")  # a runner that has no full data
    git(ml_project, "switch", "-q", "-c", "feature/faster")
    result = gitlab_ci_local(ml_project, "alops-train-dev", variables={"CI_PIPELINE_SOURCE": "push"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "repro: on cpu with the dev dataset" in output and "'train'" in output
    assert "data/full" not in output and "sample.py" not in output  # the sampler never ran, its input never needed


def test_experiment_pipeline_trains_on_full_data_and_tracks(component_project, mlflow_server):
    from mlflow.tracking import MlflowClient

    git(component_project, "switch", "-q", "-c", "experiment/gitlab-ci")
    result = gitlab_ci_local(component_project, variables={"CI_PIPELINE_SOURCE": "push",
                                                           "MLFLOW_TRACKING_URI": mlflow_server,
                                                           "CI_PROJECT_NAME": "component-test"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "pull: full dataset" in output
    assert "repro: on cpu with the full dataset" in output
    experiment = MlflowClient(mlflow_server).get_experiment_by_name("component-test/experiment")
    runs = MlflowClient(mlflow_server).search_runs([experiment.experiment_id])
    assert runs and runs[0].data.tags["git.branch"] == "experiment/gitlab-ci"
    assert runs[0].data.tags["alops.dataset"] == "full"
    # main trains on the dev data: the job trained main's last commit on the full data for the report (baseline)
    main = MlflowClient(mlflow_server).get_experiment_by_name("component-test/main")
    [baseline] = MlflowClient(mlflow_server).search_runs([main.experiment_id])
    assert (baseline.data.tags["git.branch"], baseline.data.tags["alops.dataset"]) == ("main", "full")
    assert baseline.data.tags["git.commit"] == git(component_project, "rev-parse", "main")
    report = (component_project / "report.md").read_text()
    assert "latest tracked run of `main` on the full dataset" in report and "No baseline" not in report


def test_a_run_buffered_during_an_outage_is_sent_by_the_branchs_next_pipeline(component_project, mlflow_server):
    """The tracking server is down for one pipeline: the feature job passes and buffers its run; the branch's
    cache brings the buffer to the next pipeline, whose `alops run` sends it first, then its own run."""
    from conftest import free_port
    from mlflow.tracking import MlflowClient

    git(component_project, "switch", "-q", "-c", "feature/outage")
    variables = {"CI_PIPELINE_SOURCE": "push", "CI_PROJECT_NAME": "outage-test"}
    down = gitlab_ci_local(component_project, "alops-train-dev",
                           variables={**variables, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    output = down.stdout + down.stderr
    assert down.returncode == 0, output[-4000:]
    assert "tracking: server unreachable; run buffered" in output
    (component_project / "params.yaml").write_text((component_project / "params.yaml").read_text().replace(
        "epochs: 5", "epochs: 6"))  # a change, so the next pipeline trains again
    git(component_project, "commit", "-q", "-am", "one more epoch")
    up = gitlab_ci_local(component_project, "alops-train-dev", variables={**variables, "MLFLOW_TRACKING_URI": mlflow_server})
    output = up.stdout + up.stderr
    assert up.returncode == 0, output[-4000:]
    assert "tracking: 1 run(s) buffered by earlier jobs sent" in output
    experiment = MlflowClient(mlflow_server).get_experiment_by_name("outage-test/feature")
    runs = MlflowClient(mlflow_server).search_runs([experiment.experiment_id])
    assert sorted(run.data.params["train.epochs"] for run in runs) == ["5", "6"]


@pytest.mark.parametrize("branch", ["feature/x;touch${IFS}pwned", "feature/$(touch${IFS}pwned)", "feature/`touch${IFS}pwned`"])
def test_hostile_branch_names_and_titles_run_nothing(component_project, branch):
    git(component_project, "switch", "-q", "-c", branch)
    result = gitlab_ci_local(component_project, variables={"CI_PIPELINE_SOURCE": "push",
                                                           "CI_MERGE_REQUEST_TITLE": "`touch pwned` $(touch pwned)"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "alops-train-dev" in output
    assert not list(component_project.rglob("pwned"))


def test_a_hostile_input_value_reaches_the_shell_only_as_data(ml_project):
    # real GitLab refuses the value by the input's regex; gitlab-ci-local does not check it, so this shows the
    # second line of defence: the value travels in a variable and the script quotes it
    use_component(ml_project, '      alops-version: "alops$(touch pwned);touch pwned"\n')
    (ml_project / ".gitlab-ci.yml").write_text((ml_project / ".gitlab-ci.yml").read_text().replace("install: false", "install: true"))
    git(ml_project, "commit", "-q", "-am", "install alops in the job")
    result = gitlab_ci_local(ml_project, "alops-params-check", variables={"CI_PIPELINE_SOURCE": "push"})
    output = result.stdout + result.stderr
    assert result.returncode != 0  # pip refuses the requirement
    assert "touch pwned" in output  # pip received the text, unexpanded, and refused it
    assert not list(ml_project.rglob("pwned"))


SMALL_COMPONENTS = """stages: [build, test]
include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/train@$CI_COMMIT_SHA
    inputs: &shared
      stage: build
      install: false
      allow-cpu: true
      cpu-tags: [cpu]
      gpu-tags: [gpu, cuda]
      experiment-branches: /^exp\\/.*$/
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/release@$CI_COMMIT_SHA
    inputs:
      <<: *shared
      release-metric: val_accuracy
      release-direction: max
      deploy-url: https://models.example.com/digits
"""


def test_small_components_with_non_default_inputs(ml_project):
    use_component(ml_project)
    (ml_project / ".gitlab-ci.yml").write_text(SMALL_COMPONENTS)
    git(ml_project, "commit", "-q", "-am", "compose two components")
    git(ml_project, "switch", "-q", "-c", "exp/wide")
    assert planned_jobs(ml_project) == {"alops-params-check", "alops-train-full", "alops-report"}
    expanded = ml_project / ".gitlab-ci-local" / "expanded-gitlab-ci.yml"
    pipeline = yaml.safe_load(expanded.read_text())
    assert pipeline["alops-train-full"]["tags"] == ["gpu", "cuda"]
    assert pipeline["alops-train-full"]["stage"] == "build"
    assert pipeline["alops-release"]["variables"]["ALOPS_RELEASE_METRIC"] == "val_accuracy"
    schema = subprocess.run([str(Path(ALOPS).with_name("check-jsonschema")), "--builtin-schema", "vendor.gitlab-ci",
                             str(expanded)], capture_output=True, text=True)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    git(ml_project, "switch", "-q", "-c", "release/2.0")
    assert planned_jobs(ml_project, {"CI_COMMIT_REF_PROTECTED": "true"}) == \
        {"alops-params-check", "alops-release-train", "alops-release"}


@pytest.mark.parametrize("source_branch, source_project, expected", [
    ("experiment/lr", "42", {"alops-params-check", "alops-train-full", "alops-report"}),
    ("feature/x", "42", {"alops-params-check", "alops-train-dev", "alops-report"}),
    ("al/round-2", "42", {"alops-params-check", "alops-train-al", "alops-report"}),
    ("experiment/lr", "777", {"alops-params-check"}),  # a fork's merge request never trains
])
def test_mr_pipelines_input_trains_same_project_merge_requests(ml_project, source_branch, source_project, expected):
    use_component(ml_project, "      mr-pipelines: true\n")
    git(ml_project, "switch", "-q", "-c", source_branch)
    variables = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_PROJECT_ID": "42",
                 "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": source_project,
                 "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": source_branch, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
    assert planned_jobs(ml_project, variables) == expected


def test_a_same_project_merge_request_pipeline_trains_and_reports(ml_project):
    use_component(ml_project, "      mr-pipelines: true\n")
    git(ml_project, "switch", "-q", "-c", "experiment/mr")
    result = gitlab_ci_local(ml_project, variables={
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "3",
        "CI_MERGE_REQUEST_PROJECT_ID": "42", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "experiment/mr", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "event:     merge_request (gitlab)" in output and "pull: full dataset" in output
    assert "report: report.md" in output
    assert "report not posted: no GitLab token" in output  # no token in this pipeline: a notice, not a failure


def test_the_scheduled_query_runs_every_shard_and_merges_the_single_pass_selection(component_project):
    """GitLab numbers parallel jobs from 1: every shard must score its part, and the merge equals one pass."""
    import csv

    import numpy as np
    from conftest import dvc

    with open(component_project / "data/full/manifest.csv", newline="") as handle:
        ids = [row["id"] for row in csv.DictReader(handle) if not row["label"]]
    unlabeled = len(ids)
    probs = np.random.default_rng(5).dirichlet(np.ones(10), size=unlabeled).astype(np.float32)
    np.save(component_project / "pool_probs.npy", probs)
    (component_project / "pool_ids.txt").write_text("".join(f"{sample}\n" for sample in ids))
    dvc(component_project, "add", "-q", "pool_probs.npy", "pool_ids.txt")
    dvc(component_project, "push", "-q")
    git(component_project, "add", "-A")
    git(component_project, "commit", "-q", "-m", "the pool scored by the current model")
    result = gitlab_ci_local(component_project, variables={"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "query"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for job in ("alops-query: [1/2]", "alops-query: [2/2]", "alops-query-merge"):
        assert f"PASS  {job}" in output or f"PASS {job}" in output, output[-3000:]
    selection = json.loads((component_project / "selection.json").read_text())
    top = np.sort(probs.astype(np.float64), axis=1)
    margin = top[:, -1] - top[:, -2]
    expected = sorted(np.lexsort((np.arange(unlabeled), margin))[:100].tolist())  # smallest margin (the default)
    assert sorted(selection["indices"]) == expected
    assert sorted(selection["sample_ids"]) == sorted(ids[row] for row in expected)  # named through the merge
    assert sorted(json.loads((component_project / "labeling/batch.json").read_text())["sample_ids"]) == \
        sorted(ids[row] for row in expected)


def test_the_scheduled_query_scores_the_pool_with_the_registered_model_in_every_shard(ml_project, mlflow_server):
    """`query-model: models:/<name>@champion`: each shard job downloads the champion and scores its part of the
    pool's inputs; the merge is the formula's selection over the model's probabilities."""
    import csv

    import mlflow.sklearn
    import numpy as np
    from conftest import dvc
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    with open(ml_project / "data/full/manifest.csv", newline="") as handle:
        ids = [row["id"] for row in csv.DictReader(handle) if not row["label"]]
    inputs = np.random.default_rng(12).normal(size=(len(ids), 5)).astype(np.float32)
    np.save(ml_project / "pool_inputs.npy", inputs)
    (ml_project / "pool_ids.txt").write_text("".join(f"{sample}\n" for sample in ids))
    dvc(ml_project, "add", "-q", "pool_inputs.npy", "pool_ids.txt")
    dvc(ml_project, "push", "-q")
    estimator = LogisticRegression(max_iter=300).fit(inputs[:200], (inputs[:200, 0] > 0).astype(int) + (inputs[:200, 1] > 0))
    folder = ml_project.parent / "champion"
    mlflow.sklearn.save_model(estimator, str(folder))
    client = MlflowClient(mlflow_server)
    run = client.create_run(client.create_experiment(f"query-model-{ml_project.parent.name}"))
    client.log_artifacts(run.info.run_id, str(folder), "model")
    name = f"pool-scorer-{ml_project.parent.name}".replace("_", "-")
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    use_component(ml_project, f"      query-model: models:/{name}@champion\n      query-pool: pool_inputs.npy\n"
                              "      query-k: 12\n")
    result = gitlab_ci_local(ml_project, variables={"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "query",
                                                    "MLFLOW_TRACKING_URI": mlflow_server})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for job in ("alops-query: [1/2]", "alops-query: [2/2]", "alops-query-merge"):
        assert f"PASS  {job}" in output or f"PASS {job}" in output, output[-3000:]
    selection = json.loads((ml_project / "selection.json").read_text())
    top = np.sort(estimator.predict_proba(inputs).astype(np.float32).astype(np.float64), axis=1)
    expected = np.lexsort((np.arange(len(ids)), top[:, -1] - top[:, -2]))[:12].tolist()
    assert selection["indices"] == expected and selection["model"] == f"models:/{name}@champion"
    assert selection["sample_ids"] == [ids[row] for row in expected]


@pytest.mark.parametrize("source_project, fork_tests, tests_run", [
    ("42", "", True),  # the project's own merge request
    ("77", "", False),  # a fork's: fork code never runs on the project's runners by default
    ("77", "      fork-tests: true\n", True),  # unless the project opts in
])
def test_a_forks_merge_request_runs_the_projects_tests_only_when_opted_in(ml_project, source_project, fork_tests,
                                                                        tests_run):
    (ml_project / "tests").mkdir()
    (ml_project / "tests" / "test_smoke.py").write_text("def test_smoke():\n    assert True\n")
    use_component(ml_project, fork_tests)
    git(ml_project, "switch", "-q", "-c", "feature/from-somewhere")
    jobs = planned_jobs(ml_project, {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_PROJECT_ID": "42",
                                     "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": source_project,
                                     "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/from-somewhere"})
    assert ("alops-tests" in jobs) == tests_run


def test_a_triggered_label_import_job_takes_the_labels_from_label_studio_and_pushes_the_data_version(
        component_project, label_studio, tmp_path):
    """The import pipeline's clone has no file of the query pipeline: the tasks alops put in Label Studio say what
    was asked; the job pulls the full data, imports the annotations, commits and pushes the new data version."""
    import csv

    import numpy as np
    import requests
    from conftest import dvc, run_alops

    url, token = label_studio
    project, title = component_project, f"import job {tmp_path.name}"
    git(project, "switch", "-q", "-c", "al/round-1")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "remote", "set-url", "--push", "origin", str(origin))
    git(project, "push", "-q", "origin", "al/round-1")
    start = git(project, "rev-parse", "HEAD")

    # the scheduled query pipeline's hand-off, done here: a selection exported into Label Studio
    with open(project / "data/full/manifest.csv", newline="") as handle:
        ids = [row["id"] for row in csv.DictReader(handle) if not row["label"]]
    np.save(project / "pool.npy", np.random.default_rng(2).dirichlet(np.ones(10), size=len(ids)).astype(np.float32))
    (project / "pool_ids.txt").write_text("".join(f"{sample}\n" for sample in ids))
    env = clean_env(LABEL_STUDIO_URL=url, LABEL_STUDIO_API_KEY=token, LABEL_STUDIO_PROJECT=title)
    assert run_alops("query", "select", "pool.npy", "--ids", "pool_ids.txt", "-k", "5", "--strategy", "margin",
                     cwd=project).returncode == 0
    exported = run_alops("labels", "export", "selection.json", cwd=project, env=env)
    assert exported.returncode == 0 and "5 tasks added" in exported.stdout, exported.stderr
    for leftover in ("pool.npy", "pool_ids.txt", "selection.json"):
        (project / leftover).unlink()
    shutil.rmtree(project / "labeling")

    headers = {"Authorization": f"Token {token}"}
    studio = next(p for p in requests.get(f"{url}/api/projects", headers=headers, timeout=30).json()["results"]
                  if p["title"] == title)
    tasks = requests.get(f"{url}/api/tasks", params={"project": studio["id"], "page_size": 100}, headers=headers,
                         timeout=30).json()["tasks"]
    for task in tasks:  # the labelers' work
        answer = {"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                              "value": {"choices": ["7"]}}], "was_cancelled": False}
        assert requests.post(f"{url}/api/tasks/{task['id']}/annotations", json=answer, headers=headers,
                             timeout=30).status_code == 201

    result = gitlab_ci_local(project, "alops-labels-import", variables={
        "CI_PIPELINE_SOURCE": "trigger", "LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token,
        "LABEL_STUDIO_PROJECT": title})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "5 labels accepted, 5 samples changed" in output
    assert token not in output

    reader = tmp_path / "reader"
    git(tmp_path, "clone", "-q", "-b", "al/round-1", str(origin), str(reader))
    assert git(reader, "log", "--format=%s", f"{start}..HEAD").startswith("Labels of batch ")
    dvc(reader, "pull", "-q", "data/full")  # the pushed data version, from the DVC remote
    with open(reader / "data/full/manifest.csv", newline="") as handle:
        labels = {row["id"]: row["label"] for row in csv.DictReader(handle)}
    assert sorted(labels[t["data"]["sample_id"]] for t in tasks) == ["7"] * 5


def test_label_studios_webhook_starts_the_import_pipeline_through_gitlabs_trigger_endpoint(ml_project, label_studio,
                                                                                           tmp_path):
    """docs/al.md's webhook, set up in a real Label Studio: each annotation POSTs Label Studio's own payload to
    GitLab's pipeline-trigger URL for the al/ branch (the token in the query string), which GitLab takes as it is
    (a pipeline whose source is `trigger`: the import job's rule)."""
    import csv
    import time

    import numpy as np
    import requests
    from conftest import annotate, run_alops

    from alops.forge.stand_in import ForgeServer

    url, token = label_studio
    title = f"webhook {tmp_path.name}"
    with open(ml_project / "data/full/manifest.csv", newline="") as handle:
        ids = [row["id"] for row in csv.DictReader(handle) if not row["label"]]
    np.save(ml_project / "pool.npy", np.random.default_rng(3).dirichlet(np.ones(10), size=len(ids)).astype(np.float32))
    (ml_project / "pool_ids.txt").write_text("".join(f"{sample}\n" for sample in ids))
    assert run_alops("query", "select", "pool.npy", "--ids", "pool_ids.txt", "-k", "3", cwd=ml_project).returncode == 0
    env = clean_env(LABEL_STUDIO_URL=url, LABEL_STUDIO_API_KEY=token, LABEL_STUDIO_PROJECT=title)
    assert run_alops("labels", "export", "selection.json", cwd=ml_project, env=env).returncode == 0
    headers = {"Authorization": f"Token {token}"}
    studio = next(p for p in requests.get(f"{url}/api/projects", headers=headers, timeout=30).json()["results"]
                  if p["title"] == title)
    with ForgeServer("trigger-token-77") as gitlab:
        hook = {"project": studio["id"], "send_payload": True, "send_for_all_actions": False,
                "actions": ["ANNOTATION_CREATED"],
                "url": f"{gitlab.url}/api/v4/projects/42/ref/al%2Fround-1/trigger/pipeline?token=trigger-token-77"}
        created = requests.post(f"{url}/api/webhooks/", json=hook, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        tasks = annotate(label_studio, title, "4")
        deadline = time.monotonic() + 30
        while len(gitlab.state.pipelines) < len(tasks) and time.monotonic() < deadline:
            time.sleep(0.2)
        pipelines = list(gitlab.state.pipelines)
    assert len(pipelines) == len(tasks) == 3
    assert {p["ref"] for p in pipelines} == {"al/round-1"} and {p["source"] for p in pipelines} == {"trigger"}
    assert {p["payload"]["action"] for p in pipelines} == {"ANNOTATION_CREATED"}
    assert sorted(p["payload"]["task"]["data"]["sample_id"] for p in pipelines) == \
        sorted(t["data"]["sample_id"] for t in tasks)


def test_the_dev_check_schedule_and_the_tests_job_run(component_project):
    """The scheduled representativeness check, and the project's own tests on a feature branch."""
    (component_project / "tests").mkdir(exist_ok=True)
    (component_project / "tests" / "test_smoke.py").write_text("def test_smoke():\n    assert 1 + 1 == 2\n")
    git(component_project, "add", "-A")
    git(component_project, "commit", "-q", "-m", "a test")
    schedule = gitlab_ci_local(component_project, variables={"CI_PIPELINE_SOURCE": "schedule",
                                                             "ALOPS_SCHEDULE": "dev-check"})
    output = schedule.stdout + schedule.stderr
    assert schedule.returncode == 0, output[-4000:]
    assert "PASS  alops-dev-check" in output or "PASS alops-dev-check" in output, output[-3000:]
    assert "representative" in output
    git(component_project, "switch", "-q", "-c", "feature/tested")
    tests = gitlab_ci_local(component_project, "alops-tests", variables={"CI_PIPELINE_SOURCE": "push"})
    output = tests.stdout + tests.stderr
    assert tests.returncode == 0, output[-4000:]
    assert "1 passed" in output


def test_an_al_branch_pipeline_trains_on_its_data_version_and_keeps_the_report(component_project, mlflow_server):
    git(component_project, "switch", "-q", "-c", "al/round-1")
    result = gitlab_ci_local(component_project, "alops-train-al", variables={
        "CI_PIPELINE_SOURCE": "push", "MLFLOW_TRACKING_URI": mlflow_server})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "pull: full dataset" in output and "repro: on cpu with the full dataset" in output
    assert "report: report.md" in output


def test_a_protected_release_branch_trains_gates_registers_and_publishes(ml_project, mlflow_server):
    from mlflow.tracking import MlflowClient
    from test_forge import CANARY

    from alops.forge.stand_in import ForgeServer

    use_component(ml_project, "      release-metric: val_accuracy\n")
    git(ml_project, "switch", "-q", "-c", "release/1.0")
    with ForgeServer(CANARY) as server:
        result = gitlab_ci_local(ml_project, "alops-release-train", "alops-release", variables={
            "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_REF_PROTECTED": "true", "MLFLOW_TRACKING_URI": mlflow_server,
            "CI_SERVER_URL": server.url, "CI_PROJECT_ID": "42", "GITLAB_TOKEN": CANARY}, own="CI_SERVER_URL")
        releases = list(server.state.releases)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert CANARY not in output
    record = json.loads((ml_project / "release.json").read_text())
    assert record["branch"] == "release/1.0" and record["metric"] == "val_accuracy"
    # the server is shared by the session's tests: the version this release registered is now the champion
    assert MlflowClient(mlflow_server).get_model_version_by_alias(record["model"], "champion").version == record["version"]
    assert [r["tag_name"] for r in releases] == [record["git_tag"]]


def test_the_manual_promote_job_opens_the_merge_request_with_the_training_jobs_report(component_project, mlflow_server):
    from test_forge import CANARY

    from alops.forge.stand_in import ForgeServer

    git(component_project, "switch", "-q", "-c", "experiment/promoted")
    with ForgeServer(CANARY) as server:
        result = gitlab_ci_local(component_project, "--manual", "alops-promote", variables={
            "CI_PIPELINE_SOURCE": "push", "MLFLOW_TRACKING_URI": mlflow_server, "CI_SERVER_URL": server.url,
            "CI_PROJECT_ID": "42", "GITLAB_TOKEN": CANARY}, own="CI_SERVER_URL")
        created = [json.loads(call["body"]) for call in server.calls("POST", r"/merge_requests$")]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "PASS  alops-train-full" in output or "PASS alops-train-full" in output, output[-3000:]
    assert len(created) == 1 and created[0]["source_branch"] == "experiment/promoted"
    assert created[0]["description"].startswith("<!-- alops:report -->")  # the training job's report.md
    assert CANARY not in output


def test_two_labelling_rounds_run_job_by_job_schedule_label_studio_trigger_import_al_training(
        ml_project, label_studio, mlflow_server, tmp_path):
    """The loop as GitLab runs it, every pipeline executed: the query schedule scores the pool in two shards and
    fills Label Studio; labelers annotate; the triggered import on a fresh clone of the al/ branch commits and
    pushes the data version; that push's pipeline trains on it and its report counts the labels; a second
    schedule on the al/ branch skips what is labeled, and its import lands on top."""
    import csv

    import numpy as np
    from conftest import annotate, dvc
    from mlflow.tracking import MlflowClient

    url, token = label_studio
    title = f"gitlab loop {tmp_path.name}"
    studio = {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token, "LABEL_STUDIO_PROJECT": title}
    project = ml_project
    with open(project / "data/full/manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    ids = [row["id"] for row in rows if not row["label"]]
    labeled_before = len(rows) - len(ids)
    probs = np.random.default_rng(11).dirichlet(np.ones(10), size=len(ids)).astype(np.float32)
    np.save(project / "pool_probs.npy", probs)
    (project / "pool_ids.txt").write_text("".join(f"{sample}\n" for sample in ids))
    dvc(project, "add", "-q", "pool_probs.npy", "pool_ids.txt")
    dvc(project, "push", "-q")
    use_component(project, "      query-k: 6\n")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "remote", "set-url", "--push", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    top = np.sort(probs.astype(np.float64), axis=1)
    ranked = [ids[row] for row in np.lexsort((np.arange(len(ids)), top[:, -1] - top[:, -2]))]
    first, second = sorted(ranked[:6]), sorted(ranked[6:12])

    def checkout(name: str) -> Path:
        """A fresh clone of al/round-1, as a runner gets it."""
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", "-b", "al/round-1", str(origin), str(clone))
        git(clone, "remote", "set-url", "origin", "https://gitlab.example.com/team/project.git")
        git(clone, "remote", "set-url", "--push", "origin", str(origin))
        return clone

    def labels_of(clone: Path) -> dict:
        dvc(clone, "pull", "-q", "data/full")
        with open(clone / "data/full/manifest.csv", newline="") as handle:
            return {row["id"]: row["label"] for row in csv.DictReader(handle)}

    scheduled = gitlab_ci_local(project, variables={"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "query", **studio})
    output = scheduled.stdout + scheduled.stderr
    assert scheduled.returncode == 0, output[-4000:]
    assert sorted(json.loads((project / "selection.json").read_text())["sample_ids"]) == first
    assert sorted(t["data"]["sample_id"] for t in annotate(label_studio, title, "3")) == first
    git(project, "push", "-q", "origin", "main:refs/heads/al/round-1")

    round_one = checkout("round-one")
    imported = gitlab_ci_local(round_one, "alops-labels-import", variables={"CI_PIPELINE_SOURCE": "trigger", **studio})
    output = imported.stdout + imported.stderr
    assert imported.returncode == 0, output[-4000:]
    assert "6 labels accepted, 6 samples changed" in output and token not in output

    trained_on = checkout("trained")
    assert [labels_of(trained_on)[sample] for sample in first] == ["3"] * 6
    trained = gitlab_ci_local(trained_on, "alops-train-al", variables={
        "CI_PIPELINE_SOURCE": "push", "MLFLOW_TRACKING_URI": mlflow_server, "CI_PROJECT_NAME": "gitlab-loop"})
    output = trained.stdout + trained.stderr
    assert trained.returncode == 0, output[-4000:]
    experiment = MlflowClient(mlflow_server).get_experiment_by_name("gitlab-loop/active-learning")
    runs = MlflowClient(mlflow_server).search_runs([experiment.experiment_id])
    assert int(runs[0].data.tags["alops.labeled"]) == labeled_before + 6
    assert "### Active learning" in (trained_on / "report.md").read_text()

    again = gitlab_ci_local(trained_on, variables={"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "query", **studio})
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-4000:]
    assert "6 pool samples labeled since were skipped" in output
    assert sorted(json.loads((trained_on / "selection.json").read_text())["sample_ids"]) == second
    annotate(label_studio, title, "5", skip=set(first))
    round_two = checkout("round-two")
    imported = gitlab_ci_local(round_two, "alops-labels-import", variables={"CI_PIPELINE_SOURCE": "trigger", **studio})
    output = imported.stdout + imported.stderr
    assert imported.returncode == 0, output[-4000:]
    assert "6 samples changed" in output
    labels = labels_of(checkout("final"))
    assert [labels[s] for s in first] == ["3"] * 6 and [labels[s] for s in second] == ["5"] * 6
    assert sum(1 for label in labels.values() if label) == labeled_before + 12
