"""Red flags on the procurement history (issue 17): each indicator at its threshold on constructed rows, the
quality link on a constructed history, the inspection a poor-quality flag opens, the page, its export and the API."""
from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from evalhub.core.errors import ValidationFailed
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.integrity import redflags as R
from evalhub.integrity.models import Indicator, RedFlag, RedFlagCase
from evalhub.procurement.models import (
    Award, Bid, BidStatus, Procurement, ProcurementMethod as M, ProcurementStatus as PS,
)
from evalhub.supervision.models import Inspection, Trigger
from tests import factories

OT, CC, FR = M.OPEN_TENDER, M.COMPETITIVE_CONSULTATION, M.FRAMEWORK_ROTATION


def row(pid, *, bureau=1, year=2024, method=CC, bids=(), winner=None, amount=None, ceiling=100.0, period=15, reasons=""):
    return R.Row(pid, bureau, year, pid, method, PS.AWARDED if winner else PS.EVALUATING, ceiling, period,
                 [(f, p, v) for f, p, v in bids], winner, amount, reasons)


def flags_of(rows, **kw):
    found, used = R.compute(rows, k=kw.pop("k", 1.5), frequent_bids=kw.pop("frequent_bids", 5),
                            min_days=kw.pop("min_days", lambda r: 10 if r.method == CC else 20), firm_names={})
    return found, used


def by(found, indicator):
    return [f for f in found if f.indicator == indicator]


def test_fences_are_tukeys():
    assert R.fences([1, 2, 3, 4, 5, 6, 7, 8], 1.5) == (pytest.approx(-2.5), pytest.approx(11.5))
    assert R.fences([1, 2, 3], 1.5) == (float("-inf"), float("inf"))  # too few to judge


def test_single_valid_bid_in_a_competitive_method():
    found, _ = flags_of([row(1, bids=[(1, 50, True), (2, 45, False)]), row(2, bids=[(1, 50, True), (2, 45, True)]),
                         row(3, method=M.RANDOM_DRAW, bids=[(1, 50, True)])])
    assert [(f.procurement_id, f.firm_id) for f in by(found, Indicator.SINGLE_BID)] == [(1, 1)]


def test_bid_period_at_the_legal_minimum():
    found, _ = flags_of([row(1, period=10), row(2, period=11), row(3, method=OT, period=20), row(4, method=OT, period=21)])
    assert sorted(f.procurement_id for f in by(found, Indicator.SHORT_PERIOD)) == [1, 3]


def _awarded(pid, winner_price, second_price, ceiling=100.0):
    return row(pid, bids=[(1, winner_price, True), (2, second_price, True)], winner=1, amount=winner_price, ceiling=ceiling)


def test_lowball_and_near_ceiling_against_the_regions_fences():
    normal = [_awarded(i, 90 + i % 3, 95 + i % 3) for i in range(1, 9)]  # ratios ~0.95, 90–92 % of ceiling
    found, used = flags_of(normal + [_awarded(20, 50, 95), _awarded(21, 99.9, 100, ceiling=100.0)])
    assert [f.procurement_id for f in by(found, Indicator.LOWBALL)] == [20]
    assert used["lowball_low"] > 50 / 95
    assert [f.procurement_id for f in by(found, Indicator.NEAR_CEILING)] == [21]
    # at the fence itself: not over it
    found, used = flags_of(normal)
    assert by(found, Indicator.LOWBALL) == [] and by(found, Indicator.NEAR_CEILING) == []


def test_one_firms_share_of_a_bureaus_awards_over_three_years():
    rows, pid = [], 0
    for bureau in range(1, 6):  # five bureaus, awards spread over five firms
        for year in (2022, 2023, 2024):
            for firm in range(1, 4):
                pid += 1
                rows.append(row(pid, bureau=bureau, year=year, bids=[(firm + 10 * bureau, 90, True)],
                                winner=firm + 10 * bureau, amount=90))
    for year in (2022, 2023, 2024):  # bureau 9: one firm takes 8 of 9
        for n in range(3):
            pid += 1
            winner = 99 if not (year == 2024 and n == 2) else 98
            rows.append(row(pid, bureau=9, year=year, bids=[(winner, 90, True)], winner=winner, amount=90))
    found, used = flags_of(rows)
    dominant = by(found, Indicator.DOMINANT_FIRM)
    assert {(f.bureau_id, f.firm_id) for f in dominant} == {(9, 99)}
    assert all(f.value > used["share_high"] for f in dominant)
    assert {f.year: f.value for f in dominant} == {2023: 1.0, 2024: round(8 / 9, 4)}  # 2022: under 5 awards


def test_a_frequent_bidder_that_never_wins():
    rows = [row(i, bids=[(1, 90, True), (2, 95, True)], winner=1, amount=90) for i in range(1, 6)]
    found, _ = flags_of(rows, frequent_bids=5)
    assert [(f.firm_id, f.value) for f in by(found, Indicator.LOSING_BIDDER)] == [(2, 5)]
    found, _ = flags_of(rows[:4], frequent_bids=5)  # four bids: under the threshold
    assert by(found, Indicator.LOSING_BIDDER) == []


def test_rotation_among_the_same_small_group():
    rotating = [row(i, bids=[(1, 90, True), (2, 91, True), (3, 92, True)], winner=(i % 3) + 1, amount=90)
                for i in range(1, 4)]
    found, _ = flags_of(rotating)
    rotation = by(found, Indicator.ROTATION)
    assert len(rotation) == 1 and sorted(rotation[0].procurement_ids) == [1, 2, 3]
    found, _ = flags_of(rotating[:2])  # twice together is not a pattern
    assert by(found, Indicator.ROTATION) == []


def test_many_disqualifications_by_one_committee():
    rows = [row(i, bids=[(1, 90, True), (2, 91, True), (3, 92, True), (4, 93, True)]) for i in range(1, 8)]
    rows.append(row(9, bids=[(1, 90, True), (2, 91, False), (3, 92, False), (4, 93, False)]))
    rows.append(row(10, bids=[(1, 90, True), (2, 91, False), (3, 92, True), (4, 93, True)]))  # one only
    found, _ = flags_of(rows)
    assert [f.procurement_id for f in by(found, Indicator.DISQUALIFICATIONS)] == [9]


def test_framework_rotation_skipped():
    found, _ = flags_of([row(1, method=FR, winner=3, amount=10, reasons="框架协议顺序轮候，第 3 号入围机构承接；跳过：1号 甲：暂停；2号 乙：上限"),
                         row(2, method=FR, winner=1, amount=10, reasons="框架协议顺序轮候，第 1 号入围机构承接")])
    skipped = by(found, Indicator.ROTATION_SKIPPED)
    assert [(f.procurement_id, f.value) for f in skipped] == [(1, 2)]


def test_quality_against_the_region_median():
    quality = {1: {"score": 70, "rounds": 3, "findings": 4, "risk": 0.9}, 2: {"score": 85, "rounds": 1, "findings": 0},
               3: {"score": 88, "rounds": 1, "risk": 0.2}, 4: {"score": 90, "rounds": 2, "risk": 0.3}}
    region = R.medians(quality)
    assert region["score"] == 86.5 and region["rounds"] == 1.5
    mine = R.quality_of([1], quality)
    assert sorted(R.poor_quality(mine, region)) == ["findings", "risk", "rounds", "score"]
    assert R.poor_quality(R.quality_of([3], quality), region) == []


# --- a constructed history in the database -----------------------------------------------------------

def _history(world, firms):
    """Eight consultations of 巴州 with awards: the winner's price ~95 % of the second's, and one lowball
    (30 %) won by ``firms[0]``. Returns the lowball procurement."""
    lowball = None
    for n in range(8):
        engagement = factories.engagement(world, year=2024)
        winner, loser = (firms[0], firms[1]) if n == 0 else (firms[1 + n % 2], firms[0])
        price, second = (Decimal("150000"), Decimal("500000")) if n == 0 else (Decimal("450000") + n * 1000, Decimal("470000") + n * 1000)
        p = Procurement(engagement_id=engagement.id, bureau_id=world.bz.id, method=M.COMPETITIVE_CONSULTATION, status=PS.AWARDED,
                        title=f"历史采购{n}", ceiling_price=Decimal("500000"), price_weight=Decimal("20"),
                        low_bid_ratio=Decimal("70"), bid_deadline=utcnow() - timedelta(days=300), opened_at=utcnow() - timedelta(days=300))
        db.session.add(p)
        db.session.flush()
        p.created_at = p.bid_deadline - timedelta(days=15)
        db.session.add_all([Bid(procurement_id=p.id, firm_id=winner.id, price=price), Bid(procurement_id=p.id, firm_id=loser.id, price=second)])
        db.session.add(Award(procurement_id=p.id, engagement_id=engagement.id, firm_id=winner.id, amount=price, reasons="综合得分第一",
                             notice="公告"))
        engagement.firm_id = winner.id
        if n == 0:
            lowball = p
    db.session.flush()
    # what the lowball award delivered: an inspection with two findings (the others: closed, nothing found)
    from evalhub.supervision import services as S

    for p in db.session.execute(sa.select(Procurement).where(Procurement.bureau_id == world.bz.id)).scalars():
        inspection = S.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER, detail="历史检查", engagement=p.engagement)
        if p is lowball:
            for text in ("报告数据与底稿不符", "问卷样本量不足"):
                S.add_finding(inspection, world.bz_admin, severity="一般", description=text)
        inspection.status = inspection.status.__class__("closed")
    db.session.flush()
    return lowball


def test_the_quality_link_and_the_inspection_it_opens(world, login, auth):
    firms = [factories.firm(world.bz, name=n) for n in ("低价中标公司", "常规甲公司", "常规乙公司")]
    lowball = _history(world, firms)
    record = R.refresh()
    assert record.procurements == 8 and record.medians["findings"] == 0.0
    flag = db.session.execute(sa.select(RedFlag).where(RedFlag.indicator == Indicator.LOWBALL)).scalar_one()
    assert flag.procurement_id == lowball.id and flag.firm_id == firms[0].id and "低价中标公司" in flag.explanation
    assert flag.quality["findings"] == 2.0 and flag.quality["worse"] == ["findings"]
    db.session.commit()

    page = login(world.bz_staff).get(f"/integrity/red-flags?bureau={world.bz.id}&year=2024")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "成交价远低于第二名报价" in html and f"/procurements/{lowball.id}" in html
    assert "全区中位数" in html
    export = login(world.bz_staff).get(f"/integrity/red-flags?bureau={world.bz.id}&export=xlsx")
    sheet = pd.read_excel(io.BytesIO(export.data))
    assert "低价中标公司" in " ".join(sheet["说明"].astype(str)) and "检查发现问题数" in sheet.columns
    firm_page = login(world.bz_staff).get(f"/integrity/red-flags?firm={firms[0].id}").get_data(as_text=True)
    assert "低价中标公司" in firm_page

    api = login(world.bz_staff).get("/api/v1/red-flags?bureau=652800&year=2024&indicator=lowball",
                                    headers=auth(world.bz_staff.username))
    assert api.status_code == 200 and api.json["total"] == 1 and api.json["items"][0]["quality"]["findings"] == 2.0
    assert login(world.bz_staff).get("/api/v1/red-flags?bureau=653000", headers=auth(world.bz_staff.username)).status_code == 422
    # another prefecture's staff reads none of 巴州's flags
    other = login(world.kz_staff).get("/api/v1/red-flags", headers=auth(world.kz_staff.username))
    assert other.status_code == 200 and other.json["total"] == 0
    assert login(world.kz_staff).get(f"/integrity/red-flags?bureau={world.bz.id}").status_code == 403

    # a poor-quality flag opens a targeted inspection with the flag as its trigger, once
    client = login(world.bz_admin)
    response = client.post(f"/integrity/red-flags/{flag.id}/inspection")
    assert response.status_code == 302
    case = db.session.execute(sa.select(RedFlagCase)).scalar_one()
    inspection = db.session.get(Inspection, case.inspection_id)
    assert inspection.firm_id == firms[0].id and inspection.engagement_id == lowball.engagement_id
    assert "采购诚信红旗" in inspection.trigger_detail and "检查发现问题数" in inspection.trigger_detail
    assert client.post(f"/integrity/red-flags/{flag.id}/inspection").status_code == 409
    assert f"检查 #{inspection.id}" in client.get("/integrity/red-flags").get_data(as_text=True)
    # a firm and another bureau: refused
    assert login(world.kz_admin).post(f"/integrity/red-flags/{flag.id}/inspection").status_code == 404
    assert login(firms and world.firm_user).post(f"/integrity/red-flags/{flag.id}/inspection").status_code == 404


def test_a_flag_without_poor_quality_opens_nothing(world):
    firms = [factories.firm(world.bz, name=n) for n in ("低价中标公司", "常规甲公司", "常规乙公司")]
    _history(world, firms)
    R.refresh()
    flag = db.session.execute(sa.select(RedFlag).where(RedFlag.indicator == Indicator.LOWBALL)).scalar_one()
    flag.quality = {**flag.quality, "worse": []}
    with pytest.raises(ValidationFailed):
        R.open_inspection(flag, world.bz_admin)


def test_the_refresh_job_runs_through_the_queue(world):
    from evalhub.core.models import Job

    job = R.start_refresh(world.bz_admin)
    assert db.session.get(Job, job.id).status.value == "succeeded", job.message
    with pytest.raises(Exception):
        R.start_refresh(world.bz_staff)


# Loaded in a Beijing morning and in an evening: the story's steps keep their own hours (bids opened at 17:30,
# after the 17:00 deadline), whatever the time of day the demo is loaded at.
@pytest.mark.parametrize("hour", [8, 20])
def test_the_demo_story_flags_a_pair_records_the_decision_and_computes_red_flags(world, hour):
    """evalhub/demo/integrity.py on the test world (the full demo runs in tests/test_demo.py)."""
    from evalhub.core.models import BudgetUnit
    from evalhub.core.timeutil import simulated_clock
    from evalhub.demo import clock
    from evalhub.demo.integrity import TITLE, load_integrity
    from evalhub.integrity import services as I
    from evalhub.integrity.models import CollusionRule, FlagDecision, RedFlagRefresh

    db.session.add(BudgetUnit(bureau_id=world.lt.id, name="轮台县农业农村局"))
    for name in ("甲方评价咨询有限公司", "乙方绩效评价有限公司", "丙方评估事务所", "丁方咨询有限公司"):
        factories.bidder(world, name)
    db.session.flush()
    load_time = clock.now_local().replace(hour=hour, minute=5)
    with simulated_clock(utcnow() - timedelta(days=30)):
        assert load_integrity(lambda _: None, load_time=load_time) > 0
    p = db.session.execute(sa.select(Procurement).where(Procurement.title == TITLE)).scalar_one()
    flags = I.flags_of(p)
    same = [f for f in flags if f.rule == CollusionRule.SAME_FILE]
    assert len(same) == 1 and same[0].decision == FlagDecision.EXCLUDE and all(f.decision for f in flags)
    assert p.status == PS.EVALUATING and sum(b.status == BidStatus.INVALID for b in p.bids) == 2
    assert db.session.execute(sa.select(sa.func.count(RedFlagRefresh.id))).scalar_one() == 1
    assert load_integrity(lambda _: None, load_time=load_time) == 0  # idempotent


def test_an_inspections_outcome_labels_its_indicator(world):
    """Closed cases opened from red flags count per indicator (查实 or not); the page ranks by that share."""
    from evalhub.supervision import services as S

    firms = [factories.firm(world.bz, name=n) for n in ("低价中标公司", "常规甲公司", "常规乙公司")]
    _history(world, firms)
    R.refresh()
    flag = db.session.execute(sa.select(RedFlag).where(RedFlag.indicator == Indicator.LOWBALL)).scalar_one()
    inspection = R.open_inspection(flag, world.bz_admin)
    S.add_finding(inspection, world.bz_admin, severity="一般", description="低价中标后压缩现场工作量")
    inspection.status = inspection.status.__class__("closed")
    db.session.flush()
    record = R.refresh()
    assert record.fences["hit_rates"] == {"lowball": {"closed": 1, "found": 1, "rate": 1.0}}
    assert R.outcomes_for([db.session.execute(sa.select(RedFlag).where(RedFlag.indicator == Indicator.LOWBALL)).scalar_one()])
    first = db.session.execute(R.flags_stmt(world.bz_admin, bureau=world.bz, year=2024)).scalars().first()
    assert first.indicator == Indicator.LOWBALL
