"""Helpers for the browser test of the built site: page discovery and one recorded visit per page.

The site is `_build/html` (or `$SITE_DIR`). Pages are discovered from the build, not listed by hand. Every
request the browser makes is recorded; Chromium runs with a host-resolver rule that resolves no host name,
so a request that would leave 127.0.0.1 is recorded and fails instead of touching the network. With
`SITE_TEST_REQUIRED=1` (set by `make site-test`) a missing build or browser is a failure; otherwise those
tests are skipped (e.g. a plain `pytest` before any build).

Each page is visited twice: in a 1280 px window (light theme, then dark) and in a 390 px one (a phone). At
1280 px the visit answers every quiz question wrong and right, opens every fold, measures every `pre` and
table against the content column and every content image's displayed scale and alt text, and runs axe-core
(vendored by tools/vendor.py) in both themes. At 390 px it looks for widgets, tables, quizzes and outputs
wider than the screen. What the checks measure and their thresholds are constants below.
"""
from __future__ import annotations

import json
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
    # (THEBE_JS_URL "already been declared": fixed by book/_ext/sitefixes.py, so no longer tolerated)
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
AXE_JS = REPO_DIR / "_vendor" / "test" / "axe-core" / "axe.min.js"   # tools/vendor.py puts it there
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Figures: displayed width / natural width at 1280 px. Notebook figures are 100 dpi PNGs; at 0.8 an 8 pt font
# (11 px) still shows at 9 px. The content column is 688 px, so figures up to 6.9 in show 1:1 and up to
# 8.6 in pass (cnnkit.figstyle holds the same numbers for the notebook authors).
MIN_IMAGE_SCALE = 0.8
MIN_ALT_WORDS = 3
FAIL_IMPACTS = ("serious", "critical")   # axe-core impacts that fail the test


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
    quiz_questions: list[dict] = field(default_factory=list)  # every question answered wrong and right
    column_px: float = 0.0                                  # content column width at 1280 px
    overflow_pre: list[str] = field(default_factory=list)   # code/output blocks wider than their box
    overflow_tables: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)        # src, alt, natural and shown width, scale
    axe_ran: bool = False
    axe: list[dict] = field(default_factory=list)           # axe-core violations, light theme (all rules)
    axe_dark: list[dict] = field(default_factory=list)      # color-contrast violations, dark theme
    phone_overflow: list[str] = field(default_factory=list)
    phone_page_width: int = 0
    seconds: float = 0.0

    def small_images(self) -> list[dict]:
        return [i for i in self.images if i["scale"] < MIN_IMAGE_SCALE]

    def bad_alt(self) -> list[dict]:
        return [i for i in self.images if not alt_text_ok(i["alt"], i["src"])]

    def failing_axe(self) -> list[dict]:
        return [v for v in self.axe if v["impact"] in FAIL_IMPACTS]

    def contrast(self) -> dict[str, list[dict]]:
        return {"light": [v for v in self.axe if v["id"] == "color-contrast"],
                "dark": [v for v in self.axe_dark if v["id"] == "color-contrast"]}

    def summary(self) -> dict:
        """The numbers the report needs, as JSON-friendly values."""
        return {"quiz_questions": len(self.quiz_questions),
                "quiz_failures": [q for q in self.quiz_questions if not q["ok"]],
                "overflow_pre": self.overflow_pre, "overflow_tables": self.overflow_tables,
                "small_images": self.small_images(), "bad_alt": self.bad_alt(),
                "axe": self.axe, "axe_dark": self.axe_dark, "phone_overflow": self.phone_overflow,
                "column_px": self.column_px}


def alt_text_ok(alt: str | None, src: str = "") -> bool:
    """Alt text that says something: present, not a file name (myst-nb's default is the image's path), and
    at least MIN_ALT_WORDS words."""
    if not alt or not alt.strip():
        return False
    a = alt.strip()
    name = src.rsplit("/", 1)[-1]
    if "_images/" in a or (name and name in a) or re.search(r"\.(png|jpe?g|svg|gif|webp)$", a, re.I):
        return False
    return len(a.split()) >= MIN_ALT_WORDS


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


def visit(context, base_url: str, page: str, screenshot: bool = False, phone_context=None,
          axe: bool = True) -> Visit:
    """Load one page in a new tab, exercise its widgets and quizzes, measure it, and record what happened;
    then load it again in ``phone_context`` (390 px) if given."""
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
        answer_every_question(p, v)
        if v.quizzes:
            p.wait_for_timeout(700)   # jupyterquiz typesets 500 ms after rendering: catch errors from that too
        if screenshot:
            p.add_style_tag(content=".skip-link { display: none !important; }")   # focus from the key presses
            SHOT_DIR.mkdir(parents=True, exist_ok=True)
            p.screenshot(path=str(SHOT_DIR / (page.replace("/", "__")[: -len(".html")] + ".png")), full_page=True)
        if axe:
            run_axe(p, v)
        open_folds(p)
        measure_layout(p, v)
    finally:
        p.close()
    if phone_context is not None:
        check_phone(phone_context, base_url, page, v)
    v.seconds = time.perf_counter() - t0
    return v


# ---------------------------------------------------------------------------------------------- quizzes
_QUIZ_INFO_JS = r"""(q) => {
  const fb = q.querySelector('.Feedback');
  const labels = Array.from(q.querySelectorAll('.MCButton'));
  const input = q.querySelector('input.Input-text');
  const kind = labels.length ? 'choice' : (q.querySelector('.NumericQn') ? 'numeric'
             : (q.querySelector('.StringQn') ? 'string' : 'unknown'));
  return {kind, text: (q.innerText || '').split('\n')[0].slice(0, 80),
          correct: labels.map(l => l.dataset.correct === 'true'),
          answers: input ? JSON.parse(input.dataset.answers || '[]') : [],
          precision: input && input.dataset.precision ? Number(input.dataset.precision) : null,
          hasFeedback: !!fb};
}"""

_FEEDBACK_JS = r"""(q) => {
  const fb = q.querySelector('.Feedback');
  if (!fb) return {shown: false, cls: '', text: ''};
  const style = getComputedStyle(fb);
  return {shown: style.display !== 'none' && style.visibility !== 'hidden' && fb.innerText.trim().length > 0,
          cls: fb.className, text: fb.innerText.trim().slice(0, 120)};
}"""


def _feedback_ok(q, expect: str) -> tuple[bool, str]:
    fb = q.evaluate(_FEEDBACK_JS)
    ok = fb["shown"] and expect in fb["cls"].split()
    return ok, (f"{expect}: " + (fb["text"] if fb["shown"] else "no feedback shown") +
                ("" if ok else f" (feedback class {fb['cls']!r})"))


def _type_answer(p, q, text: str) -> None:
    box = q.locator("input.Input-text").first
    box.scroll_into_view_if_needed()
    box.click()                               # jupyterquiz empties the box on focus
    p.keyboard.type(text, delay=5)            # keypress events: the page validates each character
    p.keyboard.press("Enter")
    p.wait_for_timeout(50)


def _numeric_inputs(info: dict) -> tuple[str | None, str]:
    """A right and a wrong answer to type into a numeric question, from the answers the page holds."""
    right = None
    for a in info["answers"]:
        if a.get("correct") and "value" in a:
            right = a["value"]
            break
        if a.get("correct") and "range" in a:
            right = a["range"][0]
            break
    wrong = next((a["value"] for a in info["answers"] if "value" in a and not a.get("correct")), None)
    if wrong is None:   # nothing wrong listed: a number far from every answer
        values = [a.get("value", a.get("range", [0])[0]) for a in info["answers"] if "value" in a or "range" in a]
        wrong = max([abs(x) for x in values] + [1]) * 10 + 7
    fmt = lambda x: (str(int(x)) if float(x).is_integer() else repr(float(x))) if x is not None else None  # noqa
    return fmt(right), fmt(wrong)


def answer_every_question(p, v: Visit) -> None:
    """Answer every question of every quiz wrong, then right, and check the matching feedback appears."""
    questions = p.locator(".Quiz")
    for i in range(questions.count()):
        q = questions.nth(i)
        info = q.evaluate(_QUIZ_INFO_JS)
        result = {"question": i + 1, "kind": info["kind"], "text": info["text"], "checks": [], "ok": True}
        try:
            if info["kind"] == "choice":
                labels = q.locator(".MCButton")
                order = [j for j, c in enumerate(info["correct"]) if not c] + \
                        [j for j, c in enumerate(info["correct"]) if c]
                if not any(info["correct"]):
                    result["checks"].append((False, "no answer is marked correct in the page"))
                for j in order:
                    labels.nth(j).scroll_into_view_if_needed()
                    labels.nth(j).click()
                    result["checks"].append(_feedback_ok(q, "correct" if info["correct"][j] else "incorrect"))
            elif info["kind"] == "numeric":
                right, wrong = _numeric_inputs(info)
                _type_answer(p, q, wrong)
                result["checks"].append(_feedback_ok(q, "incorrect"))
                if right is None:
                    result["checks"].append((False, "no correct value or range in the page"))
                else:
                    _type_answer(p, q, right)
                    result["checks"].append(_feedback_ok(q, "correct"))
            elif info["kind"] == "string":
                right = next((a["answer"] for a in info["answers"] if a.get("correct") and "answer" in a), None)
                _type_answer(p, q, "qqqq zzzz")
                result["checks"].append(_feedback_ok(q, "incorrect"))
                if right is None:
                    result["checks"].append((False, "no correct answer in the page"))
                else:
                    _type_answer(p, q, right)
                    result["checks"].append(_feedback_ok(q, "correct"))
            else:
                result["checks"].append((False, "unknown question type"))
        except Exception as exc:   # a click or key press that failed is a failed question, not a crash
            result["checks"].append((False, f"{type(exc).__name__}: {str(exc)[:150]}"))
        result["ok"] = bool(result["checks"]) and all(ok for ok, _ in result["checks"])
        v.quiz_questions.append(result)


# ---------------------------------------------------------------------------------------------- layout
def open_folds(p) -> None:
    """Open every fold (hidden cell inputs, dropdown admonitions such as the solutions) so their content is
    measured as a reader who opens it sees it."""
    p.evaluate(r"""() => {
      document.querySelectorAll('details:not([open])').forEach(d => d.open = true);
      document.querySelectorAll('.toggle-hidden button.toggle-button, .toggle-hidden .toggle-button')
        .forEach(b => b.click());
    }""")
    p.wait_for_timeout(300)


_LAYOUT_JS = r"""() => {
  const art = document.querySelector('article.bd-article') || document.querySelector('[role="main"]');
  const cs = getComputedStyle(art);
  const column = art.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const where = (el) => {
    const cell = el.closest('.cell');
    if (cell) {
      const cells = Array.from(art.querySelectorAll('.cell'));
      const part = el.closest('.cell_input') ? 'input' : (el.closest('.cell_output') ? 'output' : 'cell');
      const code = cell.querySelector('.cell_input pre');
      const first = code ? code.innerText.split('\n')[0].trim().slice(0, 40) : '';
      return `cell ${cells.indexOf(cell) + 1} ${part}` + (first ? ` (code starts ${JSON.stringify(first)})` : '');
    }
    const sec = el.closest('section');
    const h = sec && sec.querySelector('h1, h2, h3');
    return 'block under ' + JSON.stringify(h ? h.textContent.replace(/[#¶]/g, '').trim().slice(0, 40) : '');
  };
  const pres = [];
  for (const pre of art.querySelectorAll('pre')) {
    if (!pre.offsetParent || pre.clientWidth === 0) continue;            // still hidden
    const over = pre.scrollWidth - pre.clientWidth;
    if (over <= 1) continue;
    const lines = pre.innerText.split('\n');
    const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
    pres.push(`${where(pre)}: ${over}px too wide, longest line ${longest.length} chars: `
              + JSON.stringify(longest.trim().slice(0, 50)));
  }
  const tables = [];
  for (const t of art.querySelectorAll('table')) {
    if (!t.offsetParent) continue;
    const w = t.getBoundingClientRect().width;
    if (w > column + 1) tables.push(`${where(t)}: table ${Math.round(w)}px wide in a ${Math.round(column)}px column`);
  }
  const images = [];
  for (const img of art.querySelectorAll('img')) {
    if (!img.offsetParent || !img.naturalWidth) continue;
    const shown = img.getBoundingClientRect().width;
    images.push({src: (img.getAttribute('src') || '').split('/').pop(), alt: img.getAttribute('alt'),
                 natural: img.naturalWidth, shown: Math.round(shown),
                 scale: Math.round(1000 * Math.min(1, shown / img.naturalWidth)) / 1000, where: where(img)});
  }
  return {column, pres, tables, images};
}"""


def measure_layout(p, v: Visit) -> None:
    m = p.evaluate(_LAYOUT_JS)
    v.column_px = m["column"]
    v.overflow_pre, v.overflow_tables, v.images = m["pres"], m["tables"], m["images"]


_PHONE_JS = r"""() => {
  const vw = document.documentElement.clientWidth;
  const found = [];
  const check = (el, what) => {
    if (!el.offsetParent) return;
    const r = el.getBoundingClientRect();
    if (r.right > vw + 1 || r.left < -1 || el.scrollWidth > el.clientWidth + 1 && what !== 'table')
      found.push(`${what}: ${Math.round(r.left)}..${Math.round(r.right)}px (scroll ${el.scrollWidth}/${el.clientWidth})`
                 + ` on a ${vw}px screen`);
  };
  const top = (sel) => Array.from(document.querySelectorAll(sel)).filter(el => !el.parentElement.closest(sel));
  top('.jupyter-widgets').forEach(el => check(el, 'widget'));
  document.querySelectorAll('article table').forEach(el => {
    if (!el.offsetParent) return;
    const r = el.getBoundingClientRect();
    const box = el.parentElement.getBoundingClientRect();
    if (r.right > vw + 1 || r.width > Math.min(vw, box.width) + 1)
      found.push(`table: ${Math.round(r.width)}px wide on a ${vw}px screen`);
  });
  top('.Quiz').forEach(el => check(el, 'quiz'));
  document.querySelectorAll('article .cell_output > .output:not(.text_plain):not(.stream)').forEach(el => {
    if (el.querySelector('pre') && !el.querySelector('table, .jupyter-widgets')) return;
    check(el, 'output');
  });
  return {found: [...new Set(found)], pageWidth: document.documentElement.scrollWidth};
}"""


def check_phone(phone_context, base_url: str, page: str, v: Visit) -> None:
    """At 390 px no widget, table, quiz or HTML output is wider than the screen (code blocks may scroll)."""
    p = phone_context.new_page()
    try:
        p.goto(base_url + page, wait_until="load")
        if v.widget_views:
            try:
                p.wait_for_selector(".cell_output .jupyter-widgets", timeout=15_000)
            except Exception:
                pass
        p.wait_for_timeout(300)
        m = p.evaluate(_PHONE_JS)
        v.phone_overflow, v.phone_page_width = m["found"], m["pageWidth"]
    finally:
        p.close()


# ---------------------------------------------------------------------------------------------- axe-core
def _axe_run(p, options: dict) -> list[dict]:
    return p.evaluate("""async (options) => {
      const res = await axe.run(document, options);
      return res.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.length, targets: v.nodes.slice(0, 4).map(n => n.target.join(' ')),
        detail: v.nodes.slice(0, 2).map(n => (n.failureSummary || '').split('\\n').slice(-1)[0].slice(0, 160))}));
    }""", options)


def run_axe(p, v: Visit) -> None:
    """axe-core on the whole page, light theme (all rules), then the dark theme (colour contrast only)."""
    if not AXE_JS.is_file():
        return
    p.add_script_tag(path=str(AXE_JS))
    # Steady state: no hover (the quiz clicks leave the mouse over whatever scrolled under it) and no focus.
    p.mouse.move(0, 0)
    p.evaluate("() => document.activeElement && document.activeElement.blur && document.activeElement.blur()")
    options = {"resultTypes": ["violations"]}
    v.axe = _axe_run(p, options)
    # No colour transitions: axe must see the dark theme's final colours, not a mix half-way.
    p.add_style_tag(content="*, *::before, *::after { transition: none !important; }")
    p.evaluate("""() => { document.documentElement.dataset.theme = 'dark';
                          document.documentElement.dataset.mode = 'dark'; }""")
    p.wait_for_timeout(300)
    v.axe_dark = _axe_run(p, {**options, "runOnly": {"type": "rule", "values": ["color-contrast"]}})
    p.evaluate("""() => { document.documentElement.dataset.theme = 'light';
                          document.documentElement.dataset.mode = 'light'; }""")
    v.axe_ran = True


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


