"""A year's credit rating from computation to the public list, in the browser.

bz.admin computes 巴州's 2025 ratings (a background job, run at once in tests), goes back to the list and
publishes them; firm1 opens its rating from /credit/mine and files an objection with an evidence file;
bz.admin reads the evidence, upholds the objection and recomputes; the objection period ends; bz.admin
finalises the year; an anonymous visitor finds firm1's firm and its grade on /public/ratings.

Shortcuts outside the browser: the accepted 2025 engagement contracted to firm1's firm (factories), and
the end of the objection period (``objection_deadline`` of the year's ratings moved into the past in the
database, instead of waiting the working days out).
"""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from evalhub.core.timeutil import beijing_today
from evalhub.credit.models import CreditGrade, CreditObjection, CreditRating, ObjectionDecision, RatingStatus
from evalhub.extensions import db
from tests.e2e.helpers import Sessions, docx_bytes, upload
from tests.test_credit_supervision_services import _completed

pytestmark = pytest.mark.e2e

YEAR = 2025
SHOTS = "/tmp/e2e-credit-{}.png"
FAILURE_SCREENSHOT = "/tmp/e2e-credit-failure.png"
OBJECTION = "委托方评价一项按无评价计 80%，但委托方已出具满意度评价意见，请予更正。"
EVIDENCE = "委托方满意度评价意见.docx"
GRADE_C = CreditGrade.C.label  # "C 级"
ANSWER = "经核实，委托方评价意见已补录，异议成立，已按现有记录重新计算。"


def _end_objection_period(bureau_id: int) -> None:
    """The test's shortcut: the year's published ratings' objection deadline is yesterday."""
    db.session.execute(sa.update(CreditRating).where(
        CreditRating.bureau_id == bureau_id, CreditRating.year == YEAR, CreditRating.status == RatingStatus.PUBLISHED)
        .values(objection_deadline=beijing_today() - timedelta(days=1)))
    db.session.commit()


def test_rating_is_computed_published_objected_to_answered_and_finalised(world, browser, live_server):
    _completed(world)
    db.session.commit()  # the server thread reads through its own connection
    bz_id, firm_name = world.bz.id, world.firm.name

    sessions = Sessions(browser, live_server)
    current = None
    try:
        # --- bz.admin computes the year in a background job, goes back and publishes ------------------
        bureau = current = sessions.page("bz.admin")
        bureau.goto(f"/credit?year={YEAR}")
        expect(bureau.get_by_test_id("ratings")).to_contain_text(f"{YEAR} 年度暂无评价结果")
        expect(bureau.get_by_test_id("publish")).to_have_count(0)
        with bureau.expect_navigation():
            bureau.get_by_test_id("compute").click()
        assert re.search(r"/jobs/\d+$", bureau.url), bureau.url
        expect(bureau.get_by_test_id("job-status")).to_have_text("已完成")
        expect(bureau.locator(".alert-success")).to_be_visible()
        bureau.go_back()
        bureau.reload()  # the list as it is now, not the copy from before the computation
        row = bureau.get_by_test_id("ratings").locator("tbody tr", has_text=firm_name)
        expect(row).to_have_count(1)
        expect(row.get_by_test_id("grade")).to_have_text(GRADE_C)
        expect(row.get_by_test_id("rating-status")).to_have_text("草稿")
        expect(row).to_contain_text("76")
        bureau.screenshot(path=SHOTS.format("1-computed"), full_page=True)
        with bureau.expect_navigation():
            bureau.get_by_test_id("publish").click()  # confirm() accepted by the page's dialog handler
        expect(bureau.locator(".alert-success")).to_contain_text(f"已公示 {YEAR} 年度评价结果")
        expect(row.get_by_test_id("rating-status")).to_have_text("公示中")
        expect(bureau.get_by_test_id("finalise")).to_be_visible()

        # --- firm1 opens its rating and objects, with evidence ----------------------------------------
        firm = current = sessions.page("firm1")
        firm.goto("/credit/mine")
        expect(firm.get_by_test_id("my-ratings")).to_contain_text(f"{YEAR} 年度")
        with firm.expect_navigation():
            firm.get_by_test_id(f"open-rating-{YEAR}-{bz_id}").click()
        match = re.search(r"/credit/ratings/(\d+)", firm.url)
        assert match, firm.url
        rating_id = int(match.group(1))
        expect(firm.get_by_test_id("rating-summary").get_by_test_id("grade")).to_have_text(GRADE_C)
        expect(firm.get_by_test_id("rating-summary").get_by_test_id("rating-status")).to_have_text("公示中")
        expect(firm.get_by_test_id("points-feedback")).to_have_text("16 / 20 分")
        form = firm.get_by_test_id("objection-form")
        form.get_by_label("异议事实和理由").fill(OBJECTION)
        form.locator("input[name=evidence]").set_input_files(upload(EVIDENCE, docx_bytes("委托方满意度评价意见\n满意")))
        with firm.expect_navigation():
            form.get_by_test_id("submit-objection").click()
        expect(firm.locator(".alert-success")).to_contain_text("异议已提交")
        objections = firm.get_by_test_id("objections")
        expect(objections).to_contain_text(OBJECTION)
        expect(objections).to_contain_text(EVIDENCE)
        expect(objections.locator("[data-testid^=awaiting-answer-]")).to_have_count(1)
        firm.screenshot(path=SHOTS.format("2-objection"), full_page=True)

        # --- bz.admin reads the evidence, upholds the objection and recomputes -----------------------
        current = bureau
        bureau.goto(f"/credit/ratings/{rating_id}")
        expect(bureau.get_by_test_id("rating-meta")).to_contain_text("第 1 版")
        objection_id = db.session.execute(sa.select(CreditObjection.id).where(
            CreditObjection.rating_id == rating_id)).scalar_one()
        db.session.rollback()
        with bureau.expect_download() as download:
            bureau.get_by_test_id("objections").get_by_role("link", name=re.compile(re.escape(EVIDENCE))).click()
        assert download.value.suggested_filename == EVIDENCE
        answer = bureau.get_by_test_id(f"answer-form-{objection_id}")
        answer.get_by_label("处理结论").select_option(label="异议成立")
        answer.get_by_label("答复意见").fill(ANSWER)
        answer.get_by_label(re.compile("重新计算")).check()
        bureau.screenshot(path=SHOTS.format("3-answer-form"), full_page=True)
        with bureau.expect_navigation():
            answer.get_by_test_id(f"submit-answer-{objection_id}").click()
        expect(bureau.locator(".alert-success")).to_contain_text("已答复异议：异议成立；已重新计算")
        expect(bureau.get_by_test_id(f"decision-{objection_id}")).to_have_text("异议成立")
        expect(bureau.get_by_test_id(f"answer-{objection_id}")).to_contain_text(ANSWER)
        expect(bureau.get_by_test_id("rating-meta")).to_contain_text("第 2 版")
        expect(bureau.get_by_test_id(f"answer-form-{objection_id}")).to_have_count(0)

        # firm1 sees the answer
        current = firm
        firm.reload()
        expect(firm.get_by_test_id(f"decision-{objection_id}")).to_have_text("异议成立")
        expect(firm.get_by_test_id(f"answer-{objection_id}")).to_contain_text(ANSWER)

        # --- the objection period ends (shortcut); bz.admin finalises ---------------------------------
        _end_objection_period(bz_id)
        current = bureau
        bureau.goto(f"/credit?year={YEAR}")
        expect(bureau.get_by_test_id("own-summary")).to_contain_text("已届满")
        with bureau.expect_navigation():
            bureau.get_by_test_id("finalise").click()
        expect(bureau.locator(".alert-success")).to_contain_text(f"{YEAR} 年度评价结果已确定")
        row = bureau.get_by_test_id("ratings").locator("tbody tr", has_text=firm_name)
        expect(row.get_by_test_id("rating-status")).to_have_text("已确定")
        expect(bureau.get_by_test_id("finalise")).to_have_count(0)
        bureau.screenshot(path=SHOTS.format("4-finalised"), full_page=True)

        # --- anyone sees firm1's firm and its grade on /public/ratings -----------------------------
        visitor = current = sessions.page()
        visitor.goto("/public/ratings")
        row = visitor.get_by_test_id("public-ratings").locator("tbody tr", has_text=firm_name)
        expect(row).to_have_count(1)
        expect(row.get_by_test_id("grade")).to_have_text(GRADE_C)
        expect(row).to_contain_text(str(YEAR))
        expect(row).to_contain_text("76")
        visitor.screenshot(path=SHOTS.format("5-public"), full_page=True)
        with visitor.expect_navigation():
            row.get_by_role("link", name=firm_name).click()
        expect(visitor.get_by_test_id(f"history-{YEAR}").get_by_test_id("grade")).to_have_text(GRADE_C)
    except Exception:
        if current is not None and not current.is_closed():
            current.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()

    db.session.expire_all()
    rating = db.session.get(CreditRating, rating_id)
    assert rating.firm_id == world.firm.id and rating.year == YEAR and rating.bureau_id == bz_id
    assert rating.status == RatingStatus.FINAL and rating.finalised_at is not None
    assert rating.grade == CreditGrade.C and rating.total == Decimal("76.00") and rating.version == 2
    (objection,) = rating.objections
    assert objection.decision == ObjectionDecision.UPHELD and objection.answer == ANSWER
    assert len(objection.evidence_file_ids) == 1
