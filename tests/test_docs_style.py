"""README.md and docs/ read as a newcomer reads them: no paragraph (or list item) over six lines. The generated
CLI reference is exempt (it is click's help text)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

KIT = Path(__file__).parents[1]
PAGES = [KIT / "README.md", *sorted(p for p in (KIT / "docs").glob("*.md") if p.name != "cli.md")]
LIMIT = 6


def long_paragraphs(text: str) -> list[tuple[int, int]]:
    """(first line, length) of each paragraph or list item over LIMIT lines, outside code blocks and tables."""
    found, length, start, code = [], 0, 0, False
    for number, line in enumerate(text.splitlines() + [""], 1):
        if line.startswith("```"):
            code, length = not code, 0
            continue
        if code or line.startswith(("|", "#")):
            length = 0
            continue
        if not line.strip() or re.match(r"\s*([-*]|\d+\.)\s", line):
            if length > LIMIT:
                found.append((start, length))
            length = 0
            if not line.strip():
                continue
        if length == 0:
            start = number
        length += 1
    return found


def test_the_checker_finds_a_long_paragraph_and_passes_lists_and_code():
    assert long_paragraphs("\n".join(["text"] * 7)) == [(1, 7)]
    assert long_paragraphs("\n".join(["- item"] * 10 + ["```"] + ["code"] * 20 + ["```"])) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_paragraph_runs_over_six_lines(page):
    assert long_paragraphs(page.read_text()) == [], f"{page.name}: paragraphs (first line, lines) over {LIMIT} lines"
