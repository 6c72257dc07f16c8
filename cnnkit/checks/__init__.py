"""The grader's tests, one module per chapter (``ch01.py`` grades ``01_convolution``), and the tools they use.

``load_exercise("01_convolution")`` imports ``cnnkit.checks.ch01`` and returns its ``EXERCISE``. The helpers
below (re-exported by :mod:`cnnkit.grading`) call a learner's function safely and compare its result with
PyTorch's, producing messages a learner can act on. The format is documented in ``exercises/README.md``.
"""
from __future__ import annotations

import contextvars
import hashlib
import importlib
import math
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .guard import ErrorInfo, Opaque, Outcome, Rules, TimedOut, describe, execute, location, same

__all__ = ["CheckFailed", "LearnerError", "Rules", "TimedOut", "available_exercises", "call", "count_steps",
           "count_torch_ops", "current_rules", "describe", "expect_call", "expect_device", "expect_equal",
           "expect_tensor", "explain_exception", "load_exercise", "randint", "rng", "run_with_timeout"]

_SLUG = re.compile(r"^(\d\d)_[a-z0-9_]+$")


class CheckFailed(AssertionError):
    """A test's expectation failed; the message is shown to the learner as is."""


class LearnerError(Exception):
    """The learner's function raised an exception when called as ``call`` (a description of the call).

    ``error`` is a :class:`guard.ErrorInfo` (the exception may have happened in another process); ``exc`` is
    the exception itself when it happened here.
    """

    def __init__(self, call: str, error: ErrorInfo | BaseException) -> None:
        if isinstance(error, BaseException):
            error = ErrorInfo(type(error).__name__, str(error), location(error),
                              isinstance(error, NotImplementedError), error)
        super().__init__(f"{call} raised {error.type_name}: {error.message}")
        self.call, self.error, self.exc = call, error, error.exc


def load_exercise(slug: str):
    """The ``EXERCISE`` declared in ``cnnkit/checks/chNN.py`` for ``slug`` (e.g. ``"01_convolution"``)."""
    match = _SLUG.match(slug) if isinstance(slug, str) else None
    if not match:
        raise ValueError(f"exercise names look like '01_convolution' (two digits, underscore, lower-case name); "
                         f"got {slug!r}")
    module_name = f"{__name__}.ch{match.group(1)}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ValueError(f"no checks for exercise {slug!r}: {module_name} does not exist. Update cnnkit "
                         f"(pip install -U ...) or fix the name; available: {', '.join(available_exercises())}"
                         ) from None
    exercise = getattr(module, "EXERCISE", None)
    if exercise is None or exercise.slug != slug:
        found = getattr(exercise, "slug", None)
        raise ValueError(f"{module_name} grades {found!r}, not {slug!r}; check the exercise name")
    return exercise


def available_exercises() -> list[str]:
    """Slugs of every exercise with checks installed."""
    slugs = []
    for path in sorted(Path(__file__).parent.glob("ch[0-9][0-9].py")):
        exercise = getattr(importlib.import_module(f"{__name__}.{path.stem}"), "EXERCISE", None)
        if exercise is not None:
            slugs.append(exercise.slug)
    return slugs


# ---------------------------------------------------------------- describing values and errors

def _describe_call(fn: Callable, args: tuple, kwargs: dict) -> str:
    name = getattr(fn, "__name__", "your function")
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def explain_exception(exc: BaseException) -> str:
    """The learner-facing message for an exception caught while running a test."""
    if isinstance(exc, CheckFailed):
        return str(exc) or "check failed"
    if isinstance(exc, LearnerError):
        err = exc.error
        if err.not_implemented:
            return f"`{exc.call}` raised NotImplementedError: replace `raise NotImplementedError()` with your code."
        return f"`{exc.call}` raised {err.type_name}: {err.message}{err.location}"
    return f"the check stopped with {type(exc).__name__}: {exc}{location(exc)} (look at what your function returns)"


# ---------------------------------------------------------------- calling the learner's code safely

# The rules of the question being graded, the run's seed and the test's name (set by grading.run_question).
_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("cnnkit_check_context", default={})


def current_rules() -> Rules:
    """What the question being graded forbids (empty outside a graded test)."""
    return _CONTEXT.get().get("rules") or Rules()


def _run(fn: Callable, args: tuple, kwargs: dict, count_ops: bool = False, count_steps: bool = False) -> Outcome:
    base = current_rules()
    rules = Rules(base.qid, dict(base.forbid), count_steps=count_steps, count_ops=count_ops)
    remote = getattr(fn, "__cnnkit_remote__", None)
    if remote is not None:  # a function living in another process (the instructor CLI's proxies)
        return remote(args, kwargs, rules)
    return execute(fn, args, kwargs, rules)


def _invoke(fn: Callable, args: tuple, kwargs: dict, count_ops: bool = False, count_steps: bool = False) -> Outcome:
    """Run the learner's ``fn`` under the question's rules; raise what a test should report."""
    desc = _describe_call(fn, args, kwargs)
    outcome = _run(fn, args, kwargs, count_ops, count_steps)
    if outcome.violations:
        raise CheckFailed(f"`{desc}`: " + " ".join(outcome.violations))
    if outcome.error is not None:
        raise LearnerError(desc, outcome.error)
    if outcome.mutated:
        raise CheckFailed(f"`{desc}` changed its {' and '.join(outcome.mutated)} in place (e.g. `x -= ...`, "
                          "`x[...] = ...` or an `_` method such as `add_`). Leave inputs untouched: build a new "
                          "tensor or work on `x.clone()`.")
    return outcome


def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn`` on copies of the arguments; fail if it changed any of them in place or made a
    call its question forbids."""
    return _invoke(fn, args, kwargs).result


def count_torch_ops(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """``(result, n)``: ``n`` is how many torch functions and tensor methods ``fn(*args, **kwargs)`` called."""
    outcome = _invoke(fn, args, kwargs, count_ops=True)
    return outcome.result, outcome.torch_ops


def count_steps(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """``(result, n)``: ``n`` counts the Python lines run in the learner's own code and the calls made from it.

    A loop over positions, whether written with torch, NumPy or plain Python, makes ``n`` grow with the input;
    vectorised code runs about the same number of steps for a small and a large input.
    """
    outcome = _invoke(fn, args, kwargs, count_steps=True)
    return outcome.result, outcome.steps


def _on_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("meta")
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_on_meta(v) for v in value)
    return value


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def expect_device(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with every tensor argument on PyTorch's ``meta`` device; fail unless all it returns is there.

    A ``meta`` tensor has a shape and a dtype but no values, so this shows, on a CPU-only machine, what a GPU
    would: a tensor made with ``torch.zeros(...)`` without ``device=x.device``, a ``.numpy()`` call, or a CPU
    constant mixed into the computation.
    """
    margs = tuple(_on_meta(a) for a in args)
    mkwargs = {k: _on_meta(v) for k, v in kwargs.items()}
    desc = _describe_call(fn, args, kwargs)
    fix = ("Make new tensors on the input's device (`x.new_zeros(...)`, `torch.zeros(..., device=x.device)`, "
           "`torch.zeros_like(x)`) and keep the computation in torch (no `.numpy()`, `.item()` or `.tolist()` on "
           "the inputs).")
    try:
        outcome = _invoke(fn, margs, mkwargs)
    except LearnerError as exc:
        raise CheckFailed(f"`{desc}` works on the CPU but not when its inputs live on another device (the check "
                          f"moves them to PyTorch's 'meta' device): it raised {exc.error.type_name}: "
                          f"{exc.error.message}{exc.error.location}. {fix}") from None
    wrong = [t for t in _tensors(outcome.result) if t.device.type != "meta"]
    if not _tensors(outcome.result):
        raise CheckFailed(f"`{desc}` with inputs on the 'meta' device returned {describe(outcome.result)}, not "
                          "tensors on that device. " + fix)
    if wrong:
        raise CheckFailed(f"`{desc}` with inputs on the 'meta' device returned a tensor on {wrong[0].device}: "
                          "a new tensor was made without the input's device. " + fix)
    return outcome.result


def rng(salt: str = "") -> torch.Generator:
    """A generator seeded from this grading run's seed, the question, the test and ``salt``.

    The cases it draws change with every run (the checker prints the seed; ``CNNKIT_CHECK_SEED`` repeats one),
    so a table of answers to the fixed cases does not pass.
    """
    ctx = _CONTEXT.get()
    key = f"{ctx.get('seed', 0)}|{ctx.get('qid', '')}|{ctx.get('test', '')}|{salt}"
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:7], "little")
    return torch.Generator().manual_seed(seed)


def randint(g: torch.Generator, low: int, high: int) -> int:
    """A Python int drawn uniformly from ``[low, high]`` (both included) with generator ``g``."""
    if high < low:
        raise ValueError(f"randint needs low <= high, got {low} > {high}")
    return int(torch.randint(low, high + 1, (1,), generator=g).item())


def run_with_timeout(func: Callable[[], Any], seconds: float) -> Any:
    """Run ``func()``; raise :class:`TimedOut` after ``seconds``.

    Linux/macOS main thread (Jupyter, Colab, scripts): ``SIGALRM`` interrupts the running Python code.
    Elsewhere (Windows, other threads): ``func`` runs in a daemon thread; after the limit we stop waiting,
    but the thread keeps running until the process ends.
    """
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        def on_alarm(signum, frame):
            raise TimedOut()
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)  # re-fires every 50 ms until disarmed
        try:
            return func()
        finally:
            for _ in range(100):
                try:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
                    break
                except TimedOut:
                    continue
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc
    worker = threading.Thread(target=target, daemon=True, name="cnnkit-check")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimedOut(" (it keeps running in the background: restart the kernel to stop it)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ---------------------------------------------------------------- comparing results

def _type_problem(got: Any, want: str) -> str:
    if isinstance(got, np.ndarray):
        return f"returned a NumPy array ({describe(got)}); {want}"
    if isinstance(got, (list, tuple)):
        return f"returned a {type(got).__name__} ({describe(got)}); {want}"
    if got is None:
        return f"returned None (is a `return` missing?); {want}"
    if isinstance(got, (torch.Tensor, Opaque)):
        return f"returned {describe(got)}; {want}"
    return f"returned {type(got).__name__} {describe(got)}; {want}"


def expect_tensor(got: Any, expected: torch.Tensor, where: str = "your function",
                  atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Fail unless ``got`` is a tensor with ``expected``'s shape, device, dtype and values (within tolerance)."""
    if not isinstance(got, torch.Tensor):
        fix = "convert with torch.as_tensor(...)" if isinstance(got, np.ndarray) else "build it with torch.stack / torch.tensor"
        raise CheckFailed(f"{where} " + _type_problem(got, f"expected a torch.Tensor of shape {tuple(expected.shape)} "
                                                           f"({fix}, or better, compute with torch throughout)."))
    if got.shape != expected.shape:
        raise CheckFailed(f"{where} returned shape {tuple(got.shape)}; expected {tuple(expected.shape)}.")
    if got.device != expected.device:
        raise CheckFailed(f"{where} returned a tensor on {got.device}; expected {expected.device}, the device of "
                          "the input (create new tensors with device=x.device, or x.new_zeros(...)).")
    if got.dtype != expected.dtype:
        raise CheckFailed(f"{where} returned dtype {got.dtype}; expected {expected.dtype}, the dtype of the input "
                          "(create new tensors with dtype=x.dtype, or x.new_zeros(...)).")
    g, e = got.detach(), expected.detach()
    if not g.is_floating_point():
        if not torch.equal(g, e):
            bad = (g != e).nonzero()[0].tolist()
            raise CheckFailed(f"{where}: wrong values, e.g. at index {tuple(bad)}: got {g[tuple(bad)].item()}, "
                              f"expected {e[tuple(bad)].item()}.")
        return
    if g.device.type == "meta" or e.device.type == "meta":
        return
    if torch.isnan(g).any() and not torch.isnan(e).any():
        raise CheckFailed(f"{where} returned NaN at index {tuple(torch.isnan(g).nonzero()[0].tolist())}.")
    bad_inf = torch.isinf(g) & ~(torch.isinf(e) & (g == e))
    if bad_inf.any():
        idx = tuple(bad_inf.nonzero()[0].tolist())
        raise CheckFailed(f"{where} returned {g[idx].item()} at index {idx}, where {e[idx].item():.4g} was "
                          "expected: a value overflowed (exp of a large number?) or was divided by zero.")
    diff = (g.double() - e.double()).abs().nan_to_num(0.0)
    if not torch.allclose(g.double(), e.double(), atol=atol, rtol=rtol, equal_nan=True):
        idx = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(diff.shape)))
        raise CheckFailed(f"{where}: wrong values, max abs error {diff.max().item():.3g} at index {idx} "
                          f"(got {g[idx].item():.4g}, expected {e[idx].item():.4g}; tolerance atol={atol:g}, "
                          f"rtol={rtol:g}).")


def expect_equal(got: Any, expected: Any, where: str = "your function",
                 atol: float = 1e-9, rtol: float = 1e-6) -> None:
    """Fail unless ``got`` equals ``expected`` (an int, float, bool, str, or a tuple/list of them)."""
    if isinstance(expected, torch.Tensor):
        return expect_tensor(got, expected, where)
    if isinstance(expected, bool):
        if not isinstance(got, bool) or got != expected:
            raise CheckFailed(f"{where} returned {describe(got)}; expected {expected}.")
        return
    if isinstance(expected, int):
        if isinstance(got, int) and not isinstance(got, bool):
            if got != expected:
                raise CheckFailed(f"{where} returned {got}; expected {expected}.")
            return
        if isinstance(got, float):
            extra = ", a float: use // (floor division)" if got != expected else " as a float: return an int"
            raise CheckFailed(f"{where} returned {got!r}{extra}; expected the int {expected}.")
        if isinstance(got, (torch.Tensor, np.ndarray, np.generic)):
            raise CheckFailed(f"{where} " + _type_problem(got, f"expected a plain Python int ({expected}): use int(...) "
                                                               "or .item()."))
        raise CheckFailed(f"{where} " + _type_problem(got, f"expected the int {expected}."))
    if isinstance(expected, float):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise CheckFailed(f"{where} " + _type_problem(got, f"expected a Python float close to {expected:.6g}."))
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            raise CheckFailed(f"{where} returned {got!r}; expected {expected:.6g}.")
        return
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise CheckFailed(f"{where} returned {describe(got)}; expected {expected!r}.")
        for i, (g, e) in enumerate(zip(got, expected)):
            expect_equal(g, e, f"{where} (item {i})", atol, rtol)
        return
    if not same(got, expected):
        raise CheckFailed(f"{where} returned {describe(got)}; expected {describe(expected)}.")


def expect_call(fn: Callable, *args: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-4,
                hint: str | Callable[[Any], str | None] | None = None, **kwargs: Any) -> Any:
    """Call ``fn`` safely (copies, mutation check) and compare its result with ``expected``; return the result."""
    got = _invoke(fn, args, kwargs).result
    where = f"`{_describe_call(fn, args, kwargs)}`"
    try:
        if isinstance(expected, torch.Tensor):
            expect_tensor(got, expected, where, atol, rtol)
        else:
            expect_equal(got, expected, where)
    except CheckFailed as exc:
        extra = hint
        if callable(hint):
            try:
                extra = hint(got)
            except Exception:  # noqa: BLE001 - a hint must never hide the failure
                extra = None
        raise CheckFailed(f"{exc} Hint: {extra}" if extra else str(exc)) from None
    return got
