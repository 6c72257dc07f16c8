"""Instructor CLI: grade a submitted exercise notebook with code the submission never ran in.

    python -m cnnkit.grade SUBMISSION.ipynb [--json report.json] [--timeout S] [--cell-timeout S] [--exercise SLUG]

A submission is untrusted code. The learner's cells run in a kernel of their own: a temporary HOME and working
directory (holding only a copy of the submission), a sanitised environment (``CNNKIT_DEFER_CHECKS=1`` skips
their own ``check(...)`` calls) and ``cnnkit`` imported from a pristine temporary copy of the package. Then this
process, which never executes submission code, runs the question's tests (imported before the submission
ran) and calls the learner's functions in that kernel through proxies (:mod:`cnnkit.grade_remote`); results
come back as tensors and plain values only. Around it: the installed package is hashed before and after and
restored byte for byte, the kernel is probed for patched display hooks, grading modules and tracing
machinery, and the check cells are compared with the question list (:mod:`cnnkit.grade_integrity`). Errors,
hangs, a dead kernel, deleted or edited check cells and tampering are named in the report. Exit status:
0 graded (whatever the score), 2 could not grade (unreadable, not a notebook, unknown or wrong exercise).
It is not a sandbox: see the README's section for instructors.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import signal
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbclient.util import run_sync

__all__ = ["KernelSession", "CellRun", "grade_notebook", "format_report", "main", "GRADED", "NOT_GRADED"]

GRADED, NOT_GRADED = 0, 2
PROBE_TIMEOUT = 8  # seconds an interrupted kernel has to answer before it is killed
IOPUB_TIMEOUT = 10  # on a loaded machine a cell's outputs can trail its reply by seconds
_TIMEOUT = "CellTimeout"


@dataclass
class CellRun:
    """What happened when one cell ran: ``status`` is ok, error, timeout or dead (kernel died or was killed)."""
    status: str
    ename: str = ""
    evalue: str = ""
    outputs: list = field(default_factory=list)
    seconds: float = 0.0


class _Client(NotebookClient):
    async def _async_handle_timeout(self, timeout, cell=None):
        self.iopub_timeout = 2  # the cell is abandoned: do not wait long for its last outputs
        return await super()._async_handle_timeout(timeout, cell)


class KernelSession:
    """A fresh IPython kernel that runs code cells one at a time, with a time limit per cell.

    After a timeout nbclient interrupts the kernel (and stops listening for that cell's output); if the kernel
    then does not answer a probe within ``PROBE_TIMEOUT`` s (code that swallows interrupts), it is killed and
    every later cell reports ``dead``.
    """

    def __init__(self, cwd: str | Path, env: dict[str, str] | None = None, unset: tuple[str, ...] = (),
                 inherit: bool = True) -> None:
        self.nb = nbformat.v4.new_notebook()
        self.client = _Client(
            self.nb, timeout=60, allow_errors=True, kernel_name="python3", interrupt_on_timeout=True,
            error_on_timeout={"ename": _TIMEOUT, "evalue": "the cell ran out of time", "traceback": []},
            resources={"metadata": {"path": str(cwd)}})
        self.client.shutdown_kernel = "immediate"  # nothing to save: do not wait for a graceful shutdown
        self.client.on_cell_executed = self._on_executed
        base = os.environ if inherit else {}
        self.env = {k: v for k, v in base.items() if k not in unset} | (env or {})
        self.dead = False
        self._ctx = None
        self._reply: dict[str, Any] = {}
        self._kc: Any = None  # a blocking client of the same kernel, for the grader's own requests

    def __enter__(self) -> KernelSession:
        self._ctx = self.client.setup_kernel(env=self.env)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._kc is not None:
            with contextlib.suppress(Exception):
                self._kc.stop_channels()
        try:
            self._ctx.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - a dead or killed kernel may fail to shut down cleanly
            pass

    def _on_executed(self, cell: Any = None, cell_index: int = 0, execute_reply: Any = None, **_: Any) -> None:
        self._reply = execute_reply or {}

    def _execute(self, source: str, timeout: float) -> tuple[nbformat.NotebookNode, bool]:
        """Run ``source``; return the cell and whether it ran out of time. Raises DeadKernelError."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.timeout = max(1, int(round(timeout)))
        self.client.iopub_timeout = IOPUB_TIMEOUT
        self._reply = {}
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        return cell, self._reply.get("content", {}).get("ename") == _TIMEOUT

    def run(self, source: str, timeout: float = 60.0) -> CellRun:
        if self.dead:
            return CellRun("dead", "DeadKernel", "the kernel had died or been killed before this cell")
        start = time.perf_counter()
        try:
            cell, timed_out = self._execute(source, timeout)
        except DeadKernelError as exc:
            self.dead = True
            return CellRun("dead", "DeadKernelError", str(exc) or "the kernel died", [], time.perf_counter() - start)
        seconds = time.perf_counter() - start
        if timed_out:
            self._recover()
            return CellRun("timeout", "Timeout", f"did not finish within {timeout:g} s", cell.outputs, seconds)
        for out in cell.outputs:
            if out.get("output_type") == "error":
                return CellRun("error", out.get("ename", ""), out.get("evalue", ""), cell.outputs, seconds)
        return CellRun("ok", outputs=cell.outputs, seconds=seconds)

    # ------------------------------------------------------------ the grader's own requests

    def request(self, source: str, timeout: float) -> CellRun:
        """Run the grader's ``source`` silently (no history, outputs not collected) and wait for its reply.

        Used after the learner's cells, many times (once per call of a learner function), so it is lean: a
        blocking client of the same kernel, no notebook cell. If anything interrupts the wait (the test's
        time limit raising in this process, Ctrl-C) or ``timeout`` passes, the kernel is interrupted; if it
        does not answer within ``PROBE_TIMEOUT`` s it is killed. Exceptions are re-raised after that.
        """
        if self.dead:
            return CellRun("dead", "DeadKernel", "the kernel had died or been killed before this request")
        if self._kc is None:
            from jupyter_client.blocking import BlockingKernelClient
            kc = BlockingKernelClient()
            kc.load_connection_info(self.client.km.get_connection_info())
            kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
            self._kc = kc
        start = time.perf_counter()
        msg_id = self._kc.execute(source, silent=True, store_history=False, allow_stdin=False, stop_on_error=False)
        try:
            reply = self._reply_to(msg_id, timeout)
        except BaseException:
            self._abandon(msg_id)
            raise
        seconds = time.perf_counter() - start
        if reply is None:
            if self.dead:
                return CellRun("dead", "DeadKernelError", "the kernel died", [], seconds)
            self._abandon(msg_id)
            return CellRun("timeout", "Timeout", f"did not finish within {timeout:g} s", [], seconds)
        content = reply.get("content", {})
        if content.get("status") == "ok":
            return CellRun("ok", seconds=seconds)
        return CellRun("error", content.get("ename", "Error"), content.get("evalue", ""), [], seconds)

    def _alive(self) -> bool:
        process = getattr(self.client.km.provisioner, "process", None)
        return process is not None and process.poll() is None

    def _reply_to(self, msg_id: str, timeout: float) -> dict | None:
        """The shell reply to ``msg_id``, or None after ``timeout`` s or when the kernel died (``dead`` set)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = self._kc.get_shell_msg(timeout=min(left, 0.25))
            except queue.Empty:
                if not self._alive():
                    self.dead = True
                    return None
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg  # replies to abandoned requests are skipped

    def _signal(self, signum: int) -> None:
        provisioner = self.client.km.provisioner
        process = getattr(provisioner, "process", None)
        pgid = getattr(provisioner, "pgid", None)
        with contextlib.suppress(OSError, AttributeError):
            if pgid and hasattr(os, "killpg"):
                os.killpg(pgid, signum)
            elif process is not None:
                process.send_signal(signum)

    def _abandon(self, msg_id: str) -> None:
        """Interrupt a request no longer waited for; kill the kernel if it does not answer."""
        if self.dead:
            return
        with _alarm_deferred():
            self._signal(signal.SIGINT)
            if self._reply_to(msg_id, PROBE_TIMEOUT) is None and not self.dead:
                self.dead = True
                self._signal(getattr(signal, "SIGKILL", signal.SIGTERM))

    def _recover(self) -> None:
        """After a timeout (nbclient has interrupted the kernel): kill the kernel if it no longer answers."""
        try:
            stuck = self._execute("pass", PROBE_TIMEOUT)[1]
        except (DeadKernelError, RuntimeError):
            stuck = True
        if stuck:
            self.dead = True
            try:
                run_sync(self.client.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001
                pass


@contextlib.contextmanager
def _alarm_deferred():
    """Keep a test's time-limit alarm (``SIGALRM``, re-fired every 50 ms) from cutting the kernel's recovery
    short; the caller re-raises the time-out afterwards anyway."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, previous)


class CannotGrade(Exception):
    """The submission cannot be graded at all (exit status 2)."""


def _read(path: Path) -> nbformat.NotebookNode:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CannotGrade(f"cannot read {path}: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CannotGrade(f"{path.name} is not a Jupyter notebook (not JSON: {exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise CannotGrade(f"{path.name} is not a Jupyter notebook (no list of cells)")
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any malformed notebook
        raise CannotGrade(f"{path.name} is not a valid Jupyter notebook: {exc}") from None


def _which_exercise(nb: nbformat.NotebookNode, asked: str | None) -> str:
    from .checks import available_exercises, load_exercise

    declared = nb.metadata.get("cnnkit", {}).get("exercise") if isinstance(nb.metadata.get("cnnkit"), dict) else None
    if declared is None:
        found = re.findall(r"""Checker\(\s*["'](\d\d_[a-z0-9_]+)["']""",
                           "\n".join(c.source for c in nb.cells if c.cell_type == "code"))
        declared = found[0] if found else None
    if asked and declared and asked != declared:
        raise CannotGrade(f"wrong exercise: this notebook is {declared!r}, but --exercise asked for {asked!r}")
    slug = asked or declared
    if slug is None:
        raise CannotGrade("cannot tell which exercise this is (no cnnkit metadata, no Checker(...) line); "
                          f"pass --exercise, one of: {', '.join(available_exercises())}")
    try:
        load_exercise(slug)
    except ValueError as exc:
        raise CannotGrade(f"unknown exercise: {exc}") from None
    return slug


def _all_zero(slug: str, reason: str) -> dict[str, Any]:
    """Every test of every question failed with ``reason`` (when no function could be called at all)."""
    from .grading import load_exercise
    ex = load_exercise(slug)
    return {"exercise": slug, "points": 0, "max_points": ex.max_points, "questions": {
        q: {"question": q, "title": qq.title, "points": 0, "max_points": qq.max_points,
            "tests": [{"name": t.name, "points": 0, "max_points": t.points, "passed": False, "message": reason}
                      for t in qq.tests]} for q, qq in ex.questions.items()}}


def _import_all(packages: list[str]) -> None:
    import importlib
    import pkgutil
    for name in packages:
        with contextlib.suppress(ImportError):
            package = importlib.import_module(name)
            for info in pkgutil.iter_modules(getattr(package, "__path__", []), f"{name}."):
                with contextlib.suppress(Exception):
                    importlib.import_module(info.name)


def _package_changes(snapshot: Any, where: str, restore: bool) -> list[dict[str, Any]]:
    found = []
    for d in snapshot.diff():
        found.append({"kind": where, "name": d["path"], "detail": f"{d['change']} while the submission ran"
                      + (" (restored from the snapshot taken before)" if restore else "")})
    if found and restore:
        for problem in snapshot.restore():
            found.append({"kind": where, "name": "restore", "detail": f"could not restore: {problem}"})
    return found


def _add(into: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    seen = {(t["kind"], t["name"]) for t in into}
    for t in items:
        if (t["kind"], t["name"]) not in seen:
            seen.add((t["kind"], t["name"]))
            into.append(t)


def grade_notebook(path: str | Path, exercise: str | None = None, timeout: float = 300.0,
                   cell_timeout: float = 120.0, package_root: str | Path | None = None) -> dict[str, Any]:
    """Execute and grade one submission; return the report (``status`` is ``graded`` or ``error``).

    ``timeout`` limits the learner's cells together, ``cell_timeout`` each one. ``package_root`` is the
    installed ``cnnkit`` folder to protect and copy (default: the one this module comes from; tests pass a
    temporary copy so that the real tree is never at risk).
    """
    path = Path(path)
    start = time.perf_counter()
    report: dict[str, Any] = {"submission": str(path), "status": "error", "exercise": exercise}
    try:
        nb = _read(path)
        slug = _which_exercise(nb, exercise)
    except CannotGrade as exc:
        return report | {"error": str(exc)}
    report["exercise"] = slug
    # everything the trusted side needs is imported now, before the snapshot and before any submission code
    from jupyter_client.blocking import BlockingKernelClient  # noqa: F401
    from . import grade_integrity as integrity
    from . import grade_remote as remote
    from .checks import guard
    from .grading import load_exercise
    ex = load_exercise(slug)
    _import_all(["cnnkit.checks", "cnnkit.ops"])  # so no test can lazily import a file the submission forged
    for q in ex.questions.values():  # the imports the tests' rules need, here too, before the snapshot
        with contextlib.suppress(Exception):
            guard.prepare(q.rules)
    root = Path(package_root) if package_root is not None else Path(__file__).resolve().parent
    wrote_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no .pyc of ours in the package
    tampering: list[dict[str, Any]] = []
    try:
        try:
            snapshot = integrity.Snapshot.take(root)
            runner_text, guard_text = snapshot.text("grade_runner.py"), snapshot.text("checks/guard.py")
        except KeyError as exc:
            return report | {"error": f"cannot grade with the package at {root}: it has no {exc.args[0]} "
                                      "(is it the cnnkit package folder?)"}
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            return report | {"error": f"cannot grade with the package at {root}: {exc}"}
        box = integrity.make_sandbox(path, snapshot)
        try:
            pristine = integrity.Snapshot.take(box.package)
            files = (snapshot, pristine)
            result, problems = _grade_in_kernel(nb, slug, ex, box, files, (runner_text, guard_text), timeout,
                                                cell_timeout, tampering, integrity, remote)
        finally:
            _add(tampering, _package_changes(snapshot, "installed package", restore=True))
            _add(tampering, _package_changes(pristine, "pristine copy", restore=False))
            box.cleanup()
    finally:
        sys.dont_write_bytecode = wrote_bytecode
    _add(tampering, [{"kind": "notebook", "name": r["name"], "detail": f"cell {r['cell']} rebinds `{r['name']}`: "
                      f"`{r['code']}`"} for r in integrity.redefinitions(nb.cells, slug)])
    return report | result | {
        "status": "graded", "problems": problems, "tampering": tampering,
        "check_cells": integrity.check_cell_problems(nb.cells, ex),
        "package": {"root": str(root), "sha256": snapshot.digest, "files": len(snapshot.files)},
        "seconds": round(time.perf_counter() - start, 2)}


def _grade_in_kernel(nb: Any, slug: str, ex: Any, box: Any, files: tuple, texts: tuple[str, str], timeout: float,
                     cell_timeout: float, tampering: list, integrity: Any, remote: Any) -> tuple[dict, list]:
    """Run the learner's cells in the sandboxed kernel, then grade through proxies; fill ``tampering``."""
    from .checks import guard
    from .grading import grade_namespace
    snapshot, pristine = files
    problems: list[dict[str, Any]] = []
    runner = (texts[0], str(box.package / "grade_runner.py"))
    guard_src = (texts[1], str(box.package / "checks" / "guard.py"))
    with KernelSession(box.work, integrity.kernel_env(box), inherit=False) as kernel:
        rk = remote.RemoteKernel(kernel, box.calls, slug, runner, guard_src)
        base, run = rk.baseline()
        if base is None:
            problems.append({"cell": None, "kind": "grader", "message": "the grader's first cell failed in a clean "
                             f"kernel ({run.status}: {run.ename}: {run.evalue}); patches cannot be detected",
                             "code": ""})
        deadline = time.monotonic() + timeout
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                problems.append({"cell": index, "kind": "timeout",
                                 "message": f"not run: the {timeout:g} s limit for the notebook was used up"})
                continue
            run = kernel.run(cell.source, timeout=min(left, cell_timeout))
            if run.status != "ok":
                first_line = cell.source.strip().splitlines()[0][:80]
                problems.append({"cell": index, "kind": run.status, "message": f"{run.ename}: {run.evalue}".strip(),
                                 "code": first_line})
        # the files first: the tests below must not lazily import a forged module
        _add(tampering, _package_changes(snapshot, "installed package", restore=True))
        _add(tampering, _package_changes(pristine, "pristine copy", restore=False))
        if kernel.dead:
            reason = ("not graded: the kernel died or hung (see the problems listed), so no function could be "
                      "checked")
            return _all_zero(slug, reason), problems
        names = sorted({n for q in ex.questions.values() for n in q.names})
        rules = [q.rules.to_wire() for q in ex.questions.values() if hasattr(q, "rules")]
        found, run = rk.start(names, rules)
        if found is None:
            reason = (f"not graded: the grader could not run the notebook's functions in its kernel ({run.status}: "
                      f"{run.ename}: {run.evalue})")
            problems.append({"cell": None, "kind": "grader", "message": reason, "code": ""})
            return _all_zero(slug, reason), problems
        setup, _ = rk.probe()
        if base is not None and setup is not None:
            _add(tampering, remote.changes(base["fingerprint"], setup["fingerprint"], "by the notebook's cells"))
        for p in (setup or {}).get("namespace", []):
            _add(tampering, [{"kind": "kernel", "name": p["name"], "detail": p["detail"]}])
        namespace = {n: remote.RemoteFunction(rk, n) if desc is None else guard.Opaque(str(desc))
                     for n, desc in found.items()}
        result = grade_namespace(slug, namespace)
        result["calls"] = rk.calls_made
        problems += rk.problems
        _add(tampering, rk.tampering)
        if not kernel.dead:
            final, _ = rk.probe()
            if setup is not None and final is not None:
                _add(tampering, remote.changes(setup["fingerprint"], final["fingerprint"],
                                               "while its functions were graded"))
            for p in (final or {}).get("namespace", []):
                _add(tampering, [{"kind": "kernel", "name": p["name"], "detail": p["detail"]}])
    return result, problems


def format_report(report: dict[str, Any]) -> str:
    """The report as text for the terminal."""
    if report["status"] != "graded":
        return f"could not grade {report['submission']}: {report.get('error')}"
    lines = [f"{report['submission']}: exercise {report['exercise']}"]
    for qid, q in report["questions"].items():
        lines.append(f"  {qid} {q.get('title', '')}: {q['points']}/{q['max_points']}")
        for t in q["tests"]:
            lines.append(f"    {'✅' if t['passed'] else '❌'} {t['name']}")
            if t["message"]:
                lines.append(textwrap.fill(t["message"], width=100, initial_indent="       ",
                                           subsequent_indent="       ", break_long_words=False, break_on_hyphens=False))
    for p in report.get("problems", []):
        where = f"cell {p['cell']}" if p.get("cell") is not None else "grading"
        lines.append(f"  ⚠ {where} ({p['kind']}): {p['message']}")
    for c in report.get("check_cells", []):
        lines.append(f"  ⚠ check cell of {c['question']} {c['change']}: expected `{c['expected']}`"
                     + (f" (cell {c['cell']})" if c.get("cell") is not None else ""))
    for t in report.get("tampering", []):
        lines.append(f"  ⛔ tampering ({t['kind']}): {t['name']}: {t['detail']}")
    if report.get("seed") is not None:
        seed = report["seed"]
        lines.append(f"  random cases drawn with seed {seed} (CNNKIT_CHECK_SEED={seed} repeats them)")
    lines.append(f"  total: {report['points']}/{report['max_points']} points")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnkit.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submission", help="the learner's .ipynb")
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed for running all the learner's cells (default 300)")
    parser.add_argument("--cell-timeout", type=float, default=120.0,
                        help="seconds allowed for any one cell (default 120)")
    parser.add_argument("--exercise", help="the exercise slug, e.g. 01_convolution (default: from the notebook)")
    parser.add_argument("--package-root", metavar="DIR", help=argparse.SUPPRESS)  # tests: a copy to protect
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.cell_timeout <= 0:
        parser.error(f"--timeout and --cell-timeout must be positive, got {args.timeout} and {args.cell_timeout}")
    report = grade_notebook(args.submission, args.exercise, args.timeout, args.cell_timeout, args.package_root)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return GRADED if report["status"] == "graded" else NOT_GRADED


if __name__ == "__main__":
    sys.exit(main())
