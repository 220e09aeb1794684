"""Telling every eligible firm of a new procurement reads their accounts at once: opening one does not send a
statement per firm in the library (a prefecture's library holds hundreds)."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from evalhub.core.models import Notification
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import ProcurementMethod as M
from tests import factories
from tests.statements import recorded


def _user_reads(statements: list[str]) -> int:
    """The statements that read accounts (``FROM user_account``) — the per-firm read this is about."""
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM user_account" in s)


def _open_with(world, bidders: int) -> tuple[int, int]:
    for i in range(bidders):
        factories.bidder(world, f"新开采购机构{bidders}{i}")
    db.session.commit()
    e = factories.engagement(world)
    with recorded() as seen:
        p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(
            method=M.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
            bid_deadline=factories.bid_deadline(world.bz, 12)), world.bz_staff))
    told = db.session.scalar(sa.select(sa.func.count(Notification.id)).where(
        Notification.link == f"/procurements/{p.id}/bid"))
    return _user_reads(seen), told


def test_opening_a_procurement_reads_the_firms_to_tell_at_once_however_many_there_are(world):
    few_reads, few_told = _open_with(world, 1)
    many_reads, many_told = _open_with(world, 6)
    assert many_told >= few_told + 6  # the six new firms' users are told too (and the firms of before)
    assert many_reads == few_reads, (few_reads, many_reads)
