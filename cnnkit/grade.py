"""Instructor CLI: grade a submitted exercise notebook in a fresh kernel with the tests installed in cnnkit.

    python -m cnnkit.grade SUBMISSION.ipynb [--json report.json] [--timeout S] [--cell-timeout S] [--exercise SLUG]

The learner's cells run in order (their own ``check(...)`` calls are skipped with ``CNNKIT_DEFER_CHECKS=1``),
then one cell the grader appends grades the functions the notebook defined, by the names each question
declares. Errors, hangs, a dead kernel and deleted cells are named in the report. Exit status: 0 graded
(whatever the score), 2 could not grade (unreadable, not a notebook, unknown or wrong exercise).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbclient.util import run_sync

__all__ = ["KernelSession", "CellRun", "grade_notebook", "main", "REPORT_MIME", "GRADED", "NOT_GRADED"]

GRADED, NOT_GRADED = 0, 2
REPORT_MIME = "application/vnd.cnnkit.report+json"
GRADING_CELL_TIMEOUT = 300.0
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

    def __init__(self, cwd: str | Path, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()) -> None:
        self.nb = nbformat.v4.new_notebook()
        self.client = _Client(
            self.nb, timeout=60, allow_errors=True, kernel_name="python3", interrupt_on_timeout=True,
            error_on_timeout={"ename": _TIMEOUT, "evalue": "the cell ran out of time", "traceback": []},
            resources={"metadata": {"path": str(cwd)}})
        self.client.shutdown_kernel = "immediate"  # nothing to save: do not wait for a graceful shutdown
        self.client.on_cell_executed = self._on_executed
        self.env = {k: v for k, v in os.environ.items() if k not in unset} | (env or {})
        self.dead = False
        self._ctx = None
        self._reply: dict[str, Any] = {}

    def __enter__(self) -> KernelSession:
        self._ctx = self.client.setup_kernel(env=self.env)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
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


def _grading_source(slug: str) -> str:
    return "\n".join([
        "import sys as _cnnkit_sys",
        "for _m in [m for m in _cnnkit_sys.modules if m == 'cnnkit.grading' or m.startswith('cnnkit.checks')]:",
        "    del _cnnkit_sys.modules[_m]",
        "from cnnkit.grading import grade_namespace as _cnnkit_grade",
        "from IPython.display import display as _cnnkit_display",
        f"_cnnkit_display({{{REPORT_MIME!r}: _cnnkit_grade({slug!r}, globals())}}, raw=True)",
    ])


def grade_notebook(path: str | Path, exercise: str | None = None, timeout: float = 300.0,
                   cell_timeout: float = 120.0) -> dict[str, Any]:
    """Execute and grade one submission; return the report (``status`` is ``graded`` or ``error``).

    ``timeout`` limits the learner's cells together, ``cell_timeout`` each one.
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
    problems: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    env = {"CNNKIT_DEFER_CHECKS": "1"}
    with KernelSession(path.parent.resolve(), env, unset=("CNNKIT_STRICT", "CNNKIT_GRADE_LOG")) as kernel:
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
        graded = kernel.run(_grading_source(slug), timeout=GRADING_CELL_TIMEOUT)
    result = next((o["data"][REPORT_MIME] for o in graded.outputs
                   if o.get("output_type") == "display_data" and REPORT_MIME in o.get("data", {})), None)
    if result is None:
        if graded.status in ("dead", "timeout"):
            from .grading import load_exercise
            ex = load_exercise(slug)
            reason = (f"not graded: the kernel {'died or hung' if graded.status == 'dead' else 'timed out while grading'}"
                      " (see the problems listed), so no function could be checked")
            result = {"exercise": slug, "points": 0, "max_points": ex.max_points, "questions": {
                q: {"question": q, "title": qq.title, "points": 0, "max_points": qq.max_points,
                    "tests": [{"name": t.name, "points": 0, "max_points": t.points, "passed": False,
                               "message": reason} for t in qq.tests]} for q, qq in ex.questions.items()}}
        else:
            why = f"{graded.ename}: {graded.evalue}" if graded.ename else "it ran but displayed no report"
            return report | {"error": f"the grading cell failed: {why}", "problems": problems}
    return report | result | {"status": "graded", "problems": problems,
                              "seconds": round(time.perf_counter() - start, 2)}


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
        lines.append(f"  ⚠ cell {p['cell']} ({p['kind']}): {p['message']}")
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
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.cell_timeout <= 0:
        parser.error(f"--timeout and --cell-timeout must be positive, got {args.timeout} and {args.cell_timeout}")
    report = grade_notebook(args.submission, args.exercise, args.timeout, args.cell_timeout)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return GRADED if report["status"] == "graded" else NOT_GRADED


if __name__ == "__main__":
    sys.exit(main())
