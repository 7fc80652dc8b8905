"""Spread over seeds, proven on the path a team walks (users_path): `seeds: 3` switched on in the CI file `alops new`
wrote, on GitLab and GitHub, with a real MLflow server. The report the reviewer reads is the comment the report
job posts."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import git
from test_install import wheel  # noqa: F401 (the module's fixture)
from users_path import origin_of, pipeline_options, push, team_with_digits

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_seeds_3_judge_an_experiment_better_then_within_noise(wheel, tmp_path, mlflow_server, forge):
    """`seeds: 3` switched on in the generated CI file: an experiment push runs a job per seed (GitLab `parallel`,
    GitHub a matrix), the select job trains main's full-data baseline with 3 seeds, and the posted report says
    "better" for 15 epochs against main's 2, then "within noise" for main's training with a learning rate 0.2%
    off."""
    project, env = team_with_digits(wheel, tmp_path, forge, "seeds: 3", epochs_on_main=2)
    git(project, "remote", "set-url", "origin", origin_of(forge, f"digits-seeds-{forge}"))
    git(project, "switch", "-q", "-c", "experiment/longer")
    params = yaml.safe_load((project / "params.yaml").read_text())
    options = pipeline_options(forge, mlflow_server, wheel)

    output, comment = push(project, env, "experiment/longer", {**params, "train": {**params["train"], "epochs": 15}},
                           *options)
    if forge == "gitlab":
        assert {f"alops-seeds: [{i}/3]" for i in (1, 2, 3)} <= set(re.findall(r"PASS +(.+?)\s*$", output, re.MULTILINE))
        for picture in ("plot-Training-loss", "plot-Confusion-matrix-validation-split"):  # uploaded with the comment
            assert re.search(rf"!\[{picture}\]\(/uploads/\d+/{picture}\.png\)", comment), comment
    else:
        assert len(re.findall(r"Train this seed", output)) >= 3
        assert "[The report's images (the job's artifacts)](" in comment, comment  # GitHub takes no uploads
    assert "main: seed 0 (3 of 3)" in output  # main's baseline, made in the select job
    assert "latest tracked run of `main` on the full dataset, mean of 3 seeds" in comment
    assert "| `train.epochs` | `15` | `2` |" in comment and "| seeds | 3 | 3 |" in comment, comment
    assert "(mean of 3 vs 3 seeds), so it is **better**" in comment, comment

    nearly_main = {**params, "train": {**params["train"], "lr": params["train"]["lr"] * 1.002}}
    output, comment = push(project, env, "experiment/longer", nearly_main, *options)
    assert "has 3 seeds of its tracked run" in output  # main's baseline is made once per commit
    assert "(mean of 3 vs 3 seeds), so it is **within noise**" in comment, comment
