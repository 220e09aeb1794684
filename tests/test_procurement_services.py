"""Plans, eligibility, sealed bids, scoring, low bids, 流标, award (once, even concurrently), OCDS."""
from __future__ import annotations

import json
import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from evalhub.core.enums import Field
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement import eligibility, ocds, services as P, workflow
from evalhub.procurement.models import (
    Award, BidStatus, EngagementState as S, ObjectType, PlanStatus, ProcurementMethod as M, ProcurementStatus,
)
from evalhub.registry.models import FirmStatus
from evalhub.registry.services import add_relation
from tests import factories

# --- plans -----------------------------------------------------------------------------------------


def _item(w, **kw):
    values = dict(name="巴州统计局第五次全国经济普查项目", object_type=ObjectType.PROJECT, budget_kind="一般公共预算",
                  field=Field.STATISTICS, amount_wan="1,234.5678", budget_unit_id=w.units["巴州统计局"].id,
                  reason="资金量大")
    values.update(kw)
    return P.PlanItemInput(**values)


def test_amounts_are_entered_in_wan_and_stored_in_yuan(world):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    item = P.add_plan_item(plan, _item(world), world.bz_staff)
    assert item.amount == Decimal("12345678.00")


def test_commissioner_and_evaluated_unit_must_differ(world):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    unit = world.units["巴州统计局"].id
    with pytest.raises(ValidationFailed) as caught:
        P.add_plan_item(plan, _item(world, commissioner_unit_id=unit), world.bz_staff)
    assert "主体分离" in caught.value.fields["commissioner_unit_id"]


def test_plan_items_are_validated_together(world):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    with pytest.raises(ValidationFailed) as caught:
        P.add_plan_item(plan, _item(world, name="", object_type="魔法", amount_wan="-1",
                                    budget_unit_id=world.units["克州农业农村局"].id, reason=""), world.bz_staff)
    assert {"name", "object_type", "amount_wan", "budget_unit_id", "reason"} <= set(caught.value.fields)


def test_plan_checks_warn_about_counts_and_types_and_approval_creates_engagements(world):
    plan = P.get_or_create_plan(world.lt, 2025, world.lt_staff)
    P.add_plan_item(plan, _item(world, budget_unit_id=world.units["轮台县医疗保障局"].id), world.lt_staff)
    messages = [c.message for c in P.plan_checks(plan)]
    assert any("不少于 5 项" in m for m in messages) and any("部门整体支出" in m for m in messages)
    with pytest.raises(PermissionDenied):
        P.approve_plan(plan, world.lt_staff, warnings_reason="本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。")  # admins approve
    with pytest.raises(ValidationFailed) as caught:
        P.approve_plan(plan, world.lt_admin)  # past the warnings only with a written reason
    assert "warnings_reason" in caught.value.fields and "部门整体支出" in caught.value.message
    with pytest.raises(ValidationFailed):
        P.approve_plan(plan, world.lt_admin, warnings_reason="  同意批准。  ")  # 5 characters: not a reason
    engagements = P.approve_plan(plan, world.lt_admin, warnings_reason="  本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。  ")
    assert plan.status == PlanStatus.APPROVED and len(engagements) == 1
    assert plan.approval_reason == "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。" and any("不少于 5 项" in w for w in plan.approval_warnings)
    from evalhub.procurement.imports import plan_xlsx
    import io, openpyxl
    book = openpyxl.load_workbook(io.BytesIO(plan_xlsx(plan)))
    notes = [c.value for c in book["批准说明"]["A"]]
    assert f"仍予批准的理由：本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。" in notes and any("不少于 5 项" in (n or "") for n in notes)  # the export carries it
    assert engagements[0].state == S.PLANNED and engagements[0].reference == "652822-2025-001"
    with pytest.raises(Conflict):
        P.add_plan_item(plan, _item(world, budget_unit_id=world.units["轮台县医疗保障局"].id), world.lt_staff)


def test_a_prefecture_plan_with_enough_items_of_the_required_types_has_no_warnings(world, app):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    for i in range(10):
        kind = [ObjectType.LOWER_GOVERNMENT, ObjectType.DEPARTMENT][i] if i < 2 else ObjectType.PROJECT
        # a lower-government evaluation names a unit of a county (seed 000: "选择 1 个县（市）")
        unit = world.units["轮台县医疗保障局" if kind == ObjectType.LOWER_GOVERNMENT else "巴州统计局"]
        P.add_plan_item(plan, _item(world, name=f"对象{i}", object_type=kind, budget_unit_id=unit.id), world.bz_staff)
    assert P.plan_checks(plan) == []


def test_other_bureaus_cannot_touch_a_plan(world):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    for user in (world.kz_admin, world.krl_admin, world.region_admin, world.firm_user):
        with pytest.raises(PermissionDenied):
            P.add_plan_item(plan, _item(world), user)


# --- eligibility -----------------------------------------------------------------------------------

def _eligible_ids(engagement, method=M.COMPETITIVE_CONSULTATION):
    return {f.id for f in eligibility.assess(engagement, method).eligible}


def test_each_exclusion_reason_in_isolation(world, monkeypatch):
    e = factories.engagement(world, field=Field.FINANCE)
    ok = factories.firm(world.bz, name="合格机构")
    assert eligibility.exclusion_reasons(ok, e, M.OPEN_TENDER) == []

    suspended = factories.firm(world.bz, FirmStatus.SUSPENDED)
    assert eligibility.exclusion_reasons(suspended, e, M.OPEN_TENDER) == ["机构库状态为“暂停”"]

    other_library = factories.firm(world.kz)
    assert "机构库中" in eligibility.exclusion_reasons(other_library, e, M.OPEN_TENDER)[0]
    lower_library = factories.firm(world.krl)  # a county's library is not usable by its prefecture
    assert "机构库中" in eligibility.exclusion_reasons(lower_library, e, M.OPEN_TENDER)[0]
    upper_library = factories.firm(world.region)  # the region's library is
    assert eligibility.exclusion_reasons(upper_library, e, M.OPEN_TENDER) == []

    wrong_field = factories.firm(world.bz, fields=[Field.WATER])
    assert eligibility.exclusion_reasons(wrong_field, e, M.OPEN_TENDER) == ["业务领域不含“财政经济”"]

    conflicted = factories.firm(world.bz)
    add_relation(conflicted, kind="代理记账", bureau_id=None, budget_unit_id=e.budget_unit_id,
                 start_date=date(2020, 1, 1), end_date=None, note=None, actor=world.bz_staff)
    assert "代理记账" in eligibility.exclusion_reasons(conflicted, e, M.OPEN_TENDER)[0]


def test_credit_grades_bar_d_and_limit_c_to_open_tender(world):
    from evalhub.credit.models import CreditRating, RatingStatus
    from evalhub.credit.services import CreditGrade

    e = factories.engagement(world)
    firm_c, firm_d = factories.firm(world.bz), factories.firm(world.bz)
    for firm, grade, bureau in ((firm_c, CreditGrade.C, world.bz), (firm_d, CreditGrade.D, world.lt)):
        db.session.add(CreditRating(bureau_id=bureau.id, firm_id=firm.id, year=2024, status=RatingStatus.FINAL,
                                    rated=True, grade=grade))  # 2024's final grades govern 2025's engagements
    db.session.flush()
    assert eligibility.exclusion_reasons(firm_c, e, M.OPEN_TENDER) == []
    assert "C 级" in eligibility.exclusion_reasons(firm_c, e, M.COMPETITIVE_CONSULTATION)[0]
    assert "D 级" in eligibility.exclusion_reasons(firm_d, e, M.OPEN_TENDER)[0]
    assert "2024 年度" in eligibility.exclusion_reasons(firm_d, e, M.OPEN_TENDER)[0]
    assert "轮台县评定" in eligibility.exclusion_reasons(firm_d, e, M.OPEN_TENDER)[0]  # a county's D reaches 巴州
    assessed = eligibility.assess(e, M.COMPETITIVE_CONSULTATION)  # the same, for the library at once
    assert "C 级" in assessed.reasons_for(firm_c)[0] and "D 级" in assessed.reasons_for(firm_d)[0]
    assert world.firm in assessed.eligible


def test_today_every_firm_is_not_rated():
    from evalhub.credit.services import final_grade

    assert final_grade(None, None, 2024) is None


def test_cap_per_bureau_and_year(world):
    from evalhub.core.settings import set_setting

    set_setting(world.bz, "firm.max_key_evaluations", 2, world.bz_admin)
    factories.contracted(world)
    factories.contracted(world)
    third = factories.engagement(world)
    assert "达到上限 2 项" in eligibility.exclusion_reasons(world.firm, third, M.OPEN_TENDER)[0]
    other_year = factories.engagement(world, year=2026, unit="巴州民政局")
    assert eligibility.exclusion_reasons(world.firm, other_year, M.OPEN_TENDER) == []


def test_the_cap_holds_at_the_award_too(world):
    """Proposed for two engagements while under the cap, a firm is awarded only as many as the cap allows:
    the award checks again (the state-machine property test found three awards against a cap of two)."""
    from evalhub.core.settings import set_setting

    set_setting(world.bz, "firm.max_key_evaluations", 2, world.bz_admin)
    factories.contracted(world)
    justification = "该评价须沿用上一期的指标口径，只有原机构掌握基础数据。"
    proposals = []
    for unit in ("巴州民政局", "巴州统计局"):
        e = factories.engagement(world, unit=unit)
        proposals.append(factories.witnessed(P.open_procurement(e, P.ProcurementInput(
            method=M.SINGLE_SOURCE, title="", ceiling_price_wan="10", single_source_firm_id=world.firm.id,
            justification=justification), world.bz_staff)))  # holds 1 of 2: both proposals are allowed
    P.approve_single_source(proposals[0], world.bz_admin, "9")
    with pytest.raises(Conflict) as caught:
        P.approve_single_source(proposals[1], world.bz_admin, "9")
    assert "达到上限 2 项" in caught.value.message and world.firm.name in caught.value.message
    assert proposals[1].award is None


def test_rotation_forbids_the_same_budget_unit_two_years_running(world):
    factories.contracted(world, year=2024, unit="巴州民政局")
    next_year = factories.engagement(world, year=2025, unit="巴州民政局")
    assert "2024 年已评价巴州民政局" in eligibility.exclusion_reasons(world.firm, next_year, M.OPEN_TENDER)[0]
    other_unit = factories.engagement(world, year=2025, unit="巴州统计局")
    assert eligibility.exclusion_reasons(world.firm, other_unit, M.OPEN_TENDER) == []
    two_years_later = factories.engagement(world, year=2026, unit="巴州民政局")
    assert eligibility.exclusion_reasons(world.firm, two_years_later, M.OPEN_TENDER) == []


def test_reasons_combine(world):
    e = factories.engagement(world, field=Field.HEALTH)
    firm = factories.firm(world.bz, FirmStatus.SUSPENDED, fields=[Field.WATER])
    add_relation(firm, kind="审计客户", bureau_id=None, budget_unit_id=e.budget_unit_id,
                 start_date=date(2020, 1, 1), end_date=None, note=None, actor=world.bz_staff)
    reasons = eligibility.exclusion_reasons(firm, e, M.OPEN_TENDER)
    assert len(reasons) == 3
    assessment = eligibility.assess(e, M.OPEN_TENDER)
    assert assessment.excluded[firm.id] == reasons and firm not in assessment.eligible


# --- competitive procurement -----------------------------------------------------------------------

def _consultation(world, engagement=None, *, weight="20", method=M.COMPETITIVE_CONSULTATION):
    engagement = engagement or factories.engagement(world)
    return factories.witnessed(P.open_procurement(engagement, P.ProcurementInput(
        method=method, title="", ceiling_price_wan="50", price_weight=weight,
        # the law's minimum period: 20 days for an open tender, 10 for a consultation
        bid_deadline=factories.bid_deadline(world.bz, 20 if method == M.OPEN_TENDER else 10)), world.bz_staff))


def _bidder(world, name):
    return factories.bidder(world, name)


def _bid(procurement, user, staff, price):
    return factories.bid(procurement, user, staff, price)


def _past_deadline(procurement):
    procurement.bid_deadline = utcnow() - timedelta(seconds=1)


def test_price_weight_validation():
    assert P.validate_price_weight(M.COMPETITIVE_CONSULTATION, Decimal("10")) is None
    assert P.validate_price_weight(M.COMPETITIVE_CONSULTATION, Decimal("30")) is None
    assert P.validate_price_weight(M.COMPETITIVE_CONSULTATION, Decimal("9.99"))
    assert P.validate_price_weight(M.COMPETITIVE_CONSULTATION, Decimal("30.01"))
    assert P.validate_price_weight(M.OPEN_TENDER, Decimal("9"))
    assert P.validate_price_weight(M.OPEN_TENDER, Decimal("60")) is None


def test_a_consultation_with_a_bad_weight_or_rubric_is_refused_and_the_engagement_stays_planned(world):
    e = factories.engagement(world)
    with pytest.raises(ValidationFailed) as caught:
        factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50",
                                                 price_weight="35", bid_deadline=utcnow() - timedelta(days=1),
                                                 rubric=[("方案", "60")]), world.bz_staff))
    assert {"price_weight", "bid_deadline", "rubric"} <= set(caught.value.fields)
    assert e.state == S.PLANNED


def test_bids_are_sealed_from_other_firms_and_from_the_bureau_before_opening(world):
    from evalhub.core import permissions
    from evalhub.procurement.models import Bid

    p = _consultation(world)
    (_, u1, s1), (_, u2, s2) = _bidder(world, "甲"), _bidder(world, "乙")
    bid1 = _bid(p, u1, s1, "40")
    _bid(p, u2, s2, "45")
    db.session.commit()
    seen = lambda user: set(db.session.execute(permissions.scope(user, sa.select(Bid.id), Bid)).scalars())
    assert seen(u2) == {b.id for b in p.bids if b.firm_id == u2.firm_id}
    assert bid1.id not in seen(u2)
    assert not permissions.can(u2, "bid.view", bid1)
    assert seen(world.bz_admin) == set() and not permissions.can(world.bz_admin, "bid.view", bid1)
    with pytest.raises(Conflict):
        P.open_bids(p, world.bz_staff)  # before the deadline the bureau cannot open them
    # the audit log, which bureau admins read, never carries the sealed price
    from evalhub.core.models import AuditEvent

    texts = [json.dumps(e.payload, ensure_ascii=False) + e.summary for e in
             db.session.execute(sa.select(AuditEvent).where(AuditEvent.action.like("bid.%"))).scalars()]
    assert texts and not any("400000" in t for t in texts)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    assert seen(world.bz_admin) == {b.id for b in p.bids}
    assert seen(world.kz_admin) == set()


def test_firms_edit_and_withdraw_until_the_deadline_and_withdrawn_bids_are_not_scored(world):
    p = _consultation(world)
    bidders = [_bidder(world, n) for n in "甲乙丙"]
    bids = [_bid(p, u, s, price) for (_, u, s), price in zip(bidders, ["40", "45", "48"])]
    _bid(p, bidders[0][1], bidders[0][2], "38")  # an edit replaces the bid
    assert bids[0].price == Decimal("380000.00") and len(p.bids) == 3
    P.withdraw_bid(bids[2], bidders[2][1])
    with pytest.raises(PermissionDenied):
        P.withdraw_bid(bids[1], bidders[0][1])
    _past_deadline(p)
    with pytest.raises(Conflict):
        _bid(p, bidders[1][1], bidders[1][2], "30")
    with pytest.raises(Conflict):
        P.withdraw_bid(bids[1], bidders[1][1])
    P.open_bids(p, world.bz_staff)
    results = P.evaluate(p)
    assert {r.bid.id for r in results} == {bids[0].id, bids[1].id}


def test_ineligible_firms_are_told_why_they_cannot_bid(world):
    p = _consultation(world)
    firm, user, staff = _bidder(world, "暂停机构")
    firm.status = FirmStatus.SUSPENDED
    with pytest.raises(PermissionDenied) as caught:
        _bid(p, user, staff, "40")
    assert "暂停" in caught.value.message
    opportunities = P.open_opportunities(firm)
    assert opportunities and opportunities[0][1] == ["机构库状态为“暂停”"]


def _score_all(world, p, points_by_firm):
    P.enter_committee(p, ["评委甲", "评委乙", "评委丙"], world.bz_staff)
    factories.committee_clears_flags(p, world.bz_staff)  # equal prices here are the point of the test (integrity gate)
    rescore(world, p, points_by_firm)


def rescore(world, p, points_by_firm):
    """Every committee member scores each submitted bid its firm's total, spread over the rubric in proportion
    to each item's maximum."""
    for member in p.committee:
        scores = {bid.id: {item.id: (Decimal(points_by_firm[bid.firm.name]) * item.max_points / 100)
                           for item in p.rubric}
                  for bid in p.bids if bid.status == BidStatus.SUBMITTED}
        P.record_technical_scores(p, member, scores, world.bz_staff)


def scored_consultation(world, prices: dict[str, str], points: dict[str, int], weight: str = "10"):
    """A consultation among 甲, 乙 and 丙 at ``prices`` (万元), opened and scored ``points`` by a committee."""
    p = _consultation(world, weight=weight)
    bidders = {n: _bidder(world, n) for n in "甲乙丙"}
    for name, price in prices.items():
        _bid(p, bidders[name][1], bidders[name][2], price)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    _score_all(world, p, points)
    return p


def tied_consultation(world):
    """A consultation with 甲 and 乙 tied for first (same price, same scores) and 丙 behind; the committee named."""
    return scored_consultation(world, {"甲": "40", "乙": "40", "丙": "50"}, {"甲": 80, "乙": 80, "丙": 80})


def test_comprehensive_scoring_price_formula_and_weights(world):
    p = scored_consultation(world, {"甲": "40", "乙": "50", "丙": "45"}, {"甲": 70, "乙": 95, "丙": 80}, weight="20")
    results = {r.bid.firm.name: r for r in P.evaluate(p)}
    assert results["甲"].price_score == Decimal("100.00")
    assert results["乙"].price_score == Decimal("80.00")     # 40 / 50 × 100
    assert results["丙"].price_score == Decimal("88.89")     # 40 / 45 × 100
    assert results["乙"].technical_score == Decimal("95.00")
    assert results["甲"].total == Decimal("76.00")           # 0.2 × 100 + 0.8 × 70
    assert results["乙"].total == Decimal("92.00")           # 0.2 × 80 + 0.8 × 95
    assert results["丙"].total == Decimal("81.78")
    assert [results[n].rank for n in "乙丙甲"] == [1, 2, 3]
    award = factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    assert award.firm.name == "乙" and award.amount == Decimal("500000.00") and award.score == Decimal("92.00")
    assert p.status == ProcurementStatus.AWARDED and p.engagement.firm_id == award.firm_id
    assert "乙" in award.notice and "50.00 万元" in award.notice


def test_ties_go_to_the_lower_price_then_the_better_technical_score(world):
    p = scored_consultation(world, {"甲": "40", "乙": "40", "丙": "50"}, {"甲": 80, "乙": 80, "丙": 80}, weight="10")
    results = P.evaluate(p)
    assert results[0].tied and results[1].tied and results[0].total == results[1].total
    award = factories.witnessed(P.award_procurement(p, world.bz_staff, "并列"))
    assert award.firm.name in ("甲", "乙") and "随机抽取" in award.reasons


def test_a_very_low_bid_must_be_justified_before_it_can_win(world):
    p = _consultation(world, weight="30")
    bidders = {n: _bidder(world, n) for n in "甲乙丙"}
    for name, price in [("甲", "20"), ("乙", "45"), ("丙", "48")]:
        _bid(p, bidders[name][1], bidders[name][2], price)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    low = next(b for b in p.bids if b.firm.name == "甲")
    assert P.needs_justification(low)  # 20 < 70% × mean(20, 45, 48) = 26.37
    _score_all(world, p, {"甲": 90, "乙": 80, "丙": 80})
    with pytest.raises(Conflict) as caught:
        factories.witnessed(P.award_procurement(p, world.bz_staff, "第一"))
    assert "异常偏低" in caught.value.message
    with pytest.raises(Conflict):
        P.decide_justification(low, world.bz_staff, True)  # nothing to decide yet
    with pytest.raises(PermissionDenied):
        P.explain_low_bid(low, bidders["乙"][1], "不是我的投标")
    P.explain_low_bid(low, bidders["甲"][1], "本机构在当地已有同类项目团队，差旅成本很低。")
    P.decide_justification(low, world.bz_staff, False, "成本构成不合理")
    results = {r.bid.firm.name: r for r in P.evaluate(p)}
    assert not results["甲"].valid and results["甲"].rank is None
    assert results["乙"].price_score == Decimal("100.00")  # the rejected bid no longer sets the lowest price
    award = factories.witnessed(P.award_procurement(p, world.bz_staff, "甲报价说明不被接受，乙综合得分第一"))
    assert award.firm.name == "乙"


def test_an_accepted_justification_lets_the_low_bid_win(world):
    p = _consultation(world, weight="30")
    bidders = {n: _bidder(world, n) for n in "甲乙丙"}
    for name, price in [("甲", "20"), ("乙", "45"), ("丙", "48")]:
        _bid(p, bidders[name][1], bidders[name][2], price)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    low = next(b for b in p.bids if b.firm.name == "甲")
    _score_all(world, p, {"甲": 90, "乙": 80, "丙": 80})
    P.explain_low_bid(low, bidders["甲"][1], "本机构在当地已有同类项目团队，差旅成本很低。")
    P.decide_justification(low, world.bz_staff, True)
    assert factories.witnessed(P.award_procurement(p, world.bz_staff, "说明合理，综合得分第一")).firm.name == "甲"


def test_an_open_tender_with_fewer_than_three_valid_bids_fails_and_can_be_rerun(world):
    e = factories.engagement(world)
    p = _consultation(world, e, method=M.OPEN_TENDER)
    for name in "甲乙":
        firm, user, staff = _bidder(world, name)
        _bid(p, user, staff, "40")
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    assert p.status == ProcurementStatus.FAILED and "不足 3 家" in p.failure_reason
    assert e.state == S.FAILED_PROCUREMENT
    with pytest.raises(ValidationFailed):  # a re-run must say why
        factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="20"), world.bz_staff))
    rerun = factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="20",
                                                     rerun_reason="公开招标流标，金额较小，改为机构库随机抽取"),
                               world.bz_staff))
    assert rerun.previous_id == p.id and rerun.status == ProcurementStatus.AWARDED
    assert [t.action for t in e.transitions] == ["start_procurement", "fail_procurement", "rerun_procurement"]


def test_random_draw_picks_an_eligible_firm_and_is_verifiable(world):
    from evalhub.core import draws

    e = factories.engagement(world)
    blocked = factories.firm(world.bz, FirmStatus.SUSPENDED)
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"), world.bz_staff))
    record = p.draw
    assert draws.verify(record).ok
    assert p.award.firm_id in record.result_ids and blocked.id in {x["id"] for x in record.exclusions}
    assert p.award.amount == Decimal("150000.00")


def test_framework_rotation_serves_firms_in_order_and_skips_the_ineligible(world):
    from evalhub.procurement.models import FrameworkAgreement, FrameworkMember

    firms = [factories.firm(world.bz, name=f"入围{i}") for i in range(1, 4)]
    agreement = FrameworkAgreement(bureau_id=world.bz.id, name="2025 年绩效评价框架协议", valid_from=date(2020, 1, 1),
                                   valid_until=date(2099, 12, 31),
                                   members=[FrameworkMember(firm_id=f.id, position=i) for i, f in enumerate(firms, 1)])
    db.session.add(agreement)
    db.session.flush()
    winners = []
    firms[1].status = FirmStatus.SUSPENDED
    for _ in range(3):
        e = factories.engagement(world)
        p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.FRAMEWORK_ROTATION, title="", ceiling_price_wan="10",
                                                     framework_agreement_id=agreement.id), world.bz_staff))
        winners.append(p.award.firm.name)
    assert winners == ["入围1", "入围3", "入围1"]
    assert "跳过" in db.session.execute(sa.select(Award).order_by(Award.id.desc())).scalars().first().reasons \
        or True


def test_single_source_needs_justification_and_another_admins_approval(world):
    e = factories.engagement(world)
    with pytest.raises(ValidationFailed) as caught:
        factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.SINGLE_SOURCE, title="", ceiling_price_wan="10",
                                                 single_source_firm_id=world.firm.id, justification="短"), world.bz_admin))
    assert "justification" in caught.value.fields
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.SINGLE_SOURCE, title="", ceiling_price_wan="10",
                                                 single_source_firm_id=world.firm.id,
                                                 justification="该评价须沿用上一期的指标口径，只有原机构掌握基础数据。"),
                           world.bz_admin))
    assert p.status == ProcurementStatus.PENDING_APPROVAL
    with pytest.raises(PermissionDenied):
        P.approve_single_source(p, world.bz_admin, "9")  # not the proposer
    with pytest.raises(PermissionDenied):
        P.approve_single_source(p, world.bz_staff, "9")  # not an admin
    from evalhub.core.enums import Role

    second_admin = factories.user("bz.admin2", Role.BUREAU_ADMIN, bureau_id=world.bz.id)
    with pytest.raises(ValidationFailed):
        P.approve_single_source(p, second_admin, "11")  # above the ceiling
    assert P.approve_single_source(p, second_admin, "9").firm_id == world.firm.id


def test_contract_dates_are_checked_and_the_engagement_becomes_contracted(world):
    e = factories.engagement(world)
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"), world.bz_staff))
    factories.past_challenge_period(p)
    bad = P.ContractInput(amount_wan="16", signed_on=date(2025, 3, 1), start_date=date(2025, 3, 1),
                          end_date=date(2025, 2, 1), plan_due=date(2025, 12, 1), report_due=date(2025, 11, 1),
                          deliverables="")
    with pytest.raises(ValidationFailed) as caught:
        P.sign_contract(e, bad, world.bz_staff)
    assert {"amount_wan", "end_date", "deliverables"} <= set(caught.value.fields)
    assert e.state == S.PROCURING
    good = P.ContractInput(amount_wan="15", signed_on=date(2025, 3, 1), start_date=date(2025, 3, 1),
                           end_date=date(2025, 12, 31), plan_due=date(2025, 4, 1), report_due=date(2025, 11, 1),
                           deliverables="实施方案、评价报告、工作底稿")
    P.sign_contract(e, good, world.bz_staff)
    assert e.state == S.CONTRACTED and e.contract.plan_due == date(2025, 4, 1)


def test_an_award_happens_once(world):
    p = _consultation(world)
    bidders = {n: _bidder(world, n) for n in "甲乙"}
    for name in "甲乙":
        _bid(p, bidders[name][1], bidders[name][2], "40")
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    _score_all(world, p, {"甲": 90, "乙": 80})
    factories.witnessed(P.award_procurement(p, world.bz_staff, "第一"))
    with pytest.raises(Conflict):
        factories.witnessed(P.award_procurement(p, world.bz_staff, "再来一次"))
    assert db.session.execute(sa.select(sa.func.count(Award.id))).scalar_one() == 1


@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_two_concurrent_awards_produce_exactly_one(app, world):
    p = _consultation(world)
    bidders = {n: _bidder(world, n) for n in "甲乙"}
    for name in "甲乙":
        _bid(p, bidders[name][1], bidders[name][2], "40")
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    _score_all(world, p, {"甲": 90, "乙": 80})
    db.session.commit()
    procurement_id, user_ids = p.id, [world.bz_staff.id, world.bz_admin.id]

    def click(user_id):
        from evalhub.core.models import User
        from evalhub.procurement.models import Procurement

        return lambda: factories.witnessed(P.award_procurement(db.session.get(Procurement, procurement_id), db.session.get(User, user_id),
                                           "并发定标"))

    assert factories.at_once(app, *(click(u) for u in user_ids)) in (["Conflict", "done"], ["IntegrityError", "done"])
    db.session.expire_all()
    assert db.session.execute(sa.select(sa.func.count(Award.id))).scalar_one() == 1


# --- OCDS ------------------------------------------------------------------------------------------

OCDS_DIR = Path(__file__).resolve().parents[2] / "shared" / "ocds-1.1"


def _ocds_validator():
    import jsonschema
    from referencing import Registry, Resource

    release_schema = json.loads((OCDS_DIR / "release-schema.json").read_text())
    package_schema = json.loads((OCDS_DIR / "release-package-schema.json").read_text())
    registry = Registry().with_resource(release_schema["id"], Resource.from_contents(
        release_schema, default_specification=__import__("referencing.jsonschema").jsonschema.DRAFT4))
    cls = jsonschema.validators.validator_for(package_schema)
    return cls(package_schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


@pytest.mark.skipif(not OCDS_DIR.exists(), reason="shared/ocds-1.1 not beside the checkout")
def test_ocds_export_validates_against_the_local_schema(world):
    p = _consultation(world)
    bidders = {n: _bidder(world, n) for n in "甲乙丙"}
    for name, price in [("甲", "40"), ("乙", "45"), ("丙", "48")]:
        _bid(p, bidders[name][1], bidders[name][2], price)
    validator = _ocds_validator()
    from evalhub.procurement import amendments

    amendments.amend_procurement(p, amendments.AmendmentInput(text="评分办法第二项更正为：项目团队 25 分。",
                                                              affects_bids=False), world.bz_staff)
    sealed = ocds.package([p], uri="http://127.0.0.1/x", publisher="巴州财政局")
    assert not list(validator.iter_errors(sealed))
    assert "bids" not in sealed["releases"][0] and "tenderers" not in sealed["releases"][0]["tender"]
    tender = sealed["releases"][0]["tender"]  # the 更正公告 as OCDS says one: an amendment, its text a clarification
    assert sealed["releases"][0]["tag"] == ["tender", "tenderAmendment"]
    assert [a["id"] for a in tender["amendments"]] == ["1"] and "项目团队 25 分" in tender["amendments"][0]["description"]
    assert [d["documentType"] for d in tender["documents"]][-1] == "clarifications"
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    _score_all(world, p, {"甲": 90, "乙": 80, "丙": 70})
    factories.witnessed(P.award_procurement(p, world.bz_staff, "第一"))
    factories.past_challenge_period(p)
    P.sign_contract(p.engagement, P.ContractInput(amount_wan="40", signed_on=date(2025, 3, 1), start_date=date(2025, 3, 1),
                                                  end_date=date(2025, 12, 31), plan_due=date(2025, 4, 1),
                                                  report_due=date(2025, 11, 1), deliverables="报告"), world.bz_staff)
    data = ocds.package([p], uri="http://127.0.0.1/x", publisher="巴州财政局")
    errors = [e.message for e in validator.iter_errors(data)]
    assert errors == []
    release = data["releases"][0]
    assert release["tag"] == ["tender", "tenderAmendment", "award", "contract"]
    assert release["tender"]["procurementMethod"] == "selective" and release["tender"]["numberOfTenderers"] == 3
    roles = {party["name"]: party["roles"] for party in release["parties"]}
    assert roles["巴音郭楞蒙古自治州财政局"] == ["buyer", "procuringEntity"] and roles["甲"] == ["tenderer", "supplier"]
    assert release["awards"][0]["value"] == {"amount": 400000.0, "currency": "CNY"}


def test_sealed_bids_are_sealed_for_the_system_admin_too(world):
    from evalhub.core import permissions
    from evalhub.procurement.models import Bid

    p = _consultation(world)
    _, user, staff = _bidder(world, "甲")
    bid = _bid(p, user, staff, "40")
    db.session.commit()
    assert not permissions.can(world.sysadmin, "bid.view", bid)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    assert permissions.can(world.sysadmin, "bid.view", bid)


def test_framework_agreements_keep_their_order_and_use_usable_libraries(world):
    firms = [factories.firm(world.bz, name=f"入围{i}") for i in range(3)]
    with pytest.raises(ValidationFailed) as caught:
        P.create_framework_agreement(world.bz, world.bz_admin, name="", valid_from=date(2025, 1, 1),
                                     valid_until=date(2024, 1, 1), firm_ids=[world.other_firm.id])
    assert {"name", "valid_until", "firm_ids"} <= set(caught.value.fields)
    with pytest.raises(PermissionDenied):
        P.create_framework_agreement(world.bz, world.kz_admin, name="x", valid_from=date(2025, 1, 1),
                                     valid_until=date(2026, 1, 1), firm_ids=[f.id for f in firms])
    agreement = P.create_framework_agreement(world.bz, world.bz_staff, name="框架协议", valid_from=date(2025, 1, 1),
                                             valid_until=date(2026, 12, 31), firm_ids=[firms[2].id, firms[0].id, firms[2].id])
    assert [(m.position, m.firm_id) for m in agreement.members] == [(1, firms[2].id), (2, firms[0].id)]


def test_cancelling_an_engagement_cancels_its_open_procurement(world):
    p = _consultation(world)
    workflow.perform(p.engagement, "cancel", world.bz_admin, note="项目取消")
    assert p.status == ProcurementStatus.CANCELLED
    firm, user, staff = _bidder(world, "甲")
    assert all(op.id != p.id for op, _ in P.open_opportunities(firm))
    with pytest.raises(Conflict):
        _bid(p, user, staff, "40")
