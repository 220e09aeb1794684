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
from tests.test_credit_views import text


def _component(rating, code):
    return next(c for c in rating.components if c["code"] == code)


def _rate(world, bureau=None, year=2025):
    bureau = bureau or world.bz
    return {r.firm_id: r for r in C.compute(bureau, year, getattr(world, "bz_admin"))}


def _accepted(world):
    e = factories.contracted(world)
    e.state = S.ACCEPTED
    db.session.flush()
    return e


def _upheld_complaint(world, bureau, at: datetime):
    """A complaint about the firm naming no engagement, received by ``bureau`` at ``at`` (UTC) and upheld."""
    complaint = V.file_complaint(bureau_id=bureau.id, firm_name=world.firm.name,
                                 text="评价人员未到现场即出具报告，数据照抄单位自评，请予核查。",
                                 engagement_reference=None, complainant_name=None, complainant_contact=None,
                                 address=f"10.0.0.{bureau.id}")
    complaint.created_at = at
    complaint.substantiated = True
    return complaint


# --- credit: a submission's Beijing date against the contract's ----------------------------------------------

def test_credit_counts_a_work_plan_handed_in_the_beijing_morning_after_its_due_date_as_late(world):
    """DOMAIN §6: contract performance = "plans and reports on time". The contract's dates are Beijing dates and a
    submission's time is stored in UTC: a plan handed in at 07:00 Beijing on 11 April is a day late for 10 April
    (the UTC date, 10 April, once counted it on time)."""
    e = factories.contracted(world)
    e.contract.plan_due = date(2025, 4, 10)
    submission = factories.submit_plan(e)
    submission.submitted_at = datetime(2025, 4, 10, 23, 0)  # = 2025-04-11 07:00 Beijing
    e.state = S.ACCEPTED
    db.session.flush()
    performance = _component(_rate(world)[e.firm_id], "performance")
    assert "按期提交 0/1" in performance["detail"], performance["detail"]
    assert Decimal(performance["points"]) == Decimal("6.00")  # 15 × 0.6 × 0/1 + 15 × 0.4


# --- credit: a complaint counts where it was received, as a finding does -------------------------------------

def test_a_complaint_substantiated_by_another_prefecture_does_not_cut_this_bureaus_rating(world):
    """DOMAIN §6: commissioner feedback = "the commissioners' ratings and complaints"; supervision = inspection
    findings. Like a finding (and an external record), a complaint counts in the rating of the bureau that received
    it and of the bureaus above it, never a sibling's: 克州's complaint once cut 巴州's rating too, so one fact was
    deducted twice under the region-wide reach of grades."""
    e = _accepted(world)
    _upheld_complaint(world, world.kz, datetime(2025, 6, 1, 4, 0))  # 克州 receives and upholds a complaint …
    # … and 克州 also finds a problem with the firm in a case of its own, opened on another complaint naming it (the
    # firm is not in 克州's libraries: a case names it through the complaint, not by 克州's choice)
    lead = V.file_complaint(bureau_id=world.kz.id, firm_name=world.firm.name, text="评价报告中的满意度调查数据与实际发放问卷数量不符，请予核查。",
                            engagement_reference=None, complainant_name=None, complainant_contact=None,
                            address="10.0.1.1")
    case = V.open_case(world.kz, world.kz_staff, trigger=Trigger.COMPLAINT, detail="举报线索", complaint=lead)
    V.add_finding(case, factories.recorder(case), severity=Severity.GENERAL, description="底稿缺少抽样记录")
    for finding in case.findings:
        finding.created_at = datetime(2025, 6, 1, 4, 0)
    db.session.flush()
    rating = _rate(world)[e.firm_id]
    assert _component(rating, "supervision")["points"] == "15.00"  # 克州's finding is not 巴州's: as it is
    assert _component(rating, "feedback")["points"] == "16.00", _component(rating, "feedback")  # nor its complaint


# --- credit: "the year they were made" is Beijing's ----------------------------------------------------------

def test_a_complaint_made_on_new_years_morning_beijing_counts_in_the_new_year(world):
    """A complaint naming no engagement counts for the year it was made, in Beijing: one filed at 03:00 Beijing on
    1 January 2026 is 2026's (its UTC year, 2025, once cut the 2025 rating)."""
    e = _accepted(world)
    _upheld_complaint(world, world.bz, datetime(2025, 12, 31, 19, 0))  # = 2026-01-01 03:00 Beijing
    db.session.flush()
    feedback = _component(_rate(world)[e.firm_id], "feedback")
    assert feedback["points"] == "16.00", feedback  # 20 × 80 % (no commissioner rating), no complaint of 2025


# --- review: "same expert reviewing the same firm per year" counts Beijing years -----------------------------

def test_the_same_firm_per_year_cap_counts_a_panel_formed_on_new_years_morning_beijing(world):
    """docs/rules.md: "Same expert reviewing the same firm per year" (review.same_firm_per_year) counts Beijing years:
    a panel formed at 05:00 Beijing on 1 January 2026 is 2026's (by its UTC year it once fell in 2025, letting its
    experts review the firm again past a cap of 1)."""
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


# --- registry (used by every draw): "within 3 years" to the day ----------------------------------------------

def test_an_employment_that_ended_more_than_three_years_ago_is_no_longer_a_conflict(world):
    """DOMAIN §4 / rules.md: avoidance for employment "within 3 years" (财政部令第87号 第六十二条 "前3年内") reaches
    back to the same day three years before: on 30 June 2025 a job that ended 29 June 2022 no longer excludes the
    expert, one that ended 1 July 2022 still does (the horizon was once the 28th of the month)."""
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


# --- review: an odd panel size, where it is set --------------------------------------------------------------

@pytest.mark.parametrize("key", ["review.plan_panel_size", "review.report_panel_size",
                                 "review.self_evaluation_panel_size"])
def test_an_even_panel_size_is_refused_where_it_is_set(world, key):
    """DOMAIN §4 "Panels: odd, ≥ 3": the settings page refuses an even panel size (once saved, every panel drawn at
    the bureau's size was refused)."""
    with pytest.raises(ValidationFailed):
        set_setting(world.bz, key, 4, world.bz_admin)


# --- procurement: the legal challenge period counts the national holidays ------------------------------------

def test_the_challenge_period_counts_national_holidays_without_visiting_the_credit_pages_first(world):
    """rules.md: legal periods count working days, national holidays and 调休 excluded; the challenge period is 7
    working days (政府采购法 第五十二条) from the end of the notice's 1 working day (实施条例 第五十三条). The holidays
    hold without any page having copied them into the table: 1 + 7 working days from 30 September 2025 end on 17
    October (9 the notice's day; then 10, 11 (调休), 13, 14, 15, 16, 17), not in the holiday week."""
    from evalhub.procurement import services as procurement
    from evalhub.procurement.models import ProcurementMethod

    assert db.session.execute(sa.select(sa.func.count(CalendarDay.id))).scalar_one() == 0  # a fresh install
    with simulated_clock(datetime(2025, 9, 30, 2, 0)):  # 2025-09-30 10:00 Beijing
        e = factories.engagement(world)
        p = procurement.open_procurement(e, procurement.ProcurementInput(
            method=ProcurementMethod.SINGLE_SOURCE, title="", ceiling_price_wan="20", single_source_firm_id=world.firm.id,
            justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。"), world.bz_staff)
        procurement.approve_single_source(p, world.bz_admin, "18")
    assert p.notice.challenge_until == date(2025, 10, 17), p.notice.challenge_until


# --- procurement: the yearly cap counts key evaluations only -------------------------------------------------

def test_the_yearly_cap_on_key_evaluations_does_not_count_other_commissioned_work(world):
    """DOMAIN §3: "a firm may hold at most 5 key evaluations of one bureau a year" (the setting
    "每家机构每年承接本局重点评价上限"): five 绩效目标审核 jobs do not count against a firm's first key evaluation."""
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


# --- core calendar: the 2026 notice --------------------------------------------------------------------------

def test_the_2026_national_calendar_has_the_mid_autumn_festival(world):
    """国务院办公厅关于2026年部分节假日安排的通知 (4 November 2025): 中秋节 25–27 September 2026 is a holiday."""
    from evalhub.core.calendar import ensure_national_calendar, is_workday

    ensure_national_calendar()
    assert not is_workday(world.bz, date(2026, 9, 25))


# --- core calendar: the years after the written notices -------------------------------------------------------

def test_a_year_without_its_notice_counts_the_statutory_holidays(world):
    """《全国年节及纪念日放假办法》 (国务院令第798号) fixes the holidays a year ahead, and 第六条 makes up one that
    falls on a weekend on a working day; the 调休 notice only adds around them. 2027's notice is not written in the
    code, so 元旦 (a Friday), 春节 (除夕 5 February, 初一–初三 6–8 February, the weekend's two made up on 9–10
    February) and 国庆 (1–3 October, made up on 4–5 October) are holidays until a bureau enters the notice."""
    from evalhub.core.calendar import add_working_days, is_provisional, is_workday, working_days_between

    assert is_provisional(2027) and not is_provisional(2026)
    assert not is_workday(world.bz, date(2027, 1, 1))
    assert [is_workday(world.bz, date(2027, 2, d)) for d in range(4, 12)] == [True] + [False] * 6 + [True]
    assert [is_workday(world.bz, date(2027, 10, d)) for d in (1, 4, 5, 6)] == [False, False, False, True]
    # A challenge period over the new year: from 30 Dec 2026, seven working days skip 元旦 and the weekend.
    assert add_working_days(world.bz, date(2026, 12, 30), 7) == date(2027, 1, 11)
    assert working_days_between(world.bz, date(2027, 2, 1), date(2027, 2, 12)) == 5  # nine weekdays less 5, 8–10 Feb

    # The region enters the notice's make-up day; its prefectures and counties count it.
    db.session.add(CalendarDay(bureau_id=world.region.id, day=date(2027, 2, 20), is_workday=True, note="春节调休"))
    db.session.flush()
    assert is_workday(world.lt, date(2027, 2, 20))


def test_the_calendar_page_lists_next_years_statutory_holidays_and_says_they_lack_the_notice(world, login):
    with simulated_clock(datetime(2026, 12, 7, 2, 0)):
        page = text(login(world.bz_admin).get("/credit/calendar"))
    assert 'data-testid="calendar-provisional"' in page and "2027 年的国务院办公厅放假安排尚未录入" in page
    assert 'data-testid="day-2027-02-05"' in page and "农历除夕（法定节假日" in page
    assert C.ensure_national_calendar(2027) == 0  # the page copied the year once; a second call adds nothing
    # once the region enters the notice's make-up working days, the page no longer warns
    db.session.add(CalendarDay(bureau_id=world.region.id, day=date(2027, 2, 20), is_workday=True, note="春节调休"))
    db.session.commit()
    with simulated_clock(datetime(2026, 12, 7, 2, 0)):
        assert 'data-testid="calendar-provisional"' not in text(login(world.bz_admin).get("/credit/calendar"))


def test_a_year_with_its_notice_shows_no_warning(world, login):
    with simulated_clock(datetime(2025, 12, 1, 2, 0)):
        page = text(login(world.bz_admin).get("/credit/calendar"))
    assert 'data-testid="calendar-provisional"' not in page


# --- results: a rectification deadline the overdue rules can reach ---------------------------------------------

def test_a_finding_deadline_past_the_longest_default_is_refused_on_entry_and_on_verification(world, auth, client):
    from datetime import timedelta

    from evalhub.core.timeutil import beijing_today
    from evalhub.procurement.models import EngagementState
    from evalhub.results import services as S
    from evalhub.results.models import Verification

    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    latest = beijing_today() + timedelta(days=365)
    with pytest.raises(ValidationFailed) as far:
        S.add_finding(e, world.firm_user, S.FindingInput(text="预算编制不细化", category="决策", deadline=date(9999, 12, 31)))
    assert far.value.fields == {"deadline": f"整改期限不能晚于 {latest.isoformat()}（自今天起最长 365 天）"}
    S.add_finding(e, world.firm_user, S.FindingInput(text="预算编制不细化", category="决策", deadline=latest))

    response = client.post(f"/api/v1/results/engagements/{e.id}/findings", headers=auth(world.firm_user.username),
                           json={"text": "绩效目标不细化", "category": "决策", "deadline": "9999-12-31"})
    assert response.status_code == 422 and "deadline" in response.json["error"]["fields"]

    [finding] = S.confirm_findings(e, world.bz_staff)
    finding.status = S.FindingStatus.SUBMITTED  # the unit's evidence is in (the walk is in test_results_services)
    with pytest.raises(ValidationFailed) as again:
        S.verify(finding, world.bz_staff, Verification.PARTIAL, "佐证不全", new_deadline=date(9999, 12, 31))
    assert "新的整改期限不能晚于" in again.value.fields["deadline"]


# --- review: an invitation answered after its deadline -------------------------------------------------------

def test_an_expert_cannot_answer_an_invitation_after_its_deadline_even_before_the_hourly_job(world):
    from datetime import timedelta

    from evalhub.core.errors import Conflict
    from evalhub.review import services as R
    from evalhub.review.models import InvitationStatus
    from tests.test_review_services import _experts, _report_submitted

    set_setting(world.bz, "review.report_panel_size", 3, world.bz_admin)
    _experts(world, 6)
    panel = factories.witnessed(R.form_panel(_report_submitted(world), world.bz_staff))
    invitation, other = panel.invitations[0], panel.invitations[1]
    with simulated_clock(other.respond_by - timedelta(minutes=1)):
        R.respond(other, factories.expert_user(other.expert_id), accept=True, declaration_signed=True)
    assert other.status == InvitationStatus.ACCEPTED
    member = factories.expert_user(invitation.expert_id)
    with simulated_clock(invitation.respond_by + timedelta(minutes=1)):
        with pytest.raises(Conflict) as late:
            R.respond(invitation, member, accept=True, declaration_signed=True)
        assert "答复期限" in str(late.value) and invitation.status == InvitationStatus.INVITED
        assert R.expire_invitations() >= 1  # the job then gives the seat to a replacement
    assert invitation.status == InvitationStatus.EXPIRED and other.status == InvitationStatus.ACCEPTED


# --- registry: a member who left a party firm within the window still avoids it --------------------------------

def test_an_expert_who_left_the_firm_within_three_years_still_avoids_it_and_not_after(world):
    """87号令 第六十二条: 参加采购活动前三年内与供应商存在劳动关系 — a roster member taken off today still avoids
    the firm; three years and a day later no longer."""
    from datetime import timedelta

    from evalhub.registry import services as registry
    from evalhub.registry.services import expert_avoidance_reasons

    number = factories.id_number()
    member = registry.add_staff(world.firm, registry.StaffInput(name="钱前员工", id_number=number, role="评价人员",
                                                                years_experience=6), world.firm_user)
    expert = factories.expert(world.bz, name="钱前员工", id_number=number, employer="新疆财经大学")
    assert expert_avoidance_reasons(expert, firm_ids=[world.firm.id]) == [f"为{world.firm.name}在册从业人员"]

    registry.deactivate_staff(member, world.firm_user, "调离本机构")
    left = member.left_on
    assert left is not None
    assert expert_avoidance_reasons(expert, firm_ids=[world.firm.id]) == [
        f"曾为{world.firm.name}从业人员（{left:%Y-%m-%d} 离岗，未满 3 年）"]
    assert expert_avoidance_reasons(expert, firm_ids=[world.firm.id], on=left.replace(year=left.year + 3)) != []
    assert expert_avoidance_reasons(expert, firm_ids=[world.firm.id],
                                    on=left.replace(year=left.year + 3) + timedelta(days=1)) == []
    assert expert_avoidance_reasons(expert, firm_ids=[world.other_firm.id]) == []


def test_the_migration_dates_the_members_already_off_their_rosters_from_the_audit_log(world):
    from evalhub.registry import services as registry
    from tests.migration_files import load

    removed = registry.add_staff(world.firm, registry.StaffInput(name="孙离岗", id_number=factories.id_number(),
                                                                 role="评价人员", years_experience=3), world.firm_user)
    with simulated_clock(datetime(2025, 3, 31, 17, 0)):  # 2025-04-01 01:00 Beijing
        registry.deactivate_staff(removed, world.firm_user, "离职")
    unrecorded = registry.add_staff(world.firm, registry.StaffInput(name="李不详", id_number=factories.id_number(),
                                                                    role="评价人员", years_experience=3), world.firm_user)
    unrecorded.active = False  # taken off before the audit log recorded removals
    removed.left_on = None
    db.session.commit()  # as a migration finds them: committed, their audit events with them
    load("b8e2f4a6c0d1_firm_staff_left_on.py").backfill(db.session.connection(), today=date(2026, 12, 7))
    db.session.expire_all()
    assert removed.left_on == date(2025, 4, 1) and unrecorded.left_on == date(2026, 12, 7)
