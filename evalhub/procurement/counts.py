"""The engagement list's total, kept on write (issue 18).

The unfiltered list (web and API) showed how many engagements the user may see by counting every one in scope:
an index-only scan that doubles with the history (the region's admin at province scale: 1.7 ms at 1x, 3.5 ms at
2x). ``engagement_count`` holds each bureau's number, kept by ``core.summaries`` (recounted for each bureau a
transaction wrote, just before it commits); ``list_total`` sums it over the user's tree when the list has no
filter and the user's scope is nothing or only "bureau in my tree" (``permissions.bureau_rows``), and says None
otherwise (a firm's scope, any filter: the list counts as before).
"""
from __future__ import annotations

from typing import Any

from evalhub.core.listing import Listing
from evalhub.core.models import User
from evalhub.core.summaries import KeptCount
from evalhub.procurement.models import Engagement, EngagementCount

# a state change or a due date moves no count: only the bureau (the key) matters
ENGAGEMENTS = KeptCount("procurement.engagement_counts", Engagement, ("bureau_id",), EngagementCount.__table__)


def list_total(user: User, listing: Listing) -> Any:
    """The number of rows of an engagement list over ``scoped(Engagement)`` as a scalar subquery over
    ``engagement_count`` (for ``page_rows(total=…)``), or None when the kept counts cannot say it: the list is
    filtered, or the user's scope is other than every row or the bureaus of the user's tree (a firm's
    engagements; any restriction a higher module registers: ``KeptCount.scope_total``)."""
    if listing.narrowed():
        return None
    return ENGAGEMENTS.scope_total(user, Engagement)
