"""Upload progress (issue 12): a form marked data-upload-progress shows a <progress> bar while a several-MB
file goes up, then ends on the same page, with the same flash message, as the same upload without
JavaScript; a refused upload shows the same errors. Other forms are untouched (their e2e tests still wait
for ordinary navigations)."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from evalhub.extensions import db
from evalhub.registry.models import FirmDocument
from tests.e2e.helpers import VIEWPORT, log_in, upload, watch

pytestmark = pytest.mark.e2e

BIG_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * (4 * 1024 * 1024)  # a 4 MB "licence scan"


def _firm_page(context, world):
    page = context.new_page()
    watch(page)
    log_in(page, world.firm_user.username)
    page.goto(f"/firms/{world.firm.id}")
    return page


def _choose(page, name: str, data: bytes, mime: str = "image/png") -> None:
    page.locator("[data-testid=document-upload-form] select[name=kind]").select_option("licence")
    page.locator("[data-testid=document-upload-form] input[name=file]").set_input_files(upload(name, data, mime))


def _documents() -> int:
    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count()).select_from(FirmDocument)).scalar_one()


def test_big_upload_shows_progress_and_ends_where_a_plain_post_does(world, browser, live_server):
    firm_url = re.compile(rf"/firms/{world.firm.id}(#documents)?$")
    db.session.commit()  # the server thread reads through its own connection

    # Without JavaScript: the ordinary submission, for comparison.
    plain = browser.new_context(base_url=live_server, locale="zh-CN", viewport=VIEWPORT, java_script_enabled=False)
    plain.set_default_timeout(15_000)
    page = _firm_page(plain, world)
    _choose(page, "营业执照-无脚本.png", BIG_PNG)
    with page.expect_navigation():
        page.get_by_test_id("upload-document").click()
    assert firm_url.search(page.url), page.url
    expect(page.locator(".alert", has_text="已上传营业执照：营业执照-无脚本.png。")).to_be_visible()
    plain_path = page.url.split("#")[0]
    plain.close()
    assert _documents() == 1

    # With JavaScript: the same form, sent by the script. The request is held at the network layer so that
    # the bar can be seen before the server answers.
    context = browser.new_context(base_url=live_server, locale="zh-CN", viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    try:
        page = _firm_page(context, world)
        held = []
        page.route(f"**/firms/{world.firm.id}/documents", lambda route: held.append(route))
        _choose(page, "营业执照-有进度.png", BIG_PNG + b"\x01")  # other bytes: files are stored by content
        page.get_by_test_id("upload-document").click()
        bar = page.get_by_test_id("upload-progress")
        expect(bar).to_be_visible()
        expect(page.get_by_test_id("upload-percent")).to_have_text(re.compile(r"^\d{1,3}%$"))
        expect(page.get_by_test_id("upload-document")).to_be_disabled()  # no second click mid-upload
        for _ in range(100):  # the 4 MB body reaches the route handler a moment later
            if held:
                break
            page.wait_for_timeout(100)
        assert len(held) == 1 and held[0].request.headers.get("x-upload-progress") == "1"
        assert held[0].request.resource_type == "xhr"
        with page.expect_navigation():
            held[0].continue_()
        page.unroute(f"**/firms/{world.firm.id}/documents")
        assert page.url.split("#")[0] == plain_path
        # the flash survived the XMLHttpRequest's redirect: the real page load shows it
        expect(page.locator(".alert", has_text="已上传营业执照：营业执照-有进度.png。")).to_be_visible()
        expect(page.get_by_test_id("upload-progress")).to_have_count(0)
        assert _documents() == 2

        # A refused upload: the page with the form's error, as without JavaScript, and nothing stored.
        _choose(page, "营业执照.exe", b"MZ" + b"\x00" * 2048, "application/octet-stream")
        page.get_by_test_id("upload-document").click()
        expect(page.locator("[data-testid=document-upload-form]")).to_contain_text("文件类型不符")
        expect(page.get_by_test_id("upload-progress")).to_have_count(0)  # the answer's page, not ours
        assert page.url.endswith(f"/firms/{world.firm.id}/documents"), page.url  # where a plain POST shows it
        assert _documents() == 2
    finally:
        context.close()


def test_forms_without_the_attribute_submit_as_before(world, page):
    """The status form carries no data-upload-progress: an ordinary POST and navigation, no XHR."""
    db.session.commit()
    log_in(page, "bz.admin")
    page.goto(f"/firms/{world.firm.id}")
    requests = []
    page.on("request", lambda r: requests.append((r.method, r.resource_type, r.url)))
    page.locator("form:has([data-testid='status-action-suspend']) textarea").fill("约谈整改")
    with page.expect_navigation():
        page.get_by_test_id("status-action-suspend").click()
    posts = [r for r in requests if r[0] == "POST"]
    assert posts and all(kind == "document" for _, kind, _ in posts), posts
    expect(page.locator(".alert", has_text="暂停")).to_be_visible()
