"""CPU jobs install the project's requirements with the CPU torch index, GPU jobs without it: the install line
as each forge's job runs it, executed by pip against two local stand-in indexes (PyPI: a torch that pulls an
nvidia-* library; the CPU index: `torch <version>+cpu` without it), resolved with `--dry-run --report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

KIT = Path(__file__).parents[1]
CUDA_LIBRARY = "nvidia-cublas-cu12"


def wheel(index: Path, name: str, version: str, requires: list[str] = ()) -> None:
    """A minimal wheel of `name` in a PEP 503 simple index folder."""
    folder = index / name.replace("_", "-")
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{dist}.dist-info/METADATA", metadata)
        archive.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{dist}.dist-info/RECORD", "")
    links = "".join(f'<a href="{file.name}">{file.name}</a>\n' for file in sorted(folder.glob("*.whl")))
    (folder / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")


@pytest.fixture
def indexes(tmp_path):
    pypi, cpu = tmp_path / "pypi", tmp_path / "cpu"
    wheel(pypi, "torch", "2.14.1", [CUDA_LIBRARY])
    wheel(pypi, CUDA_LIBRARY, "12.8.4")
    wheel(cpu, "torch", "2.14.1+cpu")
    return pypi, cpu


def resolved(script: str, project: Path, pypi: Path, env: dict[str, str]) -> dict[str, str]:
    """Run a job's install line with pip resolving only (what it would install): name -> version."""
    report = project / "pip-report.json"
    environment = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(project),
                   "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": pypi.as_uri(), "PIP_DRY_RUN": "1",
                   "PIP_REPORT": str(report), "PIP_IGNORE_INSTALLED": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                   **env}
    result = subprocess.run(["bash", "-c", script], cwd=project, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {item["metadata"]["name"]: item["metadata"]["version"] for item in json.loads(report.read_text())["install"]}


def requirements_line(lines: list[str]) -> str:
    return next(line for line in lines if "ALOPS_REQUIREMENTS" in line and "pip install" in line)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "requirements.txt").write_text("torch>=2.1\n")  # as `alops new` writes it
    return folder


def test_gitlab_cpu_jobs_get_cpu_torch_and_gpu_jobs_the_cuda_build(indexes, project):
    pypi, cpu = indexes
    documents = list(yaml.safe_load_all((KIT / "templates/alops.yml").read_text().replace("!reference", "")))
    spec, jobs = documents[0]["spec"]["inputs"], documents[1]
    line = requirements_line(jobs[".alops-base"]["before_script"])
    assert spec["cpu-torch-index"]["default"] == "https://download.pytorch.org/whl/cpu"
    assert jobs[".alops-base"]["variables"]["ALOPS_TORCH_INDEX"] == "$[[ inputs.cpu-torch-index ]]"
    variables = {"ALOPS_REQUIREMENTS": "requirements.txt"}

    on_cpu = resolved(line, project, pypi, {**variables, "ALOPS_TORCH_INDEX": cpu.as_uri()})
    assert on_cpu == {"torch": "2.14.1+cpu"}  # no nvidia-* distribution
    for job in ("alops-train-full", "alops-release-train"):  # GPU tags: the job's own variable empties the index
        assert jobs[job]["tags"] == "$[[ inputs.gpu-tags ]]" and jobs[job]["variables"]["ALOPS_TORCH_INDEX"] == ""
    on_gpu = resolved(line, project, pypi, {**variables, "ALOPS_TORCH_INDEX": ""})
    assert on_gpu == {"torch": "2.14.1", CUDA_LIBRARY: "12.8.4"}
    with_team_index = resolved(line, project, pypi, {**variables, "ALOPS_TORCH_INDEX": cpu.as_uri(),
                                                     "PIP_EXTRA_INDEX_URL": (project / "nowhere").as_uri()})
    assert with_team_index == {"torch": "2.14.1+cpu"}  # pip-index-url's extra index is kept beside it


def test_github_cpu_jobs_get_cpu_torch_and_gpu_jobs_the_cuda_build(indexes, project):
    pypi, cpu = indexes
    workflow = yaml.safe_load((KIT / ".github/workflows/alops.yml").read_text())
    assert workflow[True]["workflow_call"]["inputs"]["cpu-torch-index"]["default"] == "https://download.pytorch.org/whl/cpu"
    for name, job in workflow["jobs"].items():
        install = next((s for s in job["steps"] if "ALOPS_REQUIREMENTS" in s.get("env", {})), None)
        if install is None:
            continue
        index = install["env"].get("ALOPS_TORCH_INDEX")
        if "gpu-runs-on" in job["runs-on"]:
            assert index is None, name
        elif "query-runs-on" in job["runs-on"]:
            assert index == "${{ inputs.query-runs-on == '' && inputs.cpu-torch-index || '' }}", name
        else:
            assert index == "${{ inputs.cpu-torch-index }}", name
    line = requirements_line(workflow["jobs"]["train-dev"]["steps"][2]["run"].splitlines())
    variables = {"ALOPS_REQUIREMENTS": "requirements.txt"}
    assert resolved(line, project, pypi, {**variables, "ALOPS_TORCH_INDEX": cpu.as_uri()}) == {"torch": "2.14.1+cpu"}
    gpu = workflow["jobs"]["train-full"]["steps"][2]["run"].splitlines()
    assert resolved(requirements_line(gpu), project, pypi, variables) == {"torch": "2.14.1", CUDA_LIBRARY: "12.8.4"}
