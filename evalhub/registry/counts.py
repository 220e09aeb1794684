"""The dashboard's firm and expert cards, kept on write (issue 18).

The dashboard counted the firms of the user's library by status and the experts of its pool: for the region's
admin a scan of every firm and expert (6,000 experts at twice province scale: 1.2 ms of the page's 3.4 ms count
statement), growing with the province. ``firm_count`` and ``expert_count`` hold each bureau's number per status,
kept by ``core.summaries`` (recounted for each bureau a transaction wrote, just before it commits); the cards
sum them under the same library rule as the rows' own scope (``registry.permissions.library_where``), and say None for a
user who is not a bureau's (whose scope is every row or one firm or expert: the dashboard counts as before).
"""
from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa

from evalhub.core import permissions
from evalhub.core.models import User
from evalhub.core.summaries import KeptCount
from evalhub.registry.models import Expert, ExpertCount, Firm, FirmCount
from evalhub.registry.permissions import expert_in_library, firm_in_library, library_where

# a firm's or expert's bureau and status move its count; nothing else does
FIRMS = KeptCount("registry.firm_counts", Firm, ("bureau_id",), FirmCount.__table__, by=("status",))
EXPERTS = KeptCount("registry.expert_counts", Expert, ("bureau_id",), ExpertCount.__table__, by=("status",))


def _library_counts(user: User, count: KeptCount, in_library: Callable[[Any], Any], *columns: Any) -> Any:
    if not (permissions.is_bureau_user(user) and user.bureau is not None):
        return None
    table = count.summary
    return sa.select(*columns, sa.func.coalesce(sa.func.sum(table.c.n), 0)).where(
        library_where(user, table.c.bureau_id, in_library(table.c.status)))


def firms_by_status(user: User) -> Any:
    """(status, n) of the firms in the user's library — what ``scope(user, select(Firm.status, count()).group_by(
    Firm.status), Firm)`` counts — from ``firm_count``; None for a user who is not a bureau's."""
    counted = _library_counts(user, FIRMS, firm_in_library, FirmCount.status)
    return None if counted is None else counted.group_by(FirmCount.status)


def experts_total(user: User) -> Any:
    """How many experts the user's pool holds — ``scope(user, select(count(Expert.id)), Expert)`` — from
    ``expert_count``; None for a user who is not a bureau's."""
    return _library_counts(user, EXPERTS, expert_in_library)
