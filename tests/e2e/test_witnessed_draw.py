"""A witnessed draw in the browser (issue 14): the firm lottery of a small engagement.

bz.staff opens a 机构库随机抽取 procurement (service shortcut: the draw is announced, candidates with names and
the commitment frozen); on the draw page bz.staff names bz.admin as witness; bz.admin, signed in as themselves,
sees the commitment and enters a number; bz.staff reveals, and the award follows; an anonymous visitor opens
the published draw and recomputes it in the browser (hashes, seed and result by the page's own sha256).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from evalhub.core.models import Draw, DrawStatus
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import Procurement, ProcurementMethod as M
from tests import factories
from tests.e2e.helpers import Sessions

pytestmark = pytest.mark.e2e

FAILURE_SCREENSHOT = "/tmp/e2e-witnessed-draw-failure.png"


def witness_in_browser(sessions, operator, draw_id: int, witness_username: str, witness_id: int, number: str) -> None:
    """On ``operator``'s page: name the witness, who enters ``number`` in their own session; then reveal."""
    operator.goto(f"/draws/{draw_id}")
    expect(operator.get_by_test_id("draw-status")).to_contain_text("待监督人输入数字")
    expect(operator.get_by_test_id("reveal")).to_be_disabled()
    operator.get_by_test_id("witness-select").select_option([str(witness_id)])
    with operator.expect_navigation():
        operator.get_by_test_id("name-witnesses").click()
    expect(operator.get_by_test_id("witnesses")).to_contain_text("未输入")

    witness = sessions.page(witness_username)
    witness.goto(f"/draws/{draw_id}")
    commitment = witness.get_by_test_id("commitment").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", commitment), commitment
    witness.get_by_test_id("witness-number").fill(number)
    with witness.expect_navigation():
        witness.get_by_test_id("enter-number").click()
    expect(witness.locator(".alert-success").first).to_contain_text("已记录您的数字")
    witness.context.close()

    operator.goto(f"/draws/{draw_id}")
    expect(operator.get_by_test_id("witnesses")).to_contain_text("已输入")
    with operator.expect_navigation():
        operator.get_by_test_id("reveal").click()
    expect(operator.get_by_test_id("draw-status")).to_contain_text("已抽取")


def test_a_witnessed_firm_lottery_is_revealed_and_recomputed_in_the_browser(world, browser, live_server):
    for n in range(2):  # a few more eligible firms, so the lottery has a choice
        factories.firm(world.bz, name=f"巴州第{'一二'[n]}评价咨询有限公司")
    engagement = factories.engagement(world)
    procurement = P.open_procurement(engagement, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"),
                                     world.bz_staff)
    draw_id, procurement_id, admin_id = procurement.draw_id, procurement.id, world.bz_admin.id
    db.session.commit()

    sessions = Sessions(browser, live_server)
    current = None
    try:
        operator = current = sessions.page("bz.staff")
        operator.goto(f"/draws/{draw_id}")
        expect(operator.get_by_test_id("candidates")).to_contain_text(world.firm.name)  # names, not only numbers
        witness_in_browser(sessions, operator, draw_id, "bz.admin", admin_id, "20261205")
        expect(operator.get_by_test_id("draw-check")).to_contain_text("服务器复算一致")

        db.session.expire_all()
        record = db.session.get(Draw, draw_id)
        assert record.status == DrawStatus.DRAWN and [w.number for w in record.witnesses] == ["20261205"]
        awarded = db.session.get(Procurement, procurement_id).award
        assert awarded is not None and awarded.firm_id == record.result_ids[0]
        winner = record.candidate_names[str(record.result_ids[0])]
        db.session.rollback()

        visitor = current = sessions.page()  # anyone, signed in or not
        visitor.goto(f"/public/draws/{draw_id}")
        expect(visitor.get_by_test_id("draw-result")).to_contain_text(winner)
        visitor.get_by_test_id("recompute").click()
        expect(visitor.get_by_test_id("recompute-verdict")).to_have_text("浏览器复算一致")
        expect(visitor.get_by_test_id("recompute-result")).to_contain_text("秘密值与承诺值一致")
    except Exception:
        if current is not None:
            current.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()


def test_the_public_page_of_a_panel_draw_recomputes_without_the_reasons(world, browser, live_server):
    """A panel draw is public once its review is over, its exclusion reasons are not (they are about people):
    the page leaves out the canonical text, and the browser still recomputes the seed and the result from the
    published hash, candidate list and excluded ids."""
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    panel = factories.own_panel(e, n=3)
    factories.review_panel(panel, "0.95")
    draw_id = panel.draw_id
    db.session.commit()

    sessions = Sessions(browser, live_server)
    visitor = sessions.page()
    try:
        visitor.goto(f"/public/draws/{draw_id}")
        expect(visitor.get_by_test_id("reasons-withheld")).to_be_visible()
        expect(visitor.get_by_test_id("canonical")).to_have_count(0)
        visitor.get_by_test_id("recompute").click()
        expect(visitor.get_by_test_id("recompute-verdict")).to_have_text("浏览器复算一致")
        expect(visitor.get_by_test_id("recompute-result")).to_contain_text("抽取结果一致")
    except Exception:
        visitor.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()
