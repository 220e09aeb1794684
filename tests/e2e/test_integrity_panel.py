"""The 投标文件一致性检查 panel in the browser (issue 17).

Three firms bid in a consultation; two upload the same technical proposal (the case that went unnoticed).
At the opening the panel shows the flag with its rule and clause; scoring is refused until the committee
decides; bz.staff first submits too short a reason (refused beside the field), then records 不构成 with a
reason, and the panel says every flag is decided. A bidding firm opening the panel is refused.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.integrity import services as I
from evalhub.integrity.models import FlagDecision
from evalhub.procurement import services as P
from evalhub.procurement.models import Procurement, ProcurementMethod
from tests import factories
from tests.e2e.helpers import Sessions

pytestmark = pytest.mark.e2e

FAILURE_SCREENSHOT = "/tmp/e2e-integrity-failure.png"


def test_the_committee_decides_a_flag_in_the_panel(world, browser, live_server):
    engagement = factories.engagement(world, name="巴州民政局养老服务补助项目")
    p = factories.witnessed(P.open_procurement(engagement, P.ProcurementInput(
        method=ProcurementMethod.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=utcnow() + timedelta(days=10)), world.bz_staff))
    bidders = [factories.bidder(world, n) for n in ("甲方评价咨询有限公司", "乙方绩效评价有限公司", "丙方评估事务所")]
    same = factories.docx_bytes("\n".join(f"本项目将对{t}开展核查，核查{t}相关的凭证与台账。" for t in "甲乙丙丁戊"))
    for (_, user, staff), price, data in zip(bidders, ["40", "45", "48"], [same, same, None]):
        P.submit_bid(p, P.BidInput(price_wan=price, team_staff_ids=[staff.id], lead_staff_id=staff.id,
                                   technical_filename="技术方案.docx",
                                   technical_data=data or factories.docx_bytes(f"丙方自己的方案 {user.username}")), user)
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    flags = I.flags_of(p)
    assert [f.rule.value for f in flags] == ["same_file"]
    flag_id, procurement_id, firm_username = flags[0].id, p.id, bidders[0][1].username
    db.session.commit()

    sessions = Sessions(browser, live_server)
    current = None
    try:
        bureau = current = sessions.page("bz.staff")
        bureau.goto(f"/procurements/{procurement_id}")
        with bureau.expect_navigation():
            bureau.get_by_test_id("integrity-link").click()
        expect(bureau.get_by_test_id(f"flag-{flag_id}")).to_contain_text("同一文件")
        expect(bureau.get_by_test_id(f"flag-{flag_id}")).to_contain_text("第三十七条")
        expect(bureau.get_by_test_id("integrity-blocked")).to_contain_text("不能录入评分")

        bureau.get_by_label("不构成（继续评审，理由载入定标记录）").check()
        bureau.get_by_test_id(f"reason-{flag_id}").fill("太短")
        with bureau.expect_navigation():
            bureau.get_by_test_id(f"decide-{flag_id}").click()
        expect(bureau.get_by_test_id(f"flag-{flag_id}")).to_contain_text("不少于 10 个字")

        bureau.get_by_label("不构成（继续评审，理由载入定标记录）").check()
        bureau.get_by_test_id(f"reason-{flag_id}").fill("两家均使用采购人提供的方案模板，评审委员会核对后认为不构成串通。")
        with bureau.expect_navigation():
            bureau.get_by_test_id(f"decide-{flag_id}").click()
        expect(bureau.get_by_test_id(f"flag-decision-{flag_id}")).to_contain_text("不构成")
        expect(bureau.get_by_test_id("integrity-clear")).to_be_visible()

        firm = current = sessions.page(firm_username)
        response = firm.goto(f"/procurements/{procurement_id}/integrity")
        assert response.status == 403
    except Exception:
        if current is not None:
            current.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()

    db.session.expire_all()
    procurement = db.session.get(Procurement, procurement_id)
    assert I.flags_of(procurement)[0].decision == FlagDecision.NOT_COLLUSION
    assert I.undecided_flags_block(procurement) is None
