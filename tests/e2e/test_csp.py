"""The Content-Security-Policy in a real browser (issue 11, "Headers").

The browser refuses inline script and style on our pages, and the e2e watch (helpers.watch, checked after
every browser test by conftest.no_browser_problems) notices when it does. The behaviour that moved from
inline code to static/evalhub.js still works: the dashboard's grade chart draws, progress bars get their
width, a confirmation that is dismissed stops the form, and the error page's back link goes back.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from evalhub.credit.models import CreditGrade, CreditRating, RatingStatus
from evalhub.extensions import db
from tests.e2e.helpers import BROWSER_PROBLEMS, VIEWPORT, log_in, watch
from tests.test_credit_views import _final, _rated

pytestmark = pytest.mark.e2e


def test_the_browser_refuses_inline_code_and_the_watch_reports_it(page, world):
    response = page.goto("/login")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    ran = page.evaluate("""() => {
        const s = document.createElement("script");
        s.textContent = "window.inlineRan = true";
        document.body.appendChild(s);
        const d = document.createElement("div");
        d.setAttribute("style", "color: red");
        document.body.appendChild(d);
        return window.inlineRan === true;
    }""")
    assert ran is False
    page.wait_for_timeout(200)  # console messages arrive asynchronously
    reported = list(BROWSER_PROBLEMS)
    BROWSER_PROBLEMS.clear()  # expected here; any other test fails on them
    assert any("inline script" in p for p in reported), reported
    assert any("inline style" in p for p in reported), reported


def test_chart_bars_confirmations_and_back_link_work_under_the_policy(world, browser, live_server):
    draft = _rated(world)  # world.firm's 2025 draft by 巴州: the list offers "公示" with a confirmation
    _final(world, world.other_firm, world.bz, 2024, CreditGrade.B, "85.50")  # something for the chart
    db.session.commit()
    rating_id = draft.id

    context = browser.new_context(base_url=live_server, locale="zh-CN", viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        watch(page)
        log_in(page, "bz.admin")

        # The grade chart on the dashboard is drawn by evalhub.js from the JSON data block.
        page.goto("/")
        page.wait_for_function("() => window.Chart && Chart.getChart('credit-grade-chart')")
        assert page.locator("#credit-grade-chart").evaluate("c => c.width") > 0

        # Bars get their width from data-bar-width.
        page.goto(f"/credit/ratings/{rating_id}")
        bar = page.locator(".progress-bar[data-bar-width]").first
        expect(bar).to_be_attached()
        assert float(bar.get_attribute("data-bar-width")) > 0
        assert bar.evaluate("el => el.getBoundingClientRect().width") > 0

        # A dismissed confirmation stops the form; an accepted one lets it through.
        page.goto("/credit?year=2025")
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.get_by_test_id("publish").click()
        page.wait_for_timeout(300)
        db.session.rollback()
        assert db.session.get(CreditRating, rating_id).status == RatingStatus.DRAFT
        page.once("dialog", lambda dialog: dialog.accept())
        with page.expect_navigation():
            page.get_by_test_id("publish").click()
        db.session.rollback()
        assert db.session.get(CreditRating, rating_id).status == RatingStatus.PUBLISHED

        # The error page's "返回上一页" goes back in history.
        page.goto("/firms")
        page.goto("/no-such-page")
        page.get_by_role("link", name="返回上一页").click()
        page.wait_for_url("**/firms")
    finally:
        context.close()


def test_a_running_job_page_polls_and_reloads_when_done(page, world):
    from evalhub.core.enums import JobStatus
    from evalhub.core.models import Job
    from evalhub.core.timeutil import utcnow

    job = Job(kind="test.csp", title="轮询测试", status=JobStatus.RUNNING, progress=1, total=4, message="第 1 步",
              bureau_id=world.bz.id, created_by_id=world.bz_admin.id)
    db.session.add(job)
    db.session.commit()
    job_id = job.id

    log_in(page, "bz.admin")
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#job-bar")).to_have_text("25%")
    assert page.locator("#job-bar").evaluate("el => el.style.width") == "25%"

    job = db.session.get(Job, job_id)
    job.progress, job.message = 3, "第 3 步"
    db.session.commit()
    expect(page.locator("#job-message")).to_have_text("第 3 步")   # the poll (every second) picked it up
    assert page.locator("#job-bar").evaluate("el => el.style.width") == "75%"

    job.status, job.progress, job.finished_at, job.result = JobStatus.SUCCEEDED, 4, utcnow(), {"message": "完成了"}
    db.session.commit()
    expect(page.get_by_text("完成了")).to_be_visible()              # reloaded once finished
    expect(page.locator("#job-poll")).to_have_count(0)
