"""The templates as files: composed from their parts, catalog rules, schemas, zizmor, patterns = runner defaults."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ALOPS

KIT = Path(__file__).parents[1]
BIN = Path(ALOPS).parent
sys.path.insert(0, str(KIT / "templates"))
from compose import COMPONENTS, GitLabLoader  # noqa: E402

GLOBAL_KEYWORDS = {"default", "variables", "stages", "workflow", "include", "image", "services", "cache",
                   "before_script", "after_script"}
GITHUB_FILES = sorted([*(KIT / ".github/workflows").glob("*.yml"), *(KIT / "templates/github").glob("*/action.yml")])


def component(name: str) -> tuple[dict, dict]:
    spec, jobs = yaml.load_all((KIT / "templates" / f"{name}.yml").read_text(), Loader=GitLabLoader)
    return spec["spec"]["inputs"], jobs


def test_components_are_what_their_parts_compose(tmp_path):
    check = subprocess.run([sys.executable, str(KIT / "templates/compose.py"), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    copy = tmp_path / "templates"
    shutil.copytree(KIT / "templates", copy)
    part = copy / "parts/release.yml"
    part.write_text(part.read_text().replace("resource_group: alops-release", "resource_group: other"))
    stale = subprocess.run([sys.executable, str(copy / "compose.py"), "--check"], capture_output=True, text=True)
    assert stale.returncode == 1
    assert "alops.yml" in stale.stderr and "release.yml" in stale.stderr and "train.yml" not in stale.stderr


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_components_follow_the_catalog_rules(name):
    inputs, jobs = component(name)
    for key, rules in inputs.items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", key), key
        assert rules.get("description"), f"{name}: input {key} has no description"
        assert "default" in rules, f"{name}: input {key} has no default"
        if "options" in rules:
            assert rules["default"] in rules["options"]
        if "regex" in rules:
            assert re.search(rules["regex"], str(rules["default"])), f"{name}: default of {key} fails its regex"
    assert not GLOBAL_KEYWORDS & set(jobs), f"{name}: global keywords in a component"
    visible = [job for job in jobs if not job.startswith(".")]
    bases = (".alops-base", [".alops-base", ".alops-forge-job"], [".alops-base", ".alops-forge-job", ".alops-deploy-job"],
             [".alops-base", ".alops-push-job"])
    assert visible and all(jobs[job]["extends"] in bases for job in visible)
    used = set(re.findall(r"\$\[\[ inputs\.([a-z-]+) \]\]", (KIT / "templates" / f"{name}.yml").read_text()))
    assert used <= set(inputs), f"{name}: uses undeclared inputs {used - set(inputs)}"


def test_no_input_reaches_a_script_line():
    for name in COMPONENTS:
        _inputs, jobs = component(name)
        for job, body in jobs.items():
            if not isinstance(body, dict):
                continue  # a shared list of rules
            for key in ("script", "before_script", "after_script"):
                for line in body.get(key, []):
                    assert "$[[" not in line, f"{name}/{job}: an input is pasted into {key}: {line}"


def test_branch_pattern_inputs_default_to_the_runner_tools_patterns():
    from alops.core.branches import DEFAULT_PATTERNS, pattern_regex

    inputs, _jobs = component("alops")
    names = {"feature": "feature-branches", "experiment": "experiment-branches", "release": "release-branches",
             "active-learning": "al-branches"}
    assert set(names) == set(DEFAULT_PATTERNS)
    for kind, key in names.items():
        (pattern,) = DEFAULT_PATTERNS[kind]
        assert inputs[key]["default"] == "/" + pattern_regex(pattern).replace("/", "\\/") + "/", kind


@pytest.mark.parametrize("path", GITHUB_FILES, ids=lambda p: str(p.relative_to(KIT)))
def test_github_files_match_their_schema(path):
    schema = "vendor.github-actions" if path.name == "action.yml" else "vendor.github-workflows"
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kit_gitlab_pipeline_matches_the_schema():
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci",
                             str(KIT / ".gitlab-ci.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_has_no_findings():
    result = subprocess.run([str(BIN / "zizmor"), "--offline", "--no-progress", str(KIT / ".github"),
                             str(KIT / "templates/github")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


def test_github_setup_steps_are_written_once():
    """The workflow's source holds each shared step once (an anchor, reused by alias); the workflow is that source
    written out without anchors, and installs exactly as the composite setup action does."""
    source = (KIT / "templates/parts/github.yml").read_text()
    written = {action: source.count(f"uses: {action}@") for action in ("actions/setup-python", "actions/checkout", "actions/cache")}
    assert written == {"actions/setup-python": 1, "actions/checkout": 2, "actions/cache": 1}  # checkout: with history or not
    assert source.count("python -m pip install --quiet \"$ALOPS_PIP_SPEC\"") == 4  # CPU, GPU, alone, query's own index
    text = (KIT / ".github/workflows/alops.yml").read_text()
    assert not re.search(r"^ *- [&*][\w-]+$", text, re.MULTILINE), "act shares an aliased step between parallel jobs"
    workflow = yaml.safe_load(text)
    assert workflow == yaml.safe_load(source)
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    assert sum(step.get("uses", "").startswith("actions/setup-python@") for step in steps) == len(workflow["jobs"])
    action = yaml.safe_load((KIT / "templates/github/setup/action.yml").read_text())
    composite = next(step["run"] for step in action["runs"]["steps"] if step.get("name") == "Install alops")
    assert composite in {step["run"] for step in steps if step.get("name") == "Install alops"}


def test_every_job_of_the_workflow_asks_only_for_what_the_documented_caller_grants():
    """GitHub rejects a called workflow whose jobs ask for more than the caller grants, whether they run or not:
    a job that needs another scope would break every caller written from the README."""
    caller = re.search(r"permissions: (\{[^}]+\})", (KIT / "README.md").read_text()).group(1)
    granted = yaml.safe_load(caller)
    assert granted == {"contents": "write", "pull-requests": "write"}
    workflow = yaml.safe_load((KIT / ".github/workflows/alops.yml").read_text())
    levels = {"none": 0, "read": 1, "write": 2}
    for name, job in workflow["jobs"].items():
        for scope, level in job["permissions"].items():
            assert levels[level] <= levels[granted.get(scope, "none")], f"{name} asks for {scope}: {level}"


def test_github_workflow_is_least_privilege():
    workflow = yaml.safe_load((KIT / ".github/workflows/alops.yml").read_text())
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, name
        # a step that runs the pipeline, or installs the project's requirements (a package's install hooks or a
        # .pth file run in every later Python process of the job), runs the project's code
        runs_project_code = any("alops run" in step.get("run", "") or "ALOPS_REQUIREMENTS" in step.get("env", {})
                                for step in job["steps"])
        writes = {scope for scope, level in job["permissions"].items() if level == "write"}
        assert not (runs_project_code and writes), f"{name} runs the project's code beside a write token: {writes}"
    report = workflow["jobs"]["report"]
    assert report["permissions"] == {"pull-requests": "write"}
    assert not any("checkout" in step.get("uses", "") or "ALOPS_REQUIREMENTS" in step.get("env", {}) for step in report["steps"]), \
        "the job holding the comment token must not check out or install the project's code"
    text = (KIT / ".github/workflows/alops.yml").read_text()
    for line in text.splitlines():
        if re.match(r"\s+run: ", line) or line.startswith("          alops"):
            assert "${{" not in line, f"an expression is pasted into a shell line: {line.strip()}"
    assert "persist-credentials: false" in text


def test_one_version_across_package_components_workflow_and_scaffold():
    """Including the component (or workflow) at version X installs alops X; `alops new` pins X."""
    import json

    from alops import __version__

    pinned = f"alops=={__version__}"
    for name in ("alops", "train", "release", "query", "labels", "devset", "promote"):
        spec = yaml.safe_load((KIT / "templates" / f"{name}.yml").read_text().split("\n---\n")[0])["spec"]
        assert spec["inputs"]["alops-version"]["default"] == pinned, name
    workflow = yaml.safe_load((KIT / ".github/workflows/alops.yml").read_text())
    assert workflow[True]["workflow_call"]["inputs"]["alops-version"]["default"] == pinned
    action = yaml.safe_load((KIT / "templates/github/setup/action.yml").read_text())
    assert action["inputs"]["alops-version"]["default"] == pinned
    assert json.loads((KIT / "cookiecutter/cookiecutter.json").read_text())["alops_version"] == __version__


def test_actionlint_and_shellcheck_find_nothing():
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    workflows = sorted(str(p) for p in (KIT / ".github/workflows").glob("*.yml"))
    actionlint = subprocess.run([str(BIN / "actionlint"), *workflows], capture_output=True, text=True, env=env)
    assert actionlint.returncode == 0, actionlint.stdout + actionlint.stderr
    scripts = subprocess.run([sys.executable, str(KIT / "templates/check_scripts.py")], capture_output=True, text=True, env=env)
    assert scripts.returncode == 0, scripts.stdout
    assert re.search(r"shellcheck: [1-9]\d* scripts, 0 finding", scripts.stdout)


def test_the_script_check_would_flag_an_unquoted_variable(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text('#!/bin/sh\nalops query select $ALOPS_QUERY_POOL\n')
    result = subprocess.run([str(BIN / "shellcheck"), "--shell=sh", str(script)], capture_output=True, text=True)
    assert result.returncode != 0 and "SC2086" in result.stdout


def test_gitlab_jobs_that_call_the_forge_run_alops_alone():
    """The GitLab jobs that use GITLAB_TOKEN (report comment, merge request, release) extend .alops-forge-job:
    an environment GITLAB_TOKEN can be scoped to, and a before_script that installs alops only; no job that runs
    the pipeline calls the forge."""
    sys.path.insert(0, str(KIT / "templates"))
    from compose import GitLabLoader

    jobs = list(yaml.load_all((KIT / "templates/alops.yml").read_text(), Loader=GitLabLoader))[1]
    forge = jobs[".alops-forge-job"]
    assert forge["environment"] == {"name": "alops-forge", "action": "prepare"}
    assert not any("REQUIREMENTS" in line for line in forge["before_script"])
    calls = ("--post", "alops promote", "alops release --publish")
    for name, job in jobs.items():
        if name.startswith(".") or not isinstance(job, dict):
            continue
        script = "\n".join(job.get("script", []))
        extends = job.get("extends", [])
        if any(call in script for call in calls):
            assert ".alops-forge-job" in extends, f"{name} calls the forge without .alops-forge-job"
        if ".alops-forge-job" in extends:
            assert "alops run" not in script, f"{name} runs the pipeline beside the forge token"


def test_gitlab_jobs_holding_push_or_forge_rights_install_alops_alone():
    """A job that pushes a commit or calls the forge runs no project code: its effective before_script (GitLab's
    extends, later bases win, the job's own last; !reference resolved) installs no requirements. The GitHub side
    is test_github_workflow_is_least_privilege."""
    sys.path.insert(0, str(KIT / "templates"))
    from check_scripts import gitlab_scripts

    jobs = list(yaml.load_all((KIT / "templates/alops.yml").read_text(), Loader=GitLabLoader))[1]
    scripts = {where.split(": ", 1)[1]: lines for where, lines in gitlab_scripts().items() if where.startswith("alops.yml:")}
    holders = []
    for name, job in jobs.items():
        if name.startswith(".") or not isinstance(job, dict):
            continue
        script = "\n".join(scripts.get(f"{name}.script", []))
        if not any(call in script for call in ("--commit", "--post", "alops promote", "--publish", "alops deploy",
                                                "alops rollback")):
            continue
        holders.append(name)
        chain = [*([job["extends"]] if isinstance(job["extends"], str) else job["extends"]), name]
        source = next(base for base in reversed(chain) if f"{base}.before_script" in scripts)
        before = "\n".join(scripts[f"{source}.before_script"])
        assert "REQUIREMENTS" not in before and "pip install" in before, f"{name} installs more than alops ({source})"
    assert {"alops-labels-import", "alops-promote", "alops-deploy"} <= set(holders)


def test_release_trains_without_the_token_and_publishes_without_the_projects_code():
    """The release trains in a job of its own (contents: read); the job that gates and publishes holds the
    contents:write token in one step, checks out alops.yaml and installs alops alone."""
    workflow = yaml.safe_load((KIT / ".github/workflows/alops.yml").read_text())
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "alops run" in step.get("run", ""):
                assert "GITHUB_TOKEN" not in step.get("env", {}), f"{name}: {step.get('name')}"
    train, release = workflow["jobs"]["release-train"], workflow["jobs"]["release"]
    assert train["permissions"] == {"contents": "read"} and "github.ref_protected" in train["if"]
    assert release["needs"] == ["context", "release-train"] and release["permissions"] == {"contents": "write"}
    holders = [step["name"] for step in release["steps"] if "GITHUB_TOKEN" in step.get("env", {})]
    assert holders == ["Gate and release"]


def test_the_job_to_test_table_names_tests_that_exist():
    """docs/templates.md maps every job to the test that executes it: each named test must exist."""
    text = (KIT / "docs/templates.md").read_text()
    table = text[text.index("## Which test runs which job"):]
    named = re.findall(r"`(test_\w+\.py)?::(test_\w+)(?:\[[\w-]+\])?`", table)
    assert len(named) >= 12
    current = None
    for module, name in named:
        current = module or current
        assert f"def {name}(" in (KIT / "tests" / current).read_text(), f"{current}::{name}"
