"""Who sees and does what in the results loop (declared with core.permissions).

- A budget-unit user (Role.BUDGET_UNIT) sees its unit and the units under it (organisations.unit_subtree_ids):
  the engagements evaluating them (timeline, firm, lead evaluator — never the experts) and the confirmed
  findings they must rectify; it answers those findings. A unit named responsible for a finding of an
  engagement evaluating another unit sees that engagement's page with its own findings only.
- The contracted firm enters the findings of its accepted report; the bureau that owns the engagement
  confirms and verifies them; bureaus above read (they supervise, they do not edit).
- The results-application list: read by the bureau and the bureaus above it (a prefecture sees its counties'
  lists; a sibling county does not), built and confirmed by the bureau's own staff, filed by its admin.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import BudgetUnit, User
from evalhub.core.organisations import unit_subtree_ids
from evalhub.core.permissions import (
    BUREAU_ROLES, bureau_rows, in_subtree, is_admin, is_bureau_user, own_bureau, row_scope, rules, visible,
)
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, EngagementState
from evalhub.results.models import (
    ApplicationEntry, ApplicationFiling, MaterialRequest, ResultFinding, FindingStatus, RectificationReport,
)
from evalhub.review.models import SelfEvaluation

# Findings exist from acceptance on: before that the report is still the firm's and the panel's.
RESULT_STATES = (EngagementState.ACCEPTED, EngagementState.PUBLISHED, EngagementState.ARCHIVED)


def unit_ids(user: User) -> set[int]:
    """The budget units a budget-unit user acts for: its own and every unit under it."""
    if user.role != Role.BUDGET_UNIT or user.budget_unit_id is None:
        return set()
    unit = db.session.get(BudgetUnit, user.budget_unit_id)
    return unit_subtree_ids(unit) if unit is not None else set()


def is_unit_user(user: User) -> bool:
    return user.role == Role.BUDGET_UNIT and user.budget_unit_id is not None


def unit_engagement(user: User, engagement: Any) -> bool:
    return engagement is not None and is_unit_user(user) and engagement.budget_unit_id in unit_ids(user)


def evaluated_ids(user: User, engagements) -> set[int]:
    """Of ``engagements``, those ``user``'s units are evaluated in (``unit_engagement`` for each, the units read
    once for the list)."""
    units = unit_ids(user) if is_unit_user(user) else set()
    return {e.id for e in engagements if e.budget_unit_id in units}


def responsible_engagement_ids(ids: set[int]) -> Select:
    """Engagements with a confirmed finding the units ``ids`` are responsible for (not evaluated by them: a
    finding names any unit of the bureau, e.g. the 民政局 whose funds the evaluated 统计局 was waiting for)."""
    return sa.select(ResultFinding.engagement_id).where(ResultFinding.responsible_unit_id.in_(ids or {-1}),
                                                        ResultFinding.status != FindingStatus.DRAFT)


def unit_findings(user: User, engagement: Any) -> bool:
    """The unit's page of an engagement: the evaluated unit, or a unit the bureau named responsible for one of
    its confirmed findings — that one reads and answers its own findings there, nothing else of the engagement."""
    if unit_engagement(user, engagement):
        return True
    if engagement is None or not is_unit_user(user):
        return False
    return db.session.execute(responsible_engagement_ids(unit_ids(user))
                              .where(ResultFinding.engagement_id == engagement.id).limit(1)).first() is not None


def _firm_engagements(user: User):
    return sa.select(Engagement.id).where(Engagement.firm_id == user.firm_id)


@row_scope(ResultFinding)
def _findings(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.BUDGET_UNIT:
        ids = unit_ids(user) or {-1}
        # A unit sees what the bureau confirmed, about itself or about an engagement evaluating it.
        units = sa.or_(ResultFinding.responsible_unit_id.in_(ids),
                       ResultFinding.engagement_id.in_(sa.select(Engagement.id).where(Engagement.budget_unit_id.in_(ids))))
        return stmt.where(ResultFinding.status != FindingStatus.DRAFT, units)
    if user.role == Role.FIRM_USER:
        return stmt.where(ResultFinding.engagement_id.in_(_firm_engagements(user)))
    return bureau_rows(user, stmt, model)


@row_scope(RectificationReport)
def _reports(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.BUDGET_UNIT:
        ids = unit_ids(user) or {-1}
        return stmt.where(RectificationReport.engagement_id.in_(
            sa.select(Engagement.id).where(Engagement.budget_unit_id.in_(ids))))
    if user.role in BUREAU_ROLES or user.role == Role.SYSTEM_ADMIN:
        return stmt.where(RectificationReport.engagement_id.in_(bureau_rows(user, sa.select(Engagement.id), Engagement)))
    return stmt.where(sa.false())


@row_scope(ApplicationEntry, ApplicationFiling)
def _application(user: User, stmt: Select, model: type) -> Select:
    return bureau_rows(user, stmt, model)


def _enters(user: User, engagement: Any) -> bool:
    """The contracted firm (its own report) or the engagement's own bureau."""
    if engagement is None:
        return False
    if user.role == Role.FIRM_USER:
        return engagement.firm_id is not None and engagement.firm_id == user.firm_id
    return own_bureau(user, engagement.bureau_id)


def _answers(user: User, finding: Any) -> bool:
    return finding is not None and is_unit_user(user) and finding.responsible_unit_id in unit_ids(user)


@row_scope(SelfEvaluation)
def _self_evaluations(user: User, stmt: Select, model: type) -> Select:
    """A unit's own (and its subtree's) self-evaluations; its bureau and the bureaus above; nobody else."""
    if user.role == Role.BUDGET_UNIT:
        return stmt.where(SelfEvaluation.budget_unit_id.in_(unit_ids(user) or {-1}))
    if user.role in BUREAU_ROLES or user.role == Role.SYSTEM_ADMIN:
        return bureau_rows(user, stmt, model)
    return stmt.where(sa.false())


@row_scope(MaterialRequest)
def _materials(user: User, stmt: Select, model: type) -> Select:
    """The 资料清单: the firm that asked, the unit asked, the bureaus that read the engagement."""
    if user.role == Role.BUDGET_UNIT:
        return stmt.where(MaterialRequest.engagement_id.in_(
            sa.select(Engagement.id).where(Engagement.budget_unit_id.in_(unit_ids(user) or {-1}))))
    if user.role == Role.FIRM_USER:
        return stmt.where(MaterialRequest.engagement_id.in_(_firm_engagements(user)))
    if user.role in BUREAU_ROLES or user.role == Role.SYSTEM_ADMIN:
        return stmt.where(MaterialRequest.engagement_id.in_(bureau_rows(user, sa.select(Engagement.id), Engagement)))
    return stmt.where(sa.false())


def _unit_self_evaluation(user: User, se: Any) -> bool:
    return se is not None and is_unit_user(user) and se.budget_unit_id in unit_ids(user)


def _firm_of(user: User, engagement: Any) -> bool:
    return (engagement is not None and user.role == Role.FIRM_USER and engagement.firm_id is not None
            and engagement.firm_id == user.firm_id)


rules({
    # self-evaluation reviews: the unit hands in (for itself or a unit under it) and resubmits; its bureau
    # manages the panel ("review.manage"), the bureaus above read.
    "self_evaluation.submit": lambda u, unit: unit is not None and is_unit_user(u) and unit.id in unit_ids(u),
    "self_evaluation.resubmit": _unit_self_evaluation,
    "self_evaluation.view": lambda u, se: se is not None and (_unit_self_evaluation(u, se) or (
        (is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN) and in_subtree(u, se.bureau_id))),
    "self_evaluation.list": lambda u, o: is_unit_user(u) or is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    # 资料清单 during fieldwork: the contracted firm lists, the evaluated unit uploads
    "material.request": _firm_of,
    "material.upload": lambda u, m: m is not None and unit_engagement(u, m.engagement),
    "material.view": lambda u, e: e is not None and (unit_engagement(u, e) or _firm_of(u, e) or visible(u, e)),
})


rules({
    "results.unit_home": lambda u, o: is_unit_user(u),
    "results.unit_engagement": unit_engagement,  # the evaluated unit: the whole unit page
    "results.unit_findings": unit_findings,  # the page itself; a responsible unit sees its own findings only
    "finding.view": lambda u, f: visible(u, f),
    "finding.enter": _enters,
    "finding.confirm": lambda u, e: e is not None and own_bureau(u, e.bureau_id),
    "finding.answer": _answers,
    "finding.verify": lambda u, f: f is not None and own_bureau(u, f.bureau_id),
    "rectification.report": lambda u, e: e is not None and (unit_engagement(u, e) or (
        (is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN) and in_subtree(u, e.bureau_id))),
    "rectification.sign": unit_engagement,
    "publication.unit_record": unit_engagement,
    "fact.send": lambda u, e: e is not None and u.role == Role.FIRM_USER and e.firm_id is not None
    and e.firm_id == u.firm_id,
    "fact.answer": unit_engagement,
    "fact.row_answer": lambda u, r: r is not None and unit_engagement(u, r.engagement),
    "fact.row_send": lambda u, r: r is not None and u.role == Role.FIRM_USER and r.engagement.firm_id == u.firm_id,
    "fact.view": lambda u, e: e is not None and (unit_engagement(u, e) or visible(u, e)),
    "results.list": lambda u, o: is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "results.view_bureau": lambda u, b: b is not None and (is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN)
    and in_subtree(u, b.id),
    "results.manage": lambda u, b: b is not None and is_bureau_user(u) and own_bureau(u, b.id),
    "application.confirm": lambda u, e: e is not None and is_bureau_user(u) and own_bureau(u, e.bureau_id),
    "results.file": lambda u, b: b is not None and is_admin(u) and own_bureau(u, b.id),
    # A bureau's admin creates the accounts of its own budget units (as it creates its staff's).
    "unit_account.create": lambda u, unit: unit is not None and is_admin(u) and own_bureau(u, unit.bureau_id),
})
