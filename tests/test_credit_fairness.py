"""Issue 14, credit ratings a firm can check: an upheld objection corrects the records it contests (and
recomputes that firm only, from the corrected facts); a recompute under publicity re-publishes only the
ratings it changed and tells those firms; an intentional violation suspends the firm from the CLI too,
through the library's owner bureau; a final grade and the watch list reach across the region."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import AuditEvent, BudgetUnit, Notification
from evalhub.core.settings import set_setting
from evalhub.credit import services as C
from evalhub.credit.models import CreditCorrection, CreditGrade, CreditRating, ObjectionDecision, RatingStatus
from evalhub.extensions import db
from evalhub.procurement import eligibility
from evalhub.procurement.models import EngagementState as S, ProcurementMethod as M
from evalhub.registry.models import FirmStatus, FirmStatusChange
from evalhub.review.models import Submission, SubmissionKind
from evalhub.supervision import services as V
from evalhub.supervision.models import Severity, Trigger
from tests import factories

MIGRATED = datetime(2025, 6, 1, 3, 0)  # the date the migration wrote on every paper-era submission
MAILED = date(2025, 4, 10)             # the real date, on the post office's receipt


def _late_plan(world, *, unit="巴州统计局", firm=None, bureau_key="bz"):
    """An accepted engagement whose work plan the system shows as submitted on the migration date, after the
    contract's due date (2025-04-10)."""
    e = factories.contracted(world, firm=firm, unit=unit, bureau_key=bureau_key)
    e.contract.plan_due = date(2025, 4, 10)
    submission = factories.submit_plan(e)
    submission.submitted_at = MIGRATED
    e.state = S.ACCEPTED
    db.session.flush()
    return e, submission


def _krl_unit(world) -> str:
    """A budget unit of 库尔勒市 (a sibling of 轮台县 under 巴州)."""
    if "库尔勒市教育局" not in world.units:
        world.units["库尔勒市教育局"] = unit = BudgetUnit(bureau_id=world.krl.id, name="库尔勒市教育局")
        db.session.add(unit)
        db.session.flush()
    return "库尔勒市教育局"


def _component(rating, code):
    return next(c for c in rating.components if c["code"] == code)


def _published(world, today=date(2025, 9, 25)):
    C.ensure_national_calendar()
    ratings = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}
    C.publish(world.bz, 2025, world.bz_admin, today=today)
    return ratings


def _inbox(user, title_part: str) -> list[Notification]:
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id,
                                                            Notification.title.contains(title_part))).scalars().all()


# --- an upheld objection corrects what it contests -------------------------------------------------

def test_the_screenshot_case_upheld_corrects_the_submissions_and_raises_the_score(world):
    _, first = _late_plan(world)
    _, second = _late_plan(world, unit="巴州民政局")
    other_firm, other_user, _ = factories.bidder(world, "另一家巴州评价公司")
    factories.contracted(world, firm=other_firm, unit="轮台县医疗保障局", bureau_key="lt").state = S.ACCEPTED
    ratings = _published(world)
    rating, other = ratings[world.firm.id], ratings[other_firm.id]
    performance = _component(rating, "performance")
    assert "按期提交 0/2" in performance["detail"] and performance["points"] == "6.00"
    refs = [r["ref"] for r in C.contestable(rating)["performance"]]
    assert refs == [f"submission:{first.id}", f"submission:{second.id}"]
    other_version, other_deadline = other.version, other.objection_deadline

    objection = C.object_to(rating, world.firm_user, "两份实施方案于 2025-04-10 邮寄报送，系统显示的是迁移日期。",
                            [("邮寄回执.txt", "EMS 回执 2025-04-10".encode())], component="performance",
                            records=refs, today=date(2025, 9, 26))
    assert objection.component == "performance" and [c["ref"] for c in objection.contested] == refs
    before = rating.total

    # upholding needs the corrected fact for every contested record; rejecting needs a reason
    with pytest.raises(ValidationFailed) as caught:
        C.answer(objection, world.bz_admin, "异议成立", "经核实邮寄回执，予以更正。", corrections={refs[0]: "2025-04-10"})
    assert f"fix-{refs[1]}" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        C.answer(objection, world.bz_admin, "异议成立", "经核实邮寄回执，予以更正。",
                 corrections={refs[0]: "2025-04-10", refs[1]: "2025-07-01"})  # later than the record: not a correction
    assert f"fix-{refs[1]}" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        C.answer(objection, world.bz_admin, "异议不成立", "")
    assert "answer" in caught.value.fields
    assert objection.decision is None and not objection.corrections

    C.answer(objection, world.bz_admin, "异议成立", "经核实邮寄回执，两份方案均按期报送，予以更正。",
             corrections={ref: MAILED.isoformat() for ref in refs}, today=date(2025, 9, 29))
    performance = _component(rating, "performance")
    assert "按期提交 2/2" in performance["detail"] and performance["points"] == "15.00"
    assert any("按异议核实的实际提交日期 2025-04-10" in line for line in performance["detail"])
    assert rating.total == before + Decimal("9.00") and rating.total > before
    assert (objection.total_before, objection.total_after) == (before, rating.total)
    # one correction per record, with the evidence and who decided; the submissions themselves untouched
    corrections = db.session.execute(sa.select(CreditCorrection).order_by(CreditCorrection.id)).scalars().all()
    assert [(c.record_id, c.corrected_on, c.decided_by_id) for c in corrections] == [
        (first.id, MAILED, world.bz_admin.id), (second.id, MAILED, world.bz_admin.id)]
    assert all(c.evidence_file_id == objection.evidence_file_ids[0] for c in corrections)
    assert db.session.get(Submission, first.id).submitted_at == MIGRATED
    actions = db.session.execute(sa.select(AuditEvent.action)).scalars().all()
    assert actions.count("credit.corrected") == 2 and "credit.objection_answered" in actions
    # that firm only: the other firm's published rating is untouched
    assert (other.version, other.objection_deadline) == (other_version, other_deadline)
    # the firm reads the before and after in the answer, and its changed rating is published again
    answer = _inbox(world.firm_user, "异议答复")[0]
    assert f"{before} 分" in answer.body and f"{rating.total} 分" in answer.body
    assert rating.objection_deadline > date(2025, 10, 9) and _inbox(world.firm_user, "重新公示")
    # a recompute of the whole year keeps reading the correction
    C.compute(world.bz, 2025, world.bz_admin, today=date(2025, 9, 29))
    assert "按期提交 2/2" in _component(rating, "performance")["detail"]


def test_an_objection_names_records_of_its_component_only(world):
    _, submission = _late_plan(world)
    rating = _published(world)[world.firm.id]
    with pytest.raises(ValidationFailed) as caught:
        C.object_to(rating, world.firm_user, "监督检查扣分有误，请核实相关记录。", component="supervision",
                    records=[f"submission:{submission.id}"], today=date(2025, 9, 26))
    assert "records" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        C.object_to(rating, world.firm_user, "评分项不存在的异议内容如下。", component="nonsense", today=date(2025, 9, 26))
    assert "component" in caught.value.fields


def test_an_upheld_objection_without_evidence_asks_for_it(world):
    _, submission = _late_plan(world)
    rating = _published(world)[world.firm.id]
    ref = f"submission:{submission.id}"
    objection = C.object_to(rating, world.firm_user, "实施方案按期邮寄报送，系统日期有误。", component="performance",
                            records=[ref], today=date(2025, 9, 26))
    with pytest.raises(ValidationFailed) as caught:
        C.answer(objection, world.bz_admin, "异议成立", "经核实邮寄回执，予以更正。", corrections={ref: "2025-04-10"})
    assert "evidence" in caught.value.fields
    C.answer(objection, world.bz_admin, "异议成立", "经核实邮寄回执，予以更正。", corrections={ref: "2025-04-10"},
             evidence=[("回执扫描.txt", "邮政回执".encode())], today=date(2025, 9, 29))
    assert objection.corrections[0].evidence_file.original_name == "回执扫描.txt"
    assert objection.total_after > objection.total_before


def test_a_finding_shown_wrong_is_left_out(world):
    e = factories.contracted(world)
    e.state = S.ACCEPTED
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.SERIOUS, description="底稿缺少抽样记录")
    rating = _published(world)[world.firm.id]
    assert _component(rating, "supervision")["points"] == "7.00"
    ref = C.contestable(rating)["supervision"][0]["ref"]
    objection = C.object_to(rating, world.firm_user, "抽样记录已在底稿第 3 册，检查时未调阅。", [("底稿目录.txt", b"3")],
                            component="supervision", records=[ref], today=date(2025, 9, 26))
    C.answer(objection, world.bz_admin, "异议成立", "经复核底稿第 3 册，抽样记录完整，该问题不计入。",
             today=date(2025, 9, 29))
    supervision = _component(rating, "supervision")
    assert supervision["points"] == "15.00" and any("经异议核实不计入" in line for line in supervision["detail"])


# --- recomputation during publicity is not silent --------------------------------------------------

def test_a_recompute_during_publicity_republishes_and_tells_only_the_changed_firms(world):
    factories.contracted(world).state = S.ACCEPTED
    quiet_firm, quiet_user, _ = factories.bidder(world, "安静的评价公司")
    factories.contracted(world, firm=quiet_firm, unit="巴州民政局").state = S.ACCEPTED
    ratings = _published(world)
    changed, quiet = ratings[world.firm.id], ratings[quiet_firm.id]
    assert changed.objection_deadline == quiet.objection_deadline == date(2025, 10, 9)
    C.add_external_record(world.bz, world.firm, world.bz_admin, kind="行政处罚", occurred_on=date(2025, 6, 1),
                          description="税务行政处罚", deduction="4", filename="决定书.txt", data="处罚决定书".encode())
    set_setting(world.bz, "credit.republish_days", 3, world.bz_admin)
    C.compute(world.bz, 2025, world.bz_admin, today=date(2025, 10, 9))
    assert changed.total == Decimal("72.00") and changed.status == RatingStatus.PUBLISHED
    assert changed.objection_deadline == C.add_working_days(world.bz, date(2025, 10, 9), 3) == date(2025, 10, 13)
    assert quiet.objection_deadline == date(2025, 10, 9)           # unchanged: keeps its window
    told = _inbox(world.firm_user, "重新公示")
    assert len(told) == 1 and "76.00" in told[0].body and "72.00" in told[0].body
    assert not _inbox(quiet_user, "重新公示")
    # the new window is the rule: finalising waits for it
    with pytest.raises(Conflict):
        C.finalise(world.bz, 2025, world.bz_admin, today=date(2025, 10, 10))


def test_until_final_the_page_says_the_last_final_grade_governs(world, login):
    factories.contracted(world).state = S.ACCEPTED
    db.session.add(CreditRating(bureau_id=world.bz.id, firm_id=world.firm.id, year=2024, status=RatingStatus.FINAL,
                                rated=True, total=Decimal("70"), grade=CreditGrade.C, components=[]))
    rating = _published(world)[world.firm.id]
    db.session.commit()
    page = login(world.firm_user).get(f"/credit/ratings/{rating.id}").get_data(as_text=True)
    assert "确定之前，该机构参与评价业务的资格仍按2024 年度最终评价（C 级）执行" in page


# --- the watch list and intentional violations are enforced ----------------------------------------

def _intentional(world, *, bureau_key="bz", unit="巴州统计局"):
    e = factories.contracted(world, bureau_key=bureau_key, unit=unit)
    e.state = S.ACCEPTED
    bureau, staff = getattr(world, bureau_key), getattr(world, f"{bureau_key}_staff")
    case = V.open_case(bureau, staff, trigger=Trigger.OTHER, detail="举报线索", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description="伪造问卷数据")
    return e


def test_cli_compute_suspends_an_intentional_violator_through_the_library_owner(app, world):
    """轮台县 rates a firm of 巴州's library: the CLI (no actor) suspends it, in 巴州's name, once."""
    _intentional(world, bureau_key="lt", unit="轮台县医疗保障局")
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["evalhub", "credit", "compute", "--bureau", "652822", "--year", "2025"])
    assert result.exit_code == 0, result.output
    assert "重点关注" in result.output and world.firm.name in result.output
    db.session.expire_all()
    rating = db.session.execute(sa.select(CreditRating)).scalar_one()
    assert rating.watch_list and rating.grade in (CreditGrade.B, CreditGrade.C)  # the score alone would not bar it
    assert world.firm.status == FirmStatus.SUSPENDED
    change = db.session.get(FirmStatusChange, rating.suspension_id)
    assert change.actor_id is None and "轮台县" in change.reason and "故意违规" in change.reason
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "firm.suspend")).scalar_one()
    assert event.actor_name == "system" and event.bureau_id == world.bz.id   # the library's owner
    assert _inbox(world.firm_user, "机构库资格变更")
    # recomputing does not suspend again (a reinstatement by 巴州 stands)
    world.firm.status = FirmStatus.ADMITTED
    db.session.commit()
    assert app.test_cli_runner().invoke(args=["evalhub", "credit", "compute", "--bureau", "652822",
                                              "--year", "2025"]).exit_code == 0
    db.session.expire_all()
    assert world.firm.status == FirmStatus.ADMITTED
    assert db.session.execute(sa.select(sa.func.count(FirmStatusChange.id)).where(
        FirmStatusChange.to_status == FirmStatus.SUSPENDED)).scalar_one() == 1


def test_the_watch_list_excludes_from_draws_and_awards_across_the_region(world):
    _intentional(world, bureau_key="lt", unit="轮台县医疗保障局")
    C.compute(world.lt, 2025, world.lt_admin)
    # counted once published for objection (a draft is 轮台县's working paper; the suspension kept the firm out)
    C.ensure_national_calendar()
    C.publish(world.lt, 2025, world.lt_admin, today=date(2025, 11, 3))
    world.firm.status = FirmStatus.ADMITTED  # even when reinstated, the watch list still bars it
    sibling = factories.engagement(world, bureau_key="krl", unit=_krl_unit(world), year=2026)
    assessed = eligibility.assess(sibling, M.RANDOM_DRAW)   # the list a library draw draws from
    reasons = assessed.reasons_for(world.firm)
    # a sibling county may not read 轮台县's rating: the bureau and the year, not the finding
    assert "2025 年度被轮台县列入重点关注名单（检查发现故意违规）" in reasons
    assert not any("伪造问卷数据" in r for r in reasons)
    assert any("2025 年度被轮台县列入重点关注名单：伪造问卷数据" in r for r in  # 巴州, above 轮台县, reads it
               eligibility.exclusion_reasons(world.firm, factories.engagement(world, year=2026), M.OPEN_TENDER))


# --- a grade's reach -------------------------------------------------------------------------------

def _final(bureau, firm, grade, year=2024):
    db.session.add(CreditRating(bureau_id=bureau.id, firm_id=firm.id, year=year, status=RatingStatus.FINAL,
                                rated=True, total=Decimal("50"), grade=grade, components=[]))
    db.session.flush()


def test_a_final_d_from_a_county_bars_the_firm_at_its_siblings_and_the_prefecture(world):
    _final(world.lt, world.firm, CreditGrade.D)
    units = {"bz": "巴州统计局", "krl": _krl_unit(world), "lt": "轮台县医疗保障局", "kz": "克州农业农村局"}
    for bureau_key, unit in units.items():
        e = factories.engagement(world, bureau_key=bureau_key, unit=unit)
        reasons = eligibility.exclusion_reasons(world.firm, e, M.OPEN_TENDER)
        assert any("2024 年度信用评价为 D 级" in r and "轮台县评定" in r for r in reasons), (bureau_key, reasons)
    # a C limits the firm to open tender everywhere
    c_firm = factories.firm(world.bz)
    _final(world.krl, c_firm, CreditGrade.C)
    e = factories.engagement(world, bureau_key="lt", unit="轮台县医疗保障局")
    assert eligibility.exclusion_reasons(c_firm, e, M.OPEN_TENDER) == []
    assert "库尔勒市评定" in eligibility.exclusion_reasons(c_firm, e, M.COMPETITIVE_CONSULTATION)[0]


def test_the_reach_is_a_region_setting(world):
    _final(world.lt, world.firm, CreditGrade.D)
    krl = factories.engagement(world, bureau_key="krl", unit=_krl_unit(world))
    kz = factories.engagement(world, bureau_key="kz", unit="克州农业农村局")
    set_setting(world.lt, "credit.grade_reach", "chain", world.lt_admin)   # a county cannot opt out
    assert eligibility.exclusion_reasons(world.firm, krl, M.OPEN_TENDER)
    set_setting(world.region, "credit.grade_reach", "prefecture", world.region_admin)
    assert eligibility.exclusion_reasons(world.firm, krl, M.OPEN_TENDER)      # same prefecture
    assert not [r for r in eligibility.exclusion_reasons(world.firm, kz, M.OPEN_TENDER) if "D 级" in r]
    set_setting(world.region, "credit.grade_reach", "chain", world.region_admin)
    assert not [r for r in eligibility.exclusion_reasons(world.firm, krl, M.OPEN_TENDER) if "D 级" in r]
    # siblings see the effect, not the other county's rating
    rating = db.session.execute(sa.select(CreditRating)).scalar_one()
    from evalhub.core import permissions

    assert not permissions.can(world.krl_admin, "credit.view", rating)


# --- the same flow on the web and the API ----------------------------------------------------------

def _live(world):
    """A late work plan and the firm's rating published today (its objection window open)."""
    _, submission = _late_plan(world)
    C.ensure_national_calendar()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    C.publish(world.bz, 2025, world.bz_admin)
    db.session.commit()
    return rating, f"submission:{submission.id}"


def test_on_the_web_the_firm_names_records_and_the_bureau_corrects_them(world, login):
    from io import BytesIO

    rating, ref = _live(world)
    client = login(world.firm_user)
    page = client.get(f"/credit/ratings/{rating.id}").get_data(as_text=True)
    assert f'value="{ref}"' in page and 'data-testid="in-force"' in page
    response = client.post(f"/credit/ratings/{rating.id}/objections", data={
        "component": "performance", "records": [ref], "text": "实施方案于 2025-04-10 邮寄报送，系统显示的是迁移日期。",
        "evidence": (BytesIO("EMS 回执".encode()), "回执.txt")}, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    db.session.expire_all()
    objection = db.session.execute(sa.select(CreditRating).where(CreditRating.id == rating.id)).scalar_one().objections[0]
    assert objection.component == "performance" and objection.contested[0]["ref"] == ref

    prefix = f"a{objection.id}-"
    url = f"/credit/objections/{objection.id}/answer"
    data = {prefix + "decision": "upheld", prefix + "answer": "经核实邮寄回执，方案按期报送，予以更正。",
            f"{prefix}fix-{ref}": "2025-04-10"}
    client = login(world.bz_admin)
    missing = client.post(url, data={**data, f"{prefix}fix-{ref}": ""})
    assert missing.status_code == 422 and "实际提交日期" in missing.get_data(as_text=True)
    done = client.post(url, data=data, follow_redirects=True)
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and "已重新计算：67.00 分 → 76.00 分" in body
    assert f'data-testid="corrections-{objection.id}"' in body and "经核实 2025-04-10 提交" in body
    correction = db.session.execute(sa.select(CreditCorrection)).scalar_one()
    file_url = f"/credit/corrections/{correction.id}/file"
    assert login(world.firm_user).get(file_url).status_code == 200          # the rated firm reads the evidence
    assert login(world.bz_staff).get(file_url).status_code == 200
    assert login(world.other_firm_user).get(file_url).status_code in (403, 404)  # another firm
    assert login(world.kz_admin).get(file_url).status_code in (403, 404)         # another prefecture
    assert login(world.expert_user).get(file_url).status_code in (403, 404)      # the wrong role
    assert login(world.bz_admin).get("/credit/corrections/999999/file").status_code == 404


def test_over_the_api_the_objection_names_records_and_the_answer_corrects(client, world, auth):
    rating, ref = _live(world)
    detail = client.get(f"/api/v1/ratings/{rating.id}", headers=auth("firm1")).json
    performance = next(c for c in detail["components"] if c["code"] == "performance")
    assert performance["records"][0]["ref"] == ref
    bad = client.post(f"/api/v1/ratings/{rating.id}/objections", headers=auth("firm1"),
                      json={"text": "实施方案按期邮寄报送，系统日期有误。", "component": "external", "records": [ref]})
    assert bad.status_code == 422 and "records" in bad.get_data(as_text=True)
    made = client.post(f"/api/v1/ratings/{rating.id}/objections", headers=auth("firm1"),
                       json={"text": "实施方案按期邮寄报送，系统日期有误。", "component": "performance", "records": [ref]})
    assert made.status_code == 201 and made.json["contested"][0]["ref"] == ref
    objection_id = made.json["id"]
    # the objection carried no file: the bureau's correction needs evidence, which the API takes from the firm
    refused = client.post(f"/api/v1/objections/{objection_id}/answer", headers=auth("bz.admin"),
                          json={"decision": "upheld", "answer": "经核实邮寄回执，予以更正。", "corrections": {ref: "2025-04-10"}})
    assert refused.status_code == 422 and "evidence" in refused.get_data(as_text=True)
    rejected = client.post(f"/api/v1/objections/{objection_id}/answer", headers=auth("kz.admin"),
                           json={"decision": "rejected", "answer": "经核实，提交日期以系统记录为准。"})
    assert rejected.status_code in (403, 404)
    rejected = client.post(f"/api/v1/objections/{objection_id}/answer", headers=auth("bz.admin"),
                           json={"decision": "rejected", "answer": "经核实，提交日期以系统记录为准，维持原评价。"})
    assert rejected.status_code == 200
    answered = rejected.json["objections"][0]
    assert answered["decision"]["value"] == "rejected" and answered["corrections"] == [] and answered["total_after"] is None


def test_the_demo_step_corrects_firm1s_objection_once(world):
    from datetime import timedelta

    from evalhub.core.timeutil import simulated_clock, utcnow
    from evalhub.demo import clock
    from evalhub.demo.credit_fairness import load_corrected_objection

    rating, ref = _live(world)
    said = []
    with simulated_clock(utcnow()):
        load_time = clock.now_local() + timedelta(hours=1)
        assert load_corrected_objection(said.append, load_time=load_time) == 2
        objection = rating.objections[0]
        assert objection.decision == ObjectionDecision.UPHELD and objection.contested[0]["ref"] == ref
        assert objection.corrections[0].corrected_on == date(2025, 4, 10)   # the contract's due date, per the receipt
        assert objection.total_after > objection.total_before
        assert load_corrected_objection(said.append, load_time=load_time) == 0   # idempotent
    assert any("异议成立" in line for line in said)


def test_without_a_late_submission_the_demo_corrects_a_revoked_penalty(world):
    from datetime import timedelta

    from evalhub.core.timeutil import simulated_clock, utcnow
    from evalhub.demo import clock
    from evalhub.demo.credit_fairness import load_corrected_objection

    factories.contracted(world).state = S.ACCEPTED
    C.ensure_national_calendar()
    rating = C.compute(world.bz, 2025, world.bz_admin)[0]
    C.publish(world.bz, 2025, world.bz_admin)
    first = rating.total
    with simulated_clock(utcnow()):
        assert load_corrected_objection(lambda _: None, load_time=clock.now_local() + timedelta(hours=1)) == 3
    objection = rating.objections[0]
    assert objection.component == "external" and objection.corrections[0].excluded
    assert objection.total_before == first - 3 and objection.total_after == first == rating.total
    assert _inbox(world.firm_user, "重新公示")   # the penalty changed the published rating: published again
