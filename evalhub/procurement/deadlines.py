"""Procurement's stored deadlines follow a bureau's calendar correction (``core.calendar.on_change``).

Each kind is read in one statement (its open rows in the bureaus whose day changed, whose period reaches the day),
recounted by ``core.calendar.recompute`` from one read of the calendar for them all, and written back:

- the result notice's challenge period (``ResultNotice.challenge_until``): granted to the suppliers — only lengthens;
- a challenge's answer (``Challenge.answer_due``): the bureau's duty (财政部令第94号 第十三条, 7 working days) —
  both ways; the complaint period counts from it when read (``complaint_dates``), so it follows;
- the result notice's posting on the designated media (``ResultNotice.media_due_on``, 2 working days, 87号令
  第六十九条): the bureau's duty;
- the contract's announcement (``Contract.notice_due_on``, 2 working days, 实施条例 第五十条): the bureau's duty;
- the contract's signing (``Engagement.due_on`` while the contract is owed, 30 days rolled to a working day,
  政府采购法 第四十六条): the bureau's duty. Its period counts calendar days, so only a change on its last days moves it.
"""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core import calendar
from evalhub.core.calendar import CalendarChange, Moved, Period
from evalhub.core.timeutil import beijing_date, beijing_day_start
from evalhub.extensions import db
from evalhub.procurement import contract_notices, media, workflow
from evalhub.procurement.models import (
    Challenge, ChallengeStatus, Contract, Engagement, FrameworkAgreement, Procurement, ResultNotice,
)
from evalhub.procurement.services import participant_ids


def _subject(engagement: Engagement) -> str:
    return f"{engagement.reference} {engagement.name}"


@calendar.on_change
def recount(change: CalendarChange) -> list[Moved]:
    ids = sorted(change.bureaus)
    reach = max(change.today, change.day)  # still open today, and the changed day inside the period
    began = beijing_day_start(change.day)  # started (its Beijing date) before the changed day
    return (_challenge_periods(change, ids, reach, began) + _challenge_answers(change, ids, reach, began)
            + _result_postings(change, ids, reach, began) + _contract_notices(change, ids, reach)
            + _contract_signing(change, ids, reach))


def _challenge_periods(change: CalendarChange, ids: list[int], reach, began) -> list[Moved]:
    # who is told — every supplier that may challenge (``participant_ids``: the bidders, the firms a draw drew among,
    # the framework agreement's members, less the standing notice's) and the winner — read with the rows, a statement
    # per relation, not per notice
    notices = db.session.execute(sa.select(ResultNotice).options(
        joinedload(ResultNotice.procurement).options(
            joinedload(Procurement.engagement), joinedload(Procurement.draw), selectinload(Procurement.bids),
            selectinload(Procurement.notices),
            selectinload(Procurement.framework_agreement).selectinload(FrameworkAgreement.members))).where(
        ResultNotice.bureau_id.in_(ids), ResultNotice.revoked_at.is_(None), ResultNotice.challenge_until >= reach,
        ResultNotice.published_at < began)).scalars().all()
    # granted to the suppliers: never shortened once announced
    periods = [Period(n, change.bureaus[n.bureau_id], beijing_date(n.published_at), n.challenge_workdays,
                      n.challenge_until, granted=True) for n in notices]
    return calendar.move(change, periods, "challenge_until", lambda n, old, new: Moved(
        "procurement.challenge_until", n.id, n.bureau_id, "质疑期截止日", _subject(n.procurement.engagement), old, new,
        f"/procurements/{n.procurement_id}", firm_ids=tuple(sorted(participant_ids(n.procurement) | {n.firm_id}))),
        count="challenge_workdays")


def _challenge_answers(change: CalendarChange, ids: list[int], reach, began) -> list[Moved]:
    challenges = db.session.execute(sa.select(Challenge).join(Procurement, Procurement.id == Challenge.procurement_id)
                                    .options(joinedload(Challenge.procurement).joinedload(Procurement.engagement))
                                    .where(Procurement.bureau_id.in_(ids), Challenge.status == ChallengeStatus.OPEN,
                                           Challenge.answer_due >= reach, Challenge.filed_at < began)).scalars().all()
    # the bureau's duty: follows the corrected calendar both ways
    periods = [Period(c, change.bureaus[c.procurement.bureau_id], beijing_date(c.filed_at), c.answer_workdays,
                      c.answer_due, granted=False) for c in challenges]
    return calendar.move(change, periods, "answer_due", lambda c, old, new: Moved(
        "procurement.challenge_answer_due", c.id, c.procurement.bureau_id, "质疑答复期限",
        _subject(c.procurement.engagement), old, new, f"/procurements/{c.procurement_id}#challenges",
        firm_ids=(c.firm_id,)), count="answer_workdays")


def _result_postings(change: CalendarChange, ids: list[int], reach, began) -> list[Moved]:
    notices = db.session.execute(sa.select(ResultNotice).options(
        joinedload(ResultNotice.procurement).joinedload(Procurement.engagement)).where(
        ResultNotice.bureau_id.in_(ids), ResultNotice.media_due_on >= reach,
        ResultNotice.published_at < began)).scalars().all()
    # the bureau's duty, counted by the law's number (not a setting) from the day the winner was determined
    periods = [Period(n, change.bureaus[n.bureau_id], beijing_date(n.published_at), media.RESULT_WORKDAYS,
                      n.media_due_on, granted=False) for n in notices]
    return calendar.move(change, periods, "media_due_on", lambda n, old, new: Moved(
        "procurement.result_posting_due", n.id, n.bureau_id, "结果公告指定媒体发布期限", _subject(n.procurement.engagement),
        old, new, f"/engagements/{n.procurement.engagement_id}/media"))


def _contract_notices(change: CalendarChange, ids: list[int], reach) -> list[Moved]:
    contracts = db.session.execute(sa.select(Contract).join(Engagement, Engagement.id == Contract.engagement_id)
                                   .options(joinedload(Contract.engagement))
                                   .where(Engagement.bureau_id.in_(ids), Contract.notice_due_on >= reach,
                                          Contract.signed_on < change.day)).scalars().all()
    # the bureau's duty, counted by the law's number (not a setting) from the signing date
    periods = [Period(c, change.bureaus[c.engagement.bureau_id], c.signed_on, contract_notices.NOTICE_WORKDAYS,
                      c.notice_due_on, granted=False) for c in contracts]
    return calendar.move(change, periods, "notice_due_on", lambda c, old, new: Moved(
        "procurement.contract_notice_due", c.id, c.engagement.bureau_id, "合同公告发布期限", _subject(c.engagement),
        old, new, f"/engagements/{c.engagement_id}"))


def _contract_signing(change: CalendarChange, ids: list[int], reach) -> list[Moved]:
    # Only the last days of a 30-day period can move it: its notice published on or before day − 30 (Beijing).
    latest = beijing_day_start(change.day - timedelta(days=workflow.CONTRACT_DAYS - 1))
    rows = db.session.execute(
        sa.select(Engagement, ResultNotice.published_at).join(Procurement, Procurement.engagement_id == Engagement.id)
        .join(ResultNotice, ResultNotice.procurement_id == Procurement.id)
        .where(Engagement.bureau_id.in_(ids), Engagement.state.in_(workflow.CONTRACT_PENDING), Engagement.due_on >= reach,
               ResultNotice.award_id.is_not(None), ResultNotice.revoked_at.is_(None), ResultNotice.published_at < latest)
        .order_by(Engagement.id, ResultNotice.id)).all()
    standing = {engagement.id: (engagement, published_at) for engagement, published_at in rows}  # the latest notice
    # the bureau's duty (政府采购法 第四十六条): both ways
    periods = [Period(e, change.bureaus[e.bureau_id], beijing_date(at), workflow.CONTRACT_DAYS, e.due_on,
                      granted=False, calendar_days=True) for e, at in standing.values()]
    return calendar.move(change, periods, "due_on", lambda e, old, new: Moved(
        "procurement.contract_due", e.id, e.bureau_id, "合同签订期限", _subject(e), old, new, f"/engagements/{e.id}",
        firm_ids=(e.firm_id,) if e.firm_id else ()))
