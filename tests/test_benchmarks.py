"""The benchmark scripts' logic on fake timings (no notebook runs here), and the committed runtime page.

`test_runtime_page_lists_every_notebook` fails whenever a notebook exists that the committed page
`book/runtimes.md` does not list: run `make bench` (it executes every notebook, about 15 minutes) and
commit `benchmarks/results/` and `book/runtimes.md` with the new notebook.
"""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, module_name: str):
    """Import a script from benchmarks/ by path (benchmarks/ is not a package, and sys.path stays as it is)."""
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses, and notebooks.py's `from runtime_table import`, look here
    spec.loader.exec_module(module)
    return module


rt = _load("runtime_table", "runtime_table")
nbb = _load("notebooks", "bench_notebooks")
convb = _load("conv", "bench_conv")


def fake(path: str, wall: float, status: str = "ok", **kw):
    return rt.NotebookRun(path=path, kind=rt.kind_of(path), title=kw.pop("title", "T"), wall_s=wall,
                          peak_rss_mb=kw.pop("mem", 700.0), cpu_s=kw.pop("cpu", wall), status=status,
                          date=kw.pop("date", "2026-01-02 10:00 UTC"), load_average=kw.pop("load", [1.0, 1.0]), **kw)


MACHINE = {"cpu": "Test CPU", "cores": 2, "torch": "2.0", "torch_threads": 2, "python": "3.11",
           "date": "2026-01-02 10:00 UTC", "profile": "quick", "device": "cpu"}


# ---------------------------------------------------------------- budgets
def test_within_budget_passes_nothing():
    runs = [fake("chapters/01_a.ipynb", 179.0), fake("exercises/01_a.ipynb", 29.5)]
    assert rt.budget_problems(runs) == []


@pytest.mark.parametrize("runs,expected", [
    ([fake("chapters/01_a.ipynb", 181.0)], "chapters/01_a.ipynb: 181 s is over the chapter budget of 180 s"),
    ([fake("exercises/01_a.ipynb", 31.0)], "exercises/01_a.ipynb: 31 s is over the exercise budget of 30 s"),
    ([fake(f"chapters/{i:02d}_a.ipynb", 170.0) for i in range(6)], "all notebooks together: 1020 s is over"),
    ([fake("chapters/01_a.ipynb", 5.0, status="error", error="ValueError: boom")], "error: ValueError: boom"),
])
def test_budget_problems_are_found(runs, expected):
    problems = rt.budget_problems(runs)
    assert any(expected in p for p in problems), problems


def test_full_profile_checks_failures_but_not_budgets():
    slow = [fake("chapters/01_a.ipynb", 1000.0)]
    assert rt.budget_problems(slow, profile="full") == []
    broken = [fake("chapters/01_a.ipynb", 1.0, status="timeout", error="cell timed out")]
    assert rt.budget_problems(broken, profile="full")


def test_kind_of_rejects_other_folders():
    assert rt.kind_of("chapters/x.ipynb") == "chapter" and rt.kind_of("exercises/x.ipynb") == "exercise"
    with pytest.raises(ValueError, match="neither under chapters/ nor exercises/"):
        rt.kind_of("exercises_source/x.ipynb")


def test_merge_replaces_keeps_and_drops():
    old = [fake("chapters/01_a.ipynb", 10.0), fake("chapters/02_b.ipynb", 20.0), fake("chapters/99_gone.ipynb", 1.0)]
    new = [fake("chapters/02_b.ipynb", 25.0), fake("exercises/01_a.ipynb", 3.0)]
    existing = {"chapters/01_a.ipynb", "chapters/02_b.ipynb", "exercises/01_a.ipynb"}
    merged = rt.merge(old, new, existing)
    assert [(r.path, r.wall_s) for r in merged] == [
        ("chapters/01_a.ipynb", 10.0), ("chapters/02_b.ipynb", 25.0), ("exercises/01_a.ipynb", 3.0)]


def test_discover_skips_exercise_sources_and_filters(tmp_path):
    for rel in ("chapters/01_a.ipynb", "chapters/02_b.ipynb", "exercises/01_a.ipynb", "exercises/source/01_a.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    rel = lambda ps: [p.relative_to(tmp_path).as_posix() for p in ps]  # noqa: E731
    assert rel(nbb.discover(tmp_path)) == ["chapters/01_a.ipynb", "chapters/02_b.ipynb", "exercises/01_a.ipynb"]
    assert rel(nbb.discover(tmp_path, "01_")) == ["chapters/01_a.ipynb", "exercises/01_a.ipynb"]
    assert rel(nbb.discover(tmp_path, "chapters/*")) == ["chapters/01_a.ipynb", "chapters/02_b.ipynb"]


def test_notebook_title_is_first_h1():
    nb = {"cells": [{"cell_type": "code", "source": "# comment"},
                    {"cell_type": "markdown", "source": ["Intro\n", "# 3. Pooling\n", "- objective"]}]}
    assert nbb.notebook_title(nb) == "3. Pooling"


@pytest.mark.parametrize("seconds,text", [(7.25, "7.2 s"), (95.4, "95 s"), (125, "2 min 5 s"), (180, "3 min"),
                                          (725, "12 min 5 s"), (900, "15 min")])
def test_fmt_s(seconds, text):
    assert rt.fmt_s(seconds) == text


# ---------------------------------------------------------------- the page
def test_page_table_marks_budgets_and_total():
    runs = [fake("chapters/01_a.ipynb", 95.0, title="1. A | b"), fake("chapters/02_b.ipynb", 200.0),
            fake("exercises/01_a.ipynb", 12.0, mem=1500.0)]
    page = rt.render_page((MACHINE, runs))
    rows = [line for line in page.splitlines() if line.startswith("| ")]
    assert rows[0] == "| Notebook | Wall time | CPU time | Peak memory | Within budget? |"
    assert rows[1] == "| {doc}`1. A \\| b </chapters/01_a>` | 95 s | 95 s | 700 MiB | yes |"
    assert rows[2].endswith("| 3 min 20 s | 3 min 20 s | 700 MiB | **no**: over budget |")
    assert rows[3] == rows[0] and rows[4].startswith("| {doc}`T </exercises/01_a>` | 12 s |")
    assert "1.46 GiB" in rows[4] and rows[4].endswith("| yes |")
    assert ":::{table} Chapters (budget 3 min each)" in page and "Exercise notebooks (budget 30 s each)" in page
    assert "**Total (3 notebooks):** 5 min 7 s of wall time (within the budget of 15 min)" in page
    assert "GPU run times: not yet measured." in page
    assert "GPU wall time" not in page
    assert page.startswith("# Measured run times\n") and page.count("\n# ") == 0  # one title, no level skips


def test_page_tables_fit_the_column_and_stack_on_phones():
    """Issue 11: no column repeats another (the path and the title were both shown), at most 5 columns
    without GPU results (7 with), and every table carries the class that stacks it on a phone."""
    conv = json.loads(rt.CONV_RESULTS.read_text()) if rt.CONV_RESULTS.exists() else None
    runs = [fake("chapters/01_a.ipynb", 95.0), fake("exercises/01_a.ipynb", 12.0)]
    for gpu, most in ((None, 5), ((MACHINE | {"gpu": "G"}, [fake("chapters/01_a.ipynb", 4.0)]), 7)):
        page = rt.render_page((MACHINE, runs), gpu, None)
        heads = [line for line in page.splitlines() if line.startswith("| Notebook")]
        assert heads and all(line.count(" | ") + 1 <= most for line in heads)
        assert "`chapters/01_a.ipynb`" not in page          # named once: by its linked title
    page = rt.render_page((MACHINE, runs), None, conv)
    assert page.count(":::{table}") == page.count(":class: stack-on-phone") == (3 if conv else 2)
    if conv:
        conv_head = next(line for line in page.splitlines() if line.startswith("| Layer"))
        assert conv_head.count(" | ") + 1 <= 7


def test_page_warns_when_the_machine_was_busy():
    quiet = rt.render_page((MACHINE, [fake("chapters/01_a.ipynb", 9.0, load=[1.2, 1.9])]))
    busy = rt.render_page((MACHINE, [fake("chapters/01_a.ipynb", 9.0, load=[1.2, 9.5])]))
    assert "shared with other work" not in quiet
    assert "load average up to 9.5 on 2 cores" in busy


def test_page_gets_gpu_columns_from_a_gpu_results_file():
    cpu = (MACHINE, [fake("chapters/01_a.ipynb", 95.0), fake("exercises/01_a.ipynb", 12.0)])
    gpu_machine = MACHINE | {"device": "cuda", "profile": "full", "gpu": "NVIDIA H100"}
    gpu = (gpu_machine, [fake("chapters/01_a.ipynb", 41.0, gpu_peak_mb=2048.0)])
    page = rt.render_page(cpu, gpu)
    assert "| GPU wall time | GPU memory |" in page
    assert "| 41 s | 2.00 GiB |" in page          # measured on the GPU
    assert "| 12 s" in page and "| – | – |" in page  # exercise not measured there
    assert "NVIDIA H100" in page and "not yet measured" not in page


def test_page_without_results_says_so():
    assert "No measurements yet: run `make bench`." in rt.render_page(None)


def test_results_round_trip(tmp_path):
    runs = [fake("chapters/01_a.ipynb", 95.0), fake("exercises/01_a.ipynb", 12.0)]
    rt.save_results(tmp_path / "r.json", MACHINE, runs)
    machine, loaded = rt.load_results(tmp_path / "r.json")
    assert machine == MACHINE and loaded == runs
    assert json.loads((tmp_path / "r.json").read_text())["total_s"] == 107.0
    assert rt.load_results(tmp_path / "missing.json") is None


# ---------------------------------------------------------------- conv benchmark
def test_conv_ratios_and_target():
    fast = convb.Row("a", "cpu", [1, 1, 1, 1, 1], torch_ms=2.0, unfold_ms=5.0, torch_cpu_ms=2.0, unfold_cpu_ms=4.0)
    slow = convb.Row("b", "cpu", [1, 1, 1, 1, 1], torch_ms=2.0, unfold_ms=7.0)
    gpu = convb.Row("c", "cuda", [1, 1, 1, 1, 1], torch_ms=1.0, unfold_ms=9.0)
    naive = convb.Row("d", "cpu", [1, 1, 1, 1, 1], torch_ms=1.0, unfold_ms=9.0, naive_ms=500.0)
    assert fast.ratio == 2.5 and fast.cpu_ratio == 2.0 and slow.cpu_ratio is None
    assert convb.over_target([fast, slow, gpu, naive], 3.0) == [slow]
    table = convb.format_table([fast, slow])
    assert "2.50x" in table and "3.50x" in table


def test_conv_timing_is_round_robin_and_checked():
    calls = []
    t = convb.best_times_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                            torch.device("cpu"), repeats=3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert set(t) == {"a", "b"} and all(wall >= 0 and cpu >= 0 for wall, cpu in t.values())
    with pytest.raises(ValueError, match="repeats >= 1"):
        convb.best_times_ms({"a": lambda: None}, torch.device("cpu"), repeats=0, warmup=0)


def test_conv_time_layer_small_shape():
    row = convb.time_layer("tiny", (2, 3, 8, 8, 4), torch.device("cpu"), repeats=2, warmup=0, naive=True)
    assert row.naive_ms is not None and row.torch_ms > 0 and row.unfold_train_ms > 0


# ---------------------------------------------------------------- the committed page
def _notebooks() -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in nbb.discover(ROOT)]


def _page() -> str:
    path = ROOT / "book" / "runtimes.md"
    assert path.exists(), "book/runtimes.md is missing: run `make bench` to measure the notebooks and generate it."
    return path.read_text()


def test_runtime_page_lists_every_notebook():
    page = _page()
    missing = [p for p in _notebooks() if f" </{p.rsplit('.', 1)[0]}>`" not in page]
    assert not missing, (
        f"book/runtimes.md has no measurement for {missing}: run `make bench` (executes every notebook and "
        "regenerates benchmarks/results/ and book/runtimes.md), then commit those files."
    )


def test_runtime_page_is_generated_not_edited():
    """The committed page is exactly what the script renders from the committed results files."""
    page = _page()
    conv = json.loads(rt.CONV_RESULTS.read_text()) if rt.CONV_RESULTS.exists() else None
    expected = rt.render_page(rt.load_results(rt.CPU_RESULTS), rt.load_results(rt.GPU_RESULTS), conv)
    assert page == expected, ("book/runtimes.md differs from what benchmarks/notebooks.py renders from "
                              "benchmarks/results/; regenerate it with `python benchmarks/notebooks.py --from-json` "
                              "(or `make bench`) instead of editing it.")


def test_runtime_page_is_in_the_toc():
    assert "book/runtimes" in (ROOT / "_toc.yml").read_text()
