"""Credit's stored deadlines follow a bureau's calendar correction (``core.calendar.on_change``): a published
rating's objection period (granted to the firm: only lengthens) and an objection's answer (the bureau's duty: both
ways). One statement per kind, one read of the calendar for all (``core.calendar.recompute``)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from evalhub.core import calendar
from evalhub.core.calendar import CalendarChange, Moved, Period
from evalhub.core.timeutil import beijing_date, beijing_day_start
from evalhub.extensions import db
from evalhub.credit.models import CreditObjection, CreditRating, RatingStatus


@calendar.on_change
def recount(change: CalendarChange) -> list[Moved]:
    ids = sorted(change.bureaus)
    reach = max(change.today, change.day)  # still open today, and the changed day inside the period
    return _objection_periods(change, ids, reach) + _objection_answers(change, ids, reach)


def _objection_periods(change: CalendarChange, ids: list[int], reach) -> list[Moved]:
    ratings = db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id.in_(ids), CreditRating.status == RatingStatus.PUBLISHED,
        CreditRating.objection_deadline >= reach)).scalars().all()
    # granted to the firm: never shortened once announced. A rating published before the window's start was kept
    # counts from its publication: a later start would only derive a longer count, never a shorter window.
    periods = [Period(r, change.bureaus[r.bureau_id], r.objection_from or beijing_date(r.published_at),
                      r.objection_workdays, r.objection_deadline, granted=True) for r in ratings]
    moved = calendar.move(change, periods, "objection_deadline", lambda r, old, new: Moved(
        "credit.objection_deadline", r.id, r.bureau_id, "异议期截止日", f"{r.year} 年度信用评价", old, new,
        f"/credit/ratings/{r.id}", firm_ids=(r.firm_id,)))
    for period in periods:  # a count derived for a rating published before it was kept is kept now
        r = period.key
        if r.objection_workdays is None and period.days is not None:
            r.objection_from, r.objection_workdays = period.start, period.days
    return moved


def _objection_answers(change: CalendarChange, ids: list[int], reach) -> list[Moved]:
    objections = db.session.execute(sa.select(CreditObjection).join(CreditRating, CreditRating.id == CreditObjection.rating_id)
                                    .options(joinedload(CreditObjection.rating).joinedload(CreditRating.firm)).where(
        CreditRating.bureau_id.in_(ids), CreditObjection.decision.is_(None), CreditObjection.answer_due >= reach,
        CreditObjection.submitted_at < beijing_day_start(change.day))).scalars().all()
    # the bureau's duty: follows the corrected calendar both ways
    periods = [Period(o, change.bureaus[o.rating.bureau_id], beijing_date(o.submitted_at), o.answer_workdays,
                      o.answer_due, granted=False) for o in objections]
    return calendar.move(change, periods, "answer_due", lambda o, old, new: Moved(
        "credit.objection_answer_due", o.id, o.rating.bureau_id, "异议答复期限",
        f"{o.rating.year} 年度信用评价（{o.rating.firm.name}）", old, new, f"/credit/ratings/{o.rating_id}",
        firm_ids=(o.rating.firm_id,)), count="answer_workdays")
