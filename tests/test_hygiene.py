"""Repository hygiene: committed notebooks carry no outputs, each has the hidden Colab install cell,
no sys.path edits, every notebook is in the table of contents, and quiz cells follow the site's conventions."""
import ast
import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def tracked_notebooks() -> list[str]:
    try:
        return [p for p in _git("ls-files", "*.ipynb").split() if p]
    except (subprocess.CalledProcessError, FileNotFoundError):
        return []


def committed_json(path: str) -> dict:
    """The notebook as staged in git's index (what a commit holds), not the working tree copy that
    `pytest --nbmake --overwrite` fills with outputs."""
    return json.loads(_git("show", f":{path}"))


def all_notebooks() -> list[Path]:
    return sorted(p for d in ("chapters", "exercises", "exercises/source") for p in (ROOT / d).glob("*.ipynb"))


def test_there_are_notebooks():
    assert all_notebooks(), "no notebooks found under chapters/ or exercises/"


@pytest.mark.parametrize("path", tracked_notebooks())
def test_committed_notebook_has_no_outputs(path):
    nb = committed_json(path)
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path}: cells {dirty} carry outputs; run `make strip` (or install the nbstripout filter)"
    assert "widgets" not in nb.get("metadata", {}), f"{path}: committed with saved widget state"


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: p.name)
def test_notebook_has_hidden_colab_install_cell(path):
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    src = "".join(first["source"])
    assert '"google.colab" in sys.modules' in src and "%pip install" in src and "cnnkit @ git+" in src, \
        f"{path.name}: first code cell must install cnnkit in Colab"
    assert "torch" not in src.split("cnnkit @")[0].split("%pip install")[-1], "the Colab cell must not reinstall torch"
    assert "remove-cell" in first.get("metadata", {}).get("tags", []), f"{path.name}: Colab cell not tagged remove-cell"


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: p.name)
def test_no_sys_path_edits(path):
    src = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert "sys.path" not in src, f"{path.name} edits sys.path; import the installed cnnkit instead"


def test_python_sources_do_not_edit_sys_path():
    offenders = [p for p in (ROOT / "cnnkit").rglob("*.py") if "sys.path" in p.read_text()]
    assert not offenders, offenders


def test_every_chapter_notebook_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    missing = [p.name for p in (ROOT / "chapters").glob("*.ipynb") if f"chapters/{p.stem}" not in toc]
    assert not missing, f"chapters missing from _toc.yml: {missing}"


# ---------------------------------------------------------------------------------------------- quizzes
# Conventions of the site (issue 11; /work/notes/SITE_RULES.md for the chapter authors): a quiz cell shows no
# source (its source holds the answers), sits under a "Check your understanding" heading, has a prediction
# question, and its questions pass cnnkit.quiz.validate_quiz before any notebook runs.
QUIZ_CALL = re.compile(r"(?<![\w.])show_quiz\s*\(")
QUIZ_TAG = "remove-input"
QUIZ_HEADING = "Check your understanding"
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
_PREDICTION = re.compile(r"""["']kind["']\s*:\s*["']prediction["']""")


def chapter_notebooks() -> list[Path]:
    return sorted((ROOT / "chapters").glob("*.ipynb"))


def quiz_cells(path: Path) -> list[tuple[int, dict, str | None]]:
    """(cell index, cell, nearest markdown heading above it as "## text") for every code cell calling show_quiz."""
    out, heading = [], None
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            found = _HEADING.findall(src)
            if found:
                heading = f"{found[-1][0]} {found[-1][1]}"
        elif cell["cell_type"] == "code" and QUIZ_CALL.search(src):
            out.append((i, cell, heading))
    return out


def _quiz_notebooks() -> list[Path]:
    return [p for p in all_notebooks() if "source" not in p.parts]


@pytest.mark.parametrize("path", _quiz_notebooks(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_quiz_cells_never_show_their_source(path):
    """`hide-input` is not enough: it folds the source behind a "Show code" button, answers included."""
    bad = [f"cell {i}: tags {cell['metadata'].get('tags', [])}" for i, cell, _ in quiz_cells(path)
           if QUIZ_TAG not in cell["metadata"].get("tags", [])]
    assert not bad, (f"{path.name}: quiz cells without the {QUIZ_TAG!r} tag (their source, with the answers, "
                     f"shows on the site): {bad}")


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda p: p.name)
def test_every_chapter_has_a_quiz_under_the_quiz_heading(path):
    cells = quiz_cells(path)
    assert cells, f"{path.name}: no quiz (a code cell calling show_quiz)"
    bad = [f"cell {i} is under {h!r}" for i, _, h in cells
           if not (h and re.fullmatch(rf"#{{2,3}} {QUIZ_HEADING}", h))]
    assert not bad, f"{path.name}: a quiz goes under a markdown heading '## {QUIZ_HEADING}': {bad}"
    src = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
    assert f"## {QUIZ_HEADING}" in src, f"{path.name}: no '## {QUIZ_HEADING}' section"


@pytest.mark.parametrize("path", _quiz_notebooks(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_quiz_has_a_prediction_question(path):
    bad = [i for i, cell, _ in quiz_cells(path) if not _PREDICTION.search("".join(cell["source"]))]
    assert not bad, (f"{path.name}: quiz cells {bad} have no question marked \"kind\": \"prediction\" "
                     "(a 'what happens if ...' question)")


def _literal_quiz_args(src: str) -> list:
    """The question lists of the show_quiz calls in ``src`` that are plain literals (others are checked when
    the notebook runs)."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "show_quiz" \
                and node.args:
            try:
                found.append(ast.literal_eval(node.args[0]))
            except ValueError:
                pass
    return found


@pytest.mark.parametrize("path", _quiz_notebooks(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_literal_quizzes_validate_before_the_notebook_runs(path):
    from cnnkit.quiz import validate_quiz

    for i, cell, _ in quiz_cells(path):
        for questions in _literal_quiz_args("".join(cell["source"])):
            try:
                validate_quiz(questions)
            except ValueError as exc:
                pytest.fail(f"{path.name}, cell {i}: {exc}", pytrace=False)
