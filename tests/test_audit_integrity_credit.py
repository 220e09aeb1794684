"""Audit of procurement integrity and the credit rating after today's changes (late findings counted in the year
they were made, objections, 无需整改 findings). Each test states the rule (and its source) and the defect it fails on."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core.timeutil import beijing_today
from evalhub.credit import services as C
from evalhub.credit.models import CreditRating, RatingStatus
from evalhub.extensions import db
from evalhub.procurement import eligibility
from evalhub.procurement.models import EngagementState as S, ProcurementMethod as M
from evalhub.supervision import services as V
from evalhub.supervision.models import Severity, Trigger
from tests import factories


def _final_year(world, year, bureau=None, admin=None):
    bureau, admin = bureau or world.bz, admin or world.bz_admin
    C.ensure_national_calendar()
    C.compute(bureau, year, admin)
    C.publish(bureau, year, admin, today=date(year, 11, 3))
    C.finalise(bureau, year, admin, today=date(year, 12, 31))


def test_a_late_finding_on_a_firm_without_a_rating_row_in_its_work_year_counts_in_the_year_it_was_made(world):
    """Rule (docs/rules.md "Credit rating of firms", deductions row and watch-list row): "a finding of any severity
    made after the final rating of its work's year was computed counts instead in the rating of the Beijing year it
    was made in … making the firm a subject of that year's rating"; "an intentional finding on work of a year whose
    rating is already final (a random inspection after the rating) puts the firm on the watch list of the year it
    was found"; DOMAIN §6 (an intentional violation puts the firm on a watch list, whatever its score).

    Defect: ``credit.services._late`` asks for a FINAL rating row *of the finding's firm* for the work's year. An
    inspection of last year's engagement (won by another firm) finds that a bidder colluded (a complaint names the
    bidder, the case names the engagement). 巴州's rating of last year is final — but the bidder, which won nothing,
    has no row in it, so the finding is not "late"; it is read as last year's (its engagement's), a year whose
    computation is over. Computing this year leaves the bidder out entirely: no watch list, no suspension, and it
    stays eligible next year."""
    this_year = beijing_today().year
    last = this_year - 1
    e = factories.contracted(world, year=last)
    e.state = S.ACCEPTED
    db.session.flush()
    _final_year(world, last)  # 巴州's rating of last year is final (the winner rated)
    bidder = factories.losing_bidder(e, name="陪标未中标的评价有限公司")
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.RED_FLAG, detail="该项目投标人报价呈规律性差异",
                       firm=bidder, engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description="与他人串通投标")
    db.session.flush()
    C.compute(world.bz, this_year, world.bz_admin)
    C.ensure_national_calendar()
    C.publish(world.bz, this_year, world.bz_admin)  # the watch list counts once published (the draft suspends)
    watched = db.session.execute(sa.select(CreditRating).where(
        CreditRating.firm_id == bidder.id, CreditRating.watch_list.is_(True))).scalars().all()
    later = factories.engagement(world, year=this_year + 1, unit="巴州民政局")
    reasons = eligibility.exclusion_reasons(bidder, later, M.OPEN_TENDER)
    assert watched and any("重点关注名单" in r for r in reasons), (
        f"the colluding bidder reaches no rating: rows {[(r.year, r.watch_list) for r in db.session.execute(sa.select(CreditRating).where(CreditRating.firm_id == bidder.id)).scalars()]}, "
        f"eligible next year: {reasons}")


def test_the_public_ratings_page_states_the_lines_the_listed_grades_were_given_on(world, client):
    """Rule (docs/rules.md "Credit rating of firms", grade cut-offs row): "the public ratings page states the lines of
    each bureau whose ratings it lists (``grade_lines``), never a fixed legend"; DOMAIN §6 "Past ratings stay
    visible with their inputs".

    Defect: ``credit.views.public_ratings`` states ``services.grade_lines(bureau)`` — the bureau's lines *today*.
    巴州 rated the firm's 2025 work on the default lines (76 分 → C, final). In 2026 it lowers the B line to 75 for
    the new year. The public page now lists the firm "76 分 · C" under the legend "B 级 75–90 分": the stated lines
    contradict the grade beside them, and the public (and the firm's clients) read a C the page's own rule says is a
    B. The rating keeps no record of the lines it was graded on."""
    e = factories.contracted(world, year=2025)
    e.state = S.ACCEPTED
    db.session.flush()
    _final_year(world, 2025)
    rating = db.session.execute(sa.select(CreditRating).where(CreditRating.firm_id == world.firm.id,
                                                               CreditRating.year == 2025)).scalar_one()
    assert rating.status == RatingStatus.FINAL and rating.grade is not None and rating.grade.label.startswith("C")
    total = rating.total
    from evalhub.core.settings import set_setting
    set_setting(world.bz, "credit.cut_b", int(total) - 1, world.bz_admin)  # the line for the years to come
    db.session.commit()
    page = client.get("/public/ratings?year=2025").get_data(as_text=True)
    assert world.firm.name in page  # control: the final rating is listed
    stated_b = f"B 级 {int(total) - 1}–"
    assert stated_b not in page, (
        f"the page lists {world.firm.name} at {total} 分 as {rating.grade.label} under a legend stating "
        f"“{stated_b}…”: the lines stated are today's, not those the listed grade was given on")


def test_a_bid_excluded_for_a_regular_price_pattern_cites_the_item_of_article_37_that_names_it(world):
    """Rule (the law cited by docs/rules.md "Procurement integrity": 财政部令第87号 第三十七条): "有下列情形之一的，视为投标人
    串通投标，其投标无效：（一）不同投标人的投标文件由同一单位或者个人编制；（二）不同投标人委托同一单位或者个人办理投标事宜；
    （三）不同投标人的投标文件载明的项目管理成员或者联系人员为同一人；（四）不同投标人的投标文件异常一致或者投标报价呈规律性差异；
    （五）不同投标人的投标文件相互混装；（六）不同投标人的投标保证金从同一单位或者个人的账户转出。" The committee's 排除 makes the
    flagged bids invalid "(the committee judges collusion; such bids are invalid)" — the record states the legal ground.

    Defect: ``integrity.models.CLAUSE`` swaps items (四) and (五): 异常一致 and 报价呈规律性差异 are cited as 第（五）项 and
    相互混装 as 第（四）项 (rules.md's price-tolerance row repeats the wrong number). The committee excludes three bids
    whose prices step by 2.25 万元; each bid's recorded invalidity reason — which the excluded firm reads on its bid
    page and the API returns as the flag's ``clause`` — cites 第三十七条第（五）项, the item on 混装, not the item (四) the
    finding falls under: a decision of invalidity on a wrong legal basis, open to challenge on that ground alone."""
    from evalhub.integrity import services as I
    from evalhub.integrity.models import CLAUSE, CollusionRule, FlagDecision
    from evalhub.procurement.models import BidStatus
    from tests.test_integrity import _bid, _consultation, _open

    p = _consultation(world)
    bidders = [factories.bidder(world, n) for n in ("甲公司", "乙公司", "丙公司")]
    for (_, user, staff), price in zip(bidders, ["41.30", "43.55", "45.80"]):
        _bid(p, user, staff, price)
    flags = _open(world, p)
    assert [f.rule for f in flags] == [CollusionRule.PRICE_PATTERN]  # control: the pattern is flagged
    I.decide(flags[0], world.bz_staff, FlagDecision.EXCLUDE, "三家报价依次相差 2.25 万元，评审委员会认定串通投标。")
    reasons = [b.invalid_reason for b in p.bids if b.status == BidStatus.INVALID]
    assert len(reasons) == 3
    wrong = {rule.value: CLAUSE[rule] for rule in (CollusionRule.PRICE_PATTERN, CollusionRule.SIMILAR_TEXT,
                                                    CollusionRule.IDENTICAL_PRICE, CollusionRule.SAME_FILE)}
    assert all("第三十七条第（四）项" in r for r in reasons), (
        f"the invalidity is recorded on the wrong item of 第三十七条: {reasons[0]!r}; clauses: {wrong}")


def test_one_penalty_entered_by_a_county_and_by_its_prefecture_is_deducted_once_in_the_prefectures_rating(world):
    """Rule (docs/rules.md "Credit rating of firms"): "An external credit record (firm, kind, date, text) is entered
    once: one penalty is deducted once"; and external records "count in the rating of the bureau that made or
    received them and of the bureaus above it" (so 巴州's rating reads 轮台县's records).

    Defect: ``credit.services.add_external_record`` looks for the twin only among the entering bureau's own records
    (``ExternalCreditRecord.bureau_id == bureau.id``), while ``_year_records`` reads a rating bureau's whole subtree.
    轮台县 enters the firm's administrative penalty (警告，扣 3 分); 巴州, which rates its whole prefecture, enters the
    same penalty (same firm, kind, date and text) — accepted. 巴州's rating then deducts the one penalty twice
    (外部信用 10 − 6 = 4 instead of 7): the firm loses 3 points, and possibly a grade, for a fact counted twice."""
    e = factories.contracted(world, year=2025)
    e.state = S.ACCEPTED
    db.session.flush()
    same = dict(kind="行政处罚", occurred_on=date(2025, 6, 1), description="违反合同约定被市场监管部门处以警告",
                deduction="3", filename="决定书.txt", data="处罚决定书".encode())
    C.add_external_record(world.lt, world.firm, world.lt_admin, **same)
    twin = None
    try:
        twin = C.add_external_record(world.bz, world.firm, world.bz_admin, **same)
    except Exception as exc:  # refused as the same penalty: the rule holds
        assert "重复" in str(exc) or "相同" in str(exc), exc
    db.session.flush()
    C.ensure_national_calendar()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    external = next(c for c in rating.components if c["code"] == "external")
    assert Decimal(external["points"]) == Decimal("7"), (
        f"巴州 deducts the one penalty {len(external['records'])} times ({external['points']} / {external['max']}); "
        f"the twin was {'accepted' if twin is not None else 'refused'}")
