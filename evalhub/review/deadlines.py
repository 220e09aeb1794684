"""The review stage's stored deadlines follow a bureau's calendar correction (``core.calendar.on_change``). Each is
counted in calendar days from when it was set, its last day rolled to a working day (``days_deadline``), and each is
a period granted to the party who must act, so it only lengthens:

- an expert's answer to a panel invitation (``PanelInvitation.respond_by``, ``review.respond_days``) while the
  invitation waits for it; the expert is told;
- the panel's review deadline (``ReviewPanel.review_due``, ``review.review_days``) while the panel reviews and a
  member still owes a review (the overdue rule's: invited or accepted, review not submitted); those members are told;
- the firm's resubmission after a return for rectification (``ReviewPanel.resubmit_due``, ``review.resubmit_days``)
  while the engagement waits for it, with the engagement's stored ``due_on`` (the overdue rule and its reminders
  read that); the firm is told;
- the unit's resubmission of a returned self-evaluation (the same column, ``review.self_evaluation_resubmit_days``)
  while it waits for it; the unit is told.

No day count is kept on the rows: none is needed. Days inside a calendar-day period neither shorten nor lengthen
it; only the roll of its last day does, and a granted period is never shortened. So the one change that moves such
a deadline is a holiday entered on its stored last day, which carries it to the next working day (民法典 第二百零三
条) whatever count it was set with: each row goes to ``recompute`` as that roll (0 days from its stored last day).
Rows stored before this hook are therefore recounted like new ones — nothing is left unmoved for want of a count,
unlike results' rectification deadlines, where a NULL count marks a date the bureau may have chosen (no review
deadline is chosen by hand). A count from the start would do no better, and once worse: after a make-up working
day entered between the count's day and the stored last day (no shortening: granted), a holiday then entered on
the last day would leave the deadline there, on the holiday.

One statement per kind (the experts' accounts read with it; the units' once for all), one read of the calendar for
all. The invitations' expiry, the reminders and the overdue lists read the stored columns, so they follow."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.orm import aliased, contains_eager, joinedload

from evalhub.core import calendar
from evalhub.core.calendar import CalendarChange, Moved, Period
from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.timeutil import beijing_date, beijing_day_start
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.models import Engagement
from evalhub.review.models import (
    InvitationStatus, PanelInvitation, PanelStatus, Review, ReviewPanel, ReviewStatus, SelfEvaluation,
    SelfEvaluationStatus,
)

# The experts' deadlines link to /reviews: one address for both audiences told — an expert's invitations and
# reviews there, the bureau's panels.
REVIEWS_LINK = "/reviews"


@calendar.on_change
def recount(change: CalendarChange) -> list[Moved]:
    ids = sorted(change.bureaus)
    # The stored last day on the changed day (Beijing), and not over today: the only rows the change can move.
    window = (beijing_day_start(max(change.today, change.day)), beijing_day_start(change.day + timedelta(days=1)))
    return (_invitations(change, ids, window) + _reviews(change, ids, window) + _resubmissions(change, ids, window)
            + _self_evaluations(change, ids, window))


def _roll(row: Any, bureau_id: int, change: CalendarChange, end: datetime) -> Period:
    """The roll of the stored last day (0 days from it; the module's docstring says why), granted: only lengthens."""
    last = beijing_date(end)
    return Period(row, change.bureaus[bureau_id], last, 0, last, granted=True, calendar_days=True)


def _move(change: CalendarChange, periods: list[Period], attribute: str,
          describe: Callable[[Any, date, date], Moved]) -> list[Moved]:
    """``calendar.move`` for a deadline stored as an instant: the new last day stored as its end (``day_end``)."""
    moved = []
    for period, new in calendar.recompute(change, periods):
        moved.append(describe(period.key, period.end, new))
        setattr(period.key, attribute, calendar.day_end(new))
    return moved


def _subject(panel: ReviewPanel) -> str:
    subject = panel.subject
    return f"{subject.reference} {subject.name} {panel.kind.label}第 {panel.round} 轮评审"


def _subject_loaded(path) -> list:
    """Load the panel's subject (an engagement or a self-evaluation) with the rows: not one read per panel."""
    return [path.joinedload(ReviewPanel.engagement), path.joinedload(ReviewPanel.self_evaluation)]


def _accounts(rows) -> dict[Any, tuple[User, ...]]:
    """(row, an expert's account or None), read with an outer join → {row: its experts' accounts}, in order. An
    expert without an account is not named: the bureau's notice lists the deadline all the same."""
    out: dict[Any, list[User]] = {}
    for row, user in rows:
        people = out.setdefault(row, [])
        if user is not None and user not in people:
            people.append(user)
    return {row: tuple(people) for row, people in out.items()}


def _invitations(change: CalendarChange, ids: list[int], window) -> list[Moved]:
    rows = db.session.execute(
        sa.select(PanelInvitation, User).join(ReviewPanel, ReviewPanel.id == PanelInvitation.panel_id)
        .outerjoin(User, User.expert_id == PanelInvitation.expert_id)
        .options(*_subject_loaded(contains_eager(PanelInvitation.panel)))
        .where(ReviewPanel.bureau_id.in_(ids), ReviewPanel.status == PanelStatus.REVIEWING,
               PanelInvitation.status == InvitationStatus.INVITED,  # not answered, withdrawn or expired
               PanelInvitation.respond_by >= window[0], PanelInvitation.respond_by < window[1])).all()
    accounts = _accounts(rows)
    periods = [_roll(i, i.panel.bureau_id, change, i.respond_by) for i in accounts]
    return _move(change, periods, "respond_by", lambda i, old, new: Moved(
        "review.invitation_respond_by", i.id, i.panel.bureau_id, "专家答复评审邀请期限", _subject(i.panel), old, new,
        REVIEWS_LINK, experts=accounts[i]))


def _reviews(change: CalendarChange, ids: list[int], window) -> list[Moved]:
    # one row per member still owing a review (the overdue rule's), with the member's account if any
    rows = db.session.execute(
        sa.select(ReviewPanel, User).join(PanelInvitation, PanelInvitation.panel_id == ReviewPanel.id)
        .outerjoin(Review, Review.invitation_id == PanelInvitation.id)
        .outerjoin(User, User.expert_id == PanelInvitation.expert_id)
        .options(joinedload(ReviewPanel.engagement), joinedload(ReviewPanel.self_evaluation))
        .where(ReviewPanel.bureau_id.in_(ids), ReviewPanel.status == PanelStatus.REVIEWING,
               ReviewPanel.review_due >= window[0], ReviewPanel.review_due < window[1],
               PanelInvitation.status.in_([InvitationStatus.INVITED, InvitationStatus.ACCEPTED]),
               sa.or_(Review.id.is_(None), Review.status != ReviewStatus.SUBMITTED))
        .order_by(ReviewPanel.id, PanelInvitation.id)).all()
    owing = _accounts(rows)
    periods = [_roll(p, p.bureau_id, change, p.review_due) for p in owing]
    return _move(change, periods, "review_due", lambda p, old, new: Moved(
        "review.review_due", p.id, p.bureau_id, "专家评审截止日", _subject(p), old, new, REVIEWS_LINK,
        experts=owing[p]))


def _resubmissions(change: CalendarChange, ids: list[int], window) -> list[Moved]:
    later = aliased(ReviewPanel)
    panels = db.session.execute(
        sa.select(ReviewPanel).join(Engagement, Engagement.id == ReviewPanel.engagement_id)
        .options(contains_eager(ReviewPanel.engagement))
        .where(ReviewPanel.bureau_id.in_(ids), Engagement.state.in_(workflow.RETURNED),  # not resubmitted yet
               ReviewPanel.resubmit_due >= window[0], ReviewPanel.resubmit_due < window[1],
               # the return it waits on, not an earlier round's
               ~sa.exists().where(later.engagement_id == ReviewPanel.engagement_id, later.id > ReviewPanel.id))
    ).scalars().all()
    periods = [_roll(p, p.bureau_id, change, p.resubmit_due) for p in panels]
    moved = _move(change, periods, "resubmit_due", lambda p, old, new: Moved(
        "review.resubmit_due", p.id, p.bureau_id, "整改稿重新提交期限", f"{p.engagement.reference} {p.engagement.name}",
        old, new, f"/engagements/{p.engagement_id}", firm_ids=(p.engagement.firm_id,) if p.engagement.firm_id else ()))
    by_id = {p.id: p for p in panels}
    for m in moved:  # the engagement's stored due date is the resubmission's: the overdue rule and reminders read it
        e = by_id[m.row_id].engagement
        e.due_on = workflow.due_date(e.state, None, None, by_id[m.row_id].resubmit_due)
    return moved


def _self_evaluations(change: CalendarChange, ids: list[int], window) -> list[Moved]:
    later = aliased(ReviewPanel)
    panels = db.session.execute(
        sa.select(ReviewPanel).join(SelfEvaluation, SelfEvaluation.id == ReviewPanel.self_evaluation_id)
        .options(contains_eager(ReviewPanel.self_evaluation))
        .where(ReviewPanel.bureau_id.in_(ids), SelfEvaluation.status == SelfEvaluationStatus.RETURNED,
               ReviewPanel.resubmit_due >= window[0], ReviewPanel.resubmit_due < window[1],
               ~sa.exists().where(later.self_evaluation_id == ReviewPanel.self_evaluation_id,
                                  later.id > ReviewPanel.id))).scalars().all()
    if not panels:
        return []
    # the units' enabled accounts (review.services.unit_accounts_of), once for them all
    units = {p.self_evaluation.budget_unit_id for p in panels}
    accounts: dict[int, list[User]] = {}
    for user in db.session.execute(sa.select(User).where(
            User.budget_unit_id.in_(sorted(units)), User.role == Role.BUDGET_UNIT, User.is_enabled.is_(True))
            .order_by(User.id)).scalars():
        accounts.setdefault(user.budget_unit_id, []).append(user)
    periods = [_roll(p, p.bureau_id, change, p.resubmit_due) for p in panels]
    return _move(change, periods, "resubmit_due", lambda p, old, new: Moved(
        "review.self_evaluation_resubmit_due", p.id, p.bureau_id, "自评报告重新提交期限",
        f"{p.self_evaluation.reference} {p.self_evaluation.name}", old, new,
        f"/results/self-evaluations/{p.self_evaluation_id}",
        users=tuple(accounts.get(p.self_evaluation.budget_unit_id, ()))))
