"""A bureau's calendar correction moves the stored deadlines still open (core/calendar.py ``correct``).

Deadlines are counted on the working-day calendar once and stored. When a bureau enters or corrects a holiday or a
make-up day afterwards (the State Council's next year in November, a county's local holiday entered late), every
stored deadline still open whose period the day falls in is counted again from its stored start with the number
of days it was counted with, in the bureau and in every bureau below that inherits the day:

- a period granted to someone else (a supplier's challenge period, a firm's objection period, a unit's
  fact-confirmation period) only lengthens — never shortened once announced (reliance; the law sets a minimum);
- a duty of the bureau (answering a challenge or an objection, announcing or signing a contract) follows the
  corrected calendar both ways;
- a period already over, or whose awaited act happened, never changes; one audit event per correction lists what
  moved; the bureau and the parties are told through the notification matrix; the page says how many moved."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.calendar import add_days, add_working_days, is_workday
from evalhub.core.enums import Role
from evalhub.core.models import AuditEvent, Notification
from evalhub.core.timeutil import beijing_date, beijing_today, simulated_clock, utcnow
from evalhub.credit import services as C
from evalhub.credit.models import CreditRating, RatingStatus
from evalhub.extensions import db
from evalhub.procurement import services as P
from tests import factories
from tests.statements import recorded


def _next_workday(bureau, after: date) -> date:
    day = after + timedelta(days=1)
    while not is_workday(bureau, day):
        day += timedelta(days=1)
    return day


def _inbox(user) -> list[Notification]:
    return list(db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)
                                   .order_by(Notification.id)).scalars())


def _last_calendar_event() -> AuditEvent:
    return db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "calendar.changed")
                              .order_by(AuditEvent.id.desc()).limit(1)).scalar_one()


def _at(day: date) -> datetime:
    """10:00 Beijing on ``day`` (naive UTC), for ``simulated_clock``."""
    return datetime(day.year, day.month, day.day, 2, 0)


def _post_result(p, staff, day: date | None = None):
    """Record the result notice's posting on the designated media (procurement/media.py) on ``day`` (today)."""
    from evalhub.procurement import media

    day = day or beijing_today()
    return media.record_posting(p.engagement, "result", p.notice.id, media.PostingInput(
        medium="ccgp", url=f"http://www.ccgp.gov.cn/cggg/dfgg/zbgg/t{day:%Y%m%d}_{p.notice.id}.htm", posted_on=day),
        staff)


# --- procurement: the challenge period (granted) and the challenge's answer (the bureau's duty) ----------------

def test_a_late_holiday_lengthens_the_challenge_period_and_moves_the_answer_due_both_ways(world):
    """政府采购法 第五十二条 / 实施条例 第五十三条: the suppliers' challenge period counts working days; 财政部令第94号
    第十三条: the bureau answers within 7 working days. A holiday entered after both were stored moves both; taken
    back, the bureau's answer returns to its day, the suppliers' period stays as announced."""
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    challenger = bidders["乙"][1]
    challenge = P.file_challenge(p, challenger, "技术分计算有误，请求重新评审。", EVIDENCE)
    db.session.commit()
    notice = p.notice
    until, answer_due = notice.challenge_until, challenge.answer_due
    day = _next_workday(world.bz, beijing_today())  # inside both periods

    done = C.set_calendar_day(world.bz, day, False, "地方节假日", world.bz_admin)
    db.session.commit()
    start = beijing_date(notice.published_at)
    assert notice.challenge_until == add_working_days(world.bz, start, notice.challenge_workdays) > until
    assert challenge.answer_due == add_working_days(world.bz, beijing_date(challenge.filed_at), 7) > answer_due
    # the notice's posting on the designated media (owed from the same day, the bureau's duty) moves too
    assert {m.kind for m in done.moved} == {"procurement.challenge_until", "procurement.challenge_answer_due",
                                            "procurement.result_posting_due"}
    event = _last_calendar_event()  # one event for the correction, listing what moved
    assert {(m["kind"], m["id"]) for m in event.payload["moved"]} == {
        ("procurement.challenge_until", notice.id), ("procurement.challenge_answer_due", challenge.id),
        ("procurement.result_posting_due", notice.id)}
    assert any("质疑答复期限" in n.body and f"{challenge.answer_due:%Y-%m-%d}" in n.body for n in _inbox(challenger))
    assert any("质疑期截止日" in n.body for n in _inbox(bidders["丙"][1]))  # every supplier that may challenge
    assert any(n.title.startswith("工作日历调整") and "质疑答复期限" in n.body for n in _inbox(world.bz_staff))

    lengthened = notice.challenge_until
    done = C.set_calendar_day(world.bz, day, True, "更正：照常上班", world.bz_admin)
    db.session.commit()
    assert challenge.answer_due == answer_due  # the bureau's duty follows the calendar back
    assert notice.challenge_until == lengthened  # the period announced to the suppliers is never shortened
    assert [m.kind for m in done.moved] == ["procurement.challenge_answer_due", "procurement.result_posting_due"]


def test_an_answered_challenge_and_a_revoked_or_ended_period_never_change(world):
    """What has happened, or is over, is history: an answered challenge's due date stays as it was."""
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "dismissed", "经核查，技术分计算无误，质疑不成立。")
    p.notice.challenge_until = beijing_today() - timedelta(days=1)  # the period over
    _post_result(p, world.bz_staff)  # and the notice posted on the designated media: owed no more
    db.session.commit()
    answer_due, until = challenge.answer_due, p.notice.challenge_until
    done = C.set_calendar_day(world.bz, _next_workday(world.bz, beijing_today()), False, "地方节假日", world.bz_admin)
    db.session.commit()
    assert (challenge.answer_due, p.notice.challenge_until, done.moved) == (answer_due, until, [])


# --- procurement: the contract's announcement and signing (the bureau's duties) ------------------------------

def test_the_contract_announcement_and_signing_follow_the_corrected_calendar_both_ways(world):
    """实施条例 第五十条: announce within 2 working days of the signing; 政府采购法 第四十六条: sign within 30 days of
    the notice, a last day on a holiday moved to the next working day. Both are the bureau's own duties."""
    from tests.test_contract_notice import _signed

    today = date(2025, 11, 3)  # a Monday; no national holiday near
    with simulated_clock(_at(today)):
        signed = _signed(world, today)
        assert signed.contract.notice_due_on == date(2025, 11, 5)
        waiting = factories.engagement(world)
        factories.single_source(world, waiting)  # its notice out today: the contract due in 30 days
        db.session.commit()
        assert waiting.due_on == date(2025, 12, 3) == add_days(world.bz, today, 30)

        done = C.set_calendar_day(world.bz, date(2025, 11, 4), False, "地方节假日", world.bz_admin)
        assert signed.contract.notice_due_on == date(2025, 11, 6)
        # the other's challenge period and its posting on the designated media (published today) run over the day
        # too; its 30 days do not reach it
        assert sorted(m.kind for m in done.moved) == ["procurement.challenge_until", "procurement.contract_notice_due",
                                                      "procurement.result_posting_due"]
        C.set_calendar_day(world.bz, date(2025, 11, 4), True, "更正：照常上班", world.bz_admin)
        assert signed.contract.notice_due_on == date(2025, 11, 5)  # back: the law fixes it

        C.set_calendar_day(world.bz, date(2025, 12, 3), False, "地方节假日", world.bz_admin)
        assert waiting.due_on == date(2025, 12, 4)
        C.set_calendar_day(world.bz, date(2025, 12, 3), True, "更正：照常上班", world.bz_admin)
        assert waiting.due_on == date(2025, 12, 3)
        db.session.commit()


def _reads(seen: list[str]) -> list[str]:
    """The statements but the inbox rows written (one per person told: more people, more rows)."""
    return [s for s in seen if not s.startswith("INSERT INTO notification")]


def test_a_correction_reads_the_suppliers_to_tell_with_the_rows_however_many_periods_it_moves(world):
    """Who is told of a moved challenge period — every supplier that may challenge (``participant_ids``: bidders, the
    draw's candidates, the framework's members) and the winner — is read with the notices, a statement per relation:
    not the notice's bids, draw, agreement and notices read again for every period moved."""
    from evalhub.core.settings import set_setting

    set_setting(world.bz, "firm.max_key_evaluations", 20, world.bz_admin)  # one firm for them all
    today = date(2025, 11, 3)  # a Monday; no national holiday near

    def statements(n: int) -> list[str]:
        with simulated_clock(_at(today)):
            for _ in range(n):
                factories.single_source(world, factories.engagement(world))  # its notice out today
            db.session.commit()
            with recorded() as seen:
                done = C.set_calendar_day(world.bz, date(2025, 11, 4), False, "地方节假日", world.bz_admin)
                db.session.flush()
            periods = [m for m in done.moved if m.kind == "procurement.challenge_until"]
            assert len(periods) >= n  # (with those of the call before, committed)
            assert all(m.firm_ids == (world.firm.id,) for m in periods)  # single source: the winner alone
            db.session.rollback()
            return seen

    one, many = statements(1), statements(3)
    assert len(_reads(one)) == len(_reads(many)), (len(_reads(one)), len(_reads(many)))


# --- credit: the objection period down the tree; closed and stored-before rows ------------------------------

def _rating(world, bureau, *, year=2025, days=10, start=None, kept=True, status=RatingStatus.PUBLISHED):
    start = start or beijing_today()
    rating = CreditRating(bureau_id=bureau.id, firm_id=world.firm.id, year=year, status=status,
                          published_at=utcnow() - (beijing_today() - start), computed_at=utcnow(),
                          objection_deadline=add_working_days(bureau, start, days),
                          objection_from=start if kept else None, objection_workdays=days if kept else None)
    db.session.add(rating)
    db.session.flush()
    return rating


def test_a_prefecture_holiday_moves_the_objection_periods_of_the_counties_that_inherit_it(world):
    """A prefecture's correction applies to its counties unless they have their own row for the day: the objection
    periods (working days) of the prefecture and of a county without its own row lengthen; a county that keeps the
    day as its own, another prefecture, a period already over, a final rating do not change. A rating published
    before the count was kept derives it from its dates and keeps it."""
    day = _next_workday(world.bz, beijing_today())
    C.set_calendar_day(world.lt, day, True, "本县照常上班", world.lt_admin)  # its own row: a working day already
    bz, krl, lt, kz = (_rating(world, b) for b in (world.bz, world.krl, world.lt, world.kz))
    legacy = _rating(world, world.krl, year=2024, kept=False)
    over = _rating(world, world.bz, year=2023, start=beijing_today() - timedelta(days=30))
    final = _rating(world, world.bz, year=2022, status=RatingStatus.FINAL)
    db.session.commit()
    before = {r.id: r.objection_deadline for r in (bz, krl, lt, kz, legacy, over, final)}

    done = C.set_calendar_day(world.bz, day, False, "地方节假日", world.bz_admin)
    db.session.commit()
    for r in (bz, krl, legacy):
        assert r.objection_deadline == add_working_days(r.bureau, beijing_today(), 10) > before[r.id]
    for r in (lt, kz, over, final):
        assert r.objection_deadline == before[r.id]
    assert (legacy.objection_from, legacy.objection_workdays) == (beijing_today(), 10)
    assert sorted(m.row_id for m in done.moved) == sorted([bz.id, krl.id, legacy.id])
    assert sorted(_last_calendar_event().payload["bureaus"]) == sorted([world.bz.id, world.krl.id])
    told = [n for n in _inbox(world.firm_user) if n.title.startswith("工作日历调整")]
    assert len(told) == 1 and told[0].body.count("异议期截止日") == 3  # one message for the firm, each line its own

    C.set_calendar_day(world.bz, day, True, "更正：照常上班", world.bz_admin)
    db.session.commit()
    assert bz.objection_deadline > before[bz.id]  # granted to the firm: not shortened once announced


def test_a_correction_reads_the_people_to_tell_at_once_however_many_firms_and_bureaus_it_tells(world):
    """Objection periods of several firms in several bureaus of the tree moved by one correction: each firm and each
    bureau gets its own message, and their accounts are read for them all at once (``notifications.one_reading``),
    not a read per firm or bureau told."""
    bureaus = [world.bz, world.krl, world.lt]
    firms = [world.firm] + [factories.firm(world.bz, name=f"巴州第{i}评价咨询有限公司") for i in range(3)]
    users = {f.id: factories.user(f"firm.tell{i}", Role.FIRM_USER, firm_id=f.id) for i, f in enumerate(firms)}
    db.session.commit()
    day = _next_workday(world.bz, beijing_today())

    def statements(count: int, expected: list[list[int]]) -> list[str]:
        for i in range(count):
            rating = _rating(world, bureaus[i % len(bureaus)], year=2020 + i)
            rating.firm_id = firms[i].id
        db.session.commit()
        with recorded() as seen:
            done = C.set_calendar_day(world.bz, day, False, "地方节假日", world.bz_admin)
            db.session.flush()
        assert len(done.moved) == count
        for i in range(count):
            assert [n.title for n in _inbox(users[firms[i].id])] == ["工作日历调整：1 项期限已重新计算"]
        lines = [[n.body.count("异议期截止日") for n in _inbox(staff)]
                 for staff in (world.bz_staff, world.krl_staff, world.lt_staff)]
        assert lines == expected, lines  # one message a bureau, a line for each of its periods
        db.session.rollback()
        db.session.execute(sa.delete(CreditRating))
        db.session.commit()
        return _reads(seen)

    one, four = statements(1, [[1], [], []]), statements(4, [[2], [1], [1]])
    assert len(one) == len(four), (len(one), len(four))


def test_a_correction_reads_the_calendar_a_fixed_number_of_times_however_many_deadlines(world, app):
    """Thousands of open items in a prefecture: the calendar is read once per kind, not once per deadline."""
    def reads(n: int) -> int:
        for year in range(2000, 2000 + n):
            _rating(world, world.krl, year=year)
        db.session.commit()
        with recorded() as seen:
            C.set_calendar_day(world.bz, _next_workday(world.bz, beijing_today()), False, "地方节假日", world.bz_admin)
            db.session.flush()
        db.session.rollback()
        db.session.execute(sa.delete(CreditRating))
        db.session.commit()
        return sum("calendar_day" in s.lower() for s in seen)

    assert reads(1) == reads(20)


# --- results: the unit's fact-confirmation period (granted) ---------------------------------------------------

def test_a_late_holiday_lengthens_the_units_fact_confirmation_period_and_tells_the_unit(world):
    from evalhub.results import services as S

    e = factories.in_fieldwork(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    row = S.send_for_confirmation(e, world.firm_user, files.Upload("报告初稿.docx", factories.docx_bytes("评价报告初稿")))
    db.session.commit()
    due = row.due_on
    day = _next_workday(world.bz, beijing_today())
    C.set_calendar_day(world.bz, day, False, "地方节假日", world.bz_admin)
    db.session.commit()
    assert row.due_on == add_working_days(world.bz, beijing_today(), row.due_workdays) > due
    assert any("征求意见答复期限" in n.body and f"{row.due_on:%Y-%m-%d}" in n.body for n in _inbox(unit))
    C.set_calendar_day(world.bz, day, True, "更正：照常上班", world.bz_admin)
    db.session.commit()
    assert row.due_on > due  # granted to the unit: not shortened


def _findings(world, today: date, *, n: int = 1, chosen: date | None = None, unit=None):
    """An accepted engagement with ``n`` problems confirmed on ``today`` with the bureau's default deadline (90 days:
    results.rectification_days), and one more with the date ``chosen`` when given; and its unit's account."""
    from evalhub.procurement.models import EngagementState
    from evalhub.results import services as S

    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    unit = unit or factories.unit_user(world, "巴州统计局", "tjj")
    firm_user = factories._firm_user_of(e)
    for i in range(n):
        S.add_finding(e, firm_user, S.FindingInput(kind="问题", text=f"资金支付进度滞后，问题{i + 1}", category="过程"))
    if chosen:
        S.add_finding(e, firm_user, S.FindingInput(kind="问题", text="绩效目标不明确", category="决策", deadline=chosen))
    rows = S.confirm_findings(e, world.bz_staff, today=today)
    db.session.commit()
    return rows, unit


def test_a_holiday_on_its_last_day_rolls_a_default_rectification_deadline_on_and_never_a_chosen_one(world):
    """A finding's default deadline is 90 calendar days from the confirmation, a last day on a holiday moved to the
    next working day (民法典 第二百零三条; docs/rules.md results.rectification_days). A holiday entered afterwards on
    that last day rolls it on (granted to the unit: it only lengthens, and is not taken back); a date the bureau
    chose, and a closed row, never move; the unit is told."""
    from evalhub.results import services as S
    from evalhub.results.models import FindingStatus

    today = date(2025, 11, 4)  # + 90 days: Monday 2 February 2026, a working day
    with simulated_clock(_at(today)):
        [default, closed, chosen], unit = _findings(world, today, n=2, chosen=date(2026, 2, 2))
        assert default.deadline == closed.deadline == chosen.deadline == date(2026, 2, 2)
        assert (default.deadline_from, default.deadline_days, chosen.deadline_days) == (today, 90, None)
        closed.status = FindingStatus.CLOSED
        db.session.commit()

        done = C.set_calendar_day(world.bz, date(2026, 1, 20), False, "地方节假日", world.bz_admin)
        assert done.moved == [] and default.deadline == date(2026, 2, 2)  # calendar days: a day inside moves nothing
        done = C.set_calendar_day(world.bz, date(2026, 2, 2), False, "地方节假日", world.bz_admin)
        db.session.commit()
        assert (default.deadline, chosen.deadline, closed.deadline) == (date(2026, 2, 3), date(2026, 2, 2),
                                                                        date(2026, 2, 2))
        assert [(m.kind, m.row_id) for m in done.moved] == [("results.rectification_deadline", default.id)]
        assert any("整改期限由 2026-02-02 调整为 2026-02-03" in n.body for n in _inbox(unit))
        # late only after its new day (the chosen date, kept, is late by then)
        assert [x.finding_id for x in S.escalate_overdue(today=date(2026, 2, 3))] == [chosen.id]

        C.set_calendar_day(world.bz, date(2026, 2, 2), True, "更正：照常上班", world.bz_admin)
        db.session.commit()
        assert default.deadline == date(2026, 2, 3)  # granted to the unit: not shortened once announced


def test_a_returned_finding_keeps_its_default_deadline_counted_and_a_new_date_set_at_the_return_is_chosen(world):
    """Returned without a new date, the row keeps its default deadline, still rolled by a correction (as while it
    waits on the bureau's verification); returned with a date the bureau sets, that date never moves."""
    from evalhub.results import services as S

    today = date(2025, 11, 4)
    with simulated_clock(_at(today)):
        [kept, renewed], unit = _findings(world, today, n=2)
        for row in (kept, renewed):
            S.submit_plan(row, unit, "按期拨付资金。")
            S.submit_evidence(row, unit, "已拨付。", [files.Upload("拨付凭证.docx", factories.docx_bytes("拨付凭证"))])
        S.verify(kept, world.bz_staff, "partial", "仍有部分资金未拨付。")
        S.verify(renewed, world.bz_staff, "partial", "仍有部分资金未拨付。", new_deadline=date(2026, 2, 2))
        db.session.commit()
        assert (kept.deadline_days, kept.late_from, renewed.deadline_days) == (90, None, None)

        done = C.set_calendar_day(world.bz, date(2026, 2, 2), False, "地方节假日", world.bz_admin)
        db.session.commit()
        assert (kept.deadline, renewed.deadline) == (date(2026, 2, 3), date(2026, 2, 2))
        assert [m.row_id for m in done.moved] == [kept.id]


def test_a_correction_reads_the_same_statements_however_many_findings_it_moves(world):
    """Many open findings of a unit: the statements a correction runs do not grow with them (the calendar read
    once, the unit's accounts once, one message for the unit)."""
    today = date(2025, 11, 4)
    unit = factories.unit_user(world, "巴州统计局", "tjj")

    def statements(n: int) -> list[str]:
        with simulated_clock(_at(today)):
            _findings(world, today, n=n, unit=unit)
            with recorded() as seen:
                done = C.set_calendar_day(world.bz, date(2026, 2, 2), False, "地方节假日", world.bz_admin)
                db.session.flush()
            assert len(done.moved) >= n  # (with those of the call before, committed)
            db.session.rollback()
            return seen

    one, many = statements(1), statements(20)
    assert len(one) == len(many)
    assert sum("calendar_day" in s.lower() for s in one) == sum("calendar_day" in s.lower() for s in many)


def test_a_correction_reads_the_units_to_tell_at_once_however_many_units_it_moves_deadlines_of(world):
    """Findings of an engagement, each owed by a unit of its own (and its 主管部门 above it): the units' accounts — who
    is told — are read for all the rows moved at once (``results.services.units_users``), not a read per unit."""
    from evalhub.core.models import BudgetUnit
    from evalhub.procurement.models import EngagementState
    from evalhub.results import services as S

    today = date(2025, 11, 4)  # + 90 days: Monday 2 February 2026
    department = world.units["巴州统计局"]
    for i in range(4):
        unit = BudgetUnit(bureau_id=world.bz.id, name=f"巴州统计局下属单位{i}", parent_id=department.id)
        db.session.add(unit)
        db.session.flush()
        world.units[unit.name] = unit
        factories.unit_user(world, unit.name, f"tjj.sub{i}")
    factories.unit_user(world, "巴州统计局", "tjj")
    db.session.commit()
    n = iter(range(100))

    def statements(units: list[str]) -> list[str]:
        with simulated_clock(_at(today)):
            e = factories.contracted(world)
            e.state = EngagementState.ACCEPTED
            firm_user = factories._firm_user_of(e)
            for name in units:
                S.add_finding(e, firm_user, S.FindingInput(kind="问题", text=f"资金支付进度滞后{next(n)}", category="过程",
                                                           responsible_unit_id=world.units[name].id))
            S.confirm_findings(e, world.bz_staff, today=today)
            db.session.commit()
            with recorded() as seen:
                done = C.set_calendar_day(world.bz, date(2026, 2, 2), False, "地方节假日", world.bz_admin)
                db.session.flush()
            told = {tuple(sorted(u.username for u in m.users)) for m in done.moved}
            assert len(done.moved) >= len(units) and len(told) >= len(units), told  # each unit and its department
            assert all("tjj" in names for names in told)
            db.session.rollback()
            return seen

    one = statements(["巴州统计局下属单位0"])
    many = statements(["巴州统计局下属单位1", "巴州统计局下属单位2", "巴州统计局下属单位3"])
    assert len(_reads(one)) == len(_reads(many)), (len(_reads(one)), len(_reads(many)))


# --- the page ------------------------------------------------------------------------------------------------

def test_the_calendar_page_says_how_many_open_deadlines_moved(world, client, login):
    _rating(world, world.bz)
    db.session.commit()
    login(world.bz_admin)
    day = _next_workday(world.bz, beijing_today())
    page = client.post("/credit/calendar", data={"day": day.isoformat(), "kind": "holiday", "note": "地方节假日"},
                       follow_redirects=True).get_data(as_text=True)
    assert "1 项未届满的期限已按调整后的日历重新计算" in page
    too_long = client.post("/credit/calendar", data={"day": day.isoformat(), "kind": "holiday", "note": "节" * 101})
    assert 400 <= too_long.status_code < 500
