"""Run every notebook of the course once, measure it, and write the runtime table the book shows.

Each notebook (``chapters/*.ipynb`` and the student ``exercises/*.ipynb``) runs top to bottom in a fresh
kernel (nbclient) on a temporary copy, so no output is ever written into the repository's notebooks. Per
notebook it records the wall time (kernel start included), the peak memory and the CPU time of the kernel's
process tree (sampled with psutil every 0.1 s; the peak is at least the kernel's own high-water mark, VmHWM),
and the machine's load average. Results go to ``benchmarks/results/notebooks.json`` (``notebooks_gpu.json``
with ``--device cuda``) and the page ``book/runtimes.md`` is regenerated from the results files.

    python benchmarks/notebooks.py                     # all notebooks, quick profile, on the CPU
    python benchmarks/notebooks.py --only 03_          # re-measure matching notebooks, keep the others
    python benchmarks/notebooks.py --from-json         # rebuild book/runtimes.md from the results files
    CNNKIT_PROFILE=full python benchmarks/notebooks.py --device cuda   # on a GPU machine

Exit status 1 if a notebook fails, or (quick profile) a chapter takes over 3 min, an exercise over 30 s, or
all notebooks together over 15 min.
"""
from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# a sibling module: found because Python puts this script's folder first on the import path
from runtime_table import (CPU_RESULTS, GPU_RESULTS, PAGE, ROOT, NotebookRun, budget_problems, console_table,
                           fmt_mb, fmt_s, kind_of, load_results, merge, save_results, write_page)

NOTEBOOK_DIRS = ("chapters", "exercises")  # not exercises/source: those hold the solutions
SAMPLE_EVERY_S = 0.1
METHOD = (f"psutil: summed RSS and CPU time of the kernel process tree every {SAMPLE_EVERY_S} s; "
          "peak raised to the kernel's VmHWM")


# ---------------------------------------------------------------- finding notebooks
def discover(root: Path = ROOT, only: str | None = None) -> list[Path]:
    """Chapter and student exercise notebooks under ``root``, sorted; ``only`` filters them.

    ``only`` is a glob (``*conv*``) or, without wildcards, a substring of the relative path.
    """
    found = sorted(p for d in NOTEBOOK_DIRS for p in (root / d).glob("*.ipynb"))
    if only:
        pattern = only if any(ch in only for ch in "*?[") else f"*{only}*"
        found = [p for p in found if fnmatch.fnmatch(p.relative_to(root).as_posix(), pattern)]
    return found


def notebook_title(nb: dict) -> str:
    """The first ``# `` heading of the notebook, or ``""``."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        for line in src.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return ""


# ---------------------------------------------------------------- measuring
class TreeSampler(threading.Thread):
    """Samples the RSS and CPU time of this process's descendants (the kernel and its children).

    The runner itself is not counted. ``peak_rss_mb`` is the largest summed RSS seen, or the kernel's own
    VmHWM if that is larger (it catches a spike between two samples); ``cpu_s`` is the user + system time
    of the descendants at their last sample (approximate: a child that lives less than 0.1 s is missed).
    """

    def __init__(self, interval: float = SAMPLE_EVERY_S, gpu: bool = False):
        super().__init__(daemon=True)
        import psutil  # a dependency of ipykernel, so present wherever notebooks run

        self._psutil = psutil
        self._me = psutil.Process()
        self.interval = interval
        self.gpu = gpu and shutil.which("nvidia-smi") is not None
        self._halt = threading.Event()
        self.peak_rss = 0
        self.hwm = 0
        self.cpu: dict[int, float] = {}
        self.gpu_base = self._gpu_used_mb() if self.gpu else None
        self.gpu_peak: float | None = None

    def _gpu_used_mb(self) -> float | None:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            return sum(float(v) for v in out.split())
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    def sample(self) -> None:
        total = 0
        for proc in self._me.children(recursive=True):
            try:
                with proc.oneshot():
                    total += proc.memory_info().rss
                    t = proc.cpu_times()
                    self.cpu[proc.pid] = t.user + t.system + t.children_user + t.children_system
                if proc.ppid() == self._me.pid:  # the kernel: read its RSS high-water mark too
                    self.hwm = max(self.hwm, _vm_hwm(proc.pid))
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied, self._psutil.ZombieProcess):
                continue
        self.peak_rss = max(self.peak_rss, total)

    def run(self) -> None:
        last_gpu = 0.0
        while not self._halt.is_set():
            self.sample()
            if self.gpu and time.monotonic() - last_gpu > 0.5:  # nvidia-smi is slow: sample it less often
                last_gpu = time.monotonic()
                used = self._gpu_used_mb()
                if used is not None and self.gpu_base is not None:
                    self.gpu_peak = max(self.gpu_peak or 0.0, used - self.gpu_base)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    @property
    def peak_rss_mb(self) -> float:
        return max(self.peak_rss, self.hwm) / 2**20

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())


def _vm_hwm(pid: int) -> int:
    """Peak resident set size of one process in bytes (Linux ``/proc/PID/status``), 0 elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _load() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


def run_notebook(path: Path, timeout: int, gpu: bool = False) -> NotebookRun:
    """Execute a temporary copy of ``path`` in a fresh kernel and measure it; never raises on a failing cell."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    rel = path.relative_to(ROOT).as_posix()
    nb = nbformat.read(path, as_version=4)
    status, error = "ok", None
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        workdir = Path(tmp) / path.parent.name  # the kernel starts in a copy of the notebook's folder
        workdir.mkdir()
        shutil.copy2(path, workdir / path.name)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        sampler = TreeSampler(gpu=gpu)
        sampler.start()
        start = time.perf_counter()
        try:
            client.execute()
        except CellTimeoutError as exc:
            status, error = "timeout", _first_line(exc)
        except DeadKernelError as exc:
            status, error = "dead kernel", _first_line(exc)
        except CellExecutionError as exc:
            status, error = "error", _error_summary(exc)
        finally:
            wall = time.perf_counter() - start
            sampler.stop()
    return NotebookRun(path=rel, kind=kind_of(rel), title=notebook_title(nb), wall_s=round(wall, 2),
                       peak_rss_mb=round(sampler.peak_rss_mb, 1), cpu_s=round(sampler.cpu_s, 2), status=status,
                       error=error, date=_now(), load_average=[load_before, _load()],
                       gpu_peak_mb=None if sampler.gpu_peak is None else round(sampler.gpu_peak, 1))


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(exc: BaseException) -> str:
    text = ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _error_summary(exc: BaseException) -> str:
    """The exception line of a cell error (e.g. ``ValueError: ...``), not the whole traceback."""
    lines = [ln for ln in ANSI.sub("", str(exc)).strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line.strip()[:300]
    return lines[-1][:300] if lines else type(exc).__name__


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine_info(device: str, profile: str) -> dict:
    """CPU model, cores, torch version and threads, date, profile and device (with the GPU's name)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "date": _now(), "profile": profile, "device": device}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", metavar="PATTERN", help="measure only notebooks whose path matches (glob or "
                        "substring); the other notebooks keep their previous results")
    parser.add_argument("--profile", choices=["quick", "full"], default=None,
                        help="cnnkit profile (default: $CNNKIT_PROFILE, else quick on cpu and full on cuda)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="device the notebooks use (sets CNNKIT_DEVICE); cuda writes notebooks_gpu.json")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="print the table only; write no files")
    parser.add_argument("--from-json", action="store_true", help="run nothing: rebuild the page from the results")
    parser.add_argument("--output", type=Path, default=None, help="results file (default by device)")
    args = parser.parse_args(argv)
    output = args.output or (GPU_RESULTS if args.device == "cuda" else CPU_RESULTS)

    if args.from_json:
        loaded = load_results(output)
        if loaded is None:
            parser.error(f"{output} does not exist; run `make bench` (without --from-json) first.")
        machine, runs = loaded
        print(console_table(runs, machine["profile"]))
        if not args.no_write:
            write_page()
            print(f"wrote {PAGE.relative_to(ROOT)}")
        return _report(budget_problems(runs, machine["profile"]))

    profile = args.profile or os.environ.get("CNNKIT_PROFILE") or ("full" if args.device == "cuda" else "quick")
    if profile not in ("quick", "full"):
        parser.error(f"CNNKIT_PROFILE={profile!r} is not a profile; use quick or full.")
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU is visible here (torch.cuda.is_available() is False); "
                         "run on a GPU machine or use --device cpu.")
    os.environ["CNNKIT_PROFILE"] = profile     # inherited by every kernel
    os.environ["CNNKIT_DEVICE"] = args.device
    os.environ.setdefault("MPLBACKEND", "agg")
    paths = discover(ROOT, args.only)
    if not paths:
        parser.error(f"no notebook under chapters/ or exercises/ matches {args.only!r}" if args.only
                     else "no notebooks found under chapters/ or exercises/")
    machine = machine_info(args.device, profile)
    print(f"{len(paths)} notebooks, profile {profile}, device {args.device}, {machine['cpu']} "
          f"({machine['cores']} cores), torch {machine['torch']}, load average {_load()}", flush=True)
    runs = []
    for path in paths:
        print(f"  {path.relative_to(ROOT)} ...", end=" ", flush=True)
        run = run_notebook(path, args.timeout, gpu=args.device == "cuda")
        print(f"{fmt_s(run.wall_s)}, {fmt_mb(run.peak_rss_mb)}" + ("" if run.status == "ok" else f", {run.status}: "
              f"{run.error}"), flush=True)
        runs.append(run)
    if args.only and not args.no_write:
        previous = load_results(output)
        existing = {p.relative_to(ROOT).as_posix() for p in discover(ROOT)}
        runs = merge(previous[1] if previous else [], runs, existing)
    print(console_table(runs, profile))
    if not args.no_write:
        save_results(output, machine, runs, METHOD)
        write_page()
        print(f"wrote {output.relative_to(ROOT)} and {PAGE.relative_to(ROOT)}")
    return _report(budget_problems(runs, profile))


def _report(problems: list[str]) -> int:
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    if not problems:
        print("all notebooks ran and are within budget")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
