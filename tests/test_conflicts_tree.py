"""Issue 14, "Conflicts of interest up and down the tree": firms' recusal relations and experts' ties are
checked against the evaluated unit's and the commissioner's whole budget-unit tree (所属单位 below, 主管部门
above), and a lower-government evaluation (下级政府财政运行评价) treats that government's finance bureau and
all its units as the evaluated party — for firms (eligibility), panels, bid committees and inspectors alike.
Every exclusion names the tie and what the tied party is to the work."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.models import BudgetUnit
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.procurement import eligibility
from evalhub.procurement.models import ObjectType, ProcurementMethod
from evalhub.registry import services as registry
from evalhub.review import services as R
from tests import factories


def _unit(world, name: str, *, bureau=None, parent: BudgetUnit | None = None) -> BudgetUnit:
    unit = BudgetUnit(bureau_id=(bureau or world.bz).id, name=name, parent_id=parent.id if parent else None)
    db.session.add(unit)
    db.session.flush()
    world.units[name] = unit
    return unit


def _tree(world):
    """巴州统计主管部门 → 巴州统计局 (evaluated) → 巴州统计局普查中心."""
    stats = world.units["巴州统计局"]
    top = _unit(world, "巴州统计主管部门")
    stats.parent_id = top.id
    child = _unit(world, "巴州统计局普查中心", parent=stats)
    db.session.flush()
    return top, stats, child


def _relation(firm, actor, *, unit=None, bureau=None, kind="代理记账"):
    return registry.add_relation(firm, kind=kind, bureau_id=bureau.id if bureau else None,
                                 budget_unit_id=unit.id if unit else None, start_date=date(2024, 1, 1),
                                 end_date=None, note=None, actor=actor)


def _firm_reasons(firm, e) -> str:
    return "；".join(eligibility.exclusion_reasons(firm, e, ProcurementMethod.OPEN_TENDER))


# --- firms ----------------------------------------------------------------------------------------

def test_a_firm_keeping_the_books_of_a_subunit_or_the_parent_of_the_evaluated_unit_is_excluded(world):
    top, stats, child = _tree(world)
    e = factories.engagement(world)  # evaluates 巴州统计局
    below = factories.firm(world.bz, name="普查中心代账公司")
    above = factories.firm(world.bz, name="主管部门税务代理公司")
    sibling = factories.firm(world.bz, name="民政局代账公司")
    _relation(below, world.bz_admin, unit=child)
    _relation(above, world.bz_admin, unit=top, kind="税务代理")
    _relation(sibling, world.bz_admin, unit=world.units["巴州民政局"])
    assert "与巴州统计局普查中心（被评价单位巴州统计局的所属单位）存在代理记账关系（自 2024-01-01）" in _firm_reasons(below, e)
    assert "与巴州统计主管部门（被评价单位巴州统计局的主管部门）存在税务代理关系" in _firm_reasons(above, e)
    assert "关系" not in _firm_reasons(sibling, e)  # a sibling unit is no party
    assessed = eligibility.assess(e, ProcurementMethod.OPEN_TENDER)
    assert below.id in assessed.excluded and above.id in assessed.excluded
    assert sibling in assessed.eligible


def test_the_commissioning_unit_tree_counts_too(world):
    _tree(world)
    civil = world.units["巴州民政局"]
    civil_child = _unit(world, "巴州民政局福利中心", parent=civil)
    e = factories.engagement(world, commissioner="巴州民政局")
    firm = factories.firm(world.bz, name="福利中心代账公司")
    _relation(firm, world.bz_admin, unit=civil_child)
    assert "福利中心（委托方巴州民政局的所属单位）" in _firm_reasons(firm, e)
    # the bureau is no party once a unit commissions: its bookkeeper may take part
    books = factories.firm(world.bz, name="财政局代账公司")
    _relation(books, world.bz_admin, bureau=world.bz)
    assert "关系" not in _firm_reasons(books, e)
    own = factories.engagement(world)  # commissioned by the bureau itself
    assert "委托方巴音郭楞蒙古自治州财政局存在代理记账关系" in _firm_reasons(books, own)


def test_an_ended_relation_no_longer_excludes(world):
    _top, _stats, child = _tree(world)
    e = factories.engagement(world)
    firm = factories.firm(world.bz)
    rel = _relation(firm, world.bz_admin, unit=child)
    today = beijing_today()
    # ended from today (never backdated: audit of the registry), so it still holds today and no longer tomorrow
    registry.end_relation(rel, today, world.bz_admin, "代理记账合同已解除")
    assert "关系" in _firm_reasons(firm, e)
    tomorrow = "；".join(eligibility.exclusion_reasons(firm, e, ProcurementMethod.OPEN_TENDER,
                                                     on=today + timedelta(days=1)))
    assert "关系" not in tomorrow


# --- lower governments ------------------------------------------------------------------------------

def _lower_government(world, *, contracted: bool = False):
    """巴州's 2025 evaluation of 轮台县's finances (the plan item names a unit of 轮台县财政局)."""
    make = factories.contracted if contracted else factories.engagement
    e = make(world, unit="轮台县医疗保障局", name="轮台县财政运行综合绩效")
    e.plan_item.object_type = ObjectType.LOWER_GOVERNMENT
    db.session.flush()
    return e


def test_a_lower_government_evaluation_treats_its_bureau_and_units_as_the_evaluated_party(world):
    e = _lower_government(world)
    education = _unit(world, "轮台县教育局", bureau=world.lt)
    books = factories.firm(world.bz, name="轮台代账公司")
    _relation(books, world.bz_admin, bureau=world.lt)
    school_books = factories.firm(world.bz, name="教育局代账公司")
    _relation(school_books, world.bz_admin, unit=education)
    assert eligibility.evaluated_government(e) == world.lt
    assert "与轮台县财政局（被评价的下级政府（轮台县）财政部门）存在代理记账关系" in _firm_reasons(books, e)
    assert "轮台县教育局（被评价的下级政府（轮台县）所属预算单位）" in _firm_reasons(school_books, e)
    # the same unit evaluated as a project: only the unit (and its tree) is the evaluated party
    project = factories.engagement(world, unit="轮台县医疗保障局")
    assert eligibility.evaluated_government(project) is None
    assert "关系" not in _firm_reasons(books, project) and "关系" not in _firm_reasons(school_books, project)


def test_experts_employed_by_the_lower_government_are_kept_off_its_panel(world):
    e = _lower_government(world, contracted=True)
    _unit(world, "轮台县教育局", bureau=world.lt)
    at_bureau = factories.expert(world.bz, name="轮台财政专家", employer="轮台县财政局")
    at_unit = factories.expert(world.bz, name="轮台教育专家", employer="轮台县教育局")
    clear = factories.expert(world.bz, name="无关专家", employer="新疆某大学丙")
    out = R.panel_exclusions(e, [at_bureau, at_unit, clear], offline=True)
    assert any("轮台县财政局（被评价的下级政府（轮台县）财政部门）存在任职关系" in r for r in out[at_bureau.id])
    assert any("轮台县教育局（被评价的下级政府（轮台县）所属预算单位）" in r for r in out[at_unit.id])
    assert clear.id not in out
    parties = eligibility.engagement_parties(e)
    assert registry.expert_avoidance_reasons(at_bureau, parties=parties)
    assert not registry.expert_avoidance_reasons(clear, parties=parties)


# --- experts down the tree (draw #422) ---------------------------------------------------------------

def test_an_expert_of_a_subunit_is_excluded_with_the_reason_naming_the_tree(world):
    _top, _stats, child = _tree(world)
    e = factories.contracted(world)
    census = factories.expert(world.bz, name="普查中心专家", employer="巴州统计局普查中心")
    declared = factories.expert(world.bz, name="申报专家", employer="新疆某大学丁")
    registry.add_expert_tie(declared, kind="其他利害关系", counterpart_type="预算单位", counterpart_name=None,
                            firm_id=None, bureau_id=None, budget_unit_id=child.id, start_date=date(2023, 1, 1),
                            end_date=None, note=None, actor=world.bz_staff)
    out = R.panel_exclusions(e, [census, declared], offline=True)
    assert "与巴州统计局普查中心（被评价单位巴州统计局的所属单位）存在任职关系" in out[census.id][0]
    assert "其他利害关系" in " ".join(out[declared.id])


def test_bare_ids_keep_the_old_short_reasons(world):
    firm = factories.firm(world.bz)
    _relation(firm, world.bz_admin, unit=world.units["巴州民政局"])
    reasons = registry.firm_recusal_reasons(firm, budget_unit_ids=[world.units["巴州民政局"].id])
    assert reasons == ["与巴州民政局存在代理记账关系（自 2024-01-01）"]


@pytest.mark.parametrize("object_type", [ObjectType.PROJECT, ObjectType.LOWER_GOVERNMENT])
def test_a_unit_of_the_own_bureau_is_never_a_lower_government(world, object_type):
    e = factories.engagement(world)
    e.plan_item.object_type = object_type
    assert eligibility.evaluated_government(e) is None


def _opened(world, bidders: str):
    """A consultation of 巴州 with two bids, opened: a committee may be drawn for it."""
    from datetime import timedelta

    from evalhub.core.timeutil import utcnow
    from evalhub.procurement import services as P

    e = factories.engagement(world)
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(
        method=ProcurementMethod.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=factories.bid_deadline(world.bz, 10)), world.bz_staff))
    for name, price in (("甲", "40"), ("乙", "45")):
        _firm, user, staff = factories.bidder(world, f"{bidders}{name}")
        factories.bid(p, user, staff, price)
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    return p


def test_the_bid_committee_avoids_the_subunit_and_the_lower_government(world):
    from evalhub.procurement import services as P

    _top, _stats, _child = _tree(world)
    p = _opened(world, "委员会测试机构")
    census = factories.expert(world.bz, name="普查中心评委", employer="巴州统计局普查中心")
    clear = [factories.expert(world.bz, name=f"独立评委{i}", employer=f"新疆某学院{i}") for i in range(3)]
    record = P.draw_committee(p, 3, world.bz_staff)
    excluded = {x["id"]: x["reasons"] for x in record.exclusions}
    assert any("巴州统计局普查中心（被评价单位巴州统计局的所属单位）" in r for r in excluded[census.id])
    assert not any(x.id in excluded for x in clear)


def test_a_committee_member_who_no_longer_qualifies_at_the_reveal_is_replaced_from_the_witnessed_seed(world):
    """The committee draw stands as announced; an expert it picks who was suspended between the announcement and the
    reveal does not sit, a draw derived from the witnessed seed fills the seat; with no one left to fill it, the
    reveal is refused and nothing is seated."""
    from evalhub.core import draws
    from evalhub.core.errors import Conflict
    from evalhub.core.models import Draw
    from evalhub.procurement import services as P
    from evalhub.registry.models import ExpertStatus

    p = _opened(world, "补抽测试机构")
    for i in range(4):
        factories.expert(world.bz, name=f"评委候选{i}", employer=f"新疆某学院{i}")
    record = P.draw_committee(p, 3, world.bz_staff)
    eligible = draws.eligible_ids(record)
    draws.name_witnesses(record, [world.bz_admin], world.bz_staff, check=False, notify=False)
    draws.enter_number(record, world.bz_admin, 5)
    picked = draws.rank(draws.seed_of(record.secret, record.candidate_hash, ["5"]), eligible)[:3]
    spare = sorted(set(eligible) - set(picked))
    expert = lambda i: db.session.get(factories.registry.Expert, i)  # noqa: E731

    db.session.commit()
    for i in [picked[0], *spare]:  # with no spare who qualifies: refused, and the request writes nothing
        expert(i).status = ExpertStatus.SUSPENDED
    db.session.flush()
    with pytest.raises(Conflict) as refused:
        draws.reveal(record, world.bz_staff)
    assert "可补抽的专家不足" in refused.value.message and "名" not in refused.value.message
    db.session.rollback()
    assert p.committee == [] and record.status.value == "announced"

    expert(picked[0]).status = ExpertStatus.SUSPENDED  # suspended between the announcement and the reveal
    db.session.flush()
    draws.reveal(record, world.bz_staff)
    assert record.result_ids == picked  # the witnessed result is what it was
    seated = [m.expert_id for m in p.committee]
    assert seated[:2] == picked[1:] and len(seated) == 3 and seated[2] in spare
    replacement = db.session.execute(sa.select(Draw).where(Draw.derived_from_id == record.id)).scalar_one()
    assert replacement.result_ids == [seated[2]] and draws.verify(replacement).ok
    reasons = {x["id"]: " ".join(x["reasons"]) for x in replacement.exclusions}
    assert "揭晓时已不符合条件" in reasons[picked[0]] and "已被本次抽取选中" in reasons[picked[1]]
