"""Repository hygiene: committed notebooks carry no outputs, each has the hidden Colab install cell,
no sys.path edits, and every notebook is in the table of contents."""
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def tracked_notebooks() -> list[str]:
    try:
        return [p for p in _git("ls-files", "*.ipynb").split() if p]
    except (subprocess.CalledProcessError, FileNotFoundError):
        return []


def committed_json(path: str) -> dict:
    """The notebook as staged in git's index (what a commit holds), not the working tree copy that
    `pytest --nbmake --overwrite` fills with outputs."""
    return json.loads(_git("show", f":{path}"))


def all_notebooks() -> list[Path]:
    return sorted(p for d in ("chapters", "exercises", "exercises/source") for p in (ROOT / d).glob("*.ipynb"))


def test_there_are_notebooks():
    assert all_notebooks(), "no notebooks found under chapters/ or exercises/"


@pytest.mark.parametrize("path", tracked_notebooks())
def test_committed_notebook_has_no_outputs(path):
    nb = committed_json(path)
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path}: cells {dirty} carry outputs; run `make strip` (or install the nbstripout filter)"
    assert "widgets" not in nb.get("metadata", {}), f"{path}: committed with saved widget state"


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: p.name)
def test_notebook_has_hidden_colab_install_cell(path):
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    src = "".join(first["source"])
    assert '"google.colab" in sys.modules' in src and "%pip install" in src and "cnnkit @ git+" in src, \
        f"{path.name}: first code cell must install cnnkit in Colab"
    assert "torch" not in src.split("cnnkit @")[0].split("%pip install")[-1], "the Colab cell must not reinstall torch"
    assert "remove-cell" in first.get("metadata", {}).get("tags", []), f"{path.name}: Colab cell not tagged remove-cell"


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: p.name)
def test_no_sys_path_edits(path):
    src = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert "sys.path" not in src, f"{path.name} edits sys.path; import the installed cnnkit instead"


def test_python_sources_do_not_edit_sys_path():
    offenders = [p for p in (ROOT / "cnnkit").rglob("*.py") if "sys.path" in p.read_text()]
    assert not offenders, offenders


def test_every_chapter_notebook_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    missing = [p.name for p in (ROOT / "chapters").glob("*.ipynb") if f"chapters/{p.stem}" not in toc]
    assert not missing, f"chapters missing from _toc.yml: {missing}"
