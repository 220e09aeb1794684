"""Rules of procurement by the law and of procurement integrity.

Each test states a rule and its source, and sets up a case the rule decides.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import draws
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import (
    BidStatus, EngagementState as S, JustificationDecision, ProcurementMethod as M, ProcurementStatus,
)
from evalhub.registry.models import FirmStatus
from tests import factories

_bidder, _bid = factories.bidder, factories.bid


def _open(world, method=M.COMPETITIVE_CONSULTATION, *, ceiling="50", weight="20", days=None, engagement=None):
    engagement = engagement or factories.engagement(world)
    days = days if days is not None else (20 if method == M.OPEN_TENDER else 10)
    return factories.witnessed(P.open_procurement(engagement, P.ProcurementInput(
        method=method, title="", ceiling_price_wan=ceiling, price_weight=weight,
        bid_deadline=factories.bid_deadline(world.bz, days)), world.bz_staff))


def _past_deadline(p):
    p.bid_deadline = utcnow() - timedelta(seconds=1)


def _score(world, p, totals: dict[str, dict[str, str]]):
    """Three members; ``totals`` gives each firm's points per rubric item name (every member alike)."""
    members = P.enter_committee(p, ["评委甲", "评委乙", "评委丙"], world.bz_staff)
    factories.committee_clears_flags(p, world.bz_staff)
    for member in members:
        P.record_technical_scores(p, member, {
            b.id: {i.id: Decimal(totals[b.firm.name][i.name]) for i in p.rubric}
            for b in p.bids if b.status == BidStatus.SUBMITTED}, world.bz_staff)


def _even(total: str) -> dict[str, str]:
    """``total`` spread over the default rubric (40/25/15/10/10) in proportion to each item's maximum."""
    t = Decimal(total)
    return {name: str((t * points / 100).quantize(Decimal("0.01"))) for name, points in P.DEFAULT_BID_RUBRIC}


# --- tie-breaking ------------------------------------------------------------------------------------

def test_the_tie_break_draw_is_among_the_bids_tied_first_not_lower_ranked_ones(world):
    """财政部令第87号 第五十五条: equal scores rank by price, lower first; only bids equal in score AND price are
    并列, and 第六十八条 lets the purchaser draw lots among the 并列 first-ranked candidates only. With two bids
    tied for first (84.00 at 40 万元) and two tied with each other lower down (84.00 at 45 万元, ranked 3rd/4th),
    the draw holds the two first-ranked bids only."""
    p = _open(world)
    firms = {n: _bidder(world, n) for n in "甲乙丙丁"}
    for name, price in [("甲", "40"), ("乙", "40"), ("丙", "45"), ("丁", "45")]:
        _bid(p, firms[name][1], firms[name][2], price)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    higher_tech = {"评价思路与技术方案": "33.12", "项目团队与人员资质": "20.70", "同类项目业绩": "12.40",
                   "质量控制与保密措施": "8.28", "进度安排与服务承诺": "8.28"}  # 82.78
    _score(world, p, {"甲": _even("80"), "乙": _even("80"), "丙": higher_tech, "丁": higher_tech})
    results = {r.bid.firm.name: r for r in P.evaluate(p)}
    assert {r.total for r in results.values()} == {Decimal("84.00")}  # 0.2×100+0.8×80 = 0.2×88.89+0.8×82.78
    assert sorted(results[n].rank for n in "甲乙") == [1, 2] and sorted(results[n].rank for n in "丙丁") == [3, 4]
    record = P.award_procurement(p, world.bz_staff, "综合得分第一（并列）")
    assert isinstance(record, draws.Draw)
    first = {results["甲"].bid.id, results["乙"].bid.id}
    assert set(record.candidate_ids) == first, "the draw holds only the bids tied for first"


# --- sealed bids and the red flags -------------------------------------------------------------------

def test_red_flags_do_not_read_sealed_bids_of_an_unopened_procurement(world):
    """Sealed bids (政府采购法 / 财政部令第87号 第四十条: bids are opened only at the opening; evalhub: "until the
    bids are opened not even the purchasing bureau may learn which firms have bid"). The red-flag refresh reads
    no bid of a procurement still taking bids: one firm's bid before the deadline raises no flag (no SINGLE_BID)
    about the procurement or the firm."""
    from evalhub.integrity import redflags as R
    from evalhub.integrity.models import RedFlag

    p = _open(world, days=11)  # longer than the legal minimum: no short-period flag
    firm, user, staff = _bidder(world, "甲")
    _bid(p, user, staff, "40")
    assert p.status == ProcurementStatus.OPEN and p.opened_at is None
    R.refresh()
    seen = db.session.execute(R.flags_stmt(world.bz_staff, bureau=world.bz)).scalars().all()
    about_p = [f for f in seen if p.id in (f.procurement_ids or []) or f.procurement_id == p.id]
    assert not about_p, [f.explanation for f in about_p]
    assert not db.session.execute(sa.select(RedFlag).where(RedFlag.firm_id == firm.id)).scalars().all()


# --- abnormally low bids -----------------------------------------------------------------------------

def _low_bid_consultation(world, prices, weight="30"):
    p = _open(world, weight=weight)
    firms = {n: _bidder(world, n) for n in prices}
    for name, price in prices.items():
        _bid(p, firms[name][1], firms[name][2], price)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    return p, firms


def test_the_committee_cannot_reverse_a_low_bid_decision_after_the_award(world):
    """财政部令第87号 第六十条: the committee decides, during the evaluation, whether an abnormally low price is
    justified; the award (and its result notice) rests on that decision. Once the accepted low bid has won,
    decide_justification refuses to reverse the decision (Conflict) and the acceptance stands."""
    p, firms = _low_bid_consultation(world, {"甲": "20", "乙": "45", "丙": "48"})
    low = next(b for b in p.bids if b.firm.name == "甲")
    _score(world, p, {"甲": _even("90"), "乙": _even("80"), "丙": _even("80")})
    P.explain_low_bid(low, firms["甲"][1], "本机构在当地已有同类项目团队，差旅成本很低。")
    P.decide_justification(low, world.bz_staff, True)
    award = factories.witnessed(P.award_procurement(p, world.bz_staff, "说明合理，综合得分第一"))
    assert award.bid_id == low.id and p.status == ProcurementStatus.AWARDED
    with pytest.raises(Conflict):
        P.decide_justification(low, world.bz_staff, False, "定标后改变认定")
    assert low.justification_decision == JustificationDecision.ACCEPTED


def test_an_undecided_abnormally_low_bid_does_not_set_the_base_price_of_an_award(world):
    """财政部令第87号 第六十条 (the committee 应当 ask for and decide on the written justification of an abnormally
    low price), docs/rules.md ("a bid below this share of the mean valid bid must be justified in writing and
    accepted by the committee"); 第五十五条: the lowest VALID price is every bid's 评标基准价. Every abnormally low
    bid is decided before the award, not the winner's only: with 甲 (20 万元, below 70 % of the mean) undecided and
    丙 ranked first, the award is refused (Conflict)."""
    p, _ = _low_bid_consultation(world, {"甲": "20", "乙": "45", "丙": "48"})
    low = next(b for b in p.bids if b.firm.name == "甲")
    assert P.needs_justification(low) and low.justification_decision is None
    _score(world, p, {"甲": _even("50"), "乙": _even("80"), "丙": _even("82")})
    ranked = [r.bid.firm.name for r in P.evaluate(p) if r.rank]
    assert ranked[0] == "丙"
    with pytest.raises(Conflict):
        factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    assert p.award is None


def test_an_award_refused_for_too_few_valid_bids_leaves_the_procurement_failed_on_the_web(world, login):
    """政府采购法 / 财库〔2014〕214号 第二十一条 (rules.md: consultation needs ≥ 2 valid responses; fewer: 流标).
    An award refused for too few valid bids (甲's low price rejected, one valid bid left) is a 流标: through the
    web the procurement ends failed and the engagement "failed procurement", and the failure persists."""
    p, firms = _low_bid_consultation(world, {"甲": "20", "乙": "45"})
    low = next(b for b in p.bids if b.firm.name == "甲")
    P.explain_low_bid(low, firms["甲"][1], "本机构在当地已有同类项目团队，差旅成本很低。")
    P.decide_justification(low, world.bz_staff, False, "成本构成不合理")
    db.session.commit()
    response = login(world.bz_staff).post(f"/procurements/{p.id}/award", data={"reasons": "综合得分第一"})
    assert response.status_code in (302, 409)
    db.session.expire_all()
    p = db.session.get(type(p), p.id)
    assert p.status == ProcurementStatus.FAILED, f"{p.status.label}: the 流标 must persist, not be rolled back"
    assert p.engagement.state == S.FAILED_PROCUREMENT


# --- committee size ----------------------------------------------------------------------------------

def test_an_open_tender_of_1000_wan_or_more_needs_a_committee_of_seven(world):
    """财政部令第87号 第四十七条: the evaluation committee has 5 or more members (odd), and 7 or more (odd) when the
    procurement budget is 1000 万元 or more. A committee of five for a 1200 万元 open tender is refused."""
    p = _open(world, M.OPEN_TENDER, ceiling="1200", weight="30")
    firms = {n: _bidder(world, n) for n in "甲乙丙"}
    for name, price in [("甲", "900"), ("乙", "1000"), ("丙", "1080")]:
        _bid(p, firms[name][1], firms[name][2], price)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    assert p.status == ProcurementStatus.EVALUATING
    with pytest.raises(ValidationFailed):
        P.enter_committee(p, ["评委一", "评委二", "评委三", "评委四", "评委五"], world.bz_staff)
    assert not p.committee


# --- the firm lottery --------------------------------------------------------------------------------

def test_a_firm_lottery_whose_drawn_firm_lapsed_before_the_reveal_does_not_jam(world):
    """docs/rules.md (witnessed draws): "a witnessed draw stands as announced, but the rules are asked again of
    whom it picks at the reveal"; eligibility holds at the award (政府采购法 第二十二条). A firm lottery whose
    drawn firm is suspended between the announcement and the reveal still reveals, and the award does not go
    to the lapsed firm."""
    from evalhub.core.enums import Role

    e = factories.engagement(world)
    factories.firm(world.bz, name="巴州第二家评价机构")
    p = P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"),
                           world.bz_staff)
    record = p.draw
    assert record is not None and len(draws.eligible_ids(record)) >= 2
    witness = factories.user("bz.witness", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    draws.name_witnesses(record, [witness], world.bz_staff, check=False, notify=False)
    draws.enter_number(record, witness, 424242)
    seed = draws.seed_of(record.secret, record.candidate_hash, [w.number for w in record.witnesses])
    [picked] = draws._run(draws.ALGORITHM, seed, draws.eligible_ids(record), 1)
    from evalhub.registry.models import Firm

    db.session.get(Firm, picked).status = FirmStatus.SUSPENDED  # suspended between the announcement and the reveal
    db.session.flush()
    draws.reveal(record, world.bz_staff, check=False)  # the reveal completes; the lapsed firm is not awarded
    assert p.award is None or p.award.firm_id != picked


# --- bad input ---------------------------------------------------------------------------------------

def test_a_committee_member_name_longer_than_the_column_is_refused(world):
    """Bad input is a 4xx that says why (docs/rules.md, issue 11): committee_member.name is VARCHAR(50) and the
    web form takes 2000 characters; enter_committee refuses a longer name (ValidationFailed) rather than leaving
    it to the database (a DataError on PostgreSQL, stored as is on SQLite)."""
    p, _ = _low_bid_consultation(world, {"甲": "40", "乙": "45"})
    with pytest.raises(ValidationFailed):
        P.enter_committee(p, ["评委甲", "评委乙", "评" * 60], world.bz_staff)


# --- challenges and the contract ---------------------------------------------------------------------

EVIDENCE = [("证明材料.txt", "评审过程中技术分计算有误，详见附件说明。".encode())]


def test_a_challenge_left_open_on_a_revoked_notice_still_blocks_the_contract(world):
    """政府采购法 第五十二条/第五十三条, 财政部令第94号, docs/rules.md: "the contract is signed only after [the
    challenge period], with no open challenge". Two losers challenge the first notice; one is upheld
    (re-evaluation), the award is made again and its period runs out; the other, filed in time against the
    revoked notice, is still open and blocks the contract (Conflict)."""
    from datetime import date

    from evalhub.procurement.models import ChallengeStatus

    p, firms = _low_bid_consultation(world, {"甲": "40", "乙": "45", "丙": "48"}, weight="20")
    _score(world, p, {"甲": _even("90"), "乙": _even("80"), "丙": _even("70")})
    factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    upheld = P.file_challenge(p, firms["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    pending = P.file_challenge(p, firms["丙"][1], "采购文件存在倾向性条款，请求重新采购。", EVIDENCE)
    P.answer_challenge(upheld, world.bz_staff, "upheld", "经核查，技术分计算确有错误。", "reevaluate")
    for member in p.committee:
        P.record_technical_scores(p, member, {b.id: {i.id: Decimal(_even({"甲": "70", "乙": "90", "丙": "60"}[b.firm.name])[i.name])
                                                     for i in p.rubric} for b in p.bids}, world.bz_staff)
    factories.witnessed(P.award_procurement(p, world.bz_staff, "重新评审后综合得分第一"))
    factories.past_challenge_period(p)
    assert pending.status == ChallengeStatus.OPEN
    with pytest.raises(Conflict):
        P.sign_contract(p.engagement, P.ContractInput(
            amount_wan="45", signed_on=date(2025, 3, 1), start_date=date(2025, 3, 1), end_date=date(2025, 12, 31),
            plan_due=date(2025, 4, 1), report_due=date(2025, 11, 1), deliverables="实施方案、评价报告"), world.bz_staff)
    assert p.engagement.contract is None


def test_a_contract_cannot_be_recorded_as_signed_on_a_day_still_to_come(world):
    """政府采购法 第四十六条 (the contract is signed within 30 days of the award notice): the bureau records a
    contract it has signed, so its signing date is a day that has come (Beijing). A typo such as 2062 for 2026
    made the contract look signed in the future and moved every date computed from it; it is refused with the
    field named, and nothing is written."""
    from evalhub.core.timeutil import beijing_today

    p = factories.single_source(world)
    e = p.engagement
    factories.past_challenge_period(p)
    tomorrow = beijing_today() + timedelta(days=1)
    with pytest.raises(ValidationFailed) as refused:
        P.sign_contract(e, P.ContractInput(
            amount_wan="18", signed_on=tomorrow, start_date=tomorrow, end_date=tomorrow + timedelta(days=300),
            plan_due=tomorrow + timedelta(days=30), report_due=tomorrow + timedelta(days=200),
            deliverables="实施方案、评价报告"), world.bz_staff)
    assert "signed_on" in refused.value.fields
    assert e.contract is None
