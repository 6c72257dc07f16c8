"""The grader's tests, one module per chapter (``ch01.py`` grades ``01_convolution``), and the tools they use.

``load_exercise("01_convolution")`` imports ``cnnkit.checks.ch01`` and returns its ``EXERCISE``. The helpers
below (re-exported by :mod:`cnnkit.grading`) call a learner's function safely and compare its result with
PyTorch's, producing messages a learner can act on. The format is documented in ``exercises/README.md``.
"""
from __future__ import annotations

import copy
import importlib
import math
import re
import signal
import sysconfig
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

__all__ = ["CheckFailed", "LearnerError", "TimedOut", "available_exercises", "call", "count_torch_ops",
           "describe", "expect_call", "expect_equal", "expect_tensor", "explain_exception", "load_exercise",
           "run_with_timeout"]

_SLUG = re.compile(r"^(\d\d)_[a-z0-9_]+$")


class CheckFailed(AssertionError):
    """A test's expectation failed; the message is shown to the learner as is."""


class LearnerError(Exception):
    """The learner's function raised ``exc`` when called as ``call`` (a description of the call)."""

    def __init__(self, call: str, exc: BaseException) -> None:
        super().__init__(f"{call} raised {type(exc).__name__}: {exc}")
        self.call, self.exc = call, exc


class TimedOut(BaseException):
    """A test ran past its time limit (a BaseException, so ``except Exception`` in learner code can't hide it)."""

    def __init__(self, note: str = "") -> None:
        super().__init__(note)
        self.note = note


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

def describe(value: Any) -> str:
    """A short description for messages: ``Tensor(2, 3, 5, 5) float32``, ``ndarray(3, 3) float64``, ``28``."""
    if isinstance(value, torch.Tensor):
        where = "" if value.device.type == "cpu" else f" on {value.device}"
        return f"Tensor{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}{where}"
    if isinstance(value, np.ndarray):
        return f"NumPy ndarray{value.shape} {value.dtype}"
    if isinstance(value, (list, tuple)) and (len(value) > 6 or not all(
            isinstance(v, (int, float, bool, str, type(None))) for v in value)):
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe_call(fn: Callable, args: tuple, kwargs: dict) -> str:
    name = getattr(fn, "__name__", "your function")
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _library_dirs() -> tuple[str, ...]:
    dirs = {str(Path(__file__).resolve().parents[1]), str(Path(torch.__file__).parent), str(Path(np.__file__).parent)}
    for key in ("stdlib", "platstdlib"):
        dirs.add(sysconfig.get_paths()[key])
    return tuple(dirs)


def _location(exc: BaseException) -> str:
    """Where in the learner's own code ``exc`` was raised, e.g. `` (line 6, in conv2d_loops: `out[i] = ...`)``."""
    libs = _library_dirs()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(libs)]
    if not frames:
        return ""
    f = frames[-1]
    code = f" `{f.line.strip()}`" if f.line else ""
    return f" (line {f.lineno}, in {f.name}:{code})"


def explain_exception(exc: BaseException) -> str:
    """The learner-facing message for an exception caught while running a test."""
    if isinstance(exc, CheckFailed):
        return str(exc) or "check failed"
    if isinstance(exc, LearnerError):
        inner = exc.exc
        if isinstance(inner, NotImplementedError):
            return f"`{exc.call}` raised NotImplementedError: replace `raise NotImplementedError()` with your code."
        text = f"`{exc.call}` raised {type(inner).__name__}: {inner}"
        return text + _location(inner)
    return f"the check stopped with {type(exc).__name__}: {exc}{_location(exc)} (look at what your function returns)"


# ---------------------------------------------------------------- calling the learner's code safely

def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - uncopyable objects are passed as they are
        return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and a.device == b.device and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return a is b


def _invoke(fn: Callable, args: tuple, kwargs: dict, counter: Any = None) -> Any:
    desc = _describe_call(fn, args, kwargs)
    args2, kwargs2 = tuple(_copy(a) for a in args), {k: _copy(v) for k, v in kwargs.items()}
    try:
        if counter is None:
            result = fn(*args2, **kwargs2)
        else:
            with counter:
                result = fn(*args2, **kwargs2)
    except (TimedOut, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: the learner's code may raise anything
        raise LearnerError(desc, exc) from exc
    names = [f"argument {i + 1} ({describe(a)})" for i, (a, b) in enumerate(zip(args, args2)) if not _same(a, b)]
    names += [f"argument `{k}`" for k in kwargs if not _same(kwargs[k], kwargs2[k])]
    if names:
        raise CheckFailed(f"`{desc}` changed its {' and '.join(names)} in place (e.g. `x -= ...`, `x[...] = ...` or "
                          "an `_` method such as `add_`). Leave inputs untouched: build a new tensor or work on "
                          "`x.clone()`.")
    return result


def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn`` on copies of the arguments; fail if it changed any of them in place."""
    return _invoke(fn, args, kwargs)


def count_torch_ops(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """``(result, n)``: ``n`` is how many torch functions and tensor methods ``fn(*args, **kwargs)`` called.

    A vectorised function runs about the same number of operations for a small and a large input;
    a Python loop over positions runs more for the larger one.
    """
    class _Count(TorchFunctionMode):
        n = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            type(self).n += 1
            return func(*args, **(kwargs or {}))

    result = _invoke(fn, args, kwargs, counter=_Count())
    return result, _Count.n


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
    if torch.isnan(g).any() and not torch.isnan(e).any():
        raise CheckFailed(f"{where} returned NaN at index {tuple(torch.isnan(g).nonzero()[0].tolist())}.")
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
    if not _same(got, expected):
        raise CheckFailed(f"{where} returned {describe(got)}; expected {describe(expected)}.")


def expect_call(fn: Callable, *args: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-4,
                hint: str | Callable[[Any], str | None] | None = None, **kwargs: Any) -> Any:
    """Call ``fn`` safely (copies, mutation check) and compare its result with ``expected``; return the result."""
    got = _invoke(fn, args, kwargs)
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
