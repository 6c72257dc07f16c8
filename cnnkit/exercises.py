"""Exercise sources -> student notebooks and solutions pages, plus the proofs that the grader is right.

``cnnkit exercises`` regenerates, from every ``exercises/source/NN_slug.ipynb``, the student notebook
``exercises/NN_slug.ipynb``, the solutions page ``book/solutions/NN_slug.md`` and the list in
``book/exercises.md``. ``cnnkit prove`` executes the sources and student notebooks and checks, per question,
that the solution gets full marks, the untouched student version zero and every ``wrong:`` cell less than
full marks. The format is documented in ``exercises/README.md``.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["COLAB_SOURCE", "Source", "Proof", "find_root", "read_sources", "generate", "stale_files",
           "write_all", "prove", "format_proofs"]



def _colab_source(start: str | Path | None = None) -> str | None:
    """The hidden Colab install cell of the course at or above ``start``: built by ``cnnkit.course`` from the
    ``repository:`` url and branch in its ``_config.yml`` (the one setting; ``make sync-repo`` updates copies)."""
    from .course import find_config, install_cell_source
    config = find_config(start)
    return install_cell_source(config) if config is not None else None


# None only where no course checkout is found (cnnkit installed from git and used outside the repository).
COLAB_SOURCE = _colab_source(Path(__file__).resolve().parents[1])
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_CHECK = re.compile(r"""^check\(\s*["'](q\d+)["']\s*(,[^\n]*)?\)\s*$""")
_LIST_START, _LIST_END = "<!-- BEGIN EXERCISE LIST", "<!-- END EXERCISE LIST -->"


def _strip_solutions(source: str, keep: bool) -> str:
    """``keep=True``: drop only the marker lines; ``keep=False``: replace each marked block by the stub."""
    out, inside = [], False
    for line in source.split("\n"):
        text = line.strip()
        if text == BEGIN:
            inside = True
            if not keep:
                indent = line[: len(line) - len(line.lstrip())]
                out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
        elif text == END:
            inside = False
        elif keep or not inside:
            out.append(line)
    return "\n".join(out)


@dataclass
class Question:
    qid: str
    solutions: list[int] = field(default_factory=list)  # cell indices
    check: int | None = None
    wrong: list[int] = field(default_factory=list)
    alt: list[int] = field(default_factory=list)  # valid alternatives: must keep full marks


@dataclass
class Source:
    """One parsed source notebook."""
    path: Path
    nb: nbformat.NotebookNode
    questions: dict[str, Question]

    @property
    def slug(self) -> str:
        return self.path.stem

    @property
    def title(self) -> str:
        first = next((c.source for c in self.nb.cells if c.cell_type == "markdown"), "")
        line = first.strip().splitlines()[0] if first.strip() else self.slug
        return line.lstrip("#").strip()

    @classmethod
    def read(cls, path: str | Path) -> Source:
        path = Path(path)
        nb = nbformat.read(path, as_version=4)
        questions: dict[str, Question] = {}
        pending: list[int] = []
        for i, cell in enumerate(nb.cells):
            tags = cell.metadata.get("tags", [])
            wrong = [t.split(":", 1)[1] for t in tags if t.startswith("wrong:")]
            alt = [t.split(":", 1)[1] for t in tags if t.startswith("alt:")]
            if wrong:
                questions.setdefault(wrong[0], Question(wrong[0])).wrong.append(i)
            elif alt:
                questions.setdefault(alt[0], Question(alt[0])).alt.append(i)
            elif cell.cell_type == "code" and BEGIN in cell.source:
                pending.append(i)
            elif cell.cell_type == "code" and (m := _CHECK.match(cell.source.strip())):
                q = questions.setdefault(m.group(1), Question(m.group(1)))
                q.check = i if q.check is None else -1  # -1 marks a second check cell (a format problem)
                q.solutions, pending = q.solutions + pending, []
        return cls(path, nb, questions)

    def kind(self, index: int) -> str:
        for q in self.questions.values():
            if index in q.wrong:
                return "wrong"
            if index in q.alt:
                return "alt"
            if index in q.solutions:
                return "solution"
            if index == q.check:
                return "check"
        return self.nb.cells[index].cell_type

    def problems(self) -> list[str]:
        """Everything wrong with the format, as messages naming the cell and the fix."""
        from .checks import load_exercise
        out, cells = [], self.nb.cells
        code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
        if not code or cells[code[0]].source.strip() != _colab_source(self.path.parent) or \
                "remove-cell" not in cells[code[0]].metadata.get("tags", []):
            out.append("the first code cell must be exactly the Colab install cell, tagged remove-cell")
        ids = [c.get("id") for c in cells]
        if None in ids or len(set(ids)) != len(ids):
            out.append("every cell needs a unique id (write the notebook with nbformat 5)")
        for i, c in enumerate(cells):
            if c.cell_type == "code" and (c.outputs or c.execution_count is not None):
                out.append(f"cell {i} has outputs; sources are committed without outputs")
            if c.cell_type == "code" and c.source.count(BEGIN) != c.source.count(END):
                out.append(f"cell {i}: unbalanced {BEGIN} / {END}")
            for line in c.source.split("\n"):
                if line.strip() == BEGIN and not line.startswith((" ", "\t")):
                    out.append(f"cell {i}: put {BEGIN} inside a function body, so the student cell still runs")
        if f'Checker("{self.slug}")' not in "".join(c.source for c in cells):
            out.append(f'the setup cell must create check = Checker("{self.slug}")')
        try:
            exercise = load_exercise(self.slug)
        except ValueError as exc:
            return out + [str(exc)]
        if list(self.questions) != list(exercise.questions):
            out.append(f"questions in the notebook {list(self.questions)} differ from the checks "
                       f"{list(exercise.questions)} (in the same order)")
        for q in self.questions.values():
            if q.check is None or q.check < 0:
                out.append(f"{q.qid}: needs exactly one check cell `check({q.qid!r}, ...)`")
                continue
            if not q.solutions:
                out.append(f"{q.qid}: no solution cell ({BEGIN}) before its check cell")
            if len(q.wrong) < 2:
                out.append(f"{q.qid}: needs at least 2 cells tagged wrong:{q.qid}, found {len(q.wrong)}")
            for w in q.wrong:
                if w < q.check:
                    out.append(f"cell {w} (wrong:{q.qid}) must come after the check cell of {q.qid}")
                if not cells[w].source.lstrip().startswith("# Mistake:"):
                    out.append(f"cell {w} (wrong:{q.qid}) must start with a '# Mistake: ...' comment")
            for a in q.alt:
                if a < q.check:
                    out.append(f"cell {a} (alt:{q.qid}) must come after the check cell of {q.qid}")
                if not cells[a].source.lstrip().startswith("# Valid:"):
                    out.append(f"cell {a} (alt:{q.qid}) must start with a '# Valid: ...' comment")
        return out

    def student(self) -> str:
        """The student notebook as JSON text (deterministic)."""
        nb = nbformat.v4.new_notebook()
        nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                       "language_info": {"name": "python"},
                       "cnnkit": {"exercise": self.slug, "generated_from": f"exercises/source/{self.path.name}"}}
        for i, cell in enumerate(self.nb.cells):
            kind = self.kind(i)
            if kind in ("wrong", "alt"):
                continue
            source = _strip_solutions(cell.source, keep=False) if kind == "solution" else cell.source
            new = (nbformat.v4.new_markdown_cell if cell.cell_type == "markdown" else nbformat.v4.new_code_cell)(source)
            new["id"] = cell["id"]
            tags = cell.metadata.get("tags", [])
            new.metadata = {"tags": list(tags)} if tags else {}
            nb.cells.append(new)
        return nbformat.writes(nb).rstrip("\n") + "\n"

    def solutions_page(self) -> str:
        """The self-learner's solutions page (MyST markdown, solutions in collapsed blocks)."""
        from .checks import load_exercise
        exercise = load_exercise(self.slug)
        title = re.sub(r"^Exercises\b", "Solutions", self.title)
        title = title if title != self.title else f"Solutions: {self.title}"
        parts = [f"# {title}",
                 f"<!-- generated by `cnnkit exercises` from exercises/source/{self.path.name}: do not edit -->",
                 f"Worked solutions for the {{doc}}`exercise notebook </exercises/{self.slug}>` "
                 f"({exercise.max_points} points in {len(exercise.questions)} questions). Try each question "
                 "first: the check cells say what is wrong and why. Click a folded block to open it. Under each "
                 "question, the common mistakes the grader is proven to catch."]
        first_md = next(i for i, c in enumerate(self.nb.cells) if c.cell_type == "markdown")
        colab = next((i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"), -1)
        for i, cell in enumerate(self.nb.cells):
            kind = self.kind(i)
            if i in (first_md, colab) or kind in ("wrong", "alt"):
                continue
            if kind == "markdown":
                parts.append(cell.source.strip())
            elif kind == "solution":
                code = _strip_solutions(cell.source, keep=True).strip()
                parts.append(f":::{{admonition}} Solution\n:class: dropdown\n\n```python\n{code}\n```\n:::")
            else:
                parts.append(f"```python\n{cell.source.strip()}\n```")
            if kind == "check":
                q = next(q for q in self.questions.values() if q.check == i)
                items = [_mistake(self.nb.cells[w].source) for w in q.wrong]
                parts.append(":::{admonition} Common mistakes\n:class: dropdown\n\n"
                             + "\n".join(f"- {m}" for m in items) + "\n:::")
                if q.alt:
                    blocks = "\n\n".join(f"```python\n{self.nb.cells[a].source.strip()}\n```" for a in q.alt)
                    parts.append(":::{admonition} Other valid answers\n:class: dropdown\n\n"
                                 f"{blocks}\n:::")
        return "\n\n".join(parts) + "\n"


def _mistake(source: str) -> str:
    lines = []
    for line in source.strip().split("\n"):
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines).removeprefix("Mistake:").removeprefix("Valid:").strip()


def find_root(start: str | Path | None = None) -> Path:
    """The repository root: the nearest folder at or above ``start`` holding ``exercises/source``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "exercises" / "source").is_dir():
            return folder
    raise ValueError(f"no exercises/source folder at or above {here}; run from the repository or pass --root")


def read_sources(root: Path, slugs: list[str] | None = None) -> list[Source]:
    paths = sorted((root / "exercises" / "source").glob("[0-9][0-9]_*.ipynb"))
    if slugs:
        unknown = set(slugs) - {p.stem for p in paths}
        if unknown:
            raise ValueError(f"no source for {sorted(unknown)}; sources: {[p.stem for p in paths]}")
        paths = [p for p in paths if p.stem in slugs]
    return [Source.read(p) for p in paths]


def _exercise_list(sources: list[Source]) -> str:
    from .checks import load_exercise
    rows = ["| Chapter | Exercise notebook | Points | Solutions |", "|---|---|---|---|"]
    for s in sources:
        ex = load_exercise(s.slug)
        rows.append(f"| {int(s.slug[:2])} | {{doc}}`{ex.title or s.title} </exercises/{s.slug}>` | "
                    f"{ex.max_points} in {len(ex.questions)} questions | "
                    f"{{doc}}`solutions </book/solutions/{s.slug}>` |")
    return "\n".join(rows)


def generate(root: Path) -> dict[Path, str]:
    """Every generated file's path and fresh content."""
    sources = read_sources(root)
    files: dict[Path, str] = {}
    for s in sources:
        problems = s.problems()
        if problems:
            raise ValueError(f"{s.path.name}: " + "; ".join(problems))
        files[root / "exercises" / f"{s.slug}.ipynb"] = s.student()
        files[root / "book" / "solutions" / f"{s.slug}.md"] = s.solutions_page()
    index = root / "book" / "exercises.md"
    if index.exists():
        text = index.read_text(encoding="utf-8")
        if _LIST_START in text and _LIST_END in text:
            head, rest = text.split(_LIST_START, 1)
            marker, tail = rest.split(_LIST_END, 1)
            first = marker.split("\n", 1)[0]
            files[index] = f"{head}{_LIST_START}{first}\n{_exercise_list(sources)}\n{_LIST_END}{tail}"
    return files


def stale_files(root: Path) -> list[Path]:
    """Generated files missing or different from a fresh generation."""
    return [p for p, text in generate(root).items()
            if not p.exists() or p.read_text(encoding="utf-8") != text]


def write_all(root: Path) -> list[Path]:
    """Regenerate every file; return those whose content changed."""
    changed = []
    for path, text in generate(root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


# ---------------------------------------------------------------- proofs

@dataclass
class Proof:
    """One proved (or disproved) claim: ``kind`` is format, solution, student or wrong."""
    slug: str
    qid: str
    kind: str
    ok: bool
    points: int = 0
    max_points: int = 0
    detail: str = ""


def _scores(log: Path, skip: int = 0) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()[skip:] if line.strip()]


def _by_question(lines: list[dict]) -> dict[str, dict]:
    return {line["question"]: line for line in lines}  # the latest check of each question


def prove(source: Source, cell_timeout: float = 120.0, student: bool = True) -> list[Proof]:
    """Execute the proofs for one source; never raises for a failed proof (it returns ``ok=False``).

    One kernel runs the source (wrong cells left out), then each wrong cell followed by its question's check
    cell, restoring the solution after each; a second kernel runs the student notebook (``student=True``).
    """
    from .grade import KernelSession
    problems = source.problems()
    if problems:
        return [Proof(source.slug, "-", "format", False, detail=p) for p in problems]
    proofs: list[Proof] = []
    unset = ("CNNKIT_STRICT", "CNNKIT_DEFER_CHECKS", "CNNKIT_CHECK_TIMEOUT")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "solution.jsonl"
        with KernelSession(source.path.parent, {"CNNKIT_GRADE_LOG": str(log)}, unset) as kernel:
            for i, cell in enumerate(source.nb.cells):
                if cell.cell_type == "code" and source.kind(i) not in ("wrong", "alt"):
                    run = kernel.run(cell.source, cell_timeout)
                    if run.status != "ok":
                        return [Proof(source.slug, "-", "solution", False,
                                      detail=f"the source stops at cell {i}: {run.status} {run.ename}: {run.evalue}")]
            solved = _by_question(_scores(log))
            for q in source.questions.values():
                got = solved.get(q.qid)
                ok = bool(got) and got["points"] == got["max_points"] > 0
                proofs.append(Proof(source.slug, q.qid, "solution", ok, got["points"] if got else 0,
                                    got["max_points"] if got else 0, "" if ok else _failures(got)))
            for q in source.questions.values():
                for w in q.wrong:
                    seen = len(_scores(log))
                    runs = [kernel.run(source.nb.cells[w].source, cell_timeout),
                            kernel.run(source.nb.cells[q.check].source, cell_timeout)]
                    got = _by_question(_scores(log, seen)).get(q.qid)
                    ok = bool(got) and got["points"] < got["max_points"]
                    detail = _mistake(source.nb.cells[w].source)[:70]
                    if not got:
                        detail = f"cell {w}: no score ({'; '.join(f'{r.ename}: {r.evalue}' for r in runs)})"
                    proofs.append(Proof(source.slug, q.qid, f"wrong (cell {w})", ok, got["points"] if got else 0,
                                        got["max_points"] if got else 0, detail))
                    for s in q.solutions:  # restore the solution before the next variant
                        kernel.run(source.nb.cells[s].source, cell_timeout)
                for a in q.alt:
                    seen = len(_scores(log))
                    runs = [kernel.run(source.nb.cells[a].source, cell_timeout),
                            kernel.run(source.nb.cells[q.check].source, cell_timeout)]
                    got = _by_question(_scores(log, seen)).get(q.qid)
                    ok = bool(got) and got["points"] == got["max_points"] > 0
                    detail = _mistake(source.nb.cells[a].source)[:70]
                    if not got:
                        detail = f"cell {a}: no score ({'; '.join(f'{r.ename}: {r.evalue}' for r in runs)})"
                    elif not ok:
                        detail = f"{detail} -- lost points: {_failures(got)}"[:300]
                    proofs.append(Proof(source.slug, q.qid, f"alt (cell {a})", ok, got["points"] if got else 0,
                                        got["max_points"] if got else 0, detail))
                    for s in q.solutions:
                        kernel.run(source.nb.cells[s].source, cell_timeout)
        if student:
            proofs += _prove_student(source, Path(tmp) / "student.jsonl", cell_timeout, unset)
    return proofs


def _failures(got: dict | None) -> str:
    if not got:
        return "never checked"
    return "; ".join(f"{t['name']}: {t['message']}" for t in got["tests"] if not t["passed"])


def _prove_student(source: Source, log: Path, cell_timeout: float, unset: tuple[str, ...]) -> list[Proof]:
    from .grade import KernelSession
    student = nbformat.reads(source.student(), as_version=4)
    seconds = 0.0
    with KernelSession(source.path.parent.parent, {"CNNKIT_GRADE_LOG": str(log)}, unset) as kernel:
        for i, cell in enumerate(student.cells):
            if cell.cell_type == "code":
                run = kernel.run(cell.source, cell_timeout)
                seconds += run.seconds
                if run.status != "ok":
                    return [Proof(source.slug, "-", "student", False,
                                  detail=f"the student notebook stops at cell {i}: {run.ename}: {run.evalue}")]
    scores = _by_question(_scores(log))
    proofs = []
    for q in source.questions.values():
        got = scores.get(q.qid)
        ok = bool(got) and got["points"] == 0
        proofs.append(Proof(source.slug, q.qid, "student", ok, got["points"] if got else 0,
                            got["max_points"] if got else 0, f"ran to the end in {seconds:.1f} s" if ok
                            else ("never checked" if not got else "untouched code scored points")))
    return proofs


def format_proofs(proofs: list[Proof]) -> str:
    """One block per question: solution, student, and every wrong cell, with OK or FAIL."""
    lines = []
    for p in proofs:
        mark = "OK  " if p.ok else "FAIL"
        score = f"{p.points}/{p.max_points}" if p.max_points else "-"
        lines.append(f"{mark} {p.slug} {p.qid:<3} {p.kind:<16} {score:>5}  {p.detail}")
    return "\n".join(lines)
