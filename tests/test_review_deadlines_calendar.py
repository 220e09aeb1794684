"""A bureau's calendar correction moves the review stage's stored deadlines still open (review/deadlines.py).

An expert's answer to an invitation (``review.respond_days``), the panel's review deadline (``review.review_days``),
the firm's resubmission after a return (``review.resubmit_days``) and the unit's resubmission of a returned
self-evaluation (``review.self_evaluation_resubmit_days``) count calendar days, their last day rolled to a working
day (民法典 第二百零三条). Each is granted to the party who must act: a holiday entered on its last day carries it to
the next working day; nothing shortens it. What was answered, submitted or resubmitted, and a deadline already
passed, never move. The experts (through their accounts), the firm and the unit are told; the hourly job (expiry,
reminders) and the overdue rule read the new dates."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.calendar import day_end
from evalhub.core.models import Notification
from evalhub.core.timeutil import beijing_date, simulated_clock
from evalhub.credit import services as C
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.review import services as R
from evalhub.review.models import InvitationStatus, ReviewPanel, SelfEvaluationStatus
from tests import factories
from tests.statements import recorded

MONDAY = date(2025, 11, 3)  # no national holiday near: + 3 days Thursday 6th, + 10 Thursday 13th, + 15 Tuesday 18th


def _at(day: date, hour: int = 10) -> datetime:
    """``hour`` o'clock Beijing on ``day`` (naive UTC), for ``simulated_clock``."""
    return datetime(day.year, day.month, day.day) + timedelta(hours=hour - 8)


def _moved_notices(user) -> list[str]:
    return list(db.session.execute(sa.select(Notification.body).where(
        Notification.user_id == user.id, Notification.title.startswith("工作日历调整")).order_by(Notification.id)).scalars())


def _titles(user) -> list[str]:
    return list(db.session.execute(sa.select(Notification.title).where(Notification.user_id == user.id)).scalars())


def _holiday(world, day: date, workday: bool = False):
    done = C.set_calendar_day(world.bz, day, workday, "更正：照常上班" if workday else "地方节假日", world.bz_admin)
    db.session.commit()
    return done


def _submit_review(invitation) -> None:
    """The expert accepts (unless they have) and submits their review."""
    member = factories.expert_user(invitation.expert_id)
    if invitation.status == InvitationStatus.INVITED:
        R.respond(invitation, member, accept=True, declaration_signed=True)
    items = invitation.review.rubric.items
    R.save_review(invitation.review, member, scores={i.id: (i.max_points * Decimal("0.9")).quantize(Decimal("0.5"))
                                                     for i in items},
                  comments={i.id: f"关于{i.name}的意见" for i in items}, opinion="总体符合要求")
    R.submit_review(invitation.review, member)


def accepted_panel(world):
    """A plan's panel formed on MONDAY (3 November 2025), its review due on the 13th (Beijing), every member
    accepted; and the members' accounts."""
    with simulated_clock(_at(MONDAY)):
        _e, panel = _open_panel(world)
        members = [factories.expert_user(i.expert_id) for i in panel.invitations]
        for invitation, member in zip(panel.invitations, members):
            R.respond(invitation, member, accept=True, declaration_signed=True)
        db.session.commit()
    return panel, members


def _open_panel(world):
    """A work plan under review, its panel formed on MONDAY: three experts invited (accounts each)."""
    e = factories.contracted(world)
    factories.submit_plan(e)
    panel = factories.own_panel(e)
    db.session.commit()
    return e, panel


def test_a_holiday_on_an_experts_last_day_carries_the_answer_and_review_deadlines_and_tells_the_expert(world):
    with simulated_clock(_at(MONDAY)):
        _e, panel = _open_panel(world)
        done_, drafting, invited = sorted(panel.invitations, key=lambda i: i.id)
        _submit_review(done_)  # answered and reviewed: owes nothing
        R.respond(drafting, factories.expert_user(drafting.expert_id), accept=True, declaration_signed=True)
        db.session.commit()
        assert {beijing_date(i.respond_by) for i in panel.invitations} == {date(2025, 11, 6)}
        assert beijing_date(panel.review_due) == date(2025, 11, 13)
        answered = {i.id: i.respond_by for i in (done_, drafting)}
        done_user, drafting_user, invited_user = (factories.expert_user(i.expert_id) for i in (done_, drafting, invited))

        moved = _holiday(world, date(2025, 11, 6)).moved
        # only the invitation still waiting for its answer: to the end (Beijing) of the next working day
        assert invited.respond_by == day_end(date(2025, 11, 7))
        assert {i.id: i.respond_by for i in (done_, drafting)} == answered
        assert [(m.kind, m.row_id) for m in moved] == [("review.invitation_respond_by", invited.id)]
        assert any("专家答复评审邀请期限由 2025-11-06 调整为 2025-11-07" in b for b in _moved_notices(invited_user))
        assert _moved_notices(done_user) == _moved_notices(drafting_user) == []
        assert any("专家答复评审邀请期限" in b for b in _moved_notices(world.bz_staff))

    with simulated_clock(_at(date(2025, 11, 7))):  # the day the answer is due now: the hourly job expires nobody
        assert R.expire_invitations() == 0 and invited.status == InvitationStatus.INVITED

    with simulated_clock(_at(date(2025, 11, 10))):
        moved = _holiday(world, date(2025, 11, 13)).moved
        assert panel.review_due == day_end(date(2025, 11, 14))
        assert [(m.kind, m.row_id) for m in moved] == [("review.review_due", panel.id)]
        # told: the members still owing a review, each once with their own (the one who submitted, not)
        for user in (drafting_user, invited_user):
            assert [b for b in _moved_notices(user) if "专家评审截止日" in b] == [
                b for b in _moved_notices(user) if "专家评审截止日由 2025-11-13 调整为 2025-11-14" in b] != []
        assert _moved_notices(done_user) == []

    with simulated_clock(_at(date(2025, 11, 14))):  # the review is due today, not late
        R.send_reminders()
        db.session.commit()
        assert "评审即将到期：" + panel.subject.name in _titles(drafting_user)
        assert not any(t.startswith("评审已逾期") for t in _titles(drafting_user))
        assert R.overdue_reviews(sa.select(ReviewPanel).where(ReviewPanel.id == panel.id))[0] == 0
    assert R.overdue_reviews(sa.select(ReviewPanel).where(ReviewPanel.id == panel.id),
                             _at(date(2025, 11, 15), 0))[0] == 1  # late from the new day's end


def _reminders(user, title: str) -> list[str]:
    return list(db.session.execute(sa.select(Notification.body).where(
        Notification.user_id == user.id, Notification.title.startswith(title)).order_by(Notification.id)).scalars())


def test_a_review_deadline_moved_after_its_reminder_is_reminded_once_more_for_its_new_day(world):
    """The 评审即将到期 reminder is sent once per deadline date (core/notifications.py ``reminder_key``): before, it was
    keyed by the review alone, so a review deadline a calendar correction moved after the reminder went out was never
    reminded again. A deadline that stays is not reminded twice; one that moves is reminded once more, with its new
    day, and then not again; the 评审已逾期 reminder follows the new day too."""
    panel, members = accepted_panel(world)
    assert beijing_date(panel.review_due) == date(2025, 11, 13)

    with simulated_clock(_at(date(2025, 11, 12))):  # within review.remind_days_before (2) of the 13th
        assert R.send_reminders()["reminders"] == 3
        assert R.send_reminders()["reminders"] == 0  # the deadline stays: reminded once
        db.session.commit()
        moved = _holiday(world, date(2025, 11, 13)).moved  # entered after the reminders went out
        assert [(m.kind, m.row_id) for m in moved] == [("review.review_due", panel.id)]
        assert panel.review_due == day_end(date(2025, 11, 14))

    with simulated_clock(_at(date(2025, 11, 13))):
        assert R.send_reminders()["reminders"] == 3  # once more, each member, for the new day
        assert R.send_reminders()["reminders"] == 0  # and not again
        db.session.commit()
        for member in members:
            bodies = _reminders(member, "评审即将到期")
            assert len(bodies) == 2 and "2025-11-13" in bodies[0] and "2025-11-14" in bodies[1], bodies

    with simulated_clock(_at(date(2025, 11, 15))):  # past the new day: late, reminded once
        assert R.send_reminders()["reminders"] == 3
        assert R.send_reminders()["reminders"] == 0
        db.session.commit()
        assert all(len(_reminders(m, "评审已逾期")) == 1 for m in members)


def test_a_holiday_never_moves_a_deadline_already_passed_nor_a_closed_panels(world):
    """Passed: the invitation's answer period ended before the correction (not yet expired by the hourly job);
    closed: a panel that has decided and returned the plan keeps its review deadline."""
    with simulated_clock(_at(MONDAY)):
        _e, panel = _open_panel(world)
        returned = factories.contracted(world)
        factories.submit_plan(returned)
        closed = factories.returned(returned, factories._staff_of(returned))
        db.session.commit()
        before = {i.id: i.respond_by for i in panel.invitations}
        closed_due = closed.review_due
        assert beijing_date(closed_due) == date(2025, 11, 13)

    with simulated_clock(_at(date(2025, 11, 7))):
        done = _holiday(world, date(2025, 11, 6))  # the day the answers were due, entered after it
        assert done.moved == [] and {i.id: i.respond_by for i in panel.invitations} == before
        assert R.expire_invitations() == 3  # the passed deadline stands

    with simulated_clock(_at(date(2025, 11, 10))):
        done = _holiday(world, date(2025, 11, 13))
        assert closed.review_due == closed_due and "review.review_due" not in {m.kind for m in done.moved}


def test_a_holiday_on_the_firms_last_day_carries_its_resubmission_and_the_engagements_due_date(world):
    """The firm resubmits within 15 days of the letter; a holiday entered on the last day carries it (and the
    engagement's due date, which the overdue lists and reminders read) to the next working day, and a correction
    back does not take it away. A plan already resubmitted keeps the deadline it had."""
    with simulated_clock(_at(MONDAY)):
        e = factories.contracted(world)
        factories.submit_plan(e)
        panel = factories.returned(e, factories._staff_of(e))
        again = factories.contracted(world)
        factories.submit_plan(again)
        resubmitted = factories.returned(again, factories._staff_of(again))
        factories.submit_plan(again)  # the rectified plan handed in: nothing more is owed
        db.session.commit()
        assert (beijing_date(panel.resubmit_due), e.due_on) == (date(2025, 11, 18), date(2025, 11, 18))
        kept = resubmitted.resubmit_due
        firm_user = factories._firm_user_of(e)

        moved = _holiday(world, date(2025, 11, 18)).moved
        assert (panel.resubmit_due, e.due_on) == (day_end(date(2025, 11, 19)), date(2025, 11, 19))
        assert resubmitted.resubmit_due == kept
        assert [(m.kind, m.row_id) for m in moved] == [("review.resubmit_due", panel.id)]
        assert any("整改稿重新提交期限由 2025-11-18 调整为 2025-11-19" in b for b in _moved_notices(firm_user))
        assert R.resubmission_due(e) == date(2025, 11, 19)
        assert workflow.overdue_reason(e, today=date(2025, 11, 19)) is None
        assert "2025-11-19" in workflow.overdue_reason(e, today=date(2025, 11, 20))

        assert _holiday(world, date(2025, 11, 18), workday=True).moved == []
        assert (panel.resubmit_due, e.due_on) == (day_end(date(2025, 11, 19)), date(2025, 11, 19))  # not shortened


def test_a_holiday_on_the_units_last_day_carries_its_self_evaluation_resubmission(world):
    from evalhub.results import services as S
    from tests.test_self_evaluation import _panel, _reviewers

    unit_user = factories.unit_user(world, "巴州统计局", "tjj.zpj")
    with simulated_clock(_at(MONDAY)):
        se = S.submit_self_evaluation(unit_user, world.units["巴州统计局"], year=2025, name="中央财政统计能力建设补助资金",
                                      funds="1200000", upload=files.Upload("自评报告.docx", factories.docx_bytes("自评报告")))
        _reviewers(world)
        panel = _panel(se, world.bz_staff)
        factories.review_panel(panel, fraction="0.85")  # under 90
        R.send_letter(panel, world.bz_staff, panel.letter)
        db.session.commit()
        assert se.status == SelfEvaluationStatus.RETURNED
        assert beijing_date(panel.resubmit_due) == date(2025, 12, 3)  # 30 days

        moved = _holiday(world, date(2025, 12, 3)).moved
        assert panel.resubmit_due == day_end(date(2025, 12, 4))
        assert [(m.kind, m.row_id) for m in moved] == [("review.self_evaluation_resubmit_due", panel.id)]
        assert any("自评报告重新提交期限由 2025-12-03 调整为 2025-12-04" in b for b in _moved_notices(unit_user))


def test_a_holiday_on_the_last_day_carries_it_even_after_a_make_up_day_inside_the_roll(world):
    """Invited on Thursday: 3 days end on Sunday, rolled to Monday. A make-up working day entered on that Sunday
    does not shorten the answer period (granted); a holiday entered afterwards on the Monday still carries it on —
    the last day is never left on a holiday."""
    with simulated_clock(_at(date(2025, 11, 6))):
        _e, panel = _open_panel(world)
        assert {beijing_date(i.respond_by) for i in panel.invitations} == {date(2025, 11, 10)}
        assert _holiday(world, date(2025, 11, 9), workday=True).moved == []
        moved = _holiday(world, date(2025, 11, 10)).moved
        assert {i.respond_by for i in panel.invitations} == {day_end(date(2025, 11, 11))}
        assert len(moved) == 3


def test_a_correction_runs_the_same_statements_however_many_review_deadlines_it_moves(world):
    """Many open panels and returned plans on the day: a statement per kind (with the experts' accounts), the
    calendar read once — not a statement per row. (The inbox rows are one per person told.)"""
    from evalhub.core.settings import set_setting

    for key in ("review.review_days", "review.resubmit_days"):  # every kind's last day on Thursday 6th
        set_setting(world.bz, key, 3, world.bz_admin)
    set_setting(world.bz, "firm.max_key_evaluations", 20, world.bz_admin)  # one firm for them all
    db.session.commit()

    def statements(n: int) -> list[str]:
        with simulated_clock(_at(MONDAY)):
            for _ in range(n):
                _open_panel(world)
                e = factories.contracted(world)
                factories.submit_plan(e)
                factories.returned(e, factories._staff_of(e))
            db.session.commit()
            with recorded() as seen:
                done = C.set_calendar_day(world.bz, date(2025, 11, 6), False, "地方节假日", world.bz_admin)
                db.session.flush()
            kinds = {m.kind for m in done.moved}
            assert kinds == {"review.invitation_respond_by", "review.review_due", "review.resubmit_due"}, kinds
            # each open panel: 3 answers and the review; each returned plan: the resubmission (and those of the call
            # before, committed)
            assert len(done.moved) >= 5 * n
            db.session.rollback()
            return seen

    def reads(seen: list[str]) -> list[str]:
        # less the inbox rows written: one message per expert told (each their own), so more experts, more rows
        return [s for s in seen if not s.startswith("INSERT INTO notification")]

    one, many = statements(1), statements(3)
    assert len(reads(one)) == len(reads(many))
    assert sum("calendar_day" in s.lower() for s in one) == sum("calendar_day" in s.lower() for s in many)
