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

from typing import Any, Callable

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


def in_subtree(user: User, bureau_id: int | None) -> bool:
    visible = visible_bureau_ids(user)
    return visible is None or (bureau_id is not None and bureau_id in visible)


def own_bureau(user: User, bureau_id: int | None) -> bool:
    return user.role == Role.SYSTEM_ADMIN or (user.role in BUREAU_ROLES and user.bureau_id == bureau_id)


def library_bureau_ids_for(user: User) -> tuple[set[int], set[int]] | None:
    """(bureaus whose whole library the user sees, bureaus whose admitted library the user may use)."""
    if user.role == Role.SYSTEM_ADMIN:
        return None
    if user.role in BUREAU_ROLES and user.bureau is not None:
        return subtree_ids(user.bureau), ancestor_ids(user.bureau)
    return set(), set()


# --- row scope -------------------------------------------------------------------------------------
# Core declares the rows of its own models; each domain declares its rows and actions in its own
# ``permissions.py`` with ``row_scope`` and ``rules`` below, so this engine knows no domain (core sits under
# every module). An action or a model declared twice is a programming error and fails at import.

ScopeFn = Callable[[User, Select, type], Select]
_SCOPES: dict[type, ScopeFn] = {}
_RESTRICTIONS: dict[type, list[Callable[[Select], Select]]] = {}


def row_scope(*models: type) -> Callable[[ScopeFn], ScopeFn]:
    """Declare which rows of ``models`` a user may see: ``fn(user, stmt, model) -> stmt``."""
    def register(fn: ScopeFn) -> ScopeFn:
        for model in models:
            if model in _SCOPES:
                raise RuntimeError(f"row scope for {model.__name__} declared twice")
            _SCOPES[model] = fn
        return fn

    return register


def restrict(model: type, fn: Callable[[Select], Select]) -> None:
    """A higher module hides some rows of a lower module's model from everyone (e.g. procurement hides the
    audit events of sealed bids); applied after the row scope, for every user."""
    _RESTRICTIONS.setdefault(model, []).append(fn)


def scope(user: User, stmt: Select, model: type) -> Select:
    """Narrow a SELECT over ``model`` to the rows ``user`` may see."""
    fn = _SCOPES.get(model)
    if fn is None:
        raise NotImplementedError(f"no row scope declared for {model.__name__}")
    stmt = fn(user, stmt, model)
    for extra in _RESTRICTIONS.get(model, ()):
        stmt = extra(stmt)
    return stmt


def bureau_rows(user: User, stmt: Select, model: type, *, firm_column: Any = None,
                bureaus_only: bool = False) -> Select:
    """The common scope: the system admin sees all; bureau users see their subtree's rows (``model.bureau_id``);
    with ``firm_column`` a firm user sees its own firm's rows; everybody else nothing."""
    if user.role == Role.SYSTEM_ADMIN and not bureaus_only:
        return stmt
    if firm_column is not None and user.role == Role.FIRM_USER:
        return stmt.where(firm_column == user.firm_id)
    if user.role not in BUREAU_ROLES:
        return stmt.where(sa.false())
    return stmt.where(model.bureau_id.in_(visible_bureau_ids(user) or {-1}))


@row_scope(Bureau)
def _bureaus(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    return stmt.where(Bureau.id.in_(visible_bureau_ids(user) or {-1}))


@row_scope(BudgetUnit)
def _budget_units(user: User, stmt: Select, model: type) -> Select:
    # Budget unit names are public information; firms need them to declare recusal relations.
    return stmt


@row_scope(AuditEvent, Draw)
def _bureau_records(user: User, stmt: Select, model: type) -> Select:
    return bureau_rows(user, stmt, model)


@row_scope(Job)
def _jobs(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    if user.role == Role.BUREAU_ADMIN:
        return stmt.where(sa.or_(Job.created_by_id == user.id, Job.bureau_id.in_(visible_bureau_ids(user) or {-1})))
    return stmt.where(Job.created_by_id == user.id)


@row_scope(User)
def _users(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    if user.role == Role.BUREAU_ADMIN:
        return stmt.where(User.bureau_id.in_(visible_bureau_ids(user) or {-1}))
    return stmt.where(User.id == user.id)


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


def is_bureau_user(user: User) -> bool:
    return user.role in BUREAU_ROLES


def is_admin(user: User) -> bool:
    return user.role in (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN)


_RULES: dict[str, Callable[[User, Any], bool]] = {}


def rules(declared: dict[str, Callable[[User, Any], bool]]) -> None:
    """Declare actions: ``{"firm.edit": lambda user, firm: ...}``; each name once in the whole system."""
    for action, rule in declared.items():
        if action in _RULES:
            raise RuntimeError(f"permission action {action!r} declared twice")
        _RULES[action] = rule


rules({
    # organisation and system
    "dashboard.bureau": lambda u, o: is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "bureau.view": lambda u, b: in_subtree(u, b.id),
    "bureau.settings": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and u.bureau_id == b.id),
    "budget_unit.manage": lambda u, b: own_bureau(u, b.id),
    "user.manage": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and b is not None and u.bureau_id == b.id),
    "audit.view": lambda u, o: is_admin(u),
    "audit.verify": lambda u, o: u.role == Role.SYSTEM_ADMIN,
    "draw.view": lambda u, d: (is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN) and (d is None or visible(u, d)),
    "job.view": lambda u, j: visible(u, j),
})


def declared_actions() -> list[str]:
    return sorted(_RULES)
