"""Vendor the site's JavaScript so the built book requests nothing outside its own host (no CDN).

    python tools/vendor.py            # fetch from the npm registry into _vendor/ (git-ignored) if missing
    python tools/vendor.py --force    # fetch again
    python tools/vendor.py --check    # exit 1 if the vendored files are missing or stale

What it fetches (pinned versions, with `npm pack`, which checks the registry's integrity hash):
- MathJax 3 (`es5/tex-mml-chtml.js` plus the fonts, TeX extensions and accessibility parts it loads on demand),
  used through Sphinx's `mathjax_path`;
- require.js and `@jupyter-widgets/html-manager`'s `embed-amd.js` (with its icon fonts), used through myst-nb's
  `nb_ipywidgets_js` to render saved widget state in the static pages.
The files land in `_vendor/static/vendor/...`; `_vendor/static` is in `html_static_path`, so the site serves them from
`_static/vendor/...`. (Not a root `_static/` folder: Jupyter Book 1 would inject every .js there into every page.)
- axe-core, the accessibility checker the browser test (tests/site) injects into every page. It is for the test
  only, so it lands in `_vendor/test/axe-core/`, outside `html_static_path`: the site does not ship it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "_vendor" / "static" / "vendor"   # html_static_path has "_vendor/static"
TEST_DEST = ROOT / "_vendor" / "test"           # used by tests/site only, not served by the site
AXE_JS = TEST_DEST / "axe-core" / "axe.min.js"
STAMP = ROOT / "_vendor" / "vendor.json"

# package spec -> (folder under DEST, paths inside the package to copy: files or whole folders)
PACKAGES: dict[str, tuple[str, list[str]]] = {
    "mathjax@3.2.2": ("mathjax", ["es5/tex-mml-chtml.js", "es5/tex-chtml.js", "es5/input", "es5/output/chtml",
                                  "es5/a11y", "es5/sre", "es5/ui", "es5/adaptors", "LICENSE"]),
    "requirejs@2.3.8": ("widgets", ["require.js"]),
    "@jupyter-widgets/html-manager@1.0.15": ("widgets", ["dist"]),
}
# The same for the test-only packages, under TEST_DEST.
TEST_PACKAGES: dict[str, tuple[str, list[str]]] = {
    "axe-core@4.14.1": ("axe-core", ["axe.min.js", "LICENSE"]),
}
SKIP_SUFFIXES = (".map", ".d.ts")
# Files the site config points at: if any is missing the vendoring is incomplete.
REQUIRED = ["mathjax/tex-mml-chtml.js", "mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
            "widgets/require.js", "widgets/embed-amd.js"]
TEST_REQUIRED = ["axe-core/axe.min.js"]


def _flatten(rel: str) -> str:
    """Where a package path lands under its folder: MathJax's `es5/` and html-manager's `dist/` are dropped."""
    for prefix in ("es5/", "dist/"):
        if rel.startswith(prefix):
            return rel[len(prefix):]
    return rel


def _copy(src_root: Path, rel: str, dest: Path) -> int:
    src = src_root / rel
    if not src.exists():
        raise FileNotFoundError(f"{rel} is not in the npm package; the pinned version in {__file__} changed?")
    files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
    n = 0
    for f in files:
        if f.name.endswith(SKIP_SUFFIXES) or f.name in ("embed.js", "libembed-amd.js"):
            continue
        target = dest / _flatten(f.relative_to(src_root).as_posix())
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        n += 1
    return n


def is_complete() -> bool:
    """True when every required file is present and the stamp lists the pinned versions."""
    if not STAMP.exists() or any(not (DEST / r).is_file() for r in REQUIRED) \
            or any(not (TEST_DEST / r).is_file() for r in TEST_REQUIRED):
        return False
    try:
        return json.loads(STAMP.read_text()).get("packages") == sorted(PACKAGES | TEST_PACKAGES)
    except json.JSONDecodeError:
        return False


def vendor() -> None:
    if shutil.which("npm") is None:
        sys.exit("tools/vendor.py: `npm` was not found. Install Node.js/npm (Debian: apt-get install npm), "
                 "or copy a _vendor/ folder from a machine that has it.")
    for dest in (DEST, TEST_DEST):
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
    jobs = [(spec, DEST, folder, paths) for spec, (folder, paths) in PACKAGES.items()]
    jobs += [(spec, TEST_DEST, folder, paths) for spec, (folder, paths) in TEST_PACKAGES.items()]
    with tempfile.TemporaryDirectory() as tmp:
        for spec, dest, folder, paths in jobs:
            proc = subprocess.run(["npm", "pack", "--json", spec], cwd=tmp, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"tools/vendor.py: `npm pack {spec}` failed (is the npm registry reachable?):\n"
                         f"{proc.stderr.strip()[-2000:]}")
            info = json.loads(proc.stdout)[0]
            unpack = Path(tmp) / folder / spec.replace("/", "_")
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                tar.extractall(unpack, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(unpack)
            n = sum(_copy(unpack / "package", rel, dest / folder) for rel in paths)
            print(f"vendored {spec} ({info['integrity'][:20]}…): {n} files -> {(dest / folder).relative_to(ROOT)}")
    STAMP.write_text(json.dumps({"packages": sorted(PACKAGES | TEST_PACKAGES)}, indent=1) + "\n")
    missing = [r for r in REQUIRED if not (DEST / r).is_file()]
    missing += [r for r in TEST_REQUIRED if not (TEST_DEST / r).is_file()]
    if missing:
        sys.exit(f"tools/vendor.py: vendoring finished but these files are missing: {missing}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="fetch again even if _vendor/ is complete")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if missing or stale")
    args = parser.parse_args(argv)
    if args.check:
        ok = is_complete()
        print("vendored files are " + ("complete" if ok else "missing or stale: run `make vendor`"))
        return 0 if ok else 1
    if args.force or not is_complete():
        vendor()
    else:
        print("_vendor/ is complete (use --force to fetch again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
