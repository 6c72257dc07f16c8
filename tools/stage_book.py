"""Copy the book's sources into _build/src, so that executing notebooks never writes into the working tree.

`make execute` runs `python tools/stage_book.py --fresh` and then executes the copies in place
(`pytest --nbmake --overwrite _build/src/...`); `make site` runs it without `--fresh` and builds the site from
_build/src into _build/html. So the notebooks in chapters/ and exercises/ stay as committed (no outputs) after
`make book` and `make test`, and `make lab` opens them clean.

Copied: every file of the repository except the folders that are not part of the book (see SKIP) and files
git ignores by pattern (caches). Files that disappeared from the working tree are removed from the copy.
nbmake never collects notebooks under a `_build` folder, so the copy gets a conftest.py (CONFTEST below) that
collects them; pytest loads it because it sits above the notebooks it is given.

Without `--fresh`, an executed notebook in the copy is kept as long as its cells' sources are the same as in
the working tree; a notebook edited since is copied again, without outputs, and named in a warning.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "_build" / "src"
# Not part of the book (or handled elsewhere): never copied.
SKIP_DIRS = {".git", ".venv", "_build", ".pytest_cache", "__pycache__", ".ipynb_checkpoints", "node_modules",
             "tests", "tools", "benchmarks", "cnnkit", ".ci", ".github", ".cache", ".whl"}
SKIP_FILES = {"Makefile", "pyproject.toml", "requirements.txt", "setup.py", "setup.cfg", "conftest.py"}

CONFTEST = '''"""Written by tools/stage_book.py: lets `pytest --nbmake` collect the staged notebooks (nbmake skips
every path with a `_build` part, and this copy lives in _build/src)."""
from nbmake.pytest_items import NotebookFile


def pytest_collect_file(file_path, parent):
    if parent.config.option.nbmake and file_path.suffix == ".ipynb" and "_build" in file_path.parts:
        return NotebookFile.from_parent(parent, path=file_path)
'''


def _skipped(rel: Path) -> bool:
    parts = rel.parts
    return (any(p in SKIP_DIRS or p.endswith(".egg-info") for p in parts[:-1] if p)
            or (len(parts) == 1 and parts[0] in SKIP_FILES) or rel.suffix in (".pyc",))


def book_files(root: Path = ROOT) -> list[Path]:
    """Relative paths of every file to stage."""
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts and (rel.parts[0] in SKIP_DIRS or rel.parts[0].endswith(".egg-info")):
            continue
        if path.is_file() and not _skipped(rel):
            out.append(rel)
    return sorted(out)


def _cell_sources(path: Path) -> list[tuple[str, str]] | None:
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None
    return [(c.get("cell_type", ""), "".join(c.get("source", ""))) for c in cells]


def _same_file(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    return sa.st_size == sb.st_size and int(sa.st_mtime) == int(sb.st_mtime)


def stage(fresh: bool, root: Path = ROOT, dest: Path = STAGE) -> tuple[int, list[Path]]:
    """Mirror the book into ``dest``; return (files copied, notebooks reset to unexecuted)."""
    files = book_files(root)
    wanted = set(files) | {Path("conftest.py")}
    copied, reset = 0, []
    if dest.exists():  # remove what no longer exists in the working tree
        for path in sorted(dest.rglob("*"), reverse=True):
            rel = path.relative_to(dest)
            if path.is_file() and rel not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    for rel in files:
        src, dst = root / rel, dest / rel
        if dst.is_file():
            if rel.suffix == ".ipynb" and not fresh:
                if _cell_sources(src) == _cell_sources(dst):
                    continue  # keep its outputs
                reset.append(rel)
            elif rel.suffix != ".ipynb" and _same_file(src, dst):
                continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        copied += 1
    conftest = dest / "conftest.py"
    if not conftest.is_file() or conftest.read_text(encoding="utf-8") != CONFTEST:
        conftest.write_text(CONFTEST, encoding="utf-8")
    return copied, reset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", action="store_true", help="copy every notebook again (before executing them)")
    args = parser.parse_args(argv)
    copied, reset = stage(args.fresh)
    print(f"staged the book in {STAGE.relative_to(ROOT)}: {copied} file(s) copied")
    for rel in reset:
        print(f"warning: {rel} changed since it was executed; the site shows it without outputs until "
              f"`make execute` (or `make book`) runs it again", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
