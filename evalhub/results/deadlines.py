"""Results' stored deadlines follow a bureau's calendar correction (``core.calendar.on_change``): the evaluated
unit's period to answer a fact confirmation (征求意见, ``FactConfirmation.due_on``) — granted to the unit, so it
only lengthens; the firm waiting on the answer is told too. One statement, one read of the calendar.

Not recounted: a finding's rectification deadline (a date the bureau sets, or its default in calendar days — the
row does not say which) and ``late_from`` (the deadline moved on by the working days spent verifying)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from evalhub.core import calendar
from evalhub.core.calendar import CalendarChange, Moved, Period
from evalhub.core.timeutil import beijing_date, beijing_day_start
from evalhub.extensions import db
from evalhub.procurement.models import Engagement
from evalhub.results.models import FactConfirmation
from evalhub.results.services import unit_users


@calendar.on_change
def recount(change: CalendarChange) -> list[Moved]:
    rows = db.session.execute(sa.select(FactConfirmation).join(Engagement, Engagement.id == FactConfirmation.engagement_id)
                              .options(joinedload(FactConfirmation.engagement)).where(
        Engagement.bureau_id.in_(sorted(change.bureaus)), FactConfirmation.answered_at.is_(None),
        FactConfirmation.due_on >= max(change.today, change.day),
        FactConfirmation.created_at < beijing_day_start(change.day))).scalars().all()
    # granted to the evaluated unit: never shortened once announced
    periods = [Period(r, change.bureaus[r.engagement.bureau_id], beijing_date(r.created_at), r.due_workdays, r.due_on,
                      granted=True) for r in rows]
    people: dict[int | None, tuple] = {}

    def users(e: Engagement) -> tuple:  # one read per unit
        if e.budget_unit_id not in people:
            people[e.budget_unit_id] = tuple(unit_users(e.budget_unit_id)) if e.budget_unit_id else ()
        return people[e.budget_unit_id]

    return calendar.move(change, periods, "due_on", lambda r, old, new: Moved(
        "results.fact_confirmation_due", r.id, r.engagement.bureau_id, "征求意见答复期限",
        f"{r.engagement.reference} {r.engagement.name}", old, new, f"/results/unit/engagements/{r.engagement_id}",
        firm_ids=(r.engagement.firm_id,) if r.engagement.firm_id else (), users=users(r.engagement)), count="due_workdays")
