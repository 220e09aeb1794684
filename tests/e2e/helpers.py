"""Small helpers shared by the browser tests: logging in, one browser context per user, .docx bytes."""
from __future__ import annotations

from tests import factories
from tests.factories import docx_bytes

VIEWPORT = {"width": 1280, "height": 900}

# What the browser reported during the current test: Content-Security-Policy violations and uncaught
# JavaScript errors. tests/e2e/conftest.py empties it before each test and fails the test if it is not
# empty afterwards, so a page that only works with inline script or style cannot come back.
BROWSER_PROBLEMS: list[str] = []


def watch(page) -> None:
    """Record CSP violations (Chromium logs them as console errors) and uncaught errors of ``page``."""

    def on_console(message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            BROWSER_PROBLEMS.append(f"CSP violation on {page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: BROWSER_PROBLEMS.append(f"JavaScript error on {page.url}: {error}"))


def log_in(page, username: str, password: str = factories.PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(lambda url: "/login" not in url)


class Sessions:
    """One browser context (own cookies) per user, all closed at the end of the test."""

    def __init__(self, browser, base_url: str):
        self.browser, self.base_url, self.contexts = browser, base_url, []

    def page(self, username: str | None = None):
        context = self.browser.new_context(base_url=self.base_url, locale="zh-CN", viewport=VIEWPORT)
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        watch(page)
        page.on("dialog", lambda dialog: dialog.accept())  # confirm() prompts on submit buttons
        if username:
            log_in(page, username)
        return page

    def close(self) -> None:
        for context in self.contexts:
            try:
                context.close()
            except Exception:  # pragma: no cover - already closed with the browser
                pass
        self.contexts.clear()


DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def upload(name: str, data: bytes, mime: str = DOCX_MIME) -> dict:
    """A file for ``locator.set_input_files``."""
    return {"name": name, "mimeType": mime, "buffer": data}
