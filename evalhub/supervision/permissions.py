"""Who may see and run inspections, campaigns and complaints (declared with core.permissions)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.permissions import BUREAU_ROLES, bureau_rows, grant, own_bureau, row_scope, rules, visible
from evalhub.extensions import db
from evalhub.registry.models import ExpertStatus
from evalhub.supervision.models import Complaint, Inspection, InspectionCampaign, InspectionStatus, Inspector


@row_scope(Inspection)
def _inspections(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.EXPERT:  # an expert: the cases it is seated on (``inspection.view``), on the API's list too
        if user.expert_id is None:
            return stmt.where(sa.false())
        return stmt.where(Inspection.id.in_(sa.select(Inspector.inspection_id).where(Inspector.expert_id == user.expert_id)))
    return bureau_rows(user, stmt, model, firm_column=Inspection.firm_id)


@row_scope(InspectionCampaign, Complaint)
def _bureau_only(user: User, stmt: Select, model: type) -> Select:
    return bureau_rows(user, stmt, model)


def _inspects(user: User, inspection: Inspection) -> bool:
    """An inspector reads the case they inspect (an upper bureau's officer, or an expert through their account)."""
    return any((p.user_id and p.user_id == user.id) or (p.expert_id and user.role == Role.EXPERT and p.expert_id == user.expert_id)
               for p in inspection.inspectors)


rules({
    # the list of cases (rows by the scope above): the bureaus, the inspected firms, the experts seated on a case;
    # never a budget unit, nor the account of a firm not admitted (its application only: registry's account limit)
    "inspection.list": lambda u, o: u.role in (Role.SYSTEM_ADMIN, *BUREAU_ROLES, Role.FIRM_USER, Role.EXPERT),
    "supervision.manage": lambda u, b: own_bureau(u, b.id),
    "inspection.view": lambda u, i: visible(u, i) or (u.role == Role.FIRM_USER and i.firm_id == u.firm_id)
    or _inspects(u, i),
})


def _inspects_engagement(user: User, engagement: Any) -> bool:
    """An inspector seated (not recused: 申报回避 gives the seat up) on an open case of the engagement reads the
    engagement and what the firm handed in (the checklist asks whether the working papers and the report hold up):
    an expert drawn or named from the pool sees nothing of it otherwise. Only while the case is open."""
    if user.role == Role.EXPERT and user.expert_id is not None:
        if user.expert is None or user.expert.status != ExpertStatus.ACTIVE:
            return False  # suspended or removed since: an expert out of the pool reads nothing of the case
        seat = Inspector.expert_id == user.expert_id
    elif user.role in BUREAU_ROLES:  # an officer of the bureau or one above already sees it; asked for completeness
        seat = Inspector.user_id == user.id
    else:
        return False
    return db.session.execute(sa.select(Inspector.id).join(Inspection, Inspection.id == Inspector.inspection_id).where(
        Inspection.engagement_id == engagement.id, Inspection.status != InspectionStatus.CLOSED, seat).limit(1)).first() is not None


# procurement's "engagement.view" (and so review's submissions, which ask it) lets a case's inspectors read it
grant("engagement.view", _inspects_engagement)
