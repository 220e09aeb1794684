"""Audit of the results loop (结果应用 / 闭环): rectification of confirmed findings (整改) with deadlines,
the bureau's verification, the overdue escalation (催办 → 约谈 → 通报), who is told of each step, and what the
results-application list's Excel says next to its page.

Each test here FAILS on the current code because of the defect its docstring names.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.calendar import ensure_national_calendar
from evalhub.core.models import Notification
from evalhub.core.timeutil import simulated_clock
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState
from evalhub.results import services as S
from evalhub.results.models import EscalationLevel, FindingStatus
from evalhub.review.models import EvaluationResult, Grade
from tests import factories


def _inbox(user) -> list[Notification]:
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)
                              .order_by(Notification.id)).scalars().all()


def _at(day: date, hour: int = 3) -> datetime:
    """A naive UTC instant on ``day`` (Beijing's morning: 03:00 UTC is 11:00 in Beijing)."""
    return datetime(day.year, day.month, day.day, hour, 0)


def _finding_of_a_unit(world, deadline: date):
    """An accepted engagement of 巴州统计局 with one confirmed problem due ``deadline``, and the unit's account."""
    ensure_national_calendar()
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED  # fixture shortcut, as tests/test_results_services.py
    unit = factories.unit_user(world, "巴州统计局", "tjj.audit")
    f = factories.confirmed_findings(world, e, n=1)[0]
    f.deadline = deadline
    db.session.flush()
    return e, unit, f


def _hand_in(f, unit, on: date) -> None:
    with simulated_clock(_at(on)):
        S.submit_plan(f, unit, "由财务科负责，按期完成剩余资金支付。")
        S.submit_evidence(f, unit, "已完成支付", [files.Upload("支付凭证.txt", "支付凭证 记账凭证第 18 号".encode())])
    assert f.status == FindingStatus.SUBMITTED


# --- 1. the bureau's verification time is charged to the unit --------------------------------------------

def test_a_returned_finding_is_not_escalated_for_the_weeks_it_waited_on_the_bureau(world):
    """Rule: rules.md 结果应用 "Overdue rectification: reminder, then 约谈 after N working days, then 通报 after M
    (a row handed in and awaiting the bureau's verification is not the unit's delay: neither escalated nor listed
    as overdue)" — `results.interview_after_days` 10, `results.notice_after_days` 20; seed 000 ("通报批评、约谈"),
    seed 004 ("明确整改要求和时限").

    Defect: `results/services.py` `escalate_overdue` counts the overdue working days from the finding's original
    deadline to today, whatever happened in between. The unit hands its evidence in on 30 May 2025, before its
    2 June deadline; the bureau takes until 7 July to verify and returns it (部分整改) without a new deadline. On
    8 July — one day after the unit got it back — the job counts 26 working days "overdue", all of them the
    bureau's verification time, and records 约谈 and 通报 against the unit at once."""
    e, unit, f = _finding_of_a_unit(world, deadline=date(2025, 6, 2))
    _hand_in(f, unit, date(2025, 5, 30))  # before the deadline
    assert S.escalate_overdue(today=date(2025, 6, 20)) == []  # awaiting verification: not the unit's delay
    with simulated_clock(_at(date(2025, 7, 7))):
        S.verify(f, world.bz_staff, "部分整改", "尚有一笔款项未支付，请继续整改")
    assert f.status == FindingStatus.RETURNED

    created = S.escalate_overdue(today=date(2025, 7, 8))
    charged = [(x.level.label, x.overdue_days) for x in created
               if x.level in (EscalationLevel.INTERVIEW, EscalationLevel.NOTICE)]
    assert not charged, (
        "handed in before its deadline and returned yesterday, the unit is charged with the bureau's "
        f"verification time: {charged}")


# --- 2. a new deadline after a return never gets its own 催办 ---------------------------------------------

def test_a_new_deadline_set_on_return_is_reminded_when_it_passes_too(world):
    """Rule: rules.md 结果应用 "Overdue rectification: reminder, then 约谈 …, then 通报" and the verify form's
    "新的整改期限 — 退回继续整改时可重新确定" (`results/services.py` `verify`: 部分整改 / 未整改 send the row back
    "optionally with a new deadline"); seed 004 ("建立财政部门向预算部门……督促整改的工作机制，明确整改要求和时限，
    督促整改落到实处"). A reminder is once per deadline, not once per finding's life (the same was held for the
    firm's reminders over two returned rounds: tests/test_audit_jobs_cli.py).

    Defect: `escalate_overdue` records each level once per finding (unique (finding, level)) and de-duplicates
    the unit's 催办 on `rect-due-{finding}`. The unit misses its first deadline (催办 sent), hands in, the bureau
    returns it with a new deadline of 31 July; when 31 July passes the job finds a REMINDER already recorded and
    sends nothing — the unit is never told it is late on the deadline the bureau just set (1 催办 over the two
    deadlines, expected 2)."""
    e, unit, f = _finding_of_a_unit(world, deadline=date(2025, 6, 2))
    S.escalate_overdue(today=date(2025, 6, 3))
    title = f"{e.reference} 整改事项已逾期"
    assert [n.title for n in _inbox(unit)].count(title) == 1
    _hand_in(f, unit, date(2025, 6, 4))
    with simulated_clock(_at(date(2025, 6, 20))):
        S.verify(f, world.bz_staff, "部分整改", "佐证不全，请补充", date(2025, 7, 31))
    assert f.status == FindingStatus.RETURNED and f.deadline == date(2025, 7, 31)

    assert S.escalate_overdue(today=date(2025, 7, 31)) == []  # due today: not late yet
    S.escalate_overdue(today=date(2025, 8, 1))
    reminders = [n for n in _inbox(unit) if n.title == title]
    assert len(reminders) == 2, (
        f"the new deadline 2025-07-31 passed and the unit was not reminded: 催办 sent {len(reminders)} time(s) "
        f"over two deadlines: {[n.body for n in reminders]}")


# --- 3. the unit is not told its rectification was sent back ----------------------------------------------

def test_the_unit_is_told_when_the_bureau_sends_its_rectification_back(world):
    """Rule: seed 001 (自治区) "财政部门负责……及时将预算绩效管理结果反馈至部门单位，监督指导部门单位落实整改，对
    落实整改不力的进行通报、约谈"; seed 004 (轮台县) "建立财政部门向预算部门……督促整改的工作机制，明确整改要求和
    时限". Every other step that hands work to the unit tells it (findings_confirmed, rectification_due,
    fact_confirmation_requested, materials_requested, self_evaluation_returned).

    Defect: `results/services.py` `verify` records 部分整改 / 未整改 with the bureau's note and a new deadline and
    emits nothing (core/notifications.py has no event for it). The unit whose evidence was judged insufficient
    learns neither that it must continue nor by when; the first it hears is the 催办 or 约谈 once the new deadline
    has passed."""
    e, unit, f = _finding_of_a_unit(world, deadline=date(2025, 6, 30))
    _hand_in(f, unit, date(2025, 6, 10))
    before = {n.id for n in _inbox(unit)}
    with simulated_clock(_at(date(2025, 6, 20))):
        S.verify(f, world.bz_staff, "未整改", "支付凭证与问题无关，请按计划完成支付", date(2025, 8, 29))
    assert f.status == FindingStatus.RETURNED
    told = [n for n in _inbox(unit) if n.id not in before]
    assert told, "the unit is not told that its rectification was returned (需继续整改) nor of the new deadline"
    assert any("2025-08-29" in (n.title + n.body) for n in told), [(n.title, n.body) for n in told]


# --- 4. the bureau is not told that evidence awaits its verification ---------------------------------------

def test_the_bureau_is_told_when_a_unit_hands_in_rectification_for_verification(world):
    """Rule: seed 001 (自治区) "财政部门负责强化预算绩效管理结果应用的监督……监督指导部门单位落实整改"; rules.md
    结果应用: a row handed in waits on the bureau's verification (and so drops off the 逾期未整改 page and the
    escalation). As with the unit's self-evaluation (self_evaluation_received) and the firm's submissions
    (submission_received), what lands for the bureau's action is announced to it.

    Defect: `results/services.py` `submit_evidence` moves the row to 待核验 and emits nothing, and no bureau
    page lists rows awaiting verification (the overdue page and the dashboard leave SUBMITTED out on purpose):
    the bureau learns of the unit's evidence only by opening that engagement's findings page, so the row can wait
    indefinitely with nobody told."""
    e, unit, f = _finding_of_a_unit(world, deadline=date(2025, 6, 30))
    before = {n.id for n in _inbox(world.bz_staff)}
    _hand_in(f, unit, date(2025, 6, 10))
    told = [n for n in _inbox(world.bz_staff) if n.id not in before]
    assert told, "the bureau is not told that the unit handed in its rectification for verification (待核验)"
    assert any(e.reference in n.title for n in told), [n.title for n in told]


# --- 5. the Excel shows a reduction the page no longer counts ----------------------------------------------

def test_the_list_export_does_not_show_a_reduction_for_a_row_reopened_by_a_changed_result(world):
    """Rule: rules.md 结果应用 "A row decided before its result changed (a cap recorded since, 一票否决) is
    reopened when the list is built again" (seeds 000, 001); the list's Excel is "the list in the columns a budget
    office works with" (`results/services.py` `export_rows`) and must say what the page says.

    Defect: `build_list` reopens the row (confirmed_at cleared) but leaves its old `measures`, `cut_percent` and
    `cut_amount`; the page then counts no reduction (figures: 调减预算 0.00 万元) while `export_rows` still writes
    the old 调减比例 10 and 调减金额 30 万元 beside 应用方式 "（未确认）" (and `/api/v1/results/application` the old
    measures and cut_amount). A 中 item confirmed with a 10% cut, whose cap is lifted so that it is now 良, is sent
    to the budget office in the Excel with a 30 万元 reduction that nobody decided for its present result."""
    e = factories.accepted_with_result(world, score="88", grade=Grade.FAIR, amount_wan="300")  # 良 band, capped to 中
    entry = next(x for x in S.build_list(world.bz, 2025, world.bz_staff) if x.engagement_id == e.id)
    assert entry.proposed == ["reduce"]
    S.confirm_entry(entry, world.bz_staff, measures=["reduce"], cut_percent=entry.proposed_percent)
    assert entry.cut_amount == Decimal("300000.00")
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one()
    result.grade = Grade.GOOD  # the cap lifted (recorded in error): the result is 良 now
    db.session.flush()
    S.build_list(world.bz, 2025, world.bz_staff)  # the row is reopened
    db.session.commit()
    assert S.figures(world.bz, 2025)["reduced"] == Decimal("0.00")  # what the page and the 人大 summary say

    rows = S.export_rows(S.entries(world.bz, 2025))
    row = next(r for r in rows if r["项目名称"] == e.name)
    assert row["应用方式"] == "（未确认）"
    exported = sum(r["调减金额（万元）"] or 0 for r in rows)
    assert not row["调减比例（%）"] and not row["调减金额（万元）"], (
        f"the Excel shows 调减比例 {row['调减比例（%）']}%, 调减金额 {row['调减金额（万元）']} 万元 for a row that is "
        f"（未确认） and is 良 now; the page's 调减预算 is 0.00 万元 (Excel total {exported} 万元)")


# --- 6. the reduction is rounded half-to-even, not 四舍五入 -------------------------------------------------

def test_a_percentage_reduction_is_rounded_to_the_fen_half_up_like_every_other_amount(world):
    """Rule: rules.md 结果应用 "Budget reduction for 中/差 or a score under the line (percent)" (seed 000 "按比例扣减
    部门单位项目支出预算安排"; `results.cut_percent` 10) — an amount in 元 to the fen, rounded as the bureaus round
    money (四舍五入) and as evalhub rounds every other amount (`procurement/services.py` `wan_to_yuan`,
    `review/services.py` and `credit/services.py`: `ROUND_HALF_UP`).

    Defect: `results/services.py` `confirm_entry` computes `(amount * percent / 100).quantize(Decimal("0.01"))`
    with the default decimal context, i.e. ROUND_HALF_EVEN (banker's rounding): a 中 item of 123.456505 万元
    (1,234,565.05 元) cut by 10% is 123,456.505 元, recorded, filed (备案) and sent to the 人大 as 123,456.50 元
    where 四舍五入 gives 123,456.51 元 (the same `quantize` without a rounding mode gives the 整改率 in `figures_of`)."""
    e = factories.accepted_with_result(world, score="70", grade=Grade.FAIR, amount_wan="123.456505")
    assert e.amount == Decimal("1234565.05")
    entry = next(x for x in S.build_list(world.bz, 2025, world.bz_staff) if x.engagement_id == e.id)
    S.confirm_entry(entry, world.bz_staff, measures=["reduce"], cut_percent=entry.proposed_percent)
    assert entry.cut_percent == Decimal("10")
    assert entry.cut_amount == Decimal("123456.51"), (
        f"10% of 1,234,565.05 元 is 123,456.505 元: 四舍五入 to the fen is 123,456.51, recorded {entry.cut_amount}")
