"""Who may see and manage annual credit ratings (declared with core.permissions)."""
from __future__ import annotations

from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.permissions import bureau_rows, is_admin, own_bureau, row_scope, rules, visible
from evalhub.credit.models import CreditGradeCount, CreditRating, RatingStatus


@row_scope(CreditRating)
def _ratings(user: User, stmt: Select, model: type) -> Select:
    stmt = bureau_rows(user, stmt, model, firm_column=CreditRating.firm_id)
    if user.role == Role.FIRM_USER:  # a draft is the bureau's working copy, not yet the firm's rating
        stmt = stmt.where(CreditRating.status != RatingStatus.DRAFT)
    return stmt


def _firm_reads(user: User, rating: CreditRating) -> bool:
    """A firm reads its own ratings once published (a draft is the bureau's working copy), as the scope above."""
    return user.role == Role.FIRM_USER and rating.firm_id == user.firm_id and rating.status != RatingStatus.DRAFT


@row_scope(CreditGradeCount)
def _grade_counts(user: User, stmt: Select, model: type) -> Select:
    # counts over every firm a bureau rated: the bureaus' (their subtree's), never a firm's
    return bureau_rows(user, stmt, model)


rules({
    # the list of ratings (rows by the scope above): the bureaus and the rated firms; never an expert, a budget
    # unit, nor the account of a firm not admitted (its application only: registry's account limit)
    "credit.list": lambda u, o: u.role in (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN, Role.BUREAU_STAFF, Role.FIRM_USER),
    "credit.manage": lambda u, b: own_bureau(u, b.id) and is_admin(u),
    "credit.view": lambda u, r: _firm_reads(u, r) if u.role == Role.FIRM_USER else visible(u, r),
})
