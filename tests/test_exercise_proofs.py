"""Proofs for every exercise source under exercises/source/, found automatically.

Per question: the solution gets full marks, the untouched student notebook runs to the end and gets zero,
and every `wrong:<question>` cell loses points on its question. Scores are read from the checker's JSON log
(CNNKIT_GRADE_LOG), never from exit codes. Also: the committed student notebooks and solutions pages equal a
fresh generation, and the generator rejects malformed sources.
"""
import functools
import os
from pathlib import Path

import nbformat
import pytest

from cnnkit.exercises import COLAB_SOURCE, Source, _strip_solutions, format_proofs, prove, read_sources, stale_files

ROOT = Path(__file__).resolve().parents[1]
SOURCES = read_sources(ROOT)
STUDENT_BUDGET_S = 30.0


# The checker draws fresh random cases at every grading run (learners, `cnnkit prove`, the instructor CLI). The
# proofs here run with one fixed seed, so that a build is repeatable; sweep other seeds with
# `CNNKIT_CHECK_SEED=N cnnkit prove SLUG` (or set CNNKIT_CHECK_SEED for this test file).
PROOF_SEED = os.environ.get("CNNKIT_CHECK_SEED", "11")


@functools.lru_cache(maxsize=None)
def proofs_for(slug: str):
    before = os.environ.get("CNNKIT_CHECK_SEED")
    os.environ["CNNKIT_CHECK_SEED"] = PROOF_SEED
    try:
        proofs = prove(next(s for s in SOURCES if s.slug == slug))
    finally:
        if before is None:
            del os.environ["CNNKIT_CHECK_SEED"]
        else:
            os.environ["CNNKIT_CHECK_SEED"] = before
    print(f"\n{format_proofs(proofs)}")
    return proofs


def find(slug, qid, kind):
    matches = [p for p in proofs_for(slug) if p.qid == qid and p.kind == kind]
    failures = [p for p in proofs_for(slug) if not p.ok and p.qid == "-"]
    assert matches, f"no {kind} proof for {slug} {qid}: {[f'{p.kind}: {p.detail}' for p in failures]}"
    return matches[0]


def cases(kind):
    out = []
    for s in SOURCES:
        for q in s.questions.values():
            if kind in ("wrong", "alt"):
                cells = q.wrong if kind == "wrong" else q.alt
                out += [pytest.param(s.slug, q.qid, f"{kind} (cell {w})", id=f"{s.slug}-{q.qid}-cell{w}")
                        for w in cells]
            else:
                out.append(pytest.param(s.slug, q.qid, kind, id=f"{s.slug}-{q.qid}"))
    return out


def test_there_are_sources():
    assert SOURCES, "no exercises/source/NN_slug.ipynb found"


def test_generated_files_are_up_to_date():
    stale = [str(p.relative_to(ROOT)) for p in stale_files(ROOT)]
    assert not stale, f"out of date: {stale}; run `.venv/bin/cnnkit exercises`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.slug)
def test_source_format(source):
    assert source.problems() == []


@pytest.mark.parametrize("slug,qid,kind", cases("solution"))
def test_solution_gets_full_marks(slug, qid, kind):
    proof = find(slug, qid, kind)
    assert proof.ok, f"{slug} {qid}: the solution got {proof.points}/{proof.max_points}: {proof.detail}"


@pytest.mark.parametrize("slug,qid,kind", cases("student"))
def test_untouched_student_notebook_gets_zero(slug, qid, kind):
    proof = find(slug, qid, kind)
    assert proof.ok, f"{slug} {qid}: the student version got {proof.points}/{proof.max_points}: {proof.detail}"


@pytest.mark.parametrize("slug,qid,kind", cases("wrong"))
def test_wrong_cell_fails_its_question(slug, qid, kind):
    proof = find(slug, qid, kind)
    assert proof.ok, f"{slug} {qid} {kind} ({proof.detail}) got full marks: the tests miss this mistake"


@pytest.mark.parametrize("slug,qid,kind", cases("alt"))
def test_valid_alternative_keeps_full_marks(slug, qid, kind):
    proof = find(slug, qid, kind)
    assert proof.ok, f"{slug} {qid} {kind}: a valid answer got {proof.points}/{proof.max_points}: {proof.detail}"


MIN_WRONG, MIN_ALT = 6, 2


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.slug)
def test_every_question_has_a_mutation_suite(source):
    """Each question is proven against >= 6 known-wrong answers and >= 2 valid alternatives (issue 9)."""
    short = [f"{q.qid}: {len(q.wrong)} wrong, {len(q.alt)} alt" for q in source.questions.values()
             if len(q.wrong) < MIN_WRONG or len(q.alt) < MIN_ALT]
    assert not short, f"{source.slug} needs >= {MIN_WRONG} wrong: and >= {MIN_ALT} alt: cells per question: {short}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.slug)
def test_every_question_declares_what_it_forbids(source):
    from cnnkit.checks import load_exercise
    exercise = load_exercise(source.slug)
    # Every question grades something the learner writes by hand, so each names the shortcuts it rules out
    # (the library function that computes the answer, cnnkit.ops, autograd...).
    tensor_questions = [q for q in exercise.questions.values() if not q.forbid]
    assert not tensor_questions, f"{source.slug}: questions without forbid=: {[q.qid for q in tensor_questions]}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.slug)
def test_student_notebook_runs_within_budget(source):
    detail = next(p.detail for p in proofs_for(source.slug) if p.kind == "student")
    seconds = float(detail.split(" in ")[1].split(" s")[0])
    assert seconds < STUDENT_BUDGET_S, f"{source.slug}: the student notebook's cells took {seconds:.1f} s"


# ---------------------------------------------------------------- the generator, and proofs that can fail

SRC01 = ROOT / "exercises" / "source" / "01_convolution.ipynb"


def test_strip_solutions_keeps_indentation_and_surroundings():
    code = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n"
    assert _strip_solutions(code, keep=False) == \
        "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert _strip_solutions(code, keep=True) == "def f(x):\n    '''doc'''\n    y = x + 1\n    return y\n"


def test_student_notebook_is_clean_and_deterministic():
    source = Source.read(SRC01)
    text = source.student()
    assert text == source.student()
    nb = nbformat.reads(text, as_version=4)
    assert nb.metadata["cnnkit"]["exercise"] == "01_convolution"
    assert all(c.get("id") for c in nb.cells)
    assert [c["id"] for c in nb.cells] == [c["id"] for i, c in enumerate(source.nb.cells)
                                           if source.kind(i) not in ("wrong", "alt")]
    joined = "\n".join(c.source for c in nb.cells)
    assert "### BEGIN SOLUTION" not in joined and "# Mistake:" not in joined and "wrong:" not in text
    stubs = sum(c.source.count("raise NotImplementedError()") for c in nb.cells if c.cell_type == "code")
    markers = sum(c.source.count("### BEGIN SOLUTION") for c in source.nb.cells if c.cell_type == "code")
    assert stubs == markers > 0  # one per solution block
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == COLAB_SOURCE and first.metadata["tags"] == ["remove-cell"]


def test_solutions_page_folds_every_solution():
    source = Source.read(SRC01)
    page = source.solutions_page()
    assert page.startswith("# Solutions 1: Convolution\n")
    assert page.count(":::{admonition} Solution\n:class: dropdown") == sum(len(q.solutions)
                                                                           for q in source.questions.values())
    assert page.count(":::{admonition} Common mistakes") == len(source.questions)
    assert "### BEGIN SOLUTION" not in page and "google.colab" not in page
    assert "{doc}`exercise notebook </exercises/01_convolution>`" in page


def _broken_copy(tmp_path, edit) -> Source:
    nb = nbformat.read(SRC01, as_version=4)
    edit(nb)
    folder = tmp_path / "exercises" / "source"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "01_convolution.ipynb")
    return Source.read(folder / "01_convolution.ipynb")


def _cell(nb, what):
    """A cell of chapter 1's source found by its role, so these tests survive edits to the exercise:
    ``"q1-wrong"`` (its first wrong cell), ``"q2-solution"``, ``"q3-check"``, ``"q4-wrongs"`` (all of them)."""
    source = Source("01_convolution.ipynb", nb, Source.read(SRC01).questions)
    qid, kind = what.split("-")
    q = source.questions[qid]
    if kind == "wrongs":
        return [nb.cells[i] for i in q.wrong]
    index = {"wrong": q.wrong[0], "solution": q.solutions[0], "check": q.check}[kind]
    return nb.cells[index]


@pytest.mark.parametrize("edit,problem", [
    (lambda nb: nb.cells.pop(1), "the first code cell must be exactly the Colab install cell"),
    (lambda nb: _cell(nb, "q1-wrong").metadata.update(tags=["wrong:q2"]) or None,
     "must come after the check cell of q2"),
    (lambda nb: [nb.cells.remove(c) for c in _cell(nb, "q4-wrongs")[1:]],
     "q4: needs at least 2 cells tagged wrong:q4, found 1"),
    (lambda nb: setattr(_cell(nb, "q2-solution"), "source", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
     "put ### BEGIN SOLUTION inside a function body"),
    (lambda nb: setattr(_cell(nb, "q3-check"), "source", 'check("q9", conv2d_vectorised)'),
     "questions in the notebook"),
    (lambda nb: setattr(_cell(nb, "q1-wrong"), "source", "def conv_output_size(*a): return 0"),
     "must start with a '# Mistake: ...' comment"),
])
def test_malformed_sources_are_rejected(tmp_path, edit, problem):
    source = _broken_copy(tmp_path, edit)
    assert any(problem in p for p in source.problems()), source.problems()


def test_a_wrong_cell_the_tests_miss_makes_its_proof_fail(tmp_path):
    def harmless_mistake(nb):
        solution = _cell(nb, "q1-solution").source.replace("### BEGIN SOLUTION\n", "")
        _cell(nb, "q1-wrong").source = "# Mistake: none at all, so the proof must fail\n" + \
            solution.replace("### END SOLUTION", "")
    source = _broken_copy(tmp_path, harmless_mistake)
    proofs = prove(source, student=False)
    failed = [(p.qid, p.kind) for p in proofs if not p.ok]
    assert failed == [("q1", f"wrong (cell {source.questions['q1'].wrong[0]})")], format_proofs(proofs)
