"""Every notebook runs in Colab after only its hidden install cell: checked offline, by reading the imports.

A learner who opens a notebook in Colab gets Colab's preinstalled packages plus what the first cell installs
(`%pip install "cnnkit @ git+..."`: cnnkit and the dependencies pyproject.toml declares). So every module a
notebook imports must be

- in the standard library, or
- one of the few packages taken as present in Colab (`COLAB`, each with its reason), or
- cnnkit itself or a package of a declared dependency of cnnkit (mapped from distribution to import name).

The same holds for every module cnnkit itself imports (at the top of a file or inside a function), since the
notebooks call into it; an import guarded by `except ImportError` is optional and skipped. Notebooks are found
by glob, so chapters and exercises added later are covered without editing this file.
"""
from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import json
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_GLOBS = ("chapters/*.ipynb", "exercises/*.ipynb", "exercises/source/*.ipynb")

# Present in Colab without installing anything. Kept short on purpose: only what the course design relies on
# (COURSE.md section 8) plus what must be there because something in this list or in cnnkit's declared
# dependencies requires it (checked in test_colab_list_is_justified).
COLAB = {
    "torch": "preinstalled in Colab (the install cell must not replace it)",
    "torchvision": "preinstalled in Colab, built for Colab's torch",
    "numpy": "preinstalled in Colab",
    "matplotlib": "preinstalled in Colab",
    "pandas": "preinstalled in Colab",
    "sklearn": "preinstalled in Colab (scikit-learn)",
    "IPython": "the notebook kernel itself; also required by ipykernel, a declared dependency",
    "PIL": "required by torchvision (pillow)",
    "scipy": "required by scikit-learn",
}
# import name -> (distribution, the distribution whose requirements bring it), for the derived entries above
COLAB_BY_REQUIREMENT = {"IPython": ("ipython", "ipykernel"), "PIL": ("pillow", "torchvision"),
                        "scipy": ("scipy", "scikit-learn")}


def notebooks() -> list[Path]:
    return sorted(p for pattern in NOTEBOOK_GLOBS for p in ROOT.glob(pattern))


@functools.lru_cache(maxsize=None)
def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def install_cell_requirement(path: Path) -> Requirement:
    """The requirement the notebook's first code cell installs (`cnnkit @ git+...` or `cnnkit[extra] @ ...`)."""
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    m = re.search(r'%pip install[^"\n]*"([^"]+)"', "".join(first["source"]))
    assert m, f"{path.relative_to(ROOT)}: the first code cell installs nothing (no %pip install \"...\")"
    return Requirement(m.group(1))


def installed_distributions(req: Requirement) -> set[str]:
    """Canonical names of what `pip install <req>` installs directly: cnnkit and its declared dependencies
    (plus those of any extras named in the requirement)."""
    project = _pyproject()["project"]
    assert canonicalize_name(req.name) == canonicalize_name(project["name"]), \
        f"the install cell installs {req.name}, not {project['name']}"
    deps = list(project.get("dependencies", []))
    for extra in req.extras:
        deps += project.get("optional-dependencies", {}).get(extra, [])
    return {canonicalize_name(project["name"])} | {canonicalize_name(Requirement(d).name) for d in deps}


@functools.lru_cache(maxsize=None)
def _packages_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()  # slow (reads every installed distribution): once per run


def import_names(distributions: set[str]) -> dict[str, str]:
    """Top-level import names provided by these distributions (as installed in this environment)."""
    out = {"cnnkit": "cnnkit"}
    for module, dists in _packages_distributions().items():
        for dist in dists:
            if canonicalize_name(dist) in distributions:
                out[module] = canonicalize_name(dist)
    missing = distributions - set(out.values())
    assert not missing, f"declared dependencies not installed in this environment (run make venv): {missing}"
    return out


def _code(source: str) -> str:
    """Notebook cell source as Python: IPython magics and shell escapes become `pass` (indent kept)."""
    if source.lstrip().startswith("%%"):
        return ""  # a cell magic: its body is not Python
    return "\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in source.split("\n"))


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True if the import sits in a `try:` whose handlers catch ImportError (an optional import)."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Try) and node in parent.body:
            for handler in parent.handlers:
                names = {n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)} if handler.type else {"*"}
                if names & {"ImportError", "ModuleNotFoundError", "Exception", "*"}:
                    return True
        node = parent
    return False


def imports(source: str, skip_optional: bool = False) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in `source`."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if skip_optional and isinstance(node, (ast.Import, ast.ImportFrom)) and _optional(node, parents):
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def notebook_imports(path: Path) -> list[tuple[int, str]]:
    """(cell index, module) for every import in the notebook's code cells."""
    out = []
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            try:
                out += [(i, mod) for _, mod in imports(_code(source))]
            except SyntaxError as exc:
                pytest.fail(f"{path.relative_to(ROOT)} cell {i} is not valid Python: {exc}")
    return out


def allowed(provided: dict[str, str]) -> set[str]:
    return set(sys.stdlib_module_names) | set(COLAB) | set(provided) | {"__future__"}


NOTEBOOKS = notebooks()


def test_notebooks_found():
    assert len(NOTEBOOKS) >= 3, f"expected notebooks under {NOTEBOOK_GLOBS}, found {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_imports_are_available_in_colab(path):
    provided = import_names(installed_distributions(install_cell_requirement(path)))
    ok = allowed(provided)
    missing = [(i, mod) for i, mod in notebook_imports(path) if mod not in ok]
    assert not missing, (
        f"{path.relative_to(ROOT)} imports modules that Colab lacks after the install cell: "
        + ", ".join(f"{mod!r} (cell {i})" for i, mod in missing)
        + ". Declare the package in pyproject.toml's dependencies, or make the import optional in cnnkit.")


CNNKIT_FILES = sorted((ROOT / "cnnkit").rglob("*.py"))


@pytest.mark.parametrize("path", CNNKIT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cnnkit_imports_are_declared(path):
    """cnnkit runs in Colab too: whatever it imports must be stdlib, in Colab, or a declared dependency."""
    project = _pyproject()["project"]
    provided = import_names({canonicalize_name(project["name"])}
                            | {canonicalize_name(Requirement(d).name) for d in project["dependencies"]})
    ok = allowed(provided)
    missing = [(line, mod) for line, mod in imports(path.read_text(), skip_optional=True) if mod not in ok]
    assert not missing, (
        f"{path.relative_to(ROOT)} imports modules that are not installed with cnnkit: "
        + ", ".join(f"{mod!r} (line {line})" for line, mod in missing)
        + ". Add the package to pyproject.toml's dependencies, or guard the import with `except ImportError`.")


def test_colab_list_is_justified():
    """The entries of COLAB that Colab need not preinstall are brought by a requirement of something that is."""
    for module, (dist, parent) in COLAB_BY_REQUIREMENT.items():
        requires = [canonicalize_name(Requirement(r).name) for r in (md.requires(parent) or [])
                    if "extra ==" not in r]
        assert canonicalize_name(dist) in requires, f"{module}: {parent} no longer requires {dist}"
        assert canonicalize_name(dist) in {canonicalize_name(d) for d in _packages_distributions().get(module, [])}, \
            f"{module} is not from {dist}"


def test_the_check_catches_a_missing_module(tmp_path):
    """The parser sees imports in magics-laden cells, nested blocks and `from` forms."""
    nb = {"cells": [{"cell_type": "code", "source": ["%matplotlib inline\n", "import numpy as np\n"]},
                    {"cell_type": "code", "source": ["if True:\n", "    from myst_nb import glue\n",
                                                     "    !pip list\n"]},
                    {"cell_type": "code", "source": ["%%bash\n", "import nothing\n"]},
                    {"cell_type": "markdown", "source": ["import markdown_is_not_code"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    assert notebook_imports(path) == [(0, "numpy"), (1, "myst_nb")]
    provided = import_names(installed_distributions(Requirement("cnnkit @ git+https://example.org/x@main")))
    assert "myst_nb" not in allowed(provided)
    assert {"sklearn", "skimage", "jupyterquiz", "torchinfo", "cnnkit"} <= set(provided) | set(COLAB)


def test_optional_imports_are_recognised():
    src = "try:\n    import a\nexcept ImportError:\n    a = None\nimport b\ndef f():\n    import c\n"
    assert [m for _, m in imports(src, skip_optional=True)] == ["b", "c"]
