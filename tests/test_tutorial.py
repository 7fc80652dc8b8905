"""docs/tutorial.md runs as written: every `sh` block in order, in one shell per block, from an empty folder;
the labelers' export of section 5 is the one step a person does, answered here from the example's oracle."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

from conftest import ALOPS, clean_env, git
from test_templates_gitlab import GITLAB_CI_LOCAL

TUTORIAL = Path(__file__).parents[1] / "docs/tutorial.md"


def blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", TUTORIAL.read_text(), re.DOTALL)


def labelers_export(project: Path, oracle: Path) -> None:
    """What Label Studio exports once the batch is annotated: the oracle's label of each selected sample."""
    with open(oracle, newline="") as handle:
        truth = {row["sample_id"]: row["label"] for row in csv.DictReader(handle)}
    selected = json.loads((project / "labeling/batch.json").read_text())["sample_ids"]  # the batch handed out
    export = [{"id": number, "data": {"sample_id": sample}, "annotations": [{"completed_by": 1, "result": [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [truth[str(sample)]]}}]}]}
        for number, sample in enumerate(selected)]
    (project / "export.json").write_text(json.dumps(export))


def offline_tools(folder: Path) -> Path:
    """gitlab-ci-local, and a pip that resolves offline (--no-index): what the docs ask pip for must be what this
    environment already has (the CPU torch included)."""
    folder.mkdir()
    (folder / "pip").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pip "$@" --no-index\n')
    (folder / "pip").chmod(0o755)
    (folder / "gitlab-ci-local").symlink_to(GITLAB_CI_LOCAL)
    return folder


def test_the_tutorial_runs_as_written(tmp_path):
    import subprocess

    tools = offline_tools(tmp_path / "tools")
    env = clean_env(PATH=f"{tools}:{Path(ALOPS).parent}:{clean_env()['PATH']}", GIT_AUTHOR_NAME="tutorial",
                    GIT_AUTHOR_EMAIL="tutorial@example.com", GIT_COMMITTER_NAME="tutorial",
                    GIT_COMMITTER_EMAIL="tutorial@example.com")
    env.pop("ALOPS_GITLAB_CI_LOCAL", None)
    project, outputs = tmp_path / "digits_al", {}
    for number, block in enumerate(blocks()):
        where = tmp_path if number == 0 else project
        script = block.replace("cd digits_al\n", "cd digits_al || exit 1\n")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=where, env=env, capture_output=True,
                                text=True, timeout=900)
        outputs[number] = result.stdout + result.stderr
        assert result.returncode == 0, f"tutorial block {number + 1}:\n{block}\n{outputs[number][-3000:]}"
        if "alops labels export" in block:
            labelers_export(project, tmp_path / "oracle.csv")

    assert "alops: the pipeline passed" in outputs[2], outputs[2][-3000:]  # section 3's rehearsal
    experiment = outputs[3]
    assert "held for this run only" not in experiment
    assert re.search(r"baseline: main@[0-9a-f]{8} trained on the full dataset and tracked", outputs[4]), outputs[4]
    assert git(project, "show", "experiment/more-epochs:params.yaml").count("epochs: 25") == 1  # what CI trains
    report = (project / "report.md").read_text()
    assert re.search(r"\| 1 \| \d+ \| 60 \| 0\.\d+ \|", report)  # section 5's report: the round's 60 labels
    assert (project / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((project / "release.json").read_text())["version"] == "1"


README = Path(__file__).parents[1] / "README.md"


def test_the_readmes_five_minutes_run_as_written_to_a_green_rehearsal(tmp_path):
    """The README's quick start, extracted from the markdown, in one shell from an empty folder, CPU only, with
    alops installed and gitlab-ci-local on PATH. pip runs offline (--no-index): what the commands ask for is what
    this environment already has, so the torch line and the requirements must resolve to it."""
    import subprocess

    section = README.read_text().split("## Your own project in 5 minutes\n", 1)[1].split("\n## ", 1)[0]
    (script,) = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    tools = offline_tools(tmp_path / "tools")
    env = clean_env(PATH=f"{tools}:{Path(ALOPS).parent}:{clean_env()['PATH']}", GIT_AUTHOR_NAME="newcomer",
                    GIT_AUTHOR_EMAIL="newcomer@example.com", GIT_COMMITTER_NAME="newcomer",
                    GIT_COMMITTER_EMAIL="newcomer@example.com")
    env.pop("ALOPS_GITLAB_CI_LOCAL", None)
    env.pop("PIP_FIND_LINKS", None)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "rehearsing a push pipeline of 'feature/first-model' (gitlab)" in output
    assert "alops: the pipeline passed" in output and "repro: on cpu with the dev dataset" in output, output[-3000:]
