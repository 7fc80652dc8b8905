"""Parallel candidates, proven on the path a team walks (users_path): `candidates: 3` and `seeds: 2` switched on in
the CI file `alops new` wrote, on GitLab and GitHub, with a real MLflow server. The report the reviewer reads is
the comment the report job posts."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import git
from test_install import wheel  # noqa: F401 (the module's fixture)
from users_path import ci_file_of, origin_of, pipeline_options, push, team_with_digits

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_candidates_3_pick_the_best_mean_into_the_posted_report(wheel, tmp_path, mlflow_server, forge):
    """`candidates: 3` (and `seeds: 2`) switched on in the generated CI file: three matrix jobs (GitLab
    `parallel`, GitHub `strategy.matrix`) train combinations of the example's `alops params matrix --sample 3`,
    the select job picks the best mean over seeds against main's full-data baseline, and the posted report
    carries the pick and its params change."""
    project, env = team_with_digits(wheel, tmp_path, forge, "candidates: 3", epochs_on_main=2)
    ci_file = ci_file_of(project, forge)
    ci_file.write_text(ci_file.read_text().replace("      # seeds: 3\n", "      seeds: 2\n"))
    git(project, "remote", "set-url", "origin", origin_of(forge, f"digits-sweep-{forge}"))
    git(project, "commit", "-q", "-am", "two seeds each")
    git(project, "switch", "-q", "-c", "experiment/sweep")
    params = yaml.safe_load((project / "params.yaml").read_text())  # main's: no combination of the matrix
    output, comment = push(project, env, "experiment/sweep", params, *pipeline_options(forge, mlflow_server, wheel))
    if forge == "gitlab":
        assert {f"alops-candidates: [{i}/3]" for i in (1, 2, 3)} <= set(re.findall(r"PASS +(.+?)\s*$", output, re.MULTILINE))
    else:
        assert len(re.findall(r"Train this candidate's combination", output)) >= 3
    assert "### Candidates (3, picked on the mean over seeds)" in comment, comment
    rows = re.findall(r"^\| `(?:alops-candidates/alops-)?candidate-(\d)/report\.json` (\*\*picked\*\*)? \|.*\| ([0-9.]+)(?: ± [0-9.e-]+)? \| 2 \|$",
                      comment, re.MULTILINE)
    assert sorted(index for index, _, _ in rows) == ["1", "2", "3"], comment  # each over its 2 seeds
    [picked] = [float(mean) for _, mark, mean in rows if mark]
    assert picked == max(float(mean) for _, _, mean in rows)  # the best mean
    assert "latest tracked run of `main` on the full dataset, mean of 2 seeds" in comment
    patch = re.search(r"`git apply params-pick\.patch`\):\n\n```diff\n(.*?\n)```", comment, re.DOTALL)
    assert patch and patch.group(1).startswith("--- a/params.yaml"), comment
    (tmp_path / "pick.patch").write_text(patch.group(1))
    git(project, "apply", str(tmp_path / "pick.patch"))  # the MR can carry the pick
    picked_params = yaml.safe_load((project / "params.yaml").read_text())["train"]
    assert picked_params != params["train"] and picked_params["epochs"] in (10, 20)
