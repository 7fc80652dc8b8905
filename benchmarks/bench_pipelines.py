"""The GitLab component's pipelines under gitlab-ci-local (shell executor) on the test project: the whole
feature-branch pipeline (dev dataset pulled into a fresh job folder, params check, train, report) against the
experiment-branch pipeline (full data), measured in the same run.

Target: the feature-branch pipeline takes under 90 s including its data pull.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_run import ENV, build, run  # noqa: E402

KIT = HERE.parent
REPEATS = int(os.environ.get("ALOPS_BENCH_REPEATS", 3))
GITLAB_CI_LOCAL = KIT / ".tools/node_modules/.bin/gitlab-ci-local"
INCLUDE = """include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/alops@$CI_COMMIT_SHA
    inputs:
      install: false
      allow-cpu: true
"""


def pipeline(project: Path) -> float:
    shutil.rmtree(project / ".gitlab-ci-local", ignore_errors=True)
    ENV["GCL_IGNORE_PREDEFINED_VARS"] = "GITLAB_CI"
    start = time.perf_counter()
    run(project, str(GITLAB_CI_LOCAL), "--force-shell-executor", "--shell-isolation", "--no-color", "--ignore-schema-paths",
        "#/definitions/tags/minItems", "--variable", "GITLAB_CI=true")
    return time.perf_counter() - start


def one_round(folder: Path) -> tuple[float, float]:
    """The feature and then the experiment pipeline of a fresh project."""
    project = folder / "project"
    build(project, folder / "remote")
    shutil.copytree(KIT / "templates", project / "templates")
    (project / ".gitlab-ci.yml").write_text(INCLUDE)
    (project / ".gitignore").write_text((project / ".gitignore").read_text() + ".gitlab-ci-local/\n")
    run(project, "git", "remote", "add", "origin", "https://gitlab.example.com/team/project.git")
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "use the component")
    run(project, "git", "switch", "-q", "-c", "feature/bench")
    feature = pipeline(project)
    run(project, "git", "switch", "-q", "-c", "experiment/bench")
    return feature, pipeline(project)


def main() -> int:
    import tempfile

    if not GITLAB_CI_LOCAL.exists():
        print("gitlab-ci-local is missing: run `make test` once (it installs .tools/)")
        return 1
    rounds = []
    for _ in range(REPEATS):  # a fresh project and remote each time: a pushed run cache would make re-runs no-ops
        with tempfile.TemporaryDirectory() as folder:
            rounds.append(one_round(Path(folder)))
    feature, experiment = (statistics.median(column) for column in zip(*rounds))
    print(f"{'gitlab-ci-local pipeline':34} {'median s':>8}   ({REPEATS} fresh projects)")
    print(f"{'feature branch (dev dataset)':34} {feature:8.1f}")
    print(f"{'experiment branch (full data)':34} {experiment:8.1f}")
    print(f"feature / experiment: {feature / experiment:.2f}x")
    if feature >= 90:
        print("MISSED: the feature-branch pipeline is not under 90 s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
