"""Generated docs are up to date with their sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KIT = Path(__file__).parents[1]


def test_generated_reference_docs_are_current():
    result = subprocess.run([sys.executable, str(KIT / "docs/generate.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_component_input_is_documented():
    text = (KIT / "docs/templates.md").read_text()
    for name in ("stage", "gpu-tags", "release-metric", "query-shards", "alops-version"):
        assert f"| `{name}` |" in text
