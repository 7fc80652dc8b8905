"""Shared fixtures: the real `alops` entry point, a clean environment, real git repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ALOPS = str(Path(sys.executable).with_name("alops"))
_CI_PREFIXES = ("CI_", "GITLAB_", "GITHUB_", "ALOPS_", "RUNNER_")


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without CI variables (tests may themselves run in CI), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CI_PREFIXES + ("MLFLOW_",)) and k != "CI"}
    env["PATH"] = f"{Path(ALOPS).parent}{os.pathsep}{env.get('PATH', '')}"  # stages call `python`
    # CI jobs run in shells that put pyenv's shims first on PATH (~/.bashrc here): let the shims defer to PATH,
    # so a job's `python` is the runner's venv, as on a runner whose image has it first
    env["PYENV_VERSION"] = "system"
    env.update(extra)
    return env


ACTION_STAND_INS = Path(__file__).parents[1] / "templates" / "stand-ins"  # shipped for `alops rehearse github`


def act_stand_in_args(artifacts: Path) -> list[str]:
    """act arguments replacing the reusable workflow's remote actions (act cannot download them here) by local
    stand-ins: the artifact actions copy files through `artifacts`, as they carry them between real jobs; the
    others do nothing (their steps are switched off by inputs). actions/checkout is act's own copy. Jobs run one
    at a time: act 0.2.89 writes a reusable workflow's secrets into one map from every job it starts, and two jobs
    starting together crash it ("fatal error: concurrent map writes")."""
    import re

    text = (Path(__file__).parents[1] / ".github/workflows/alops.yml").read_text()
    args = ["--concurrent-jobs", "1", "--env", f"STAND_IN_ARTIFACTS={artifacts}"]
    for action in sorted(set(re.findall(r"uses: ([\w-]+/[\w-]+@[0-9a-f]{40})", text))):
        if action.startswith("actions/checkout@"):
            continue
        own = ACTION_STAND_INS / action.split("/")[1].split("@")[0]
        args += ["--local-repository", f"{action}={own if own.is_dir() else ACTION_STAND_INS / 'stand-in'}"]
    return args


def run_alops(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script, as a user would."""
    return subprocess.run(
        [ALOPS, *args], cwd=cwd, env=env if env is not None else clean_env(), capture_output=True, text=True
    )


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on branch main with one commit."""
    return git_repo(tmp_path / "project")


def git_repo(path: Path) -> Path:
    """A git repository at `path` on branch main with one commit."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    (path / "README.md").write_text("project\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


DVC = str(Path(sys.executable).with_name("dvc"))


def dvc(cwd: Path, *args: str) -> str:
    result = subprocess.run([DVC, *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def copy_of(built: Path, repo: Path, tmp_path: Path, remote: str | None = "remote") -> Path:
    """A test's own copy of a project built once (under `built`): the repository (its DVC cache inside) and its
    DVC remote folder `remote`, at tmp_path / remote. The last commit is made again with the remote's new path and
    a message of its own, so no two tests share a commit (runs on the session's tracking server are found by
    commit)."""
    import shutil
    import uuid

    shutil.rmtree(repo)
    shutil.copytree(built / "project", repo, symlinks=True)
    if remote is not None:
        if (built / remote).exists():
            shutil.copytree(built / remote, tmp_path / remote, symlinks=True)
        config = repo / ".dvc" / "config"
        text = config.read_text()
        assert f"url = {built / remote}\n" in text
        config.write_text(text.replace(f"url = {built / remote}\n", f"url = {tmp_path / remote}\n"))
        git(repo, "add", ".dvc/config")
    message = git(repo, "log", "-1", "--format=%s")
    git(repo, "commit", "-q", "--amend", "-m", f"{message} ({uuid.uuid4().hex[:8]})")
    return repo


@pytest.fixture(scope="session")
def _dvc_project_built(tmp_path_factory) -> Path:
    from datasets import write_full_dataset

    base = tmp_path_factory.mktemp("dvc-project")
    repo = git_repo(base / "project")
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "store", str(base / "remote"))
    write_full_dataset(repo / "data" / "full")
    dvc(repo, "add", "-q", "data/full")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "full dataset")
    return base


@pytest.fixture
def dvc_project(_dvc_project_built: Path, repo: Path, tmp_path: Path) -> Path:
    """`repo` as a DVC project with a local directory remote (tmp_path / "remote") and a tracked full dataset."""
    return copy_of(_dvc_project_built, repo, tmp_path)


PROJECT_TEMPLATE = Path(__file__).parent / "project"


@pytest.fixture(scope="session")
def _ml_project_built(tmp_path_factory) -> Path:
    import shutil

    from datasets import write_digits

    base = tmp_path_factory.mktemp("ml-project")
    repo = git_repo(base / "project")
    for item in PROJECT_TEMPLATE.iterdir():
        if item.is_file():
            shutil.copy(item, repo / item.name)
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "store", str(base / "remote"))
    write_digits(repo / "data" / "full")
    dvc(repo, "add", "-q", "data/full")
    result = run_alops("data", "make-dev", "--fraction", "0.2", cwd=repo)
    assert result.returncode == 0, result.stderr
    (repo / ".gitignore").write_text("__pycache__/\nmlflow.db\nmlartifacts/\n")  # metrics and plots (cache: false) belong in git
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    assert run_alops("data", "push", "--dataset", "all", cwd=repo).returncode == 0
    return base


@pytest.fixture
def ml_project(_ml_project_built: Path, repo: Path, tmp_path: Path) -> Path:
    """The test project (digits, a PyTorch MLP, train + evaluate stages) with full and dev data pushed to a local
    DVC remote (tmp_path / "remote")."""
    return copy_of(_ml_project_built, repo, tmp_path)


@pytest.fixture(scope="session")
def _al_project_built(tmp_path_factory) -> Path:
    from datasets import write_full_dataset

    base = tmp_path_factory.mktemp("al-project")
    repo = git_repo(base / "project")
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "store", str(base / "dvc-remote"))
    (repo / "alops.yaml").write_text("data:\n  classes: ['0', '1', '2', '3']\n")
    write_full_dataset(repo / "data/full", n=80)
    dvc(repo, "add", "-q", "data/full")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    dvc(repo, "push", "-q")
    return base


@pytest.fixture
def al_remote(_al_project_built: Path, repo: Path, tmp_path: Path) -> Path:
    """A bare git remote whose branch al/round-1 tracks a full dataset, and its DVC remote (tmp_path / "dvc-remote")."""
    copy_of(_al_project_built, repo, tmp_path, remote="dvc-remote")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "push", "-q", str(bare), "main:main", "main:al/round-1")
    return bare


SAMPLER = """import csv, os
os.makedirs('data/dev', exist_ok=True)
rows = list(csv.reader(open('data/full/manifest.csv')))
with open('data/dev/manifest.csv', 'w', newline='') as out:
    csv.writer(out).writerows(rows[:1] + rows[1::5])
"""


def use_sampler_stage(project: Path) -> str:
    """docs/data.md's sampler stage in `ml_project`: a dvc.yaml stage writes the dev data (every 5th row), made
    by `alops data make-dev`, committed and pushed; returns the new dvc.yaml."""
    git(project, "rm", "-q", "data/dev.dvc")
    (project / "sample.py").write_text(SAMPLER)
    pipeline = (project / "dvc.yaml").read_text().replace(
        "stages:\n", "stages:\n  sample:\n    cmd: python sample.py\n    deps:\n      - sample.py\n      - data/full\n"
        "    outs:\n      - data/dev\n", 1)
    (project / "dvc.yaml").write_text(pipeline)
    (project / "alops.yaml").write_text("data:\n  full: data/full\n  dev: data/dev\n  dev_stage: sample\n")
    made = run_alops("data", "make-dev", cwd=project)
    assert made.returncode == 0, made.stderr
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "dev data from our own sampler")
    pushed = run_alops("data", "push", "--dataset", "all", cwd=project)
    assert pushed.returncode == 0, pushed.stderr
    return pipeline


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(process: subprocess.Popen, url: str, log: Path, name: str, timeout_s: int) -> None:
    """Wait until `url`/health answers; fail with the log's tail if the server dies or takes too long."""
    import time
    import urllib.request

    deadline = time.time() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            pass
        if time.time() > deadline:
            process.kill()
            raise RuntimeError(f"{name} did not answer /health within {timeout_s} s")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (sqlite backend, artifacts in a temp folder) on a free 127.0.0.1 port."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(folder / "server.log", "w")
    process = subprocess.Popen(
        [str(Path(ALOPS).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=clean_env(),
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, url, folder / "server.log", "mlflow server", 120)
    yield url
    process.terminate()
    process.wait(timeout=30)


LABEL_STUDIO = Path(os.environ.get("ALOPS_LABEL_STUDIO", Path(__file__).parents[1] / ".venv-ls/bin/label-studio"))


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio on a free 127.0.0.1 port (installed by `make test` into .venv-ls); (url, token)."""
    folder = tmp_path_factory.mktemp("label-studio")
    port, token = free_port(), "alops-test-token-7f3a"
    log = open(folder / "server.log", "w")
    # webhooks may go to 127.0.0.1, where the forge stand-in listens (Label Studio refuses local targets by default)
    env = clean_env(LABEL_STUDIO_BASE_DATA_DIR=str(folder / "data"), SSRF_PROTECTION_ENABLED="false")
    process = subprocess.Popen(
        [str(LABEL_STUDIO), "start", "--host", "127.0.0.1", "--port", str(port), "--no-browser",
         "--username", "labeler@example.com", "--password", "alops-secret", "--user-token", token,
         "--enable-legacy-api-token"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, url, folder / "server.log", "Label Studio", 180)
    yield url, token
    process.terminate()
    process.wait(timeout=30)


def annotate(studio: tuple[str, str], title: str, label: str, skip: set[str] = frozenset()) -> list[dict]:
    """What labelers do: every task of the Label Studio project `title` whose sample is not in `skip` gets one
    annotation choosing `label`, through Label Studio's API. The project's tasks."""
    import requests

    url, token = studio
    headers = {"Authorization": f"Token {token}"}
    projects = requests.get(f"{url}/api/projects", headers=headers, timeout=30).json()["results"]
    project = next(p for p in projects if p["title"] == title)
    tasks = requests.get(f"{url}/api/tasks", params={"project": project["id"], "page_size": 1000}, headers=headers,
                         timeout=30).json()["tasks"]
    for task in tasks:
        if task["data"]["sample_id"] in skip:
            continue
        answer = {"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                              "value": {"choices": [label]}}], "was_cancelled": False}
        posted = requests.post(f"{url}/api/tasks/{task['id']}/annotations", json=answer, headers=headers, timeout=30)
        assert posted.status_code == 201, posted.text
    return tasks


SLOW_FIXTURES = {"mlflow_server", "label_studio"}
SLOW_MODULES = {"test_templates_gitlab", "test_templates_github", "test_intake_ci", "test_demo", "test_scaffold", "test_install", "test_docs",
                "test_kit_release", "test_tutorial"}


def pytest_collection_modifyitems(items):
    """Tests that start servers, CI runners, pip or the demo are `slow` (as are the kill-and-resume tests and the
    full simulation suite, marked where they are): `pytest -m "not slow"` skips them."""
    for item in items:
        if item.module.__name__ in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# Runs the alops CLI with one function wrapped so that the process writes a marker file and sleeps when it
# reaches a point (before or after the call; optionally only when the call's arguments mention a word). A test
# then SIGKILLs it knowing where it is. The product code is unchanged, only wrapped.
PAUSING_DRIVER = r'''
import importlib, os, sys, time
target, when, word, marker = (os.environ[k] for k in ("PAUSE_TARGET", "PAUSE_WHEN", "PAUSE_WORD", "PAUSE_MARKER"))
module_name, _, attribute = target.partition(":")
owner = importlib.import_module(module_name)
*path, name = attribute.split(".")
for part in path:
    owner = getattr(owner, part)
original = getattr(owner, name)

def wrapped(*args, **kwargs):
    hit = word in repr(args)
    if hit and when == "before":
        open(marker, "w").write(target); time.sleep(600)
    result = original(*args, **kwargs)
    if hit:
        open(marker, "w").write(target); time.sleep(600)
    return result

setattr(owner, name, wrapped)
from alops.cli import main
sys.argv = ["alops", *sys.argv[1:]]
main()
'''


def kill_inside(cwd: Path, args: list[str], target: str, when: str = "after", word: str = "",
                marker_dir: Path | None = None) -> None:
    """Run `alops ARGS`, wait until it reaches `target` ("module:function", `when` before/after the call, whose
    arguments mention `word`), and SIGKILL it there. Fails if it ends or never gets there."""
    import signal
    import time

    folder = marker_dir or cwd.parent
    driver, marker = folder / "pausing-driver.py", folder / "paused-marker"
    driver.write_text(PAUSING_DRIVER)
    marker.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, str(driver), *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env=clean_env(PAUSE_TARGET=target, PAUSE_WHEN=when, PAUSE_WORD=word,
                                             PAUSE_MARKER=str(marker)))
    deadline = time.monotonic() + 180
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists() and process.poll() is None, process.communicate()[1]  # the kill lands inside the step
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    marker.unlink()


def pytest_configure(config):
    """Hypothesis keeps its database and constants cache in a temporary folder, never in the repository."""
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="alops-hypothesis-"))


@pytest.fixture
def feature_project(repo):
    """A DVC project whose samples are two numeric features (no files)."""
    from conftest import dvc
    from datasets import write_manifest

    dvc(repo, "init", "-q")
    (repo / "data/full").mkdir(parents=True)
    write_manifest(repo / "data/full/manifest.csv", [{"id": str(i), "label": str(i % 2), "split": "train",
                                                      "x": f"{i / 10}", "y": "1.0"} for i in range(20)])
    return repo
