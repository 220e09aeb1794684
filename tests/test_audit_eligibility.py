"""Audit of plans, procurement methods and eligibility (2026-12-07, after the registry/committee changes).

Each test fails on the code as it stands, for the defect its docstring names.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.timeutil import beijing_today
from evalhub.credit.models import CreditGrade, CreditRating, RatingStatus
from evalhub.extensions import db
from evalhub.procurement import eligibility
from evalhub.procurement import services as P
from evalhub.procurement.models import (
    EngagementState, ObjectType, Procurement, ProcurementMethod as M, ProcurementStatus,
)
from evalhub.registry import services as registry
from evalhub.registry.models import FirmStatus
from tests import factories


def _rating(world, firm, year, grade, status=RatingStatus.FINAL, **kw) -> CreditRating:
    rating = CreditRating(bureau_id=world.bz.id, firm_id=firm.id, year=year, status=status, rated=grade is not None,
                          total=Decimal("50") if grade else None, grade=grade, components=[], **kw)
    db.session.add(rating)
    db.session.flush()
    return rating


def _procurement(world, e, method=M.COMPETITIVE_CONSULTATION) -> Procurement:
    p = Procurement(engagement_id=e.id, bureau_id=e.bureau_id, method=method, status=ProcurementStatus.EVALUATING,
                    title=f"{e.name}采购", ceiling_price=Decimal("200000"), price_weight=Decimal("30"),
                    low_bid_ratio=Decimal("70"), created_by_id=world.bz_staff.id)
    e.procurements.append(p)
    e.state = EngagementState.PROCURING
    db.session.flush()
    return p


# --- 1. a committee left short by a released seat still awards ----------------------------------------

def test_an_award_is_refused_while_the_committee_is_short_after_a_released_seat(world):
    """Rule: 财政部令第87号 第五十条 — a member who cannot go on is replaced ("依法补足后继续评标"); "无法及时补足评标
    委员会成员的，…应当停止评标活动，封存所有投标文件和开标、评标资料，依法重新组建评标委员会进行评标"; 第四十七条 /
    财库〔2014〕214号 (a committee of at least 3, odd; rules.md "Committee size", ``committee_size_floor``).

    Defect: procurement/services.py ``_release_committee_seats`` leaves the committee short when nobody is left
    to draw ("the committee stays short, recorded in the audit log"), but ``award_procurement`` / ``evaluate``
    never ask the committee's size again: the two remaining members score, the technical score is their mean,
    and the award and its result notice go out on a 2-member committee of a consultation (floor 3)."""
    from tests.test_audit_registry import _opened

    p = _opened(world, "缺额评委测试机构")
    for i in range(2):  # with world.expert, exactly three experts in 巴州's pool: no replacement is left
        factories.expert(world.bz, name=f"缺额委员{i}", employer=f"新疆某高校{i}")
    factories.witnessed(P.draw_committee(p, 3, world.bz_staff))
    db.session.flush()
    assert len(p.committee) == 3
    registry.change_expert_status(p.committee[0].expert, "suspend", "收受投标人财物", world.bz_admin)
    db.session.flush()
    db.session.refresh(p, ["committee"])
    assert len(p.committee) == 2  # released, nobody left to draw: short, as the audit log records
    factories.committee_clears_flags(p, world.bz_staff)
    for member in p.committee:  # (fix-elig) a short committee does not score either: 第五十条 "依法补足后继续评标"
        with pytest.raises(Conflict) as refused:
            P.record_technical_scores(p, member, {b.id: {i.id: i.max_points for i in p.rubric} for b in p.bids},
                                      world.bz_staff)
        assert "评审委员会" in refused.value.message
    with pytest.raises((Conflict, ValidationFailed)) as caught:
        P.award_procurement(p, world.bz_admin, "综合得分第一")
    assert "评审委员会" in caught.value.message


# --- 2. the grade in force at an award made in a later year -------------------------------------------

def test_a_firm_graded_d_for_last_year_is_not_awarded_last_years_engagement_this_year(world):
    """Rule: DOMAIN §6 "D: suspended from selection next year; C: … eligible only by open competition"; GRADE_RULE
    "上一年度信用评价（最终结果）为 D 级的机构暂停参与评价业务"; rules.md "Eligibility is checked when a firm bids and
    again at award and at contract … (library status now, grade, …)" — 政府采购法 第二十二条 (conditions hold at award).

    Defect: credit/services.py ``grade_exclusions`` reads "last year" as the engagement's plan year − 1, never
    the year of the bid, award or contract. An engagement of last year's plan procured late (awarded this year,
    as happens every January and as the fixtures' 2025 engagements are today) reads the rating of the year
    before last: a firm whose rating for last year is final D — suspended from selection this year — is
    eligible and awarded, while the same firm is refused for this year's engagements."""
    this_year = beijing_today().year
    firm = factories.firm(world.bz, name="去年D级评价咨询有限公司")
    _rating(world, firm, this_year - 1, CreditGrade.D)
    current = _procurement(world, factories.engagement(world, year=this_year, unit="巴州民政局"))
    assert f"{this_year - 1} 年度信用评价为 D 级" in "；".join(
        eligibility.exclusion_reasons(firm, current.engagement, current.method))  # this year's plan: refused
    late = _procurement(world, factories.engagement(world, year=this_year - 1))  # last year's plan, awarded today
    with pytest.raises(Conflict) as caught:
        eligibility.assert_eligible(late, firm, "award")
    assert "D 级" in caught.value.message


# --- 3. plans: the type mix counts a lower-government item that evaluates no lower government -----------

def test_a_prefecture_plans_lower_government_item_must_evaluate_a_lower_government(world):
    """Rule: seed 000 "州本级财政部门选择 1 个县（市）、1 个本级部门单位，开展对下级政府预算绩效管理评价、部门单位
    整体绩效评价" (DOMAIN §2.1: "The prefecture must include one lower-government evaluation"); rules.md "Plans";
    procurement/eligibility.py ``evaluated_government``: a lower-government evaluation is one whose unit belongs
    to a lower bureau.

    Defect: procurement/services.py ``plan_checks`` counts any item typed 下级政府财政运行, whatever unit it names.
    巴州's plan of ten key evaluations types one item 下级政府财政运行 but names its own 巴州统计局 (no county
    at all — ``evaluated_government`` itself treats it as no lower-government evaluation), the type-mix warning
    is not raised, and ``approve_plan`` approves the plan without the written reason a missing type needs."""
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_admin)

    def add(name, kind, unit):
        P.add_plan_item(plan, P.PlanItemInput(
            name=name, object_type=kind, budget_kind="一般公共预算", field="finance", amount_wan="300",
            budget_unit_id=world.units[unit].id, reason="资金量大、社会关注度高"), world.bz_admin)

    for i in range(8):
        add(f"巴州重点项目{i}", ObjectType.PROJECT, "巴州统计局")
    add("巴州民政局部门整体支出", ObjectType.DEPARTMENT, "巴州民政局")
    add("巴州统计局“下级政府”财政运行", ObjectType.LOWER_GOVERNMENT, "巴州统计局")
    db.session.flush()
    warnings = [c.message for c in P.plan_checks(plan) if c.level == "warning"]
    assert any("下级政府" in m for m in warnings), warnings
    with pytest.raises(ValidationFailed):
        P.approve_plan(plan, world.bz_admin)


# --- 4. the "prefecture" reach: a county's grade reaches the region's own engagements ---------------------

def test_under_the_prefecture_reach_a_countys_grade_does_not_bar_the_firm_at_the_region(world):
    """Rule: the region's setting ``credit.grade_reach`` = prefecture, as it states it (credit/services.py
    ``REACH_CHOICES``): "本州（地区）：州（地区）及所属县市的最终评价在本州（地区）内适用" — a grade given in 巴州's
    tree applies within 巴州, and (``_rating_bureau_ids``) the engagement's own and upper bureaus' and the firm's
    library bureau's ratings always count.

    Defect: credit/services.py ``_reach`` takes ``chain[-2] if len(chain) > 1 else chain[-1]`` as the prefecture
    whose subtree counts; for an engagement of the region itself the chain is the region alone, so "the
    prefecture" becomes the whole region and every county's rating counts there. A D that 轮台县 gave a firm of
    the region's library (under "prefecture" reach: 巴州's business only) bars it from the region's own
    engagements, though the same D does not reach 克州 — a firm refused at the top for a grade that is not in
    force there, with the reason naming 轮台县."""
    from evalhub.core.models import BudgetUnit
    from evalhub.core.settings import set_setting

    unit = BudgetUnit(bureau_id=world.region.id, name="自治区统计局")
    db.session.add(unit)
    db.session.flush()
    world.units["自治区统计局"] = unit
    set_setting(world.region, "credit.grade_reach", "prefecture", world.region_admin)
    firm = factories.firm(world.region, name="自治区库评价咨询有限公司")
    last = beijing_today().year - 1
    db.session.add(CreditRating(bureau_id=world.lt.id, firm_id=firm.id, year=last, status=RatingStatus.FINAL,
                                rated=True, total=Decimal("50"), grade=CreditGrade.D, components=[]))
    db.session.flush()
    in_bz = factories.engagement(world, bureau_key="bz", unit="巴州统计局", year=last + 1)
    in_kz = factories.engagement(world, bureau_key="kz", unit="克州农业农村局", year=last + 1)
    at_region = factories.engagement(world, bureau_key="region", unit="自治区统计局", year=last + 1)
    assert any("D 级" in r for r in eligibility.exclusion_reasons(firm, in_bz, M.OPEN_TENDER))  # within 巴州
    assert not [r for r in eligibility.exclusion_reasons(firm, in_kz, M.OPEN_TENDER) if "D 级" in r]
    assert not [r for r in eligibility.exclusion_reasons(firm, at_region, M.OPEN_TENDER) if "D 级" in r]


# --- 5. a suspension the rules impose is ended by an earlier suspension's end date ------------------------

def test_a_suspension_imposed_for_an_intentional_violation_outlasts_an_earlier_suspensions_end_date(world):
    """Rule: DOMAIN §6 "An intentional violation … puts the firm on a watch list and suspends it, whatever its
    score" (credit/services.py ``_suspend_for`` → registry ``impose_suspension``; lifted only when an upheld
    objection strikes the violation out, ``lift_imposed_suspension``); rules.md "A suspension … with an end date
    … is over from the day after" — the end date of *that* suspension.

    Defect: registry/services.py ``impose_suspension`` → ``_system_status_change(firm, "suspend")`` does
    nothing when the firm is already suspended (SUSPENDED is not a source of "suspend"): no change is recorded,
    ``status_until`` keeps the bureau's earlier term, and the day after that term ``status_on`` reads the firm as
    admitted and the hourly job ``lift_lapsed_statuses`` reinstates it — the suspension for the intentional
    violation silently ends with a term set for another cause."""
    today = beijing_today()
    registry.change_firm_status(world.firm, "suspend", world.bz_admin, reason="质量控制制度未落实，限期整改",
                                effective_until=today + timedelta(days=10))
    db.session.flush()
    registry.impose_suspension(world.firm, f"{today.year} 年度信用评价（巴州）检查发现故意违规，列入重点关注名单：伪造评价数据")
    db.session.flush()
    after_term = today + timedelta(days=11)
    assert registry.status_on(world.firm, after_term) == FirmStatus.SUSPENDED
    registry.lift_lapsed_statuses(after_term)
    db.session.flush()
    assert world.firm.status == FirmStatus.SUSPENDED
