"""Every fenced code block in README.md and docs/*.md runs, or says why not.

The convention (docs/contributing.md): a block preceded by the line ``<!-- not run: REASON -->`` is not
run, and REASON must say why; every other block is run from an empty folder: ``python`` blocks as a
script, ``sh`` blocks line by line under ``bash -e`` (``aljax`` being ``python -m aljax`` of this
checkout). A block in any other language must be marked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
NOT_RUN = re.compile(r"^<!-- not run: (.+\S) -->$")
RUNNABLE = {"python": "python", "sh": "sh", "bash": "sh", "shell": "sh"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    reason: str | None  # why it is not run; None: it runs

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The top-level fenced blocks of a Markdown page (a fence closes on a fence at least as long)."""
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, start = opening.group(1), i
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and set(lines[i].strip()) == {fence[0]}):
            i += 1
        marker = NOT_RUN.match(lines[start - 1].strip()) if start else None
        found.append(Block(page, start + 1, opening.group(2).lower(), "\n".join(lines[start + 1:i]),
                           marker.group(1) if marker else None))
        i += 1
    return found


BLOCKS = [block for page in PAGES for block in blocks(page)]
RUN = [b for b in BLOCKS if b.reason is None]


def test_the_pages_have_blocks_and_some_run():
    assert len(BLOCKS) >= 10 and len(RUN) >= 3, [b.name for b in BLOCKS]


def test_the_parser_sees_markers_fences_and_nesting(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- not run: needs a GPU -->\n```sh\nnvidia-smi\n```\n\n````markdown\n```sh\nx\n```\n````\n"
                    "```python\nprint(1)\n```\n")
    found = blocks(page)
    assert [(b.line, b.language, b.reason) for b in found] == [(2, "sh", "needs a GPU"), (6, "markdown", None),
                                                               (11, "python", None)]
    assert found[1].code == "```sh\nx\n```"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_every_block_runs_or_says_why_not(block, tmp_path):
    if block.reason is not None:
        assert len(block.reason.split()) >= 2, f"{block.name}: say why it is not run, in a few words"
        return
    assert block.language in RUNNABLE, (f"{block.name}: a {block.language or 'plain'} block cannot run; "
                                        "mark it <!-- not run: REASON --> on the line before")
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    if RUNNABLE[block.language] == "python":
        command = [sys.executable, "-c", block.code]
    else:
        prelude = f'set -euo pipefail\naljax() {{ "{sys.executable}" -m aljax "$@"; }}\n'
        command = ["bash", "-c", prelude + block.code]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{block.name} failed:\n{done.stderr[-3000:]}"


# ----------------------------------------------------------------------------- tables of results

TABLE_RULE = re.compile(r"^\|[-:| ]+\|$")
MEASURED = re.compile(r"\d\.\d|\d ?%|\d ?×")  # a decimal, a percentage or a ratio in a table's body
NOT_A_RESULT = re.compile(r"^<!-- not a result: (.+\S) -->$")
RESULT_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Table:
    page: Path
    line: int  # 1-based line of the header row
    measured: bool  # its body holds a measured number
    reason: str | None  # why it is not a result (<!-- not a result: REASON --> above it)
    after: tuple[str, ...]  # the lines after it, up to the next table or heading

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def tables(page: Path) -> list[Table]:
    """The Markdown tables of a page, outside fenced blocks."""
    lines, found, i, fenced = page.read_text().splitlines(), [], 0, False
    while i < len(lines):
        if FENCE.match(lines[i]):
            fenced = not fenced
        if fenced or not (lines[i].startswith("|") and i + 1 < len(lines) and TABLE_RULE.match(lines[i + 1])):
            i += 1
            continue
        end = i + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        stop = end
        while stop < len(lines) and not lines[stop].startswith(("|", "#")):
            stop += 1
        marker = NOT_A_RESULT.match(lines[i - 1].strip()) if i else None
        found.append(Table(page, i + 1, bool(MEASURED.search("\n".join(lines[i + 2:end]))),
                           marker.group(1) if marker else None, tuple(lines[end:stop])))
        i = end
    return found


RESULTS = [t for page in RESULT_PAGES for t in tables(page) if t.measured and t.reason is None]


def test_the_parser_finds_tables_their_markers_and_what_follows(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("| a | b |\n|---|---:|\n| x | 1.5 s |\n\nReproduce: `make x`.\n\n## next\n"
                    "<!-- not a result: a cap -->\n| cap | value |\n|---|---|\n| rows | 2.5 % |\n"
                    "```\n| c |\n|---|\n| 3.5 |\n```\n")
    found = tables(page)
    assert [(t.line, t.measured, t.reason) for t in found] == [(1, True, None), (9, True, "a cap")]
    assert found[0].after == ("", "Reproduce: `make x`.", "")


def test_the_pages_have_tables_of_results():
    assert len(RESULTS) >= 15, [t.name for t in RESULTS]


@pytest.mark.parametrize("table", RESULTS, ids=[t.name for t in RESULTS])
def test_every_table_of_results_names_the_command_that_reproduces_it(table):
    """Under a table of measured numbers, before the next table or heading, a paragraph starts with
    ``Reproduce`` (the command, how it ran, the machine kind, what differs elsewhere), or the table is
    marked ``<!-- not a result: REASON -->``."""
    text = " ".join(table.after)
    assert any(line.startswith("Reproduce") for line in table.after), (
        f"{table.name}: no 'Reproduce ...' paragraph under this table (or mark it <!-- not a result: why -->)")
    assert "`" in text or "same commands" in text, f"{table.name}: the Reproduce paragraph names no command"
