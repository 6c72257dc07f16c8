"""The exercise checker: ``check("q1", my_function)`` runs that question's tests and prints ✅/❌.

In a learner's notebook::

    from cnnkit.grading import Checker
    check = Checker("01_convolution")
    check("q1", conv_output_size)      # functions are passed explicitly; globals are never read

The tests live in ``cnnkit/checks/chNN.py`` (see ``exercises/README.md``), declared with
:class:`Exercise` and the assertion helpers below. ``check()`` never raises unless ``CNNKIT_STRICT=1``;
it catches every exception of the learner's code, stops runaway code with a timeout, and reports
wrong types, shapes, dtypes, devices and in-place changes of the inputs.
"""
from __future__ import annotations

import json
import os
import secrets
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .checks.guard import prepare
from .checks import (_CONTEXT, CheckFailed, LearnerError, Rules, TimedOut, call, count_steps, count_torch_ops,
                     describe, expect_call, expect_device, expect_equal, expect_tensor, explain_exception, randint,
                     rng, run_with_timeout)

__all__ = ["Checker", "Exercise", "Question", "CheckFailed", "LearnerError", "TimedOut", "TestResult",
           "QuestionResult", "call", "count_steps", "count_torch_ops", "describe", "expect_call", "expect_device",
           "expect_equal", "expect_tensor", "grade_namespace", "load_exercise", "new_seed", "randint", "rng",
           "run_question"]

DEFAULT_TIMEOUT = 10.0  # seconds per test


@dataclass
class Test:
    """One graded test: ``func(*learner_functions)`` passes by returning, fails by raising."""
    name: str
    points: int
    func: Callable[..., Any]
    timeout: float | None = None


@dataclass
class Question:
    """A question: an id (``q1``), the names of the functions it grades, and its tests."""
    qid: str
    names: tuple[str, ...]
    title: str = ""
    tests: list[Test] = field(default_factory=list)
    forbid: dict[str, str] = field(default_factory=dict)  # forbidden name -> advice (see checks/guard.py)

    @property
    def rules(self) -> Rules:
        return Rules(self.qid, dict(self.forbid))

    @property
    def max_points(self) -> int:
        return sum(t.points for t in self.tests)

    def test(self, name: str, points: int = 1, timeout: float | None = None) -> Callable:
        """Decorator declaring a test worth ``points`` (a positive int)."""
        if isinstance(points, bool) or not isinstance(points, int) or points < 1:
            raise ValueError(f"test {name!r} of {self.qid}: points must be a positive int, got {points!r}")
        if any(t.name == name for t in self.tests):
            raise ValueError(f"{self.qid} already has a test named {name!r}; give each test its own name")

        def register(func: Callable) -> Callable:
            self.tests.append(Test(name, points, func, timeout))
            return func
        return register


@dataclass
class Exercise:
    """All questions of one chapter's exercise notebook, e.g. ``Exercise("01_convolution", title=...)``."""
    slug: str
    title: str = ""
    questions: dict[str, Question] = field(default_factory=dict)

    def question(self, qid: str, *names: str, title: str = "",
                 forbid: dict[str, str] | list[str] | tuple[str, ...] = ()) -> Question:
        """Declare question ``qid`` (``q1``, ``q2``...) graded on the learner's functions ``names``.

        ``forbid`` names what the learner's code may not use while it is graded, each with optional advice:
        ``{"torch.nn.functional.conv2d": "slide the window yourself", "autograd": ""}``: dotted names of
        functions, classes or modules, ``"autograd"``, or ``"aten.<op>"`` (see :mod:`cnnkit.checks.guard`).
        """
        if not (qid.startswith("q") and qid[1:].isdigit()):
            raise ValueError(f"question ids look like 'q1', 'q2'...; got {qid!r}")
        if qid in self.questions:
            raise ValueError(f"{self.slug}: question {qid} is declared twice")
        if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise ValueError(f"{qid}: name the functions it grades, e.g. question({qid!r}, 'conv2d_loops')")
        rules = dict.fromkeys(forbid, "") if isinstance(forbid, (list, tuple)) else dict(forbid)
        for name in rules:
            if not isinstance(name, str) or not (name == "autograd" or name.replace(".", "").replace("_", "")
                                                 .isalnum()):
                raise ValueError(f"{qid}: forbid names look like 'torch.nn.functional.conv2d', 'numpy.pad', "
                                 f"'cnnkit.ops', 'aten.convolution' or 'autograd'; got {name!r}")
        self.questions[qid] = Question(qid, tuple(names), title, forbid=rules)
        return self.questions[qid]

    @property
    def max_points(self) -> int:
        return sum(q.max_points for q in self.questions.values())


def load_exercise(slug: str) -> Exercise:
    """The :class:`Exercise` declared in ``cnnkit/checks/chNN.py`` for ``slug`` (``NN_name``)."""
    from .checks import load_exercise as _load
    return _load(slug)


@dataclass
class TestResult:
    name: str
    points: int
    max_points: int
    passed: bool
    message: str = ""
    seconds: float = 0.0


@dataclass
class QuestionResult:
    exercise: str
    question: str
    title: str
    points: int
    max_points: int
    tests: list[TestResult]
    seed: int | None = None  # the seed of the randomised cases (CNNKIT_CHECK_SEED=seed repeats them)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _env_timeout() -> float | None:
    value = os.environ.get("CNNKIT_CHECK_TIMEOUT")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _fail_all(exercise: str, q: Question, message: str) -> QuestionResult:
    tests = [TestResult(t.name, 0, t.points, False, message) for t in q.tests]
    return QuestionResult(exercise, q.qid, q.title, 0, q.max_points, tests)


def _argument_problem(q: Question, fns: tuple) -> str | None:
    wanted = ", ".join(q.names)
    if len(fns) != len(q.names):
        return (f"check({q.qid!r}, ...) needs {len(q.names)} function(s), in this order: {wanted}; "
                f"got {len(fns)}. Write check({q.qid!r}, {wanted}).")
    for name, fn in zip(q.names, fns):
        if not callable(fn):
            return (f"`{name}` should be a function but is {describe(fn)}: did you overwrite the name, or "
                    f"pass the result of calling it? Re-run the cell that defines `{name}`.")
    return None


def new_seed() -> int:
    """The seed of a grading run: ``CNNKIT_CHECK_SEED`` if set (to repeat a run), else a fresh random one."""
    value = os.environ.get("CNNKIT_CHECK_SEED", "").strip()
    if value:
        try:
            return int(value)
        except ValueError:
            print(f"(ignoring CNNKIT_CHECK_SEED={value!r}: not an integer)")
    return secrets.randbelow(10**6)


def run_question(exercise: Exercise, qid: str, fns: tuple, timeout: float | None = None,
                 seed: int | None = None) -> QuestionResult:
    """Run every test of ``qid`` on the learner's functions ``fns``; never raises.

    ``seed`` drives the randomised cases (:func:`rng`); by default a fresh one per call.
    """
    q = exercise.questions[qid]
    seed = new_seed() if seed is None else seed
    try:
        prepare(q.rules)  # one-time imports, outside the tests' time limits
    except Exception:  # noqa: BLE001 - a failed warm-up only costs time later
        pass
    problem = _argument_problem(q, fns)
    if problem:
        return _fail_all(exercise.slug, q, problem)
    results: list[TestResult] = []
    interrupted = ""  # why the remaining tests are skipped, if they are
    for t in q.tests:
        if interrupted:  # after an interrupt or a timeout, give feedback fast instead of waiting again
            results.append(TestResult(t.name, 0, t.points, False, f"not run: {interrupted}"))
            continue
        limit = timeout or _env_timeout() or t.timeout or DEFAULT_TIMEOUT
        start = time.perf_counter()
        token = _CONTEXT.set({"rules": q.rules, "seed": seed, "qid": qid, "test": t.name})
        try:
            run_with_timeout(lambda: t.func(*fns), limit)
            passed, message = True, ""
        except KeyboardInterrupt:
            passed, message, interrupted = False, "interrupted (KeyboardInterrupt)", "the check was interrupted"
        except TimedOut as exc:
            passed, message = False, f"took longer than {limit:g} s: is there an endless loop?{exc.note}"
            interrupted = "an earlier test ran out of time; fix that first"
        except BaseException as exc:  # noqa: BLE001 - the learner's code may raise anything
            passed, message = False, explain_exception(exc)
        finally:
            _CONTEXT.reset(token)
        results.append(TestResult(t.name, t.points if passed else 0, t.points, passed, message,
                                  round(time.perf_counter() - start, 4)))
    return QuestionResult(exercise.slug, qid, q.title, sum(r.points for r in results), q.max_points, results,
                          seed)


def _strict() -> bool:
    return os.environ.get("CNNKIT_STRICT", "").strip().lower() in {"1", "true", "yes", "on"}


def _log(result: QuestionResult) -> None:
    path = os.environ.get("CNNKIT_GRADE_LOG")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
    except OSError as exc:
        print(f"(could not write the score to CNNKIT_GRADE_LOG={path}: {exc})")


class Checker:
    """``check = Checker("01_convolution")``; then ``check("q1", conv_output_size)`` in each check cell.

    Keeps the latest result of every question in ``check.results`` and prints a running score.
    """

    def __init__(self, exercise: str, *, timeout: float | None = None) -> None:
        self.slug = exercise
        self.timeout = timeout
        self.results: dict[str, QuestionResult] = {}
        self.error: str | None = None
        try:
            self.exercise: Exercise | None = load_exercise(exercise)
        except Exception as exc:  # noqa: BLE001 - never raise in a learner's notebook
            self.exercise, self.error = None, str(exc)
            print(f"❌ cannot load the checks for {exercise!r}: {exc}")
            if _strict():
                raise

    @property
    def points(self) -> int:
        return sum(r.points for r in self.results.values())

    @property
    def max_points(self) -> int:
        return self.exercise.max_points if self.exercise else 0

    def __call__(self, qid: str, *functions: Callable) -> None:
        if os.environ.get("CNNKIT_DEFER_CHECKS") == "1":
            print(f"⏭ {qid}: not checked here; the instructor's grader checks it at the end.")
            return
        if self.exercise is None:
            print(f"❌ {qid}: no checks available ({self.error}). Check the Checker(...) line of the setup cell.")
            if _strict():
                raise CheckFailed(f"no checks for {self.slug!r}: {self.error}")
            return
        if qid not in self.exercise.questions:
            known = ", ".join(self.exercise.questions)
            print(f"❌ unknown question {qid!r} for {self.slug}; the questions are {known}.")
            if _strict():
                raise CheckFailed(f"unknown question {qid!r} for {self.slug}; the questions are {known}")
            return
        result = run_question(self.exercise, qid, functions, self.timeout)
        self.results[qid] = result
        _log(result)
        self._print(result)
        if _strict() and result.points < result.max_points:
            failed = "; ".join(f"{t.name}: {t.message}" for t in result.tests if not t.passed)
            raise CheckFailed(f"{qid}: {result.points}/{result.max_points} points. {failed}")

    def _print(self, r: QuestionResult) -> None:
        lines = [f"{r.question} · {r.title}" if r.title else r.question]
        for t in r.tests:
            mark = "✅" if t.passed else "❌"
            lines.append(textwrap.fill(f"{mark} {t.name} ({t.points}/{t.max_points})", width=76,
                                       initial_indent="  ", subsequent_indent="     ",
                                       break_long_words=False, break_on_hyphens=False))
            if t.message:
                lines.append(textwrap.fill(t.message, width=78, initial_indent="     ", subsequent_indent="     ",
                                           break_long_words=False, break_on_hyphens=False))
        n = len(self.exercise.questions) if self.exercise else 0
        lines.append(f"  {r.question}: {r.points}/{r.max_points} points · score so far: {self.points}/"
                     f"{self.max_points} points ({len(self.results)} of {n} questions checked)")
        if r.seed is not None:
            lines.append(f"  (random cases: seed {r.seed}; CNNKIT_CHECK_SEED={r.seed} repeats them)")
        print("\n".join(lines))

    def summary(self) -> None:
        """Print the score of every question checked so far."""
        for qid in (self.exercise.questions if self.exercise else []):
            r = self.results.get(qid)
            print(f"{qid}: " + (f"{r.points}/{r.max_points}" if r else "not checked yet"))
        print(f"total: {self.points}/{self.max_points} points")

    def report(self) -> dict[str, Any]:
        """The machine-readable score: ``{"exercise", "points", "max_points", "questions": {...}}``."""
        return {"exercise": self.slug, "points": self.points, "max_points": self.max_points,
                "questions": {q: r.to_dict() for q, r in self.results.items()}}


def grade_namespace(slug: str, namespace: dict[str, Any], timeout: float | None = None,
                    seed: int | None = None) -> dict[str, Any]:
    """Grade every question of ``slug`` on the functions found by name in ``namespace``.

    Used by the instructor CLI after executing a submission (the one place names are looked up):
    a missing function gets zero on its question with the reason named.
    """
    exercise = load_exercise(slug)
    seed = new_seed() if seed is None else seed
    questions = {}
    for qid, q in exercise.questions.items():
        missing = [n for n in q.names if n not in namespace]
        if missing:
            result = _fail_all(slug, q, f"`{'`, `'.join(missing)}` is not defined in the notebook: its cell was "
                                        "deleted or renamed, or stopped with an error before defining it.")
        else:
            result = run_question(exercise, qid, tuple(namespace[n] for n in q.names), timeout, seed)
        questions[qid] = result.to_dict()
    return {"exercise": slug, "points": sum(r["points"] for r in questions.values()),
            "max_points": exercise.max_points, "seed": seed, "questions": questions}
