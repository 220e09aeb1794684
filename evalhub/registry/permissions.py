"""Who may see and change firms, their staff and relations, and experts (declared with core.permissions)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.permissions import (
    is_admin, is_bureau_user, library_bureau_ids_for, own_bureau, row_scope, rules, visible,
)
from evalhub.registry.models import Expert, ExpertStatus, Firm, FirmStatus

# Applications and rejected firms of an upper bureau are that bureau's business only.
IN_LIBRARY = [FirmStatus.ADMITTED, FirmStatus.SUSPENDED, FirmStatus.REMOVED, FirmStatus.BLACKLISTED]


@row_scope(Firm)
def _firms(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    if user.role == Role.FIRM_USER:
        return stmt.where(Firm.id == user.firm_id)
    whole, usable = library_bureau_ids_for(user)
    if not (whole or usable):
        return stmt.where(sa.false())
    return stmt.where(sa.or_(Firm.bureau_id.in_(whole),
                             sa.and_(Firm.bureau_id.in_(usable or {-1}), Firm.status.in_(IN_LIBRARY))))


@row_scope(Expert)
def _experts(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    if user.role == Role.EXPERT:
        return stmt.where(Expert.id == user.expert_id)
    whole, usable = library_bureau_ids_for(user)
    if not (whole or usable):
        return stmt.where(sa.false())
    return stmt.where(sa.or_(Expert.bureau_id.in_(whole),
                             sa.and_(Expert.bureau_id.in_(usable or {-1}), Expert.status != ExpertStatus.REMOVED)))


def firm_member(user: User, firm: Any) -> bool:
    return user.role == Role.FIRM_USER and firm is not None and user.firm_id == firm.id


def _firm_edit(user: User, firm: Any) -> bool:
    if firm_member(user, firm):
        # A firm keeps its own details current, but not once it is out of the library.
        return firm.status in (FirmStatus.PENDING, FirmStatus.ADMITTED, FirmStatus.SUSPENDED)
    return own_bureau(user, firm.bureau_id)


def _expert_self(user: User, expert: Any) -> bool:
    return user.role == Role.EXPERT and expert is not None and user.expert_id == expert.id


rules({
    # firm library
    "firm.list": lambda u, o: is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "firm.view": lambda u, f: visible(u, f),
    "firm.create": lambda u, b: own_bureau(u, b.id),  # entered by bureau staff into their own library
    "firm.edit": _firm_edit,
    "firm.review": lambda u, f: own_bureau(u, f.bureau_id),  # admit or reject an application
    "firm.status": lambda u, f: is_admin(u) and own_bureau(u, f.bureau_id),  # suspend, remove, blacklist…
    "firm.staff.manage": lambda u, f: firm_member(u, f) or own_bureau(u, f.bureau_id),
    "firm.relation.manage": lambda u, f: firm_member(u, f) or own_bureau(u, f.bureau_id),
    "firm.document.view": lambda u, f: firm_member(u, f) or (u.role != Role.FIRM_USER and visible(u, f)),
    "registry.import": lambda u, b: own_bureau(u, b.id),
    # expert pool
    "expert.list": lambda u, o: is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "expert.view": lambda u, e: visible(u, e),
    "expert.create": lambda u, b: own_bureau(u, b.id),
    "expert.edit": lambda u, e: own_bureau(u, e.bureau_id),
    "expert.status": lambda u, e: is_admin(u) and own_bureau(u, e.bureau_id),
    "expert.self": lambda u, e: _expert_self(u, e) or own_bureau(u, e.bureau_id),  # availability and ties
})
