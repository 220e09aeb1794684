"""A report's road through expert review to the public list, in the browser.

firm1 uploads its report with the scoring table; bz.admin draws a 3-expert panel; each drawn expert logs
in, signs the declaration, accepts and submits a review; the panel scores below the pass mark (90), so
bz.admin edits and sends the consolidated letter; firm1 uploads the rectified report; a second panel is
drawn and reviews it above the pass mark; the report is accepted; bz.admin publishes a redacted version,
and an anonymous visitor finds it on /public/reports.

Shortcuts outside the browser: the contract and the work-plan steps before fieldwork (factories, through a
real work-plan panel), the bureau setting review.report_panel_size = 3, and the experts' accounts.
"""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, EngagementState
from evalhub.review import services as R
from evalhub.review.models import (
    EvaluationResult, Grade, InvitationStatus, PanelInvitation, Publication, ReviewPanel, ReviewStatus, Submission,
    SubmissionKind,
)
from tests import factories
from tests.e2e.helpers import Sessions, docx_bytes, upload

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/e2e-review-{}.png"
FAILURE_SCREENSHOT = "/tmp/e2e-review-failure.png"
PANEL_SIZE = 3
SPARE_EXPERTS = 2
CHAPTERS = "\n".join(f"{n}、{c}\n本章内容。" for n, c in zip("一二三四五六七八", R.REPORT_CHAPTERS))
INDICATORS = [("decision", "立项依据充分性", "10", "9"), ("process", "资金到位率", "20", "18"),
              ("output", "完成数量", "35", "33"), ("benefit", "群众满意度", "35", "32")]
LETTER_ADDITION = "请于十五日内完成整改，并在提交说明中逐条说明修改情况。"
ENGAGEMENT_NAME = "巴州统计局基层统计能力提升项目"


LEAD = "赵主评"


def _in_fieldwork(world):
    """An engagement contracted to firm1 whose work plan has been approved (state fieldwork); firm1's roster has
    赵主评, whom the firm names as 主评人 in the browser before it hands in the report."""
    from evalhub.registry.services import StaffInput, add_staff

    add_staff(world.firm, StaffInput(name=LEAD, id_number=factories.id_number(), role="项目负责人",
                                     years_experience=10), world.firm_user)
    return factories.in_fieldwork(world, name=ENGAGEMENT_NAME, lead=False)  # the work plan through a real panel


def _name_lead(page, engagement_id):
    """The upload page says a 主评人 must be named first and links to the team page, where firm1 names one."""
    page.goto(f"/engagements/{engagement_id}/submissions/new")
    expect(page.get_by_test_id("lead-missing")).to_be_visible()
    page.get_by_role("link", name="指定主评人及项目团队").click()
    page.get_by_label("主评人").select_option(label=f"{LEAD}（项目负责人）")
    with page.expect_navigation():
        page.get_by_role("button", name="保存").click()
    expect(page.get_by_test_id("team-members")).to_contain_text(LEAD)


def _experts(world, n):
    """n more 巴州 experts with accounts; world.expert (expert1) is already in the pool."""
    for i in range(n):
        expert = factories.expert(world.bz, name=f"评审专家{'甲乙丙丁戊己'[i]}", employer=f"新疆某高校{i}")
        factories.user(f"reviewer{i}", Role.EXPERT, expert_id=expert.id)


def _upload_report(page, engagement_id, filename, text, *, fill_table):
    page.goto(f"/engagements/{engagement_id}/submissions/new")
    page.locator("input[name=file]").set_input_files(upload(filename, docx_bytes(text)))
    if fill_table:
        for n, (category, name, weight, score) in enumerate(INDICATORS, start=1):
            page.get_by_label(f"第 {n} 行类别", exact=True).select_option(category)
            page.get_by_label(f"第 {n} 行指标名称", exact=True).fill(name)
            page.get_by_label(f"第 {n} 行权重", exact=True).fill(weight)
            page.get_by_label(f"第 {n} 行得分", exact=True).fill(score)
        page.get_by_label("报告结论总分").fill("92")
        page.get_by_label("报告结论等级").select_option(label="优")
    else:  # a resubmission starts from the previous version's table
        expect(page.get_by_label("第 4 行指标名称", exact=True)).to_have_value("群众满意度")
        expect(page.get_by_label("报告结论总分")).to_have_value("92")
        page.get_by_label("提交说明").fill("已按整改意见逐条修改问题分析和建议部分。")
    with page.expect_navigation():
        page.get_by_test_id("upload-submission").click()
    assert re.search(r"/submissions/\d+$", page.url), page.url
    expect(page.get_by_test_id("indicator-table")).to_contain_text("群众满意度")


def _form_panel(page, engagement_id, sessions, number) -> int:
    """The draw is announced, witnessed by bz.staff in their own session and revealed (issue 14); the panel is
    formed at the reveal."""
    from tests.e2e.test_witnessed_draw import witness_in_browser

    page.goto(f"/engagements/{engagement_id}/panel")
    with page.expect_navigation():
        page.get_by_test_id("form-panel").click()
    match = re.search(r"/draws/(\d+)$", page.url)
    assert match, page.url
    draw_id = int(match.group(1))
    staff_id = db.session.execute(sa.select(User.id).where(User.username == "bz.staff")).scalar_one()
    db.session.rollback()
    witness_in_browser(sessions, page, draw_id, "bz.staff", staff_id, number)
    panel_id = db.session.execute(sa.select(ReviewPanel.id).where(ReviewPanel.draw_id == draw_id)).scalar_one()
    db.session.rollback()
    page.goto(f"/reviews/panels/{panel_id}")
    expect(page.get_by_test_id("invitations").locator("tbody tr")).to_have_count(PANEL_SIZE)
    return panel_id


def _seats(panel_id):
    """(invitation id, username, rubric item ids) of each expert invited to the panel."""
    db.session.expire_all()
    panel = db.session.get(ReviewPanel, panel_id)
    items = [i.id for i in panel.rubric.items]
    users = {u.expert_id: u.username for u in db.session.execute(
        sa.select(User).where(User.expert_id.is_not(None))).scalars()}
    seats = [(inv.id, users[inv.expert_id]) for inv in panel.invitations]
    db.session.rollback()
    return seats, items


def _review_in_browser(sessions, invitation_id, username, items, points, opinion, shot=None):
    page = sessions.page(username)
    page.goto("/reviews")
    page.get_by_test_id(f"open-invitation-{invitation_id}").click()
    page.get_by_label("本人已阅读并签署上述无利益冲突声明").check()
    with page.expect_navigation():
        page.get_by_test_id("accept-invitation").click()
    expect(page.get_by_test_id("review-form")).to_be_visible()
    expect(page.get_by_test_id("extracted-text")).to_contain_text("绩效评价指标分析")
    for item_id in items:
        page.locator(f"input[name=score_{item_id}]").fill(str(points))
        page.locator(f"textarea[name=comment_{item_id}]").fill(f"第 {item_id} 项：{opinion}")
    page.locator("#opinion").fill(opinion)
    with page.expect_navigation():
        page.get_by_test_id("submit-review").click()  # confirm() is accepted by the page's dialog handler
    expect(page.get_by_test_id("own-review")).to_contain_text(f"{points * len(items)} 分")
    if shot:
        page.screenshot(path=SHOTS.format(shot), full_page=True)
    page.context.close()


def test_report_is_returned_resubmitted_accepted_and_published(world, browser, live_server):
    set_setting(world.bz, "review.report_panel_size", PANEL_SIZE, world.bz_admin)
    engagement = _in_fieldwork(world)
    _experts(world, PANEL_SIZE + SPARE_EXPERTS - 1)  # + expert1
    db.session.commit()  # the server thread reads through its own connection
    engagement_id = engagement.id

    sessions = Sessions(browser, live_server)
    current = None
    try:
        # --- round 1: firm1 uploads the report; bz.admin draws the panel --------------------------------
        firm = current = sessions.page("firm1")
        _name_lead(firm, engagement_id)
        _upload_report(firm, engagement_id, "评价报告.docx", CHAPTERS, fill_table=True)
        expect(firm.get_by_test_id("machine-checks").locator("[data-ok=false]")).to_have_count(0)

        bureau = current = sessions.page("bz.admin")
        first_panel = _form_panel(bureau, engagement_id, sessions, "1111")
        seats, items = _seats(first_panel)

        # --- each drawn expert accepts and reviews in the browser: 17 × 5 = 85 < 90 -----------------------
        for n, (invitation_id, username) in enumerate(seats):
            _review_in_browser(sessions, invitation_id, username, items, 17, "问题分析不够具体，建议缺少责任主体和时限",
                               shot="1-expert-review" if n == 0 else None)

        # --- bz.admin edits and sends the letter ------------------------------------------------------
        current = bureau
        bureau.goto(f"/reviews/panels/{first_panel}")
        expect(bureau.get_by_test_id("panel-score")).to_have_text("85")
        letter = bureau.get_by_label("整改意见")
        expect(letter).to_have_value(re.compile("问题分析不够具体"))
        letter.fill(letter.input_value() + "\n" + LETTER_ADDITION)
        with bureau.expect_navigation():
            bureau.get_by_test_id("send-letter").click()
        expect(bureau.get_by_test_id("panel-status")).to_have_text("已退回整改")
        bureau.screenshot(path=SHOTS.format("2-letter-sent"), full_page=True)
        bureau.goto(f"/engagements/{engagement_id}")
        expect(bureau.get_by_test_id("engagement-state")).to_have_text("报告退回整改")

        # --- firm1 reads the letter and resubmits -----------------------------------------------------
        current = firm
        firm.goto(f"/engagements/{engagement_id}/submissions/new")
        expect(firm.get_by_test_id("previous-letter")).to_contain_text(LETTER_ADDITION)
        for seat in seats:  # the letter names no expert
            expect(firm.get_by_test_id("previous-letter")).not_to_contain_text(seat[1])
        _upload_report(firm, engagement_id, "评价报告（整改稿）.docx", CHAPTERS + "\n整改说明：已补充问题原因分析。",
                       fill_table=False)
        firm.screenshot(path=SHOTS.format("3-resubmitted"), full_page=True)

        # --- round 2: a new panel reviews the rectified report: 19 × 5 = 95 ≥ 90 -----------------------
        current = bureau
        second_panel = _form_panel(bureau, engagement_id, sessions, "2222")
        assert second_panel != first_panel
        seats, items = _seats(second_panel)
        for invitation_id, username in seats:
            _review_in_browser(sessions, invitation_id, username, items, 19, "整改到位，同意通过")
        bureau.goto(f"/reviews/panels/{second_panel}")
        expect(bureau.get_by_test_id("panel-score")).to_have_text("95")
        expect(bureau.get_by_test_id("panel-status")).to_have_text("通过")
        bureau.goto(f"/engagements/{engagement_id}")
        expect(bureau.get_by_test_id("engagement-state")).to_have_text("已验收")

        # --- bz.admin publishes the redacted report ---------------------------------------------------
        bureau.goto(f"/engagements/{engagement_id}/result")
        expect(bureau.get_by_test_id("grade")).to_have_text("优")
        bureau.locator("form:has([data-testid=publish]) input[name=file]").set_input_files(
            upload("评价报告（脱密版）.docx", docx_bytes("脱密后的评价报告\n" + CHAPTERS)))
        with bureau.expect_navigation():
            bureau.get_by_test_id("publish").click()
        expect(bureau.get_by_test_id("published")).to_contain_text("评价报告（脱密版）.docx")
        bureau.screenshot(path=SHOTS.format("4-published"), full_page=True)
        bureau.goto(f"/engagements/{engagement_id}")
        expect(bureau.get_by_test_id("engagement-state")).to_have_text("已公开")

        # --- anyone finds it on /public/reports -------------------------------------------------------
        visitor = current = sessions.page()
        visitor.goto("/public/reports")
        row = visitor.get_by_test_id("public-reports").locator("tbody tr", has_text=ENGAGEMENT_NAME)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(world.firm.name)
        expect(row).to_contain_text("优")
        visitor.screenshot(path=SHOTS.format("5-public"), full_page=True)
        with visitor.expect_download() as download:
            row.get_by_role("link", name=re.compile("下载")).click()
        assert download.value.suggested_filename == "评价报告（脱密版）.docx"
    except Exception:
        if current is not None and not current.is_closed():
            current.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()

    db.session.expire_all()
    engagement = db.session.get(Engagement, engagement_id)
    assert engagement.state == EngagementState.PUBLISHED
    # The report's panels (the work plan went through its own panel before fieldwork).
    panels = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.engagement_id == engagement_id,
                                                             ReviewPanel.kind == SubmissionKind.REPORT)
                                .order_by(ReviewPanel.round)).scalars().all()
    assert [(p.round, p.score, p.passed) for p in panels] == [(1, Decimal("85.00"), False), (2, Decimal("95.00"), True)]
    assert LETTER_ADDITION in panels[0].letter and panels[0].letter_sent_at is not None
    for panel in panels:
        assert {i.status for i in panel.invitations} == {InvitationStatus.ACCEPTED}
        assert {i.review.status for i in panel.invitations} == {ReviewStatus.SUBMITTED}
    versions = db.session.execute(sa.select(Submission.version).where(Submission.engagement_id == engagement_id,
                                                                      Submission.kind == SubmissionKind.REPORT)
                                  .order_by(Submission.version)).scalars().all()
    assert versions == [1, 2]
    result = db.session.execute(sa.select(EvaluationResult).where(
        EvaluationResult.engagement_id == engagement_id)).scalar_one()
    assert result.grade == Grade.EXCELLENT
    publication = db.session.execute(sa.select(Publication).where(
        Publication.engagement_id == engagement_id)).scalar_one()
    assert not publication.classified and publication.redacted_file.original_name == "评价报告（脱密版）.docx"
    assert db.session.execute(sa.select(sa.func.count(PanelInvitation.id)).where(
        PanelInvitation.panel_id.in_([p.id for p in panels]))).scalar_one() == 2 * PANEL_SIZE
