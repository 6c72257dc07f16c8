"""Colab links, checked without building the site.

Jupyter Book 1 (sphinx-book-theme) puts a Colab button on every page built from an `.ipynb`, pointing at
`{colab_url}/github/{org}/{repo}/blob/{branch}/{path_to_book}{page}.ipynb`. Colab opens that file from GitHub,
so for every notebook page in `_toc.yml` the link must name a notebook that exists in the repository and that
git does not ignore. The student exercise notebooks must be pages too (so they get the button). The hidden
install cell itself is checked by tests/test_hygiene.py; the rendered link by the browser test (tests/site).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
SUFFIXES = (".ipynb", ".md")


def _toc_entries(node) -> list[tuple[str, str]]:
    """All ("file" | "glob", value) entries of the toc, at any depth (root, parts, chapters, sections)."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key in ("root", "file", "glob"):
            if isinstance(node.get(key), str):
                out.append(("glob" if key == "glob" else "file", node[key]))
        for value in node.values():
            if isinstance(value, (list, dict)):
                out += _toc_entries(value)
    elif isinstance(node, list):
        for item in node:
            out += _toc_entries(item)
    return out


def toc_documents(toc=TOC, root: Path = ROOT, missing: list[str] | None = None) -> list[Path]:
    """The source files (relative to `root`) of every page in the toc, globs expanded like Sphinx does.
    Entries whose file does not exist are skipped and appended to `missing`."""
    docs: list[Path] = []
    for kind, value in _toc_entries(toc):
        stem = re.sub(r"\.(ipynb|md)$", "", value)
        if kind == "file":
            found = [root / f"{stem}{s}" for s in SUFFIXES if (root / f"{stem}{s}").is_file()]
            if found:
                docs.append(found[0].relative_to(root))
            elif missing is not None:
                missing.append(value)
        else:
            # Sphinx matches globs against document names (no suffix): try the pattern with each suffix too
            matches = {p for pat in (stem, *(stem + s for s in SUFFIXES)) for p in root.glob(pat)}
            docs += sorted(p.relative_to(root) for p in matches if p.suffix in SUFFIXES and p.is_file())
    return docs


def colab_url(doc: Path, config=CONFIG) -> str:
    """The Colab link sphinx-book-theme generates for a notebook page."""
    repo = config["repository"]
    org, name = re.match(r"https://github\.com/([^/]+)/([^/]+?)/?$", repo["url"]).groups()
    book = (repo.get("path_to_book") or "").strip("/")
    book = f"{book}/" if book else ""
    colab = config["launch_buttons"]["colab_url"].strip("/")
    return f"{colab}/github/{org}/{name}/blob/{repo.get('branch', 'main')}/{book}{doc.as_posix()}"


MISSING: list[str] = []
NOTEBOOK_PAGES = [d for d in toc_documents(missing=MISSING) if d.suffix == ".ipynb"]


def test_config_makes_colab_links():
    repo = CONFIG.get("repository", {})
    assert re.match(r"https://github\.com/[^/]+/[^/]+/?$", repo.get("url", "")), \
        "repository.url must be a https://github.com/<org>/<repo> URL: Colab opens notebooks from GitHub"
    assert repo.get("branch"), "repository.branch is not set"
    assert (repo.get("path_to_book") or "") == "", \
        "path_to_book must be empty: the repository root is the book root"
    assert CONFIG.get("launch_buttons", {}).get("colab_url", "").rstrip("/") == "https://colab.research.google.com"


def test_there_are_notebook_pages():
    assert NOTEBOOK_PAGES, "no .ipynb page in _toc.yml"


def test_toc_files_exist():
    assert not MISSING, f"_toc.yml names pages with no .ipynb or .md file: {MISSING}"


@pytest.mark.parametrize("doc", NOTEBOOK_PAGES, ids=str)
def test_colab_link_targets_an_existing_notebook(doc):
    url = colab_url(doc)
    path = url.split("/blob/", 1)[1].split("/", 1)[1]
    assert (ROOT / path).is_file(), f"{doc}: its Colab link {url} names {path}, which does not exist"
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0
    assert not ignored, f"{doc}: {path} is git-ignored, so it will not be on GitHub for Colab to open"


def test_every_student_exercise_notebook_is_a_page():
    """Student notebooks (exercises/NN_slug.ipynb) need a page, or they get no Colab button."""
    pages = {d.as_posix() for d in NOTEBOOK_PAGES}
    students = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "exercises").glob("*.ipynb"))
    missing = [s for s in students if s not in pages]
    assert not missing, f"exercise notebooks missing from _toc.yml (no page, no Colab link): {missing}"


def test_colab_url_format():
    """The URL formula matches sphinx-book-theme's (checked against its source: header_buttons/launch.py)."""
    cfg = {"repository": {"url": "https://github.com/org/repo", "branch": "dev", "path_to_book": "docs"},
           "launch_buttons": {"colab_url": "https://colab.research.google.com/"}}
    assert colab_url(Path("chapters/01_x.ipynb"), cfg) == \
        "https://colab.research.google.com/github/org/repo/blob/dev/docs/chapters/01_x.ipynb"


def test_toc_walker_sees_nested_globs(tmp_path):
    (tmp_path / "ex").mkdir()
    for name in ("ex/01_a.ipynb", "ex/02_b.ipynb", "ex/README.md", "intro.md"):
        (tmp_path / name).write_text("{}")
    toc = {"root": "intro", "parts": [{"chapters": [{"file": "intro", "sections": [{"glob": "ex/[0-9]*"}]}]}]}
    missing: list[str] = []
    toc["parts"][0]["chapters"].append({"file": "nowhere"})
    assert toc_documents(toc, tmp_path, missing) == [Path("intro.md"), Path("intro.md"), Path("ex/01_a.ipynb"),
                                            Path("ex/02_b.ipynb")]
    assert missing == ["nowhere"]
