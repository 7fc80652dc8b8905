"""The drift verdict as a record and as the one open issue per branch that says what moved and what to do.

`alops data check-dev --verdict FILE` writes the record (representative or not); `alops data drift-issue FILE`
opens the branch's drift issue, or updates it while it is open, so a schedule that keeps finding drift keeps
one issue current instead of filing one per run; the first check that finds the dev dataset representative
again closes it, saying so. Class names, column names, branches and paths are data: the
issue shows them as inert code spans.
"""

from __future__ import annotations

import hashlib
import json

from alops.core.errors import ConfigError
from alops.core.files import write_json

FORMAT = 2
FIELDS = {"format": int, "branch": str, "compared": str, "against": str, "label_column": str, "representative": bool,
          "dev_rows": int, "live_rows": int, "problems": list, "tests": dict, "remedy": str, "alpha": float,
          "min_effect": float}


def record(verdict: dict, branch: str, compared: str, remedy: str, against: str = "", label_column: str = "") -> dict:
    """The verdict of `alops.data.devset.check_dev` with what it was about (`against`: the log's path, empty for the
    full data; `label_column`: its class column) and the command that answers it."""
    keep = ("representative", "dev_rows", "live_rows", "problems", "tests", "alpha", "min_effect")
    return {"format": FORMAT, "branch": branch, "compared": compared, "against": against, "label_column": label_column,
            "remedy": remedy, **{k: verdict[k] for k in keep}}


def remedy_options(verdict: dict) -> tuple[int, str | None, str | None]:
    """What `make-dev --remedy` does for a verdict: (dev rows, the log whose class shares the labeled samples
    take or None, its class column): the shares when the class test moved, else a new sample of that size."""
    moved = verdict["tests"].get("labels", {}).get("drifted")
    if moved and verdict["against"]:
        return verdict["dev_rows"], verdict["against"], verdict["label_column"] or None
    return verdict["dev_rows"], None, None


def save(path: str, verdict: dict) -> None:
    write_json(path, verdict, indent=2)


def read(path: str) -> dict:
    """A verdict record written by `check-dev --verdict`, checked by shape."""
    fix = "write it with `alops data check-dev --verdict FILE`"
    try:
        with open(path, encoding="utf-8") as handle:
            verdict = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no drift verdict (the check stopped before it judged); {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a drift verdict ({type(exc).__name__}); {fix}") from None
    if not isinstance(verdict, dict):
        raise ConfigError(f"{path}: not a drift verdict (a JSON object expected); {fix}")
    for name, kind in FIELDS.items():
        value = verdict.get(name)
        fits = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            fits = True
        if not fits:
            raise ConfigError(f"{path}: field {name!r} must be {kind.__name__}; {fix}")
    if verdict["format"] != FORMAT:
        raise ConfigError(f"{path}: drift verdict format {verdict['format']}, this alops reads {FORMAT}; {fix}")
    if not all(isinstance(p, str) for p in verdict["problems"]) or not all(
            isinstance(t, dict) and all(isinstance(t.get(k), (int, float)) for k in ("effect", "p_value"))
            for t in verdict["tests"].values()):
        raise ConfigError(f"{path}: fields 'problems' and 'tests' are not as check-dev writes them; {fix}")
    return verdict


def marker(branch: str) -> str:
    """The hidden mark of a branch's drift issue (a digest: a branch name never reaches the HTML comment)."""
    return f"<!-- alops:drift:{hashlib.sha256(branch.encode()).hexdigest()[:16]} -->"


def issue(verdict: dict, job_url: str | None) -> tuple[str, str]:
    """(title, description) of the branch's drift issue."""
    from alops.report.merge_request import code

    title = "Drift: the dev dataset no longer represents the data it was checked against"
    rows = [f"| {code(name)} | {test['effect']:.3f} | {test['p_value']:.2g} | {'**moved**' if test.get('drifted') else 'no'} |"
            for name, test in sorted(verdict["tests"].items())]
    lines = [
        marker(verdict["branch"]),
        f"The scheduled drift check on {code(verdict['branch'])} compared the dev dataset ({verdict['dev_rows']} rows) "
        f"with {code(verdict['compared'])} ({verdict['live_rows']} rows) and found that it no longer represents it "
        f"(alpha {verdict['alpha']:g}, minimum effect {verdict['min_effect']:g}).",
        "",
        "What moved:",
        "",
        *(f"- {code(problem)}" for problem in verdict["problems"]),
        "",
        "| test | effect | p-value | verdict |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        "What to do, on the branch (then commit and push; the next check updates this issue while it stays open):",
        "",
        code(verdict["remedy"]),
    ]
    if job_url:
        lines += ["", f"[The check's job]({job_url})"]
    return title, "\n".join(lines) + "\n"


def resolved_note(verdict: dict, job_url: str | None) -> str:
    """The closing comment: the check that found the dev dataset representative again."""
    from alops.report.merge_request import code

    tests = "; ".join(f"{code(name)} effect {test['effect']:.3f}, p {test['p_value']:.2g}"
                      for name, test in sorted(verdict["tests"].items()))
    text = (f"The drift check on {code(verdict['branch'])} found the dev dataset ({verdict['dev_rows']} rows) "
            f"representative of {code(verdict['compared'])} ({verdict['live_rows']} rows) again"
            f"{': ' + tests if tests else ''} (alpha {verdict['alpha']:g}, minimum effect {verdict['min_effect']:g}). "
            "Closing; the next drift opens a new issue.")
    return text + (f"\n\n[The check's job]({job_url})" if job_url else "") + "\n"


def file(target_forge, verdict: dict, job_url: str | None):
    """Open or update the branch's drift issue, or close it when the data was representative again; the forge's
    outcome, or None when there was no drift and no open issue."""
    if verdict["representative"]:
        return target_forge.close_issue(marker(verdict["branch"]), resolved_note(verdict, job_url))
    title, description = issue(verdict, job_url)
    return target_forge.upsert_issue(marker(verdict["branch"]), title, description)
