"""Audit: the pages in a real browser, as people use them every working day (headless chromium, the
production Content-Security-Policy of evalhub/core/security.py, a 1366×768 office screen).

Each test names the rule and the defect it shows; each fails on the code as audited.
"""
from __future__ import annotations

import re

import pytest

from evalhub.extensions import db
from tests.e2e.helpers import log_in, watch

pytestmark = pytest.mark.e2e

OFFICE_SCREEN = {"width": 1366, "height": 768}  # the most common desktop resolution in bureau offices


@pytest.fixture()
def office_page(browser, live_server):
    """A fresh context at 1366×768 (the shared ``page`` fixture is 1280×900)."""
    context = browser.new_context(base_url=live_server, locale="zh-CN", viewport=OFFICE_SCREEN)
    context.set_default_timeout(10_000)
    page = context.new_page()
    watch(page)
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
    finally:
        context.close()


@pytest.mark.parametrize("username, display_name, unread, width", [
    # 巴州's admin on an office screen, with the inbox the demo gives the account (122 unread: a 3-digit badge)
    ("bz.admin", "巴州财政局绩效评价中心管理员", 122, 1366),
    # the region's admin on a 1280-px laptop (the e2e suite's own viewport), inbox empty
    ("region.admin", "自治区财政厅绩效评价中心管理员", 0, 1280),
], ids=["bz-admin-1366-with-unread", "region-admin-1280"])
def test_the_bureau_navbar_fits_the_screen_and_its_logout_button_is_visible(world, browser, live_server, username,
                                                                            display_name, unread, width):
    """Rule: every page must be usable on a 1280–1366 px wide screen without scrolling sideways; the navigation
    bar's own controls (the account link and 退出) must be on screen.

    Defect: for a bureau admin the expanded navbar (templates/base.html: navbar-expand-lg, i.e. expanded from
    992 px) holds the brand, eight links, the unread badge, the account text (capped at 24rem by .user-info) and
    退出 in one row that may not wrap (evalhub/static/evalhub.css: `.navbar .nav-link, .navbar .btn
    { white-space: nowrap }`). With the demo's account names it is ~1396 px wide with a three-digit badge and
    ~1356 px without one, so at 1366 px (bz.admin, 122 unread) and at 1280 px (region admin) every signed-in
    bureau page scrolls sideways and 退出 is cut off or entirely off screen.
    """
    from evalhub.core.models import Notification, User

    account = db.session.execute(db.select(User).where(User.username == username)).scalar_one()
    account.display_name = display_name  # how the demo (and a real bureau) names the account
    db.session.add_all([Notification(user_id=account.id, title=f"提醒 {n}", body="请处理") for n in range(unread)])
    db.session.commit()
    context = browser.new_context(base_url=live_server, locale="zh-CN", viewport={"width": width, "height": 768})
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        watch(page)
        log_in(page, username)
        page.goto("/firms")
        scroll_width, inner_width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        logout = page.get_by_role("button", name="退出").bounding_box()
        assert logout["x"] + logout["width"] <= inner_width, (
            f"退出 ends at x={logout['x'] + logout['width']:.0f} px, beyond the {inner_width} px window")
        assert scroll_width <= inner_width, f"the page is {scroll_width} px wide in a {inner_width} px window"
    finally:
        context.close()


def test_the_screening_model_card_shows_its_training_time_in_beijing_time(app, world, office_page):
    """Rule: every time a page shows is Beijing time in the form the rest of the site uses
    (`|bj`: 2025-03-01 10:00), never a raw ISO string or UTC.

    Defect: /screening/models/<id> (templates/screening/model_detail.html) shows 训练时间 as the card's raw
    `trained_at`, written by evalhub/screening/learning.py as `datetime.now().astimezone().isoformat()` — the
    server's own zone, UTC on a server: "2026-12-07T06:30:25+00:00" — and 数据窗口 as `str()` of the stored naive
    UTC timestamps ("2026-10-28 07:00:00.072104", eight hours behind and with microseconds). The demo's model
    page shows exactly this.
    """
    from pathlib import Path

    import pandas as pd

    from evalhub.screening import learning
    from evalhub.screening.models import ModelStatus, ScreeningModel
    from tests.test_screening_model import _frame_the_rule_score_ranks_perfectly

    frame = _frame_the_rule_score_ranks_perfectly()
    # Submission times as stored (naive UTC): 16:30 UTC is 00:30 the next day in Beijing.
    frame["at"] = pd.date_range("2023-01-01 16:30:00.250000", periods=len(frame), freq="5D")
    result = learning.train(frame)
    artefact = learning.save(result, Path(app.config["MODELS_DIR"]), "20250303-1")
    model = ScreeningModel(version="20250303-1", algorithm=result.card["algorithm"], artefact=artefact,
                           card=result.card, status=ModelStatus.CANDIDATE, created_by_id=world.region_admin.id)
    db.session.add(model)
    db.session.commit()

    page = office_page
    log_in(page, "region.admin")
    page.goto(f"/screening/models/{model.id}")
    card = page.get_by_test_id("model-card").inner_text()
    trained = re.search(r"训练时间\s*(\S+)", card).group(1)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d", trained) or re.match(r"\d{4}-\d\d-\d\d$", trained), (
        f"训练时间 shows {trained!r}, not a Beijing time like the rest of the site")
    assert "+00:00" not in card and not re.search(r"\d\dT\d\d:", card), card
    window = page.get_by_test_id("data-window").inner_text()
    assert "2023-01-02 00:30" in window, f"数据窗口 {window!r} is not in Beijing time (first report 2023-01-02 00:30)"
    assert not re.search(r":\d\d\.\d+", window), f"数据窗口 {window!r} shows microseconds"


def test_rows_added_with_add_row_beyond_sixty_are_kept_not_silently_dropped(world, office_page):
    """Rule: what a form lets a user enter is either stored or refused with a message — never silently
    dropped.

    Defect: the report upload page (templates/review/submission_new.html) has "增加一行", which evalhub.js adds
    rows with and no upper limit, but ReportSubmissionForm.indicators is a FieldList with max_entries=60
    (evalhub/review/forms.py MAX_INDICATOR_ROWS); WTForms' FieldList.process keeps only the first 60 indices of
    the posted data. A firm whose scoring table has 62 lines (a whole-department evaluation's 三级指标 often run to
    dozens) adds the rows, fills them and uploads: the report is accepted with rows 61–62 gone, so its stored
    table no longer adds up (权重合计 60 instead of 100) and the experts and the bureau see a wrong table — with no
    message to the firm.
    """
    import sqlalchemy as sa

    from evalhub.review.models import ReportIndicator, Submission
    from tests import factories
    from tests.e2e.helpers import upload

    e = factories.in_fieldwork(world)
    db.session.commit()
    engagement_id = e.id

    page = office_page
    log_in(page, "firm1")
    page.goto(f"/engagements/{engagement_id}/submissions/new")
    page.locator('input[type="file"][name="file"]').set_input_files(
        upload("评价报告.docx", factories.docx_bytes(factories.report_text())))
    add = page.locator("#add-indicator-row")
    for _ in range(62 - page.locator("#indicator-body tr.indicator-row").count()):
        add.click()
    assert page.locator("#indicator-body tr.indicator-row").count() == 62  # the page let the firm add them

    # 62 lines, weight 100 in all, 80 of it output and benefit; every score full, so the total is 100 (优).
    rows = ([("decision", 1)] * 10 + [("process", 1)] * 10 + [("output", 1)] * 20 + [("benefit", 1)] * 20
            + [("benefit", 20)] * 2)
    for i, (category, weight) in enumerate(rows):
        page.locator(f'select[name="indicators-{i}-category"]').select_option(category)
        page.locator(f'input[name="indicators-{i}-name"]').fill(f"三级指标{i + 1}")
        page.locator(f'input[name="indicators-{i}-weight"]').fill(str(weight))
        page.locator(f'input[name="indicators-{i}-score"]').fill(str(weight))
    page.locator('input[name="concluded_total"]').fill("100")
    page.locator('select[name="concluded_grade"]').select_option(label="优")
    page.get_by_test_id("upload-submission").click()
    page.wait_for_url(re.compile(r"/submissions/\d+$"))  # accepted

    db.session.rollback()
    submission = db.session.execute(sa.select(Submission).where(Submission.engagement_id == engagement_id)
                                    .order_by(Submission.id.desc())).scalars().first()
    stored = db.session.execute(sa.select(sa.func.count()).select_from(ReportIndicator)
                                .where(ReportIndicator.submission_id == submission.id)).scalar_one()
    assert stored == 62, f"the firm entered 62 lines and was told the report was submitted; {stored} were stored"


def test_the_draw_recomputation_lines_read_as_sentences(world, office_page):
    """Rule: the witnessed-draw page's browser recomputation (issue 14: a witness checks the draw without trusting
    the server) must say plainly what matched and what did not.

    Defect: evalhub/static/draw_recompute.js labels the candidate-list check "候选名单与记录一致" and then appends
    "一致"/"不一致" to every label, so the line reads "✓ 候选名单与记录一致一致" — and, on the one occasion it
    matters (a record altered after the reveal), "✗ 候选名单与记录一致不一致", a line that says both. The other
    labels ("秘密值与承诺值", "种子", "抽取结果") are written without the verdict.
    """
    from playwright.sync_api import expect

    from tests import factories

    record = factories.witnessed_draw("抽取机构", range(1, 12), 2, actor=world.bz_admin, bureau_id=world.bz.id)
    db.session.commit()
    page = office_page
    log_in(page, "bz.admin")
    page.goto(f"/draws/{record.id}")
    page.get_by_test_id("recompute").click()
    expect(page.get_by_test_id("recompute-verdict")).to_have_text("浏览器复算一致")
    lines = page.get_by_test_id("recompute-result").inner_text().splitlines()
    assert not [line for line in lines if "一致一致" in line or "一致不一致" in line], lines
