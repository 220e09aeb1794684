"""Who may manage expert review and edit rubrics, and who may be shown a stored submission's words
(declared with core.permissions). Panels, submissions and reviews are scoped through their engagement; an
expert reaches a submission only through a panel they accepted, which the review services check."""
from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.models import Bureau, User
from evalhub.core.permissions import BUREAU_ROLES, own_bureau, rules, scope, subtree_ids
from evalhub.extensions import db
from evalhub.procurement.models import Engagement
from evalhub.review.models import Publication, Submission


def quotable_submission_ids(viewer: User | Bureau, submission_ids: Iterable[int]) -> set[int]:
    """THE rule for showing one stored work plan or report to someone reading about another (a screening
    card's copied passages and similar reports, the score API's sources, a screening lead): which of
    ``submission_ids`` may be quoted — text, firm, reference, chapter, a link — to ``viewer``.

    - A user: a bureau user or the system administrator who may read the submission (its engagement is in
      the user's row scope); firms and experts: none (screening is never theirs).
    - A bureau, meaning everyone who reads that bureau's records (the bureau and the bureaus above it, as for
      a case it opens): the submissions of its own subtree.
    - Either way, a report its bureau withheld from publication as classified is quoted only to that bureau's
      own users — never to an upper bureau, the platform's administrator, or a bureau audience that includes
      an upper bureau.
    """
    ids = {int(i) for i in submission_ids if i is not None}
    if not ids:
        return set()
    not_withheld = sa.or_(Publication.id.is_(None), Publication.classified.is_(False))
    stmt = (sa.select(Submission.id).join(Engagement, Engagement.id == Submission.engagement_id)
            .outerjoin(Publication, Publication.engagement_id == Engagement.id).where(Submission.id.in_(ids)))
    if isinstance(viewer, Bureau):
        stmt = stmt.where(Engagement.bureau_id.in_(subtree_ids(viewer)), not_withheld)
    elif viewer.role == Role.SYSTEM_ADMIN:
        stmt = stmt.where(not_withheld)
    elif viewer.role in BUREAU_ROLES and viewer.bureau_id is not None:
        stmt = scope(viewer, stmt, Engagement).where(sa.or_(not_withheld, Engagement.bureau_id == viewer.bureau_id))
    else:
        return set()
    return set(db.session.execute(stmt).scalars())


rules({
    # a stored submission's words and identity, shown beside another text (see quotable_submission_ids)
    "submission.quote": lambda u, s: s.id in quotable_submission_ids(u, [s.id]),
    # expert review of an engagement's submissions is the purchasing bureau's business
    "review.manage": lambda u, e: own_bureau(u, e.bureau_id),
    "rubric.edit": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and u.bureau_id == b.id),
})
