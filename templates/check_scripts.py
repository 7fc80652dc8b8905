"""shellcheck over every script line the kit ships: the GitLab components' jobs and the composite actions' steps
(actionlint checks the workflows' `run:` steps itself). Exit status 1 when shellcheck finds anything.

    python templates/check_scripts.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from compose import GitLabLoader  # the components' YAML reader (GitLab's !reference tags)

KIT = Path(__file__).resolve().parents[1]
SCRIPT_KEYS = ("before_script", "script", "after_script")


def _flatten(lines, jobs: dict) -> list[str]:
    """Script lines with nested lists and `!reference [job, key]` items resolved, as GitLab runs them."""
    flat = []
    for item in lines:
        if isinstance(item, dict) and "!reference" in item:
            job, *keys = item["!reference"]
            item = jobs[job]
            for key in keys:
                item = item[key]
        flat += _flatten(item, jobs) if isinstance(item, list) else [str(item)]
    return flat


def gitlab_scripts() -> dict[str, list[str]]:
    found = {}
    for path in sorted((KIT / "templates").glob("*.yml")):
        jobs = yaml.load(path.read_text().split("\n---\n", 1)[1], Loader=GitLabLoader) or {}
        for name, job in jobs.items():
            for key in SCRIPT_KEYS:
                if isinstance(job, dict) and isinstance(job.get(key), list):
                    found[f"{path.name}: {name}.{key}"] = _flatten(job[key], jobs)
    return found


def action_scripts() -> dict[str, list[str]]:
    found = {}
    for path in sorted((KIT / "templates" / "github").glob("*/action.yml")):
        steps = (yaml.safe_load(path.read_text()).get("runs") or {}).get("steps") or []
        for number, step in enumerate(steps):
            if "run" in step:
                found[f"{path.parent.name}/action.yml: step {number + 1}"] = str(step["run"]).splitlines()
    return found


def main() -> int:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).with_name("shellcheck"))
    problems, scripts = 0, {**gitlab_scripts(), **action_scripts()}
    with tempfile.TemporaryDirectory() as folder:
        for where, lines in scripts.items():
            script = Path(folder) / "script.sh"
            script.write_text("#!/bin/sh\n" + "\n".join(lines) + "\n")
            result = subprocess.run([shellcheck, "--shell=sh", "--format=gcc", str(script)], capture_output=True, text=True)
            for line in result.stdout.splitlines():
                print(f"{where}: {line.split(':', 3)[-1].strip()}")
                problems += 1
    print(f"shellcheck: {len(scripts)} scripts, {problems} finding(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
