"""Who may see and run inspections, campaigns and complaints (declared with core.permissions)."""
from __future__ import annotations

from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.permissions import bureau_rows, own_bureau, row_scope, rules, visible
from evalhub.supervision.models import Complaint, Inspection, InspectionCampaign


@row_scope(Inspection)
def _inspections(user: User, stmt: Select, model: type) -> Select:
    return bureau_rows(user, stmt, model, firm_column=Inspection.firm_id)


@row_scope(InspectionCampaign, Complaint)
def _bureau_only(user: User, stmt: Select, model: type) -> Select:
    return bureau_rows(user, stmt, model)


def _inspects(user: User, inspection: Inspection) -> bool:
    """An inspector reads the case they inspect (an upper bureau's officer, or an expert through their account)."""
    return any((p.user_id and p.user_id == user.id) or (p.expert_id and user.role == Role.EXPERT and p.expert_id == user.expert_id)
               for p in inspection.inspectors)


rules({
    "supervision.manage": lambda u, b: own_bureau(u, b.id),
    "inspection.view": lambda u, i: visible(u, i) or (u.role == Role.FIRM_USER and i.firm_id == u.firm_id)
    or _inspects(u, i),
})
