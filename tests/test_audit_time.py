"""Audit (time): deadlines and periods — natural vs working days, the end day on a holiday (法定节假日顺延),
Beijing dates, inclusive ends, the working-day calendar. Each test fails on the current code for the defect
its docstring names, and passes once the defect is fixed."""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from evalhub.core import timeutil
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState
from evalhub.results import services as results
from tests import factories


def test_default_rectification_deadline_on_national_day_rolls_to_next_working_day(world):
    """Rule: a period counted in days whose last day is a statutory holiday ends on the first working day after
    the holiday (民法典 第二百零三条: "期间的最后一日是法定休假日的，以法定休假日结束的次日为期间的最后一日";
    the 2026 国庆 holiday is 1–7 October, 国务院办公厅关于2026年部分节假日安排的通知).
    Confirming findings on 7 July 2026 gives the bureau's default 90 days: 5 October 2026, a Monday inside the
    National Day holiday. The unit's deadline must be Thursday 8 October; instead it stays 5 October, so on
    8 October — the unit's first working day back, legally still its last day — the hourly job already records
    a 逾期催办 against the evaluated unit (and the 约谈/通报 thresholds count that day as a day late).
    Hurt: the evaluated unit (escalated, shown overdue). Source: DOMAIN §2 / seed 004 (明确整改要求和时限),
    docs/rules.md results.rectification_days."""
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    factories.unit_user(world, "巴州统计局", "tjj")
    firm_user = factories._firm_user_of(e)
    results.add_finding(e, firm_user, results.FindingInput(kind="问题", text="资金支付进度滞后", category="过程",
                                                           indicator="资金到位率", deadline=None))
    [finding] = results.confirm_findings(e, factories._staff_of(e), today=date(2026, 7, 7))
    assert date(2026, 7, 7).toordinal() + 90 == date(2026, 10, 5).toordinal()
    escalated = results.escalate_overdue(today=date(2026, 10, 8))
    assert (finding.deadline, [(x.level.label, x.overdue_days) for x in escalated]) == (date(2026, 10, 8), [])


def test_open_tender_bid_deadline_on_a_statutory_holiday_does_not_complete_the_20_day_period(world):
    """Rule: open tender — from issuing the documents to the bid deadline at least 20 days (政府采购法 第三十五条;
    docs/rules.md procurement.min_days_open_tender); a period whose last day is a statutory holiday ends on the
    day after the holiday (民法典 第二百零三条), so a 20th day inside the 国庆 holiday (1–7 October 2026,
    国务院办公厅关于2026年部分节假日安排的通知) carries the minimum period to Thursday 8 October.
    Documents issued Tuesday 15 September 2026 with the bid deadline Monday 5 October 09:00 (Beijing) are accepted
    as "20 日": bidders lose the whole holiday week (banks, CA/e-seal offices, notaries closed) and the bid opening
    sits in the holiday. Hurt: supplier firms (a shortened bidding period), the bureau (a challengeable tender).
    Source: 政府采购法 第三十五条, 民法典 第二百零三条, the 2026 holiday notice."""
    import pytest

    from evalhub.core.errors import ValidationFailed
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod

    e = factories.engagement(world)
    with timeutil.simulated_clock(datetime(2026, 9, 15, 2, 0)):  # 10:00 Beijing, Tuesday 15 September 2026
        with pytest.raises(ValidationFailed) as caught:
            P.open_procurement(e, P.ProcurementInput(
                method=ProcurementMethod.OPEN_TENDER, title="", ceiling_price_wan="500", price_weight="30",
                bid_deadline=datetime(2026, 10, 5, 1, 0),  # 09:00 Beijing, Monday 5 October 2026 (国庆)
                rubric=[("技术方案", "100")]), world.bz_staff)
    assert "bid_deadline" in caught.value.fields, caught.value.fields


def test_firm_resubmission_deadline_on_national_day_rolls_to_next_working_day(world):
    """Rule: a report or plan returned for rectification is due ``review.resubmit_days`` (15) days after the
    letter (docs/rules.md); a period whose last day is a statutory holiday ends on the first working day after it
    (民法典 第二百零三条; 国庆 1–7 October 2026 per the 2026 holiday notice).
    A plan returned on Sunday 20 September 2026 (a 调休 working day) gets 5 October 2026 — inside the holiday —
    as its deadline; from 6 October (still a holiday) the engagement is listed overdue and the firm is sent
    "已逾期" reminders, although its deadline is 8 October. Hurt: the evaluation firm (overdue on the bureau's
    lists and reminders while the office is closed). Source: DOMAIN §2 step 3 (revise and resubmit)."""
    from evalhub.procurement import workflow

    e = factories.contracted(world)
    with timeutil.simulated_clock(datetime(2026, 9, 20, 2, 0)):  # 10:00 Beijing, Sunday 20 September (调休上班)
        factories.submit_plan(e)
        factories.returned(e, factories._staff_of(e))
    assert e.state == EngagementState.PLAN_RETURNED
    assert (e.due_on, workflow.overdue_reason(e, today=date(2026, 10, 8))) == (date(2026, 10, 8), None)


def test_no_contract_30_days_after_the_award_notice_is_flagged_to_the_bureau(world):
    """Rule: the purchaser and the winning supplier sign the contract within 30 days of the award (政府采购法
    第四十六条 "自中标、成交通知书发出之日起三十日内"; 政府采购法实施条例 第六十七条(五) makes a late signing the
    purchaser's liability; 财政部令第87号 第七十一条).
    An engagement awarded (single source approved, result notice published) on Monday 2 March 2026 whose challenge
    period has ended, still without a contract on 7 April 2026 (36 days later), is on no overdue list: the engagement
    waits on no date (``Engagement.due_on`` is None for an awarded engagement), so neither the bureau nor the
    winning firm is ever told the legal 30 days have run out. Hurt: the bureau (legal liability), the winning firm
    (left waiting without a contract). Source: 政府采购法 第四十六条."""
    from evalhub.procurement import services as P
    from evalhub.procurement import workflow

    e = factories.engagement(world)
    with timeutil.simulated_clock(datetime(2026, 3, 2, 2, 0)):  # 10:00 Beijing, Monday 2 March 2026
        p = factories.single_source(world, e)
    assert p.notice is not None and p.notice.challenge_until < date(2026, 4, 7)
    assert e.contract is None and e.state == EngagementState.PROCURING and p.award is not None
    late = db.session.execute(sa.select(sa.func.count()).select_from(type(e)).where(
        type(e).id == e.id, workflow.overdue_clause(date(2026, 4, 7)))).scalar_one()
    assert (late, workflow.overdue_reason(e, today=date(2026, 4, 7))) != (0, None)


def test_expert_invitation_answer_period_ending_in_national_day_rolls_to_next_working_day(world):
    """Rule: an expert answers a panel invitation within ``review.respond_days`` (3) days (docs/rules.md
    "Days for an expert to answer an invitation"); an invitation not answered by then expires, is recorded like a
    decline and a replacement is drawn. A period whose last day is a statutory holiday ends on the first working day
    after it (民法典 第二百零三条); 国庆 runs 1–7 October 2026 (国务院办公厅关于2026年部分节假日安排的通知).
    Invited on Wednesday 30 September 2026 at 18:00 Beijing, the expert's answer period ends Saturday 3 October
    18:00 — mid-holiday — so an expert who answers on the first working day back (8 October) is refused and
    replaced. Hurt: the expert (loses the seat, an expiry on record), the bureau (its panel re-drawn during the
    holiday). Source: docs/rules.md review.respond_days; DOMAIN §4 (panels from the pool)."""
    from evalhub.core.timeutil import beijing_date

    e = factories.contracted(world)
    with timeutil.simulated_clock(datetime(2026, 9, 30, 10, 0)):  # 18:00 Beijing, Wednesday 30 September 2026
        factories.submit_plan(e)
        panel = factories.own_panel(e)
    due = sorted({beijing_date(i.respond_by) for i in panel.invitations})
    assert due and min(due) >= date(2026, 10, 8), due


def test_a_work_plan_never_handed_in_months_after_its_due_date_is_not_counted_late_in_the_credit_rating(world):
    """Rule: the annual credit rating's 合同履行 component (15 points) rates "plans and reports on time"
    (DOMAIN §6; seed 000 "杜绝劣币驱逐良币"). A deliverable whose contract due date has passed when the rating is
    computed, and that was never handed in, is late — later than any plan handed in a day after its date.
    The firm has two 2025 engagements of 巴州: one completed, its plan handed in on time (20 March for 1 April);
    the other's plan, due 1 April 2025, is still not handed in when the rating is computed on 15 January 2026 —
    nine months late. The rating reads "按期提交 1/1" with the full 15 points: ``credit.services._components``
    skips a due date with no submission, so a firm that submits a day late loses points (6/15 for 0/1) and a firm
    that never submits loses none. Hurt: punctual firms (outranked), bureaus relying on the grade for next year's
    eligibility. Source: DOMAIN §6 (Contract performance: plans and reports on time), seed 000."""
    from evalhub.credit import services as C

    done = factories.contracted(world)
    done.contract.plan_due = date(2025, 4, 1)
    factories.submit_plan(done).submitted_at = datetime(2025, 3, 20, 2, 0)
    done.state = EngagementState.ACCEPTED
    late = factories.contracted(world, unit="巴州民政局")
    late.contract.plan_due = date(2025, 4, 1)
    db.session.flush()
    assert late.state == EngagementState.CONTRACTED  # its plan was never handed in
    C.ensure_national_calendar()
    [rating] = [r for r in C.compute(world.bz, 2025, world.bz_admin, today=date(2026, 1, 15)) if r.firm_id == world.firm.id]
    performance = next(c for c in rating.components if c["code"] == "performance")
    assert (performance["detail"][0], performance["points"]) != ("按期提交 1/1", "15.00"), performance


def test_overdue_rectification_list_and_escalation_job_disagree_through_a_holiday(world):
    """Rule (docs/rules.md, results): "The 逾期未整改 list and the dashboard count from the same day as the job
    (``late_from``), so a row is listed overdue exactly when the job counts it late"; the unit's delay is counted
    in working days (results.interview_after_days / notice_after_days).
    A finding due Wednesday 30 September 2026 is, on Monday 5 October (国庆, 国务院办公厅关于2026年部分节假日安排的
    通知), 0 working days late: the escalation job counts nothing and reminds nobody — yet the bureau's 逾期未整改
    list and dashboard already list the unit as overdue, and keep doing so through the whole holiday week.
    Hurt: the evaluated unit (shown overdue to its bureau and the bureaus above while it is not late by the
    working-day rule). Source: docs/rules.md (Overdue rectification), seed 004."""
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    factories.unit_user(world, "巴州统计局", "tjj")
    [finding] = factories.confirmed_findings(world, e, n=1)
    finding.deadline = date(2026, 9, 30)
    db.session.flush()
    holiday = date(2026, 10, 5)
    listed = [f.id for f in db.session.execute(results.overdue_findings_query(world.bz_staff, holiday)).scalars()]
    counted = [finding.id] if results.overdue_days(finding, holiday) > 0 else []
    assert listed == counted, f"listed overdue {listed}, counted late by the job {counted} (overdue_days 0)"
