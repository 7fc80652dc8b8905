"""Writers that promise "whole or not at all", tested by fault injection: a process that dies just before the
rename leaves the old file (or no buffered run), and the target is never opened for writing in place. The crash
is an audit hook (PEP 578) that ends the process at the rename, as a SIGKILL or power loss would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env

# argv: target, crash ("yes"/"no"), what to write ("file" or "buffer"); prints the opens of the target for writing
DRIVER = r'''
import json, os, sys
target, crash, what = os.path.abspath(sys.argv[1]), sys.argv[2] == "yes", sys.argv[3]
opened = []

def hook(event, args):
    if event == "open" and args[0] is not None and isinstance(args[0], (str, bytes)):
        path = os.path.abspath(os.fsdecode(args[0]))
        mode, flags = args[1] or "", args[2] or 0
        if (path == target or path.startswith(target + os.sep)) and (
                any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR)):
            opened.append(path)
    if event == "os.rename" and os.path.abspath(os.fsdecode(args[1])) == target and crash:
        os._exit(137)

sys.addaudithook(hook)
if what == "file":
    from alops.core.files import atomic_write
    atomic_write(target, "new " * 100_000)
else:
    from alops.runs.tracking import RunRecord, buffer
    record = RunRecord("e", "r", {"p": "1"}, {"m": 0.5}, {"m": [(0, 0.5)]}, {}, run_key=os.path.basename(target))
    buffer(record, sys.argv[4])
print(json.dumps(opened))
'''


def _write(tmp_path: Path, target: Path, crash: bool, what: str, *extra: str) -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.run([sys.executable, str(driver), str(target), "yes" if crash else "no", what, *extra],
                          capture_output=True, text=True, env=clean_env())


@pytest.mark.parametrize("crash", [True, False])
def test_a_crash_before_the_rename_leaves_the_old_file_and_the_target_is_never_written_in_place(tmp_path, crash):
    target = tmp_path / "out" / "metrics.json"
    target.parent.mkdir()
    target.write_text("old")
    result = _write(tmp_path, target, crash, "file")
    if crash:
        assert result.returncode == 137 and target.read_text() == "old"
        return
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "new " * 100_000
    assert json.loads(result.stdout) == []  # replaced by a rename, never truncated and rewritten
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temporary left behind


@pytest.mark.parametrize("crash", [True, False])
def test_a_buffered_run_appears_whole_or_not_at_all(tmp_path, crash):
    from alops.runs.tracking import BUFFER_DIR

    root = tmp_path / "project"
    root.mkdir()
    final = root / BUFFER_DIR / "run-1"
    result = _write(tmp_path, final, crash, "buffer", str(root))
    if crash:
        assert result.returncode == 137 and not final.exists()
        return
    assert result.returncode == 0, result.stderr
    assert json.loads((final / "run.json").read_text())["metrics"] == {"m": 0.5}
    assert json.loads(result.stdout) == []  # the run's folder is filled under another name, then renamed


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    """An exception while writing (a full disk, a bad value) keeps the target as it was and the folder clean."""
    from alops.core.files import atomic_path, atomic_write

    target = tmp_path / "metrics.json"
    atomic_write(str(target), '{"accuracy": 0.9}')
    with pytest.raises(ValueError), atomic_path(str(target)) as staged:
        Path(staged.path).write_text('{"accuracy": ')
        raise ValueError("the writer failed half way")
    assert target.read_text() == '{"accuracy": 0.9}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
