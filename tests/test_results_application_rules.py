"""Rules of the results loop (结果应用 / 闭环): each test states a rule of docs/rules.md ("结果应用"), with its source
in the seeds or DOMAIN.md, and sets up the case it holds on."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from evalhub.core import draws, files
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import beijing_today, simulated_clock, utcnow
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState
from evalhub.results import services as S
from evalhub.results.models import FindingStatus
from evalhub.review import services as R
from evalhub.review.models import Grade, Publication, ReviewPanel
from tests import factories


# --- 双公开 on Beijing dates ----------------------------------------------------------------------------

def test_dual_publication_days_count_from_the_bureaus_beijing_publication_date(world):
    """rules.md 结果应用 row "双公开: the other side publishes within N days of the first" (seed 000 "双公开",
    default 20 days). Days count from the bureau's Beijing publication date: published at 04:00 Beijing on
    3 September (stored naive UTC: 2 September 20:00), the 20th day is Tuesday 23 September — a working day, so
    the period ends then (a UTC date would end it on the 22nd) — and the unit is listed late on 24 September,
    with "2025-09-03" in the listing."""
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    db.session.add(Publication(engagement_id=e.id, classified=False, published_at=datetime(2025, 9, 2, 20, 0)))
    db.session.flush()
    assert S.one_sided_publications(world.bz_staff, today=date(2025, 9, 23)) == [], \
        "published on 3 Sep (Beijing), 20 days on 23 Sep: the unit is not late yet"
    late = S.one_sided_publications(world.bz_staff, today=date(2025, 9, 24))
    assert [x[0].id for x in late] == [e.id] and "2025-09-03" in late[0][1]


# --- a confirmed rectification deadline is never already past ------------------------------------------

def test_confirmation_never_gives_a_rectification_deadline_already_past(world):
    """rules.md 结果应用 row "Rectification deadline from the confirmation of findings" (seed 004 轮台县:
    "明确整改要求和时限，督促整改落到实处"). A confirmed finding is never due before the day it is confirmed: the
    firm enters today as the deadline, the bureau confirms three days later, and either the confirmation is refused
    or every deadline is on or after the confirmation day — nothing is overdue and no 催办 is sent."""
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    today = beijing_today()
    S.add_finding(e, world.firm_user, S.FindingInput(kind="问题", text="资金支付进度滞后", category="过程",
                                                     deadline=today))
    later = utcnow() + timedelta(days=3)
    confirm_day = today + timedelta(days=3)
    with simulated_clock(later):
        try:
            rows = S.confirm_findings(e, world.bz_staff)
        except (Conflict, ValidationFailed):
            return  # refused: the bureau sets a deadline first — the rule holds
        assert all(f.deadline >= confirm_day for f in rows), \
            f"confirmed on {confirm_day}, no deadline may be earlier: {[f.deadline for f in rows]}"
    assert S.escalate_overdue(today=confirm_day) == []


# --- the rules' own proposal can be confirmed ---------------------------------------------------------

def test_a_good_item_under_the_line_with_cancel_gets_a_proposal_the_bureau_can_confirm(world):
    """rules.md 结果应用 rows "What 良 proposes: nothing, reduce or cancel" (seed 003 民丰县: 良 "调减或取消" — one
    or the other) and "A score under this line reduces the item" (seed 001). What the rules propose can be confirmed
    as proposed: with 良 → 取消 and a line of 85, a 良 item at 84 gets a proposal that confirm_entry accepts
    unchanged, with no reason owed."""
    set_setting(world.lt, "results.good_action", "cancel", world.lt_admin)
    set_setting(world.lt, "results.cut_below_score", 85, world.lt_admin)
    e = factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局", score="84", grade=Grade.GOOD)
    entry = next(x for x in S.build_list(world.lt, 2025, world.lt_staff) if x.engagement_id == e.id)
    S.confirm_entry(entry, world.lt_staff, measures=list(entry.proposed),
                    cut_percent=entry.proposed_percent)  # confirmed as proposed: no reason owed
    assert entry.confirmed_at is not None and entry.measures == entry.proposed


# --- a budget reduction is at most the item's budget ---------------------------------------------------

def test_a_budget_reduction_amount_cannot_exceed_the_items_funds(world):
    """Seed 000 (克州) "对上一年度绩效评价结果为‘中’‘差’的项目，按比例扣减部门单位项目支出预算安排"; rules.md
    "Budget reduction for 中/差 … (percent)". A reduction is a share of the item's budget, by percentage (0–100) or
    by amount (调减金额（万元）): a 300 万元 中 item cannot be reduced by 5,000 万元, and the year's reduced total
    (备案, 人大 summary) stays within the item's funds."""
    e = factories.accepted_with_result(world, score="70", grade=Grade.FAIR, amount_wan="300")
    entry = next(x for x in S.build_list(world.bz, 2025, world.bz_staff) if x.engagement_id == e.id)
    with pytest.raises(ValidationFailed) as refused:
        S.confirm_entry(entry, world.bz_staff, measures=["reduce"], cut_amount_wan="5000", reason="按金额调减")
    assert "cut_amount_wan" in refused.value.fields
    assert S.figures(world.bz, 2025)["reduced"] <= e.amount


# --- the unit's half of 双公开 is dated after the evaluation -------------------------------------------

def test_the_unit_cannot_record_publishing_the_report_before_it_was_accepted(world):
    """Seed 000 "财政重点项目绩效评价工作结束后，由财政部门、被评价单位负责按规定将第三方机构评价报告脱密后进行
    ‘双公开’": the unit publishes the redacted report after the evaluation ends — after the bureau published the
    redacted version. A unit's publication dated 1 June 2024 — before this 2025 engagement was contracted
    (1 March 2025), accepted and published (today) — is refused, and the bureau is not listed late."""
    from evalhub.core.timeutil import utcnow
    from evalhub.review.models import Publication

    e = factories.accepted(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    db.session.add(Publication(engagement_id=e.id, classified=False, published_at=utcnow()))
    db.session.flush()
    with pytest.raises(ValidationFailed) as refused:
        S.record_unit_publication(e, unit, "https://www.xjbz.gov.cn/tjj/2025/report.html", "2024-06-01")
    assert "published_on" in refused.value.fields
    assert S.one_sided_publications(world.bz_staff) == []


# --- a unit does not read a failed self-evaluation score before the bureau's letter ----------------------

def _reviewers(world, n: int = 3):
    from evalhub.registry.models import Expert

    for other in db.session.execute(sa.select(Expert)).scalars():
        other.available = False
    for i in range(n):
        x = factories.expert(world.bz, name=f"自评审计专家{i}", employer=f"新疆某高校{i}")
        factories.expert_user(x.id)
    db.session.flush()


def test_a_unit_does_not_read_its_failed_self_evaluation_score_before_the_letter(world, client, login, auth):
    """rules.md 结果应用 row "Self-evaluation reviews … scored under this mark is returned to the unit for
    rectification" (seed 000 克州 item 7: "对打分结果低于 90 分的报告退回整改"); results.services.unit_outcome: the
    unit reads the outcome once decided and, under the pass mark, the letter once sent (as a firm reads "专家评审中").
    A panel scores 85 and the letter is not yet sent: while the version reads "专家评审中", neither the API's "score"
    nor the page ("评审得分") shows the score."""
    unit = factories.unit_user(world, "巴州统计局", "tjj.audit")
    _reviewers(world)
    se = S.submit_self_evaluation(unit, world.units["巴州统计局"], year=2025, name="中央财政统计能力建设补助资金",
                                  upload=files.Upload("自评报告.docx", factories.docx_bytes("中央转移支付自评报告")))
    record = R.form_panel(se, world.bz_staff)
    result = draws.run_witnessed(record) if not isinstance(record, ReviewPanel) else record
    db.session.flush()
    panel = result if isinstance(result, ReviewPanel) else db.session.execute(
        sa.select(ReviewPanel).where(ReviewPanel.self_evaluation_id == se.id)).scalars().first()
    factories.review_panel(panel, fraction="0.85")  # 85 < 90: decided, the letter not yet sent
    db.session.refresh(panel)
    assert panel.passed is False and panel.letter_sent_at is None
    db.session.commit()

    shown = f"{panel.score}"  # e.g. 85.10
    login(unit)
    page = client.get(f"/results/self-evaluations/{se.id}").get_data(as_text=True)
    body = client.get("/api/v1/results/self-evaluations", headers=auth("tjj.audit")).get_json()
    item = next(i for i in body["items"] if i["id"] == se.id)
    assert item["versions"][0]["outcome"] == "专家评审中" and item["versions"][0]["score"] is None
    leaks = []
    if item["score"] is not None:
        leaks.append(f"API score {item['score']}")
    if "评审得分" in page or shown in page:
        leaks.append(f"page shows 评审得分 {shown}")
    assert not leaks, f"the unit must not read its score before the bureau sends the letter: {leaks}"


# --- the 逾期未整改 page does not charge the unit with the bureau's verification ---------------------------

def test_a_finding_awaiting_verification_is_not_listed_as_overdue_unrectified(world):
    """rules.md 结果应用 row "Overdue rectification: reminder, then 约谈 …, then 通报" (seed 000, seed 004), and
    escalate_overdue's rule "Waiting for the bureau's verification (SUBMITTED) is not the unit's delay". The unit
    hands in its plan and evidence, then the deadline passes before the bureau verifies: neither the escalation job
    nor the 逾期未整改事项 page (and the dashboard's count, same query) lists the finding against the unit."""
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    f = factories.confirmed_findings(world, e, n=1)[0]
    S.submit_plan(f, unit, "由财务科负责，按期完成支付。")
    S.submit_evidence(f, unit, "已完成支付", [files.Upload("支付凭证.txt", "支付凭证".encode())])
    assert f.status == FindingStatus.SUBMITTED
    f.deadline = beijing_today() - timedelta(days=30)  # the deadline passed while the bureau had not verified
    db.session.flush()
    assert S.escalate_overdue() == []  # the job agrees: not the unit's delay
    assert [x.id for x in S.overdue_findings(world.bz_staff)] == [], "not 逾期未整改 while awaiting verification"


# --- the filed (备案) list covers every evaluated object of the year -------------------------------------

def test_a_county_cannot_file_a_list_that_leaves_out_an_evaluated_object(world):
    """Seed 000 (克州) "各县（市）绩效评价结果应用情况，报自治州财政局备案"; rules.md 结果应用 rows (every 中/差 or
    under-the-line item reduced, 差 通报). The filed list covers every evaluated object of the year: the list is
    built and its one row confirmed, then a second object is accepted with a 差 result; file_list either refuses
    until the list is rebuilt and the new row confirmed, or the filed list includes the 差 object."""
    first = factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局", score="92", grade=Grade.EXCELLENT)
    rows = S.build_list(world.lt, 2025, world.lt_staff)
    S.confirm_entry(next(r for r in rows if r.engagement_id == first.id), world.lt_staff, measures=["priority"])
    poor = factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局", score="55", grade=Grade.POOR)
    try:
        S.file_list(world.lt, 2025, world.lt_admin)
    except (ValidationFailed, Conflict):
        return  # refused until the list is rebuilt and the new row confirmed: the rule holds
    filed = {e.engagement_id for e in S.entries(world.lt, 2025)}
    assert poor.id in filed, "the filed list must include the year's 差 object"
