"""The scheduled intake as the forges run it: finished prediction logs -> pool on the al/ branch (pushed, each
log once) -> drift check of the new samples -> the query round, under gitlab-ci-local and act."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
from conftest import dvc, git
from test_templates_github import act, act_stopped, ran, workflow_project  # noqa: F401 (a fixture)
from test_templates_gitlab import gitlab_ci_local, use_component

from alops.forge.stand_in import ForgeServer

CANARY = "glpat-intake-canary-2718"


def write_log(project: Path, source: Path, name: str, first_id: int, count: int, only: str | None = None) -> None:
    """A finished log in `alops serve`'s format (dataframe rows: the features by name, the prediction, the
    probabilities, the model version): digits the model saw again, predicted as their labels."""
    with open(project / "data/full/manifest.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["label"] and (only is None or r["label"] == only)]
    picked = np.random.default_rng(first_id).choice(len(rows), count, replace=count > len(rows))
    source.mkdir(parents=True, exist_ok=True)
    with open(source / name, "w") as out:
        for offset, index in enumerate(picked):
            row, label = rows[index], int(rows[index]["label"])
            probabilities = [0.9 if k == label else 0.1 / 9 for k in range(10)]
            out.write(json.dumps({"id": first_id + offset, "time": "2026-12-03T09:00:00.000+00:00", "model_version": "1",
                                  "prediction": label, "probabilities": probabilities,
                                  **{f"f{i}": int(row[f"f{i}"]) for i in range(64)}}) + "\n")


def scored_pool(project: Path) -> None:
    """The pool probabilities the al/ branch's last training left (pipeline outputs, tracked and pushed)."""
    with open(project / "data/full/manifest.csv", newline="") as handle:
        ids = [row["id"] for row in csv.DictReader(handle) if not row["label"]]
    np.save(project / "pool_probs.npy", np.random.default_rng(3).dirichlet(np.ones(10), size=len(ids)).astype(np.float32))
    (project / "pool_ids.txt").write_text("".join(f"{sample}\n" for sample in ids))
    dvc(project, "add", "-q", "pool_probs.npy", "pool_ids.txt")
    dvc(project, "push", "-q")


def drift_model(project: Path) -> None:
    """The served model as the drift check loads it (intake-drift-model): a scikit-learn classifier of the digits'
    features, saved as an MLflow model folder in the repository."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    frame = pd.read_csv(project / "data/full/manifest.csv", dtype={"label": str})
    frame = frame[frame["label"].notna()]
    features = frame[[f"f{i}" for i in range(64)]].astype(float)
    model = LogisticRegression(max_iter=2000).fit(features, frame["label"])
    mlflow.sklearn.save_model(model, str(project / "drift-model"), signature=infer_signature(features, model.predict(features)))
    git(project, "add", "drift-model")
    git(project, "commit", "-q", "-m", "the served model, for the drift check")


def manifest_ids(clone: Path) -> list[str]:
    dvc(clone, "pull", "-q", "data/full")
    with open(clone / "data/full/manifest.csv", newline="") as handle:
        return [row["id"] for row in csv.DictReader(handle)]


def pushed_to_a_bare_origin(project: Path, tmp_path: Path, *branches: str) -> Path:
    """A bare repository standing in for the forge: the project pushes there (its fetch URL stays the forge's)."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "remote", "set-url", "--push", "origin", str(origin))
    git(project, "push", "-q", "origin", *branches)
    return origin


def grown_and_pushed(project: Path, tmp_path: Path) -> Path:
    """The full data grown by an intake of 400 served samples (ids from 800000), committed, pushed to a bare
    origin on main: the origin."""
    from conftest import run_alops

    write_log(project, tmp_path / "served", "predictions-1.jsonl", 800000, 400)
    grown = run_alops("pool", "intake", str(tmp_path / "served"), "--no-commit", cwd=project)
    assert grown.returncode == 0, grown.stderr
    dvc(project, "add", "-q", "data/full")
    dvc(project, "push", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the full data grew")
    return pushed_to_a_bare_origin(project, tmp_path, "main")


def passed(output: str, job: str) -> bool:
    return f"PASS  {job}" in output or f"PASS {job}" in output


def test_gitlab_intake_schedule_adds_each_log_once_checks_drift_and_queries(ml_project, label_studio, tmp_path):
    """Captured logs -> pool on the al/ branch -> drift check -> query -> Label Studio, every job executed; the
    same logs again add nothing; a shifted log fails the check and opens the branch's drift issue."""
    from conftest import annotate

    project, source = ml_project, tmp_path / "served"
    scored_pool(project)
    use_component(project, f"      intake-source: {source}\n      query-k: 6\n      intake-drift-issue: true\n"
                           "      intake-drift-model: drift-model\n")
    drift_model(project)
    git(project, "switch", "-q", "-c", "al/production")
    origin = pushed_to_a_bare_origin(project, tmp_path, "al/production")
    before = manifest_ids(project)
    write_log(project, source, "predictions-20261203T0900-7-1.jsonl", 500000, 150)
    write_log(project, source, "predictions-20261203T1000-7-2.jsonl", 600000, 150)
    schedule = {"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "intake"}

    url, token = label_studio
    title = f"intake {tmp_path.name}"
    studio = {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token, "LABEL_STUDIO_PROJECT": title}
    with ForgeServer(CANARY) as server:
        forge = {"CI_SERVER_URL": server.url, "CI_PROJECT_ID": "42", "GITLAB_TOKEN": CANARY}
        first = gitlab_ci_local(project, variables={**schedule, **studio, **forge}, own="CI_SERVER_URL")
        output = first.stdout + first.stderr
        assert first.returncode == 0, output[-4000:]
        assert token not in output
        for job in ("alops-intake", "alops-intake-drift", "alops-query: [1/2]", "alops-query: [2/2]", "alops-query-merge"):
            assert passed(output, job), (job, output[-3000:])
        assert re.search(r"2 new log\(s\), 0 taken before; 300 samples added as unlabeled \(test \d+, train \d+, val \d+\)", output)
        assert "dev dataset is representative" in output
        assert passed(output, "alops-intake-drift-issue") and "no drift issue is open: nothing to do" in output
        selected = json.loads((project / "selection.json").read_text())["sample_ids"]
        assert len(selected) == 6
        assert sorted(task["data"]["sample_id"] for task in annotate(label_studio, title, "3")) == sorted(selected)
        assert not any(f"PASS  {job}" in output for job in ("alops-train-al", "alops-labels-import", "alops-dev-check"))

        reader = tmp_path / "reader"
        git(tmp_path, "clone", "-q", "-b", "al/production", str(origin), str(reader))
        assert git(reader, "log", "-1", "--format=%s") == "Pool: intake of prediction logs"
        added = manifest_ids(reader)[len(before):]
        assert sorted(map(int, added)) == list(range(500000, 500150)) + list(range(600000, 600150))

        # the next schedule runs on the branch's new tip: the same logs are taken before, nothing is added
        git(project, "pull", "-q", str(origin), "al/production")
        again = gitlab_ci_local(project, variables={**schedule, **forge}, own="CI_SERVER_URL")
        output = again.stdout + again.stderr
        assert again.returncode == 0, output[-4000:]
        assert "0 new log(s), 2 taken before; 0 samples added" in output and "nothing to check" in output
        assert git(tmp_path, "--git-dir", str(origin), "rev-parse", "al/production") == git(project, "rev-parse", "HEAD")
        assert "no drift verdict, as no new samples were checked" in output and server.state.issues == []

        # a log of sevens only: the drift job fails naming the class, its verdict opens the branch's drift issue
        # with the command that answers it, the selection still runs
        write_log(project, source, "predictions-20261203T1100-7-3.jsonl", 700000, 150, only="7")
        shifted = gitlab_ci_local(project, variables={**schedule, **forge}, own="CI_SERVER_URL")
        output = shifted.stdout + shifted.stderr
        assert shifted.returncode != 0 and passed(output, "alops-intake") and passed(output, "alops-query-merge")
        assert "FAIL  alops-intake-drift" in output or "FAIL alops-intake-drift" in output
        assert "the dev dataset no longer represents intake/new-samples.jsonl: predicted class 7:" in output
        assert passed(output, "alops-intake-drift-issue") and "drift issue created" in output and CANARY not in output
        [issue] = server.state.issues
        assert "`al/production`" in issue["body"] and issue["state"] == "opened"
        remedy = re.search(r"run `(alops data make-dev [^`]+)`", output).group(1)
        assert remedy.startswith("alops data make-dev --count ") and f"`{remedy}`" in issue["body"]

        # the next log is like the dev data again: the check passes and closes the issue, saying so
        git(project, "pull", "-q", str(origin), "al/production")
        write_log(project, source, "predictions-20261203T1200-7-4.jsonl", 710000, 150)
        calm = gitlab_ci_local(project, variables={**schedule, **forge}, own="CI_SERVER_URL")
        output = calm.stdout + calm.stderr
        assert calm.returncode == 0, output[-4000:]
        assert "dev dataset is representative" in output and "drift issue closed" in output
        assert issue["state"] == "closed" and "representative of `intake/new-samples.jsonl`" in issue["notes"][0]["body"]

        # with intake-drift-remedy: a shift towards sevens again, and the remedy job rebuilds the dev dataset in the
        # new samples' class shares, records it on the tip the intake moved (retried from there) and the
        # check passes; the fetch goes to the bare origin (gitlab-ci-local reads the project's address from gcl-origin)
        git(project, "remote", "add", "gcl-origin", git(project, "remote", "get-url", "origin"))
        git(project, "remote", "set-url", "origin", str(origin))
        git(project, "pull", "-q", str(origin), "al/production")
        dev_before = git(project, "rev-parse", "HEAD:data/dev.dvc")
        write_log(project, source, "predictions-20261203T1300-7-5.jsonl", 720000, 150, only="7")
        write_log(project, source, "predictions-20261203T1300-7-6.jsonl", 730000, 150)
        remedied = gitlab_ci_local(project, variables={**schedule, **forge, "ALOPS_INTAKE_DRIFT_REMEDY": "true"},
                                   own="CI_SERVER_URL")
        output = remedied.stdout + remedied.stderr
        assert "the dev dataset no longer represents intake/new-samples.jsonl: predicted class 7:" in output
        assert passed(output, "alops-intake-dev-remedy"), output[-4000:]
        assert "sampled with the class shares of intake/new-samples.jsonl" in output
        assert "recorded the new dev dataset in" in output and "dev dataset is representative" in output
        reader = tmp_path / "reader-remedy"
        git(tmp_path, "clone", "-q", "-b", "al/production", str(origin), str(reader))
        assert git(reader, "log", "-1", "--format=%s") == "Dev dataset: sampled again"
        assert git(reader, "log", "-2", "--format=%s").splitlines()[1] == "Pool: intake of prediction logs"
        assert git(reader, "rev-parse", "HEAD:data/dev.dvc") != dev_before


INTAKE_CALLER = """name: ci
on:
  schedule:
    - cron: "0 4 * * *"
  workflow_dispatch:
permissions: {}
jobs:
  alops:
    uses: ./.github/workflows/alops.yml
    permissions:
      contents: write
      pull-requests: write
    secrets: inherit
    with:
      cpu-runs-on: '"cpu"'
      setup-python: false
      install: false
      intake-source: %s
      intake-branch: al/production
      intake-drift-issue: true
      intake-drift-model: drift-model
      query-k: 6
"""


def test_github_intake_schedule_adds_each_log_once_on_the_named_al_branch_checks_drift_and_queries(
        workflow_project, label_studio, tmp_path):
    """GitHub runs schedules on the default branch: the intake job checks intake-branch out, takes the logs into
    its pool and pushes; the drift check and the query round (into Label Studio) run on that branch too."""
    from conftest import annotate

    project, source = workflow_project, tmp_path / "served"
    title = f"intake {tmp_path.name}"
    (project / ".github/workflows/ci.yml").write_text(INTAKE_CALLER % source + f'      label-studio-project: "{title}"\n')
    git(project, "commit", "-q", "-am", "the intake schedule")
    drift_model(project)
    git(project, "switch", "-q", "-c", "al/production")
    scored_pool(project)  # on the al/ branch only: jobs that stayed on main would find no pool
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the pool scored by the current model")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "config", f"url.{origin}.insteadOf", "https://github.com/team/project.git")  # the jobs' fetches
    git(project, "push", "-q", "origin", "main", "al/production")
    before = manifest_ids(project)
    git(project, "switch", "-q", "main")
    write_log(project, source, "predictions-20261203T0900-7-1.jsonl", 500000, 150)
    write_log(project, source, "predictions-20261203T1000-7-2.jsonl", 600000, 150)
    schedule = {"ref": "refs/heads/main", "schedule": "0 4 * * *"}

    url, token = label_studio
    secrets = {"GITHUB_TOKEN": "canary-token-5150", "issues-token": "canary-token-5151"}
    with ForgeServer("canary-token-5151") as server:
        forge = {"GITHUB_API_URL": server.url, "GITHUB_REPOSITORY": "team/project"}  # origin is a path here
        first = act(project, "schedule", schedule, env=forge,
                    secrets={**secrets, "label-studio-url": url, "label-studio-api-key": token})
        output = first.stdout + first.stderr
        assert token not in output
        assert first.returncode == 0, output[-4000:]
        assert ran(output, "intake") and ran(output, "intake-drift") and ran(output, "query-merge")
        assert len(re.findall(r"/query-\d+\s*\] 🏁  Job succeeded", output)) == 2
        assert re.search(r"2 new log\(s\), 0 taken before; 300 samples added as unlabeled \(test \d+, train \d+, val \d+\)", output)
        assert "dev dataset is representative" in output and "canary-token-515" not in output
        assert ran(output, "drift-issue") and "no drift issue is open: nothing to do" in output
        selected = json.loads((tmp_path / "artifacts/alops-query/selection.json").read_text())["sample_ids"]
        assert len(selected) == 6
        assert sorted(task["data"]["sample_id"] for task in annotate(label_studio, title, "3")) == sorted(selected)
        assert git(project, "rev-parse", "--abbrev-ref", "HEAD") == "main"  # the team's checkout is as it was

        reader = tmp_path / "reader"
        git(tmp_path, "clone", "-q", "-b", "al/production", str(origin), str(reader))
        assert git(reader, "log", "-1", "--format=%s") == "Pool: intake of prediction logs"
        assert sorted(map(int, manifest_ids(reader)[len(before):])) == list(range(500000, 500150)) + list(range(600000, 600150))
        assert git(tmp_path, "--git-dir", str(origin), "rev-parse", "main") == git(project, "rev-parse", "main")

        # the next schedule: the logs are in the branch's ledger, nothing is added, nothing is pushed, no verdict
        tip = git(tmp_path, "--git-dir", str(origin), "rev-parse", "al/production")
        again = act(project, "schedule", schedule, secrets=secrets, env=forge)
        output = again.stdout + again.stderr
        assert again.returncode == 0, output[-4000:]
        assert "0 new log(s), 2 taken before; 0 samples added" in output and "nothing to check" in output
        assert git(tmp_path, "--git-dir", str(origin), "rev-parse", "al/production") == tip
        assert not ran(output, "drift-issue")

        # a log of sevens only: the drift check fails, the drift-issue job (the issues-token secret, no checkout)
        # opens the intake branch's issue from its verdict
        write_log(project, source, "predictions-20261203T1100-7-3.jsonl", 700000, 150, only="7")
        shutil.rmtree(tmp_path / "artifacts")  # a new workflow run's artifacts
        shifted = act(project, "schedule", schedule, secrets=secrets, env=forge)
        output = shifted.stdout + shifted.stderr
        assert shifted.returncode != 0 and ran(output, "intake") and ran(output, "drift-issue")
        assert "the dev dataset no longer represents intake/new-samples.jsonl: predicted class 7:" in output
        assert "drift issue created" in output and "canary-token-515" not in output
        [issue] = server.state.issues
        assert "`al/production`" in issue["body"] and "`predicted class 7: " in issue["body"] and issue["state"] == "open"

        # the next log is like the dev data again: the check passes, the drift-issue job closes the issue
        write_log(project, source, "predictions-20261203T1200-7-4.jsonl", 710000, 150)
        shutil.rmtree(tmp_path / "artifacts")
        calm = act(project, "schedule", schedule, secrets=secrets, env=forge)
        output = calm.stdout + calm.stderr
        assert calm.returncode == 0, output[-4000:]
        assert "dev dataset is representative" in output and "drift issue closed" in output
        assert issue["state"] == "closed"
        assert "representative of `intake/new-samples.jsonl`" in server.state.comments[issue["number"]][0]["body"]

        # with intake-drift-remedy: a shift towards sevens again; the dev-remedy job rebuilds the dev dataset on the
        # intake branch's tip in the new samples' class shares, pushes it and checks again
        caller = project / ".github/workflows/ci.yml"
        caller.write_text(caller.read_text().replace("      intake-drift-issue: true\n",
                                                     "      intake-drift-issue: true\n      intake-drift-remedy: true\n"))
        git(project, "commit", "-q", "-am", "the remedy too")
        write_log(project, source, "predictions-20261203T1300-7-5.jsonl", 720000, 150, only="7")
        write_log(project, source, "predictions-20261203T1300-7-6.jsonl", 730000, 150)
        shutil.rmtree(tmp_path / "artifacts")
        remedied = act(project, "schedule", schedule, secrets=secrets, env=forge)
        output = remedied.stdout + remedied.stderr
        assert "the dev dataset no longer represents intake/new-samples.jsonl: predicted class 7:" in output
        assert re.search(r"/dev-remedy\s*\] 🏁  Job succeeded", output), output[-4000:]
        assert "sampled with the class shares of intake/new-samples.jsonl" in output
        assert "dev dataset is representative" in output and "canary-token-515" not in output
        reader = tmp_path / "reader-remedy"
        git(tmp_path, "clone", "-q", "-b", "al/production", str(origin), str(reader))
        assert git(reader, "log", "-2", "--format=%s").splitlines() == ["Dev dataset: sampled again",
                                                                       "Pool: intake of prediction logs"]


def test_github_intake_into_a_branch_that_is_not_an_al_branch_stops_the_context_job(workflow_project, tmp_path):
    caller = INTAKE_CALLER.replace("intake-branch: al/production", 'intake-branch: "main; touch pwned"')
    (workflow_project / ".github/workflows/ci.yml").write_text(caller % (tmp_path / "served"))
    git(workflow_project, "commit", "-q", "-am", "an intake into main")
    output = act_stopped(workflow_project, "schedule", {"ref": "refs/heads/main", "schedule": "0 4 * * *"},
                         "input intake-branch must name an al/ branch")
    assert not ran(output, "context") and not ran(output, "intake") and not (workflow_project / "pwned").exists()


def test_gitlab_make_dev_schedule_samples_the_grown_full_data_again_and_pushes_it(ml_project, tmp_path):
    """After the full data grew (an intake), the make-dev schedule samples the dev dataset again at its size,
    alops alone beside the push rights, and pushes the new dev data version."""
    project = ml_project
    use_component(project)
    before = (project / "data/dev/manifest.csv").read_text().splitlines()
    origin = grown_and_pushed(project, tmp_path)

    result = gitlab_ci_local(project, variables={"CI_PIPELINE_SOURCE": "schedule", "ALOPS_SCHEDULE": "make-dev"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert passed(output, "alops-make-dev") and not passed(output, "alops-dev-check")
    assert f"sampled, {len(before) - 1} of " in output and "recorded the new dev dataset in" in output
    reader = tmp_path / "reader"
    git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(reader))
    assert git(reader, "log", "-1", "--format=%s") == "Dev dataset: sampled again"
    dvc(reader, "pull", "-q", "data/dev")
    after = (reader / "data/dev/manifest.csv").read_text().splitlines()
    assert len(after) == len(before) and any(line.startswith("8") and line.split(",")[0].isdigit()
                                             and int(line.split(",")[0]) >= 800000 for line in after)


def test_github_make_dev_dispatch_samples_the_grown_full_data_again_and_is_refused_on_a_feature_branch(
        workflow_project, tmp_path):
    """dispatch: make-dev on the default branch, after the full data grew: the dev dataset sampled again at its
    size and pushed as one commit; on a feature branch the context job stops in one line."""
    project = workflow_project
    caller = project / ".github/workflows/ci.yml"
    caller.write_text(caller.read_text().replace("on: [push, pull_request]", "on: workflow_dispatch") +
                      "      dispatch: make-dev\n")
    before = (project / "data/dev/manifest.csv").read_text().splitlines()
    origin = grown_and_pushed(project, tmp_path)

    result = act(project, "workflow_dispatch", {"ref": "refs/heads/main"}, secrets={"labels-push-token": "push-token-0123"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert ran(output, "make-dev") and not ran(output, "train-dev") and not ran(output, "dev-check")
    assert f"sampled, {len(before) - 1} of " in output and "recorded the new dev dataset in" in output
    assert "push-token-0123" not in output
    reader = tmp_path / "reader"
    git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(reader))
    assert git(reader, "log", "-1", "--format=%s") == "Dev dataset: sampled again"
    dvc(reader, "pull", "-q", "data/dev")
    after = (reader / "data/dev/manifest.csv").read_text().splitlines()
    assert len(after) == len(before) and any(int(line.split(",")[0]) >= 800000 for line in after[1:])

    git(project, "switch", "-q", "-c", "feature/x")
    text = act_stopped(project, "workflow_dispatch", {"ref": "refs/heads/feature/x"},
                       "dispatch make-dev runs on the default branch or an al/ branch")
    assert not ran(text, "make-dev")
