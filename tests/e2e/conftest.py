"""Browser tests: the real app served by werkzeug in a background thread, driven by Debian's chromium.

The server uses the same app (and so the same test database) as the ``app`` fixture of tests/conftest.py;
each test makes its data with ``world`` (tests/factories.make_world) and the tables are emptied after it.

Chromium is Debian's (/usr/bin/chromium, `apt-get install chromium`); Playwright's own browser downloads
are never used. Where it is missing the tests are skipped, except under CI (CI=true), where that is a failure.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.e2e.helpers import BROWSER_PROBLEMS, watch

CHROMIUM = Path(os.environ.get("EVALHUB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _browser_unavailable(reason: str):
    if _in_ci():
        pytest.fail(f"{reason} — browser tests must run in CI (CI=true); .ci/run installs Debian's chromium.",
                    pytrace=False)
    pytest.skip(f"{reason}; install it with `apt-get install -y chromium` to run the browser tests")


@pytest.fixture(scope="session")
def live_server(app):
    """Base URL of the app served on 127.0.0.1 at a free port, for the whole session."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="evalhub-e2e-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _browser_unavailable(f"Debian's chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        _browser_unavailable("the playwright package is not installed")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@pytest.fixture()
def page(browser, live_server):
    """A fresh browser context (no cookies) per test, with the server's URL as base."""
    context = browser.new_context(base_url=live_server, locale="zh-CN", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    watch(page)
    page.on("dialog", lambda dialog: dialog.accept())  # confirm() prompts on status buttons
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(autouse=True)
def no_browser_problems():
    """Every browser test fails on a Content-Security-Policy violation or an uncaught JavaScript error."""
    BROWSER_PROBLEMS.clear()
    yield
    problems, BROWSER_PROBLEMS[:] = list(BROWSER_PROBLEMS), []
    assert not problems, "the browser reported:\n" + "\n".join(problems)
