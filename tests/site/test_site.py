"""Browser test of the built site (`make site-test`, after `make site`): every page renders, loads its images
and shows no error output; nothing is requested outside 127.0.0.1; widgets render from saved state and their
sliders move; quizzes answer a click; notebook pages link to Colab; search finds hits.

Pages come from the build (see conftest.discover_pages). Each page is loaded once; the tests below assert on
what that visit recorded. Screenshots go to `_build/screenshots/`.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from sitecheck import (COLAB_PREFIX, KNOWN_CONSOLE_ERRORS, REPO_DIR, SHOT_DIR, SITE_DIR, Visit, _is_local,
                       discover_pages, is_notebook_page, record)

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


def test_search_finds_hits(context, base_url):
    v = Visit("search.html")
    page = context.new_page()
    record(page, v)
    try:
        page.goto(base_url + "search.html?q=convolution", wait_until="load")
        page.wait_for_selector("#search-results ul.search li", timeout=20_000)
        hits = page.locator("#search-results ul.search li").count()
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOT_DIR / "search.png"))
    finally:
        page.close()
    assert hits > 0, "searching for 'convolution' found nothing"
    assert not v.external, f"search requested outside 127.0.0.1: {v.external}"


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
    with_quiz = [p for p, h in html.items() if "show_questions" in h or "jupyterquiz" in h.lower()]
    for p in with_widgets:
        assert visits(p).widgets_rendered > 0, f"{p}: has widget state, but no widget rendered"
    for p in with_quiz:
        assert visits(p).quizzes > 0, f"{p}: has quiz code, but no quiz rendered"
