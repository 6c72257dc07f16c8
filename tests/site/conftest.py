"""Fixtures for the browser test: a local HTTP server for the built site, headless Chromium, and a cache of
one visit per page (see sitecheck.py)."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import json

from sitecheck import (AXE_JS, CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, SITE_DIR, Visit, _unavailable,
                       discover_pages, is_notebook_page, visit)

# ---------------------------------------------------------------------------------------------- server
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output readable
        pass


@pytest.fixture(scope="session")
def base_url():
    if not (SITE_DIR / "index.html").is_file():
        _unavailable(f"no built site at {SITE_DIR}: run `make site` first (or set SITE_DIR)")
    handler = functools.partial(_QuietHandler, directory=str(SITE_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)   # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Python playwright is not installed (pip install playwright; no browser download needed)")
    if not Path(CHROMIUM).is_file() and not shutil.which(CHROMIUM):
        _unavailable(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium; or set CHROMIUM)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def context(browser):
    """One browser context for the whole run, so the big vendored scripts come from its cache after the
    first page (no request routing: that would switch the cache off)."""
    ctx = browser.new_context(viewport=DESKTOP)
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def phone_context(browser):
    """A 390 px wide touch screen (an iPhone-sized phone) for the narrow-screen checks."""
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True)
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def visits(context, phone_context, base_url):
    """Visit every page once (in order) and cache what each showed; screenshot the first few notebook pages.
    At the end, write what every visit measured to `_build/site-report.json` (counts for the reports)."""
    if not AXE_JS.is_file():
        _unavailable(f"axe-core is not vendored at {AXE_JS}: run `make vendor` (tools/vendor.py)")
    cache: dict[str, Visit] = {}
    notebooks = [pg for pg in discover_pages() if is_notebook_page(pg)]
    shots = set(notebooks[:3]) | set(discover_pages()[:1])

    def get(page: str) -> Visit:
        if page not in cache:
            cache[page] = visit(context, base_url, page, screenshot=page in shots, phone_context=phone_context)
        return cache[page]

    yield get
    if cache:
        report = {page: v.summary() for page, v in cache.items()}
        (SITE_DIR.parent / "site-report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
