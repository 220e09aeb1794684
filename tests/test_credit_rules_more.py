"""Rules of the annual credit rating (信用评价) and how last year's grade feeds eligibility: each test states a rule
of docs/rules.md ("Credit rating of firms") / DOMAIN.md §6 and sets up the case it holds on."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core.timeutil import beijing_today
from evalhub.credit import services as C
from evalhub.credit.models import CreditGrade, CreditRating, RatingStatus
from evalhub.extensions import db
from evalhub.procurement import eligibility
from evalhub.procurement.models import EngagementState as S, ProcurementMethod as M
from evalhub.registry.models import FirmStatus
from evalhub.supervision import services as V
from evalhub.supervision.models import Severity, Trigger
from tests import factories


def _rating(bureau, firm, year, grade, status=RatingStatus.FINAL, *, rated=True) -> CreditRating:
    rating = CreditRating(bureau_id=bureau.id, firm_id=firm.id, year=year, status=status, rated=rated,
                          total=Decimal("70") if grade else None, grade=grade, components=[])
    db.session.add(rating)
    db.session.flush()
    return rating


def _grade_reasons(firm, engagement, method=M.COMPETITIVE_CONSULTATION) -> list[str]:
    return [r for r in eligibility.exclusion_reasons(firm, engagement, method) if "信用评价为" in r]


# --- which year's grade governs ----------------------------------------------------------------------

def test_a_bureaus_last_final_grade_stays_in_force_while_its_newer_rating_is_under_publicity_even_if_another_bureau_finalised(world):
    """rules.md "While last year's rating is a draft or under publicity, the last final grade stays in force"
    (DOMAIN §6: the rating governs once final; C = open tender only), for each rating bureau. 巴州 graded the firm C
    for 2023 (final) and its 2024 rating is under publicity; 轮台县 has finalised its own 2024 rating (B). 巴州's C
    stays in force for 2025's engagements until 巴州's 2024 rating is final."""
    firm = factories.firm(world.bz)
    _rating(world.bz, firm, 2023, CreditGrade.C)
    _rating(world.bz, firm, 2024, CreditGrade.B, status=RatingStatus.PUBLISHED)
    e = factories.engagement(world, year=2025)
    assert _grade_reasons(firm, e), "control: with only 巴州's ratings, 2023's C governs"
    _rating(world.lt, firm, 2024, CreditGrade.B)  # a county's final rating of the same year
    reasons = _grade_reasons(firm, e)
    assert any("2023 年度信用评价为 C 级" in r for r in reasons), reasons
    assert C.grade_in_force(firm, world.bz, 2025)[0] == CreditGrade.C


def test_last_final_grade_stays_in_force_until_last_years_rating_of_a_firm_that_worked_is_computed(world):
    """rules.md "While last year's rating is a draft or under publicity, the last final grade stays in force"
    (grade_in_force: otherwise a C or D firm is free to win before its new rating is final). A firm graded C for
    2024 (final) worked for 巴州 in 2025, so 2025 will be rated; before 巴州 computes 2025, the C stays in force
    for 2026's work. (A firm with no work at all last year is unrestricted, as the existing tests hold.)"""
    firm = factories.firm(world.bz)
    worked = factories.contracted(world, firm=firm)  # a 2025 engagement of 巴州 (by open tender, in real life)
    worked.state = S.ACCEPTED
    _rating(world.bz, firm, 2024, CreditGrade.C)
    db.session.flush()
    assert C.rated_firm_ids(world.bz, 2025) == {firm.id}  # 巴州 will rate it for 2025
    e = factories.engagement(world, year=2026, unit="巴州民政局")
    reasons = _grade_reasons(firm, e)
    assert any("2024 年度信用评价为 C 级" in r for r in reasons), reasons


# --- the watch list: an intentional violation, whatever the score ----------------------------------------

def test_an_intentional_violation_puts_the_firm_on_the_watch_list_even_without_a_completed_engagement(world):
    """DOMAIN §6 "An intentional violation (fabricated data, collusion, …) puts the firm on a watch list and
    suspends it, whatever its score"; rules.md rows "A firm on the watch list … is excluded in every method" and
    "An intentional violation suspends the firm whatever its score … (also from `flask evalhub credit compute`)".
    The firm's only 2025 engagement is in progress when an inspection finds fabricated data: compute() leaves it
    "not rated", yet puts it on the watch list and suspends it, and it is excluded for 2026."""
    e = factories.contracted(world)  # contracted, not completed
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="举报线索", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description="伪造问卷数据")
    db.session.flush()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    assert rating.rated is False  # not rated: no completed engagement
    assert rating.watch_list and "伪造问卷数据" in (rating.watch_reason or "")
    assert world.firm.status == FirmStatus.SUSPENDED and rating.suspension_id is not None
    later = factories.engagement(world, year=2026, unit="巴州民政局")
    assert any("暂停" in r for r in eligibility.exclusion_reasons(world.firm, later, M.OPEN_TENDER))  # the draft: suspended
    C.ensure_national_calendar()
    C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 11, 3))  # published for objection: the watch list counts
    world.firm.status = FirmStatus.ADMITTED  # even reinstated, the watch list bars it next year
    assert any("重点关注名单" in r for r in eligibility.exclusion_reasons(world.firm, later, M.OPEN_TENDER))


# --- an upheld objection corrects the fact everywhere the rule reads it -------------------------------

def test_a_dishonesty_record_an_upheld_objection_struck_out_no_longer_bars_the_firm(world):
    """rules.md "An objection names the component and the records it contests; upholding it records a correction
    per record … and recomputes … from the corrected facts", with "A supplier on the 失信被执行人 / 重大税收违法失信
    lists (external credit record) is excluded for N years". 巴州 enters a 失信被执行人 record, the firm objects and
    巴州 upholds it ("经核实不计入"): the rating drops the deduction and the record no longer bars the firm."""
    from evalhub.core.settings import set_setting
    from evalhub.credit.models import ExternalRecordKind

    set_setting(world.bz, "credit.dishonest_years", 10, world.bz_admin)  # the 2025 record counts whenever this runs
    factories.contracted(world).state = S.ACCEPTED
    record = C.add_external_record(
        world.bz, world.firm, world.bz_admin, kind=ExternalRecordKind.DISHONEST_LIST, occurred_on=date(2025, 5, 6),
        description="（2025）新28执恢12号 列入失信被执行人名单", deduction="5", filename="截图说明.txt",
        data="信用中国截图说明".encode())
    later = factories.engagement(world, year=2026, unit="巴州民政局")
    assert any("失信被执行人" in r for r in eligibility.exclusion_reasons(world.firm, later, M.OPEN_TENDER))
    C.ensure_national_calendar()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 11, 3))
    ref = f"external:{record.id}"
    assert [r["ref"] for r in C.contestable(rating)["external"]] == [ref]
    objection = C.object_to(rating, world.firm_user, "该失信记录系法院错误纳入，已于 2025-06-10 决定删除，附删除决定书。",
                            [("删除决定书.txt", "执行法院删除失信信息决定书".encode())], component="external",
                            records=[ref], today=date(2025, 11, 4))
    C.answer(objection, world.bz_admin, "异议成立", "经核实法院已删除该失信信息，该记录不计入。", today=date(2025, 11, 5))
    assert objection.corrections[0].excluded and rating.total == objection.total_after > objection.total_before
    reasons = eligibility.exclusion_reasons(world.firm, later, M.OPEN_TENDER)
    assert not [r for r in reasons if "失信被执行人" in r], reasons


# --- re-publication -------------------------------------------------------------------------------------

def test_a_republication_never_shortens_the_objection_window_already_announced(world):
    """rules.md "A recompute that changes a rating under publicity publishes it again with a new objection window
    and tells the firm; unchanged ratings keep their window" (`credit.republish_days`) and "Publicity period for
    objections (working days)" (`credit.objection_days`). 巴州 publicises for 10 working days (to 2025-11-17); the
    next day an external record changes the firm's rating. The new deadline is never earlier than the announced one."""
    from evalhub.core.settings import set_setting
    from evalhub.credit.models import ExternalRecordKind

    set_setting(world.bz, "credit.objection_days", 10, world.bz_admin)
    factories.contracted(world).state = S.ACCEPTED
    C.ensure_national_calendar()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 11, 3))
    announced = rating.objection_deadline
    assert announced == date(2025, 11, 17)
    C.add_external_record(world.bz, world.firm, world.bz_admin, kind=ExternalRecordKind.ADMINISTRATIVE_PENALTY,
                          occurred_on=date(2025, 7, 1), description="巴市监处〔2025〕9号 行政处罚", deduction="3",
                          filename="处罚决定书.txt", data="处罚决定书".encode())
    C.compute(world.bz, 2025, world.bz_admin, today=date(2025, 11, 4))
    assert rating.version == 2  # changed: published again
    assert rating.objection_deadline >= announced, rating.objection_deadline


# --- bad input ------------------------------------------------------------------------------------------

def test_an_external_credit_record_cannot_be_dated_in_the_future(world):
    """rules.md "A supplier on the 失信被执行人 / 重大税收违法失信 lists (external credit record) is excluded for N
    years" (`credit.dishonest_years`, from the record's date) and "External credit: administrative penalties and
    public credit records, entered by the bureau" (DOMAIN §6). An external record dated 30 days in the future is
    refused and nothing is stored, as the registry refuses a founding date after today."""
    from datetime import timedelta

    import pytest

    from evalhub.core.errors import ValidationFailed
    from evalhub.core.timeutil import beijing_today
    from evalhub.credit.models import ExternalCreditRecord, ExternalRecordKind

    with pytest.raises(ValidationFailed) as caught:
        C.add_external_record(world.bz, world.firm, world.bz_admin, kind=ExternalRecordKind.DISHONEST_LIST,
                              occurred_on=beijing_today() + timedelta(days=30), description="列入失信被执行人名单",
                              deduction="5", filename="截图说明.txt", data="信用中国截图说明".encode())
    assert "occurred_on" in caught.value.fields
    assert db.session.execute(sa.select(sa.func.count(ExternalCreditRecord.id))).scalar_one() == 0


def test_a_year_is_not_computed_with_components_off_100_or_grade_lines_out_of_order(world):
    """Each credit setting is valid alone; together the components add up to 100 (a total out of 100, DOMAIN §6)
    and the lines fall A > B > C (else a grade cannot be reached). Computing refuses otherwise, saying which."""
    import pytest

    from evalhub.core.errors import ValidationFailed
    from evalhub.core.settings import set_setting

    factories.contracted(world).state = S.ACCEPTED
    set_setting(world.bz, "credit.weight_quality", 50, world.bz_admin)
    set_setting(world.bz, "credit.cut_b", 95, world.bz_admin)
    with pytest.raises(ValidationFailed) as refused:
        C.compute(world.bz, 2025, world.bz_admin)
    assert "合计应为 100（现为 110）" in refused.value.message and "A 级 > B 级 > C 级" in refused.value.message
    set_setting(world.bz, "credit.weight_quality", 40, world.bz_admin)
    set_setting(world.bz, "credit.cut_b", 80, world.bz_admin)
    assert C.compute(world.bz, 2025, world.bz_admin)


def test_an_intentional_violation_by_a_firm_that_did_not_work_for_the_bureau_puts_it_on_the_watch_list(world):
    """DOMAIN §6 "An intentional violation (fabricated data, collusion, …) puts the firm on a watch list and
    suspends it, whatever its score". A procurement red flag leads 巴州 to a firm that only bid (it won nothing this
    year): the inspection finds collusion (串通投标). Computing the year writes the firm a rating row — not rated, on
    the watch list — and suspends it, so the finding bars it next year like any other firm's; before, the rating
    covered only firms with an engagement, and the collusion left no trace in eligibility."""
    bidder = factories.firm(world.bz, name="只投标未中标的评价有限公司")
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.RED_FLAG, detail="报价规律性一致", firm=bidder)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description="与他人串通投标")
    db.session.flush()
    year = beijing_today().year  # the finding names no engagement: its year is its own
    ratings = {r.firm_id: r for r in C.compute(world.bz, year, world.bz_admin)}
    rating = ratings[bidder.id]
    assert rating.rated is False and rating.watch_list and "串通投标" in (rating.watch_reason or "")
    assert bidder.status == FirmStatus.SUSPENDED and rating.suspension_id is not None
    assert bidder.id in C.rated_firm_ids(world.bz, year)
