"""The eligibility engine: which firms may be hired for an engagement, with a reason for every exclusion.

One function, ``assess``, used by the marketplace, bidding, random draws and framework rotation alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Callable

import sqlalchemy as sa

from evalhub.core.enums import Field
from evalhub.core.models import Bureau
from evalhub.core.settings import get_setting
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, EngagementState, ProcurementMethod
from evalhub.registry.models import Firm, FirmStatus
from evalhub.registry.services import firm_recusal_reasons


@dataclass
class Assessment:
    eligible: list[Firm] = field(default_factory=list)
    excluded: dict[int, list[str]] = field(default_factory=dict)  # firm id → reasons

    def reasons_for(self, firm: Firm) -> list[str]:
        return self.excluded.get(firm.id, [])


def field_mismatch(fields: list[Field], wanted: Field) -> list[str]:
    """A firm or expert fits an object of field X if it works in X, or in 财政经济 — performance evaluation
    is itself that discipline, so generalist evaluators fit every object."""
    if wanted in fields or Field.FINANCE in fields:
        return []
    both = f"“{wanted.label}”" + ("" if wanted == Field.FINANCE else f"或“{Field.FINANCE.label}”")
    return [f"业务领域不含{both}"]


# Checks that belong to a higher module (the credit rating's grade rules), registered by that module so
# that procurement need not know it: ``fn(firm, engagement, method) -> reasons``.
EligibilityCheck = Callable[[Firm, Engagement, ProcurementMethod], list[str]]
_CHECKS: list[EligibilityCheck] = []


def eligibility_check(fn: EligibilityCheck) -> EligibilityCheck:
    _CHECKS.append(fn)
    return fn


def library_bureau_ids(bureau: Bureau) -> set[int]:
    """An engagement may use its own bureau's library and every upper bureau's."""
    return {bureau.id} | {b.id for b in bureau.ancestors()}


def cap_reached(firm: Firm, engagement: Engagement) -> list[str]:
    """The yearly cap on key evaluations a firm takes from one bureau (setting firm.max_key_evaluations):
    checked when a firm may take part and again when it is awarded (awards made later than the bid)."""
    bureau = engagement.bureau
    cap = get_setting(bureau, "firm.max_key_evaluations")
    held = db.session.execute(
        sa.select(sa.func.count(Engagement.id)).where(
            Engagement.firm_id == firm.id, Engagement.bureau_id == bureau.id, Engagement.year == engagement.year,
            Engagement.id != engagement.id, Engagement.state != EngagementState.CANCELLED)
    ).scalar_one()
    if held >= cap:
        return [f"{engagement.year} 年已承接{bureau.short_name} {held} 项评价，达到上限 {cap} 项"]
    return []


def exclusion_reasons(firm: Firm, engagement: Engagement, method: ProcurementMethod, *,
                      on: date | None = None) -> list[str]:
    reasons: list[str] = []
    bureau = engagement.bureau
    if firm.bureau_id not in library_bureau_ids(bureau):
        reasons.append(f"不在{bureau.short_name}或其上级财政局的第三方机构库中")
    elif firm.status != FirmStatus.ADMITTED:
        reasons.append(f"机构库状态为“{firm.status.label}”")
    for check in _CHECKS:
        reasons.extend(check(firm, engagement, method))
    reasons.extend(field_mismatch(firm.fields, engagement.field))
    parties = {engagement.budget_unit_id} | ({engagement.commissioner_unit_id} if engagement.commissioner_unit_id else set())
    reasons.extend(firm_recusal_reasons(firm, bureau_ids=[] if engagement.commissioner_unit_id else [bureau.id],
                                        budget_unit_ids=parties, on=on))
    reasons.extend(cap_reached(firm, engagement))
    years = get_setting(bureau, "firm.rotation_years")
    if years:
        previous = db.session.execute(
            sa.select(Engagement.year).where(
                Engagement.firm_id == firm.id, Engagement.budget_unit_id == engagement.budget_unit_id,
                Engagement.year >= engagement.year - years, Engagement.year < engagement.year,
                Engagement.state != EngagementState.CANCELLED).order_by(Engagement.year.desc())
        ).scalars().first()
        if previous is not None:
            reasons.append(f"{previous} 年已评价{engagement.budget_unit.name}，不得连续评价同一预算单位")
    return reasons


def assess(engagement: Engagement, method: ProcurementMethod, *, on: date | None = None) -> Assessment:
    """Every firm of the usable libraries, sorted into eligible and excluded-with-reasons."""
    firms = db.session.execute(
        sa.select(Firm).where(Firm.bureau_id.in_(library_bureau_ids(engagement.bureau))).order_by(Firm.id)
    ).scalars().all()
    result = Assessment()
    for firm in firms:
        reasons = exclusion_reasons(firm, engagement, method, on=on)
        if reasons:
            result.excluded[firm.id] = reasons
        else:
            result.eligible.append(firm)
    return result
