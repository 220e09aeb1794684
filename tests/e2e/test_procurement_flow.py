"""A competitive consultation (竞争性磋商) from the bureau's procure form to a signed contract, in the browser.

bz.admin opens the procurement for a planned engagement; firm1 bids through the marketplace page (two
other firms bid through the service); the deadline is moved into the past in the database (the only
shortcut); bz.admin opens the bids, enters a 3-person committee, enters every member's scores, awards
and signs the contract; the engagement then shows 已签约 on the bureau's engagement page and in firm1's
workspace.
"""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from evalhub.core.enums import Role
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import (
    Bid, BidStatus, CommitteeMember, Engagement, EngagementState, Procurement, ProcurementMethod, ProcurementStatus,
)
from evalhub.registry.services import StaffInput, add_staff
from tests import factories
from tests.e2e.helpers import Sessions, docx_bytes, upload

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/e2e-procurement-{}.png"
FAILURE_SCREENSHOT = "/tmp/e2e-procurement-failure.png"
COMMITTEE = ["评委甲", "评委乙", "评委丙"]


def _staff(firm, user, name):
    return add_staff(firm, StaffInput(name=name, id_number=factories.id_number(), role="项目负责人",
                                      years_experience=10), user)


def _other_bidder(world, name):
    """An admitted 巴州 firm with a user and one roster member."""
    firm = factories.firm(world.bz, name=name)
    user = factories.user(f"bidder{firm.id}", Role.FIRM_USER, firm_id=firm.id)
    return firm, user, _staff(firm, user, f"{name[:2]}负责人")


def _service_bid(procurement, user, staff, price):
    P.submit_bid(procurement, P.BidInput(price_wan=price, team_staff_ids=[staff.id], lead_staff_id=staff.id,
                                         technical_filename="技术方案.docx",
                                         technical_data=docx_bytes(f"技术方案 {user.username}")), user)


def test_competitive_consultation_from_procure_form_to_signed_contract(world, browser, live_server):
    engagement = factories.engagement(world, name="巴州统计局统计能力建设项目")
    lead = _staff(world.firm, world.firm_user, "赵负责人")
    others = [_other_bidder(world, "乙方评价咨询有限公司"), _other_bidder(world, "丙方绩效评价有限公司")]
    db.session.commit()  # the server thread reads through its own connection
    engagement_id, lead_id = engagement.id, lead.id

    sessions = Sessions(browser, live_server)
    current = None
    try:
        # --- the bureau opens a competitive consultation ----------------------------------------------
        bureau = current = sessions.page("bz.admin")
        bureau.goto(f"/engagements/{engagement_id}/procure")
        bureau.locator("select[name=method]").select_option(ProcurementMethod.COMPETITIVE_CONSULTATION.value)
        bureau.get_by_label("最高限价（万元）").fill("50")
        bureau.get_by_label("价格分权重（%）").fill("20")
        expect(bureau.get_by_test_id("eligible-firms")).to_contain_text(world.firm.name)
        with bureau.expect_navigation():
            bureau.get_by_test_id("open-procurement").click()
        match = re.search(r"/procurements/(\d+)$", bureau.url)
        assert match, bureau.url
        procurement_id = int(match.group(1))
        expect(bureau.get_by_test_id("procurement-status").first).to_have_text("投标中")
        expect(bureau.get_by_test_id("bids-sealed")).to_be_visible()

        # --- firm1 bids through the marketplace -------------------------------------------------------
        firm = current = sessions.page("firm1")
        firm.goto("/market")
        expect(firm.get_by_test_id(f"opportunity-{procurement_id}")).to_contain_text("符合")
        firm.get_by_test_id(f"bid-link-{procurement_id}").click()
        firm.get_by_label("投标报价（万元）").fill("40")
        firm.locator(f"input[name=team_staff_ids][value='{lead_id}']").check()
        firm.locator("select[name=lead_staff_id]").select_option(str(lead_id))
        firm.locator("input[name=technical_file]").set_input_files(
            upload("巴州示范技术方案.docx", docx_bytes("巴州示范评价咨询有限公司技术方案\n评价思路与方法")))
        with firm.expect_navigation():
            firm.get_by_test_id("submit-bid").click()
        expect(firm.get_by_test_id("own-bid-price")).to_have_text("40.00 万元")
        expect(firm.get_by_test_id("bid-status").first).to_have_text("已提交")
        firm.screenshot(path=SHOTS.format("1-bid"), full_page=True)

        # --- the two other firms bid through the service ----------------------------------------------
        db.session.expire_all()
        procurement = db.session.get(Procurement, procurement_id)
        assert procurement.method == ProcurementMethod.COMPETITIVE_CONSULTATION
        for (_, user, staff), price in zip(others, ["45", "48"]):
            _service_bid(procurement, user, staff, price)
        # the test's shortcut: the bid deadline passes
        procurement.bid_deadline = utcnow() - timedelta(seconds=1)
        db.session.commit()

        # --- the bureau opens the bids, enters the committee and the scores ---------------------------
        current = bureau
        bureau.goto(f"/procurements/{procurement_id}")
        with bureau.expect_navigation():
            bureau.get_by_test_id("open-bids").click()
        expect(bureau.get_by_test_id("bid-table").locator("tbody tr")).to_have_count(3)
        bureau.get_by_label("评审委员会成员").fill("\n".join(COMMITTEE))
        with bureau.expect_navigation():
            bureau.get_by_test_id("enter-committee").click()
        expect(bureau.get_by_test_id("committee").locator("tbody tr")).to_have_count(3)

        db.session.expire_all()
        procurement = db.session.get(Procurement, procurement_id)
        members = db.session.execute(sa.select(CommitteeMember).where(
            CommitteeMember.procurement_id == procurement_id).order_by(CommitteeMember.id)).scalars().all()
        bids = db.session.execute(sa.select(Bid).where(Bid.procurement_id == procurement_id)).scalars().all()
        rubric = [(item.id, item.max_points) for item in procurement.rubric]
        winner_bid = next(b.id for b in bids if b.firm_id == world.firm.id)
        db.session.rollback()
        assert [m.name for m in members] == COMMITTEE and len(bids) == 3
        for member in members:
            bureau.get_by_test_id(f"score-{member.id}").click()
            expect(bureau.get_by_test_id("score-table")).to_be_visible()
            for bid in bids:
                for item_id, max_points in rubric:
                    points = max_points if bid.id == winner_bid else (max_points * Decimal("0.7")).quantize(Decimal("1"))
                    bureau.locator(f"input[name=score_{bid.id}_{item_id}]").fill(f"{points.normalize():f}")
            with bureau.expect_navigation():
                bureau.get_by_test_id("save-scores").click()
            expect(bureau.get_by_test_id("committee")).to_contain_text("已录入")
        expect(bureau.get_by_test_id("committee")).not_to_contain_text("未录入")
        first = bureau.get_by_test_id("evaluation").locator("tbody tr").first
        expect(first).to_contain_text(world.firm.name)
        expect(first.locator("td").first).to_have_text("1")
        bureau.screenshot(path=SHOTS.format("2-scored"), full_page=True)

        # --- award and contract -----------------------------------------------------------------------
        bureau.get_by_label("定标理由").fill("综合得分排名第一")
        with bureau.expect_navigation():
            bureau.get_by_test_id("award").click()
        expect(bureau.get_by_test_id("award-result")).to_contain_text(world.firm.name)
        expect(bureau.get_by_test_id("contract-block")).to_contain_text("质疑期")
        # the test's shortcut: the 7-working-day challenge period passes with no challenge
        db.session.expire_all()
        factories.past_challenge_period(db.session.get(Procurement, procurement_id))
        db.session.commit()
        bureau.reload()
        bureau.get_by_test_id("to-contract").click()
        today = beijing_today()
        expect(bureau.get_by_label("合同金额（万元）")).to_have_value("40.00")
        bureau.get_by_label("服务结束日期").fill((today + timedelta(days=300)).isoformat())
        bureau.get_by_label("实施方案提交期限").fill((today + timedelta(days=30)).isoformat())
        bureau.get_by_label("评价报告提交期限").fill((today + timedelta(days=200)).isoformat())
        # the shortcut dated the notice 2025-02-10: today is past its 30 days (政府采购法 第四十六条), so a reason
        bureau.get_by_label("逾期签订原因（签订日期晚于法定期限时填写）").fill("中标通知书发出后采购人内部审批流程延误，现补签合同")
        with bureau.expect_navigation():
            bureau.get_by_test_id("sign-contract").click()
        assert bureau.url.endswith(f"/engagements/{engagement_id}"), bureau.url
        expect(bureau.get_by_test_id("engagement-state")).to_have_text("已签约")
        expect(bureau.get_by_test_id("engagement-firm")).to_have_text(world.firm.name)
        expect(bureau.get_by_test_id("contract")).to_contain_text("40.00 万元")
        bureau.screenshot(path=SHOTS.format("3-bureau-engagement"), full_page=True)

        # --- firm1 sees the contracted engagement in its workspace ------------------------------------
        current = firm
        firm.goto("/workspace")
        row = firm.get_by_test_id(f"my-engagement-{engagement_id}")
        expect(row).to_contain_text("已签约")
        expect(row).to_contain_text((today + timedelta(days=30)).isoformat())
        firm.screenshot(path=SHOTS.format("4-firm-workspace"), full_page=True)
        row.get_by_role("link").first.click()
        expect(firm.get_by_test_id("engagement-state")).to_have_text("已签约")
    except Exception:
        if current is not None:
            current.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()

    db.session.expire_all()
    engagement = db.session.get(Engagement, engagement_id)
    procurement = db.session.get(Procurement, procurement_id)
    assert engagement.state == EngagementState.CONTRACTED and engagement.firm_id == world.firm.id
    assert procurement.status == ProcurementStatus.AWARDED and procurement.award.firm_id == world.firm.id
    assert engagement.contract.amount == Decimal("400000.00")
    assert {b.status for b in procurement.bids} == {BidStatus.SUBMITTED}
