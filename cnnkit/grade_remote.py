"""Trusted side of the instructor CLI's calls into a submission's kernel.

:class:`RemoteKernel` drives the kernel a submission ran in (a :class:`cnnkit.grade.KernelSession`) with cells
built from text the trusted side read before the submission ran (``cnnkit/grade_runner.py`` and the guard,
from the package snapshot). :class:`RemoteFunction` stands for one learner function in that kernel: the
checker's ``_invoke`` sees its ``__cnnkit_remote__`` and calls it instead of the function. Each call:

1. saves ``(args, kwargs, rules.to_wire())`` with ``torch.save`` to a new file in the call folder
   (trusted -> untrusted, so any pickle is fine),
2. asks the kernel to run ``guard.execute`` on the learner's function found by name in the notebook's
   globals, which saves ``outcome.to_wire()`` to another new file,
3. loads that file with ``torch.load(weights_only=True)`` (never a plain unpickle of what the kernel wrote)
   and returns ``guard.Outcome.from_wire(...)``.

A call that outlives the test's time limit is interrupted in the kernel (and the kernel killed if it does not
answer), exactly like a hanging cell. :func:`changes` compares two kernel fingerprints (see
``grade_runner.fingerprint``) and names what was patched.
"""
from __future__ import annotations

import itertools
import json
import secrets
from pathlib import Path
from typing import Any

import torch

from .checks import guard

__all__ = ["RemoteKernel", "RemoteFunction", "changes"]

SETUP_TIMEOUT = 300.0  # seconds for the grader's own cells (importing torch on a loaded machine is slow)
CALL_TIMEOUT = 600.0   # a hard cap per call; the test's own time limit normally stops a call long before


class RemoteFunction:
    """A learner function living in the submission's kernel (``__name__`` is its name there)."""

    def __init__(self, kernel: RemoteKernel, name: str) -> None:
        self._kernel = kernel
        self.__name__ = self.__qualname__ = name

    def __cnnkit_remote__(self, args: tuple, kwargs: dict, rules: Any = None) -> guard.Outcome:
        return self._kernel.call(self.__name__, args, kwargs, rules)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """A test's direct call (not through the checker), as in the learner's notebook: the result, or the
        learner's exception (a built-in type when it was one). A tensor result that depends on arguments
        requiring grad comes back attached to them: its backward asks the kernel for the gradients."""
        outcome, leaves, key = self._kernel.direct(self.__name__, args, kwargs)
        if outcome.error is not None:
            raise _exception(outcome.error)
        result = outcome.result
        if leaves and isinstance(result, torch.Tensor):
            flat = list(args) + list(kwargs.values())
            result = _RemoteGraph.apply(result, lambda grad: self._kernel.vjp(key, grad), *(flat[i] for i in leaves))
        return result

    def __repr__(self) -> str:
        return f"<function {self.__name__} (in the submission's kernel)>"


class RemoteError(Exception):
    """The learner's function raised this (by type name and message) in the submission's kernel."""


def _exception(error: guard.ErrorInfo) -> BaseException:
    """The learner's exception rebuilt from its name: the built-in class when it is one, else a stand-in."""
    import builtins
    cls = getattr(builtins, error.type_name, None)
    message = f"{error.message}{error.location}"
    if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - a built-in with another signature
            pass
    return type(error.type_name, (RemoteError,), {})(message)


class _RemoteGraph(torch.autograd.Function):
    """Attaches a result computed in the kernel to the trusted side's leaves; backward asks the kernel."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, backward: Any, *leaves: torch.Tensor) -> torch.Tensor:
        ctx.remote_backward = backward
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        return (None, None, *ctx.remote_backward(grad))


class RemoteKernel:
    """The grader's side of one submission's kernel: baseline, probes, the runner and the calls."""

    def __init__(self, session: Any, calls: Path, slug: str, runner: tuple[str, str], guard_src: tuple[str, str]):
        self.session, self.calls, self.slug = session, Path(calls), slug
        self.runner_source, self.runner_path = runner
        self.guard_source, self.guard_path = guard_src
        self._n = itertools.count(1)
        self.runner_id: int | None = None
        self.problems: list[dict[str, Any]] = []   # kernel deaths and failures while grading
        self.tampering: list[dict[str, Any]] = []  # found while calling (a replaced runner)
        self.calls_made = 0

    # ------------------------------------------------------------ grader cells

    def _path(self, kind: str, ext: str) -> Path:
        return self.calls / f"{kind}-{next(self._n)}-{secrets.token_hex(4)}.{ext}"  # not guessable in advance

    def _cell(self, body: str) -> str:
        return "\n".join([
            f"_cnnkit_r_ = {{'__name__': '_cnnkit_grade_runner', '__file__': {self.runner_path!r}}}",
            f"exec(compile({self.runner_source!r}, {self.runner_path!r}, 'exec'), _cnnkit_r_)",
            "try:",
            *("    " + line for line in body.split("\n")),
            "finally:",
            "    del _cnnkit_r_",
        ])

    def _json(self, body_with_out: str, out: Path, timeout: float) -> tuple[Any, Any]:
        run = self.session.request(self._cell(body_with_out), timeout)
        if run.status != "ok" or not out.exists():
            return None, run
        try:
            return json.loads(out.read_text(encoding="utf-8")), run
        except (OSError, ValueError):
            return None, run
        finally:
            out.unlink(missing_ok=True)

    def baseline(self, timeout: float = SETUP_TIMEOUT) -> tuple[dict | None, Any]:
        """Before any learner cell: the fingerprint of a clean kernel (with cnnkit's grading imported)."""
        out = self._path("baseline", "json")
        return self._json(f"_cnnkit_r_['baseline'](globals(), {self.slug!r}, {str(out)!r})", out, timeout)

    def probe(self, timeout: float = SETUP_TIMEOUT) -> tuple[dict | None, Any]:
        """The fingerprint and the namespace problems now (plus the runner's, once it exists)."""
        out = self._path("probe", "json")
        extra = ("[('grader.guard', _cnnkit_grader_.guard), ('grader.Runner', type(_cnnkit_grader_))] "
                 "if '_cnnkit_grader_' in globals() else []")
        return self._json(f"_cnnkit_r_['probe'](globals(), {self.slug!r}, {str(out)!r}, {extra})", out, timeout)

    def start(self, names: list[str], rules: list[dict] = (),
              timeout: float = SETUP_TIMEOUT) -> tuple[dict | None, Any]:
        """Load the runner and the guard (from the pristine text), do the guard's one-time set-up for ``rules``
        (``Rules.to_wire()`` of every question); return which names the notebook defines."""
        out = self._path("names", "json")
        body = "\n".join([
            f"_cnnkit_grader_ = _cnnkit_r_['Runner'](globals(), {self.guard_source!r}, {self.guard_path!r})",
            f"_cnnkit_grader_.prepare({list(rules)!r})",
            f"_cnnkit_grader_.names({names!r}, {str(out)!r})",
            f"with open({str(out) + '.id'!r}, 'w') as _cnnkit_f_:",
            "    _cnnkit_f_.write(str(id(_cnnkit_grader_)))",
            "del _cnnkit_f_",
        ])
        found, run = self._json(body, out, timeout)
        id_file = Path(str(out) + ".id")
        try:
            if found is not None and id_file.is_file() and not id_file.is_symlink():
                self.runner_id = int(id_file.read_text())
        except (OSError, ValueError):
            found = None
        id_file.unlink(missing_ok=True)
        return found, run

    # ------------------------------------------------------------ calls

    def _failed(self, type_name: str, message: str) -> guard.Outcome:
        return guard.Outcome(error=guard.ErrorInfo(type_name, message))

    def call(self, name: str, args: tuple, kwargs: dict, rules: Any = None) -> guard.Outcome:
        """Run ``name(*args, **kwargs)`` in the kernel under ``rules``; see the module docstring."""
        rules = rules if rules is not None else guard.Rules()
        inp, out = self._path("in", "pt"), self._path("out", "pt")
        with open(inp, "wb") as f:
            torch.save((tuple(args), dict(kwargs), rules.to_wire()), f)
        wire = self._request(name, f"call({name!r}, {str(inp)!r}, {str(out)!r})", inp, out)
        if isinstance(wire, guard.Outcome):
            return wire
        try:
            return guard.Outcome.from_wire(wire)
        except Exception as exc:  # noqa: BLE001 - whatever the kernel wrote
            return self._failed("GraderError", f"the result of `{name}` could not be read back ({exc})")

    def _died(self, name: str, why: str) -> None:
        self.problems.append({"cell": None, "kind": "dead", "message": f"while grading `{name}`: {why}; every "
                              "later call fails", "code": ""})

    def direct(self, name: str, args: tuple, kwargs: dict) -> tuple[guard.Outcome, list[int], int]:
        """A direct call (see ``RemoteFunction.__call__``): the outcome, the indices of the arguments its
        result's graph leads back to, and the key to ask for their gradients."""
        key = next(self._n)
        inp, out = self._path("direct-in", "pt"), self._path("direct-out", "pt")
        with open(inp, "wb") as f:
            torch.save((tuple(args), dict(kwargs)), f)
        wire = self._request(name, f"direct({key}, {name!r}, {str(inp)!r}, {str(out)!r})", inp, out)
        if isinstance(wire, guard.Outcome):
            return wire, [], key
        try:
            return guard.Outcome.from_wire(wire["outcome"]), [int(i) for i in wire["leaves"]], key
        except Exception as exc:  # noqa: BLE001 - whatever the kernel wrote
            return self._failed("GraderError", f"the result of `{name}` could not be read back ({exc})"), [], key

    def vjp(self, key: int, grad: torch.Tensor) -> list:
        """The gradients of the kept direct call ``key`` for ``grad``, as tensors (None where unused)."""
        inp, out = self._path("vjp-in", "pt"), self._path("vjp-out", "pt")
        with open(inp, "wb") as f:
            torch.save(grad.detach(), f)
        wire = self._request("the gradient", f"vjp({key}, {str(inp)!r}, {str(out)!r})", inp, out)
        if isinstance(wire, guard.Outcome) or not isinstance(wire, list) or \
                not all(g is None or isinstance(g, torch.Tensor) for g in wire):
            message = wire.error.message if isinstance(wire, guard.Outcome) else "not a list of tensors"
            raise RuntimeError(f"the gradient could not be computed in the notebook's kernel: {message}")
        return wire

    def _request(self, name: str, runner_call: str, inp: Path, out: Path) -> Any:
        """Run ``_cnnkit_grader_.<runner_call>`` in the kernel; the loaded file, or a failed Outcome."""
        if self.session.dead:
            inp.unlink(missing_ok=True)
            return self._failed("DeadKernel", "not run: the notebook's kernel had died or been killed")
        if self.runner_id is None:
            inp.unlink(missing_ok=True)
            return self._failed("GraderError", "not run: the grader could not start its runner in the kernel")
        self.calls_made += 1
        source = (f"if id(globals().get('_cnnkit_grader_')) == {self.runner_id}:\n"
                  f"    _cnnkit_grader_.{runner_call}")
        try:
            run = self.session.request(source, CALL_TIMEOUT)
        except BaseException:
            if self.session.dead:
                self._died(name, "it ignored the interrupt sent when its test ran out of time, so the kernel was "
                                 "killed")
            raise
        finally:
            inp.unlink(missing_ok=True)
        try:
            if run.status == "ok":
                if not out.is_file() or out.is_symlink():
                    self._tampered("_cnnkit_grader_", "the grader's runner in the kernel was replaced while "
                                   "the tests ran")
                    return self._failed("GraderError", "the grader's runner in the kernel was replaced")
                try:
                    return torch.load(out, weights_only=True)
                except Exception as exc:  # noqa: BLE001 - whatever the kernel wrote
                    return self._failed("GraderError", f"the result of `{name}` could not be read back from the "
                                                       f"kernel ({type(exc).__name__}: {exc})")
        finally:
            out.unlink(missing_ok=True)
        if run.status == "dead":
            self._died(name, "the kernel died")
            return self._failed("DeadKernel", "the notebook's kernel died or was killed while running it")
        if run.status == "timeout":
            return self._failed("Timeout", f"did not finish within {CALL_TIMEOUT:g} s")
        return self._failed(run.ename or "Error", run.evalue)

    def _tampered(self, name: str, detail: str) -> None:
        if not any(t["name"] == name for t in self.tampering):
            self.tampering.append({"kind": "kernel", "name": name, "detail": detail})


def changes(before: dict[str, int], after: dict[str, int], when: str, limit: int = 40) -> list[dict[str, str]]:
    """What ``after`` replaced or removed of ``before``, one entry per outermost name, at most ``limit``."""
    changed = {k for k, v in before.items() if after.get(k) != v}
    out = []
    for key in sorted(changed):
        parts = key.split(".")
        if any(".".join(parts[:i]) in changed for i in range(1, len(parts))):
            continue  # its module or class is named already
        if key.endswith(".__code__"):
            name, detail = key[: -len(".__code__")], f"its code was replaced {when}"
        elif key not in after:
            name, detail = key, f"removed {when}"
        else:
            name, detail = key, f"replaced {when}"
        out.append({"kind": "kernel", "name": name, "detail": detail})
    if len(out) > limit:
        out = out[:limit] + [{"kind": "kernel", "name": "...", "detail": f"and {len(out) - limit} more {when}"}]
    return out
