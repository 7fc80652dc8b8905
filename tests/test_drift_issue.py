"""The drift verdict as a record (`check-dev --verdict`) and as the branch's one open drift issue
(`alops data drift-issue`) on both forges, through the real clients and the local forge stand-in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import clean_env, run_alops

from alops.forge.stand_in import ForgeServer

CANARY = "glpat-drift-canary-4242"
HOSTILE = "<img src=x onerror=alert(1)> **7** | @team [x](javascript:alert(1))"


def verdict(branch: str = "al/production", representative: bool = False, label: str = "7") -> dict:
    return {"format": 2, "branch": branch, "compared": "intake/new-samples.jsonl", "against": "intake/new-samples.jsonl",
            "label_column": "prediction", "representative": representative,
            "dev_rows": 359, "live_rows": 150,
            "problems": [] if representative else [f"label {label}: 10.0% in dev, 100.0% in live data"],
            "tests": {"labels": {"effect": 0.9, "p_value": 1e-30, "drifted": not representative},
                      "feature f3": {"effect": 0.05, "p_value": 0.4, "drifted": False}},
            "remedy": "alops data make-dev --count 359 --like intake/new-samples.jsonl --label-column prediction",
            "alpha": 0.01, "min_effect": 0.1}


def gitlab(server: ForgeServer, **extra) -> dict:
    return clean_env(GITLAB_CI="true", CI_SERVER_URL=server.url, CI_PROJECT_ID="42", CI_PIPELINE_SOURCE="schedule",
                     CI_COMMIT_BRANCH="al/production", CI_DEFAULT_BRANCH="main", GITLAB_TOKEN=CANARY,
                     CI_JOB_URL=f"{server.url}/group/project/-/jobs/5", **extra)


def github(server: ForgeServer) -> dict:
    return clean_env(GITHUB_ACTIONS="true", GITHUB_API_URL=server.url, GITHUB_SERVER_URL="https://github.test",
                     GITHUB_REPOSITORY="team/project", GITHUB_EVENT_NAME="schedule", GITHUB_REF="refs/heads/main",
                     GITHUB_SHA="0" * 40, GITHUB_RUN_ID="99", GITHUB_TOKEN=CANARY)


def written(tmp_path: Path, record: dict, name: str = "drift.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_a_drift_verdict_opens_one_issue_per_branch_and_updates_it_while_it_is_open(forge, tmp_path):
    with ForgeServer(CANARY) as server:
        env = gitlab(server) if forge == "gitlab" else github(server)
        first = run_alops("data", "drift-issue", str(written(tmp_path, verdict())), cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stderr
        assert re.search(r"drift issue created: \S+/issues/\d+", first.stdout)
        again = run_alops("data", "drift-issue", str(written(tmp_path, verdict(label="3"))), cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        assert "drift issue updated" in again.stdout
        other = run_alops("data", "drift-issue", str(written(tmp_path, verdict(branch="al/other"))), cwd=tmp_path, env=env)
        assert "drift issue created" in other.stdout
        issues = server.state.issues
        assert len(issues) == 2 and [i["state"] for i in issues] == ["open" if forge == "github" else "opened"] * 2
        body = issues[0]["body"]
        assert "`label 3: 10.0% in dev, 100.0% in live data`" in body and "label 7" not in body
        assert "`alops data make-dev --count 359 --like intake/new-samples.jsonl --label-column prediction`" in body
        assert "| `labels` | 0.900 | 1e-30 | **moved** |" in body and "| `feature f3` | 0.050 | 0.4 | no |" in body
        assert CANARY not in first.stdout + first.stderr + again.stdout + again.stderr


def test_a_representative_verdict_with_no_open_issue_posts_nothing(tmp_path):
    with ForgeServer(CANARY) as server:
        result = run_alops("data", "drift-issue", str(written(tmp_path, verdict(representative=True))), cwd=tmp_path,
                           env=gitlab(server))
        assert result.returncode == 0, result.stderr
        assert "representative and no drift issue is open: nothing to do" in result.stdout
        assert not [r for r in server.state.requests if r["method"] != "GET"]


@pytest.mark.parametrize("forge", ["gitlab", "github"])
def test_the_first_representative_verdict_closes_the_branchs_drift_issue_saying_why(forge, tmp_path):
    with ForgeServer(CANARY) as server:
        env = gitlab(server) if forge == "gitlab" else github(server)
        for branch in ("al/production", "al/other"):
            assert run_alops("data", "drift-issue", str(written(tmp_path, verdict(branch))), cwd=tmp_path, env=env).returncode == 0
        closed = run_alops("data", "drift-issue", str(written(tmp_path, verdict(representative=True))), cwd=tmp_path, env=env)
        assert closed.returncode == 0, closed.stderr
        assert re.search(r"drift issue closed: \S+/issues/\d+", closed.stdout)
        production, other = server.state.issues
        assert production["state"] == "closed" and other["state"] != "closed"  # only the branch's own issue
        notes = production.get("notes") or server.state.comments[production["number"]]
        assert len(notes) == 1 and "representative of `intake/new-samples.jsonl` (150 rows) again" in notes[0]["body"]
        assert "`labels` effect 0.900" in notes[0]["body"]
        again = run_alops("data", "drift-issue", str(written(tmp_path, verdict(representative=True))), cwd=tmp_path, env=env)
        assert "no drift issue is open: nothing to do" in again.stdout
        reopened = run_alops("data", "drift-issue", str(written(tmp_path, verdict())), cwd=tmp_path, env=env)
        assert "drift issue created" in reopened.stdout and len(server.state.issues) == 3  # a new drift, a new issue


def test_class_names_and_branches_in_the_issue_are_inert_text(tmp_path):
    from alops.report.drift_issue import issue, marker

    title, body = issue(verdict(branch="al/x-->y <b>", label=HOSTILE), "https://gitlab.example.com/-/jobs/5")
    first, rest = body.split("\n", 1)
    assert first == marker("al/x-->y <b>") and re.fullmatch(r"<!-- alops:drift:[0-9a-f]{16} -->", first)
    outside_code = re.sub(r"`[^`]*`", "", rest)
    assert "<" not in outside_code and "@team" not in outside_code and "javascript" not in outside_code
    assert f"`label {HOSTILE.replace('|', chr(92) + '|')}: 10.0% in dev, 100.0% in live data`" in rest
    assert "`al/x-->y <b>`" in rest and marker("al/a") != marker("al/b") and "\n" not in title


@pytest.mark.parametrize("content, field", [
    ("[1, 2]", "a JSON object expected"),
    ('{"format": 2}', "field 'branch' must be str"),
    (json.dumps({**verdict(), "dev_rows": "359"}), "field 'dev_rows' must be int"),
    (json.dumps({**verdict(), "representative": "no"}), "field 'representative' must be bool"),
    (json.dumps({**verdict(), "problems": [{"label": 7}]}), "fields 'problems' and 'tests' are not as check-dev writes them"),
    (json.dumps({**verdict(), "format": 1}), "drift verdict format 1, this alops reads 2"),
    ("not json", "not a drift verdict (JSONDecodeError)"),
])
def test_a_verdict_file_of_the_wrong_shape_is_one_line_naming_the_field(tmp_path, content, field):
    path = tmp_path / "drift.json"
    path.write_text(content)
    result = run_alops("data", "drift-issue", str(path), cwd=tmp_path, env=clean_env())
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and field in result.stderr
    assert "alops data check-dev --verdict FILE" in result.stderr


def test_no_verdict_file_says_the_check_stopped_before_it_judged(tmp_path):
    result = run_alops("data", "drift-issue", str(tmp_path / "drift.json"), cwd=tmp_path, env=clean_env())
    assert result.returncode != 0 and "no drift verdict (the check stopped before it judged)" in result.stderr


def test_a_forge_that_refuses_the_issue_says_which_permission_it_needs(tmp_path):
    with ForgeServer(CANARY) as server:
        server.inject("POST", r"/issues$", 403)
        result = run_alops("data", "drift-issue", str(written(tmp_path, verdict())), cwd=tmp_path, env=github(server))
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "GITHUB_TOKEN with `issues: write`" in result.stderr and CANARY not in result.stderr
