"""From an accepted report to a closed rectification and a confirmed application row, in the browser.

firm1 enters a finding of its accepted report; bz.staff confirms it; the unit (tjj) sees its engagement
(firm, timeline — no expert), submits a plan and then evidence; bz.staff verifies 整改到位; bz.staff builds
the 2025 results-application list and confirms the row as proposed.

Shortcut outside the browser: the accepted engagement and the unit's account (factories).
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from evalhub.extensions import db
from evalhub.results.models import FindingStatus, ResultFinding
from tests import factories
from tests.e2e.helpers import Sessions, upload

pytestmark = pytest.mark.e2e

FINDING = "项目资金支付进度滞后，年末结余较大。"


def test_accepted_report_to_closed_rectification_and_confirmed_application(world, browser, live_server):
    e = factories.accepted(world)
    factories.unit_user(world, "巴州统计局", "tjj")
    db.session.commit()
    e_id, reference, firm_name = e.id, e.reference, world.firm.name

    sessions = Sessions(browser, live_server)
    try:
        firm = sessions.page("firm1")
        firm.goto(f"/results/engagements/{e_id}/findings")
        firm.locator("#category").select_option("process")
        firm.locator("#indicator").fill("资金到位率")
        firm.locator("#text").fill(FINDING)
        with firm.expect_navigation():
            firm.get_by_test_id("add-finding").click()
        expect(firm.get_by_test_id("findings")).to_contain_text(FINDING)
        expect(firm.get_by_test_id("confirm-findings")).to_have_count(0)  # the firm does not confirm

        bureau = sessions.page("bz.staff")
        bureau.goto(f"/results/engagements/{e_id}/findings")
        with bureau.expect_navigation():
            bureau.get_by_test_id("confirm-findings").click()
        expect(bureau.get_by_test_id("findings")).to_contain_text("待制定整改计划")
        finding_id = db.session.execute(sa.select(ResultFinding.id)).scalar_one()

        unit = sessions.page("tjj")
        unit.goto("/")
        unit.get_by_test_id("nav-results").click()
        unit.get_by_test_id(f"open-{reference}").click()
        expect(unit.get_by_test_id("firm")).to_have_text(firm_name)
        expect(unit.get_by_test_id("timeline")).to_contain_text("已验收")
        unit.locator(f"#p{finding_id}-plan").fill("由财务科负责，2026 年 3 月底前完成支付。")
        with unit.expect_navigation():
            unit.get_by_test_id(f"plan-{finding_id}").click()
        expect(unit.get_by_test_id(f"status-{finding_id}")).to_have_text("整改中")
        unit.locator(f"#e{finding_id}-note").fill("剩余资金已全部支付。")
        unit.locator(f"#e{finding_id}-files").set_input_files(upload("支付凭证.txt", "支付凭证".encode(), "text/plain"))
        with unit.expect_navigation():
            unit.get_by_test_id(f"evidence-{finding_id}").click()
        expect(unit.get_by_test_id(f"status-{finding_id}")).to_have_text("待核验")

        bureau.goto(f"/results/engagements/{e_id}/findings")
        bureau.locator(f"#v{finding_id}-verification").select_option("done")
        with bureau.expect_navigation():
            bureau.get_by_test_id(f"verify-{finding_id}").click()
        expect(bureau.get_by_test_id(f"status-{finding_id}")).to_have_text("整改到位")
        db.session.expire_all()
        assert db.session.get(ResultFinding, finding_id).status == FindingStatus.CLOSED

        bureau.goto("/results/application?year=2025")
        with bureau.expect_navigation():
            bureau.get_by_test_id("build-list").click()
        entry = bureau.get_by_test_id(f"entry-{reference}")
        expect(entry).to_contain_text("优先安排")  # 92 分 · 优, no open finding
        with bureau.expect_navigation():
            entry.get_by_role("button", name="确认").click()
        expect(bureau.get_by_test_id(f"entry-{reference}")).to_contain_text("已确认：优先安排")
        expect(bureau.get_by_test_id("figures")).to_contain_text("整改率 100.0%")
    finally:
        sessions.close()
