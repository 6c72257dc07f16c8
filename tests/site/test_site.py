"""Browser test of the built site (`make site-test`, after `make site`): every page renders, loads its images
and shows no error output; nothing is requested outside 127.0.0.1; widgets render from saved state and their
sliders move; every quiz question answers, wrong and right; notebook pages link to Colab; search finds hits
and shows no raw TeX. Read like a reader (issue 11): no code block or table wider than the column at 1280 px,
figures shown at a legible scale and with alt text, nothing but code wider than a 390 px phone, text
contrast >= 4.5:1 in the light and the dark theme, and no serious or critical axe-core violation.

Pages come from the build (see conftest.discover_pages). Each page is loaded once; the tests below assert on
what that visit recorded. Screenshots go to `_build/screenshots/`.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from sitecheck import (AXE_JS, COLAB_PREFIX, FAIL_IMPACTS, KNOWN_CONSOLE_ERRORS, MIN_IMAGE_SCALE, REPO_DIR,
                       SHOT_DIR, SITE_DIR, Visit, _is_local, alt_text_ok, discover_pages, is_notebook_page,
                       measure_layout, record, run_axe)

PAGES = discover_pages()
NOTEBOOK_PAGES = [p for p in PAGES if is_notebook_page(p)]


def test_the_site_has_pages(base_url):
    assert PAGES, f"no HTML pages found under {SITE_DIR}"
    assert NOTEBOOK_PAGES, "no page was built from a notebook (.ipynb): is the toc empty?"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_cleanly(visits, page):
    v = visits(page)
    assert v.title.strip(), f"{page}: empty <title>"
    assert v.h1, f"{page}: no <h1> in the main content"
    assert v.main_text_len > 20, f"{page}: main content is (almost) empty"
    assert not v.broken_images, f"{page}: images that did not load: {v.broken_images}"
    assert not v.error_outputs, f"{page}: error output visible: {v.error_outputs}"
    assert not v.failed, f"{page}: local resources failed to load: {v.failed}"
    assert not v.dead_links, f"{page}: links to pages/files missing from the build: {v.dead_links}"


@pytest.mark.parametrize("page", PAGES)
def test_no_request_leaves_localhost(visits, page):
    v = visits(page)
    assert v.requests, f"{page}: no requests recorded at all (is the recorder working?)"
    assert not v.external, f"{page}: requests outside 127.0.0.1 (a CDN?): {sorted(set(v.external))}"
    assert all(_is_local(u) for u in v.requests if u not in v.external)


@pytest.mark.parametrize("page", PAGES)
def test_no_javascript_errors(visits, page):
    v = visits(page)
    errors = [e for e in v.console_errors if not any(k.search(e) for k in KNOWN_CONSOLE_ERRORS)]
    assert not errors, f"{page}: JavaScript errors in the console: {errors}"


@pytest.mark.parametrize("page", PAGES)
def test_math_is_typeset_by_the_vendored_mathjax(visits, page):
    v = visits(page)
    if not v.math_elements:
        pytest.skip("no math on this page")
    assert v.math_rendered >= v.math_elements, \
        f"{page}: MathJax rendered {v.math_rendered} of {v.math_elements} formulas (is _vendor/ complete?)"
    assert not v.math_errors, f"{page}: TeX errors or undefined macros: {v.math_errors}"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_links_to_colab_notebook_that_exists(visits, page):
    v = visits(page)
    assert v.colab_links, f"{page}: no Colab launch link (check launch_buttons.colab_url in _config.yml)"
    for link in set(v.colab_links):
        m = re.match(re.escape(COLAB_PREFIX) + r"[^/]+/[^/]+/blob/[^/]+/(.+)$", link)
        assert m, f"{page}: malformed Colab link {link}"
        target = m.group(1)
        assert target == page[: -len(".html")] + ".ipynb", f"{page}: Colab link points at {target}"
        assert (REPO_DIR / target).is_file(), f"{page}: Colab link target {target} is not in the repository"


@pytest.mark.parametrize("page", PAGES)
def test_widgets_render_from_saved_state(visits, page):
    v = visits(page)
    if not v.widget_views:
        pytest.skip("no widgets on this page")
    assert v.widget_has_state, f"{page}: widget outputs but no saved widget state (execute with nbmake --overwrite)"
    assert v.widgets_rendered == v.widget_views, \
        f"{page}: {v.widgets_rendered} of {v.widget_views} widget outputs rendered"
    assert v.widget_notes >= 1, f"{page}: the note that live updates need a kernel is missing (widget-note.js)"
    if v.slider_moved is not None:
        assert v.slider_moved, f"{page}: a slider did not move with the keyboard"


@pytest.mark.parametrize("page", PAGES)
def test_vendored_scripts_load_once_and_only_where_needed(visits, page):
    """The widget embedder loads once on widget pages and not elsewhere; MathJax loads at most once. Loading
    twice renders widgets twice: it happens when a root `_static/` folder makes Jupyter Book 1 inject every
    .js file of html_static_path (MathJax's extensions, embed-amd.js) into every page."""
    v = visits(page)
    paths = [urlsplit(u).path for u in v.requests]
    embeds = [p for p in paths if p.endswith("/embed-amd.js")]
    mathjax = [p for p in paths if p.endswith("/tex-mml-chtml.js")]
    assert len(embeds) == (1 if v.widget_views else 0), f"{page}: embed-amd.js requested {len(embeds)} times"
    assert len(mathjax) <= 1, f"{page}: MathJax requested {len(mathjax)} times"


def test_no_root_static_folder():
    assert not (REPO_DIR / "_static").exists(), (
        "a root _static/ folder makes Jupyter Book 1 add every .js file in html_static_path to every page "
        "(widgets then render twice); put site files in book/_assets/ instead")


@pytest.mark.parametrize("page", PAGES)
def test_quizzes_respond_to_a_click(visits, page):
    v = visits(page)
    if not v.quizzes:
        pytest.skip("no quiz on this page")
    assert v.quiz_feedback, f"{page}: clicking a quiz answer showed no feedback"


@pytest.mark.parametrize("page", PAGES)
def test_every_quiz_question_answers_wrong_and_right(visits, page):
    """Each question is answered with a wrong answer (incorrect feedback must appear), then the right one
    (correct feedback must appear). A numeric question whose precision breaks toPrecision shows nothing."""
    v = visits(page)
    if not v.quizzes:
        pytest.skip("no quiz on this page")
    assert len(v.quiz_questions) == v.quizzes
    bad = [f"question {q['question']} ({q['kind']}, {q['text']!r}): "
           + "; ".join(msg for ok, msg in q["checks"] if not ok) for q in v.quiz_questions if not q["ok"]]
    assert not bad, f"{page}: quiz questions that did not answer:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES)
def test_no_code_block_or_table_wider_than_the_column(visits, page):
    v = visits(page)
    found = v.overflow_pre + v.overflow_tables
    assert not found, (f"{page}: {len(v.overflow_pre)} code/output blocks and {len(v.overflow_tables)} tables "
                       f"wider than the {v.column_px:.0f} px column at 1280 px (code lines <= 78 characters, "
                       "tests/test_lint.py):\n" + "\n".join(found))


@pytest.mark.parametrize("page", PAGES)
def test_figures_are_shown_at_a_legible_scale(visits, page):
    v = visits(page)
    small = [f"{i['where']}: {i['src']} {i['natural']} px shown at {i['shown']} px (scale {i['scale']})"
             for i in v.small_images()]
    assert not small, (f"{page}: images shown below {MIN_IMAGE_SCALE} of their size in the {v.column_px:.0f} px "
                       "column; their text is too small to read (figures at most 8.6 in wide at 100 dpi, best "
                       "<= 6.9 in; split long strips into rows; cnnkit.figstyle.check_legible):\n"
                       + "\n".join(small))


@pytest.mark.parametrize("page", PAGES)
def test_figures_have_alt_text(visits, page):
    v = visits(page)
    bad = [f"{i['where']}: {i['src']} alt={i['alt']!r}" for i in v.bad_alt()]
    assert not bad, (f"{page}: images without alt text that says what they show (notebook cells: metadata "
                     '{"mystnb": {"image": {"alt": "..."}}}):\n' + "\n".join(bad))


@pytest.mark.parametrize("page", PAGES)
def test_nothing_but_code_is_wider_than_a_phone(visits, page):
    v = visits(page)
    assert not v.phone_overflow, f"{page}: wider than a 390 px screen:\n" + "\n".join(v.phone_overflow)


def _fmt_axe(violations: list[dict]) -> str:
    return "\n".join(f"{x['id']} ({x['impact']}, {x['nodes']} elements): {x['help']}; e.g. {x['targets'][:3]} "
                     f"{x['detail'][:1]}" for x in violations)


@pytest.mark.parametrize("page", PAGES)
def test_no_serious_accessibility_violation(visits, page):
    v = visits(page)
    assert v.axe_ran, f"{page}: axe-core did not run"
    bad = v.failing_axe()
    assert not bad, f"{page}: axe-core {'/'.join(FAIL_IMPACTS)} violations:\n" + _fmt_axe(bad)


@pytest.mark.parametrize("page", PAGES)
def test_text_contrast_in_light_and_dark_theme(visits, page):
    v = visits(page)
    assert v.axe_ran, f"{page}: axe-core did not run"
    found = {theme: _fmt_axe(vs) for theme, vs in v.contrast().items() if vs}
    assert not found, f"{page}: text under 4.5:1 contrast (axe color-contrast):\n" + "\n".join(
        f"[{theme}] {text}" for theme, text in found.items())


def test_the_measurements_catch_known_defects(context, base_url):
    """Guard against checks that pass by measuring nothing: a page with a long code line, a wide table, a
    shrunk image without alt text and grey-on-grey text must fail each check."""
    v = Visit("probe")
    page = context.new_page()
    try:
        page.goto(base_url + "search.html", wait_until="load")
        page.evaluate("""() => {
          const art = document.querySelector('article.bd-article') || document.querySelector('[role="main"]');
          const box = document.createElement('div');
          const png = document.createElement('canvas'); png.width = 1600; png.height = 100;
          box.innerHTML = '<pre>' + 'x'.repeat(120) + '</pre>'
            + '<table><tr><td style="min-width:2000px">wide</td></tr></table>'
            + '<img src="' + png.toDataURL() + '">'
            + '<p style="color:#777;background:#888">grey on grey</p>';
          art.appendChild(box);
        }""")
        page.wait_for_function("Array.from(document.images).every(i => i.complete)")
        measure_layout(page, v)
        run_axe(page, v)
    finally:
        page.close()
    assert len(v.overflow_pre) == 1 and "120 chars" in v.overflow_pre[0]
    assert len(v.overflow_tables) == 1
    assert [i["scale"] < MIN_IMAGE_SCALE for i in v.images] == [True] and v.bad_alt()
    assert v.contrast()["light"] and v.contrast()["dark"]
    assert not alt_text_ok("_images/ab12.png", "_images/ab12.png") and alt_text_ok("Loss falls with epochs")


def test_axe_core_is_vendored_not_fetched(base_url):
    assert AXE_JS.is_file(), f"{AXE_JS} missing: run `make vendor`"
    assert not (SITE_DIR / "_static" / "vendor" / "axe-core").exists(), "axe-core is for the test, not the site"


def test_search_finds_hits(context, base_url):
    v = Visit("search.html")
    page = context.new_page()
    record(page, v)
    try:
        page.goto(base_url + "search.html?q=padding", wait_until="load")   # hits pages with formulas
        page.wait_for_selector("#search-results ul.search li", timeout=20_000)
        page.wait_for_function("(document.querySelector('#search-results p.search-summary') || "
                               "{textContent: ''}).textContent.includes('Search finished')",
                               timeout=60_000)   # every result and its snippet is shown
        hits = page.locator("#search-results ul.search li").count()
        snippets = page.eval_on_selector_all("#search-results p.context", "els => els.map(e => e.textContent)")
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOT_DIR / "search.png"))
    finally:
        page.close()
    assert hits > 0, "searching for 'padding' found nothing"
    assert not v.external, f"search requested outside 127.0.0.1: {v.external}"
    tex = [t[:120] for t in snippets if re.search(r"\\[(\[]|\\[A-Za-z]{2,}", t)]
    assert not tex, f"search snippets show raw TeX (book/_assets/site.js turns it into text): {tex}"


def test_root_redirects_to_the_first_page(context, base_url):
    v = Visit("index.html")
    page = context.new_page()
    record(page, v)
    try:
        page.goto(base_url, wait_until="load")
        page.wait_for_selector("article h1", timeout=10_000)
        landed = page.url
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOT_DIR / "home.png"))
    finally:
        page.close()
    assert urlsplit(landed).path.strip("/") not in ("", "index.html"), f"the root did not redirect: {landed}"
    assert not v.external, f"the first page requested outside 127.0.0.1: {v.external}"


def test_requests_to_other_hosts_are_caught(context, base_url):
    """The recorder sees a request to another host (and Chromium cannot reach it): the no-CDN check can fail."""
    v = Visit("probe")
    page = context.new_page()
    record(page, v)
    try:
        page.goto(base_url + "search.html", wait_until="load")
        outcome = page.evaluate("() => fetch('https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js')"
                                ".then(() => 'reached', () => 'blocked')")
    finally:
        page.close()
    assert v.external == ["https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js"]
    assert outcome == "blocked", "Chromium reached another host: the host-resolver rule is not in effect"


def test_known_widget_and_quiz_pages_were_exercised(visits):
    """Guard against a test that passes by finding nothing: if any built page carries widget state or a quiz,
    at least one visit must have seen and exercised it."""
    html = {p: (SITE_DIR / p).read_text(encoding="utf-8", errors="replace") for p in PAGES}
    with_widgets = [p for p, h in html.items() if "application/vnd.jupyter.widget-state+json" in h]
    with_quiz = [p for p, h in html.items() if "show_questions" in h]  # the quiz script, not prose naming it
    for p in with_widgets:
        assert visits(p).widgets_rendered > 0, f"{p}: has widget state, but no widget rendered"
    for p in with_quiz:
        assert visits(p).quizzes > 0, f"{p}: has quiz code, but no quiz rendered"
        assert visits(p).quiz_questions, f"{p}: quiz rendered, but no question was answered"
    with_images = [p for p, h in html.items() if "<img" in h and "_images/" in h]
    for p in with_images:
        assert visits(p).images, f"{p}: has content images, but none was measured"
