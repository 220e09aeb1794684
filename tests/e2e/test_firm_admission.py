"""A bureau admin admits a pending firm application in the browser."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from evalhub.extensions import db
from evalhub.registry import services as registry
from evalhub.registry.models import Firm, FirmStatus
from tests import factories

pytestmark = pytest.mark.e2e

SCREENSHOT = "/tmp/e2e-admit.png"
FAILURE_SCREENSHOT = "/tmp/e2e-admit-failure.png"


def log_in(page, username: str, password: str = factories.PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(lambda url: "/login" not in url)


def test_bureau_admin_admits_pending_firm(world, page):
    firm = factories.firm(world.bz, FirmStatus.PENDING, name="巴州待审评价咨询有限公司")
    for kind, name, data in factories.admission_papers():  # the application's papers, as the firm uploaded them
        registry.attach_firm_document(firm, kind, name, data, world.bz_admin)
    firm_id = firm.id
    db.session.commit()  # the server thread reads through its own connection
    try:
        log_in(page, "bz.admin")

        page.goto(f"/firms/{firm_id}")
        expect(page.get_by_text("巴州待审评价咨询有限公司").first).to_be_visible()
        admit = page.get_by_test_id("status-action-admit")
        expect(admit).to_have_text(re.compile("准予入库"))
        reason = page.locator("form:has([data-testid='status-action-admit']) textarea")
        if reason.count():
            reason.first.fill("申请材料齐全，符合入库条件")
        with page.expect_navigation():
            admit.click()

        page.goto("/firms")
        row = page.get_by_test_id(f"firm-row-{firm_id}")
        expect(row).to_be_visible()
        expect(row).to_contain_text("已入库")
        page.screenshot(path=SCREENSHOT, full_page=True)
    except Exception:
        page.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise

    db.session.expire_all()
    firm = db.session.get(Firm, firm_id)
    assert firm.status == FirmStatus.ADMITTED
    assert firm.status_history[-1].actor.username == "bz.admin"
