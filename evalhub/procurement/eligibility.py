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
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.procurement.models import (
    Award, Contract, Engagement, EngagementState, ObjectType, Procurement, ProcurementMethod, ProcurementStatus,
    EVALUATION_KINDS, ServiceKind,
)
from evalhub.registry.models import Firm, FirmRelation, FirmStatus
from evalhub.registry.services import Parties, conflict_parties, firm_recusal_reasons, status_on, unit_rows


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


# One engagement to be taken part in by one procurement method.
Case = tuple[Engagement, ProcurementMethod]

# Checks that belong to a higher module (the credit rating's grade rules), registered by that module so
# that procurement need not know it. A check answers for a set of firms and a set of cases at once — a library
# is assessed whole for one engagement (hundreds of firms at province scale), and a firm's market page checks
# the firm against a page of procurements — so a check reads what it needs for all of them in a few statements:
# ``fn(firms, cases, on) -> {(firm id, the case's index): reasons}`` (a pair with none may be left out); ``on``
# is the day of the act (Beijing today unless the caller names one): a grade governs the year it is read in.
EligibilityCheck = Callable[[list[Firm], list[Case], date], dict[tuple[int, int], list[str]]]
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
           f"每家机构每年承接{bureau.short_name}的重点绩效评价不超过 {cap} 项（已中标尚未签约的计入）"]
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


def held_engagements(firm_ids: list[int], keys: set[tuple[int, int]]) -> dict[tuple[int, int], dict[int, set[int]]]:
    """For each (bureau id, year) of ``keys``, the key evaluations of that bureau and year each of these firms holds
    or is about to hold (a firm holding none is absent): contracted ones, and those where it is the winner of a
    standing award whose contract is not yet signed (a pending award counts, or a firm could collect awards in
    several procurements at once past the cap). A statement per 500 firms, whatever the keys; each way of
    holding one is read on the keys' bureaus and years only (the engagement joined in each)."""
    def on_the_years(stmt: sa.Select) -> sa.Select:
        return stmt.where(sa.or_(*(sa.and_(Engagement.bureau_id == bureau_id, Engagement.year == year)
                                   for bureau_id, year in sorted(keys))),
                          Engagement.service_kind == ServiceKind.KEY_EVALUATION,
                          Engagement.state != EngagementState.CANCELLED)

    out: dict[tuple[int, int], dict[int, set[int]]] = {}
    if not keys:
        return out
    held = (Engagement.id, Engagement.bureau_id, Engagement.year)
    for part in batches(sorted(set(firm_ids))):
        pairs = sa.union(  # (firm, engagement), each once: a standing award, a signed contract, a settled firm
            on_the_years(sa.select(Award.firm_id, *held).join(Procurement, Procurement.id == Award.procurement_id)
                         .join(Engagement, Engagement.id == Award.engagement_id)
                         .where(Award.firm_id.in_(part), Procurement.status == ProcurementStatus.AWARDED)),
            on_the_years(sa.select(Contract.firm_id, *held).join(Engagement, Engagement.id == Contract.engagement_id)
                         .where(Contract.firm_id.in_(part))),
            on_the_years(sa.select(Engagement.firm_id, *held).where(Engagement.firm_id.in_(part),
                                                                   Engagement.state.not_in(_UNSETTLED))))
        for firm_id, engagement_id, bureau_id, year in db.session.execute(pairs):
            out.setdefault((bureau_id, year), {}).setdefault(firm_id, set()).add(engagement_id)
    return out


def caps_reached(firms: list[Firm], cases: list[Case]) -> dict[tuple[int, int], list[str]]:
    """The yearly cap on key evaluations (重点绩效评价) a firm takes from one bureau (setting
    firm.max_key_evaluations), for each of these firms and cases, their holdings read at once: checked when a
    firm may take part and again at award and contract, counting awards made and pending. The case's own
    engagement is not counted, so it counts once whether or not its award is written yet. Other commissioned
    work (目标审核, 再评估, …) neither counts nor is capped."""
    keyed = [(i, engagement) for i, (engagement, _method) in enumerate(cases)
             if engagement.service_kind == ServiceKind.KEY_EVALUATION]
    held = held_engagements([f.id for f in firms], {(e.bureau_id, e.year) for _, e in keyed})
    out: dict[tuple[int, int], list[str]] = {}
    for i, engagement in keyed:
        bureau = engagement.bureau
        cap = get_setting(bureau, "firm.max_key_evaluations")
        holdings = held.get((engagement.bureau_id, engagement.year), {})
        for firm in firms:
            count = len(holdings.get(firm.id, set()) - {engagement.id})
            if count >= cap:
                out[(firm.id, i)] = [f"{engagement.year} 年已承接或已中标{bureau.short_name} {count} 项重点绩效评价（含尚未签约的），"
                                     f"达到上限 {cap} 项"]
    return out


def exclusion_reasons(firm: Firm, engagement: Engagement, method: ProcurementMethod, *,
                      on: date | None = None) -> list[str]:
    return exclusions([firm], engagement, method, on=on)[firm.id]


def exclusions(firms: list[Firm], engagement: Engagement, method: ProcurementMethod, *,
               on: date | None = None) -> dict[int, list[str]]:
    """Each firm's reasons not to take part in ``engagement`` by ``method`` (empty: it may)."""
    found = exclusion_matrix(firms, [(engagement, method)], on=on)
    return {f.id: found[(f.id, 0)] for f in firms}


def exclusion_matrix(firms: list[Firm], cases: list[Case], *, on: date | None = None) -> dict[tuple[int, int], list[str]]:
    """Each firm's reasons not to take part in each case, by (firm id, the case's index) (empty: it may), every
    rule applied to all the firms and cases at once: a rule reads what it needs for the whole set, not a
    statement per firm (a library assessed whole) or per case (a firm's market page)."""
    reasons: dict[tuple[int, int], list[str]] = {(f.id, i): [] for i in range(len(cases)) for f in firms}
    for i, (engagement, _method) in enumerate(cases):
        bureau = engagement.bureau
        libraries = library_bureau_ids(bureau)
        for firm in firms:
            if firm.bureau_id not in libraries:
                reasons[(firm.id, i)].append(f"不在{bureau.short_name}或其上级财政局的第三方机构库中")
            elif (status := status_on(firm, on)) != FirmStatus.ADMITTED:  # a lapsed suspension is over
                reasons[(firm.id, i)].append(f"机构库状态为“{status.label}”")
    if not firms or not cases:
        return reasons
    for check in _CHECKS:
        for key, found in check(firms, cases, on or beijing_today()).items():
            reasons[key].extend(found)
    fields = Firm.fields_of(f.id for f in firms)
    _hold_relations(firms)
    known_units = unit_rows({unit.bureau_id for e, _ in cases
                             for unit in (e.budget_unit, e.commissioner_unit) if unit is not None})
    capped = caps_reached(firms, cases)
    rotated = rotations(firms, cases)
    for i, (engagement, _method) in enumerate(cases):
        parties = engagement_parties(engagement, known_units=known_units)
        for firm in firms:
            key = (firm.id, i)
            reasons[key].extend(field_mismatch(fields[firm.id], engagement.field))
            reasons[key].extend(firm_recusal_reasons(firm, parties=parties, on=on))
            reasons[key].extend(capped.get(key, []))
            reasons[key].extend(rotated.get(key, []))
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


def engagement_parties(engagement: Engagement, *, known_units: dict[int, dict] | None = None) -> Parties:
    """Everyone a firm, an expert or an inspector of this engagement must be independent of (H3, issue 14):
    the evaluated unit and the commissioner (a unit, or the bureau itself) with the budget-unit tree up and
    down, and for a lower-government evaluation that government's finance bureau and all its units.
    ``known_units``: ``unit_rows`` already read for the units' bureaus (several engagements at once)."""
    return conflict_parties(known_units=known_units, evaluated_units=[engagement.budget_unit],
                            commissioner_units=[engagement.commissioner_unit] if engagement.commissioner_unit else [],
                            commissioner_bureaus=[] if engagement.commissioner_unit_id else [engagement.bureau],
                            evaluated_governments=[g for g in [evaluated_government(engagement)] if g is not None])


def rotations(firms: list[Firm], cases: list[Case]) -> dict[tuple[int, int], list[str]]:
    """No firm evaluates the same budget unit in consecutive years (setting firm.rotation_years), for each of
    these firms and cases: the years each firm evaluated the cases' units, read at once; for a case the nearest
    other year within the setting counts. Both directions count: an engagement procured late (last year's,
    awarded this year) must not sit next to the year the firm already holds. Evaluations only (EVALUATION_KINDS),
    on both sides: a yearly target review by a county's one firm evaluates no unit (seed 003), so it is neither
    barred nor a bar."""
    wanted = [(i, engagement, years) for i, (engagement, _method) in enumerate(cases)
              if engagement.service_kind in EVALUATION_KINDS
              and (years := get_setting(engagement.bureau, "firm.rotation_years"))]
    if not wanted or not firms:
        return {}
    evaluated: dict[tuple[int, int], set[int]] = {}  # (firm, unit) → years
    units = sorted({e.budget_unit_id for _, e, _ in wanted})
    low, high = min(e.year - years for _, e, years in wanted), max(e.year + years for _, e, years in wanted)
    for part in batches(sorted({f.id for f in firms})):
        for firm_id, unit_id, year in db.session.execute(
                sa.select(Engagement.firm_id, Engagement.budget_unit_id, Engagement.year).distinct().where(
                    Engagement.firm_id.in_(part), Engagement.budget_unit_id.in_(units),
                    Engagement.year.between(low, high), Engagement.state != EngagementState.CANCELLED,
                    Engagement.service_kind.in_(EVALUATION_KINDS))):
            evaluated.setdefault((firm_id, unit_id), set()).add(year)
    out: dict[tuple[int, int], list[str]] = {}
    for i, engagement, years in wanted:
        for firm in firms:
            near = [year for year in evaluated.get((firm.id, engagement.budget_unit_id), ())
                    if year != engagement.year and abs(year - engagement.year) <= years]
            if near:
                out[(firm.id, i)] = [f"{max(near)} 年已评价{engagement.budget_unit.name}，不得连续评价同一预算单位"]
    return out


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
