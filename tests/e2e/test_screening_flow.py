"""A screening flag from the queue to a targeted case, in the browser.

bz.staff opens 报告筛查 from the 监督与记录 menu, sees 巴州's 2025 reports ranked by risk, opens the top
flag card, reads the reasons and the copied passage beside its source (names marked on both sides), opens a
targeted case with 立案检查 and lands on the inspection, whose trigger is the flag; back on the card, the
case is linked instead of the button. firm1 then sees the inspection's trigger but neither the risk nor the
reasons, and is refused the queue.

Shortcuts outside the browser: the three reports are uploaded through the real submit path (which screens
each upload and re-screens the text it copies from) by tests/screening_support, not through the upload
form; the contracts and work plans before that come from the factories and the workflow service.
"""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from evalhub.extensions import db
from evalhub.review.models import SubmissionKind
from evalhub.screening import services as S
from evalhub.screening.models import ReportScreening
from evalhub.supervision.models import Inspection, Trigger
from tests.e2e.helpers import Sessions
from tests.screening_support import report_text, upload_report

pytestmark = pytest.mark.e2e

YEAR = 2025
FAILURE_SCREENSHOT = "/tmp/e2e-screening-failure.png"
SOURCE = ("饮水安全工程", "巴州统计局")  # the generic report
COPY = ("高标准农田建设", "巴州民政局")  # the same text, project and unit swapped
FIRM_NOTE = "根据报告质量筛查提示立案"


@pytest.fixture(autouse=True)
def fresh_screening_cache():
    S.forget_cache()  # the per-process index belongs to the data of the test that made it
    yield
    S.forget_cache()


def _reports(world) -> dict[str, ReportScreening]:
    """巴州 2025, all by firm1's firm: a specific report, a generic one, and the generic text again with the
    project and unit swapped (a same-firm template copy). Committed, for the server thread."""
    firm = world.firm.name
    _e, specific = upload_report(world, report_text("养老服务补贴", "巴州民政局", firm), name="养老服务补贴",
                                 unit="巴州民政局")
    generic = report_text(*SOURCE, firm, specific=False)
    _e, source = upload_report(world, generic, name=SOURCE[0])
    copied = generic.replace(SOURCE[0], COPY[0]).replace(SOURCE[1], COPY[1])
    _e, copy = upload_report(world, copied, name=COPY[0], unit=COPY[1])
    db.session.commit()
    return {key: S.screening_for(submission) for key, submission in
            (("specific", specific), ("source", source), ("copy", copy))}


def test_a_bureau_user_opens_the_top_flag_and_a_targeted_case_from_it(world, browser, live_server, tmp_path):
    rows = _reports(world)
    # The reports' queue (each engagement's work plan was uploaded and screened too, in its own queue).
    ranked = [entry.screening for entry in S.queue(world.bz_staff, year=YEAR, kind=SubmissionKind.REPORT)]
    assert {s.id for s in ranked} == {s.id for s in rows.values()}
    top = ranked[0]
    by_id = {s.id: key for key, s in rows.items()}
    # The copy pair carries passages after re-screening: each side names the other as its source.
    assert rows["copy"].passages and rows["source"].passages
    # The card read below: the top row's if it shows a copied passage, else the copy's (reached from the queue).
    flag = top if top.passages else rows["copy"]
    other = rows["source"] if flag.id == rows["copy"].id else rows["copy"]
    own_names, source_names = (COPY, SOURCE) if flag.id == rows["copy"].id else (SOURCE, COPY)
    top_id, top_reference, top_has_passages = top.id, top.engagement.reference, bool(top.passages)
    flag_id, flag_reference, reasons = flag.id, flag.engagement.reference, [r["text"] for r in flag.reasons]
    ranked_ids, other_id = [s.id for s in ranked], other.id
    other_reference, firm_name = other.engagement.reference, world.firm.name
    staff, firm_username = world.bz_staff.username, world.firm_user.username
    assert reasons, "the flag has no reasons to show"
    db.session.rollback()

    sessions = Sessions(browser, live_server)
    current = None
    try:
        # --- bz.staff opens the queue from the menu --------------------------------------------------
        bureau = current = sessions.page(staff)
        bureau.get_by_role("link", name="监督与记录").click()
        with bureau.expect_navigation():
            bureau.get_by_test_id("nav-screening").click()
        assert "/screening/queue" in bureau.url, bureau.url
        expect(bureau.locator("h1")).to_contain_text(f"{YEAR} 年度")
        # Work plans are screened too: filter the queue to the reports.
        bureau.goto(f"/screening/queue?year={YEAR}&kind=report")
        queue_rows = bureau.get_by_test_id("queue").locator("tbody tr")
        expect(queue_rows).to_have_count(3)
        row_ids = [int(t.removeprefix("queue-row-")) for t in
                   (queue_rows.nth(n).get_attribute("data-testid") for n in range(3))]
        assert row_ids == ranked_ids, (row_ids, [by_id.get(i) for i in row_ids])
        first = queue_rows.first
        expect(first.get_by_test_id("flagged")).to_have_text("建议抽查")  # 10% of 3, rounded up
        expect(first.locator("td").first).to_have_text("1")
        # The firm box suggests the firm's full name as one types part of it, and filters by what it holds.
        firm_box = bureau.locator('input[name="firm"]')
        firm_box.fill(firm_name[1:3])
        expect(bureau.locator("#queue-firms option")).to_have_count(1)
        assert bureau.locator("#queue-firms option").first.get_attribute("value") == firm_name
        firm_box.fill(firm_name)
        with bureau.expect_navigation():
            firm_box.press("Enter")
        expect(queue_rows).to_have_count(3)
        expect(bureau.locator('input[name="firm"]')).to_have_value(firm_name)

        # --- the top row's flag card -----------------------------------------------------------------
        with bureau.expect_navigation():
            first.get_by_role("link", name=top_reference).click()
        assert bureau.url.endswith(f"/screening/{top_id}"), bureau.url
        expect(bureau.get_by_test_id("rank")).to_have_text(f"{YEAR} 年度同类评价报告第 1 / 3 名")
        if not top_has_passages:  # then the page says so, and the copy's card is opened from the queue
            expect(bureau.get_by_test_id("passages")).to_have_count(0)
            expect(bureau.get_by_text("没有发现与已存报告重复的段落")).to_be_visible()
            with bureau.expect_navigation():
                bureau.locator(".breadcrumb").get_by_role("link", name="报告筛查").click()
            with bureau.expect_navigation():
                bureau.get_by_test_id(f"queue-row-{flag_id}").get_by_role("link", name=flag_reference).click()
            assert bureau.url.endswith(f"/screening/{flag_id}"), bureau.url

        reason_items = bureau.get_by_test_id("reasons").locator("li")
        expect(reason_items.first).to_have_text(reasons[0])
        expect(bureau.get_by_test_id("reasons")).to_contain_text(re.compile("近似重复|与本机构其他报告重复"))

        passage = bureau.get_by_test_id("passage").first
        own, source = passage.get_by_test_id("passage-own"), passage.get_by_test_id("passage-source")
        expect(own).to_be_visible()
        expect(source).to_be_visible()
        # Side by side: the source's column to the right of the copied text's, their tops level.
        own_box, source_box = (passage.locator(".col-md-6").nth(n).bounding_box() for n in (0, 1))
        assert source_box["x"] >= own_box["x"] + own_box["width"] - 1, (own_box, source_box)
        assert abs(source_box["y"] - own_box["y"]) < 2, (own_box, source_box)
        expect(own).to_contain_text(f"{own_names[0]}由{own_names[1]}组织实施")
        expect(source).to_contain_text(f"{source_names[0]}由{source_names[1]}组织实施")
        expect(own.locator("mark", has_text=own_names[0]).first).to_be_visible()
        expect(source.locator("mark", has_text=source_names[0]).first).to_be_visible()
        label = passage.get_by_test_id("passage-source-label")
        expect(label).to_contain_text("本机构其他报告")
        expect(label).to_contain_text(firm_name)
        expect(label.get_by_role("link", name=other_reference)).to_have_attribute("href", f"/screening/{other_id}")
        bureau.screenshot(path=str(tmp_path / "flag-card.png"), full_page=True)

        # --- 立案检查: a targeted case with the flag as its trigger ----------------------------------
        expect(bureau.get_by_test_id("case-link")).to_have_count(0)
        with bureau.expect_navigation():
            bureau.get_by_test_id("open-case").click()
        match = re.search(r"/inspections/(\d+)$", bureau.url)
        assert match, bureau.url
        inspection_id = int(match.group(1))
        expect(bureau.locator(".alert-success")).to_contain_text(f"已依据筛查提示立案定向检查 #{inspection_id}")
        expect(bureau.get_by_test_id("trigger")).to_have_text("报告质量筛查提示")
        detail = bureau.get_by_test_id("trigger-detail")
        expect(detail).to_contain_text(f"筛查#{flag_id}，")
        expect(detail).to_contain_text(reasons[0])
        expect(detail).to_contain_text("风险")
        expect(bureau.get_by_test_id("engagement")).to_contain_text(flag_reference)

        # --- back on the card: the case is linked, the button is gone --------------------------------
        bureau.goto(f"/screening/{flag_id}")
        case_link = bureau.get_by_test_id("case-link")
        expect(case_link).to_have_count(1)
        expect(case_link.get_by_role("link", name=f"检查 #{inspection_id}")).to_have_attribute(
            "href", f"/inspections/{inspection_id}")
        expect(bureau.get_by_test_id("open-case")).to_have_count(0)

        # --- firm1: the trigger, not the score or the reasons; no queue ------------------------------
        firm = current = sessions.page(firm_username)
        firm.goto(f"/inspections/{inspection_id}")
        expect(firm.get_by_test_id("trigger")).to_have_text("报告质量筛查提示")
        expect(firm.get_by_test_id("trigger-detail")).to_contain_text(FIRM_NOTE)
        body = firm.locator("body")
        expect(body).not_to_contain_text("风险")
        expect(body).not_to_contain_text(f"筛查#{flag_id}")
        for reason in reasons:
            expect(body).not_to_contain_text(reason)
        expect(body).not_to_contain_text("近似重复")
        expect(firm.get_by_test_id("nav-screening")).to_have_count(0)
        response = firm.goto("/screening/queue")
        assert response.status == 403
        response = firm.goto(f"/screening/{flag_id}")
        assert response.status == 403
    except Exception:
        if current is not None and not current.is_closed():
            current.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()

    db.session.expire_all()
    inspection = db.session.execute(sa.select(Inspection)).scalar_one()
    assert inspection.id == inspection_id and inspection.trigger == Trigger.SCREENING_FLAG
    assert inspection.engagement_id == db.session.get(ReportScreening, flag_id).engagement_id
    assert inspection.opened_by_id == world.bz_staff.id
