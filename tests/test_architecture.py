"""The structure the package promises: subpackages in layers without cycles, state derived once, one atomic writer,
no private imports across modules."""

from __future__ import annotations

import ast
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, git

PACKAGE = Path(__file__).parent.parent / "runner_tools" / "alops"


def test_one_run_opens_dvc_once_and_reads_alops_yaml_params_and_the_lock_once(ml_project, monkeypatch, tmp_path):
    """A tracked run that changes a parameter, on a checkout that has run before: DVC opened once, alops.yaml and
    params.yaml parsed once, dvc.lock read once before the run (which outputs to pull) and once after it (the
    run's tags: its digest and the data version)."""
    import dvc.repo

    import alops.core.config
    from alops.cli import main

    git(ml_project, "switch", "-q", "-c", "feature/count")
    (ml_project / "alops.yaml").write_text("data: {full: data/full, dev: data/dev}\n")
    opened, read, files = [], [], []
    real_init, real_load, real_open = dvc.repo.Repo.__init__, alops.core.config.load_config, open

    def counting_init(self, *args, **kwargs):
        opened.append(args[:1])
        real_init(self, *args, **kwargs)

    def counting_load(*args, **kwargs):
        read.append(args)
        return real_load(*args, **kwargs)

    def counting_open(file, *args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("alops") and os.path.basename(str(file)) in ("params.yaml", "dvc.lock"):
            files.append((os.path.basename(str(file)), caller, args[:1] or kwargs.get("mode", "r")))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(dvc.repo.Repo, "__init__", counting_init)
    monkeypatch.setattr("builtins.open", counting_open)
    monkeypatch.setattr(alops.core.config, "load_config", counting_load)
    monkeypatch.setattr("alops.core.project.load_config", counting_load)
    environment = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ml_project)
    assert main(["run"]) == 0
    opened.clear(), read.clear(), files.clear()
    assert main(["run", "--track", "--set", "train.epochs=2"]) == 0
    assert (ml_project / "metrics.json").exists()  # the pipeline really ran: pull, repro, push
    assert len(opened) == 1, opened
    assert len(read) == 1, read
    parsed = [caller for name, caller, mode in files if name == "params.yaml" and caller != "alops.runs.pipeline"]
    assert parsed == ["alops.core.params", "alops.core.params"], files  # validated once, edited once (comments kept)
    assert [caller for name, caller, _ in files if name == "dvc.lock"] == ["alops.runs.pipeline", "alops.runs.pipeline"], files


def test_files_written_by_alops_follow_the_umask(tmp_path):
    from alops.core.files import atomic_write, write_json

    previous = os.umask(0o022)
    try:
        atomic_write(str(tmp_path / "a.txt"), "text")
        write_json(str(tmp_path / "b.json"), {"x": 1})
    finally:
        os.umask(previous)
    for name in ("a.txt", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json"]  # no temporary left


def test_a_failed_write_leaves_the_target_and_no_temporary(tmp_path):
    from alops.core.files import atomic_path

    target = tmp_path / "keep.txt"
    target.write_text("before")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as staged:
            Path(staged.path).write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def _sources():
    return [(path, path.read_text()) for path in PACKAGE.rglob("*.py")]


def test_no_module_imports_another_modules_private_names():
    offenders = [f"{p.name}: {line.strip()}" for p, text in _sources() for line in text.splitlines()
                 if re.match(r"\s*from alops[\w.]* import .*\b_[a-z]", line)]
    assert offenders == []


def test_temporary_files_are_made_only_by_alops_files():
    offenders = [p.name for p, text in _sources() if p.name != "files.py"
                 and re.search(r"os\.replace|mkstemp|NamedTemporaryFile", text)]
    assert offenders == []


def test_every_project_opened_is_closed():
    """Project.open() opens DVC's repository on first use: only a `with` block closes it."""
    offenders = [f"{p.name}: {line.strip()}" for p, text in _sources() for line in text.splitlines()
                 if "Project.open(" in line and not re.search(r"\bwith\b.*Project\.open\(", line)]
    assert offenders == []


def test_cli_module_is_the_root_group_only():
    text = (PACKAGE / "cli.py").read_text()
    assert len(text.splitlines()) < 200 and text.count("@click.command") == 0


def test_the_scrubber_masks_tokens_and_url_credentials(monkeypatch):
    from alops.core.secrets import scrub

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-canary-123")
    text = scrub("server https://user:pw-canary@mlflow.example.com/x said tok-canary-123")
    assert "pw-canary" not in text and "tok-canary-123" not in text and "mlflow.example.com/x" in text


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each alops module and the alops modules it imports, at its top or inside a function."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    found: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets.update(m for m in [base, *(f"{base}.{a.name}" for a in node.names)] if m in modules)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        found[name] = targets - {name}
    return found


def _subpackage(module: str) -> str:
    """alops.data.pool -> data; alops.cli -> cli; alops -> '' (the root: its version only)."""
    return module.split(".")[1] if "." in module else ""


def _allowed() -> dict[str, set[str]]:
    """What each subpackage may import, as its docstring's `May import:` line says."""
    allowed = {}
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if init.parent.name == "commands":
            continue  # the commands may use every subpackage
        match = re.search(r"May import: (.*)", doc, re.S)
        assert match, f"{init.parent.name}/__init__.py: the docstring says nothing of what it may import"
        allowed[init.parent.name] = set(re.findall(r"alops\.(\w+)", match[1]))
    return allowed


def test_each_subpackage_imports_only_the_layers_its_docstring_allows():
    allowed = _allowed()
    assert set(allowed) >= {"core", "data", "al", "labels", "serve", "runs", "forge", "release", "report", "setup"}
    upward = sorted(f"{module} -> {target}" for module, targets in _imports().items() for target in targets
                    if _subpackage(module) in allowed and _subpackage(target) not in ("", _subpackage(module))
                    and _subpackage(target) not in allowed[_subpackage(module)])
    assert upward == []


def test_the_layers_themselves_have_no_cycle():
    """The docstrings' `May import:` lines order the subpackages: none may reach itself through others."""
    allowed = _allowed()

    def reach(start: str, seen: set[str]) -> set[str]:
        for nxt in allowed.get(start, set()) - seen:
            seen.add(nxt)
            reach(nxt, seen)
        return seen

    assert [name for name in allowed if name in reach(name, set())] == []


def test_no_module_imports_itself_through_others():
    """No import cycle between modules, counting the imports inside functions (they hid three)."""
    graph, index, low, stack, on_stack, cycles = _imports(), {}, {}, [], set(), []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert cycles == []


def test_nothing_imports_the_commands_or_the_cli():
    offenders = sorted(f"{module} -> {target}" for module, targets in _imports().items() for target in targets
                       if _subpackage(target) in ("commands", "cli", "__main__")
                       and _subpackage(module) not in ("commands", "cli", "__main__"))
    assert offenders == []


def test_mypy_finds_nothing():
    """The type checker `make lint` runs (setup.cfg's [mypy]): the whole package."""
    result = subprocess.run([str(Path(sys.executable).parent / "mypy")], cwd=PACKAGE.parent.parent,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_ruff_finds_nothing():
    """The linter `make lint` runs (ruff.toml): unused or undefined names, import order, likely bugs."""
    result = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--no-cache", "."],
                            cwd=PACKAGE.parent.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


ARCHITECTURE = PACKAGE.parent.parent / "docs" / "architecture.md"


def _mapped_modules() -> set[str]:
    """The modules docs/architecture.md's module map names (`alops.x.y`, and `.z` after one in the same cell)."""
    text = ARCHITECTURE.read_text().split("## Module map", 1)[1].split("\n## ", 1)[0]
    named = set()
    for row in text.splitlines():
        cell = row.split("|")[1] if row.startswith("|") else ""
        base = None
        for name in re.findall(r"`(alops(?:\.\w+)+|\.\w+)`", cell):
            if name.startswith("alops"):
                base, full = name.rpartition(".")[0], name
            else:
                full = f"{base}{name}" if base else name
            named.add(full)
    return named


def test_the_architecture_map_names_every_module_and_only_modules_that_exist():
    modules = {_module_name(path) for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    named = _mapped_modules()
    assert sorted(modules - named) == [] and sorted(named - modules) == []


def test_the_fail_closed_tests_the_architecture_names_exist():
    section = ARCHITECTURE.read_text().split("## Fail closed", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(?:(test_\w+\.py)::)?(test_\w+)`", section)
    assert len(named) >= 5
    module = None
    for file, test in named:
        module = file or module
        assert f"def {test}(" in (Path(__file__).parent / module).read_text(), (module, test)
