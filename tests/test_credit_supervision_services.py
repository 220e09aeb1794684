"""Credit rating (each component and deduction, cut-offs, not rated, watch list, lifecycle with the
working-day calendar, the effect on eligibility) and supervision (complaints, random campaigns, cases)."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import draws
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.settings import set_setting
from evalhub.credit import services as C
from evalhub.credit.models import CreditGrade, CreditRating, RatingStatus
from evalhub.extensions import db
from evalhub.procurement import eligibility, workflow
from evalhub.procurement.models import EngagementState as S, ProcurementMethod as M
from evalhub.registry.models import FirmStatus
from evalhub.supervision import services as V
from evalhub.supervision.models import CampaignStatus, InspectionStatus, Severity, Trigger
from tests import factories
from tests.test_review_services import _accepted, _experts, _panel, _review


def _completed(world, **kw):
    """An engagement of 巴州 for 2025, contracted to world.firm and accepted (no reviews recorded)."""
    e = factories.contracted(world, **kw)
    e.state = S.ACCEPTED
    db.session.flush()
    return e


def _component(rating, code):
    return next(c for c in rating.components if c["code"] == code)


def _rate(world, year=2025):
    return {r.firm_id: r for r in C.compute(world.bz, year, world.bz_admin)}


# --- components ------------------------------------------------------------------------------------

def test_a_firm_without_a_completed_engagement_is_not_rated(world):
    factories.contracted(world)  # contracted, not completed
    rating = _rate(world)[world.firm.id]
    assert not rating.rated and rating.grade is None and rating.total is None


def test_a_clean_year_with_no_records_scores_the_documented_defaults(world):
    _completed(world)
    rating = _rate(world)[world.firm.id]
    assert [c["code"] for c in rating.components] == ["quality", "performance", "feedback", "supervision", "external"]
    assert Decimal(_component(rating, "quality")["points"]) == Decimal("20.00")      # no review records: half
    assert Decimal(_component(rating, "performance")["points"]) == Decimal("15.00")
    assert Decimal(_component(rating, "feedback")["points"]) == Decimal("16.00")     # no commissioner rating: 80%
    assert Decimal(_component(rating, "supervision")["points"]) == Decimal("15.00")
    assert Decimal(_component(rating, "external")["points"]) == Decimal("10.00")
    assert rating.total == Decimal("76.00") and rating.grade == CreditGrade.C


def test_practice_quality_uses_first_round_scores_and_first_time_passes(world):
    e = _accepted(world)  # first-round panel passed with 95
    rating = _rate(world)[e.firm_id]
    quality = _component(rating, "quality")
    assert Decimal(quality["points"]) == Decimal("38.50")  # 40 × .75 × .95 + 40 × .25 × 1
    assert quality["records"] and "第 1 轮" in quality["records"][0]["label"]


def test_rectification_rounds_cost_contract_points(world):
    e, panel = _panel(world)
    for invitation in panel.invitations:
        _review(invitation, world, [15] * 5)
    from evalhub.review import services as R

    R.send_letter(panel, world.bz_staff, panel.letter)
    from tests.test_review_services import CHAPTERS, INDICATORS, _docx
    from evalhub.review.models import SubmissionKind

    R.submit(e, SubmissionKind.REPORT, "整改.docx", _docx(CHAPTERS), world.firm_user, indicators=INDICATORS,
             concluded_total="92", concluded_grade="优")
    second = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    from tests.test_review_services import _accept_all

    _accept_all(second, world)
    for invitation in second.invitations:
        if invitation.review:
            _review(invitation, world, [19] * 5)
    late = _rate(world)[e.firm_id]
    assert Decimal(_component(late, "performance")["points"]) == Decimal("4.00")  # submitted after the 2025 dues: 0 + (6 − 2)
    e.contract.plan_due = e.contract.report_due = date(2099, 1, 1)
    rating = _rate(world)[e.firm_id]
    assert Decimal(_component(rating, "performance")["points"]) == Decimal("13.00")  # 9 on time + (6 − 2 for the extra round)
    assert Decimal(_component(rating, "quality")["points"]) == Decimal("22.50")      # 40 × .75 × .75, failed first time


def test_commissioner_ratings_and_substantiated_complaints(world):
    e = _accepted(world)
    from evalhub.review import services as R
    from evalhub.review.models import RubricKind

    rubric = R.current_rubric(world.bz, RubricKind.COMMISSIONER)
    R.rate_firm(e, world.bz_staff, {i.id: i.max_points / 2 for i in rubric.items}, "一般")
    complaint = V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name, text="评价报告存在大量套话，现场工作未按方案开展。",
                                 engagement_reference=e.reference, complainant_name=None, complainant_contact=None, address="1.1.1.1")
    complaint.substantiated = True
    feedback = _component(_rate(world)[e.firm_id], "feedback")
    assert Decimal(feedback["points"]) == Decimal("8.00")  # 20 × 50% − 2 for the complaint


@pytest.mark.parametrize("severity, points", [(Severity.MINOR, "14.00"), (Severity.GENERAL, "12.00"),
                                              (Severity.SERIOUS, "7.00"), (Severity.INTENTIONAL, "0.00")])
def test_each_inspection_deduction_alone(world, severity, points):
    e = _completed(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.LOW_SCORE, detail="评审得分偏低", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=severity, description="底稿缺少抽样记录")
    rating = _rate(world)[e.firm_id]
    assert _component(rating, "supervision")["points"] == points
    assert rating.watch_list == (severity == Severity.INTENTIONAL)


def test_an_intentional_violation_puts_the_firm_on_watch_and_suspends_it(world):
    e = _completed(world)
    case = V.open_case(world.bz, world.bz_staff, trigger="投诉举报" if False else Trigger.OTHER, detail="线索", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description="伪造问卷数据")
    rating = _rate(world)[e.firm_id]
    assert rating.watch_list and "伪造" in rating.watch_reason
    assert world.firm.status == FirmStatus.SUSPENDED


def test_external_records_need_a_source_document(world):
    e = _completed(world)
    with pytest.raises(ValidationFailed) as caught:
        C.add_external_record(world.bz, world.firm, world.bz_admin, kind="行政处罚", occurred_on=date(2025, 6, 1),
                              description="税务行政处罚", deduction="4", filename="", data=b"")
    assert "file" in caught.value.fields
    C.add_external_record(world.bz, world.firm, world.bz_admin, kind="行政处罚", occurred_on=date(2025, 6, 1),
                          description="税务行政处罚", deduction="4", filename="决定书.txt", data="处罚决定书".encode())
    assert _component(_rate(world)[e.firm_id], "external")["points"] == "6.00"


def test_a_bureau_records_and_opens_cases_only_on_what_it_can_see_on_every_path(world):
    """The pages offer the bureau's own firms and engagements; the services hold the same rule for any caller: an
    external record on another prefecture's library firm, a case on another prefecture's engagement or firm, or a case
    naming a firm that did not do the engagement is refused (the services took any firm or engagement before)."""
    from evalhub.core.errors import NotFound

    kz_firm = factories.firm(world.kz, name="克州某咨询有限公司", uscc=factories.uscc())
    kz_engagement = factories.engagement(world, bureau_key="kz", unit="克州农业农村局")
    db.session.commit()
    with pytest.raises(NotFound):
        C.add_external_record(world.bz, kz_firm, world.bz_admin, kind="行政处罚", occurred_on=date(2025, 6, 1),
                              description="税务行政处罚", deduction="4", filename="决定书.txt", data="处罚决定书".encode())
    with pytest.raises(NotFound):
        V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索", engagement=kz_engagement)
    with pytest.raises(NotFound):
        V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索", firm=kz_firm)
    e = _completed(world)
    other = factories.firm(world.bz, name="巴州另一咨询有限公司", uscc=factories.uscc())
    db.session.commit()  # what the refusals below roll back is theirs only
    with pytest.raises(ValidationFailed) as caught:
        V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索", engagement=e, firm=other)
    assert "承担机构" in caught.value.fields["firm_id"] and "投标人" in caught.value.fields["firm_id"]
    db.session.rollback()
    assert V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索", engagement=e).firm_id == e.firm_id


@pytest.mark.parametrize("total, grade", [("90", CreditGrade.A), ("89.99", CreditGrade.B), ("80", CreditGrade.B),
                                          ("79.99", CreditGrade.C), ("60", CreditGrade.C), ("59.99", CreditGrade.D)])
def test_grade_cut_offs_at_their_boundaries(world, total, grade):
    assert C.grade_for(C.grade_cuts(world.bz), Decimal(total)) == grade


def test_cut_offs_and_weights_are_bureau_settings(world):
    set_setting(world.bz, "credit.cut_c", 80, world.bz_admin)
    assert C.grade_for(C.grade_cuts(world.bz), Decimal("79")) == CreditGrade.D


# --- lifecycle -------------------------------------------------------------------------------------

def test_working_days_skip_weekends_and_holidays_and_count_make_up_days(world):
    C.ensure_national_calendar()
    # Thursday 2025-09-25 + 5 working days: Fri 26, Sun 28 (make-up day), Mon 29, Tue 30, then 1–8 Oct holidays,
    # Thu 9 → the deadline
    assert C.add_working_days(world.bz, date(2025, 9, 25), 5) == date(2025, 10, 9)
    assert not C.is_workday(world.bz, date(2025, 10, 3)) and C.is_workday(world.bz, date(2025, 9, 28))
    C.set_calendar_day(world.bz, date(2025, 10, 9), False, "地方节假日", world.bz_admin)
    assert C.add_working_days(world.bz, date(2025, 9, 25), 5) == date(2025, 10, 10)
    assert C.add_working_days(world.lt, date(2025, 9, 25), 5) == date(2025, 10, 10)   # counties inherit
    assert C.add_working_days(world.kz, date(2025, 9, 25), 5) == date(2025, 10, 9)
    with pytest.raises(PermissionDenied):
        C.set_calendar_day(world.bz, date(2025, 10, 9), True, "x", world.bz_staff)


def test_publish_object_answer_and_finalise(world):
    C.ensure_national_calendar()
    _completed(world)
    _rate(world)
    with pytest.raises(PermissionDenied):
        C.publish(world.bz, 2025, world.bz_staff)
    assert C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 9, 25)) == 1
    rating = db.session.execute(sa.select(CreditRating)).scalar_one()
    assert rating.status == RatingStatus.PUBLISHED and rating.objection_deadline == date(2025, 10, 9)
    with pytest.raises(PermissionDenied):
        C.object_to(rating, world.other_firm_user, "这不是我们的评价结果，但我们有意见。", today=date(2025, 9, 26))
    with pytest.raises(Conflict):
        C.object_to(rating, world.firm_user, "逾期提出的异议，理由如下……", today=date(2025, 10, 10))
    objection = C.object_to(rating, world.firm_user, "合同履行得分有误：方案实际按期提交。", [("证明.txt", "回执".encode())],
                            today=date(2025, 9, 26))
    # 10 working days from Fri 26 Sep: 28 Sep (make-up), 29, 30, [1–8 Oct holiday], 9, 10, 11 (make-up), 13, 14, 15, 16
    assert objection.answer_due == date(2025, 10, 16) and len(objection.evidence_file_ids) == 1
    with pytest.raises(Conflict):
        C.finalise(world.bz, 2025, world.bz_admin, today=date(2025, 10, 9))    # still in the objection period
    with pytest.raises(Conflict):
        C.finalise(world.bz, 2025, world.bz_admin, today=date(2025, 10, 10))   # an objection unanswered
    C.answer(objection, world.bz_admin, "异议成立", "经核实，方案回执日期为 4 月 10 日，予以更正。", recompute=True)
    assert rating.version == 2
    assert C.finalise(world.bz, 2025, world.bz_admin, today=date(2025, 10, 10)) == 1
    assert rating.status == RatingStatus.FINAL
    C.compute(world.bz, 2025, world.bz_admin)
    assert rating.version == 2  # final ratings are history


# --- the effect on eligibility ---------------------------------------------------------------------

def _final(world, firm, grade: CreditGrade, year=2024):
    rating = CreditRating(bureau_id=world.bz.id, firm_id=firm.id, year=year, status=RatingStatus.FINAL, rated=True,
                          total=Decimal("50"), grade=grade, components=[])
    db.session.add(rating)
    db.session.flush()


def test_last_years_final_grade_governs_eligibility(world):
    e = factories.engagement(world, year=2025)
    d_firm, c_firm, a_firm = factories.firm(world.bz), factories.firm(world.bz), factories.firm(world.bz)
    _final(world, d_firm, CreditGrade.D)
    _final(world, c_firm, CreditGrade.C)
    _final(world, a_firm, CreditGrade.A)
    assert "D 级" in eligibility.exclusion_reasons(d_firm, e, M.OPEN_TENDER)[0]
    assert eligibility.exclusion_reasons(c_firm, e, M.OPEN_TENDER) == []
    assert "C 级" in eligibility.exclusion_reasons(c_firm, e, M.COMPETITIVE_CONSULTATION)[0]
    assert "C 级" in eligibility.exclusion_reasons(c_firm, e, M.RANDOM_DRAW)[0]
    assert eligibility.exclusion_reasons(a_firm, e, M.RANDOM_DRAW) == []
    # only FINAL ratings count, and only last year's
    draft = factories.firm(world.bz)
    db.session.add(CreditRating(bureau_id=world.bz.id, firm_id=draft.id, year=2024, status=RatingStatus.PUBLISHED,
                                rated=True, total=Decimal("10"), grade=CreditGrade.D, components=[]))
    _final(world, a_firm, CreditGrade.D, year=2023)
    assert eligibility.exclusion_reasons(draft, e, M.OPEN_TENDER) == []
    assert eligibility.exclusion_reasons(a_firm, e, M.OPEN_TENDER) == []


# --- supervision -----------------------------------------------------------------------------------

def test_complaints_are_validated_and_rate_limited(world):
    with pytest.raises(ValidationFailed) as caught:
        V.file_complaint(bureau_id="", firm_name="", text="太短", engagement_reference=None, complainant_name=None,
                         complainant_contact=None, address="2.2.2.2")
    assert {"bureau_id", "firm_name", "text"} <= set(caught.value.fields)
    set_setting(world.bz, "supervision.complaints_per_hour", 2, world.bz_admin)
    for _ in range(2):
        complaint = V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name, text="评价人员未到现场即出具报告，数据照抄单位自评。",
                                     engagement_reference=None, complainant_name="匿名", complainant_contact="13800000000", address="3.3.3.3")
        assert complaint.reference.startswith("TS") and complaint.firm_id == world.firm.id
        assert "3.3.3.3" not in complaint.client_digest
    with pytest.raises(V.RateLimited):
        V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name, text="再次投诉：评价人员未到现场即出具报告，请予以核查处理。",
                         engagement_reference=None, complainant_name=None, complainant_contact=None, address="3.3.3.3")
    V.file_complaint(bureau_id=world.bz.id, firm_name="某机构", text="另一位投诉人的投诉内容：报告数据与实际不符，需要核实处理。",
                     engagement_reference=None, complainant_name=None, complainant_contact=None, address="4.4.4.4")


def _completed_year(world, n):
    return [_completed(world, unit=u) for u in (["巴州统计局", "巴州民政局"] * n)[:n]]


def test_a_random_campaign_respects_the_ratio_draws_twice_and_verifies(world):
    from evalhub.core.settings import set_setting as ss

    ss(world.bz, "firm.max_key_evaluations", 50, world.bz_admin)
    ss(world.bz, "firm.rotation_years", 0, world.bz_admin)
    engagements = _completed_year(world, 12)
    _experts(world, 4)
    with pytest.raises(ValidationFailed):
        factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_admin, ratio=5))   # below the 10% floor
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=20))
    assert campaign.population_size == 12 and len(campaign.inspections) == 3    # ceil(12 × 20%)
    assert len({i.engagement_id for i in campaign.inspections}) == 3
    assert draws.verify(campaign.engagement_draw).ok
    people = [(p.user_id, p.expert_id) for i in campaign.inspections for p in i.inspectors]
    experts = [x for _, x in people if x]
    assert len(experts) == 3 and len(set(experts)) == 3   # nobody twice in one campaign
    for inspection in campaign.inspections:
        for inspector in inspection.inspectors:
            assert draws.verify(db.session.get(draws.Draw, inspector.draw_id)).ok
    second = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=20))
    assert not {i.engagement_id for i in second.inspections} & {i.engagement_id for i in campaign.inspections}


def test_inspectors_avoid_ties_with_the_firm(world):
    from evalhub.registry.services import add_expert_tie

    e = _completed(world)
    pool = _experts(world, 3)
    tied = pool[0][0]
    add_expert_tie(tied, kind="任职", counterpart_type="第三方机构", counterpart_name=None, firm_id=world.firm.id,
                   bureau_id=None, budget_unit_id=None, start_date=date(2023, 1, 1), end_date=None, note=None,
                   actor=world.bz_staff)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    expert_draw = db.session.get(draws.Draw, next(p.draw_id for p in campaign.inspections[0].inspectors if p.expert_id))
    assert tied.id in {x["id"] for x in expert_draw.exclusions}


def test_campaign_publication_order(world):
    e = _completed(world)
    _experts(world, 2)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    with pytest.raises(Conflict):
        V.publish_campaign_results(campaign, world.bz_staff)
    V.publish_campaign_list(campaign, world.bz_staff)
    with pytest.raises(Conflict):
        V.publish_campaign_results(campaign, world.bz_staff)   # an inspection is still open
    inspection = campaign.inspections[0]
    V.record_checklist(inspection, factories.recorder(inspection), {k: (True, "") for k, _ in V.CHECKLIST})
    V.close(inspection, factories.recorder(inspection), "底稿完整，评分有据，未发现问题。")
    V.publish_campaign_results(campaign, world.bz_staff)
    assert campaign.status == CampaignStatus.RESULTS_PUBLISHED


def test_a_targeted_case_from_a_complaint_runs_to_closing(world):
    e = _completed(world)
    complaint = V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name, text="评价报告照抄被评价单位自评报告，问题建议空泛。",
                                 engagement_reference=e.reference, complainant_name=None, complainant_contact=None,
                                 address="5.5.5.5")
    with pytest.raises(ValidationFailed):
        V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="投诉", engagement=e)
    with pytest.raises(PermissionDenied):
        V.open_case(world.bz, world.kz_admin, trigger=Trigger.COMPLAINT, detail="投诉", complaint=complaint)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="投诉线索", complaint=complaint, engagement=e)
    V.record_checklist(case, factories.recorder(case), {"working_papers": (False, "缺少访谈记录"), "evidence": (True, ""),
                                              "sampling": (True, ""), "independence": (True, ""),
                                              "report_original": (True, "")})
    V.add_finding(case, factories.recorder(case), severity="一般", description="工作底稿缺少访谈记录", measures=["责令整改"])
    assert case.status == InspectionStatus.AWAITING_RESPONSE
    with pytest.raises(Conflict):
        V.close(case, factories.recorder(case), "等待机构整改回复后再办结")
    with pytest.raises(PermissionDenied):
        V.respond(case, world.other_firm_user, "不是我们的检查")
    V.respond(case, world.firm_user, "已补充访谈记录 12 份，并完善底稿复核制度。")
    V.close(case, factories.recorder(case), "机构已完成整改，问题属实，按一般问题扣分。")
    assert complaint.substantiated and case.findings[0].rectified


def test_the_screening_entry_point_opens_a_system_case(world):
    e = _completed(world)
    case = V.flag_for_inspection(e, "与本机构其他报告重复的句子占 71%")
    assert case.trigger == Trigger.SCREENING_FLAG and case.opened_by_id is None and case.firm_id == world.firm.id


def test_compute_runs_from_the_cli_and_as_a_background_job(app, world):
    from evalhub.core import jobs
    from evalhub.core.enums import JobStatus

    _completed(world)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["evalhub", "credit", "compute", "--bureau", "652800", "--year", "2025"])
    assert result.exit_code == 0 and "1 家评级" in result.output, result.output
    assert app.test_cli_runner().invoke(args=["evalhub", "credit", "compute", "--bureau", "999999", "--year", "2025"]).exit_code == 2
    job = jobs.submit("credit.compute", "计算信用评价", {"bureau_id": world.bz.id, "year": 2025}, actor=world.bz_admin,
                      bureau_id=world.bz.id)
    assert job.status == JobStatus.SUCCEEDED and "评价 1 家" in job.message
    assert db.session.execute(sa.select(CreditRating)).scalar_one().version == 2
