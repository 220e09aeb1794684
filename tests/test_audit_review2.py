"""Review 2 (58a3878..HEAD): findings proved by failing tests. Uncommitted."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from evalhub.core.timeutil import beijing_today
from evalhub.credit import services as C
from evalhub.credit.models import CreditRating
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState as S
from evalhub.supervision import services as V
from evalhub.supervision.models import Severity, Trigger
from tests import factories


def _final_year(world, year):
    C.ensure_national_calendar()
    C.compute(world.bz, year, world.bz_admin)
    C.publish(world.bz, year, world.bz_admin, today=date(year, 11, 3))
    C.finalise(world.bz, year, world.bz_admin, today=date(year, 12, 31))


def test_a_late_intentional_finding_on_a_firm_without_a_row_is_counted_once_even_when_the_work_year_is_computed_again(world):
    """docs/rules.md: a late finding counts in the year it was made "— never in both". The new branch of ``_late``
    (no row of the firm in the work year, the bureau's ratings final) makes this year take it; but ``compute`` of the
    work year is still allowed after it is final and ``_subjects`` makes the bidder a subject of it (intentional,
    ``_work_year``), so the work year gains a draft row with the same finding: two watch-list rows for one fact."""
    this_year = beijing_today().year
    last = this_year - 1
    e = factories.contracted(world, year=last)
    e.state = S.ACCEPTED
    db.session.flush()
    _final_year(world, last)
    bidder = factories.losing_bidder(e, name="陪标未中标的评价有限公司")
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.RED_FLAG, detail="该项目投标人报价呈规律性差异",
                       firm=bidder, engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description="与他人串通投标")
    db.session.flush()
    C.compute(world.bz, this_year, world.bz_admin)
    C.compute(world.bz, last, world.bz_admin)  # e.g. the year recomputed for another firm's late row, or a click
    rows = db.session.execute(sa.select(CreditRating.year, CreditRating.watch_list).where(
        CreditRating.firm_id == bidder.id, CreditRating.watch_list.is_(True))).all()
    assert len(rows) == 1, f"one intentional finding puts the bidder on the watch list of two years: {rows}"


# --- outline: one line naming every chapter ------------------------------------------------------------------

def test_one_line_listing_every_chapter_is_not_eight_headings():
    """docs/rules.md "Report outline": a heading naming several chapters counts each — as the reference outline
    writes its fifth chapter (五、主要经验及做法、存在的问题及原因分析). ``core.outline.heading_titles`` accepts any
    number of chapters joined by 、 (up to 80 characters) and ignores words after them, so one line listing the
    outline (or a sentence such as "1. 基本情况和绩效评价工作开展情况已在上文介绍") passes the panel's machine check
    "8 个章节齐全" and takes the screener's missing-chapters term to 0. Before, one line was at most one chapter."""
    from evalhub.review.services import REPORT_CHAPTERS, find_chapters
    from evalhub.screening import textproc

    text = ("一、基本情况、绩效评价工作开展情况、综合评价情况及评价结论、绩效评价指标分析、主要经验及做法、"
            "存在的问题及原因分析、有关建议、其他需要说明的问题\n本项目总体完成较好，达到预期目标。")
    counted = find_chapters(text, REPORT_CHAPTERS)
    screened = textproc.parse(text, REPORT_CHAPTERS).heading_counts
    assert sum(1 for n in counted.values() if n) <= 2 and sum(1 for n in screened.values() if n) <= 2, (counted, screened)
    assert not any(find_chapters("1. 基本情况和绩效评价工作开展情况已在上文介绍", REPORT_CHAPTERS).values())


# --- traditional characters: the screener converts, the panel's machine checks do not ----------------------------

def test_the_machine_checks_read_a_report_in_traditional_characters_as_the_screener_does():
    """docs/rules.md "Report outline … text in traditional characters is read as simplified (OpenCC t2s) before
    headings are matched", service column ``review/services.py find_chapters``. Only ``screening.textproc.normalise``
    converts: the panel's machine check tells the experts all eight chapters are missing while the screener finds
    them all (and ``results.services.report_sections`` drafts no findings from such a report)."""
    from evalhub.review.services import REPORT_CHAPTERS, find_chapters
    from evalhub.screening import textproc

    text = "\n".join(["一、基本情況", "二、績效評價工作開展情況", "三、綜合評價情況及評價結論", "四、績效評價指標分析",
                      "五、主要經驗及做法、存在的問題及原因分析", "六、有關建議", "七、其他需要說明的問題"])
    screened = textproc.parse(text, REPORT_CHAPTERS).heading_counts
    assert all(screened.values())
    assert find_chapters(text, REPORT_CHAPTERS) == screened


# --- restated targets under a header: merged cells ---------------------------------------------------------------

def test_restated_targets_are_found_in_rows_whose_merged_indicator_cells_are_empty():
    """docs/rules.md: a restated target is counted "where a table's header names the target and actual columns …
    compared row by row". The standard 绩效评价指标表 merges 一级/二级指标 over rows: Word stores the continued
    cells empty, ``normalise`` collapses the empty cells' tabs into one space, the row has fewer cells than the
    header and falls back to the sign-or-unit rule, which ignores bare numbers (the unit has its own column). Two
    of four rows writing the target again are counted."""
    from evalhub.screening import textproc
    from evalhub.screening.features import restated_targets

    rows = ["一级指标\t二级指标\t三级指标\t单位\t年度指标值\t实际完成值\t分值\t得分",
            "产出指标\t数量指标\t新建道路长度\t公里\t150\t150\t10\t10",
            "\t\t培训人次\t人次\t300\t300\t10\t10",
            "\t质量指标\t验收合格率\t%\t100\t100\t10\t10",
            "效益指标\t社会效益\t受益人口\t人\t5000\t5000\t10\t10"]
    assert restated_targets(textproc.normalise("\n".join(rows))) == 4


# --- unscored: a report printed as images leaves the spot-check proposals ----------------------------------------

def test_a_report_without_a_text_layer_is_still_proposed_for_a_spot_check(world):
    """docs/rules.md "Share of the year's reports proposed for spot checks by the screener" and the unscored row:
    an upload with fewer than 200 extractable characters is "outside the queue's counts and the spot-check share",
    listed apart with no duty on anyone. Before this diff such an upload ranked at 0.82–0.93 and was proposed. A
    firm that prints its weak report as images (a scan, "print as image", text converted to outlines) now takes it
    out of every proposal the screener makes — the only report of the year, and still not proposed."""
    from evalhub.review import services as R
    from evalhub.review.models import SubmissionKind
    from evalhub.screening import services as S
    from tests.screening_support import INDICATORS, in_fieldwork
    from tests.test_audit_screening import _scanned_pdf

    S.forget_cache()
    e, firm_user = in_fieldwork(world)
    submission = R.submit(e, SubmissionKind.REPORT, "评价报告.pdf", _scanned_pdf(), firm_user,
                          indicators=INDICATORS, concluded_total="92", concluded_grade="优")
    db.session.flush()
    row = S.screening_for(submission)
    assert row is not None
    # proposed apart from the ranking (it has no risk to rank by), always, in addition to the share
    assert [r.id for r in S.unscored(world.bz_admin, year=row.year)] == [row.id]
    from flask import current_app

    from tests.factories import PASSWORD
    client = current_app.test_client()
    token = client.post("/api/v1/tokens", json={"username": world.bz_admin.username, "password": PASSWORD}).json["token"]
    items = client.get(f"/api/v1/screening/unscored?year={row.year}", headers={"Authorization": f"Bearer {token}"}).json["items"]
    assert [(i["submission_id"], i["flagged"]) for i in items] == [(submission.id, True)], \
        "an image-only report is never proposed for a spot check (listed apart, counted nowhere)"
