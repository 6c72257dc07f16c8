"""The instructor CLI on real submissions: full marks, zero, one that crashes midway with a deleted cell, one that
hangs, one whose hang swallows interrupts; and the submissions it cannot grade (exit status 2)."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cnnkit.exercises import Source
from cnnkit.cli import main as cli_main
from cnnkit.grade import GRADED, NOT_GRADED, main

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "exercises" / "source" / "01_convolution.ipynb"
STUDENT = ROOT / "exercises" / "01_convolution.ipynb"


# swallows KeyboardInterrupt: the interrupt lands in the inner loop, inside the try, and the outer loop restarts it
STUBBORN = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"


def solved() -> nbformat.NotebookNode:
    """The student notebook with the source's solutions filled in (what a perfect learner submits)."""
    source = Source.read(SOURCE)
    by_id = {c["id"]: c for c in source.nb.cells}
    nb = nbformat.read(STUDENT, as_version=4)
    for cell in nb.cells:
        if "YOUR CODE HERE" in cell.source:
            cell.source = by_id[cell["id"]].source
    return nb


def code_index(nb, cell_id):
    return next(i for i, c in enumerate(nb.cells) if c["id"] == cell_id)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("submissions")
    nbformat.write(solved(), d / "full.ipynb")
    nbformat.write(nbformat.read(STUDENT, as_version=4), d / "zero.ipynb")

    crash = solved()
    del crash.cells[code_index(crash, "q2-solution")]  # the learner deleted a cell
    crash.cells.insert(code_index(crash, "q1-check") + 1, nbformat.v4.new_code_cell("1 / 0  # crashes midway"))
    nbformat.write(crash, d / "crash.ipynb")

    # small notebooks (no torch import in the learner's cells, so a short per-cell limit is safe under load)
    q1 = "def conv_output_size(size, kernel, padding=0, stride=1, dilation=1):\n" \
         "    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1"
    q4 = "def conv_params(c_in, c_out, k, bias=True):\n    return c_out * c_in * k * k + (c_out if bias else 0)\n" \
         "def dense_params(n_in, n_out, bias=True):\n    return n_in * n_out + (n_out if bias else 0)"
    for name, loop in [("hang", "import time\nwhile True:\n    time.sleep(0.05)"),
                       ("stubborn", STUBBORN)]:
        nb = nbformat.v4.new_notebook(metadata={"cnnkit": {"exercise": "01_convolution"}})
        nb.cells = [nbformat.v4.new_code_cell(src) for src in (q1, loop, q4)]
        nbformat.write(nb, d / f"{name}.ipynb")

    (d / "not_json.ipynb").write_text("this is not a notebook")
    (d / "not_notebook.ipynb").write_text(json.dumps({"hello": "world"}))
    other = nbformat.read(STUDENT, as_version=4)
    other.metadata["cnnkit"] = {"exercise": "07_nothing"}
    nbformat.write(other, d / "unknown.ipynb")
    return d


def grade(folder, name, *extra):
    out = folder / f"{name}.json"
    code = main([str(folder / f"{name}.ipynb"), "--json", str(out), *extra])
    return code, json.loads(out.read_text())


def points(report):
    return {q: (r["points"], r["max_points"]) for q, r in report["questions"].items()}


def test_full_marks(folder, capsys):
    code, report = grade(folder, "full")
    assert code == GRADED and report["status"] == "graded" and report["exercise"] == "01_convolution"
    assert report["points"] == report["max_points"] == 12 and report["problems"] == []
    assert "total: 12/12 points" in capsys.readouterr().out


def test_untouched_student_notebook_scores_zero(folder):
    code, report = grade(folder, "zero")
    assert code == GRADED and report["points"] == 0
    assert all(p == 0 for p, _ in points(report).values())
    assert "raised NotImplementedError" in report["questions"]["q3"]["tests"][0]["message"]


def test_crash_midway_and_a_deleted_cell_still_get_a_report(folder):
    code, report = grade(folder, "crash")
    assert code == GRADED
    assert points(report) == {"q1": (3, 3), "q2": (0, 3), "q3": (4, 4), "q4": (2, 2)}
    assert "`conv2d_loops` is not defined in the notebook" in report["questions"]["q2"]["tests"][0]["message"]
    assert [(p["kind"], p["message"], p["code"]) for p in report["problems"]] == [
        ("error", "ZeroDivisionError: division by zero", "1 / 0  # crashes midway"),
        ("error", "NameError: name 'conv2d_loops' is not defined", 'check("q2", conv2d_loops)')]


def test_a_hanging_cell_is_interrupted_and_named(folder):
    code, report = grade(folder, "hang", "--cell-timeout", "2")
    assert code == GRADED
    assert points(report) == {"q1": (3, 3), "q2": (0, 3), "q3": (0, 4), "q4": (2, 2)}
    assert [(p["cell"], p["kind"]) for p in report["problems"]] == [(1, "timeout")]


def test_code_that_swallows_interrupts_is_killed_and_named(folder):
    code, report = grade(folder, "stubborn", "--cell-timeout", "2")
    assert code == GRADED and report["points"] == 0
    assert [(p["cell"], p["kind"]) for p in report["problems"]] == [(1, "timeout"), (2, "dead")]
    assert "kernel died or hung" in report["questions"]["q1"]["tests"][0]["message"]


@pytest.mark.parametrize("name,args,message", [
    ("not_json", [], "is not a Jupyter notebook (not JSON"),
    ("not_notebook", [], "is not a Jupyter notebook (no list of cells)"),
    ("unknown", [], "unknown exercise: no checks for exercise '07_nothing'"),
    ("zero", ["--exercise", "02_padding_stride"], "wrong exercise: this notebook is '01_convolution'"),
    ("missing", [], "cannot read"),
])
def test_cannot_grade(folder, name, args, message, capsys):
    code, report = grade(folder, name, *args)
    assert code == NOT_GRADED and report["status"] == "error"
    assert message in report["error"] and message in capsys.readouterr().out


def test_module_entry_point_exit_status(folder, tmp_path):
    out = tmp_path / "r.json"
    ok = subprocess.run([sys.executable, "-m", "cnnkit.grade", str(folder / "zero.ipynb"), "--json", str(out)],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(out.read_text())["points"] == 0 and "total: 0/12 points" in ok.stdout


def test_cnnkit_grade_subcommand(folder, capsys):
    assert cli_main(["grade", str(folder / "not_json.ipynb")]) == NOT_GRADED
    assert "could not grade" in capsys.readouterr().out
