"""Line-length lint: every line of code the site shows fits the content column (issue 11, COURSE.md section 10).

The limit is measured, not guessed: at a 1280 px window the content column of the built site is 688 px; a
code block's text area is that minus the `pre` padding (12 px a side, set in book/_assets/site.css), 664 px;
the theme's code font (14 px, DejaVu Sans Mono in Chromium here) is 8.43 px a character, so 78 characters
fit (the browser test in tests/site measures the real blocks and is the judge; this lint catches the same
thing before a build). Lines are counted in characters after expanding tabs.

Checked: code cells of chapters/*.ipynb and exercises/*.ipynb, the solution cells of exercises/source/*.ipynb,
fenced code blocks in their markdown cells, and fenced code blocks of the book's Markdown pages (the generated
book/solutions/*.md among them). Not checked: cells the site never shows (tags `remove-cell`, `remove-input`;
the `wrong:*` cells of exercise sources, which become one-line descriptions).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINE = 78
HIDDEN_TAGS = {"remove-cell", "remove-input"}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def fenced_code(text: str, first_line: int = 1):
    """(line number, line) of every line inside fenced code blocks of Markdown ``text`` (not math,
    not directives other than code: ```{code-cell}, ```{code-block} and ```python count)."""
    inside, fence, skipping = False, "", ""
    for n, line in enumerate(text.splitlines(), first_line):
        m = _FENCE.match(line)
        if skipping:  # inside a prose directive fenced with backticks (```{note}): its text wraps, skip it
            if m and m.group(2).startswith(skipping[0]) and len(m.group(2)) >= len(skipping) \
                    and not m.group(3).strip():
                skipping = ""
            continue
        if not inside and m:
            info = m.group(3).strip()
            if info == "" or not info.startswith("{") or info.startswith(("{code", "{literalinclude")):
                inside, fence = True, m.group(2)
            else:
                skipping = m.group(2)
            continue
        if inside and m and m.group(2).startswith(fence[0]) and len(m.group(2)) >= len(fence) \
                and not m.group(3).strip():
            inside = False
            continue
        if inside and not line.lstrip().startswith(":"):   # directive options (":class: ...") are not shown
            yield n, line


def long_lines_in_notebook(path: Path, limit: int = MAX_LINE) -> list[str]:
    nb = json.loads(path.read_text())
    found = []
    for i, cell in enumerate(nb["cells"]):
        tags = set(cell.get("metadata", {}).get("tags", []))
        src = "".join(cell["source"])
        if cell["cell_type"] == "code":
            if tags & HIDDEN_TAGS or any(t.startswith("wrong:") for t in tags):
                continue
            lines = enumerate(src.splitlines(), 1)
        elif cell["cell_type"] == "markdown":
            lines = fenced_code(src)
        else:
            continue
        for n, line in lines:
            width = len(line.expandtabs(4).rstrip())
            if width > limit:
                found.append(f"{path.relative_to(ROOT)}: cell {i}, line {n}: {width} chars: {line.strip()[:60]}")
    return found


def long_lines_in_markdown(path: Path, limit: int = MAX_LINE) -> list[str]:
    found = []
    for n, line in fenced_code(path.read_text()):
        width = len(line.expandtabs(4).rstrip())
        if width > limit:
            found.append(f"{path.relative_to(ROOT)}: line {n}: {width} chars: {line.strip()[:60]}")
    return found


NOTEBOOKS = sorted([*ROOT.glob("chapters/*.ipynb"), *ROOT.glob("exercises/*.ipynb"),
                    *ROOT.glob("exercises/source/*.ipynb")])
MARKDOWN = sorted(ROOT.glob("book/**/*.md"))


def _id(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_code_fits_the_column(path):
    found = long_lines_in_notebook(path)
    assert not found, (f"{len(found)} code line(s) longer than {MAX_LINE} characters (the site's code column at "
                       "1280 px; break long calls over lines, put long comments on their own line):\n"
                       + "\n".join(found))


@pytest.mark.parametrize("path", MARKDOWN, ids=_id)
def test_markdown_code_fits_the_column(path):
    found = long_lines_in_markdown(path)
    hint = " (generated: fix the solution cells in exercises/source and run `make exercises`)" \
        if "solutions" in path.parts else ""
    assert not found, (f"{len(found)} code line(s) longer than {MAX_LINE} characters{hint}:\n" + "\n".join(found))


def test_the_lint_finds_long_lines(tmp_path, monkeypatch):
    """The lint itself: hidden cells and wrong:* cells are skipped; shown code and fenced blocks are not."""
    long = "x = " + "1" * 80
    nb = {"cells": [
        {"cell_type": "code", "metadata": {}, "source": ["ok = 1\n", long]},
        {"cell_type": "code", "metadata": {"tags": ["remove-input"]}, "source": [long]},
        {"cell_type": "code", "metadata": {"tags": ["wrong:q1"]}, "source": [long]},
        {"cell_type": "markdown", "metadata": {}, "source": [f"text {long}\n\n```python\n{long}\n```\n"]},
        {"cell_type": "markdown", "metadata": {}, "source": [f"```{{math}}\n{long}\n```\n"]}]}
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    found = [f.split(": ", 1)[1] for f in long_lines_in_notebook(path)]
    assert found[0].startswith("cell 0, line 2: 84 chars") and found[1].startswith("cell 3, line 4: 84")
    assert len(found) == 2
    md = tmp_path / "page.md"
    md.write_text(f"# T\n\n{long}\n\n:::{{admonition}} S\n:class: dropdown\n\n```python\n{long}\n```\n:::\n")
    assert [f.split(": ", 1)[1][:7] for f in long_lines_in_markdown(md)] == ["line 9:"]


def test_a_prose_directive_fenced_with_backticks_is_not_code():
    text = "```{note}\n" + "x" * 100 + "\n```\n\n| a long table row " + "y" * 90 + " |\n```python\n" + \
        "z" * 90 + "\n```\n"
    assert [n for n, _ in fenced_code(text)] == [7]
