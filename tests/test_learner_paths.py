"""The learner's paths (issue 10): one repository setting, a build that leaves the tree clean, a CPU-only install.

- Every copy of the repository URL and branch (install cells, docs) agrees with `_config.yml` (cnnkit.course).
- `make book` / `make test` execute notebooks only in copies under `_build/` (tools/stage_book.py); `.ci/run`
  checks after `make test` that `git status --porcelain` is empty, which this file cannot do without executing
  every notebook a second time.
- README and the setup page show the CPU-only PyTorch install, and no requirement pins torch above 2.4.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cnnkit import course
from cnnkit.course import Repository, disagreements, find_copies, install_cell_source, read_repository, sync

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# ------------------------------------------------------------------------------------- repository setting

def test_every_copy_of_the_repository_setting_agrees():
    bad = disagreements(ROOT)
    assert not bad, ("copies of repository.url/branch disagree with _config.yml; run `make sync-repo`:\n"
                     + "\n".join(map(str, bad)))


def test_copies_are_found_where_they_live():
    copies = find_copies(ROOT)
    notebooks = sorted(p for d in course.NOTEBOOK_DIRS for p in (ROOT / d).glob("*.ipynb"))
    assert {c.path for c in copies if c.kind == "install cell"} == {p.relative_to(ROOT) for p in notebooks}
    texts = {c.path.as_posix() for c in copies if c.kind != "install cell"}
    assert {"book/setup.md", "book/intro.md", "exercises/README.md", "README.md"} <= texts


def test_reader_agrees_with_yaml():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    repo = read_repository(ROOT)
    assert (repo.url, repo.branch) == (config["url"].rstrip("/"), config.get("branch", "main"))


def test_exercise_generator_uses_the_setting():
    from cnnkit.exercises import COLAB_SOURCE
    assert COLAB_SOURCE == install_cell_source(ROOT)
    assert read_repository(ROOT).pip_spec in COLAB_SOURCE


def test_no_other_copy_of_the_url_in_tracked_files():
    """The URL itself appears only in _config.yml and in the copies that the check above compares."""
    url = read_repository(ROOT).url
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    allowed = {"_config.yml"} | {c.path.as_posix() for c in find_copies(ROOT)}
    stray = [f for f in files.split() if f not in allowed and not f.startswith("tests/")
             and (ROOT / f).is_file() and url in (ROOT / f).read_text(errors="ignore")]
    assert not stray, f"{url} is written by hand in {stray}; derive it from cnnkit.course or add the file " \
                      "to cnnkit.course.TEXT_FILES so the test compares it"


def _course_copy(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    for name in ["_config.yml", *course.TEXT_FILES]:
        if (ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, root / name)
    for d in course.NOTEBOOK_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
        for p in sorted((ROOT / d).glob("*.ipynb"))[:1]:
            shutil.copy(p, root / d / p.name)
    return root


def test_changing_the_setting_is_caught_and_sync_fixes_it(tmp_path):
    root = _course_copy(tmp_path)
    config = root / "_config.yml"
    text = config.read_text()
    old = read_repository(root)
    config.write_text(text.replace(f"url: {old.url}", "url: https://github.com/someone/their-course")
                      .replace(f"branch: {old.branch}", "branch: spring"))
    new = read_repository(root)
    assert new == Repository("https://github.com/someone/their-course", "spring")
    bad = disagreements(root)
    assert {c.path.as_posix() for c in bad} >= {"book/setup.md", "book/intro.md", "README.md"}
    assert any(c.kind == "install cell" for c in bad)
    notebook = next(root.glob("chapters/*.ipynb"))
    before = notebook.read_text()
    assert sync(root)
    assert not disagreements(root)
    after = notebook.read_text()
    # only the URL and branch changed in the notebook, nothing else moved
    assert after == before.replace(f"git+{old.url}@{old.branch}", f"git+{new.url}@{new.branch}")
    assert "git clone -b spring https://github.com/someone/their-course && cd their-course" \
        in (root / "book/intro.md").read_text()
    assert course.main(["--root", str(root)]) == 0


def test_reader_errors_name_the_fix(tmp_path):
    (tmp_path / "_config.yml").write_text("title: x\nrepository:\n  url: not-a-url\n")
    with pytest.raises(ValueError, match="repository.url must be the https URL"):
        read_repository(tmp_path)
    (tmp_path / "_config.yml").write_text("repository:  # where learners install from\n"
                                          "  url: 'https://github.com/a/b.git'  # quoted\n  branch: dev\n"
                                          "launch_buttons:\n  url: https://elsewhere\n")
    assert read_repository(tmp_path) == Repository("https://github.com/a/b", "dev")
    with pytest.raises(ValueError, match="no _config.yml"):
        read_repository(tmp_path / "missing")


# ------------------------------------------------------------------------------- build leaves the tree clean

def _dry_run(target: str) -> list[str]:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.replace("\\\n", " ").splitlines()


@pytest.mark.parametrize("target", ["book", "test"])
def test_make_never_executes_notebooks_in_place(target):
    lines = _dry_run(target)
    runs = [line for line in lines if "--nbmake" in line]
    assert runs, f"make {target} executes no notebook?"
    for line in runs:
        assert "--overwrite" not in line or "stage_book" in " ".join(lines[:lines.index(line)]), line
        paths = [w for w in line.split() if not w.startswith("-") and ("chapters" in w or "exercises" in w)]
        assert paths and all(p.startswith("_build/") for p in paths), \
            f"make {target} executes notebooks outside _build/ (they would be written back): {line}"
    builds = [line for line in lines if "jupyter-book build" in line]
    assert builds and all(" _build/src " in f" {line} " for line in builds), builds


def test_ci_checks_the_tree_after_make_test():
    ci = (ROOT / ".ci/run").read_text()
    assert ci.index("make test") < ci.index("status --porcelain"), ".ci/run must check git status after make test"


def _stage_module():
    spec = importlib.util.spec_from_file_location("stage_book", ROOT / "tools/stage_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_keeps_executed_copies_until_their_source_changes(tmp_path):
    stage = _stage_module()
    src, dest = tmp_path / "repo", tmp_path / "repo/_build/src"
    nb = {"cells": [{"cell_type": "code", "source": ["1 + 1"], "outputs": [], "execution_count": None,
                     "metadata": {}}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (src / "chapters").mkdir(parents=True)
    (src / "tests").mkdir()
    (src / "chapters/01_a.ipynb").write_text(json.dumps(nb))
    (src / "book.md").write_text("# Book")
    (src / "tests/test_x.py").write_text("")
    stage.stage(fresh=True, root=src, dest=dest)
    assert (dest / "chapters/01_a.ipynb").is_file() and (dest / "book.md").is_file()
    assert not (dest / "tests").exists() and not (dest / "_build").exists()
    assert "NotebookFile" in (dest / "conftest.py").read_text()
    executed = dict(nb, cells=[dict(nb["cells"][0], outputs=[{"output_type": "execute_result"}])])
    (dest / "chapters/01_a.ipynb").write_text(json.dumps(executed))
    assert stage.stage(fresh=False, root=src, dest=dest)[1] == []
    assert "execute_result" in (dest / "chapters/01_a.ipynb").read_text(), "executed copy was not kept"
    (src / "chapters/01_a.ipynb").write_text(json.dumps(dict(nb, cells=[dict(nb["cells"][0], source=["2"])])))
    assert stage.stage(fresh=False, root=src, dest=dest)[1] == [Path("chapters/01_a.ipynb")]
    (src / "book.md").unlink()
    stage.stage(fresh=True, root=src, dest=dest)
    assert not (dest / "book.md").exists(), "a file deleted from the tree stayed in the copy"
    assert (src / "chapters/01_a.ipynb").read_text() == json.dumps(dict(nb, cells=[dict(nb["cells"][0],
                                                                                       source=["2"])]))


# ------------------------------------------------------------------------------------ CPU-only PyTorch

@pytest.mark.parametrize("doc", ["README.md", "book/setup.md"])
def test_docs_show_the_cpu_only_install(doc):
    text = (ROOT / doc).read_text()
    assert f"--index-url {CPU_INDEX}" in text, f"{doc} must show pip install ... --index-url {CPU_INDEX}"
    assert f"TORCH_INDEX={CPU_INDEX}" in text, f"{doc} must show make ... TORCH_INDEX={CPU_INDEX}"


def test_makefile_installs_torch_from_torch_index_first():
    make = (ROOT / "Makefile").read_text()
    first, reqs = make.index("--index-url $(TORCH_INDEX)"), make.index("-r requirements.txt")
    assert first < reqs, "torch from TORCH_INDEX must be installed before requirements.txt"


@pytest.mark.parametrize("name", ["torch", "torchvision"])
def test_torch_is_never_pinned_higher(name):
    """Colab's (older) torch must satisfy the requirements, so the install cell never replaces it."""
    from packaging.requirements import Requirement
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith(("#", "-"))]
    floor = {"torch": "2.4", "torchvision": "0.19"}[name]
    for req in map(Requirement, deps + lines):
        if req.name == name:
            assert str(req.specifier) == f">={floor}", f"{req}: keep {name}>={floor}, no higher floor or cap"
