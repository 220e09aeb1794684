"""A competitive consultation from its notice to the contract, with a challenge (质疑) filed and answered between
the award and the contract, in the browser.

bz.admin opens the consultation (the procurement notice appears on the public pages); three firms bid and the
committee scores through the services (the shortcut: the deadline is moved into the past); bz.admin awards in the
browser — the result notice is published and the contract waits for the challenge period; the losing firm files
a challenge with evidence from its page; bz.admin dismisses it in writing; the period passes (the second
shortcut: the notice is back-dated) and bz.admin signs the contract.
"""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import (
    BidStatus, ChallengeStatus, Engagement, EngagementState, Procurement, ProcurementMethod,
)
from tests import factories
from tests.e2e.helpers import Sessions, upload

pytestmark = pytest.mark.e2e

FAILURE_SCREENSHOT = "/tmp/e2e-challenge-failure.png"


def test_consultation_notice_award_challenge_answer_contract(world, browser, live_server):
    engagement = factories.engagement(world, name="巴州民政局养老服务补助项目")
    bidders = [factories.bidder(world, n) for n in ("甲方评价咨询有限公司", "乙方绩效评价有限公司", "丙方评估事务所")]
    db.session.commit()
    engagement_id = engagement.id
    loser_username = bidders[1][1].username

    sessions = Sessions(browser, live_server)
    current = None
    try:
        # --- the bureau opens the consultation: its notice is public ---------------------------------
        bureau = current = sessions.page("bz.admin")
        bureau.goto(f"/engagements/{engagement_id}/procure")
        bureau.locator("select[name=method]").select_option(ProcurementMethod.COMPETITIVE_CONSULTATION.value)
        bureau.get_by_label("最高限价（万元）").fill("50")
        bureau.get_by_label("价格分权重（%）").fill("20")
        with bureau.expect_navigation():
            bureau.get_by_test_id("open-procurement").click()
        match = re.search(r"/procurements/(\d+)$", bureau.url)
        assert match, bureau.url
        procurement_id = int(match.group(1))

        public = sessions.page()
        public.goto("/public/procurements")
        expect(public.get_by_test_id(f"public-procurement-{procurement_id}")).to_be_visible()

        # --- bids, opening, committee and scores through the services (shortcut) ---------------------
        db.session.expire_all()
        procurement = db.session.get(Procurement, procurement_id)
        for (_, user, staff), price in zip(bidders, ["40", "45", "48"]):
            factories.bid(procurement, user, staff, price)
        procurement.bid_deadline = utcnow() - timedelta(seconds=1)
        P.open_bids(procurement, world.bz_staff)
        points = {bidders[0][0].id: 90, bidders[1][0].id: 80, bidders[2][0].id: 70}
        for member in P.enter_committee(procurement, ["评委甲", "评委乙", "评委丙"], world.bz_staff):
            P.record_technical_scores(procurement, member, {
                b.id: {i.id: Decimal(points[b.firm_id]) * i.max_points / 100 for i in procurement.rubric}
                for b in procurement.bids if b.status == BidStatus.SUBMITTED}, world.bz_staff)
        db.session.commit()

        # --- award: the result notice is published and the contract waits -----------------------------
        bureau.goto(f"/procurements/{procurement_id}")
        bureau.get_by_label("定标理由").fill("综合得分排名第一")
        with bureau.expect_navigation():
            bureau.get_by_test_id("award").click()
        expect(bureau.get_by_test_id("award-result")).to_contain_text("甲方评价咨询有限公司")
        expect(bureau.get_by_test_id("challenge-until").first).to_contain_text("质疑期至")
        expect(bureau.get_by_test_id("contract-block")).to_contain_text("质疑期")
        expect(bureau.get_by_test_id("to-contract")).to_have_count(0)
        public.goto("/public/notices")
        expect(public.get_by_test_id("public-notices")).to_contain_text("甲方评价咨询有限公司")

        # --- the losing firm challenges from its page, with evidence -----------------------------------
        firm = current = sessions.page(loser_username)
        firm.goto(f"/procurements/{procurement_id}/bid")
        firm.get_by_label("质疑事项、事实依据和请求").fill("技术评分中“同类项目业绩”一项未按评分标准计分，请求复核。")
        firm.locator("input[name=evidence]").set_input_files(
            upload("业绩证明.txt", "2023 年同类项目合同三份。".encode(), "text/plain"))
        with firm.expect_navigation():
            firm.get_by_test_id("file-challenge").click()
        expect(firm.get_by_test_id("my-challenges")).to_contain_text("待答复")
        expect(firm.get_by_test_id("file-challenge")).to_have_count(0)

        # --- the bureau answers in writing -------------------------------------------------------------
        current = bureau
        bureau.goto(f"/procurements/{procurement_id}")
        expect(bureau.locator("#challenges")).to_contain_text("乙方绩效评价有限公司")
        expect(bureau.locator("#challenges")).to_contain_text("业绩证明.txt")
        form = bureau.locator("#challenges form").first
        form.locator("select[name$=outcome]").select_option("dismissed")
        form.locator("textarea[name$=answer]").fill("经评审委员会复核，业绩项已按评分标准计分，质疑事项不成立。")
        with bureau.expect_navigation():
            form.get_by_role("button", name="提交答复").click()
        expect(bureau.locator("#challenges")).to_contain_text("驳回")

        current = firm
        firm.goto(f"/procurements/{procurement_id}/bid")
        expect(firm.get_by_test_id("my-challenges")).to_contain_text("驳回")
        expect(firm.get_by_test_id("my-challenges")).to_contain_text("质疑事项不成立")

        # --- the period passes (shortcut) and the contract is signed ----------------------------------
        db.session.expire_all()
        factories.past_challenge_period(db.session.get(Procurement, procurement_id))
        db.session.commit()
        current = bureau
        bureau.goto(f"/procurements/{procurement_id}")
        bureau.get_by_test_id("to-contract").click()
        for label, days in {"服务结束日期": 300, "实施方案提交期限": 30, "评价报告提交期限": 200}.items():
            bureau.get_by_label(label).fill((beijing_today() + timedelta(days=days)).isoformat())
        # the shortcut dated the notice 2025-02-10: today is past its 30 days (政府采购法 第四十六条), so a reason
        bureau.get_by_label("逾期签订原因（签订日期晚于法定期限时填写）").fill("质疑答复后方签订合同，超过法定期限，特此说明")
        with bureau.expect_navigation():
            bureau.get_by_test_id("sign-contract").click()
        expect(bureau.get_by_test_id("engagement-state")).to_have_text("已签约")
    except Exception:
        if current is not None:
            current.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()

    db.session.expire_all()
    engagement = db.session.get(Engagement, engagement_id)
    procurement = db.session.get(Procurement, procurement_id)
    assert engagement.state == EngagementState.CONTRACTED and engagement.firm_id == bidders[0][0].id
    [challenge] = procurement.notice.challenges
    assert challenge.status == ChallengeStatus.DISMISSED and challenge.firm_id == bidders[1][0].id
