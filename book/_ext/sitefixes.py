"""Small Sphinx fixes for the course site, loaded by Jupyter Book through `sphinx.local_extensions` in
_config.yml.

Inline scripts listed twice. Sphinx 7.4 adds an inline `<script>` (`app.add_js_file(None, body=...)`) that an
extension registers after the HTML builder started twice: once as the builder's own entry (file name
`None`) and once more when `prepare_writing` copies the registry (file name `""`), and the two do not compare
equal. sphinx-thebe registers `const THEBE_JS_URL = ...` that way, so every page declared it twice and the
browser logged "Identifier 'THEBE_JS_URL' has already been declared" (sphinx-togglebutton's
`var togglebuttonSelector` was doubled too, silently). Here each page's script list is de-duplicated.

Stale static files. Sphinx copies `html_static_path` only while it writes pages; when no page is out of date
("no targets are out of date") it writes nothing and copies nothing, so an edited book/_assets/site.css or
site.js silently kept its old copy in `_build/html/_static`. Here outdated copies are refreshed at the start
of every build.
"""
from __future__ import annotations

import filecmp
import shutil
from pathlib import Path


def _key(js) -> tuple:
    return (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    builder = app.builder
    for files in (getattr(builder, "_js_files", None), getattr(builder, "_orig_js_files", None),
                  context.get("script_files")):
        if not isinstance(files, list):
            continue
        seen, keep = set(), []
        for js in files:
            if _key(js) not in seen:
                seen.add(_key(js))
                keep.append(js)
        files[:] = keep


def refresh_static_files(app) -> None:
    out = Path(app.outdir) / "_static"
    if app.builder.format != "html" or not out.is_dir():
        return
    for entry in app.config.html_static_path:
        src_root = Path(app.confdir) / entry
        if not src_root.is_dir():
            continue
        for src in src_root.rglob("*"):
            dest = out / src.relative_to(src_root)
            if src.is_file() and dest.is_file() and not filecmp.cmp(src, dest, shallow=False):
                shutil.copy2(src, dest)


def setup(app):
    app.connect("builder-inited", refresh_static_files)
    app.connect("html-page-context", dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
