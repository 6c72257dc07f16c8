"""What the instructor CLI checks around a submission: the package on disk, the check cells, the kernel's set-up.

Used only by the trusted side of ``python -m cnnkit.grade`` (it never runs submission code):

- :class:`Snapshot`: every file of a folder (bytes, mode, sha256), taken before the submission runs; ``diff``
  names what changed since, ``restore`` puts the folder back byte for byte (changed and deleted files rewritten,
  added files and folders removed).
- :func:`make_sandbox`: the temporary folders a submission runs in (HOME, working directory, a pristine copy of
  the package written from the snapshot, a folder for the call files) and :func:`kernel_env`, the sanitised
  environment of its kernel.
- :func:`check_cell_problems`: the check cells a submission deleted or edited, from the question list
  (``check("qN", name, ...)`` per question); :func:`redefinitions`: cells that rebind ``check`` or ``Checker``.
"""
from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import site
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Snapshot", "Sandbox", "make_sandbox", "kernel_env", "expected_check_cells", "check_cell_problems",
           "redefinitions"]

_SKIP_COPY = ("__pycache__",)


@dataclass
class _Entry:
    data: bytes
    mode: int
    sha256: str


@dataclass
class Snapshot:
    """Every regular file under ``root`` (``__pycache__`` included: a forged ``.pyc`` would run too)."""
    root: Path
    files: dict[str, _Entry] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    @classmethod
    def take(cls, root: str | Path) -> Snapshot:
        root = Path(root).resolve()
        if not root.is_dir():
            raise ValueError(f"cannot protect {root}: not a folder (pass the cnnkit package folder)")
        snap = cls(root)
        for folder, dirnames, filenames in os.walk(root, followlinks=False):
            rel_dir = Path(folder).relative_to(root).as_posix()
            if rel_dir != ".":
                snap.dirs.add(rel_dir)
            for name in filenames:
                path = Path(folder) / name
                rel = path.relative_to(root).as_posix()
                if path.is_symlink() or not path.is_file():
                    continue  # the package has none; diff() names any that appear
                data = path.read_bytes()
                snap.files[rel] = _Entry(data, stat.S_IMODE(path.stat().st_mode), hashlib.sha256(data).hexdigest())
        return snap

    def text(self, rel: str) -> str:
        return self.files[rel].data.decode("utf-8")

    @property
    def digest(self) -> str:
        """One sha256 over every file's path and hash: compare it between runs to see the package changed."""
        h = hashlib.sha256()
        for rel in sorted(self.files):
            h.update(f"{rel}\0{self.files[rel].sha256}\n".encode())
        return h.hexdigest()

    def _current(self) -> tuple[dict[str, str], set[str]]:
        """``{relative path: sha256 or 'link' or 'unreadable'}`` and the folders, as they are now."""
        now: dict[str, str] = {}
        dirs: set[str] = set()
        if not self.root.is_dir():
            return now, dirs
        for folder, dirnames, filenames in os.walk(self.root, followlinks=False):
            rel_dir = Path(folder).relative_to(self.root).as_posix()
            if rel_dir != ".":
                dirs.add(rel_dir)
            for name in filenames + [d for d in dirnames if (Path(folder) / d).is_symlink()]:
                path = Path(folder) / name
                rel = path.relative_to(self.root).as_posix()
                if path.is_symlink():
                    now[rel] = "link"
                    continue
                try:
                    now[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    now[rel] = "unreadable"
        return now, dirs

    def diff(self) -> list[dict[str, str]]:
        """What changed since the snapshot: ``[{"path", "change": "modified" | "deleted" | "added"}]``."""
        now, _ = self._current()
        out = []
        for rel in sorted(set(self.files) | set(now)):
            if rel not in now:
                out.append({"path": rel, "change": "deleted"})
            elif rel not in self.files:
                out.append({"path": rel, "change": "added"})
            elif now[rel] != self.files[rel].sha256:
                out.append({"path": rel, "change": "modified"})
        return out

    def restore(self) -> list[str]:
        """Put every file back as it was; return the problems met (empty when the folder is identical again)."""
        errors: list[str] = []
        _make_writable(self.root)
        now, dirs = self._current()
        for rel in sorted(set(now) - set(self.files), reverse=True):
            try:
                (self.root / rel).unlink()
            except OSError as exc:
                errors.append(f"cannot remove {rel}: {exc}")
        for rel in sorted(dirs - self.dirs, key=len, reverse=True):
            path = self.root / rel
            try:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            except OSError as exc:
                errors.append(f"cannot remove {rel}/: {exc}")
        for rel, entry in self.files.items():
            if now.get(rel) == entry.sha256:
                continue
            path = self.root / rel
            try:
                if path.is_symlink() or path.is_dir():
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(entry.data)
                os.chmod(path, entry.mode)
            except OSError as exc:
                errors.append(f"cannot restore {rel}: {exc}")
        for rel in self.dirs:
            (self.root / rel).mkdir(parents=True, exist_ok=True)
        if not errors and self.diff():
            errors.append("the folder still differs after restoring: " + ", ".join(d["path"] for d in self.diff()))
        return errors

    def write_copy(self, target: Path) -> None:
        """Write the snapshot's files (no ``__pycache__``) under ``target``: the pristine copy."""
        for rel, entry in self.files.items():
            if any(part in _SKIP_COPY for part in rel.split("/")):
                continue
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(entry.data)


def _make_writable(root: Path) -> None:
    """Undo ``chmod`` tricks on the folders (a read-only folder would stop the restore)."""
    for folder, dirnames, _ in os.walk(root, followlinks=False):
        for d in [folder, *(os.path.join(folder, n) for n in dirnames)]:
            try:
                if not os.path.islink(d):
                    os.chmod(d, os.stat(d).st_mode | stat.S_IRWXU)
            except OSError:
                pass


# ---------------------------------------------------------------- where the submission runs

@dataclass
class Sandbox:
    """The temporary folders of one grading run (removed by :meth:`cleanup`)."""
    root: Path
    home: Path
    work: Path
    lib: Path
    calls: Path
    tmp: Path
    submission: Path

    @property
    def package(self) -> Path:
        return self.lib / "cnnkit"

    def cleanup(self) -> None:
        _make_writable(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def make_sandbox(submission: Path, snapshot: Snapshot) -> Sandbox:
    """Temporary HOME, working directory (only a copy of the submission), pristine package copy, call files."""
    root = Path(tempfile.mkdtemp(prefix="cnnkit-grade-"))
    box = Sandbox(root, root / "home", root / "work", root / "lib", root / "calls", root / "tmp",
                  root / "work" / submission.name)
    for d in (box.home, box.work, box.lib, box.calls, box.tmp):
        d.mkdir()
    shutil.copyfile(submission, box.submission)
    snapshot.write_copy(box.package)
    return box


# environment variables the kernel keeps (everything else, CNNKIT_* and any credentials included, is dropped)
_KEEP = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "LD_LIBRARY_PATH", "VIRTUAL_ENV",
         "CONDA_PREFIX", "SYSTEMROOT", "COMSPEC", "PATHEXT", "WINDIR"}
_KEEP_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "OMP_", "MKL_", "OPENBLAS_", "PYTORCH_")


def kernel_env(box: Sandbox, base: dict[str, str] | None = None) -> dict[str, str]:
    """The sanitised environment of the submission's kernel."""
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items() if k in _KEEP or k.startswith(_KEEP_PREFIXES)}
    python_path = [str(box.lib)] + [p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p]
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site and os.path.isdir(user_site):  # packages installed with --user: the temporary HOME hides them
        python_path.append(user_site)
    env.update({
        "HOME": str(box.home), "USERPROFILE": str(box.home), "TMPDIR": str(box.tmp), "TEMP": str(box.tmp),
        "TMP": str(box.tmp), "PYTHONPATH": os.pathsep.join(python_path), "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1", "MPLBACKEND": "agg", "CNNKIT_DEFER_CHECKS": "1",
        "IPYTHONDIR": str(box.home / ".ipython"), "JUPYTER_PLATFORM_DIRS": "1",
    })
    if "PATH" not in env:
        env["PATH"] = os.defpath
    return env


# ---------------------------------------------------------------- the notebook's check cells

def expected_check_cells(exercise: Any) -> dict[str, str]:
    """``{qid: 'check("qN", name, ...)'}``: the check cell each question has in the student notebook."""
    return {qid: f'check("{qid}", {", ".join(q.names)})' for qid, q in exercise.questions.items()}


def _normal(source: str) -> str:
    return re.sub(r"\s+", "", source.replace("'", '"'))


def check_cell_problems(cells: list[Any], exercise: Any) -> list[dict[str, Any]]:
    """Deleted or edited check cells: ``[{"question", "change": "deleted" | "edited", "expected", "cell", "found"}]``.

    A check cell is intact when some code cell is exactly ``check("qN", names...)`` (spaces and quote style
    aside); edited when a code cell calls ``check("qN"`` otherwise; deleted when no cell does.
    """
    code = [(i, c.source) for i, c in enumerate(cells) if c.cell_type == "code"]
    out = []
    for qid, want in expected_check_cells(exercise).items():
        if any(_normal(src) == _normal(want) for _, src in code):
            continue
        call = re.compile(r"""\bcheck\(\s*["']""" + re.escape(qid) + r"""["']""")
        found = [(i, src) for i, src in code if call.search(src)]
        if found:
            i, src = found[0]
            out.append({"question": qid, "change": "edited", "expected": want, "cell": i, "found": src.strip()[:200]})
        else:
            out.append({"question": qid, "change": "deleted", "expected": want, "cell": None, "found": ""})
    return out


_GUARDED = ("check", "Checker")


def _is_setup(node: ast.AST, slug: str) -> bool:
    """``check = Checker("slug", ...)``: the set-up line (options allowed, the exercise must be this one)."""
    return (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["check"]
            and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "Checker"
            and bool(node.value.args) and isinstance(node.value.args[0], ast.Constant)
            and node.value.args[0].value == slug)


def redefinitions(cells: list[Any], slug: str) -> list[dict[str, Any]]:
    """Cells that bind ``check`` or ``Checker`` other than the set-up line ``check = Checker("slug")``.

    Reads the cell's code (never runs it): assignments, ``def``/``class``, imports ``as``, ``global`` writes,
    ``del``, and writes through ``globals()[...]`` with a literal name.
    """
    out = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse("\n".join(line for line in cell.source.split("\n")
                                       if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Delete, ast.For, ast.With,
                                   ast.NamedExpr)):
                targets = (node.targets if isinstance(node, (ast.Assign, ast.Delete)) else
                           [node.target] if not isinstance(node, ast.With) else
                           [it.optional_vars for it in node.items if it.optional_vars is not None])
                names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                names += [sub.slice.value for t in targets for sub in ast.walk(t)
                          if isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Constant)
                          and isinstance(sub.value, ast.Call) and getattr(sub.value.func, "id", "") in
                          ("globals", "vars", "locals")]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                real = isinstance(node, ast.ImportFrom) and node.module == "cnnkit.grading"
                names = [(a.asname or a.name).split(".")[0] for a in node.names
                         if not (real and a.name == "Checker" and a.asname in (None, "Checker"))]
            if _is_setup(node, slug):
                continue
            for name in names:
                if name not in _GUARDED:
                    continue
                line = ast.get_source_segment(cell.source, node) if hasattr(node, "lineno") else None
                text = (line or name).strip().split("\n")[0][:120]
                out.append({"cell": i, "name": name, "code": text})
    return out

