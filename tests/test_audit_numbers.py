"""Audit: the numbers of procurement and review at their boundaries.

Each test states a rule with its source (the law's article, DOMAIN.md or docs/rules.md) and sets up the boundary
case the current code gets wrong. They fail on the code as it stands and pass once the defect is fixed.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from evalhub.core.calendar import add_working_days
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import Draw
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import BidStatus, ProcurementMethod as M
from evalhub.results import services as S
from evalhub.review.models import Grade
from tests import factories
from tests.test_procurement_law_more import _open

_bidder, _bid = factories.bidder, factories.bid

EVIDENCE = [("证明材料.txt", "评审过程中技术分计算有误，详见附件说明。".encode())]


def _awarded_consultation(world):
    """A consultation among 甲 (40 万元, 85 points), 乙 (45, 80) and 丙 (48, 70), awarded to 甲, its notice out."""
    p = _open(world)
    bidders = {n: _bidder(world, n) for n in ("甲评价", "乙评价", "丙评价")}
    for name, price in [("甲评价", "40"), ("乙评价", "45"), ("丙评价", "48")]:
        _bid(p, bidders[name][1], bidders[name][2], price)
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    _score(world, p, ["评委甲", "评委乙", "评委丙"], {"甲评价": "85.00", "乙评价": "80.00", "丙评价": "70.00"})
    factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    return p, bidders


def _points(total: str) -> dict[str, Decimal]:
    """Per default rubric item (40/25/15/10/10): everything but the first item at 80 %, the first item taking
    the rest, so the items add up to ``total`` exactly (two places)."""
    rest = {name: points * Decimal("0.8") for name, points in P.DEFAULT_BID_RUBRIC[1:]}
    first = P.DEFAULT_BID_RUBRIC[0][0]
    return {first: Decimal(total) - sum(rest.values()), **rest}


def _score(world, p, names: list[str], totals: dict[str, str]) -> None:
    members = P.enter_committee(p, names, world.bz_staff)
    factories.committee_clears_flags(p, world.bz_staff)
    for member in members:
        P.record_technical_scores(p, member, {
            b.id: {i.id: _points(totals[b.firm.name])[i.name] for i in p.rubric}
            for b in p.bids if b.status == BidStatus.SUBMITTED}, world.bz_staff)


# --- 1. an open tender's tie: equal score and equal price are 并列, decided by lot ------------------------

def test_open_tender_bids_equal_in_score_and_price_go_to_the_tie_break_draw(world):
    """财政部令第87号 第五十五条 (综合评分法): "得分相同的，按投标报价由低到高顺序排列。得分且投标报价相同的并列";
    第六十八条: 并列 candidates are decided "按照招标文件规定的方式…招标文件未规定的，采取随机抽取的方式确定".
    docs/rules.md (Procurement, "Ranking"): "total score, then the lower price; lots are drawn (a witnessed draw)
    only among the bids equal to the first in both". (The technical-score tie-break was the superseded 18号令's;
    87号令 dropped it for tenders.)

    Open tender, price weight 30 %: 甲 and 乙 both bid 40 万元 (price score 100.00 each) with technical scores
    80.01 and 80.02; both totals are 30 + 0.7 × t → 86.007 and 86.014 → 86.01. Equal in total and price, they are
    并列 and the award must be the witnessed tie-break draw between them. The code ranks them by the technical
    score as a third key (``evaluate``), marks nobody tied and awards 乙 outright."""
    p = _open(world, M.OPEN_TENDER, weight="30")
    bidders = {n: _bidder(world, n) for n in ("甲评价", "乙评价", "丙评价")}
    for name, price in [("甲评价", "40"), ("乙评价", "40"), ("丙评价", "48")]:
        _bid(p, bidders[name][1], bidders[name][2], price)
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    _score(world, p, ["评委甲", "评委乙", "评委丙", "评委丁", "评委戊"],
           {"甲评价": "80.01", "乙评价": "80.02", "丙评价": "70.00"})
    results = {r.bid.firm.name: r for r in P.evaluate(p)}
    assert results["甲评价"].total == results["乙评价"].total == Decimal("86.01")  # the setup holds
    assert results["甲评价"].bid.price == results["乙评价"].bid.price

    outcome = P.award_procurement(p, world.bz_staff, "综合得分第一")
    assert isinstance(outcome, Draw), (
        f"equal total ({results['乙评价'].total}) and equal price: 并列, a tie-break draw is due; "
        f"instead the award went straight to {getattr(outcome, 'firm', None) and outcome.firm.name}")
    assert len(outcome.candidate_ids) == 2  # 甲's and 乙's bids, not 丙's


# --- 2. the challenge period runs from the end of the notice period --------------------------------------

def test_a_challenge_on_the_eighth_working_day_after_the_notice_is_in_time(world):
    """政府采购法实施条例 第五十三条(三): for a challenge to the result, the day the supplier 应知其权益受到损害 is
    "中标或者成交结果公告期限届满之日"; 财政部令第87号 第六十九条 sets that notice period at 1 个工作日 (and
    期间 are counted from the day after they begin). 财政部令第94号 第十条 then gives 7 个工作日 from that day.
    So a notice published on day D stands for one working day (to D+1 WD), and the challenge period ends on
    D+8 working days. docs/rules.md states the challenge period runs "after the result notice", and the contract
    may be signed only after it.

    The code sets ``challenge_until`` to D+7 working days (``_publish_result_notice``), so a losing bidder's
    challenge on the 8th working day is refused as late and the contract may be signed a day early."""
    p, bidders = _awarded_consultation(world)
    db.session.flush()
    published = beijing_today()
    eighth = add_working_days(world.bz, published, 8)

    challenge = P.file_challenge(p, bidders["乙评价"][1], "评审过程中对我公司的技术分计算有误，请予复核。", EVIDENCE,
                                 today=eighth)  # refused today: "质疑期已于 … 届满"
    assert challenge.id is not None


# --- 3. a changed deadline leaves the bidders the time the law gives after a change ------------------------

@pytest.mark.parametrize("method, issued_days_ago, old_after_issue, new_after_issue, notice_days", [
    (M.OPEN_TENDER, 10, 30, 21, 15),                  # 87号令 第二十七条: at least 15 days before the deadline
    (M.COMPETITIVE_CONSULTATION, 8, 20, 11, 5),       # 财库〔2014〕214号 第十条: at least 5 days before
])
def test_bringing_the_deadline_forward_needs_the_laws_notice_before_the_new_deadline(
        world, method, issued_days_ago, old_after_issue, new_after_issue, notice_days):
    """财政部令第87号 第二十七条: a change to issued tender documents that may affect how bids are prepared is notified
    "在投标截止时间至少15日前…不足15日的…应当顺延提交投标文件的截止时间"; 财库〔2014〕214号 第十条 says the same
    for consultation with 5 日. Bringing the bid deadline forward is such a change (it takes preparation time
    away).

    A procurement issued ``issued_days_ago`` days ago with its deadline ``old_after_issue`` days after the issue
    is moved forward to ``new_after_issue`` days after the issue — still at least the 20/10-day minimum from the
    issue, but only ``new_after_issue - issued_days_ago`` days (< ``notice_days``) after the change. It must be
    refused. ``change_deadline`` only checks the period from the issue (``period_problem`` on ``created_at``)
    and accepts it."""
    p = _open(world, method, weight="30" if method == M.OPEN_TENDER else "20", days=old_after_issue)
    issued = utcnow() - timedelta(days=issued_days_ago)
    p.created_at = issued
    p.bid_deadline = issued + timedelta(days=old_after_issue)
    db.session.flush()
    new_deadline = issued + timedelta(days=new_after_issue)
    assert (new_deadline - utcnow()).days < notice_days  # the setup: fewer days than the law's notice
    with pytest.raises(ValidationFailed) as refused:
        P.change_deadline(p, new_deadline, world.bz_staff, "采购人调整项目进度安排")
    assert "bid_deadline" in refused.value.fields
    assert p.bid_deadline == issued + timedelta(days=old_after_issue)


# --- 4. a reduction by amount is at most the item's budget, to the fen -----------------------------------

def test_a_budget_reduction_by_amount_cannot_exceed_the_items_budget_after_rounding(world):
    """docs/rules.md (结果应用): "Budget reduction for 中/差 …; a reduction given as an amount is at most the item's
    budget" (seed 000 "按比例扣减部门单位项目支出预算安排").

    An item of 123.4567 万元 (1,234,567.00 元) rated 中: the cap checked by ``confirm_entry`` is the budget rounded
    to two places of 万元 (123.46), so a reduction of 123.46 万元 = 1,234,600.00 元 — 33 元 more than the item
    has — is accepted and stored. It must be refused (or kept within 1,234,567.00 元)."""
    e = factories.accepted_with_result(world, score="70", grade=Grade.FAIR, amount_wan="123.4567")
    assert e.amount == Decimal("1234567.00")
    entry = next(x for x in S.build_list(world.bz, 2025, world.bz_staff) if x.engagement_id == e.id)
    try:
        S.confirm_entry(entry, world.bz_staff, measures=["reduce"], cut_amount_wan="123.46", reason="按金额全额调减")
    except ValidationFailed as refused:
        assert "cut_amount_wan" in refused.fields
        return
    assert entry.cut_amount <= e.amount, f"reduction {entry.cut_amount} 元 > the item's budget {e.amount} 元"


# --- 5. the abnormally-low line is not rounded in the bid's favour ---------------------------------------

def test_a_bid_below_seventy_percent_of_the_mean_by_less_than_a_fen_is_still_flagged(world):
    """docs/rules.md (Procurement): "A bid below this share of the mean valid bid must be justified in writing and
    accepted by the committee" (procurement.low_bid_ratio 70 %; 财政部令第87号 第六十条).

    Bids 28, 46 and 46.000001 万元 (280,000.00 / 460,000.00 / 460,000.01 元): the mean is 400,000.00333… 元 and
    70 % of it 280,000.002333… 元, so 280,000.00 元 is below the line. ``low_bid_threshold`` rounds the line to
    the fen (ROUND_HALF_UP → 280,000.00) before the strict comparison, and the bid is not flagged."""
    p = _open(world)
    bidders = {n: _bidder(world, n) for n in ("甲评价", "乙评价", "丙评价")}
    bids = {name: _bid(p, bidders[name][1], bidders[name][2], price)
            for name, price in [("甲评价", "28"), ("乙评价", "46"), ("丙评价", "46.000001")]}
    assert bids["丙评价"].price == Decimal("460000.01")
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    mean = sum(b.price for b in bids.values()) / 3
    assert bids["甲评价"].price < mean * Decimal("0.70")  # below 70 % of the mean, exactly
    assert P.needs_justification(bids["甲评价"]), \
        f"280,000.00 元 < 70 % of the mean ({mean * Decimal('0.70')} 元) but the line used is {P.low_bid_threshold(p)}"


# --- 6. the contract is dated after the result, not before it -------------------------------------------

def test_a_contract_dated_before_the_result_notice_is_refused(world):
    """政府采购法 第四十六条: the purchaser and the winner sign the contract "在中标、成交通知书发出之日起三十日内";
    docs/rules.md (Procurement): "the contract is signed only after [the challenge period], with no open
    challenge". The contract's 签订日期 is the record of when that happened.

    A consultation awarded, its notice published (back-dated 14 days by the fixture, the challenge period over);
    the bureau records the contract as signed the day before the notice was published. ``sign_contract`` checks
    the period against today only and stores the impossible date (the contract then reads as signed before the
    award it implements, and the 30-day clock of 第四十六条 cannot be read from the record)."""
    p, bidders = _awarded_consultation(world)
    factories.past_challenge_period(p)
    from evalhub.core.timeutil import to_beijing

    published_on = to_beijing(p.notice.published_at).date()
    signed = published_on - timedelta(days=1)
    with pytest.raises(ValidationFailed) as refused:
        P.sign_contract(p.engagement, P.ContractInput(
            amount_wan="40", signed_on=signed, start_date=signed, end_date=signed + timedelta(days=200),
            plan_due=signed + timedelta(days=30), report_due=signed + timedelta(days=150),
            deliverables="实施方案、评价报告"), world.bz_staff)
    assert "signed_on" in refused.value.fields
    assert p.engagement.contract is None
