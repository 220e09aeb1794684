"""Issue 13 (awards that hold): one eligibility function for bid, award and contract.

``eligibility.assert_eligible(procurement, firm, stage)`` applies the same rules as the bid-time assessment
again at award and contract: library status now, last year's final credit grade (C: open tender only, in
every method), the watch list and dishonesty records, field, recusal, rotation, and the yearly cap counting
awards made and awards pending (a standing award whose contract is not signed) — the award being made once.
Two awards to one firm at the same moment cannot both pass the cap (PostgreSQL test with real threads).

The rows an award leaves (procurement, award, contract) are written directly here, so that these tests pin
the rule at its boundary whatever the procurement flow around it does.
"""
from __future__ import annotations

import os
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.errors import Conflict
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import beijing_today
from evalhub.credit.models import CreditGrade, CreditRating, ExternalCreditRecord, ExternalRecordKind, RatingStatus
from evalhub.credit.services import GRADE_RULE
from evalhub.extensions import db
from evalhub.procurement import eligibility
from evalhub.procurement.models import (
    Award, Contract, EngagementState, Procurement, ProcurementMethod as M, ProcurementStatus,
)
from evalhub.registry.models import FirmStatus
from tests import factories

ON_POSTGRESQL = bool(os.environ.get("EVALHUB_TEST_DATABASE_URL"))
NOT_OPEN_TENDER = [M.COMPETITIVE_CONSULTATION, M.RANDOM_DRAW, M.FRAMEWORK_ROTATION, M.SINGLE_SOURCE]


# --- helpers: the rows a procurement and its award leave --------------------------------------------

def _procurement(world, e, method=M.COMPETITIVE_CONSULTATION, status=ProcurementStatus.EVALUATING) -> Procurement:
    p = Procurement(engagement_id=e.id, bureau_id=e.bureau_id, method=method, status=status, title=f"{e.name}采购",
                    ceiling_price=Decimal("200000"), price_weight=Decimal("30"), low_bid_ratio=Decimal("70"),
                    created_by_id=world.bz_staff.id)
    e.procurements.append(p)
    e.state = EngagementState.PROCURING
    db.session.flush()
    return p


def _award(world, p, firm) -> Award:
    """A standing award (the contract not yet signed): the firm is the provisional winner."""
    award = Award(procurement_id=p.id, engagement_id=p.engagement_id, firm_id=firm.id, amount=Decimal("180000"),
                  reasons="综合得分第一", notice="成交公告", awarded_by_id=world.bz_admin.id)
    p.award, p.status = award, ProcurementStatus.AWARDED
    p.engagement.firm_id = firm.id
    db.session.flush()
    return award


def _contract(award) -> Contract:
    e = award.procurement.engagement
    contract = Contract(engagement_id=e.id, award_id=award.id, firm_id=award.firm_id, amount=award.amount,
                        signed_on=date(2025, 3, 1), start_date=date(2025, 3, 1), end_date=date(2025, 12, 31),
                        plan_due=date(2025, 4, 1), report_due=date(2025, 10, 31), deliverables="实施方案、评价报告")
    e.contract, e.state = contract, EngagementState.CONTRACTED
    db.session.flush()
    return contract


def _awarded_elsewhere(world, firm, *, unit="巴州民政局", contract=False, year=2025):
    e = factories.engagement(world, unit=unit, year=year)
    award = _award(world, _procurement(world, e), firm)
    if contract:
        _contract(award)
    return e


def _rating(world, firm, year, grade, status=RatingStatus.FINAL, **kw) -> CreditRating:
    rating = CreditRating(bureau_id=world.bz.id, firm_id=firm.id, year=year, status=status, rated=grade is not None,
                          total=Decimal("70") if grade else None, grade=grade, components=[], **kw)
    db.session.add(rating)
    db.session.flush()
    return rating


def _refusal(p, firm, stage) -> str:
    with pytest.raises(Conflict) as caught:
        eligibility.assert_eligible(p, firm, stage)
    return caught.value.message


# --- the stages share one rule set ----------------------------------------------------------------

def test_every_stage_applies_the_bid_time_assessment(world):
    e = factories.engagement(world)
    p = _procurement(world, e)
    for stage in ("bid", "award", "contract"):
        eligibility.assert_eligible(p, world.firm, stage)  # eligible: nothing raised
    outsider = factories.firm(world.kz)
    reasons = eligibility.exclusion_reasons(outsider, e, p.method)
    for stage, word in (("bid", "投标"), ("award", "定标"), ("contract", "签订合同")):
        message = _refusal(p, outsider, stage)
        assert message.startswith(f"{outsider.name}不符合{word}条件")
        assert all(reason in message for reason in reasons)
    with pytest.raises(ValueError):
        eligibility.assert_eligible(p, world.firm, "tender")


def test_a_firm_suspended_after_bidding_cannot_be_awarded_or_contracted(world):
    e = factories.engagement(world)
    p = _procurement(world, e)
    eligibility.assert_eligible(p, world.firm, "bid")
    world.firm.status = FirmStatus.SUSPENDED  # suspended between its bid and the award
    db.session.flush()
    assert "机构库状态为“暂停”" in _refusal(p, world.firm, "award")
    award = _award(world, p, world.firm)  # awarded before it was suspended: the contract is refused
    assert award.id
    assert "机构库状态为“暂停”" in _refusal(p, world.firm, "contract")
    world.firm.status = FirmStatus.REMOVED
    assert "机构库状态为“已移出”" in _refusal(p, world.firm, "contract")
    world.firm.status = FirmStatus.ADMITTED
    eligibility.assert_eligible(p, world.firm, "contract")


# --- the yearly cap: awards made and pending --------------------------------------------------------

def test_the_cap_is_reached_by_a_pending_award(world):
    set_setting(world.bz, "firm.max_key_evaluations", 1, world.bz_admin)
    e = factories.engagement(world)
    p = _procurement(world, e)
    eligibility.assert_eligible(p, world.firm, "award")  # nothing held yet
    _awarded_elsewhere(world, world.firm)  # provisional winner of another consultation, no contract yet
    message = _refusal(p, world.firm, "award")
    assert "2025 年已承接或已中标巴州 1 项重点绩效评价" in message and "达到上限 1 项" in message
    # the marketplace and the bid say the same
    assert "达到上限 1 项" in eligibility.exclusion_reasons(world.firm, e, p.method)[-1]
    assert "达到上限" in _refusal(p, world.firm, "bid")


def test_awards_no_longer_standing_do_not_count(world):
    set_setting(world.bz, "firm.max_key_evaluations", 1, world.bz_admin)
    p = _procurement(world, factories.engagement(world))
    other = _awarded_elsewhere(world, world.firm)
    other.current_procurement.status = ProcurementStatus.FAILED  # the award fell (e.g. a challenge upheld)
    db.session.flush()
    eligibility.assert_eligible(p, world.firm, "award")
    other.current_procurement.status = ProcurementStatus.AWARDED
    other.state = EngagementState.CANCELLED  # the engagement was terminated
    db.session.flush()
    eligibility.assert_eligible(p, world.firm, "award")
    # another year, another bureau's engagement: not this cap
    _awarded_elsewhere(world, world.firm, year=2024)
    kz_e = factories.engagement(world, bureau_key="kz", unit="克州农业农村局")
    _award(world, _procurement(world, kz_e), world.firm)
    eligibility.assert_eligible(p, world.firm, "award")


def test_contracted_engagements_count_toward_the_cap(world):
    set_setting(world.bz, "firm.max_key_evaluations", 2, world.bz_admin)
    p = _procurement(world, factories.engagement(world))
    _awarded_elsewhere(world, world.firm, contract=True)
    eligibility.assert_eligible(p, world.firm, "award")  # 1 held, cap 2
    e3 = _awarded_elsewhere(world, world.firm, unit="巴州统计局")
    e3.state = EngagementState.FIELDWORK  # further on in its work
    db.session.flush()
    assert "达到上限 2 项" in _refusal(p, world.firm, "award")


def test_the_award_being_made_counts_once(world):
    set_setting(world.bz, "firm.max_key_evaluations", 2, world.bz_admin)
    e = factories.engagement(world)
    p = _procurement(world, e)
    _awarded_elsewhere(world, world.firm)  # one pending elsewhere: this award makes 2 of 2
    eligibility.assert_eligible(p, world.firm, "award")
    award = _award(world, p, world.firm)  # written (flushed) before the check, it still counts once
    eligibility.assert_eligible(p, world.firm, "award")
    eligibility.assert_eligible(p, world.firm, "contract")  # and at the contract, once
    _contract(award)
    eligibility.assert_eligible(p, world.firm, "contract")
    set_setting(world.bz, "firm.max_key_evaluations", 1, world.bz_admin)
    assert "达到上限 1 项" in _refusal(p, world.firm, "contract")


def test_rotation_counts_the_neighbouring_years_both_ways(world):
    last_year = _awarded_elsewhere(world, world.firm, unit="巴州统计局", contract=True, year=2024)
    p = _procurement(world, factories.engagement(world, unit="巴州统计局", year=2025))
    assert "2024 年已评价巴州统计局，不得连续评价同一预算单位" in _refusal(p, world.firm, "award")
    last_year.state = EngagementState.CANCELLED
    db.session.flush()
    eligibility.assert_eligible(p, world.firm, "award")
    # a late procurement of an earlier year sits next to the year the firm already holds
    _awarded_elsewhere(world, world.firm, unit="巴州统计局", year=2026)
    assert "2026 年已评价巴州统计局" in _refusal(p, world.firm, "award")
    set_setting(world.bz, "firm.rotation_years", 0, world.bz_admin)
    eligibility.assert_eligible(p, world.firm, "award")


# --- credit: C only in open tender, D nowhere, the watch list --------------------------------------

@pytest.mark.parametrize("method", NOT_OPEN_TENDER)
def test_a_c_firm_is_refused_in_every_method_but_open_tender(world, method):
    c_firm = factories.firm(world.bz)
    _rating(world, c_firm, 2024, CreditGrade.C)
    e = factories.engagement(world)
    message = _refusal(_procurement(world, e, method), c_firm, "award")
    assert "2024 年度信用评价为 C 级，只能通过公开招标参与" in message and method.label in message
    assert c_firm.id not in {f.id for f in eligibility.assess(e, method).eligible}


def test_a_c_firm_may_win_an_open_tender(world):
    c_firm = factories.firm(world.bz)
    _rating(world, c_firm, 2024, CreditGrade.C)
    p = _procurement(world, factories.engagement(world), M.OPEN_TENDER)
    for stage in ("bid", "award", "contract"):
        eligibility.assert_eligible(p, c_firm, stage)
    d_firm = factories.firm(world.bz)
    _rating(world, d_firm, 2024, CreditGrade.D)
    assert "2024 年度信用评价为 D 级" in _refusal(p, d_firm, "award")


def test_the_previous_final_grade_stays_in_force_while_last_years_is_under_publicity(world):
    firm = factories.firm(world.bz)
    _rating(world, firm, 2023, CreditGrade.C)
    last = _rating(world, firm, 2024, CreditGrade.B, status=RatingStatus.PUBLISHED)
    p = _procurement(world, factories.engagement(world, year=2025))
    assert "2023 年度信用评价为 C 级" in _refusal(p, firm, "award")
    last.status = RatingStatus.FINAL  # last year's grade is now final: it governs
    db.session.flush()
    eligibility.assert_eligible(p, firm, "award")
    # no rating at all last year (e.g. no work): an older grade does not carry over
    idle = factories.firm(world.bz)
    _rating(world, idle, 2023, CreditGrade.D)
    eligibility.assert_eligible(p, idle, "award")


def test_the_watch_list_excludes_with_its_reason(world):
    firm = factories.firm(world.bz)
    _rating(world, firm, 2024, CreditGrade.B, watch_list=True, watch_reason="伪造评价数据")
    p = _procurement(world, factories.engagement(world), M.OPEN_TENDER)
    assert "2024 年度被巴州列入重点关注名单：伪造评价数据" in _refusal(p, firm, "award")
    # two years on, the watch has run out
    later = _procurement(world, factories.engagement(world, year=2026, unit="巴州民政局"), M.OPEN_TENDER)
    eligibility.assert_eligible(later, firm, "award")


def test_a_dishonesty_record_excludes_for_the_set_years(world):
    firm = factories.firm(world.bz)
    stored = files.store("说明.txt", "执行法院公布的失信被执行人名单截图说明".encode(), allowed=files.DOCUMENT_KINDS)
    record = ExternalCreditRecord(bureau_id=world.bz.id, firm_id=firm.id, kind=ExternalRecordKind.DISHONEST_LIST,
                                  occurred_on=beijing_today() - timedelta(days=400), description="列入失信被执行人名单",
                                  deduction=Decimal("10"), source_file_id=stored.id, entered_by_id=world.bz_staff.id)
    db.session.add(record)
    db.session.flush()
    p = _procurement(world, factories.engagement(world), M.OPEN_TENDER)
    assert "失信被执行人/严重失信名单：列入失信被执行人名单" in _refusal(p, firm, "award")
    set_setting(world.bz, "credit.dishonest_years", 1, world.bz_admin)  # 400 days ago: past one year
    eligibility.assert_eligible(p, firm, "award")


def test_the_rules_listed_on_pages_are_the_rules_applied(world):
    set_setting(world.bz, "firm.max_key_evaluations", 3, world.bz_admin)
    listed = eligibility.rules(world.bz)
    assert GRADE_RULE in listed
    assert any("不超过 3 项" in rule for rule in listed)
    assert any("重点关注名单" in rule and "3 年内" in rule for rule in listed)


# --- the race: two awards to one firm at the same moment ----------------------------------------------

@pytest.mark.skipif(not ON_POSTGRESQL, reason="simultaneous transactions are tested against PostgreSQL")
def test_two_simultaneous_awards_do_not_both_pass_the_cap(app, world):
    from evalhub.registry.models import Firm
    from tests.test_races import at_once, in_context

    set_setting(world.bz, "firm.max_key_evaluations", 1, world.bz_admin)
    procurements = [_procurement(world, factories.engagement(world, unit=u)) for u in ("巴州统计局", "巴州民政局")]
    db.session.commit()
    ids, firm_id, actor_id = [p.id for p in procurements], world.firm.id, world.bz_admin.id

    def award(i):
        p, firm = db.session.get(Procurement, ids[i]), db.session.get(Firm, firm_id)
        eligibility.assert_eligible(p, firm, "award")
        db.session.add(Award(procurement_id=p.id, engagement_id=p.engagement_id, firm_id=firm.id, amount=Decimal("1"),
                             reasons="并发", notice="公告", awarded_by_id=actor_id))
        p.status = ProcurementStatus.AWARDED
        db.session.flush()
        threading.Event().wait(0.3)  # hold the lock a while: the other must wait, then count this award
        return "awarded"

    outcomes = at_once(2, lambda i: in_context(app, lambda: award(i)))
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert outcomes.count("awarded") == 1 and len(conflicts) == 1, outcomes
    assert "达到上限 1 项" in conflicts[0].message
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(Award.id)).where(Award.firm_id == firm_id)).scalar_one() == 1


# --- through the services: award, contract, draw, rotation, single source ---------------------------

def _competition(world, e=None, method=M.COMPETITIVE_CONSULTATION):
    from evalhub.core.timeutil import utcnow
    from evalhub.procurement import services as P

    return factories.witnessed(P.open_procurement(e or factories.engagement(world), P.ProcurementInput(
        method=method, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=factories.bid_deadline(world.bz, 30)), world.bz_staff))


def _evaluated(world, p, bidders, points):
    """Bids from ``bidders`` (name → (firm, user, staff)), opened and scored: ready for the award."""
    from evalhub.procurement import services as P
    from tests.test_procurement_services import _bid, _past_deadline, _score_all

    for firm, user, staff in bidders.values():
        _bid(p, user, staff, "40")
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    _score_all(world, p, points)
    return p


def _bidders(world, *names):
    from tests.test_procurement_services import _bidder

    return {n: _bidder(world, n) for n in names}


def test_award_procurement_refuses_past_the_cap_counting_a_pending_award(world):
    from evalhub.procurement import services as P

    set_setting(world.bz, "firm.max_key_evaluations", 1, world.bz_admin)
    bidders = _bidders(world, "甲", "乙")
    first = _evaluated(world, _competition(world), bidders, {"甲": 90, "乙": 80})
    second = _evaluated(world, _competition(world, factories.engagement(world, unit="巴州民政局")),
                        bidders, {"甲": 90, "乙": 80})
    factories.witnessed(P.award_procurement(first, world.bz_admin, "综合得分第一"))  # 甲 wins; the contract waits for the challenge period
    assert first.engagement.contract is None
    db.session.commit()
    with pytest.raises(Conflict) as caught:
        factories.witnessed(P.award_procurement(second, world.bz_admin, "综合得分第一"))
    assert "甲不符合定标条件" in caught.value.message and "达到上限 1 项" in caught.value.message
    db.session.rollback()
    second = db.session.get(Procurement, second.id)
    assert second.award is None and second.status == ProcurementStatus.EVALUATING  # nothing half-written


def test_award_procurement_refuses_a_firm_suspended_after_bidding(world):
    from evalhub.procurement import services as P

    bidders = _bidders(world, "甲", "乙")
    p = _evaluated(world, _competition(world), bidders, {"甲": 90, "乙": 80})
    bidders["甲"][0].status = FirmStatus.SUSPENDED
    db.session.flush()
    with pytest.raises(Conflict) as caught:
        factories.witnessed(P.award_procurement(p, world.bz_admin, "综合得分第一"))
    assert "机构库状态为“暂停”" in caught.value.message


def test_sign_contract_refuses_a_winner_suspended_after_the_award(world):
    from evalhub.procurement import services as P

    bidders = _bidders(world, "甲", "乙")
    p = _evaluated(world, _competition(world), bidders, {"甲": 90, "乙": 80})
    factories.witnessed(P.award_procurement(p, world.bz_admin, "综合得分第一"))
    factories.past_challenge_period(p)
    bidders["甲"][0].status = FirmStatus.SUSPENDED
    db.session.flush()
    contract = P.ContractInput(amount_wan="40", signed_on=date(2026, 1, 5), start_date=date(2026, 1, 5),
                               end_date=date(2026, 12, 31), plan_due=date(2026, 2, 1), report_due=date(2026, 10, 31),
                               deliverables="实施方案、评价报告",
                               # past the 30 days from the (back-dated) notice: 政府采购法 第四十六条 asks why
                               late_reason="中标机构暂停期间不能签订合同，恢复后签订。")
    with pytest.raises(Conflict) as caught:
        P.sign_contract(p.engagement, contract, world.bz_staff)
    assert "甲不符合签订合同条件" in caught.value.message and "暂停" in caught.value.message
    bidders["甲"][0].status = FirmStatus.ADMITTED
    assert P.sign_contract(p.engagement, contract, world.bz_staff).firm_id == bidders["甲"][0].id


def test_a_c_firm_is_left_out_of_the_library_draw_and_single_source(world):
    from evalhub.core.errors import ValidationFailed
    from evalhub.procurement import services as P

    c_firm = factories.firm(world.bz, name="C级机构")
    _rating(world, c_firm, 2024, CreditGrade.C)
    e = factories.engagement(world)
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="20"), world.bz_staff))
    assert p.award.firm_id == world.firm.id
    excluded = {x["id"]: x for x in p.draw.exclusions}
    assert "C 级" in str(excluded[c_firm.id])
    with pytest.raises(ValidationFailed) as caught:
        factories.witnessed(P.open_procurement(factories.engagement(world, unit="巴州民政局"), P.ProcurementInput(
            method=M.SINGLE_SOURCE, title="", ceiling_price_wan="20", single_source_firm_id=c_firm.id,
            justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。"), world.bz_staff))
    assert "C 级" in caught.value.fields["single_source_firm_id"]


def test_a_c_firm_is_skipped_in_framework_rotation(world):
    from evalhub.procurement import services as P

    c_firm = factories.firm(world.bz, name="C级机构")
    _rating(world, c_firm, 2024, CreditGrade.C)
    agreement = P.create_framework_agreement(world.bz, world.bz_admin, name="绩效评价框架协议",
                                             valid_from=beijing_today() - timedelta(days=30),
                                             valid_until=beijing_today() + timedelta(days=300),
                                             firm_ids=[c_firm.id, world.firm.id])
    p = factories.witnessed(P.open_procurement(factories.engagement(world), P.ProcurementInput(
        method=M.FRAMEWORK_ROTATION, title="", ceiling_price_wan="20", framework_agreement_id=agreement.id),
        world.bz_staff))
    assert p.award.firm_id == world.firm.id
    assert "C级机构" in p.award.reasons and "C 级" not in p.award.reasons  # whom it passed over, publicly; not why
    from evalhub.core.models import AuditEvent

    skipped = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "framework.skipped")).scalar_one()
    assert "C 级" in " ".join(skipped.payload["skipped"])  # why: in the audit log, for the bureau


def test_single_source_approval_rechecks_the_firm(world):
    from evalhub.procurement import services as P

    p = factories.witnessed(P.open_procurement(factories.engagement(world), P.ProcurementInput(
        method=M.SINGLE_SOURCE, title="", ceiling_price_wan="20", single_source_firm_id=world.firm.id,
        justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。"), world.bz_staff))
    _rating(world, world.firm, 2024, CreditGrade.C)  # last year's grade became final while awaiting approval
    with pytest.raises(Conflict) as caught:
        P.approve_single_source(p, world.bz_admin, "18")
    assert "C 级" in caught.value.message and "单一来源" in caught.value.message


# --- a page of cases at once (the market) ---------------------------------------------------------------

def test_a_page_of_cases_answers_as_each_case_alone(world):
    """``exclusion_matrix`` checks many firms against many engagements at once (a firm's market page): each
    case's reasons are what that case alone gives, for every rule — nothing of one case leaks into another's
    (bureau, year, unit, method and the settings of each case's bureau differ)."""
    from evalhub.core.enums import Field
    from evalhub.core.models import BudgetUnit
    from evalhub.registry.models import FirmRelation, RelationKind

    stored = files.store("说明.txt", "失信名单截图说明".encode(), allowed=files.DOCUMENT_KINDS)
    c_graded, d_graded, watched, dishonest = (factories.firm(world.bz) for _ in range(4))
    db.session.add_all([
        CreditRating(bureau_id=world.lt.id, firm_id=c_graded.id, year=2024, status=RatingStatus.FINAL, rated=True,
                     grade=CreditGrade.C, components=[]),
        CreditRating(bureau_id=world.kz.id, firm_id=d_graded.id, year=2025, status=RatingStatus.FINAL, rated=True,
                     grade=CreditGrade.D, components=[]),  # bars 2026's engagements only
        CreditRating(bureau_id=world.bz.id, firm_id=watched.id, year=2024, status=RatingStatus.FINAL, rated=True,
                     grade=CreditGrade.B, components=[], watch_list=True, watch_reason="伪造评价数据"),
        ExternalCreditRecord(bureau_id=world.bz.id, firm_id=dishonest.id, kind=ExternalRecordKind.DISHONEST_LIST,
                             occurred_on=beijing_today() - timedelta(days=400), description="列入失信被执行人名单",
                             deduction=Decimal("10"), source_file_id=stored.id, entered_by_id=world.bz_staff.id)])
    set_setting(world.lt, "credit.dishonest_years", 1, world.lt_admin)  # 400 days ago: counts in 巴州, not in 轮台
    suspended = factories.firm(world.bz, FirmStatus.SUSPENDED)
    elsewhere = factories.firm(world.kz)  # 克州's library: not usable by 巴州
    narrow = factories.firm(world.bz, fields=[Field.EDUCATION])
    related = factories.firm(world.bz)
    db.session.add(FirmRelation(firm_id=related.id, budget_unit_id=world.units["巴州民政局"].id,
                                kind=RelationKind.TAX_AGENT, start_date=date(2024, 1, 1)))
    capped = factories.firm(world.bz)
    set_setting(world.bz, "firm.max_key_evaluations", 1, world.bz_admin)
    _awarded_elsewhere(world, capped, unit="巴州统计局")  # 巴州 2025: one held
    rotated = factories.firm(world.bz)
    _awarded_elsewhere(world, rotated, unit="巴州民政局", contract=True, year=2024)
    education = BudgetUnit(bureau_id=world.bz.id, name="巴州教育局")
    db.session.add(education)
    db.session.flush()
    world.units["巴州教育局"] = education
    cases = [(factories.engagement(world), M.COMPETITIVE_CONSULTATION),
             (factories.engagement(world, unit="巴州民政局"), M.OPEN_TENDER),
             (factories.engagement(world, unit="巴州民政局", year=2026), M.RANDOM_DRAW),
             (factories.engagement(world, unit="巴州教育局", field=Field.EDUCATION, year=2026), M.OPEN_TENDER),
             (factories.engagement(world, bureau_key="lt", unit="轮台县医疗保障局"), M.SINGLE_SOURCE),
             (factories.engagement(world, bureau_key="kz", unit="克州农业农村局"), M.COMPETITIVE_CONSULTATION)]
    db.session.commit()
    firms = [world.firm, world.other_firm, c_graded, d_graded, watched, dishonest, suspended, elsewhere, narrow,
             related, capped, rotated]

    matrix = eligibility.exclusion_matrix(firms, cases)
    for i, (engagement, method) in enumerate(cases):
        alone = eligibility.exclusions(firms, engagement, method)
        assert {f.id: matrix[(f.id, i)] for f in firms} == alone, (engagement.bureau.short_name, engagement.year, method)
    said = "\n".join(reason for reasons in matrix.values() for reason in reasons)
    for rule in ("C 级，只能通过公开招标参与", "D 级，暂停参与", "重点关注名单：伪造评价数据", "列入失信被执行人名单",
                 "机构库状态为“暂停”", "不在巴州或其上级财政局的第三方机构库中", "存在税务代理关系", "达到上限 1 项",
                 "不得连续评价同一预算单位", "业务领域不含"):
        assert rule in said, rule  # every rule excluded someone somewhere: the comparison is not vacuous
    assert any(not reasons for reasons in matrix.values())  # and someone may take part somewhere
