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


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    from conftest import ALOPS

    return subprocess.run([str(Path(ALOPS).with_name("mkdocs")), "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True)


def test_docs_build_strict_with_every_link_resolving(tmp_path):
    result = mkdocs_build(KIT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site/tutorial/index.html").exists()


def test_a_broken_link_fails_the_docs_build(tmp_path):
    import shutil

    shutil.copytree(KIT / "docs", tmp_path / "docs")
    shutil.copy(KIT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs/index.md", "a") as handle:
        handle.write("\nSee [the missing page](missing.md) and [a heading](cli.md#no-such-heading).\n")
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "missing.md" in result.stderr and "no-such-heading" in result.stderr
