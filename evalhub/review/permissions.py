"""Who may manage expert review and edit rubrics (declared with core.permissions). Panels, submissions and
reviews are scoped through their engagement; an expert reaches a submission only through a panel they
accepted, which the review services check."""
from __future__ import annotations

from evalhub.core.enums import Role
from evalhub.core.permissions import own_bureau, rules

rules({
    # expert review of an engagement's submissions is the purchasing bureau's business
    "review.manage": lambda u, e: own_bureau(u, e.bureau_id),
    "rubric.edit": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and u.bureau_id == b.id),
})
