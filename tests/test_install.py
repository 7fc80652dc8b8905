"""The path a team walks: the wheel built and installed in a fresh venv, `alops new` from it, and the CI file
exactly as generated (only its include pointed at this checkout's components) run under gitlab-ci-local with
the install step on, installing alops from a local package folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import act_stand_in_args, clean_env, git

from alops import __version__

KIT = Path(__file__).parents[1]
GITLAB_CI_LOCAL = KIT / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"


def run(command: list[str], cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def readme_install() -> tuple[str, str]:
    """The README's two install commands (build the wheel in the kit's clone, install it)."""
    section = (KIT / "README.md").read_text().split("## Install\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    build, install = (line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip())
    return build, install


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as the README builds it, in a copy of this checkout (what a clone of the kit holds)."""
    clone = tmp_path_factory.mktemp("kit") / "alops"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=KIT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (KIT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(KIT / name, clone / name)
    build, _ = readme_install()
    run(["sh", "-c", build], cwd=clone, env=clean_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"))
    (built,) = (clone / "dist").glob("alops-*.whl")
    return built


def test_the_wheel_ships_the_scaffold_the_components_and_a_core_without_torch(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "alops/scaffold_template/cookiecutter.json" in names
    assert "alops/scaffold_template/{{cookiecutter.project_slug}}/.gitlab-ci.yml" in names  # dotfiles too
    assert "alops/scaffold_template/{{cookiecutter.project_slug}}/requirements.txt" in names
    components = sorted(n for n in names if re.fullmatch(r"alops/components/[a-z]+\.yml", n))
    assert components == sorted(f"alops/components/{p.name}" for p in (KIT / "templates").glob("*.yml"))  # rehearse
    assert "alops/components/parts/github.yml" in names and "alops/components/stand-ins/stand-in/action.yml" in names
    metadata = zipfile.ZipFile(wheel).read(f"alops-{__version__}.dist-info/METADATA").decode()
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert core and not any("torch" in line or "nvidia" in line for line in core)
    assert any("torch" in line and "extra == \"torch\"" in line for line in metadata.splitlines())
    assert any("prometheus-client" in line and "extra == \"serve\"" in line for line in metadata.splitlines())
    assert not any("prometheus" in line for line in core)


def runner_project(wheel: Path, tmp_path: Path, forge: str) -> tuple[Path, Path, dict]:
    """A runner venv with torch (CPU build) and the wheel's dependencies but not alops, and a project that
    `alops new` from the wheel made, with its data pushed: (venv, project, environment)."""
    venv = tmp_path / "runner"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    # a CPU runner: torch from the CPU build first (docs/install.md), then the core wheel
    run([python, "-m", "pip", "install", "--quiet", "torch==2.13.0"], cwd=tmp_path)
    _, install = readme_install()  # the README's command, in the kit's clone, with the runner's pip
    run(["sh", "-c", install.replace("pip install", "pip install --quiet")], cwd=wheel.parents[1],
        env=clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"))
    installed = run([python, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path).stdout.lower()
    assert f"alops=={__version__}" in installed

    env = clean_env()
    env.pop("ALOPS_TEMPLATE", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH'].split(os.pathsep, 1)[1]}"  # the runner's venv, not the kit's
    project = tmp_path / "team_project"
    run([str(venv / "bin" / "alops"), "new", str(project), "--forge", forge, "--example", "digits"], cwd=tmp_path, env=env)

    # data, as the example's README says
    git(project, "config", "user.email", "dev@example.com")
    git(project, "config", "user.name", "Dev")
    run([python, "scripts/prepare_digits.py", "data/full", "--unlabeled", "0.6", "--oracle", str(tmp_path / "oracle.csv")],
        cwd=project, env=env)
    run([str(venv / "bin" / "dvc"), "add", "-q", "data/full"], cwd=project, env=env)
    run([str(venv / "bin" / "alops"), "data", "make-dev", "--fraction", "0.1"], cwd=project, env=env)
    run([str(venv / "bin" / "dvc"), "push", "-q"], cwd=project, env=env)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    git(project, "remote", "add", "origin", f"https://{forge}.example.com/team/team_project.git")
    # the runner has the dependencies but not alops: the job's install step must fetch it from the package folder
    run([python, "-m", "pip", "uninstall", "--quiet", "-y", "alops"], cwd=tmp_path)
    return venv, project, env


def push_pipeline(wheel: Path, env: dict) -> list[str]:
    """gitlab-ci-local for a push pipeline whose jobs install alops from the wheel's folder (sets `env`'s
    predefined-variable exceptions)."""
    env["GCL_IGNORE_PREDEFINED_VARS"] = "GITLAB_CI,CI_PIPELINE_SOURCE,CI_COMMIT_REF_PROTECTED,CI_PROJECT_ID"
    # one job at a time, as a shell runner (concurrent = 1) runs them: the jobs share the runner's Python, and
    # two pip installs of the project's requirements into it at once race (seen: torch's files half-written)
    return [str(GITLAB_CI_LOCAL), "--force-shell-executor", "--shell-isolation", "--no-color", "--concurrency", "1",
            "--max-job-name-padding", "0", "--ignore-schema-paths", "#/definitions/tags/minItems",  # GitLab accepts tags: []
            "--variable", "GITLAB_CI=true", "--variable", "CI_PIPELINE_SOURCE=push",
            "--variable", f"PIP_FIND_LINKS={wheel.parent}"]


def torch_indexes(tmp_path: Path) -> tuple[Path, Path]:
    """Stand-ins for PyPI (a torch 2.13.0 that pulls an nvidia-* library) and PyTorch's CPU index (the real
    torch 2.13.0+cpu wheel): (pypi, cpu), PEP 503 folders."""
    from test_torch_index import CUDA_LIBRARY
    from test_torch_index import wheel as stand_in_wheel

    pypi, cpu = tmp_path / "pypi", tmp_path / "cpu"
    stand_in_wheel(pypi, "torch", "2.13.0", [CUDA_LIBRARY])
    stand_in_wheel(pypi, CUDA_LIBRARY, "12.8.4")
    (cpu / "torch").mkdir(parents=True)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(cpu / "torch"), "torch==2.13.0"],
        cwd=tmp_path)
    (built,) = (cpu / "torch").glob("torch-2.13.0+cpu-*.whl")
    (cpu / "torch" / "index.html").write_text(f'<a href="{built.name}">{built.name}</a>\n')
    return pypi, cpu


def test_from_the_wheel_to_green_feature_and_experiment_pipelines(wheel, tmp_path):
    venv, project, env = runner_project(wheel, tmp_path, "gitlab")
    python = str(venv / "bin" / "python")
    # a runner without torch: the feature job installs the project's requirements (torch>=2.1) with the CPU
    # index beside "PyPI", whose torch would bring a CUDA library
    others = tmp_path / "requirements-but-torch.txt"  # what a runner's pip cache already holds
    others.write_text("".join(line + "\n" for line in (project / "requirements.txt").read_text().splitlines()
                              if not line.startswith("torch")))
    run([python, "-m", "pip", "install", "--quiet", "-r", str(others)], cwd=tmp_path)
    run([python, "-m", "pip", "uninstall", "--quiet", "-y", "torch"], cwd=tmp_path)
    pypi, cpu = torch_indexes(tmp_path)
    ci_file = (project / ".gitlab-ci.yml").read_text()
    assert f"/alops@{__version__}\n" in ci_file

    # only the include address changes: the components of this checkout, at the project's own commit
    shutil.copytree(KIT / "templates", project / "templates")
    address = ci_file.split("component: ", 1)[1].split("\n", 1)[0]
    (project / ".gitlab-ci.yml").write_text(ci_file.replace(address, "$CI_SERVER_FQDN/$CI_PROJECT_PATH/alops@$CI_COMMIT_SHA"))
    with open(project / ".gitignore", "a", encoding="utf-8") as handle:
        handle.write(".gitlab-ci-local/\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the components of this checkout")
    git(project, "switch", "-q", "-c", "feature/first-model")
    command = push_pipeline(wheel, env)
    feature = [*command, "--variable", f"PIP_INDEX_URL={pypi.as_uri()}", "--variable", f"ALOPS_TORCH_INDEX={cpu.as_uri()}"]
    result = subprocess.run(feature, cwd=project, env=env, capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "repro: on cpu with the dev dataset" in output
    assert "PASS  alops-train-dev" in output or "PASS alops-train-dev" in output
    installed = run([python, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path).stdout.lower()
    assert f"alops=={__version__}" in installed and "torch==2.13.0+cpu" in installed
    assert "nvidia" not in installed  # the CPU job took no CUDA library

    # the experiment pipeline: full data, tracked; no GPU here, so the project allows the CPU as a CI variable
    git(project, "switch", "-q", "-c", "experiment/first", "main")
    result = subprocess.run([*command, "--variable", "ALOPS_ALLOW_CPU=true"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "repro: on cpu with the full dataset" in output and "tracking: run" in output
    assert "PASS  alops-train-full" in output or "PASS alops-train-full" in output


def test_from_the_wheel_a_scaffold_rehearses_a_green_feature_workflow_under_act(wheel, tmp_path):
    """`alops new --forge github` from the wheel, then `alops rehearse` as docs/install.md gives it: the generated
    caller, this alops' reusable workflow in place of the kit's address, act with the shipped stand-ins."""
    venv, project, env = runner_project(wheel, tmp_path, "github")
    caller = (project / ".github/workflows/ci.yml").read_text()
    assert re.search(r"uses: (\S+)", caller).group(1).endswith(f"/.github/workflows/alops.yml@{__version__}")
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], cwd=tmp_path)
    git(project, "switch", "-q", "-c", "feature/first-model")
    env["ALOPS_ACT"] = str(Path(sys.executable).with_name("act"))
    result = subprocess.run([str(venv / "bin" / "alops"), "rehearse", "--variable", f"PIP_FIND_LINKS={wheel.parent}"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "rehearsing a push pipeline of 'feature/first-model' (github)" in output
    assert re.search(r"/train-dev\s*\] 🏁  Job succeeded", output), output[-3000:]
    assert "repro: on cpu with the dev dataset" in output
    assert (project / ".github/workflows/ci.yml").read_text() == caller and git(project, "status", "--porcelain") == ""


TEAM_DVC_YAML = """stages:
  train:
    cmd: python train.py data/${dataset}/corpus.xml
    deps:
      - train.py
      - data/${dataset}
    params: [dataset, train]
    metrics:
      - eval/metrics.json
plots:
  - Accuracy:
      x: step
      y:
        eval/curve.json: acc
"""
TEAM_TRAIN = """import json, os, sys
import xml.etree.ElementTree as ET
import yaml
docs = ET.parse(sys.argv[1]).getroot().findall("doc")
epochs = yaml.safe_load(open("params.yaml"))["train"]["epochs"]
os.makedirs("eval", exist_ok=True)
json.dump({"scores": {"rows": len(docs), "acc": 0.5 + len(docs) / 1000}}, open("eval/metrics.json", "w"))
json.dump([{"step": i, "acc": 0.5 + i / (10 * epochs)} for i in range(epochs)], open("eval/curve.json", "w"))
"""
TEAM_SAMPLE = """import sys
import xml.etree.ElementTree as ET
tree = ET.parse("data/full/corpus.xml")
root = tree.getroot()
for doc in root.findall("doc")[int(sys.argv[1]):]:
    root.remove(doc)
tree.write("data/dev/corpus.xml")
"""


def user_with_alops(wheel: Path, tmp_path: Path) -> tuple[str, Path, dict]:
    """A user's virtual environment with alops installed by the README's command in the kit's clone: (its python,
    its bin folder, an environment with that folder first on PATH)."""
    venv = tmp_path / "runner"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python, bin_ = str(venv / "bin" / "python"), venv / "bin"
    _, install = readme_install()  # the README's command, in the kit's clone, with the runner's pip
    run(["sh", "-c", install.replace("pip install", "pip install --quiet")], cwd=wheel.parents[1],
        env=clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"))
    env = clean_env()
    env["PATH"] = f"{bin_}{os.pathsep}{env['PATH'].split(os.pathsep, 1)[1]}"
    return python, bin_, env


def local_component(project: Path) -> None:
    """The include as `alops init` generated it, pointed at this checkout's components (no GitLab server here)."""
    ci_file = (project / ".gitlab-ci.yml").read_text()
    address = ci_file.split("component: ", 1)[1].split("\n", 1)[0]
    assert address.endswith(f"/alops@{__version__}")
    shutil.copytree(KIT / "templates", project / "templates")
    (project / ".gitlab-ci.yml").write_text(ci_file.replace(address, "$CI_SERVER_FQDN/$CI_PROJECT_PATH/alops@$CI_COMMIT_SHA"))
    with open(project / ".gitignore", "a", encoding="utf-8") as handle:
        handle.write(".gitlab-ci-local/\n")


def test_an_existing_project_follows_docs_adopt_to_green_pipelines_on_both_forges(wheel, tmp_path):
    """docs/adopt.md on a DVC project alops did not make: one XML file of data, nested metrics cached by DVC, a
    plot by name, its own requirements. `alops init --forge both`, the doc's steps 3 and 4, then the generated CI
    files (pointed at this checkout's components and workflow) under gitlab-ci-local and act: the feature runs
    train on the 40-row dev sample, the experiment run on all 200 rows."""
    python, bin_, env = user_with_alops(wheel, tmp_path)

    project = tmp_path / "text-classifier"  # the team's repository, before alops
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    git(project, "config", "user.email", "dev@example.com")
    git(project, "config", "user.name", "Dev")
    run([str(bin_ / "dvc"), "init", "-q"], cwd=project, env=env)
    run([str(bin_ / "dvc"), "remote", "add", "-d", "store", str(tmp_path / "store")], cwd=project, env=env)
    (project / "data/full").mkdir(parents=True)
    (project / "data/full/corpus.xml").write_text(
        "<docs>" + "".join(f"<doc label='{'pos' if i % 3 else 'neg'}'>text {i}</doc>" for i in range(200)) + "</docs>")
    run([str(bin_ / "dvc"), "add", "-q", "data/full"], cwd=project, env=env)
    (project / "dvc.yaml").write_text(TEAM_DVC_YAML)
    (project / "params.yaml").write_text("train:\n  epochs: 3\n")
    (project / "train.py").write_text(TEAM_TRAIN)
    (project / "sample.py").write_text(TEAM_SAMPLE)
    (project / "requirements.txt").write_text("pyyaml\n")
    git(project, "remote", "add", "origin", "https://gitlab.example.com/team/text-classifier.git")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the team's project")

    # docs/adopt.md 1-2: look, then write
    run([str(bin_ / "alops"), "init", "--forge", "both", "--dry-run"], cwd=project, env=env)
    init = run([str(bin_ / "alops"), "init", "--forge", "both"], cwd=project, env=env)
    assert "dataset" in init.stdout  # the checklist names the dataset choice
    # 3: the stage reads the choice (dvc.yaml already uses ${dataset}); params.yaml gets the key
    with open(project / "params.yaml", "a", encoding="utf-8") as handle:
        handle.write("dataset: full\n")
    # 4: a dev dataset of its own (one XML file: no manifest to sample), tracked and pushed
    (project / "data/dev").mkdir()
    run([python, "sample.py", "40"], cwd=project, env=env)
    run([str(bin_ / "dvc"), "add", "-q", "data/dev"], cwd=project, env=env)
    run([str(bin_ / "dvc"), "push", "-q"], cwd=project, env=env)
    local_component(project)
    caller = (project / ".github/workflows/alops.yml").read_text()
    workflow = re.search(r"uses: (\S+)", caller).group(1)
    assert workflow.endswith(f"/.github/workflows/alops.yml@{__version__}")
    shutil.copy(KIT / ".github/workflows/alops.yml", project / ".github/workflows/alops-kit.yml")
    (project / ".github/workflows/alops.yml").write_text(caller.replace(workflow, "./.github/workflows/alops-kit.yml"))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "alops")
    run([python, "-m", "pip", "uninstall", "--quiet", "-y", "alops"], cwd=tmp_path)  # the job installs it

    command = push_pipeline(wheel, env)
    git(project, "switch", "-q", "-c", "feature/first")
    feature = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=1200)
    output = feature.stdout + feature.stderr
    assert feature.returncode == 0, output[-5000:]
    assert "repro: on cpu with the dev dataset" in output and "scores.rows: 40" in output  # the dev sample
    git(project, "switch", "-q", "-c", "experiment/first", "main")
    experiment = subprocess.run([*command, "--variable", "ALOPS_ALLOW_CPU=true"], cwd=project, env=env,
                                capture_output=True, text=True, timeout=1200)
    output = experiment.stdout + experiment.stderr
    assert experiment.returncode == 0, output[-5000:]
    assert "repro: on cpu with the full dataset" in output and "scores.rows: 200" in output

    git(project, "switch", "-q", "feature/first")  # GitHub: the generated caller under act
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/feature/first", "repository": {"default_branch": "main"}}))
    act = [str(Path(sys.executable).with_name("act")), "push", "-W", ".github/workflows/alops.yml", "-e", str(event),
           "-P", "ubuntu-latest=-self-hosted", "-P", "self-hosted=-self-hosted", "-P", "gpu=-self-hosted",
           "--env", f"PIP_FIND_LINKS={wheel.parent}", *act_stand_in_args(tmp_path / "artifacts")]
    github = subprocess.run(act, cwd=project, env=env, capture_output=True, text=True, timeout=1200)
    output = github.stdout + github.stderr
    assert github.returncode == 0, output[-5000:]
    assert "repro: on cpu with the dev dataset" in output and "scores.rows: 40" in output


def test_a_cookiecutter_data_science_repository_adopted_with_dvc_and_makefile_stages_rehearses_green_pipelines(
        wheel, tmp_path):
    """docs/adopt.md's "No DVC yet" on the template's layout: data/raw, a Makefile, no DVC, a .gitlab-ci.yml of
    the team's own with its `stages:`. `alops init --dvc-remote --stages-from-makefile`, make-dev, the metrics
    line the review asks for, then `alops rehearse` as docs/install.md gives it: a feature push trains on the dev
    rows, an experiment push on data/raw, a merge request's pipeline runs; the team's job runs in each, no folder
    renamed, nothing of the team's file lost."""
    from test_adopt import write_ccds_project

    python, bin_, env = user_with_alops(wheel, tmp_path)
    project = tmp_path / "reviews"
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    git(project, "config", "user.email", "dev@example.com")
    git(project, "config", "user.name", "Dev")
    write_ccds_project(project)
    team_ci = "stages: [lint, test]\n\nteam-lint:\n  stage: lint\n  script: [echo the team lints]\n"
    (project / ".gitlab-ci.yml").write_text(team_ci)
    team_workflow = "name: team\non: [push]\npermissions: {}\njobs:\n  lint:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo lint\n"
    (project / ".github/workflows").mkdir(parents=True)
    (project / ".github/workflows/team.yml").write_text(team_workflow)
    git(project, "remote", "add", "origin", "https://gitlab.example.com/team/reviews.git")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the team's project")

    run([str(bin_ / "alops"), "init", "--forge", "both", "--dvc-remote", str(tmp_path / "store"),
         "--stages-from-makefile"], cwd=project, env=env)
    assert (project / ".gitlab-ci.yml").read_text().endswith(team_ci)  # the include added above the team's file
    assert (project / ".github/workflows/team.yml").read_text() == team_workflow  # the caller goes beside it
    merged = (project / ".gitlab-ci.yml").read_text()
    run([str(bin_ / "alops"), "init", "--forge", "both", "--force"], cwd=project, env=env)  # refreshes alops' files
    assert (project / ".gitlab-ci.yml").read_text() == merged
    assert (project / ".github/workflows/team.yml").read_text() == team_workflow
    with open(project / "dvc.yaml", "a", encoding="utf-8") as handle:  # the review: the metrics train writes
        handle.write("    metrics:\n      - metrics.json:\n          cache: false\n")
    run([str(bin_ / "alops"), "data", "make-dev", "--fraction", "0.1"], cwd=project, env=env)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "alops, DVC and the stages")
    run([str(bin_ / "dvc"), "push", "-q"], cwd=project, env=env)
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts and ".dvc" not in p.parts}

    env["ALOPS_GITLAB_CI_LOCAL"] = str(GITLAB_CI_LOCAL)
    env["ALOPS_ACT"] = str(Path(sys.executable).with_name("act"))

    def rehearse(branch: str, *args: str) -> str:
        git(project, "switch", "-q", "-C", branch, "main")
        result = subprocess.run([str(bin_ / "alops"), "rehearse", *args], cwd=project, env=env, capture_output=True,
                                text=True, timeout=1200)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-5000:]
        return output

    for branch, dataset, rows, args in (("feature/first", "dev", 20, []), ("experiment/first", "full", 200, ["--allow-cpu"])):
        output = rehearse(branch, "--forge", "gitlab", *args)
        assert f"rehearsing a push pipeline of '{branch}' (gitlab)" in output
        assert f"repro: on cpu with the {dataset} dataset" in output and re.search(rf"\brows: {rows}\s*$", output, re.MULTILINE)
        assert re.search(r"PASS +team-lint", output), output[-3000:]  # the team's job runs beside alops'
        # the report job posted on the branch's merge request, held by the forge stand-in and printed
        assert "the forge stand-in received 1 post(s):" in output and "--- a comment on !1 ---" in output, output[-3000:]
        assert re.search(r"--- a comment on !1 ---\n.*\baccuracy\b", output, re.DOTALL)
    output = rehearse("experiment/first", "merge-request", "--forge", "gitlab")
    assert "rehearsing a merge-request pipeline of 'experiment/first' (gitlab)" in output
    assert set(re.findall(r"PASS +(\S+)", output)) == {"team-lint", "alops-params-check"}, output[-3000:]

    output = rehearse("feature/first", "--forge", "github")  # the caller init wrote, under act
    assert "rehearsing a push pipeline of 'feature/first' (github)" in output
    assert re.search(r"/train-dev\s*\] 🏁  Job succeeded", output) and re.search(r"\brows: 20\s*$", output, re.MULTILINE)
    output = rehearse("experiment/first", "--forge", "github", "--allow-cpu")  # the caller's allow-cpu input
    assert re.search(r"/train-full\s*\] 🏁  Job succeeded", output) and re.search(r"\brows: 200\s*$", output, re.MULTILINE)
    assert "--- a comment on #1 ---" in output, output[-3000:]
    output = rehearse("experiment/first", "merge-request", "--forge", "github")
    assert "rehearsing a merge-request pipeline of 'experiment/first' (github)" in output
    assert re.search(r"/context\s*\] 🏁  Job succeeded", output), output[-3000:]
    assert {p: p.read_bytes() for p in before} == before  # the rehearsals wrote nothing into the project
    assert not list(project.glob(".gitlab-ci-local")) and not (project / "templates").exists()
