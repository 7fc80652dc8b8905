"""dvc.yaml stages proposed from a project's Makefile, for `alops init --stages-from-makefile`.

Each target whose recipe runs a Python script of the project (`python src/x.py ...`, `$(PYTHON_INTERPRETER) -m
pkg.mod ...`) becomes a stage running the same commands. Its arguments that are paths sort themselves: what exists
or an earlier stage writes is a dependency, any other path is an output. The full data folder given as an argument
becomes `${dataset_dir}`, so the stage reads the dev data on dev branches. Targets that install, lint, test or
clean (no project script) are left out. What it cannot see (files a script reads without being told) the user adds.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

from alops.core.errors import ConfigError

_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:[:?]?=)\s*(.*)$")
_RULE = re.compile(r"^([A-Za-z0-9_./-]+)\s*:(?!=)\s*(.*)$")
_REFERENCE = re.compile(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]")
_PYTHON = re.compile(r"^python[0-9.]*$")


@dataclass
class ProposedStage:
    name: str
    commands: list[str]
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    reads_dataset: bool = False


def _expand(text: str, variables: dict[str, str], depth: int = 0) -> str:
    if depth > 10:
        return text
    expanded = _REFERENCE.sub(lambda m: variables.get(m.group(1), m.group(0)), text)
    return expanded if expanded == text else _expand(expanded, variables, depth + 1)


def _rules(text: str) -> list[tuple[str, list[str]]]:
    """(target, recipe lines with variables expanded) in the Makefile's order."""
    variables: dict[str, str] = {}
    rules: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("\t"):
            if rules:
                rules[-1][1].append(line[1:].strip().lstrip("@-").strip())
            continue
        stripped = line.split("#", 1)[0].rstrip()
        assignment, rule = _ASSIGNMENT.match(stripped), _RULE.match(stripped)
        if assignment and not rule:
            variables[assignment.group(1)] = assignment.group(2).strip()
        elif rule and not rule.group(1).startswith("."):
            rules.append((rule.group(1), []))
    return [(target, [_expand(line, variables) for line in recipe if line]) for target, recipe in rules]


def _script(root: str, words: list[str]) -> tuple[str, list[str]] | None:
    """(the project file a python command runs, its arguments), or None when it runs no project file."""
    if len(words) < 2 or not _PYTHON.match(os.path.basename(words[0])):
        return None
    if words[1] == "-m" and len(words) > 2:
        module = words[2].replace(".", "/")
        found = next((p for p in (module + ".py", module + "/__main__.py") if os.path.isfile(os.path.join(root, p))), None)
        return (found, words[3:]) if found else None
    if words[1].endswith(".py") and os.path.isfile(os.path.join(root, words[1])):
        return words[1], words[2:]
    return None


def _looks_like_path(word: str) -> bool:
    return not word.startswith("-") and ("/" in word or bool(re.search(r"\.[A-Za-z0-9]{1,6}$", word))) \
        and "=" not in word and "$" not in word


def propose(root: str, makefile: str, full_folder: str) -> list[ProposedStage]:
    """The stages the Makefile at `makefile` describes (see the module's docstring)."""
    try:
        with open(makefile, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise ConfigError(f"{makefile}: not UTF-8 text; write dvc.yaml yourself (docs/adopt.md, section 3)") from None
    stages: list[ProposedStage] = []
    written: set[str] = set()
    full = os.path.normpath(full_folder)
    for target, recipe in _rules(text):
        stage = ProposedStage(re.sub(r"[^A-Za-z0-9_-]+", "_", target), [])
        for line in recipe:
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            found = _script(root, words)
            if found is None:
                continue
            script, arguments = found
            stage.commands.append(line.replace(full_folder, "${dataset_dir}") if full in map(os.path.normpath, arguments) else line)
            stage.deps.append(script)
            for word in filter(_looks_like_path, arguments):
                path = os.path.normpath(word)
                if path == full:
                    stage.reads_dataset = True
                    stage.deps.append("${dataset_dir}")
                elif os.path.exists(os.path.join(root, path)) or path in written:
                    stage.deps.append(path)
                else:
                    stage.outs.append(path)
        if stage.commands:
            stage.deps = list(dict.fromkeys(stage.deps))
            stage.outs = list(dict.fromkeys(stage.outs))
            written.update(stage.outs)
            stages.append(stage)
    return stages


def render(stages: list[ProposedStage]) -> str:
    """dvc.yaml text of the proposed stages (block lists: DVC reads `${...}` in a flow list as a mapping)."""
    lines = ["# stages proposed from the Makefile by `alops init --stages-from-makefile`: check each stage's deps and",
             "# outs (files a script reads without being told are not here), then `dvc repro`", "stages:"]
    for stage in stages:
        command = stage.commands[0] if len(stage.commands) == 1 else " && ".join(stage.commands)
        lines += [f"  {stage.name}:", f"    cmd: {_quoted(command)}", "    deps:"]
        lines += [f"      - {_quoted(dep)}" for dep in stage.deps]
        if stage.reads_dataset:
            lines += ["    params:", "      - dataset_dir"]
        if stage.outs:
            lines += ["    outs:"] + [f"      - {_quoted(out)}" for out in stage.outs]
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    """A YAML scalar for `value`: plain when YAML reads it back as the same string, else double-quoted."""
    import json

    import yaml

    try:
        if yaml.safe_load(f"k: {value}") == {"k": value}:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value)
