"""Who may see and change firms, their staff and relations, and experts (declared with core.permissions)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.permissions import (
    account_limit, in_bureaus, is_admin, is_bureau_user, library_bureau_ids_for, own_bureau, row_scope, rules,
    visible,
)
from evalhub.registry.models import Expert, ExpertStatus, Firm, FirmStatus

# Applications and rejected firms of an upper bureau are that bureau's business only.
IN_LIBRARY = [FirmStatus.ADMITTED, FirmStatus.SUSPENDED, FirmStatus.REMOVED, FirmStatus.BLACKLISTED]


def library_where(user: User, bureau_column: Any, in_library: Any) -> Any:
    """What a bureau user's library lets through, on rows with ``bureau_column`` and ``in_library`` (whether the
    row is still in the library): every row of its own bureaus, and the rows still in the library of the bureaus
    above that it may use. The row scope below and the dashboard's kept counts (``registry.counts``) both ask
    this, so the two cannot count differently."""
    whole, usable = library_bureau_ids_for(user)
    if not (whole or usable):
        return sa.false()
    return sa.or_(in_bureaus(bureau_column, whole), sa.and_(in_bureaus(bureau_column, usable), in_library))


def firm_in_library(status: Any) -> Any:
    return status.in_(IN_LIBRARY)


def expert_in_library(status: Any) -> Any:
    return status != ExpertStatus.REMOVED


def _library_scope(user: User, stmt: Select, model: type, own_role: Role, own_id: int | None,
                   in_library: Any) -> Select:
    """A firm or expert library: the administrator sees every row, the firm user or expert its own, a
    bureau user the whole library of its own bureaus and the rows still in the library of those it may use."""
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    if user.role == own_role:
        return stmt.where(model.id == own_id)
    return stmt.where(library_where(user, model.bureau_id, in_library))


@row_scope(Firm)
def _firms(user: User, stmt: Select, model: type) -> Select:
    return _library_scope(user, stmt, Firm, Role.FIRM_USER, user.firm_id, firm_in_library(Firm.status))


@row_scope(Expert)
def _experts(user: User, stmt: Select, model: type) -> Select:
    return _library_scope(user, stmt, Expert, Role.EXPERT, user.expert_id, expert_in_library(Expert.status))


def firm_member(user: User, firm: Any) -> bool:
    return user.role == Role.FIRM_USER and firm is not None and user.firm_id == firm.id


def _firm_edit(user: User, firm: Any) -> bool:
    if firm_member(user, firm):
        # A firm keeps its own details current, but not once it is out of the library; a refused applicant
        # completes its papers to apply again (a refusal is no ban).
        return firm.status in (FirmStatus.PENDING, FirmStatus.ADMITTED, FirmStatus.SUSPENDED, FirmStatus.REJECTED)
    return own_bureau(user, firm.bureau_id)


def _relation_end(user: User, relation: Any) -> bool:
    """The bureau ends any relation of its library's firm; the firm only one it declared itself (a relation the
    bureau found and recorded is the bureau's record)."""
    firm = relation.firm
    if own_bureau(user, firm.bureau_id):
        return True
    if not firm_member(user, firm) or relation.created_by_id is None:
        return False
    author = relation.created_by  # read with the firm's page (``services.read_firm_details``)
    return author is not None and author.role == Role.FIRM_USER and author.firm_id == firm.id


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
    "firm.relation.end": _relation_end,
    # 重新申请入库 after a refusal or a removal: the firm itself, or its bureau for a firm it entered on paper
    "firm.reapply": lambda u, f: firm_member(u, f) or own_bureau(u, f.bureau_id),
    "firm.document.view": lambda u, f: firm_member(u, f) or (u.role != Role.FIRM_USER and visible(u, f)),
    "registry.import": lambda u, b: own_bureau(u, b.id),
    # expert pool
    "expert.list": lambda u, o: is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "expert.view": lambda u, e: visible(u, e),
    "expert.create": lambda u, b: own_bureau(u, b.id),
    "expert.edit": lambda u, e: own_bureau(u, e.bureau_id),
    "expert.status": lambda u, e: is_admin(u) and own_bureau(u, e.bureau_id),
    "expert.self": lambda u, e: _expert_self(u, e) or own_bureau(u, e.bureau_id),  # availability and ties
    # 开通账号 / 重新签发激活链接: the expert's own bureau (staff or admin); a password-reset link for an
    # account already activated is an administrator's (whoever holds the link can sign in as the expert).
    "expert.account": lambda u, e: own_bureau(u, e.bureau_id),
    "expert.account_reset": lambda u, e: is_admin(u) and own_bureau(u, e.bureau_id),
    # the firm's own accounts (机构账号管理): the firm's administrator, and the system administrator
    "firm.users.manage": lambda u, f: u.role == Role.SYSTEM_ADMIN or (firm_member(u, f) and u.is_firm_admin),
    # 开通账号 for a firm with no login yet (entered or imported by the bureau): the bureau whose library it is
    "firm.account": lambda u, f: own_bureau(u, f.bureau_id),
})


# --- a firm not yet admitted: its accounts serve the application only ---------------------------------
# Until the bureau admits the firm (and after it rejects it), the firm's users may see and complete the
# application — the firm's details, documents, staff roster and recusal relations — and nothing else:
# no procurement notices, bids, tasks, credit or API work, no account management.

APPLICATION_ACTIONS = frozenset({
    "firm.view", "firm.edit", "firm.document.view", "firm.staff.manage", "firm.relation.manage",
    "firm.relation.end", "firm.reapply",
})
APPLICANT_STATUSES = (FirmStatus.PENDING, FirmStatus.REJECTED)


@account_limit
def _applicant_only(user: User) -> frozenset[str] | None:
    if user.role != Role.FIRM_USER or user.firm_id is None:
        return None
    firm = user.firm
    if firm is not None and firm.status in APPLICANT_STATUSES:
        return APPLICATION_ACTIONS
    return None
