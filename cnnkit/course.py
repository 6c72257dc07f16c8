"""The course's repository setting, kept in one place: the ``repository:`` section of ``_config.yml``.

Jupyter Book reads ``repository.url`` and ``repository.branch`` for its launch buttons (the Colab link opens
``<url>/blob/<branch>/<page>.ipynb``). Everything else that names the repository is derived from the same two
values here:

- the hidden Colab install cell, the first code cell of every notebook (``install_cell_source``), and the
  exercise generator's ``cnnkit.exercises.COLAB_SOURCE``;
- the install and clone commands shown in ``README.md``, ``book/setup.md``, ``book/intro.md`` and
  ``exercises/README.md``.

``python -m cnnkit.course --check`` lists every copy that disagrees with ``_config.yml`` (the test suite runs
the same check); ``python -m cnnkit.course --sync`` (``make sync-repo``) rewrites them;
``python -m cnnkit.course --remote`` asks git whether the repository and branch exist (needs the network).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Repository", "find_config", "read_repository", "install_cell_source", "Copy", "find_copies",
           "disagreements", "sync"]

CONFIG_NAME = "_config.yml"
# Where copies of the setting live: notebooks (first code cell) and the pages that show the commands.
NOTEBOOK_DIRS = ("chapters", "exercises", "exercises/source")
TEXT_FILES = ("README.md", "book/setup.md", "book/intro.md", "exercises/README.md")

# "cnnkit @ git+<url>@<branch>" (pip's direct reference) and "git clone <url> && cd <folder>"
_PIP = re.compile(r"cnnkit(?:\[[\w,\s-]*\])? @ git\+(?P<url>[^\s\"'\\@]+)@(?P<branch>[^\s\"'\\]+)")
_CLONE = re.compile(r"git clone (?:-b \S+ |--branch \S+ )?(?P<url>https?://\S+?)(?:\.git)?"
                    r"(?: && cd (?P<folder>[^\s`\"'\\]+))?(?=[\s`\"'\\]|$)", re.M)


@dataclass(frozen=True)
class Repository:
    """Where the course is published: a git URL and the branch learners install from."""
    url: str
    branch: str

    @property
    def pip_spec(self) -> str:
        """The requirement the Colab cell installs: ``cnnkit @ git+<url>@<branch>``."""
        return f"cnnkit @ git+{self.url}@{self.branch}"

    @property
    def folder(self) -> str:
        """The folder ``git clone <url>`` creates."""
        return self.url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")

    @property
    def clone_command(self) -> str:
        branch = "" if self.branch == "main" else f"-b {self.branch} "
        return f"git clone {branch}{self.url} && cd {self.folder}"


def _has_repository(path: Path) -> bool:
    try:
        return path.is_file() and re.search(r"^repository:", path.read_text(encoding="utf-8"), re.M) is not None
    except OSError:
        return False


def find_config(start: str | Path | None = None) -> Path | None:
    """The ``_config.yml`` with a ``repository:`` section at or above ``start`` (default: the current folder),
    else the one beside an editable install of cnnkit (the course checkout); ``None`` if there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _has_repository(folder / CONFIG_NAME):
            return folder / CONFIG_NAME
    beside = Path(__file__).resolve().parents[1] / CONFIG_NAME
    return beside if _has_repository(beside) else None


def _unquote(value: str) -> str:
    value = re.sub(r"\s+#.*$", "", value).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value


def read_repository(config: str | Path | None = None) -> Repository:
    """``repository.url`` and ``repository.branch`` from ``_config.yml`` (a path to the file or to its folder;
    default: ``find_config()``). Reads only that section, so cnnkit needs no YAML library."""
    path = Path(config) if config is not None else find_config()
    if path is not None and path.is_dir():
        path = path / CONFIG_NAME
    if path is None or not path.is_file():
        raise ValueError(f"no {CONFIG_NAME} with a repository: section found (looked at "
                         f"{path or 'the current folder and above'}); run from the course repository")
    values: dict[str, str] = {}
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^repository:\s*(#.*)?$", line):
            inside = True
        elif inside and line.strip() and not line.lstrip().startswith("#"):
            if not line.startswith((" ", "\t")):
                break  # the next top-level key
            m = re.match(r"^\s+(url|branch):\s*(.*)$", line)
            if m:
                values[m.group(1)] = _unquote(m.group(2))
    url, branch = values.get("url", ""), values.get("branch", "") or "main"
    if not re.match(r"^https://\S+/\S+$", url):
        raise ValueError(f"{path}: repository.url must be the https URL of the course's git repository "
                         f"(e.g. https://github.com/ORG/REPO), got {url!r}")
    if not re.match(r"^[\w./-]+$", branch):
        raise ValueError(f"{path}: repository.branch must be a branch name, got {branch!r}")
    return Repository(url.rstrip("/").removesuffix(".git"), branch)


def install_cell_source(repo: Repository | str | Path | None = None) -> str:
    """The hidden first cell of every notebook: in Colab only, install cnnkit (and its dependencies) from the
    course repository, leaving Colab's own PyTorch in place."""
    repo = repo if isinstance(repo, Repository) else read_repository(repo)
    return ("# Colab: install cnnkit (keeps Colab's own PyTorch). This cell is hidden on the website.\n"
            "import sys\n"
            'if "google.colab" in sys.modules:\n'
            f'    %pip install -q "{repo.pip_spec}"')


@dataclass
class Copy:
    """One place that repeats the setting: ``kind`` is ``install cell``, ``pip`` or ``clone``."""
    path: Path
    line: int
    kind: str
    found: str
    expected: str

    @property
    def ok(self) -> bool:
        return self.found == self.expected

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.kind} {self.found!r} should be {self.expected!r}"


def _notebooks(root: Path) -> list[Path]:
    return sorted(p for d in NOTEBOOK_DIRS for p in (root / d).glob("*.ipynb"))


def _first_code_cell(nb: dict) -> dict | None:
    return next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)


def _locate(root: str | Path | None) -> Path:
    """The config file of the course at ``root`` (default: found from the current folder)."""
    config = Path(root) / CONFIG_NAME if root is not None else find_config()
    if config is None or not config.is_file():
        raise ValueError(f"no {CONFIG_NAME} in {root or 'the current folder or above'}; "
                         "run from the course repository or pass --root")
    return config


def _code_lines(source: str) -> str:
    """The cell without its comment lines: what it does, which is what must agree."""
    return "\n".join(line for line in source.strip().split("\n") if not line.lstrip().startswith("#"))


def find_copies(root: str | Path | None = None) -> list[Copy]:
    """Every copy of the setting under ``root`` (default: the folder of ``_config.yml``), with what it should be.
    A notebook whose first code cell does not do what the install cell does (comments aside) disagrees."""
    import json
    config = _locate(root)
    repo = read_repository(config)
    root = config.parent
    cell = _code_lines(install_cell_source(repo))
    copies: list[Copy] = []
    for nb_path in _notebooks(root):
        first = _first_code_cell(json.loads(nb_path.read_text(encoding="utf-8")))
        src = "".join(first["source"]) if first else ""
        copies.append(Copy(nb_path.relative_to(root), 0, "install cell", _code_lines(src), cell))
    for name in TEXT_FILES:
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for m in _PIP.finditer(text):
            copies.append(Copy(path.relative_to(root), text.count("\n", 0, m.start()) + 1, "pip",
                               f"{m['url']}@{m['branch']}", f"{repo.url}@{repo.branch}"))
        for m in _CLONE.finditer(text):
            found = m.group(0)
            copies.append(Copy(path.relative_to(root), text.count("\n", 0, m.start()) + 1, "clone",
                               found, repo.clone_command))
    return copies


def disagreements(root: str | Path | None = None) -> list[Copy]:
    return [c for c in find_copies(root) if not c.ok]


def sync(root: str | Path | None = None) -> list[Path]:
    """Rewrite every copy to match ``_config.yml``; return the files changed. In notebooks only the URL and
    branch in the first code cell change (the file is edited as text, nothing else moves)."""
    config = _locate(root)
    repo = read_repository(config)
    root = config.parent
    changed: list[Path] = []

    def pip(m: re.Match) -> str:
        return m.group(0).replace(f"git+{m['url']}@{m['branch']}", f"git+{repo.url}@{repo.branch}")

    for path in _notebooks(root) + [root / n for n in TEXT_FILES if (root / n).is_file()]:
        text = path.read_text(encoding="utf-8")
        new = _PIP.sub(pip, text)
        if path.suffix != ".ipynb":
            new = _CLONE.sub(lambda m: repo.clone_command, new)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path.relative_to(root))
    return changed


def _remote(repo: Repository) -> int:
    cmd = ["git", "ls-remote", "--exit-code", repo.url, f"refs/heads/{repo.branch}"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"could not run {' '.join(cmd)}: {exc}", file=sys.stderr)
        return 2
    if out.returncode == 0:
        print(f"ok: {repo.url} has branch {repo.branch} ({out.stdout.split()[0][:12]})")
        return 0
    print(f"not found: {repo.url} branch {repo.branch} (git ls-remote exit {out.returncode}: "
          f"{out.stderr.strip() or 'no such branch'}). Learners' Colab installs and launch buttons will fail "
          f"until the course is pushed there, or point repository.url/branch in {CONFIG_NAME} at where it is.",
          file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnkit.course",
                                     description=f"The course repository setting ({CONFIG_NAME} repository:).")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="list copies that disagree (exit 1 if any); default")
    mode.add_argument("--sync", action="store_true", help="rewrite every copy from the setting")
    mode.add_argument("--remote", action="store_true", help="check with git that the repository and branch exist")
    parser.add_argument("--root", help="the course repository (default: found from the current folder)")
    args = parser.parse_args(argv)
    try:
        config = _locate(args.root)
        repo = read_repository(config)
        print(f"repository: {repo.url} branch {repo.branch} (from {config})")
        if args.remote:
            return _remote(repo)
        if args.sync:
            changed = sync(args.root)
            for path in changed:
                print(f"updated {path}")
            print(f"{len(changed)} file(s) changed" if changed else "every copy already agrees")
            return 0
        bad = disagreements(args.root)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for copy in bad:
        print(copy)
    print(f"{len(bad)} copies disagree: run `python -m cnnkit.course --sync` (make sync-repo)" if bad
          else "every copy agrees with the setting")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
