"""The one place that answers "may this user do this to that object" and "which rows may this user see".

Organisation scope:
- the region sees everything; a prefecture sees itself and its counties; a county sees itself only;
- a bureau *changes* only its own records (an upper bureau supervises, it does not edit a lower
  bureau's library);
- an upper bureau's firm library and expert pool are usable by (so visible to) its lower bureaus;
- a firm user sees its own firm; an expert sees their own record.
Views and the API call ``require`` / ``scope`` and never filter by hand.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.errors import PermissionDenied
from evalhub.core.models import AuditEvent, Bureau, BudgetUnit, Draw, Job, User
from evalhub.extensions import db

BUREAU_ROLES = (Role.BUREAU_ADMIN, Role.BUREAU_STAFF)


# --- organisation scope ----------------------------------------------------------------------------

def subtree_ids(bureau: Bureau) -> set[int]:
    """The bureau and every bureau below it."""
    return set(db.session.execute(sa.select(Bureau.id).where(Bureau.path.startswith(bureau.path))).scalars())


def ancestor_ids(bureau: Bureau) -> set[int]:
    return {b.id for b in bureau.ancestors()}


def visible_bureau_ids(user: User) -> set[int] | None:
    """Bureaus whose data the user may read; None means all."""
    if user.role == Role.SYSTEM_ADMIN:
        return None
    if user.role in BUREAU_ROLES and user.bureau is not None:
        return subtree_ids(user.bureau)
    return set()


def _in_subtree(user: User, bureau_id: int | None) -> bool:
    visible = visible_bureau_ids(user)
    return visible is None or (bureau_id is not None and bureau_id in visible)


def _own_bureau(user: User, bureau_id: int | None) -> bool:
    return user.role == Role.SYSTEM_ADMIN or (user.role in BUREAU_ROLES and user.bureau_id == bureau_id)


def _library_bureau_ids(user: User) -> tuple[set[int], set[int]] | None:
    """(bureaus whose whole library the user sees, bureaus whose admitted library the user may use)."""
    if user.role == Role.SYSTEM_ADMIN:
        return None
    if user.role in BUREAU_ROLES and user.bureau is not None:
        return subtree_ids(user.bureau), ancestor_ids(user.bureau)
    return set(), set()


# --- row scope -------------------------------------------------------------------------------------

def scope(user: User, stmt: Select, model: type) -> Select:
    """Narrow a SELECT over ``model`` to the rows ``user`` may see."""
    from evalhub.registry.models import Expert, ExpertStatus, Firm, FirmStatus

    from evalhub.procurement.models import Bid, Engagement, EvaluationPlan, Procurement

    if model is Bid and user.role == Role.SYSTEM_ADMIN:
        # Sealed bids are sealed for the platform's own administrators too.
        return stmt.where(Bid.procurement_id.in_(sa.select(Procurement.id).where(Procurement.opened_at.is_not(None))))
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    if model is Firm:
        if user.role == Role.FIRM_USER:
            return stmt.where(Firm.id == user.firm_id)
        libraries = _library_bureau_ids(user)
        if not libraries or not (libraries[0] or libraries[1]):
            return stmt.where(sa.false())
        whole, usable = libraries
        # Applications and rejected firms of an upper bureau are that bureau's business only.
        in_library = [FirmStatus.ADMITTED, FirmStatus.SUSPENDED, FirmStatus.REMOVED, FirmStatus.BLACKLISTED]
        return stmt.where(sa.or_(Firm.bureau_id.in_(whole),
                                 sa.and_(Firm.bureau_id.in_(usable or {-1}), Firm.status.in_(in_library))))
    if model is Expert:
        if user.role == Role.EXPERT:
            return stmt.where(Expert.id == user.expert_id)
        libraries = _library_bureau_ids(user)
        if not libraries or not (libraries[0] or libraries[1]):
            return stmt.where(sa.false())
        whole, usable = libraries
        return stmt.where(sa.or_(Expert.bureau_id.in_(whole),
                                 sa.and_(Expert.bureau_id.in_(usable or {-1}), Expert.status != ExpertStatus.REMOVED)))
    if model is Bureau:
        visible = visible_bureau_ids(user)
        return stmt.where(Bureau.id.in_(visible or {-1}))
    if model is BudgetUnit:
        # Budget unit names are public information; firms need them to declare recusal relations.
        return stmt
    if model in (EvaluationPlan, Engagement, Procurement):
        if model is Engagement and user.role == Role.FIRM_USER:
            return stmt.where(Engagement.firm_id == user.firm_id)
        if user.role not in BUREAU_ROLES:
            return stmt.where(sa.false())
        return stmt.where(model.bureau_id.in_(visible_bureau_ids(user) or {-1}))
    from evalhub.credit.models import CreditRating
    from evalhub.screening.models import ReportScreening
    from evalhub.supervision.models import Complaint, Inspection, InspectionCampaign

    if model is ReportScreening:
        # Screening results are the bureaus' own working material: never shown to firms or experts.
        if user.role not in BUREAU_ROLES:
            return stmt.where(sa.false())
        return stmt.where(model.bureau_id.in_(visible_bureau_ids(user) or {-1}))

    if model in (CreditRating, Inspection):
        if user.role == Role.FIRM_USER:
            return stmt.where(model.firm_id == user.firm_id)
        if user.role not in BUREAU_ROLES:
            return stmt.where(sa.false())
        return stmt.where(model.bureau_id.in_(visible_bureau_ids(user) or {-1}))
    if model in (InspectionCampaign, Complaint):
        if user.role not in BUREAU_ROLES:
            return stmt.where(sa.false())
        return stmt.where(model.bureau_id.in_(visible_bureau_ids(user) or {-1}))
    if model is Bid:
        if user.role == Role.FIRM_USER:
            return stmt.where(Bid.firm_id == user.firm_id)
        if user.role not in BUREAU_ROLES:
            return stmt.where(sa.false())
        # Sealed: a bureau sees bids only once they have been opened after the deadline.
        opened = sa.select(Procurement.id).where(Procurement.opened_at.is_not(None),
                                                 Procurement.bureau_id.in_(visible_bureau_ids(user) or {-1}))
        return stmt.where(Bid.procurement_id.in_(opened))
    if model in (AuditEvent, Draw):
        if user.role not in BUREAU_ROLES:
            return stmt.where(sa.false())
        return stmt.where(model.bureau_id.in_(visible_bureau_ids(user) or {-1}))
    if model is Job:
        if user.role == Role.BUREAU_ADMIN:
            return stmt.where(sa.or_(Job.created_by_id == user.id, Job.bureau_id.in_(visible_bureau_ids(user) or {-1})))
        return stmt.where(Job.created_by_id == user.id)
    if model is User:
        if user.role == Role.BUREAU_ADMIN:
            return stmt.where(User.bureau_id.in_(visible_bureau_ids(user) or {-1}))
        return stmt.where(User.id == user.id)
    raise NotImplementedError(f"no row scope declared for {model.__name__}")


def visible(user: User, obj: Any) -> bool:
    model = type(obj)
    stmt = scope(user, sa.select(model.id).where(model.id == obj.id), model)
    return db.session.execute(stmt).first() is not None


# --- actions ---------------------------------------------------------------------------------------

def can(user: User | None, action: str, obj: Any = None) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    rule = _RULES.get(action)
    if rule is None:
        raise KeyError(f"undeclared permission action {action!r}")
    return bool(rule(user, obj))


def require(user: User | None, action: str, obj: Any = None) -> None:
    if not can(user, action, obj):
        raise PermissionDenied()


def _is_bureau_user(user: User) -> bool:
    return user.role in BUREAU_ROLES


def _is_admin(user: User) -> bool:
    return user.role in (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN)


def _firm_member(user: User, firm: Any) -> bool:
    return user.role == Role.FIRM_USER and firm is not None and user.firm_id == firm.id


def _firm_view(user: User, firm: Any) -> bool:
    return visible(user, firm)


def _firm_edit(user: User, firm: Any) -> bool:
    from evalhub.registry.models import FirmStatus

    if _firm_member(user, firm):
        # A firm keeps its own details current, but not once it is out of the library.
        return firm.status in (FirmStatus.PENDING, FirmStatus.ADMITTED, FirmStatus.SUSPENDED)
    return _own_bureau(user, firm.bureau_id)


def _marketplace_visible(user: User, procurement: Any) -> bool:
    """A firm sees a procurement notice of any library it belongs to, and any procurement it bid in."""
    if user.role != Role.FIRM_USER or user.firm is None:
        return False
    from evalhub.procurement.eligibility import library_bureau_ids

    return (user.firm.bureau_id in library_bureau_ids(procurement.bureau)
            or any(b.firm_id == user.firm_id for b in procurement.bids))


def _expert_self(user: User, expert: Any) -> bool:
    return user.role == Role.EXPERT and expert is not None and user.expert_id == expert.id


_RULES = {
    # organisation and system
    "dashboard.bureau": lambda u, o: _is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "bureau.view": lambda u, b: _in_subtree(u, b.id),
    "bureau.settings": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and u.bureau_id == b.id),
    "budget_unit.manage": lambda u, b: _own_bureau(u, b.id),
    "user.manage": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and b is not None and u.bureau_id == b.id),
    "audit.view": lambda u, o: _is_admin(u),
    "audit.verify": lambda u, o: u.role == Role.SYSTEM_ADMIN,
    "draw.view": lambda u, d: (_is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN) and (d is None or visible(u, d)),
    "job.view": lambda u, j: visible(u, j),
    # firm library
    "firm.list": lambda u, o: _is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "firm.view": _firm_view,
    "firm.create": lambda u, b: _own_bureau(u, b.id),  # entered by bureau staff into their own library
    "firm.edit": _firm_edit,
    "firm.review": lambda u, f: _own_bureau(u, f.bureau_id),  # admit or reject an application
    "firm.status": lambda u, f: _is_admin(u) and _own_bureau(u, f.bureau_id),  # suspend, remove, blacklist…
    "firm.staff.manage": lambda u, f: _firm_member(u, f) or _own_bureau(u, f.bureau_id),
    "firm.relation.manage": lambda u, f: _firm_member(u, f) or _own_bureau(u, f.bureau_id),
    "firm.document.view": lambda u, f: _firm_member(u, f) or (u.role != Role.FIRM_USER and visible(u, f)),
    "registry.import": lambda u, b: _own_bureau(u, b.id),
    # plans, engagements, procurement
    "plan.list": lambda u, o: _is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "plan.edit_bureau": lambda u, b: _own_bureau(u, b.id),
    "plan.view": lambda u, p: visible(u, p),
    "plan.edit": lambda u, p: _own_bureau(u, p.bureau_id),
    "plan.approve": lambda u, p: _is_admin(u) and _own_bureau(u, p.bureau_id),
    "engagement.list": lambda u, o: _is_bureau_user(u) or u.role in (Role.SYSTEM_ADMIN, Role.FIRM_USER),
    "engagement.view": lambda u, e: visible(u, e),
    "procurement.manage": lambda u, e: _own_bureau(u, e.bureau_id),
    "procurement.approve": lambda u, p: _is_admin(u) and _own_bureau(u, p.bureau_id),
    "procurement.view": lambda u, p: visible(u, p) or _marketplace_visible(u, p),
    "bid.view": lambda u, b: visible(u, b),
    "marketplace.use": lambda u, o: u.role == Role.FIRM_USER,
    # credit rating and supervision
    "credit.manage": lambda u, b: _own_bureau(u, b.id) and _is_admin(u),
    "credit.view": lambda u, r: visible(u, r) or (u.role == Role.FIRM_USER and r.firm_id == u.firm_id),
    "supervision.manage": lambda u, b: _own_bureau(u, b.id),
    "inspection.view": lambda u, i: visible(u, i) or (u.role == Role.FIRM_USER and i.firm_id == u.firm_id),
    # report screening (bureau users only; the firm never sees a risk score)
    "screening.view": lambda u, o: _is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "screening.card": lambda u, s: visible(u, s),
    # Models are shared by the whole region: the region's administrators train and promote them.
    "screening.models.manage": lambda u, o: u.role == Role.SYSTEM_ADMIN or (
        u.role == Role.BUREAU_ADMIN and u.bureau is not None and u.bureau.parent_id is None),
    # expert review
    "review.manage": lambda u, e: _own_bureau(u, e.bureau_id),
    "rubric.edit": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and u.bureau_id == b.id),
    # expert pool
    "expert.list": lambda u, o: _is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "expert.view": lambda u, e: visible(u, e),
    "expert.create": lambda u, b: _own_bureau(u, b.id),
    "expert.edit": lambda u, e: _own_bureau(u, e.bureau_id),
    "expert.status": lambda u, e: _is_admin(u) and _own_bureau(u, e.bureau_id),
    "expert.self": lambda u, e: _expert_self(u, e) or _own_bureau(u, e.bureau_id),  # availability and ties
}


def declared_actions() -> list[str]:
    return sorted(_RULES)
