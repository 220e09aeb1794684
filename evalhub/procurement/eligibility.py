"""The eligibility engine: which firms may be hired for an engagement, with a reason for every exclusion.

One rule set, ``exclusion_reasons``: ``assess`` sorts a library with it for the marketplace, random draws
and framework rotation; ``assert_eligible`` applies it to one firm at the bid, and again at the award and the
contract (a firm's standing can change in between).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from evalhub.core import bureau_tree
from evalhub.core.batches import batches
from evalhub.core.concurrency import serialise
from evalhub.core.enums import Field
from evalhub.core.errors import Conflict
from evalhub.core.models import Bureau
from evalhub.core.settings import get_setting
from evalhub.extensions import db
from evalhub.procurement.models import (
    Award, Contract, Engagement, EngagementState, ObjectType, Procurement, ProcurementMethod, ProcurementStatus,
)
from evalhub.registry.models import Firm, FirmRelation, FirmStatus
from evalhub.registry.services import Parties, conflict_parties, firm_recusal_reasons


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
# that procurement need not know it. A check answers for a set of firms at once — a library is assessed whole
# (hundreds of firms at province scale), so a check reads what it needs for all of them in a few statements:
# ``fn(firms, engagement, method) -> {firm id: reasons}`` (a firm with none may be left out).
EligibilityCheck = Callable[[list[Firm], Engagement, ProcurementMethod], dict[int, list[str]]]
_CHECKS: list[EligibilityCheck] = []
# The rule each registered check applies, in words, so pages show the rule the check enforces (one text).
_RULES: dict[EligibilityCheck, Callable[[Bureau], str]] = {}


def eligibility_check(fn: EligibilityCheck | None = None, *, rule: Callable[[Bureau], str] | None = None):
    """Register ``fn``; ``rule(bureau)`` states it for the rule list on procurement pages. Usable bare
    (``@eligibility_check``) or with the rule (``@eligibility_check(rule=...)``)."""
    def register(check: EligibilityCheck) -> EligibilityCheck:
        if check not in _CHECKS:
            _CHECKS.append(check)
        if rule is not None:
            _RULES[check] = rule
        return check
    return register(fn) if fn is not None else register


def rules(bureau: Bureau) -> list[str]:
    """Every rule ``exclusion_reasons`` applies, in Chinese, with the bureau's own numbers — for the pages
    that explain who may take part (the procurement form, the marketplace)."""
    cap = get_setting(bureau, "firm.max_key_evaluations")
    years = get_setting(bureau, "firm.rotation_years")
    out = [f"须为{bureau.short_name}或其上级财政局第三方机构库中状态为“已入库”的机构（定标、签订合同时再次核对）",
           f"业务领域须含评价对象所属领域或“{Field.FINANCE.label}”",
           "与委托方或被评价单位存在回避关系的机构不得参与",
           f"每家机构每年承接{bureau.short_name}的评价不超过 {cap} 项（已中标尚未签约的计入）"]
    if years:
        out.append(f"前 {years} 年内评价过同一预算单位的机构不得再评价该单位（不得连续评价）")
    out.extend(rule(bureau) for check, rule in _RULES.items() if check in _CHECKS)
    return out


def library_bureau_ids(bureau: Bureau) -> set[int]:
    """An engagement may use its own bureau's library and every upper bureau's."""
    return set(bureau_tree.chain_ids(bureau))


# Engagements whose firm is settled: contracted or further on (state not before the contract).
_UNSETTLED = (EngagementState.PLANNED, EngagementState.PROCURING, EngagementState.FAILED_PROCUREMENT,
              EngagementState.CANCELLED)


def held_counts(firm_ids: list[int], bureau_id: int, year: int, *, besides: int | None = None) -> dict[int, int]:
    """For each of these firms (absent: none), how many of the bureau's engagements of ``year`` it holds or is
    about to hold: contracted ones, and those where it is the winner of a standing award whose contract is not
    yet signed (a pending award counts, or a firm could collect awards in several procurements at once past the
    cap). ``besides`` is left out, so the engagement being awarded counts once, whether or not its award is
    written yet. A statement per 500 firms; each way of holding one is read on the bureau's year only (the
    engagement joined in each), then counted once."""
    def on_the_year(stmt: sa.Select) -> sa.Select:
        stmt = stmt.where(Engagement.bureau_id == bureau_id, Engagement.year == year,
                          Engagement.state != EngagementState.CANCELLED)
        return stmt.where(Engagement.id != besides) if besides is not None else stmt

    out: dict[int, int] = {}
    for part in batches(sorted(set(firm_ids))):
        pairs = sa.union(  # (firm, engagement), each once: a standing award, a signed contract, a settled firm
            on_the_year(sa.select(Award.firm_id.label("firm_id"), Engagement.id.label("engagement_id"))
                        .join(Procurement, Procurement.id == Award.procurement_id)
                        .join(Engagement, Engagement.id == Award.engagement_id)
                        .where(Award.firm_id.in_(part), Procurement.status == ProcurementStatus.AWARDED)),
            on_the_year(sa.select(Contract.firm_id, Engagement.id).join(Engagement, Engagement.id == Contract.engagement_id)
                        .where(Contract.firm_id.in_(part))),
            on_the_year(sa.select(Engagement.firm_id, Engagement.id).where(Engagement.firm_id.in_(part),
                                                                           Engagement.state.not_in(_UNSETTLED)))).subquery()
        out.update(db.session.execute(sa.select(pairs.c.firm_id, sa.func.count()).group_by(pairs.c.firm_id)).all())
    return out


def caps_reached(firms: list[Firm], engagement: Engagement) -> dict[int, list[str]]:
    """The yearly cap on evaluations a firm takes from one bureau (setting firm.max_key_evaluations), for each
    of these firms, their holdings counted at once: checked when a firm may take part and again at award and
    contract, counting awards made and pending."""
    bureau = engagement.bureau
    cap = get_setting(bureau, "firm.max_key_evaluations")
    held = held_counts([f.id for f in firms], bureau.id, engagement.year, besides=engagement.id)
    return {f.id: [f"{engagement.year} 年已承接或已中标{bureau.short_name} {held[f.id]} 项评价（含尚未签约的），"
                   f"达到上限 {cap} 项"] for f in firms if held.get(f.id, 0) >= cap}


def exclusion_reasons(firm: Firm, engagement: Engagement, method: ProcurementMethod, *,
                      on: date | None = None) -> list[str]:
    return exclusions([firm], engagement, method, on=on)[firm.id]


def exclusions(firms: list[Firm], engagement: Engagement, method: ProcurementMethod, *,
               on: date | None = None) -> dict[int, list[str]]:
    """Each firm's reasons not to take part in ``engagement`` by ``method`` (empty: it may), every rule applied
    to all the firms at once: a rule reads what it needs for the whole set, not a statement per firm."""
    bureau = engagement.bureau
    libraries = library_bureau_ids(bureau)
    reasons: dict[int, list[str]] = {f.id: [] for f in firms}
    for firm in firms:
        if firm.bureau_id not in libraries:
            reasons[firm.id].append(f"不在{bureau.short_name}或其上级财政局的第三方机构库中")
        elif firm.status != FirmStatus.ADMITTED:
            reasons[firm.id].append(f"机构库状态为“{firm.status.label}”")
    for check in _CHECKS:
        for firm_id, found in check(firms, engagement, method).items():
            reasons[firm_id].extend(found)
    fields = Firm.fields_of(f.id for f in firms)
    _hold_relations(firms)
    parties = engagement_parties(engagement)
    capped = caps_reached(firms, engagement)
    rotated = rotations(firms, engagement)
    for firm in firms:
        reasons[firm.id].extend(field_mismatch(fields[firm.id], engagement.field))
        reasons[firm.id].extend(firm_recusal_reasons(firm, parties=parties, on=on))
        reasons[firm.id].extend(capped.get(firm.id, []))
        reasons[firm.id].extend(rotated.get(firm.id, []))
    return reasons


def _hold_relations(firms: list[Firm]) -> None:
    """Read the recusal relations of the firms whose ``relations`` are not loaded yet, in a statement per 500,
    into ``firm.relations`` (``firm_recusal_reasons`` reads them there)."""
    wanted = [f for f in firms if "relations" not in f.__dict__]
    found: dict[int, list[FirmRelation]] = {f.id: [] for f in wanted}
    for part in batches([f.id for f in wanted]):
        for relation in db.session.execute(sa.select(FirmRelation).where(FirmRelation.firm_id.in_(part))
                                           .order_by(FirmRelation.id)).scalars():
            found[relation.firm_id].append(relation)
    for firm in wanted:
        set_committed_value(firm, "relations", found[firm.id])


def evaluated_government(engagement: Engagement) -> Bureau | None:
    """The lower government a 下级政府财政运行评价 evaluates: the bureau of its evaluated budget unit, when that
    bureau is below the engagement's own (a plan item may name a unit of a lower bureau); else None."""
    unit = engagement.budget_unit
    if engagement.plan_item.object_type != ObjectType.LOWER_GOVERNMENT or unit.bureau_id == engagement.bureau_id:
        return None
    return unit.bureau


def engagement_parties(engagement: Engagement) -> Parties:
    """Everyone a firm, an expert or an inspector of this engagement must be independent of (H3, issue 14):
    the evaluated unit and the commissioner (a unit, or the bureau itself) with the budget-unit tree up and
    down, and for a lower-government evaluation that government's finance bureau and all its units."""
    return conflict_parties(evaluated_units=[engagement.budget_unit],
                            commissioner_units=[engagement.commissioner_unit] if engagement.commissioner_unit else [],
                            commissioner_bureaus=[] if engagement.commissioner_unit_id else [engagement.bureau],
                            evaluated_governments=[g for g in [evaluated_government(engagement)] if g is not None])


def rotations(firms: list[Firm], engagement: Engagement) -> dict[int, list[str]]:
    """No firm evaluates the same budget unit in consecutive years (setting firm.rotation_years), for each of
    these firms: the nearest year each evaluated the unit, read at once. Both directions count: an engagement
    procured late (last year's, awarded this year) must not sit next to the year the firm already holds."""
    years = get_setting(engagement.bureau, "firm.rotation_years")
    if not years or not firms:
        return {}
    near: dict[int, int] = {}
    for part in batches(sorted({f.id for f in firms})):
        for firm_id, year in db.session.execute(
                sa.select(Engagement.firm_id, sa.func.max(Engagement.year)).where(
                    Engagement.firm_id.in_(part), Engagement.budget_unit_id == engagement.budget_unit_id,
                    Engagement.year.between(engagement.year - years, engagement.year + years),
                    Engagement.year != engagement.year, Engagement.state != EngagementState.CANCELLED)
                .group_by(Engagement.firm_id)):
            near[firm_id] = year
    return {firm_id: [f"{year} 年已评价{engagement.budget_unit.name}，不得连续评价同一预算单位"]
            for firm_id, year in near.items()}


def assess(engagement: Engagement, method: ProcurementMethod, *, on: date | None = None) -> Assessment:
    """Every firm of the usable libraries, sorted into eligible and excluded-with-reasons."""
    firms = db.session.execute(
        sa.select(Firm).where(Firm.bureau_id.in_(library_bureau_ids(engagement.bureau))).order_by(Firm.id)
    ).scalars().all()
    result = Assessment()
    found = exclusions(firms, engagement, method, on=on)
    for firm in firms:
        reasons = found[firm.id]
        if reasons:
            result.excluded[firm.id] = reasons
        else:
            result.eligible.append(firm)
    return result


STAGES = {"bid": "投标", "award": "定标", "contract": "签订合同"}


def assert_eligible(procurement: Procurement, firm: Firm, stage: str) -> None:
    """Raise ``Conflict`` with every reason when ``firm`` may not take part in ``procurement`` at ``stage``
    ("bid", "award" or "contract"): the same rules as the bid-time assessment, checked again because a
    firm's standing can change between its bid and the award or contract."""
    if stage not in STAGES:
        raise ValueError(f"unknown eligibility stage {stage!r}")
    engagement = procurement.engagement
    if stage == "award":
        # Two awards to one firm at the same moment must count each other against the yearly cap.
        serialise(f"eligibility.cap:{firm.id}:{engagement.bureau_id}:{engagement.year}")
    reasons = exclusion_reasons(firm, engagement, procurement.method)
    if reasons:
        raise Conflict(f"{firm.name}不符合{STAGES[stage]}条件：" + "；".join(reasons) + "。")
