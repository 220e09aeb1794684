"""What the engagement page reads, in one statement: the engagement with what it has one of, its timeline with
who acted, its procurements with their awards and draws, and the rows of the panels other code draws on the page
(``part``: the team here, the submissions from review, which registers its own).

One statement, not a second (selectin) for the procurements: an engagement has a procurement or two, so the join
repeats the timeline's few rows once or twice, which costs less than another statement's round trip and ORM
setup (~1 ms). Of a draw the page links its number and checks its bureau: its candidate lists (hundreds of names
of a pool) stay unread. Of who acted, what the timeline shows (role, name, bureau, firm); of the winner its name:
the page read 136 columns a row, 43 of them the actors' and firm's unused ones (password hashes among them).

A panel's rows ride along as one JSON value each (``core.sqljson``), read back as the rows its own statement
gives: with a statement each, the team and the submissions cost 1.2 ms of a 6.3 ms page (巴州's admin, province
scale, in-process); along, about 0.3 ms.
"""
from __future__ import annotations

import functools
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from evalhub.core import sqljson
from evalhub.core.models import Draw, User
from evalhub.extensions import db
from evalhub.procurement.models import Award, Contract, ContractNotice, Engagement, EngagementTransition, Procurement
from evalhub.registry.models import Firm

ENGAGEMENT_PAGE = (
    joinedload(Engagement.plan_item), joinedload(Engagement.budget_unit),
    # its announcement (合同公告): due, or published, and its posting on the designated media
    joinedload(Engagement.contract).joinedload(Contract.notice).joinedload(ContractNotice.media_posting),
    joinedload(Engagement.bureau),
    joinedload(Engagement.transitions).joinedload(EngagementTransition.actor).load_only(
        User.role, User.display_name, User.bureau_id, User.firm_id),
    joinedload(Engagement.procurements).options(
        joinedload(Procurement.award).joinedload(Award.firm).load_only(Firm.name),
        # the 采购公告's posting on the designated media: the bid period counts from it (media.period_problems)
        joinedload(Procurement.media_posting),
        joinedload(Procurement.draw).load_only(Draw.bureau_id),
        joinedload(Procurement.committee_draw).load_only(Draw.bureau_id)),
)

ENGAGEMENT_ID = sa.bindparam("engagement_id")  # the page's engagement, in the page's statement and its parts

_PARTS: dict[str, sa.Select] = {}
_HELD = "evalhub.engagement_page"  # {(part name, engagement id): rows}


def part(name: str, rows: sa.Select) -> sa.Select:
    """Register a panel of the engagement page: ``rows``, a statement of the page's engagement (``ENGAGEMENT_ID``),
    is read with the engagement when the page is shown; ``rows_of`` gives its rows. Returns ``rows``."""
    _PARTS[name] = rows
    return rows


def read(engagement_id: int) -> Optional[Engagement]:
    """The engagement as the page shows it (None if there is none), its panels' rows held for ``rows_of``."""
    row = db.session.execute(_statement(db.engine.dialect.name, tuple(_PARTS)),
                             {"engagement_id": engagement_id}).unique().one_or_none()
    if row is None:
        return None
    held = db.session.info.setdefault(_HELD, {})
    for (name, rows), text in zip(_PARTS.items(), row[1:]):
        held[(name, engagement_id)] = sqljson.read_rows(rows, text)
    return row[0]


def rows_of(name: str, engagement: Engagement) -> list[Any]:
    """The panel ``name``'s rows of the engagement: as the page read them in this transaction, else by running
    its statement (a page shown again after a refused form)."""
    held = db.session.info.get(_HELD, {}).get((name, engagement.id))
    if held is not None:
        return held
    return list(db.session.execute(_PARTS[name], {"engagement_id": engagement.id}))


@functools.cache
def _statement(dialect: str, parts: tuple[str, ...]) -> sa.Select:
    return sa.select(Engagement).where(Engagement.id == ENGAGEMENT_ID).options(*ENGAGEMENT_PAGE) \
        .add_columns(*(sqljson.rows_value(_PARTS[name], dialect) for name in parts))


@sa.event.listens_for(Session, "after_commit")
@sa.event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_HELD, None)  # a panel changed by the transaction is read again
