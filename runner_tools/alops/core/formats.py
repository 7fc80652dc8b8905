"""Render a resolved context for people, scripts, shells, GitLab dotenv reports and GitHub outputs.

Branch and tag names come from whoever pushed them: every format treats them as plain text.
`env` quotes each value for POSIX shells; `dotenv` (GitLab keeps its values verbatim, quotes
included) carries only values from a fixed vocabulary, so it is safe to source as well.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alops.core.branches import Context

FORMATS = ("text", "json", "env", "dotenv", "github")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _vocabulary_values(context: Context) -> dict[str, str]:
    """Values from a closed set (kinds, profile choices, booleans): safe in any format."""
    profile = context.profile
    mr = context.merge_request
    return {
        "kind": context.kind,
        "target_kind": mr.target_kind if mr else "",
        "is_merge_request": _flag(mr is not None),
        "from_fork": _flag(bool(mr and mr.from_fork)),
        "event": context.event,
        "forge": context.forge,
        "dataset": profile.dataset,
        "device": profile.device,
        "tracking": _flag(profile.tracking),
        "deploy": _flag(profile.deploy),
        "data_commits": _flag(profile.data_commits),
        "report_target": profile.report_target,
    }


def _all_values(context: Context) -> dict[str, str]:
    mr = context.merge_request
    return {
        **_vocabulary_values(context),
        "branch": context.branch or "",
        "tag": context.tag or "",
        "default_branch": context.default_branch,
        "target_branch": mr.target_branch if mr else "",
        "commit": context.commit or "",
    }


def render_text(context: Context) -> str:
    profile = context.profile
    on = {True: "on", False: "off"}
    lines = [
        f"kind:      {context.kind}",
        f"branch:    {context.branch or '-'}" + (f"  (tag {context.tag})" if context.tag else ""),
        f"event:     {context.event} ({context.forge})",
    ]
    if context.merge_request:
        mr = context.merge_request
        fork = ", from a fork" if mr.from_fork else ""
        lines.append(f"merge:     {mr.source_branch} ({mr.source_kind}) -> {mr.target_branch} ({mr.target_kind}){fork}")
    lines.append(
        f"profile:   dataset={profile.dataset} device={profile.device} tracking={on[profile.tracking]} "
        f"deploy={on[profile.deploy]} data-commits={on[profile.data_commits]} report={profile.report_target}"
    )
    return "\n".join(lines) + "\n"


def render_json(context: Context) -> str:
    import json

    return json.dumps(context.as_dict(), indent=2, sort_keys=True) + "\n"


def render_env(context: Context) -> str:
    """`export ALOPS_X='value'` lines for `eval "$(alops context --format env)"`."""
    return "".join(f"export ALOPS_{key.upper()}={shlex.quote(value)}\n" for key, value in _all_values(context).items())


def render_dotenv(context: Context) -> str:
    """`ALOPS_X=value` lines for GitLab's `artifacts:reports:dotenv`."""
    return "".join(f"ALOPS_{key.upper()}={value}\n" for key, value in _vocabulary_values(context).items())


def render_github_outputs(context: Context) -> str:
    """Step outputs in `$GITHUB_OUTPUT` syntax: kebab-case names, plus `json` for `fromJSON()`."""
    import json

    values = {key.replace("_", "-"): value for key, value in _all_values(context).items()}
    values["json"] = json.dumps(context.as_dict(), sort_keys=True)
    out = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            import uuid

            delimiter = f"ALOPS_{uuid.uuid4().hex}"
            out.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            out.append(f"{name}={value}\n")
    return "".join(out)
