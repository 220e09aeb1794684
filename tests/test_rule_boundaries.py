"""Rules at their edges, against their sources (DOMAIN.md, docs/rules.md, the State Council's holiday notices):
Beijing dates and years where the database keeps UTC, "within 3 years" to the day, a panel size that must be
odd where it is set, the legal calendar without anyone having opened a page, the yearly cap on key evaluations
only, and a complaint counted in the rating of the bureau that received it."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.errors import ValidationFailed
from evalhub.core.models import CalendarDay
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import simulated_clock
from evalhub.credit import services as C
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState as S
from evalhub.supervision import services as V
from evalhub.supervision.models import Severity, Trigger
from tests import factories


def _component(rating, code):
    return next(c for c in rating.components if c["code"] == code)


def _rate(world, bureau=None, year=2025):
    bureau = bureau or world.bz
    return {r.firm_id: r for r in C.compute(bureau, year, getattr(world, "bz_admin"))}


# --- credit: contract performance compares a UTC date with a Beijing due date -----------------------------

def test_credit_counts_a_work_plan_handed_in_the_beijing_morning_after_its_due_date_as_late(world):
    """DOMAIN §6: contract performance = "plans and reports on time". The contract's plan_due is a Beijing
    date (workflow.due_date / overdue_reasons read it so). A plan handed in at 07:00 Beijing on 11 April is a
    day late for a 10 April due date — its timestamp is stored as naive UTC, 10 April 23:00, and the rating
    takes ``submitted_at.date()`` (the UTC date), so it counts the plan on time."""
    e = factories.contracted(world)
    e.contract.plan_due = date(2025, 4, 10)
    submission = factories.submit_plan(e)
    submission.submitted_at = datetime(2025, 4, 10, 23, 0)  # = 2025-04-11 07:00 Beijing
    e.state = S.ACCEPTED
    db.session.flush()
    performance = _component(_rate(world)[e.firm_id], "performance")
    assert "按期提交 0/1" in performance["detail"], performance["detail"]
    assert Decimal(performance["points"]) == Decimal("6.00")  # 15 × 0.6 × 0/1 + 15 × 0.4


# --- credit: a complaint counts in every bureau's rating, a finding only in its own ----------------------

def test_a_complaint_substantiated_by_another_prefecture_does_not_cut_this_bureaus_rating(world):
    """DOMAIN §6: commissioner feedback = "the commissioners' ratings and complaints"; supervision =
    inspection findings. The rating reads the bureau's own subtree for findings and external records
    (``Inspection.bureau_id.in_(subtree)``, ``ExternalCreditRecord.bureau_id.in_(subtree)``), but complaints
    with no bureau filter: a complaint lodged with and substantiated by 克州 cuts 巴州's rating of the firm,
    while a finding 克州 makes on the same firm does not. (With the region-wide grade reach the same
    complaint then counts twice, once in each bureau's rating.)"""
    e = factories.contracted(world)
    e.state = S.ACCEPTED
    db.session.flush()
    # 克州 receives and substantiates a complaint about the firm (no engagement named) …
    complaint = V.file_complaint(bureau_id=world.kz.id, firm_name=world.firm.name,
                                 text="该机构在克州的评价工作中未到现场核查即出具报告，数据照抄单位自评。",
                                 engagement_reference=None, complainant_name=None, complainant_contact=None,
                                 address="10.0.0.9")
    complaint.created_at = datetime(2025, 6, 1, 4, 0)
    complaint.substantiated = True
    # … and 克州 also finds a problem with the firm in a case of its own
    case = V.open_case(world.kz, world.kz_staff, trigger=Trigger.OTHER, detail="举报线索", firm=world.firm)
    V.add_finding(case, world.kz_staff, severity=Severity.GENERAL, description="底稿缺少抽样记录")
    for finding in case.findings:
        finding.created_at = datetime(2025, 6, 1, 4, 0)
    db.session.flush()
    rating = _rate(world)[e.firm_id]
    assert _component(rating, "supervision")["points"] == "15.00"  # 克州's finding is not 巴州's: as it is
    assert _component(rating, "feedback")["points"] == "16.00", _component(rating, "feedback")  # nor its complaint


# --- credit: "the year they were made" is the UTC year ----------------------------------------------------

def test_a_complaint_made_on_new_years_morning_beijing_counts_in_the_new_year(world):
    """credit/services.py ``_year_records``: complaints naming no engagement "count for ... the year they were
    made". A complaint filed at 03:00 Beijing on 1 January 2026 was made in 2026; the year is taken with
    ``extract('year', created_at)`` on the naive-UTC timestamp (31 December 2025 19:00), so it cuts the
    firm's 2025 rating instead."""
    e = factories.contracted(world)
    e.state = S.ACCEPTED
    db.session.flush()
    complaint = V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name,
                                 text="评价人员未到现场即出具报告，数据照抄单位自评，请予核查。",
                                 engagement_reference=None, complainant_name=None, complainant_contact=None,
                                 address="10.0.0.8")
    complaint.created_at = datetime(2025, 12, 31, 19, 0)  # = 2026-01-01 03:00 Beijing
    complaint.substantiated = True
    db.session.flush()
    feedback = _component(_rate(world)[e.firm_id], "feedback")
    assert feedback["points"] == "16.00", feedback  # 20 × 80 % (no commissioner rating), no complaint of 2025


# --- review: "same expert reviewing the same firm per year" counts UTC years -------------------------------

def test_the_same_firm_per_year_cap_counts_a_panel_formed_on_new_years_morning_beijing(world):
    """docs/rules.md: "Same expert reviewing the same firm per year" (review.same_firm_per_year). The cap reads
    ``utcnow().year`` and ``extract('year', ReviewPanel.created_at)`` on naive-UTC timestamps: a panel formed at
    05:00 Beijing on 1 January 2026 is counted as 2025's, so on 2 January 2026 its experts may review the same
    firm again past a cap of 1."""
    from evalhub.review import services as R
    from tests.test_review_services import _experts, _report_submitted

    set_setting(world.bz, "review.same_firm_per_year", 1, world.bz_admin)
    set_setting(world.bz, "review.report_panel_size", 3, world.bz_admin)
    _experts(world, 6)
    first = factories.witnessed(R.form_panel(_report_submitted(world), world.bz_staff))
    first.created_at = datetime(2025, 12, 31, 21, 0)  # = 2026-01-01 05:00 Beijing
    second = _report_submitted(world, unit="巴州民政局")
    db.session.flush()
    with simulated_clock(datetime(2026, 1, 2, 4, 0)):  # 2026-01-02 12:00 Beijing
        reasons = R.panel_exclusions(second, R._pool(second))
    for invitation in first.invitations:
        assert any("今年已评审该机构" in r for r in reasons.get(invitation.expert_id, [])), reasons.get(invitation.expert_id)


# --- registry (used by every draw): "within 3 years" reaches back up to 3 days further ----------------------

def test_an_employment_that_ended_more_than_three_years_ago_is_no_longer_a_conflict(world):
    """DOMAIN §4 / rules.md: avoidance for employment "within 3 years" (财政部令第87号 第六十二条 "前3年内").
    ``expert_avoidance_reasons`` sets its horizon to ``date(on.year - 3, on.month, min(on.day, 28))``: on
    30 June 2025 the horizon is 28 June 2022, so a job that ended 29 June 2022 (3 years and a day before)
    still excludes the expert from panels, committees and inspections."""
    from evalhub.registry.services import add_expert_tie, expert_avoidance_reasons

    old = factories.expert(world.bz, name="离职专家", employer="新疆某大学")
    recent = factories.expert(world.bz, name="近年离职专家", employer="新疆某学院")
    for expert, ended in ((old, date(2022, 6, 29)), (recent, date(2022, 7, 1))):
        add_expert_tie(expert, kind="任职", counterpart_type="第三方机构", counterpart_name=None, firm_id=world.firm.id,
                       bureau_id=None, budget_unit_id=None, start_date=date(2015, 1, 1), end_date=ended, note=None,
                       actor=world.bz_staff)
    db.session.flush()
    on = date(2025, 6, 30)
    assert expert_avoidance_reasons(recent, firm_ids=[world.firm.id], on=on)  # within 3 years: excluded (as it is)
    assert expert_avoidance_reasons(old, firm_ids=[world.firm.id], on=on) == []


# --- review: a panel size the settings page accepts and every draw then refuses -----------------------------

@pytest.mark.parametrize("key", ["review.plan_panel_size", "review.report_panel_size",
                                 "review.self_evaluation_panel_size"])
def test_an_even_panel_size_is_refused_where_it_is_set(world, key):
    """DOMAIN §4 "Panels: odd, ≥ 3"; rules.md "Panel sizes (odd, ≥ 3)"; the settings are labelled "（单数）".
    ``SettingDef.parse`` checks only 3–9, so a bureau can save 4; ``form_panel`` then refuses every panel drawn
    at the bureau's size ("评审专家人数应为不少于 3 的单数")."""
    with pytest.raises(ValidationFailed):
        set_setting(world.bz, key, 4, world.bz_admin)


# --- procurement: the legal challenge period ignores national holidays until a credit page seeds them --------

def test_the_challenge_period_counts_national_holidays_without_visiting_the_credit_pages_first(world):
    """rules.md: "Legal periods count working days: Monday–Friday less national holidays plus 调休 working
    days … default national holidays 2023–2026"; the challenge period is 7 working days (政府采购法 第五十二条).
    The national holidays are written to ``calendar_day`` only by ``ensure_national_calendar``, which only the
    credit web pages (publish, calendar page) and the demo call. An award made before anyone opened those pages
    counts 国庆 2025 (1–8 October) as working days: 7 working days from 30 September end on 9 October instead of
    16 October (9, 10, 11 (调休), 13, 14, 15, 16)."""
    from evalhub.procurement import services as procurement
    from evalhub.procurement.models import ProcurementMethod

    assert db.session.execute(sa.select(sa.func.count(CalendarDay.id))).scalar_one() == 0  # a fresh install
    with simulated_clock(datetime(2025, 9, 30, 2, 0)):  # 2025-09-30 10:00 Beijing
        e = factories.engagement(world)
        p = procurement.open_procurement(e, procurement.ProcurementInput(
            method=ProcurementMethod.SINGLE_SOURCE, title="", ceiling_price_wan="20", single_source_firm_id=world.firm.id,
            justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。"), world.bz_staff)
        procurement.approve_single_source(p, world.bz_admin, "18")
    assert p.notice.challenge_until == date(2025, 10, 16), p.notice.challenge_until


# --- procurement: the yearly cap on KEY evaluations counts every kind of commissioned work ---------------------

def test_the_yearly_cap_on_key_evaluations_does_not_count_other_commissioned_work(world):
    """DOMAIN §3: "a firm may hold at most 5 key evaluations of one bureau a year"; rules.md "Yearly cap of key
    evaluations per firm per bureau"; the setting is "每家机构每年承接本局重点评价上限". The plan check counts
    key evaluations only (``service_kind == KEY_EVALUATION``), but ``eligibility.held_engagements`` /
    ``caps_reached`` count every engagement of the bureau and year whatever its 委托事项: a firm holding five
    绩效目标审核 jobs (and no key evaluation) is refused its first key evaluation."""
    from evalhub.procurement import eligibility
    from evalhub.procurement.models import ProcurementMethod, ServiceKind

    for unit in ["巴州统计局", "巴州民政局", "巴州统计局", "巴州民政局", "巴州统计局"]:
        held = factories.contracted(world, unit=unit)
        held.service_kind = ServiceKind.TARGET_REVIEW
        held.plan_item.service_kind = ServiceKind.TARGET_REVIEW
    db.session.flush()
    key = factories.engagement(world, unit="巴州民政局")
    assert key.service_kind == ServiceKind.KEY_EVALUATION
    reasons = eligibility.exclusion_reasons(world.firm, key, ProcurementMethod.OPEN_TENDER)
    assert not any("达到上限" in r for r in reasons), reasons


# --- core calendar: statutory holidays missing from the national calendar ------------------------------------

def test_the_2026_national_calendar_has_the_mid_autumn_festival(world):
    """rules.md: working days are "Monday–Friday less national holidays … national holidays 2023–2026"
    (国务院办公厅 annual notices; 《全国年节及纪念日放假办法》: 中秋节 农历八月十五, a statutory holiday). 2023–2025
    list their 中秋节; the 2026 list has none, so Friday 25 September 2026 counts as a working day in every
    legal period (challenge periods, objection windows, fact confirmation, overdue rectification)."""
    from evalhub.core.calendar import ensure_national_calendar, is_workday

    ensure_national_calendar()
    assert not is_workday(world.bz, date(2026, 9, 25))
