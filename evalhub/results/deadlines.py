"""Results' stored deadlines follow a bureau's calendar correction (``core.calendar.on_change``), both granted to the
evaluated unit, so they only lengthen; the unit is told. One statement per kind, one read of the calendar for all:

- the unit's period to answer a fact confirmation (征求意见, ``FactConfirmation.due_on``, working days); the firm
  waiting on the answer is told too;
- a finding's rectification deadline (``ResultFinding.deadline``) when it is the bureau's default: calendar days
  from the confirmation (``deadline_from``, ``deadline_days``) rolled to a working day, so only a change on its last
  days moves it (a holiday entered on the day it ends carries it to the next working day). A date the bureau chose
  (the kept count NULL) never moves. ``late_from`` needs no recount: it is set only when the bureau verified a row
  after its deadline, which had then passed, and a passed deadline never moves — a row recounted here has none."""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from evalhub.core import calendar
from evalhub.core.calendar import CalendarChange, Moved, Period
from evalhub.core.settings import SETTINGS
from evalhub.core.timeutil import beijing_date, beijing_day_start
from evalhub.extensions import db
from evalhub.procurement.models import Engagement
from evalhub.results.models import OPEN_STATUSES, FactConfirmation, ResultFinding
from evalhub.results.services import units_users


@calendar.on_change
def recount(change: CalendarChange) -> list[Moved]:
    reach = max(change.today, change.day)  # still open today, and the changed day inside the period
    return _fact_confirmations(change, reach) + _rectifications(change, reach)


def _told(unit_ids) -> Callable[[int | None], tuple]:
    """The accounts of each unit told (``units_users``), read for the kind's rows at once, not per row or unit."""
    people = units_users(unit_id for unit_id in unit_ids if unit_id is not None)
    return lambda unit_id: tuple(people.get(unit_id, ())) if unit_id is not None else ()


def _fact_confirmations(change: CalendarChange, reach) -> list[Moved]:
    rows = db.session.execute(sa.select(FactConfirmation).join(Engagement, Engagement.id == FactConfirmation.engagement_id)
                              .options(joinedload(FactConfirmation.engagement)).where(
        Engagement.bureau_id.in_(sorted(change.bureaus)), FactConfirmation.answered_at.is_(None),
        FactConfirmation.due_on >= reach, FactConfirmation.created_at < beijing_day_start(change.day))).scalars().all()
    # granted to the evaluated unit: never shortened once announced
    periods = [Period(r, change.bureaus[r.engagement.bureau_id], beijing_date(r.created_at), r.due_workdays, r.due_on,
                      granted=True) for r in rows]
    users = _told(r.engagement.budget_unit_id for r in rows)
    return calendar.move(change, periods, "due_on", lambda r, old, new: Moved(
        "results.fact_confirmation_due", r.id, r.engagement.bureau_id, "征求意见答复期限",
        f"{r.engagement.reference} {r.engagement.name}", old, new, f"/results/unit/engagements/{r.engagement_id}",
        firm_ids=(r.engagement.firm_id,) if r.engagement.firm_id else (),
        users=users(r.engagement.budget_unit_id)), count="due_workdays")


def _rectifications(change: CalendarChange, reach) -> list[Moved]:
    # Only the last days of the period can move it: counted from before the changed day by at least the shortest
    # default the setting allows (``recompute`` then keeps those whose own count reaches the day).
    latest = change.day - timedelta(days=int(SETTINGS["results.rectification_days"].minimum))
    rows = db.session.execute(sa.select(ResultFinding).options(joinedload(ResultFinding.engagement)).where(
        ResultFinding.bureau_id.in_(sorted(change.bureaus)), ResultFinding.status.in_(OPEN_STATUSES),
        ResultFinding.deadline_days.is_not(None), ResultFinding.deadline >= reach,
        ResultFinding.deadline_from <= latest)).scalars().all()
    # granted to the evaluated unit: only lengthens
    periods = [Period(f, change.bureaus[f.bureau_id], f.deadline_from, f.deadline_days, f.deadline, granted=True,
                      calendar_days=True) for f in rows]
    users = _told(f.responsible_unit_id for f in rows)
    return calendar.move(change, periods, "deadline", lambda f, old, new: Moved(
        "results.rectification_deadline", f.id, f.bureau_id, "整改期限",
        f"{f.engagement.reference} {f.engagement.name} 第 {f.position} 条", old, new,
        f"/results/unit/engagements/{f.engagement_id}", users=users(f.responsible_unit_id)))
