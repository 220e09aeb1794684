"""Audit of the annual credit rating (信用评价) and how last year's grade feeds eligibility: each test states a
rule of docs/rules.md ("Credit rating of firms") / DOMAIN.md §6 that some path does not enforce. Each fails on
the code as audited and passes once the rule holds."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

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
    (DOMAIN §6: the rating governs once final; C = open tender only). 巴州 graded the firm C for 2023 (final);
    its 2024 rating is still under publicity. 轮台县 happened to finalise its own 2024 rating (B) first. 巴州's
    C must stay in force for 2025's engagements until 巴州's 2024 rating is final — the code takes any final
    2024 rating in reach as "last year is final" and drops 巴州's C (credit/services.py grade_exclusions and
    grade_in_force: one status set for all bureaus instead of per rating bureau)."""
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
    (grade_in_force's own docstring: otherwise a C or D firm is free to win between the new year's engagements
    and its rating becoming final). A firm graded C for 2024 (final) worked for 巴州 in 2025 (an accepted
    engagement), so 2025 will be rated; in the weeks of 2026 before 巴州 even computes 2025, the code finds no
    2025 rating and lets the C lapse: the firm can be chosen by consultation / single source for 2026's work.
    (Unlike a firm with no work at all last year, which the existing tests leave unrestricted.)
    Fix: credit/services.py grade_exclusions / grade_in_force."""
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
    The firm's only 2025 engagement is still in progress when an inspection finds fabricated data. compute()
    makes it "not rated" (no completed engagement) and _components returns before reading the findings: no
    watch list, no suspension, and the firm stays eligible for 2026. Fix: credit/services.py _components /
    _rate (read intentional findings before the "not rated" return)."""
    e = factories.contracted(world)  # contracted, not completed
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="举报线索", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description="伪造问卷数据")
    db.session.flush()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    assert rating.rated is False  # not rated: correct, no completed engagement
    assert rating.watch_list and "伪造问卷数据" in (rating.watch_reason or "")
    assert world.firm.status == FirmStatus.SUSPENDED and rating.suspension_id is not None
    world.firm.status = FirmStatus.ADMITTED  # even reinstated, the watch list bars it next year
    later = factories.engagement(world, year=2026, unit="巴州民政局")
    assert any("重点关注名单" in r for r in eligibility.exclusion_reasons(world.firm, later, M.OPEN_TENDER))


# --- an upheld objection corrects the fact everywhere the rule reads it -------------------------------

def test_a_dishonesty_record_an_upheld_objection_struck_out_no_longer_bars_the_firm(world):
    """rules.md "An objection names the component and the records it contests; upholding it records a
    correction per record (the corrected fact …) and recomputes … from the corrected facts" with rules.md
    "A supplier on the 失信被执行人 / 重大税收违法失信 lists (external credit record) is excluded for N years".
    巴州 entered a 失信被执行人 record; the firm objected (wrongly listed, removed by the court) and 巴州 upheld
    it: the record "经核实不计入". The rating drops the deduction, but watch_list_exclusions reads the raw
    ExternalCreditRecord and keeps barring the firm from every procurement for three years.
    Fix: credit/services.py watch_list_exclusions (skip records an upheld objection excluded)."""
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
    """rules.md "A recompute that changes a rating under publicity publishes it again with a new objection
    window and tells the firm; unchanged ratings keep their window" (`credit.republish_days`, "= the first
    publicity period"); "Publicity period for objections (working days)" `credit.objection_days`.
    巴州 publicises for 10 working days (to 2025-11-17). The next day an external record changes one firm's
    rating: _republish sets its deadline to today + republish_days (5) = 2025-11-11, so the re-publication
    takes six working days from the firm's announced objection period (its unchanged neighbours keep 11-17).
    Fix: credit/services.py _republish (the new deadline is never earlier than the current one)."""
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
    years" (`credit.dishonest_years`, counted from the record's date) and "External credit: administrative
    penalties and public credit records, entered by the bureau" (DOMAIN §6). add_external_record takes any
    发生日期: a record dated in the future (a typo 2052 for 2025) is stored, bars the firm from every procurement
    now and for N years after that date, and lands in a rating year not yet begun. The registry already refuses
    a founding date after today (registry/services.py). Fix: credit/services.py add_external_record."""
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
