"""The runtime table: notebook measurements, their budgets, the results files and the page ``book/runtimes.md``.

Pure functions of their inputs (nothing here runs a notebook), so ``tests/test_benchmarks.py`` can check them on
fake timings. ``notebooks.py`` measures and calls these; ``notebooks.py --from-json`` only renders.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
CPU_RESULTS = RESULTS_DIR / "notebooks.json"
GPU_RESULTS = RESULTS_DIR / "notebooks_gpu.json"
CONV_RESULTS = RESULTS_DIR / "conv.json"
PAGE = ROOT / "book" / "runtimes.md"
BUDGETS_S = {"chapter": 180.0, "exercise": 30.0}  # quick profile, 2 CPU cores (COURSE.md section 4)
TOTAL_BUDGET_S = 900.0


@dataclass
class NotebookRun:
    """One notebook's measurement. ``status`` is ``ok``, ``error``, ``timeout`` or ``dead kernel``."""

    path: str                      # relative to the repository root, e.g. "chapters/01_convolution.ipynb"
    kind: str                      # "chapter" or "exercise"
    title: str
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    status: str = "ok"
    error: str | None = None
    date: str = ""
    load_average: list[float] = field(default_factory=list)  # 1-min load average before and after
    gpu_peak_mb: float | None = None


def kind_of(rel_path: str) -> str:
    """``chapter`` or ``exercise`` from the folder; anything else is a ``ValueError``."""
    folder = rel_path.split("/", 1)[0]
    if folder == "chapters":
        return "chapter"
    if folder == "exercises":
        return "exercise"
    raise ValueError(f"{rel_path!r} is neither under chapters/ nor exercises/; only those are benchmarked.")


# ---------------------------------------------------------------- budgets and results files
def total_s(runs: list[NotebookRun]) -> float:
    return sum(r.wall_s for r in runs)


def within_budget(run: NotebookRun) -> bool:
    return run.status == "ok" and run.wall_s <= BUDGETS_S[run.kind]


def budget_problems(runs: list[NotebookRun], profile: str = "quick") -> list[str]:
    """Every failed notebook, and in the quick profile every budget broken (empty list: all fine)."""
    problems = [f"{r.path}: {r.status}: {r.error}" for r in runs if r.status != "ok"]
    if profile != "quick":
        return problems
    for r in runs:
        if r.status == "ok" and r.wall_s > BUDGETS_S[r.kind]:
            problems.append(f"{r.path}: {r.wall_s:.0f} s is over the {r.kind} budget of {BUDGETS_S[r.kind]:.0f} s")
    if total_s(runs) > TOTAL_BUDGET_S:
        problems.append(f"all notebooks together: {total_s(runs):.0f} s is over the budget of {TOTAL_BUDGET_S:.0f} s")
    return problems


def merge(old: list[NotebookRun], new: list[NotebookRun], existing: set[str] | None = None) -> list[NotebookRun]:
    """``old`` with ``new`` measurements replacing theirs; entries whose notebook is not in ``existing`` drop."""
    by_path = {r.path: r for r in old}
    by_path.update({r.path: r for r in new})
    return [by_path[p] for p in sorted(by_path) if existing is None or p in existing]


def save_results(path: Path, machine: dict, runs: list[NotebookRun], method: str = "") -> None:
    """Write ``machine`` info, the budgets, how memory was measured (``method``), the total and the runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, "budgets_s": BUDGETS_S | {"total": TOTAL_BUDGET_S}, "method": method,
               "total_s": round(total_s(runs), 2), "notebooks": [asdict(r) for r in runs]}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def load_results(path: Path) -> tuple[dict, list[NotebookRun]] | None:
    """``(machine, runs)`` from a results file, or ``None`` if it does not exist."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return data["machine"], [NotebookRun(**r) for r in data["notebooks"]]


# ---------------------------------------------------------------- tables
def fmt_s(seconds: float) -> str:
    """``7.3 s``, ``95 s``, ``2 min 5 s``, ``3 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if round(seconds) < 100:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec} s" if sec else f"{minutes} min"


def fmt_mb(mb: float | None) -> str:
    if mb is None:
        return "–"
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def console_table(runs: list[NotebookRun], profile: str = "quick") -> str:
    """The measurements as a plain-text table with a total line."""
    check = profile == "quick"
    head = f"{'notebook':<42} {'wall':>11} {'cpu':>11} {'peak mem':>10} {'budget':>7}  ok?"
    lines = [head, "-" * len(head)]
    for r in runs:
        ok = ("yes" if within_budget(r) else "NO") if check else ("yes" if r.status == "ok" else "NO")
        status = "" if r.status == "ok" else f"  ({r.status}: {r.error})"
        lines.append(f"{r.path:<42} {fmt_s(r.wall_s):>11} {fmt_s(r.cpu_s):>11} {fmt_mb(r.peak_rss_mb):>10} "
                     f"{fmt_s(BUDGETS_S[r.kind]) if check else '-':>7}  {ok}{status}")
    total_ok = ("yes" if total_s(runs) <= TOTAL_BUDGET_S else "NO") if check else "-"
    lines.append(f"{'total (' + str(len(runs)) + ' notebooks)':<42} {fmt_s(total_s(runs)):>11} "
                 f"{fmt_s(sum(r.cpu_s for r in runs)):>11} {'':>10} "
                 f"{fmt_s(TOTAL_BUDGET_S) if check else '-':>7}  {total_ok}")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _doc_link(r: NotebookRun) -> str:
    """The notebook's title, linked to its page (the path itself is the link target, not shown)."""
    title = _cell(r.title).replace("<", "&lt;").replace("`", "")
    return f"{{doc}}`{title} </{r.path.rsplit('.', 1)[0]}>`"


def _table(caption: str, head: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table in a ``table`` directive: a caption, and the class ``stack-on-phone`` that makes each
    row a block of "Header: value" lines on narrow screens (book/_assets/site.css and site.js)."""
    return [f":::{{table}} {caption}", ":class: stack-on-phone", "",
            "| " + " | ".join(head) + " |", "|" + "|".join(align) + "|",
            *("| " + " | ".join(row) + " |" for row in rows), ":::", ""]


def render_page(cpu: tuple[dict, list[NotebookRun]] | None, gpu: tuple[dict, list[NotebookRun]] | None = None,
                conv: dict | None = None) -> str:
    """The Markdown of ``book/runtimes.md`` from the results (a pure function of its arguments).

    The tables are kept narrow enough for the content column at 1280 px (688 px) and stack on phones: one
    table per kind of notebook with the budget in its caption, the notebook named once (its title, linked),
    and the total as a sentence."""
    out = ["# Measured run times", "",
           "<!-- Generated by benchmarks/notebooks.py (`make bench`) from benchmarks/results/; do not edit. -->", "",
           "Every notebook of the course runs from top to bottom in a fresh Python kernel, and this page reports "
           "how long that took, how much memory the kernel used at its peak, and whether the notebook stays "
           "within the course's budget: 3 minutes for a chapter, 30 seconds for an exercise notebook and "
           "15 minutes for all of them together, in the `quick` profile on 2 CPU cores. The page is "
           "generated by `make bench`; the numbers are measurements, not estimates.", ""]
    if cpu is None:
        out += ["No measurements yet: run `make bench`.", ""]
    else:
        machine, runs = cpu
        gpu_runs = {r.path: r for r in gpu[1]} if gpu else {}
        dates = sorted({r.date[:10] for r in runs if r.date})
        when = dates[0] if len(dates) == 1 else (f"{dates[0]} to {dates[-1]}" if dates else machine["date"][:10])
        out += [f"Measured on {when} on {machine['cpu']} ({machine['cores']} cores, "
                f"{machine['torch_threads']} PyTorch threads), PyTorch {machine['torch']}, Python "
                f"{machine['python']}, device `{machine['device']}`, profile `{machine['profile']}`. "
                "*Wall time* includes starting the kernel; *CPU time* is the processor time the kernel and its "
                "child processes used (with 2 threads it can reach twice the wall time; far below the wall time, "
                "it means the notebook waited for other work); *peak memory* is the resident memory of the kernel "
                "and its child processes.", ""]
        loads = [v for r in runs for v in r.load_average if v == v]
        cores = machine.get("cores") or 1
        if loads and max(loads) > 1.5 * cores:
            out += [f"```{{note}}\nThe machine was shared with other work during this run (load average up to "
                    f"{max(loads):.1f} on {cores} cores), so these times are longer than on a quiet machine.\n"
                    "```", ""]
        check = machine["profile"] == "quick"
        head = ["Notebook", "Wall time", "CPU time", "Peak memory", "Within budget?" if check else "Ran?"]
        align = ["---", "--:", "--:", "--:", ":-:"]
        if gpu:
            head += ["GPU wall time", "GPU memory"]
            align += ["--:", "--:"]
        for kind, label in (("chapter", "Chapters"), ("exercise", "Exercise notebooks")):
            group = [r for r in runs if r.kind == kind]
            if not group:
                continue
            rows = []
            for r in group:
                fine = within_budget(r) if check else r.status == "ok"
                # Words, not ✅/❌: they read the same in every font and to a screen reader.
                ok = "yes" if fine else "**no**: " + (r.status if r.status != "ok" else "over budget")
                row = [_doc_link(r), fmt_s(r.wall_s), fmt_s(r.cpu_s), fmt_mb(r.peak_rss_mb), ok]
                if gpu:
                    g = gpu_runs.get(r.path)
                    row += [fmt_s(g.wall_s) if g else "–", fmt_mb(g.gpu_peak_mb) if g else "–"]
                rows.append(row)
            caption = f"{label}" + (f" (budget {fmt_s(BUDGETS_S[kind])} each)" if check else "")
            out += _table(caption, head, align, rows)
        total_ok = ("within" if total_s(runs) <= TOTAL_BUDGET_S else "**over**") if check else ""
        budget = f" ({total_ok} the budget of {fmt_s(TOTAL_BUDGET_S)})" if check else ""
        out += [f"**Total ({len(runs)} notebooks):** {fmt_s(total_s(runs))} of wall time{budget}, "
                f"{fmt_s(sum(r.cpu_s for r in runs))} of CPU time; the largest peak memory was "
                f"{fmt_mb(max((r.peak_rss_mb for r in runs), default=None))}."
                + (f" On the GPU: {fmt_s(total_s(list(gpu_runs.values())))} of wall time." if gpu else ""), ""]
    if gpu:
        gm = gpu[0]
        out += [f"The GPU columns were measured on {gm.get('gpu', 'a GPU')} on {gm['date'][:10]} in the "
                f"`{gm['profile']}` profile (PyTorch {gm['torch']}); *GPU memory* is the peak rise of the GPU's "
                "used memory while the notebook ran.", ""]
    else:
        out += ["GPU run times: not yet measured.", ""]
    if conv:
        out += _conv_section(conv)
    return "\n".join(out).rstrip() + "\n"


def _conv_section(conv: dict) -> list[str]:
    m = conv["machine"]
    devices = sorted({r["device"] for r in conv["rows"]})
    out = ["## Convolution by hand versus PyTorch", "",
           "`cnnkit.ops.conv2d` (im2col with `F.unfold`, then one matrix product) and the loop version "
           "`conv2d_naive` from chapter 1, timed against `F.conv2d` in the same run (`benchmarks/conv.py`), "
           f"best of {conv['repeats']} runs after {conv['warmup']} warm-up runs, on {m['cpu']} with "
           f"{m['torch_threads']} threads" + (f" and on {m['gpu']}" if m.get("gpu") else "") + f" ({m['date'][:10]}). "
           "Every layer is a 3×3 convolution with padding 1, described by its input → output channels, its "
           "image size and its batch size. "
           "The ratio is how many times slower the hand-written version is; the target for `conv2d` is at most "
           f"{conv['target_ratio']:g}× on the CPU. *Ratio (CPU time)* compares processor time instead of wall "
           "time, which other work on the machine disturbs less; *forward + backward ratio* compares a forward and a "
           "backward pass together."
           + _busy(m.get("load_average"), m.get("cores")), ""]
    head = ["Layer", "`F.conv2d`", "`conv2d`", "Ratio", "Ratio (CPU time)", "`conv2d_naive` (ratio)",
            "Forward + backward ratio"]
    align = ["---", "--:", "--:", "--:", "--:", "--:", "--:"]
    if len(devices) > 1:
        head.insert(1, "Device")
        align.insert(1, "---")
    rows = []
    for r in conv["rows"]:
        b, cin, h, w, cout = r["shape"]
        naive, train = r.get("naive_ms"), r.get("train_ratio")
        cells = [f"{cin}→{cout}, {h}×{w}, batch {b}", f"{r['torch_ms']:.2f} ms", f"{r['unfold_ms']:.2f} ms",
                 f"{r['ratio']:.1f}×", f"{r['cpu_ratio']:.1f}×" if r.get("cpu_ratio") is not None else "–",
                 f"{naive:.1f} ms ({naive / r['torch_ms']:.0f}×)" if naive is not None else "–",
                 f"{train:.1f}×" if train is not None else "–"]
        if len(devices) > 1:
            cells.insert(1, r["device"])
        rows.append(cells)
    caption = "Hand-written convolution versus `F.conv2d`" + (f" (device `{devices[0]}`)" if len(devices) == 1 else "")
    return out + _table(caption, head, align, rows)


def _busy(load: list[float] | None, cores: int | None) -> str:
    """A warning sentence when the 1-minute load average exceeded 1.5x the core count, else ``""``."""
    if not load or not cores or load[0] <= 1.5 * cores:
        return ""
    return f" The machine was busy during this run (load average {load[0]:.1f} on {cores} cores)."


def write_page(page: Path = PAGE) -> str:
    """Regenerate the page from whatever results files exist; returns its text."""
    conv = json.loads(CONV_RESULTS.read_text()) if CONV_RESULTS.exists() else None
    text = render_page(load_results(CPU_RESULTS), load_results(GPU_RESULTS), conv)
    page.write_text(text)
    return text
