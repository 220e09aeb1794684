"""Procurement by the law's clock (issue 13): minimum periods, method by amount, bid prices at the edge, the
result notice, the challenge period, challenges and their answers, and the routes that guard them."""
from __future__ import annotations

import io
import os
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import Notification, User
from evalhub.core.timeutil import beijing_today, simulated_clock, utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import (
    BidStatus, ChallengeStatus, EngagementState as S, EngagementTransition, ProcurementMethod as M, ProcurementStatus,
)
from tests import factories

FRIDAY = datetime(2025, 3, 7, 2, 0)  # 10:00 Beijing, Friday 7 March 2025 (no holiday near)


# --- helpers ---------------------------------------------------------------------------------------

def _open(world, method=M.COMPETITIVE_CONSULTATION, *, days=10, ceiling="50", engagement=None, exact=False, **kw):
    """``days`` from now, moved past a weekend or holiday (``factories.bid_deadline``) unless ``exact``."""
    engagement = engagement or factories.engagement(world)
    deadline = None if days is None else (utcnow() + timedelta(days=days) if exact else factories.bid_deadline(world.bz, days))
    return factories.witnessed(P.open_procurement(engagement, P.ProcurementInput(
        method=method, title="", ceiling_price_wan=ceiling, price_weight="20" if method != M.OPEN_TENDER else "30",
        bid_deadline=deadline, **kw), world.bz_staff))


_bidder, _bid = factories.bidder, factories.bid


def _awarded(world):
    """A consultation with three bidders (甲 wins, 乙 and 丙 lose), awarded; and a non-bidder 丁."""
    p = _open(world)
    bidders = {n: _bidder(world, n) for n in "甲乙丙丁"}
    for name, price in [("甲", "40"), ("乙", "45"), ("丙", "48")]:
        _bid(p, bidders[name][1], bidders[name][2], price)
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    members = P.enter_committee(p, ["评委甲", "评委乙", "评委丙"], world.bz_staff)
    points = {"甲": 90, "乙": 80, "丙": 70}
    for member in members:
        P.record_technical_scores(p, member, {b.id: {i.id: Decimal(points[b.firm.name]) * i.max_points / 100 for i in p.rubric}
                                              for b in p.bids if b.status == BidStatus.SUBMITTED}, world.bz_staff)
    factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    db.session.commit()
    return p, bidders


def _contract_input(signed_on=date(2025, 3, 1)):
    return P.ContractInput(amount_wan="40", signed_on=signed_on, start_date=signed_on,
                           end_date=signed_on + timedelta(days=300), plan_due=signed_on + timedelta(days=31),
                           report_due=signed_on + timedelta(days=245), deliverables="实施方案、评价报告")


EVIDENCE = [("证明材料.txt", "评审过程中技术分计算有误，详见附件说明。".encode())]


def _inbox(user: User) -> list[str]:
    return [n.title for n in db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)).scalars()]


# --- 1. minimum periods ----------------------------------------------------------------------------

def test_open_tender_needs_20_days_from_issue_to_deadline(world):
    e = factories.engagement(world)
    with pytest.raises(ValidationFailed) as caught:
        _open(world, M.OPEN_TENDER, days=19, engagement=e, exact=True)
    assert "不得少于 20 日" in caught.value.fields["bid_deadline"] and "第三十五条" in caught.value.fields["bid_deadline"]
    assert e.state == S.PLANNED  # nothing half-written
    assert _open(world, M.OPEN_TENDER, days=20, engagement=e).status == ProcurementStatus.OPEN


def test_consultation_needs_10_days_to_first_responses(world):
    e = factories.engagement(world)
    with pytest.raises(ValidationFailed) as caught:
        _open(world, days=9, engagement=e, exact=True)
    assert "不得少于 10 日" in caught.value.fields["bid_deadline"] and "214号" in caught.value.fields["bid_deadline"]
    assert _open(world, days=10, engagement=e).status == ProcurementStatus.OPEN


def test_a_deadline_minutes_away_is_refused(world):
    # at 10:00 Beijing time: nine minutes later is the same Beijing day (run after 23:51 it was the next, "仅 1 日")
    with simulated_clock(datetime(2026, 3, 4, 2, 0)), pytest.raises(ValidationFailed) as caught:
        factories.witnessed(P.open_procurement(factories.engagement(world), P.ProcurementInput(
            method=M.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
            bid_deadline=utcnow() + timedelta(minutes=9)), world.bz_staff))
    assert "仅 0 日" in caught.value.fields["bid_deadline"]


def test_negotiation_needs_3_working_days_counted_over_a_weekend(world):
    bz = world.bz
    # Friday → Tuesday is Monday and Tuesday: two working days; Wednesday makes three.
    assert "不得少于 3 个工作日" in P.period_problem(bz, P.NEGOTIATION_PERIOD, FRIDAY, FRIDAY + timedelta(days=4))
    assert P.period_problem(bz, P.NEGOTIATION_PERIOD, FRIDAY, FRIDAY + timedelta(days=5)) is None
    # Calendar days for the consultation: the weekend counts.
    assert P.period_problem(bz, P.CONSULTATION_PERIOD, FRIDAY, FRIDAY + timedelta(days=10)) is None


def test_a_bureau_may_lengthen_a_period_but_not_shorten_it(world):
    from evalhub.core.settings import set_setting

    with pytest.raises(ValidationFailed):
        set_setting(world.bz, "procurement.min_days_open_tender", "15", world.bz_admin)
    set_setting(world.bz, "procurement.min_days_consultation", "15", world.bz_admin)
    assert "不得少于 15 日" in P.period_problem(world.bz, P.CONSULTATION_PERIOD, FRIDAY, FRIDAY + timedelta(days=14))


def test_changing_the_deadline_keeps_the_period_from_the_issue(world):
    p = _open(world, days=12)
    with pytest.raises(ValidationFailed) as caught:
        P.change_deadline(p, p.created_at + timedelta(days=9), world.bz_staff, "答疑")
    assert "不得少于 10 日" in caught.value.fields["bid_deadline"]
    P.change_deadline(p, p.created_at + timedelta(days=15), world.bz_staff, "答疑后延期")
    assert p.bid_deadline == p.created_at + timedelta(days=15)


# --- 2. method by amount ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", [M.COMPETITIVE_CONSULTATION, M.SINGLE_SOURCE, M.FRAMEWORK_ROTATION, M.RANDOM_DRAW])
def test_at_or_above_the_open_tender_threshold_only_open_tender(world, method):
    threshold = Decimal("2000000")  # 200 万元, the national floor
    below = P.method_problem(world.bz, method, threshold - 1)
    assert P.method_problem(world.bz, method, threshold) and "公开招标数额标准" in P.method_problem(world.bz, method, threshold)
    assert P.method_problem(world.bz, method, threshold + 1)
    if method == M.RANDOM_DRAW:
        assert "分散采购限额标准" in below  # a draw stops at the far lower limit
    else:
        assert below is None
    assert P.method_problem(world.bz, M.OPEN_TENDER, threshold + 1) is None


def test_a_draw_stops_at_the_decentralised_limit(world):
    limit = Decimal("500000")  # 50 万元
    assert P.method_problem(world.bz, M.RANDOM_DRAW, limit - 1) is None
    assert "分散采购限额标准" in P.method_problem(world.bz, M.RANDOM_DRAW, limit)


def test_a_900_wan_draw_is_refused_on_opening_with_the_reason(world):
    e = factories.engagement(world)
    with pytest.raises(ValidationFailed) as caught:
        factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="900"), world.bz_staff))
    assert "公开招标数额标准" in caught.value.fields["method"]
    assert e.state == S.PLANNED and not e.procurements
    with pytest.raises(ValidationFailed) as caught:
        _open(world, ceiling="200", engagement=e)
    assert "应当采用公开招标" in caught.value.fields["method"]
    assert _open(world, ceiling="199.9999", engagement=e).status == ProcurementStatus.OPEN


# --- 3. bid prices ---------------------------------------------------------------------------------

@pytest.mark.parametrize("price", ["0", "0.0000001", "-1", "0.0000004"])
def test_a_zero_or_near_zero_bid_is_refused(world, price):
    p = _open(world)
    _, user, staff = _bidder(world, "甲")
    with pytest.raises(ValidationFailed) as caught:
        _bid(p, user, staff, price)
    assert "price_wan" in caught.value.fields
    assert not p.bids


def test_the_smallest_bid_is_one_fen(world):
    p = _open(world)
    _, user, staff = _bidder(world, "甲")
    assert _bid(p, user, staff, "0.000001").price == Decimal("0.01")


# --- 4. result notice, challenge period, challenges ------------------------------------------------

def test_the_award_publishes_the_notice_and_tells_every_bidder(world):
    p, bidders = _awarded(world)
    notice = p.notice
    assert notice is not None and notice.published_at is not None and notice.firm_id == bidders["甲"][0].id
    from evalhub.core.calendar import add_working_days

    assert notice.challenge_until == add_working_days(world.bz, beijing_today(), 1 + 7)  # the 1-working-day notice period, then 7
    assert any("中标/成交通知" in t for t in _inbox(bidders["甲"][1]))
    assert any("采购结果通知" in t for t in _inbox(bidders["乙"][1]))
    assert any("采购结果通知" in t for t in _inbox(bidders["丙"][1]))
    assert _inbox(bidders["丁"][1]) == []  # did not bid: not told of the result
    # the procurement notice went to the library's firms at opening, not to another bureau's library
    assert any("采购公告" in t for t in _inbox(world.firm_user))
    assert not any("采购公告" in t for t in _inbox(world.other_firm_user))
    assert any("结果公告已发布" in t for t in _inbox(world.bz_staff))


def test_the_contract_waits_for_the_challenge_period(world):
    p, _ = _awarded(world)
    with pytest.raises(Conflict) as caught:
        P.sign_contract(p.engagement, _contract_input(), world.bz_staff)
    assert "质疑期" in caught.value.message
    assert p.engagement.contract is None and p.engagement.state == S.PROCURING
    factories.past_challenge_period(p)
    P.sign_contract(p.engagement, _contract_input(), world.bz_staff)
    assert p.engagement.state == S.CONTRACTED


def test_an_open_challenge_blocks_the_contract_until_answered(world):
    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    assert challenge.status == ChallengeStatus.OPEN and len(challenge.evidence) == 1
    assert any("收到质疑" in t for t in _inbox(world.bz_staff))
    factories.past_challenge_period(p)
    with pytest.raises(Conflict) as caught:
        P.sign_contract(p.engagement, _contract_input(), world.bz_staff)
    assert "未答复" in caught.value.message
    P.answer_challenge(challenge, world.bz_staff, "dismissed", "经核查，技术分计算无误，质疑不成立。")
    assert any("质疑答复" in t for t in _inbox(bidders["乙"][1]))
    assert p.notice.contract_ready_at is not None  # the period is over and nothing is open: told at once
    assert any("可以签订合同" in t for t in _inbox(bidders["甲"][1]))
    with pytest.raises(ValidationFailed) as caught:  # dated before the answer it waited for
        P.sign_contract(p.engagement, _contract_input(), world.bz_staff)
    assert "质疑答复日" in caught.value.fields["signed_on"]
    # the challenge held the contract past the 30 days from the notice (政府采购法 第四十六条): the reason is asked
    signed = _contract_input(beijing_today())
    with pytest.raises(ValidationFailed) as caught:
        P.sign_contract(p.engagement, signed, world.bz_staff)
    assert "第四十六条" in caught.value.fields["late_reason"]
    signed.late_reason = "质疑答复前不能签订合同，答复后即行签订。"
    P.sign_contract(p.engagement, signed, world.bz_staff)
    note = db.session.execute(sa.select(EngagementTransition.note).where(
        EngagementTransition.engagement_id == p.engagement_id, EngagementTransition.action == "sign_contract")).scalar_one()
    assert "逾期签订" in note and signed.late_reason in note
    assert any("合同已签订" in t for t in _inbox(bidders["甲"][1]))


def test_a_challenge_after_the_period_is_refused(world):
    p, bidders = _awarded(world)
    last = p.notice.challenge_until
    P.file_challenge(p, bidders["丙"][1], "评分标准适用不一致，请求复核。", EVIDENCE, today=last)  # the last day counts
    with pytest.raises(Conflict) as caught:
        P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE, today=last + timedelta(days=1))
    assert "质疑期已于" in caught.value.message


def test_only_a_firm_that_took_part_may_challenge(world):
    p, bidders = _awarded(world)
    with pytest.raises(PermissionDenied):
        P.file_challenge(p, bidders["丁"][1], "我方认为结果不公，请求重新评审。", EVIDENCE)  # did not bid
    with pytest.raises(PermissionDenied):
        P.file_challenge(p, bidders["甲"][1], "我方认为结果不公，请求重新评审。", EVIDENCE)  # the winner
    with pytest.raises(PermissionDenied):
        P.file_challenge(p, world.bz_staff, "我方认为结果不公，请求重新评审。", EVIDENCE)


def test_a_challenge_needs_grounds_and_evidence_and_is_filed_once(world):
    p, bidders = _awarded(world)
    user = bidders["乙"][1]
    with pytest.raises(ValidationFailed) as caught:
        P.file_challenge(p, user, "不服", [])
    assert {"grounds", "evidence"} <= set(caught.value.fields)
    P.file_challenge(p, user, "技术分计算有误，请求重新评审。", EVIDENCE)
    with pytest.raises(Conflict):
        P.file_challenge(p, user, "技术分计算有误，请求重新评审。", EVIDENCE)


def test_an_upheld_challenge_reopens_the_evaluation(world):
    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    with pytest.raises(ValidationFailed) as caught:
        P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，技术分计算确有错误。")
    assert "remedy" in caught.value.fields
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，技术分计算确有错误。", "reevaluate")
    assert challenge.status == ChallengeStatus.UPHELD
    assert p.status == ProcurementStatus.EVALUATING and p.award is None and p.engagement.firm_id is None
    assert p.notice is None and p.notices[0].revoked_at is not None
    assert any("成交结果已撤销" in t for t in _inbox(bidders["甲"][1]))  # the former winner is told
    with pytest.raises(Conflict):  # answered once
        P.answer_challenge(challenge, world.bz_staff, "dismissed", "重复答复，应当被拒绝。")
    # the committee re-scores; the new award publishes a new notice and a new period
    for member in p.committee:
        points = {"甲": 70, "乙": 90, "丙": 60}
        P.record_technical_scores(p, member, {b.id: {i.id: Decimal(points[b.firm.name]) * i.max_points / 100 for i in p.rubric}
                                              for b in p.bids if b.status == BidStatus.SUBMITTED}, world.bz_staff)
    award = factories.witnessed(P.award_procurement(p, world.bz_staff, "重新评审后综合得分第一"))
    assert award.firm_id == bidders["乙"][0].id and p.notice.firm_id == award.firm_id and len(p.notices) == 2


def test_a_firm_that_wins_again_after_a_revoked_award_names_its_team_afresh(world):
    """The team named under the revoked award is history: the same firm winning the re-evaluation does not get
    those rows back unchecked (a person may have crossed the points limit meanwhile) — it names a team again."""
    from evalhub.procurement import team

    p, bidders = _awarded(world)
    firm, firm_user, staff = bidders["甲"]
    team.name_team(p.engagement, team.TeamInput(lead_staff_id=staff.id), firm_user)
    assert team.lead(p.engagement) == staff
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，技术分计算确有错误。", "reevaluate")
    for member in p.committee:  # re-scored: 甲 wins again
        P.record_technical_scores(p, member, {b.id: {i.id: Decimal({"甲": 95, "乙": 80, "丙": 70}[b.firm.name])
                                                     * i.max_points / 100 for i in p.rubric}
                                              for b in p.bids if b.status == BidStatus.SUBMITTED}, world.bz_staff)
    factories.witnessed(P.award_procurement(p, world.bz_staff, "重新评审后综合得分第一"))
    assert p.engagement.firm_id == firm.id
    assert team.members(p.engagement) == [] and team.lead(p.engagement) is None
    [closed] = team.history(p.engagement)
    assert closed.removed_at is not None and closed.removed_reason.startswith("成交结果已撤销")


def test_an_upheld_challenge_may_rerun_the_procurement(world):
    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["丙"][1], "采购文件存在倾向性条款，请求重新采购。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "采购文件确有倾向性条款，重新开展采购。", "rerun")
    assert p.status == ProcurementStatus.FAILED and p.engagement.state == S.FAILED_PROCUREMENT
    rerun = _open(world, engagement=p.engagement, rerun_reason="质疑成立，修改采购文件后重新采购")
    assert rerun.status == ProcurementStatus.OPEN


def test_a_draw_may_only_be_rerun(world):
    e = factories.engagement(world)
    other, user, _ = _bidder(world, "乙")
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"), world.bz_staff))
    loser = user if p.award.firm_id != other.id else world.firm_user
    challenge = P.file_challenge(p, loser, "抽取范围不当，请求重新抽取。", EVIDENCE)
    with pytest.raises(ValidationFailed) as caught:
        P.answer_challenge(challenge, world.bz_staff, "upheld", "抽取范围确有不当之处。", "reevaluate")
    assert "重新开展采购" in caught.value.fields["remedy"]


def test_the_job_announces_contracts_ready_once(world):
    p, bidders = _awarded(world)
    assert P.announce_contracts_ready() == 0  # still in the period
    factories.past_challenge_period(p)
    assert P.announce_contracts_ready() == 1
    assert P.announce_contracts_ready() == 0
    assert sum("可以签订合同" in t for t in _inbox(bidders["甲"][1])) == 1


def test_answers_are_for_the_bureau_only(world):
    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    with pytest.raises(PermissionDenied):
        P.answer_challenge(challenge, bidders["乙"][1], "upheld", "我方自己认定质疑成立。", "reevaluate")
    with pytest.raises(PermissionDenied):
        P.answer_challenge(challenge, world.kz_staff, "dismissed", "别的财政局不能答复。")


# --- routes ----------------------------------------------------------------------------------------

def _file(client, p, data=None):
    return client.post(f"/procurements/{p.id}/challenge", data=data or {
        "grounds": "技术分计算有误，请求重新评审。", "evidence": [(io.BytesIO(EVIDENCE[0][1]), EVIDENCE[0][0])]},
        content_type="multipart/form-data")


def test_a_firm_files_from_its_page_and_sees_the_status(world, login):
    p, bidders = _awarded(world)
    client = login(bidders["乙"][1])
    page = client.get(f"/procurements/{p.id}/bid").get_data(as_text=True)
    assert "提出质疑" in page and "质疑期至" in page
    assert _file(client, p).status_code == 302
    page = client.get(f"/procurements/{p.id}/bid").get_data(as_text=True)
    assert "本机构的质疑" in page and "待答复" in page and 'data-testid="file-challenge"' not in page


def test_a_non_bidder_cannot_file_and_sees_no_form(world, login):
    p, bidders = _awarded(world)
    client = login(bidders["丁"][1])
    assert 'data-testid="file-challenge"' not in client.get(f"/procurements/{p.id}/bid").get_data(as_text=True)
    assert _file(client, p).status_code == 403
    assert _file(login(world.bz_staff), p).status_code == 403


def test_a_firm_cannot_answer_and_another_bureau_cannot_see(world, login):
    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    db.session.commit()
    answer = {f"c{challenge.id}-outcome": "dismissed", f"c{challenge.id}-answer": "经核查，技术分计算无误。"}
    url = f"/procurements/{p.id}/challenges/{challenge.id}/answer"
    assert login(bidders["乙"][1]).post(url, data=answer).status_code == 403
    assert login(world.kz_staff).post(url, data=answer).status_code == 403
    other = login(world.kz_staff)
    assert other.get(f"/procurements/{p.id}").status_code == 403
    file_id = challenge.evidence[0].file_id
    assert other.get(f"/challenges/{challenge.id}/evidence/{file_id}").status_code == 403
    assert login(bidders["丙"][1]).get(f"/challenges/{challenge.id}/evidence/{file_id}").status_code == 403
    staff = login(world.bz_staff)
    page = staff.get(f"/procurements/{p.id}").get_data(as_text=True)
    assert "质疑与答复" in page and "暂不能签订合同" in page
    assert staff.get(f"/engagements/{p.engagement_id}/contract").status_code == 409
    assert staff.get(f"/challenges/{challenge.id}/evidence/{file_id}").status_code == 200
    response = staff.post(url, data=answer)
    assert response.status_code == 302
    db.session.refresh(challenge)
    assert challenge.status == ChallengeStatus.DISMISSED


def test_a_bad_answer_is_shown_beside_the_form(world, login):
    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    db.session.commit()
    response = login(world.bz_staff).post(f"/procurements/{p.id}/challenges/{challenge.id}/answer",
                                          data={f"c{challenge.id}-outcome": "upheld", f"c{challenge.id}-answer": "短"})
    assert response.status_code == 422
    assert "不少于 10 字" in response.get_data(as_text=True)


def test_a_near_zero_bid_is_refused_on_the_web_form(world, login):
    p = _open(world)
    _, user, staff = _bidder(world, "甲")
    db.session.commit()
    response = login(user).post(f"/procurements/{p.id}/bid", data={
        "price_wan": "0.0000001", "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id),
        "technical_file": (io.BytesIO(factories.docx_bytes("方案")), "方案.docx")}, content_type="multipart/form-data")
    assert response.status_code == 422 and "0.01 元" in response.get_data(as_text=True)
    db.session.expire_all()
    assert not p.bids


# --- concurrency: two clicks, one result --------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_two_simultaneous_challenges_and_answers_give_one_result(app, world):
    from evalhub.procurement.models import Challenge, Procurement

    p, bidders = _awarded(world)
    procurement_id, firm_user_id = p.id, bidders["乙"][1].id

    def file():
        P.file_challenge(db.session.get(Procurement, procurement_id), db.session.get(User, firm_user_id),
                         "技术分计算有误，请求重新评审。", EVIDENCE)

    assert factories.at_once(app, file, file) in (["Conflict", "done"], ["IntegrityError", "done"])
    db.session.expire_all()
    [challenge] = db.session.execute(sa.select(Challenge)).scalars().all()
    challenge_id, staff_ids = challenge.id, [world.bz_staff.id, world.bz_admin.id]

    def answer(user_id):
        return lambda: P.answer_challenge(db.session.get(Challenge, challenge_id), db.session.get(User, user_id),
                                          "upheld", "经核查，技术分计算确有错误。", "reevaluate")

    assert factories.at_once(app, *(answer(u) for u in staff_ids)) == ["Conflict", "done"]
    db.session.expire_all()
    assert db.session.get(Procurement, procurement_id).status == ProcurementStatus.EVALUATING


# --- API -------------------------------------------------------------------------------------------

def _evidence_json():
    import base64

    return [{"name": EVIDENCE[0][0], "content_base64": base64.b64encode(EVIDENCE[0][1]).decode()}]


def test_the_api_files_lists_and_answers_challenges_with_the_same_rules(world, client, auth):
    p, bidders = _awarded(world)
    loser, outsider = bidders["乙"][1], bidders["丁"][1]
    url = f"/api/v1/procurements/{p.id}/challenges"
    body = {"grounds": "技术分计算有误，请求重新评审。", "evidence": _evidence_json()}
    assert client.post(url, headers=auth(outsider.username), json=body).status_code in (403, 404)  # did not bid
    assert client.post(url, headers=auth(loser.username), json={**body, "evidence": []}).status_code == 422
    assert client.post(url, headers=auth(loser.username),
                       json={**body, "evidence": [{"name": "a.txt", "content_base64": "!!"}]}).status_code == 422
    response = client.post(url, headers=auth(loser.username), json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    challenge_id = response.json["id"]
    assert response.json["status"]["value"] == "open" and response.json["evidence"][0]["name"] == EVIDENCE[0][0]
    assert client.post(url, headers=auth(loser.username), json=body).status_code == 409  # once per notice
    # a firm sees only its own challenge; another bureau sees nothing
    assert [c["id"] for c in client.get(url, headers=auth(loser.username)).json] == [challenge_id]
    assert client.get(url, headers=auth(bidders["丙"][1].username)).json == []
    assert client.get(url, headers=auth("kz.staff")).status_code == 404
    detail = client.get(f"/api/v1/procurements/{p.id}", headers=auth("bz.staff")).json
    assert detail["notices"][0]["challenge_until"] and "质疑期" in detail["contract_block"]
    answer = {"outcome": "upheld", "answer": "经核查，技术分计算确有错误。", "remedy": "reevaluate"}
    answer_url = f"/api/v1/challenges/{challenge_id}/answer"
    assert client.post(answer_url, headers=auth(loser.username), json=answer).status_code == 403
    assert client.post(answer_url, headers=auth("kz.staff"), json=answer).status_code == 404
    assert client.post(answer_url, headers=auth("bz.staff"), json={**answer, "remedy": None}).status_code == 422
    response = client.post(answer_url, headers=auth("bz.staff"), json=answer)
    assert response.status_code == 200 and response.json["status"]["value"] == "upheld"
    assert client.post(answer_url, headers=auth("bz.staff"), json=answer).status_code == 409
    db.session.expire_all()
    assert db.session.get(type(p), p.id).status == ProcurementStatus.EVALUATING


def test_the_procure_page_states_the_rules_and_shows_a_refusal_beside_the_field(world, login):
    e = factories.engagement(world)
    db.session.commit()
    client = login(world.bz_staff)
    page = client.get(f"/engagements/{e.id}/procure").get_data(as_text=True)
    assert "公开招标数额标准 200 万元" in page and "不少于 20 日" in page
    response = client.post(f"/engagements/{e.id}/procure", data={
        "method": "random_draw", "title": "", "ceiling_price_wan": "900", "price_weight": "", "bid_deadline": ""})
    assert response.status_code == 422 and "已达到公开招标数额标准" in response.get_data(as_text=True)
    assert login(world.kz_staff).get(f"/engagements/{e.id}/procure").status_code == 403
