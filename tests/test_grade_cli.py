"""The instructor CLI on real submissions: full marks, zero, a crash midway with a deleted cell, hangs in a cell
and in a graded call, code that swallows interrupts; the submissions it cannot grade (exit status 2); and the
attacks of issue 9, each of which must leave the untouched student notebook at zero, be named in the JSON report
and leave the package unchanged.

The "installed" package every grading run protects is a temporary copy of ``cnnkit`` (``--package-root``), so
the real tree is never at risk; each run checks that copy's hashes before and after.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cnnkit.cli import main as cli_main
from cnnkit.exercises import Source
from cnnkit.grade import GRADED, NOT_GRADED, main
from cnnkit.grading import load_exercise

ROOT = Path(__file__).resolve().parents[1]
SLUG = "02_padding_stride"
SOURCE = ROOT / "exercises" / "source" / f"{SLUG}.ipynb"
STUDENT = ROOT / "exercises" / f"{SLUG}.ipynb"
CHECKS = f"checks/ch{SLUG[:2]}.py"

# swallows KeyboardInterrupt: the interrupt lands in the inner loop, inside the try, and the outer loop restarts it
STUBBORN = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"


def source() -> Source:
    return Source.read(SOURCE)


def student() -> nbformat.NotebookNode:
    return nbformat.read(STUDENT, as_version=4)


def solved() -> nbformat.NotebookNode:
    """The student notebook with the source's solutions filled in (what a perfect learner submits)."""
    by_id = {c["id"]: c for c in source().nb.cells}
    nb = student()
    for cell in nb.cells:
        if "YOUR CODE HERE" in cell.source:
            cell.source = by_id[cell["id"]].source
    return nb


def index_of(nb, cell_id):
    return next(i for i, c in enumerate(nb.cells) if c["id"] == cell_id)


def solution_sources(qid):
    src = source()
    return [src.nb.cells[i].source for i in src.questions[qid].solutions]


def setup_source():
    return next(c.source for c in student().cells if c.cell_type == "code" and "Checker(" in c.source)


def small(*sources):
    nb = nbformat.v4.new_notebook(metadata={"cnnkit": {"exercise": SLUG}})
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def with_cell(nb, code, after=None):
    """``nb`` with a code cell added after the cell ``after`` (an id), or at the end."""
    at = len(nb.cells) if after is None else index_of(nb, after) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(code))
    return nb


def hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A copy of the package that stands for the installed one."""
    root = tmp_path_factory.mktemp("site-packages") / "cnnkit"
    shutil.copytree(ROOT / "cnnkit", root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("submissions")


@pytest.fixture(scope="module")
def grade(folder, package):
    """``grade(name, notebook, *cli_args) -> (exit status, report)``; checks the package is unchanged."""
    def run(name, nb, *extra):
        path = folder / f"{name}.ipynb"
        if nb is not None:
            nbformat.write(nb, path)
        out = folder / f"{name}.json"
        before = hashes(package)
        code = main([str(path), "--json", str(out), "--package-root", str(package), *extra])
        assert hashes(package) == before, "the grading run left the protected package changed"
        return code, json.loads(out.read_text())
    return run


def points(report):
    return {q: (r["points"], r["max_points"]) for q, r in report["questions"].items()}


def tampered(report):
    return {(t["kind"], t["name"]) for t in report["tampering"]}


QUESTIONS = list(load_exercise(SLUG).questions)
FIRST, SECOND, LAST = QUESTIONS[0], QUESTIONS[1], QUESTIONS[-1]


# ---------------------------------------------------------------- scores, crashes and hangs

def test_full_marks_in_a_sandboxed_kernel(grade, folder, package, capsys):
    spy = folder / "spy.json"  # the kernel can write outside its folders: the CLI is not a sandbox (README)
    nb = with_cell(solved(), "import os, json, cnnkit\n"
                   f"json.dump({{'cwd': os.getcwd(), 'files': os.listdir('.'), 'home': os.environ.get('HOME'),\n"
                   "           'env': sorted(k for k in os.environ if k.startswith('CNNKIT')),\n"
                   f"           'cnnkit': cnnkit.__file__}}, open({str(spy)!r}, 'w'))")
    code, report = grade("full", nb)
    assert code == GRADED and report["status"] == "graded" and report["exercise"] == SLUG
    assert report["points"] == report["max_points"] > 0 and report["problems"] == []
    assert report["tampering"] == [], report["tampering"]
    assert report["check_cells"] == [], report["check_cells"]
    assert report["calls"] > 0 and isinstance(report["seed"], int)
    assert report["package"]["root"] == str(package) and len(report["package"]["sha256"]) == 64
    assert f"total: {report['max_points']}/{report['max_points']} points" in capsys.readouterr().out
    seen = json.loads(spy.read_text())
    assert seen["files"] == ["full.ipynb"] and Path(seen["cwd"]) != folder
    assert seen["home"] != os.environ.get("HOME") and Path(seen["home"]).parent == Path(seen["cwd"]).parent
    assert seen["env"] == ["CNNKIT_DEFER_CHECKS"]
    lib = Path(seen["cnnkit"]).parent
    assert lib.parent == Path(seen["cwd"]).parent / "lib" and not lib.exists()  # pristine copy, then removed


def test_untouched_student_notebook_scores_zero_through_the_module_entry_point(folder, package):
    nbformat.write(student(), folder / "zero.ipynb")
    out = folder / "zero.json"
    before = hashes(package)
    ok = subprocess.run([sys.executable, "-m", "cnnkit.grade", str(folder / "zero.ipynb"), "--json", str(out),
                         "--package-root", str(package)], capture_output=True, text=True, timeout=300)
    assert ok.returncode == GRADED, ok.stdout + ok.stderr
    report = json.loads(out.read_text())
    assert report["points"] == 0 and all(p == 0 for p, _ in points(report).values())
    assert report["tampering"] == [], report["tampering"]
    assert report["check_cells"] == [], report["check_cells"]
    assert hashes(package) == before
    assert "raised NotImplementedError" in report["questions"][FIRST]["tests"][0]["message"]
    assert f"total: 0/{report['max_points']} points" in ok.stdout


def test_crash_midway_and_a_deleted_cell_still_get_a_report(grade):
    nb = solved()
    src = source()
    deleted = src.nb.cells[src.questions[SECOND].solutions[0]]["id"]
    del nb.cells[index_of(nb, deleted)]  # the learner deleted a cell
    nb = with_cell(nb, "1 / 0  # crashes midway", after=f"{FIRST}-check")
    code, report = grade("crash", nb)
    assert code == GRADED
    got = points(report)
    assert got[SECOND][0] == 0 and all(p == m for q, (p, m) in got.items() if q != SECOND), report["problems"]
    assert "is not defined in the notebook" in report["questions"][SECOND]["tests"][0]["message"]
    kinds = [(p["kind"], p["message"].split(":")[0], p["code"]) for p in report["problems"]]
    assert kinds[0] == ("error", "ZeroDivisionError", "1 / 0  # crashes midway")
    assert kinds[1][:2] == ("error", "NameError") and kinds[1][2].startswith(f'check("{SECOND}"')


def test_a_hanging_cell_is_interrupted_and_named(grade):
    nb = small(setup_source(), *solution_sources(FIRST), "import time\nwhile True:\n    time.sleep(0.05)",
               *solution_sources(LAST))
    code, report = grade("hang", nb, "--cell-timeout", "2")
    assert code == GRADED
    got = points(report)
    assert got[FIRST][0] == got[FIRST][1] and got[LAST][0] == got[LAST][1] and got[SECOND][0] == 0
    assert [p["kind"] for p in report["problems"]] == ["timeout"]


def test_code_that_swallows_interrupts_is_killed_and_named(grade):
    nb = small(setup_source(), *solution_sources(FIRST), STUBBORN, *solution_sources(LAST))
    code, report = grade("stubborn", nb, "--cell-timeout", "2")
    assert code == GRADED and report["points"] == 0
    assert [p["kind"] for p in report["problems"]] == ["timeout", "dead"]
    assert "kernel died or hung" in report["questions"][FIRST]["tests"][0]["message"]


def test_functions_that_hang_when_graded_are_interrupted_or_killed(grade, monkeypatch):
    """The first question's function loops (an interrupt stops it), the last one's swallows interrupts (the
    kernel is killed): each costs its own test, the questions between are graded normally."""
    monkeypatch.setenv("CNNKIT_CHECK_TIMEOUT", "5")  # the questions between must fit too
    first, last = load_exercise(SLUG).questions[FIRST].names, load_exercise(SLUG).questions[LAST].names
    loop = "\n".join(f"def {n}(*args, **kwargs):\n    while True:\n        pass" for n in first)
    stubborn = "\n".join(f"def {n}(*args, **kwargs):\n" + textwrap_indent(STUBBORN) for n in last)
    middle = [s for q in QUESTIONS[1:-1] for s in solution_sources(q)]
    code, report = grade("call_hangs", small(setup_source(), loop, *middle, stubborn))
    assert code == GRADED
    got = points(report)
    assert got[FIRST][0] == 0 and got[LAST][0] == 0
    assert all(got[q][0] == got[q][1] for q in QUESTIONS[1:-1])
    assert "took longer than 5 s" in report["questions"][FIRST]["tests"][0]["message"]
    assert "took longer than 5 s" in report["questions"][LAST]["tests"][0]["message"]
    assert [p["kind"] for p in report["problems"]] == ["dead"]  # the stubborn call got the kernel killed


def textwrap_indent(code):
    return "\n".join("    " + line for line in code.split("\n"))


@pytest.mark.parametrize("name,args,message", [
    ("not_json", [], "is not a Jupyter notebook (not JSON"),
    ("not_notebook", [], "is not a Jupyter notebook (no list of cells)"),
    ("unknown", [], "unknown exercise: no checks for exercise '97_nothing'"),
    ("wrong_exercise", ["--exercise", "03_pooling" if SLUG != "03_pooling" else "02_padding_stride"],
     f"wrong exercise: this notebook is '{SLUG}'"),
    ("missing", [], "cannot read"),
])
def test_cannot_grade(grade, folder, name, args, message, capsys):
    (folder / "not_json.ipynb").write_text("this is not a notebook")
    (folder / "not_notebook.ipynb").write_text(json.dumps({"hello": "world"}))
    other = student()
    other.metadata["cnnkit"] = {"exercise": "97_nothing"}
    nbformat.write(other, folder / "unknown.ipynb")
    nbformat.write(student(), folder / "wrong_exercise.ipynb")
    code, report = grade(name, None, *args)
    assert code == NOT_GRADED and report["status"] == "error"
    assert message in report["error"] and message in capsys.readouterr().out


def test_cnnkit_grade_subcommand(folder, capsys):
    (folder / "not_json.ipynb").write_text("this is not a notebook")
    assert cli_main(["grade", str(folder / "not_json.ipynb")]) == NOT_GRADED
    assert "could not grade" in capsys.readouterr().out


# ---------------------------------------------------------------- the attacks of issue 9

FORGE = """
for _q in EXERCISE.questions.values():
    for _t in _q.tests:
        _t.func = lambda *args, **kwargs: None  # every test passes
"""


def test_rewriting_the_installed_checks_is_named_undone_and_useless(grade, package):
    """A cell rewrites the installed tests (and the copy the kernel imports), adds files, plants a .pyc; the
    first graded function rewrites the grading module while the tests run."""
    first = load_exercise(SLUG).questions[FIRST].names[0]
    attack = "\n".join([
        "import pathlib, cnnkit",
        f"for root in [pathlib.Path({str(package)!r}), pathlib.Path(cnnkit.__file__).parent]:",
        f"    for target in {sorted({CHECKS, 'checks/ch01.py'})!r}:",
        "        (root / target).write_text((root / target).read_text() + " + repr(FORGE) + ")",
        "    (root / 'checks' / 'ch99.py').write_text('EXERCISE = None')",
        "    (root / '__pycache__').mkdir(exist_ok=True)",
        "    (root / '__pycache__' / 'grading.cpython-311.pyc').write_bytes(b'forged')",
        f"def {first}(*args, **kwargs):",
        f"    g = pathlib.Path({str(package)!r}) / 'grading.py'",
        "    g.write_text(g.read_text() + '\\n# forged while graded\\n')",
        "    raise NotImplementedError()",
    ])
    code, report = grade("rewrite_checks", with_cell(student(), attack))
    assert code == GRADED and report["points"] == 0
    names = tampered(report)
    assert {("installed package", CHECKS), ("installed package", "checks/ch01.py"),
            ("installed package", "checks/ch99.py"),
            ("installed package", "__pycache__/grading.cpython-311.pyc"), ("installed package", "grading.py"),
            ("pristine copy", CHECKS)} <= names, names
    assert any("restored" in t["detail"] for t in report["tampering"] if t["name"] == CHECKS)


DISPLAY = """
import IPython.display, IPython.core.display_functions, builtins
_real_display = IPython.display.display
def _forged_display(*objs, **kwargs):
    fixed = []
    for obj in objs:
        if isinstance(obj, dict):
            obj = {k: (dict(v, points=v.get('max_points', 0)) if isinstance(v, dict) else v) for k, v in obj.items()}
        fixed.append(obj)
    return _real_display(*fixed, **kwargs)
IPython.display.display = _forged_display
IPython.core.display_functions.display = _forged_display
builtins.display = _forged_display
get_ipython().display_pub.publish = lambda *a, **k: None
"""


def test_patching_the_display_hooks_is_named_and_useless(grade):
    code, report = grade("display", with_cell(student(), DISPLAY, after="setup"))
    assert code == GRADED and report["points"] == 0
    names = {n for _, n in tampered(report)}
    assert {"IPython.display.display", "IPython.core.display_functions.display", "builtins.display",
            "shell.display_pub.publish"} <= names, names


def test_redefining_check_is_named_and_useless(grade):
    nb = with_cell(student(), "def check(*args):\n    print('✅ all tests passed')", after="setup")
    code, report = grade("redefine_check", nb)
    assert code == GRADED and report["points"] == 0
    names = tampered(report)
    assert ("notebook", "check") in names and ("kernel", "check") in names, names


MONKEYPATCH = """
import sys, torch, cnnkit.grading, cnnkit.checks
full = lambda slug, ns, *a, **k: {'points': 99, 'max_points': 99, 'questions': {}}
cnnkit.grading.grade_namespace = full
cnnkit.grading.Checker.__call__ = lambda self, *a: print('✅')
cnnkit.checks.call = lambda fn, *args, **kwargs: None
sys.setprofile = lambda *a: None
torch.overrides.TorchFunctionMode.__enter__ = lambda self: self
"""


def test_monkeypatching_the_grading_modules_and_the_guard_machinery_is_named_and_useless(grade):
    code, report = grade("monkeypatch", with_cell(student(), MONKEYPATCH, after="setup"))
    assert code == GRADED and report["points"] == 0
    names = {n for _, n in tampered(report)}
    assert {"cnnkit.grading.grade_namespace", "cnnkit.grading.Checker.__call__", "cnnkit.checks.call",
            "sys.setprofile", "torch.overrides.TorchFunctionMode.__enter__"} <= names, names


def test_deleted_and_edited_check_cells_are_named(grade):
    nb = student()
    del nb.cells[index_of(nb, f"{FIRST}-check")]
    nb.cells[index_of(nb, f"{SECOND}-check")].source = f'check("{SECOND}", print)'
    code, report = grade("check_cells", nb)
    assert code == GRADED and report["points"] == 0
    got = {(c["question"], c["change"]) for c in report["check_cells"]}
    assert got == {(FIRST, "deleted"), (SECOND, "edited")}


def test_a_package_root_that_is_not_cnnkit_cannot_grade(folder, tmp_path, capsys):
    nbformat.write(student(), folder / "zero_again.ipynb")
    code = main([str(folder / "zero_again.ipynb"), "--package-root", str(tmp_path)])
    assert code == NOT_GRADED and "it has no grade_runner.py" in capsys.readouterr().out
