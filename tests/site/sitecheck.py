"""Helpers for the browser test of the built site: page discovery and one recorded visit per page.

The site is `_build/html` (or `$SITE_DIR`). Pages are discovered from the build, not listed by hand. Every
request the browser makes is recorded; Chromium runs with a host-resolver rule that resolves no host name,
so a request that would leave 127.0.0.1 is recorded and fails instead of touching the network. With
`SITE_TEST_REQUIRED=1` (set by `make site-test`) a missing build or browser is a failure; otherwise those
tests are skipped (e.g. a plain `pytest` before any build).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE_DIR = Path(os.environ.get("SITE_DIR", ROOT / "_build" / "html")).resolve()
# The repository the site was built from (for Colab link targets): the folder holding `_build/html`.
REPO_DIR = SITE_DIR.parents[1] if SITE_DIR.parent.name == "_build" else ROOT
SHOT_DIR = SITE_DIR.parent / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("SITE_TEST_REQUIRED", "") not in ("", "0")
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_panels_static"}
SPECIAL = {"index.html", "search.html"}   # a redirect and the search page: tested on their own
KNOWN_CONSOLE_ERRORS = [
    re.compile(r"THEBE_JS_URL.*already been declared"),   # sphinx-thebe declares it twice (harmless)
    re.compile(r"Got invalid theme mode"),                 # pydata theme, first visit with empty localStorage
    re.compile(r"^Failed to load resource"),               # the URL is checked by Visit.failed / .external
]
IGNORED_MISSING = {"/favicon.ico"}   # Chromium asks for it by itself; the site does not link one
# Chromium flags from COURSE.md, plus: resolve no host name (127.0.0.1 is an address, so it still works).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
COLAB_PREFIX = "https://colab.research.google.com/github/"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def discover_pages(site: Path = SITE_DIR) -> list[str]:
    """Every HTML page of the build (posix paths relative to the site root), except the assets folders,
    the root redirect and the search page."""
    if not site.is_dir():
        return []
    pages = [p.relative_to(site).as_posix() for p in site.rglob("*.html")]
    return sorted(p for p in pages if p.split("/")[0] not in SKIP_DIRS and p not in SPECIAL)


def is_notebook_page(page: str, site: Path = SITE_DIR) -> bool:
    """A page built from a notebook: its source copy in `_sources/` is an `.ipynb`."""
    return (site / "_sources" / (page[: -len(".html")] + ".ipynb")).is_file()


@dataclass
class Visit:
    """What one page load showed."""
    page: str
    title: str = ""
    h1: str = ""
    main_text_len: int = 0
    requests: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)      # requests that tried to leave 127.0.0.1
    failed: list[str] = field(default_factory=list)        # local resources answered >= 400 or failed
    console_errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    n_images: int = 0
    error_outputs: list[str] = field(default_factory=list)
    colab_links: list[str] = field(default_factory=list)
    dead_links: list[str] = field(default_factory=list)    # internal <a href> whose file is not in the build
    widget_views: int = 0
    widgets_rendered: int = 0
    widget_has_state: bool = False
    widget_notes: int = 0
    slider_moved: bool | None = None                       # None: no slider on the page
    math_elements: int = 0                                  # .math nodes Sphinx wrote for MathJax
    math_rendered: int = 0                                  # mjx-container elements MathJax produced
    math_errors: list[str] = field(default_factory=list)    # TeX errors and undefined macros (shown in red)
    quizzes: int = 0
    quiz_feedback: str | None = None                        # feedback text after clicking an answer
    seconds: float = 0.0


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == "127.0.0.1"


# Error output: tracebacks and stderr anywhere; and lines that start like an uncaught exception's last line
# ("ValueError: ..."), except in cells whose code catches the exception on purpose (`except`) to show it.
# Indented lines (the exercise grader's ❌ reports) are not flagged.
_ERROR_OUTPUT_JS = r"""() => {
  const found = [];
  for (const el of document.querySelectorAll('.output.stderr, .output.traceback, .output.error, .output_error'))
    found.push('error-styled output: ' + el.innerText.slice(0, 200));
  for (const el of document.querySelectorAll('.cell_output, .output')) {
    const t = el.innerText || '';
    if (t.includes('Traceback (most recent call last)')) found.push('traceback: ' + t.slice(0, 200));
    const cell = el.closest('.cell');
    const input = cell && cell.querySelector('.cell_input');
    if (input && /\bexcept\b/.test(input.innerText)) continue;   // a deliberate demonstration
    const m = t.match(/^[A-Z]\w*(Error|Exception): .*/m);
    if (m) found.push('error text: ' + m[0].slice(0, 200));
  }
  return [...new Set(found)];
}"""

_DEAD_LINKS_JS = r"""() => Array.from(document.querySelectorAll('a[href]'))
  .map(a => a.href).filter(h => h.startsWith(location.origin))"""


def _dead_links(hrefs: list[str]) -> list[str]:
    dead = []
    for href in set(hrefs):
        path = unquote(urlsplit(href).path).lstrip("/")
        target = SITE_DIR / path
        if path == "" or target.is_dir():
            target = target / "index.html"
        if not target.exists():
            dead.append(href)
    return sorted(dead)


def record(p, v: Visit) -> None:
    """Attach recorders for requests, failures and console errors of page ``p`` to ``v``."""
    def failed(url: str, why: str) -> None:
        if _is_local(url) and urlsplit(url).path not in IGNORED_MISSING:
            v.failed.append(f"{url} ({why})")

    def request(req) -> None:
        v.requests.append(req.url)
        if not _is_local(req.url):
            v.external.append(req.url)

    p.on("request", request)
    p.on("requestfailed", lambda req: failed(req.url, str(req.failure)))
    p.on("response", lambda res: res.status >= 400 and failed(res.url, f"HTTP {res.status}"))
    p.on("console", lambda msg: msg.type == "error" and v.console_errors.append(msg.text))
    p.on("pageerror", lambda exc: v.console_errors.append(f"uncaught: {exc}"))


def visit(context, base_url: str, page: str, screenshot: bool = False) -> Visit:
    """Load one page in a new tab, exercise its widgets and quizzes, and record what happened."""
    v = Visit(page)
    t0 = time.perf_counter()
    p = context.new_page()
    record(p, v)
    try:
        p.goto(base_url + page, wait_until="load")
        p.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15_000)
        v.title = p.title()
        v.h1 = (p.locator("article h1").first.inner_text(timeout=5_000) or "").strip()
        v.main_text_len = p.evaluate("() => (document.querySelector('main') || document.body).innerText.length")
        v.n_images = p.evaluate("() => document.images.length")
        v.broken_images = p.evaluate(
            "() => Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.currentSrc || i.src)")
        v.error_outputs = p.evaluate(_ERROR_OUTPUT_JS)
        v.colab_links = p.eval_on_selector_all(f'a[href^="{COLAB_PREFIX}"]', "els => els.map(e => e.href)")
        v.dead_links = _dead_links(p.evaluate(_DEAD_LINKS_JS))
        _check_math(p, v)
        _check_widgets(p, v)
        _check_quiz(p, v)
        if v.quizzes:
            p.wait_for_timeout(700)   # jupyterquiz typesets 500 ms after rendering: catch errors from that too
        if screenshot:
            p.add_style_tag(content=".skip-link { display: none !important; }")   # focus from the key presses
            SHOT_DIR.mkdir(parents=True, exist_ok=True)
            p.screenshot(path=str(SHOT_DIR / (page.replace("/", "__")[: -len(".html")] + ".png")), full_page=True)
    finally:
        p.close()
    v.seconds = time.perf_counter() - t0
    return v


def _check_math(p, v: Visit) -> None:
    v.math_elements = p.locator(".math").count()
    if not v.math_elements:
        return
    p.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise ? "
               "MathJax.startup.promise.then(() => true) : false")
    v.math_rendered = p.locator("mjx-container").count()
    v.math_errors = p.evaluate("""() => Array.from(document.querySelectorAll(
        'mjx-merror, mjx-container [style*="color: red"], mjx-container [mathcolor="red"]'))
        .map(e => (e.getAttribute('data-mjx-error') || e.textContent || 'TeX error').slice(0, 100))""")


def _check_widgets(p, v: Visit) -> None:
    v.widget_views = p.locator(f'script[type="{WIDGET_VIEW}"]').count()
    v.widget_has_state = p.locator(f'script[type="{WIDGET_STATE}"]').count() > 0
    if not v.widget_views:
        return
    try:   # html-manager puts each rendered view in a .jupyter-widgets container next to its script
        p.wait_for_selector(".cell_output .jupyter-widgets", timeout=15_000)
    except Exception:
        pass
    v.widgets_rendered = p.evaluate(
        f"""() => Array.from(document.querySelectorAll('script[type="{WIDGET_VIEW}"]')).filter(s => {{
              const area = s.parentElement;
              return area && area.querySelectorAll('.jupyter-widgets').length > 0; }}).length""")
    v.widget_notes = p.locator(".widget-static-note").count()
    handle = p.locator(".jupyter-widgets .noUi-handle, .jupyter-widgets input[type=range]").first
    if handle.count() == 0:
        return
    readout = p.locator(".jupyter-widgets .widget-readout").first
    before = readout.inner_text() if readout.count() else handle.get_attribute("aria-valuenow")
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    p.wait_for_timeout(200)
    after = readout.inner_text() if readout.count() else handle.get_attribute("aria-valuenow")
    if before == after:   # already at the maximum? try the other way
        for _ in range(3):
            handle.press("ArrowLeft")
        p.wait_for_timeout(200)
        after = readout.inner_text() if readout.count() else handle.get_attribute("aria-valuenow")
    v.slider_moved = before != after


def _check_quiz(p, v: Visit) -> None:
    v.quizzes = p.locator(".Quiz").count()
    if not v.quizzes:
        return
    button = p.locator(".Quiz .MCButton").first   # multiple/many-choice answers are labels with this class
    if button.count() == 0:
        v.quiz_feedback = ""
        return
    quiz = button.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' Quiz ')][1]")
    button.scroll_into_view_if_needed()
    button.click()
    feedback = quiz.locator(".Feedback.correct, .Feedback.incorrect").first
    try:
        feedback.wait_for(timeout=5_000)
        v.quiz_feedback = feedback.inner_text().strip()
    except Exception:
        v.quiz_feedback = ""


