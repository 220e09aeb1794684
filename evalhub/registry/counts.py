"""The dashboard's firm and expert cards and the two lists' totals, kept on write (issue 18).

The dashboard counted the firms of the user's library by status and the experts of its pool, and the firm and
expert lists counted their rows for the pager: for the region's admin a scan of every firm and expert (6,000
experts at twice province scale: 1.2 ms of the dashboard's 3.4 ms count statement), growing with the province.
``firm_count`` and ``expert_count`` hold each bureau's number per status, kept by ``core.summaries`` (recounted
for each bureau a transaction wrote, just before it commits); the cards and totals sum them under the same
library rule as the rows' own scope (``registry.permissions.library_where``), and say None for a user who is
not a bureau's (whose scope is every row or one firm or expert: the page counts as before) or when a higher
module hides some of the rows (``permissions.restrict``).
"""
from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa

from evalhub.core import permissions
from evalhub.core.listing import Listing
from evalhub.core.models import User
from evalhub.core.summaries import KeptCount
from evalhub.extensions import db
from evalhub.registry.models import Expert, ExpertCount, Firm, FirmCount
from evalhub.registry.permissions import expert_in_library, firm_in_library, library_where

# a firm's or expert's bureau and status move its count; nothing else does
FIRMS = KeptCount("registry.firm_counts", Firm, ("bureau_id",), FirmCount.__table__, by=("status",))
EXPERTS = KeptCount("registry.expert_counts", Expert, ("bureau_id",), ExpertCount.__table__, by=("status",))


def _in_library(user: User, count: KeptCount, in_library: Callable[[Any], Any]) -> Any:
    """The summary rows of the user's library, as a WHERE clause; None where kept counts cannot stand for its
    rows (not a bureau's user, or some rows hidden by a higher module)."""
    if not (permissions.is_bureau_user(user) and user.bureau is not None) or permissions.restricted(count.source):
        return None
    table = count.summary
    return library_where(user, table.c.bureau_id, in_library(table.c.status))


def _library_counts(user: User, count: KeptCount, in_library: Callable[[Any], Any], *columns: Any) -> Any:
    where = _in_library(user, count, in_library)
    if where is None:
        return None
    return sa.select(*columns, sa.func.coalesce(sa.func.sum(count.summary.c.n), 0)).where(where)


_LIBRARIES = {Firm: (FIRMS, firm_in_library), Expert: (EXPERTS, expert_in_library)}


def list_total(user: User, listing: Listing, model: type[Firm] | type[Expert]) -> Any:
    """The number of rows of the firm or expert list (over ``scoped(model)``) as a scalar subquery over the kept
    counts, for ``page_rows(total=…)``; None when they cannot say it: a filter other than the status narrowed
    the list, the user is not a bureau's, or a higher module hides rows. This transaction's own writes are
    recounted first (so is the page's ``firm_libraries``), so the total counts them as counting the rows would."""
    count, in_library = _LIBRARIES[model]
    session = db.session()
    session.flush()
    count.recount(session)
    if listing.narrowed("status"):
        return None
    status = listing.values.get("status")

    def build() -> Any:
        counted = _library_counts(user, count, in_library)
        if counted is None:
            return None
        if status is not None:
            counted = counted.where(count.summary.c.status == status)
        return counted.scalar_subquery()

    # the same object for the same scope and status (``permissions.kept``), so the list kept with it is cut once
    return permissions.kept(user, f"list_total.{count.name}", build, status)


def firm_libraries(user: User) -> Any:
    """The bureaus whose firms are in the user's library (the firm list's library filter), as a SELECT of
    ``bureau_id`` from ``firm_count``; None where the kept counts cannot say it (``_library_counts``'s rule)."""
    where = _in_library(user, FIRMS, firm_in_library)
    return None if where is None else sa.select(FIRMS.summary.c.bureau_id).distinct().where(where)


def firms_by_status(user: User) -> Any:
    """(status, n) of the firms in the user's library — what ``scope(user, select(Firm.status, count()).group_by(
    Firm.status), Firm)`` counts — from ``firm_count``; None for a user who is not a bureau's."""
    counted = _library_counts(user, FIRMS, firm_in_library, FirmCount.status)
    return None if counted is None else counted.group_by(FirmCount.status)


def experts_total(user: User) -> Any:
    """How many experts the user's pool holds — ``scope(user, select(count(Expert.id)), Expert)`` — from
    ``expert_count``; None for a user who is not a bureau's."""
    return _library_counts(user, EXPERTS, expert_in_library)
