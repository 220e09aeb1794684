"""Issue 14, supervision: inspectors independent of what they inspect (not the experts who scored the work,
not the staff who ran its procurement or panels, no tie with the firm or the engagement's parties) — for
drawn and named inspectors, campaigns and targeted cases alike; a second case on the same engagement warns
and links the first; a complaint declined (不予立案) with a reason the complainant reads by its reference
and 查询码, never anyone else's complaint."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from evalhub.core import draws
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Draw, Notification
from evalhub.extensions import db
from evalhub.registry.services import add_expert_tie
from evalhub.review.models import InvitationStatus, PanelInvitation, ReviewPanel
from evalhub.supervision import services as V
from evalhub.supervision.models import Complaint, ComplaintStatus, Trigger
from tests import factories
from tests.kept_states import kept

TEXT = "评价人员未到现场即出具报告，报告数据照抄被评价单位的自评材料。"


def _scored(e) -> list[int]:
    return list(db.session.execute(sa.select(PanelInvitation.expert_id).join(ReviewPanel).where(
        ReviewPanel.engagement_id == e.id, PanelInvitation.status == InvitationStatus.ACCEPTED)).scalars())


def _case(world, e, trigger=Trigger.LOW_SCORE):
    return V.open_case(world.bz, world.bz_staff, trigger=trigger, detail="实施方案评审得分偏低", engagement=e)


@pytest.fixture()
@kept
def reviewed(world):
    """An engagement of 巴州 whose work plan a real panel approved; a fresh inspector-to-be at 巴州; experts: a
    clean one, one tied to the firm, one employed by the evaluated unit."""
    e = factories.in_fieldwork(world)
    world.fresh = factories.user("bz.inspector", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    world.clean = factories.expert(world.bz, name="独立专家", employer="新疆某研究院乙")
    world.tied = factories.expert(world.bz, name="机构关联专家", employer="新疆某大学戊")
    add_expert_tie(world.tied, kind="任职", counterpart_type="第三方机构", counterpart_name=None, firm_id=world.firm.id,
                   bureau_id=None, budget_unit_id=None, start_date=date(2022, 1, 1), end_date=None, note=None,
                   actor=world.bz_staff)
    world.unit_expert = factories.expert(world.bz, name="被评价单位专家", employer="巴州统计局")
    db.session.commit()
    return e


# --- who may inspect --------------------------------------------------------------------------------

def test_staff_who_ran_the_procurement_or_the_panel_are_not_independent(world, reviewed):
    e = reviewed
    out = V.staff_independence(e, [world.bz_admin, world.bz_staff, world.fresh])
    assert any("经办过该评价任务的采购" in r for r in out[world.bz_staff.id])
    assert any("经办过该评价任务的采购" in r for r in out[world.bz_admin.id])   # approved the single source
    assert any("专家评审" in r for r in out[world.bz_staff.id])                # formed the work-plan panel
    assert all(e.reference in r for r in out[world.bz_staff.id])
    assert world.fresh.id not in out
    # approving the plan that created the engagement is not running it
    from evalhub.core import audit

    audit.record("engagement.created", e, actor=world.fresh, summary="计划批准，生成评价任务")
    assert world.fresh.id not in V.staff_independence(e, [world.fresh])


def test_experts_who_scored_the_work_or_are_tied_are_not_independent(world, reviewed):
    e = reviewed
    scorers = _scored(e)
    assert scorers
    experts = [db.session.get(factories.registry.Expert, x) for x in scorers] + [world.clean, world.tied, world.unit_expert]
    out = V.expert_independence(e, world.firm, experts)
    for x in scorers:
        assert "评审过该评价任务的实施方案（第 1 轮）" in out[x]
    assert any(world.firm.name in r for r in out[world.tied.id])
    assert any("被评价单位巴州统计局" in r for r in out[world.unit_expert.id])
    assert world.clean.id not in out


def test_named_inspectors_are_refused_with_the_reasons_and_told_when_named(world, reviewed):
    e = reviewed
    case = _case(world, e)
    # the page offers whom the service accepts: 巴州's and the region's staff and pools, not 克州's
    staff, experts = V.inspector_candidates(case.bureau)
    assert {world.fresh.id, world.region_staff.id, world.bz_staff.id} <= {u.id for u in staff}
    assert world.kz_staff.id not in {u.id for u in staff}
    assert {world.clean.id, world.tied.id} <= {x.id for x in experts}
    with pytest.raises(ValidationFailed) as caught:
        V.name_inspector(case, world.bz_admin, user_id=world.bz_staff.id)
    assert "经办过该评价任务的采购" in caught.value.message and "user_id" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        V.name_inspector(case, world.bz_admin, expert_id=_scored(e)[0])
    assert "评审过该评价任务" in caught.value.message
    with pytest.raises(ValidationFailed):
        V.name_inspector(case, world.bz_admin, expert_id=world.tied.id)
    with pytest.raises(ValidationFailed):
        V.name_inspector(case, world.bz_admin, user_id=world.kz_staff.id)   # not of 巴州 or above
    with pytest.raises(ValidationFailed):
        V.name_inspector(case, world.bz_admin, user_id=world.fresh.id, expert_id=world.clean.id)  # one at a time
    with pytest.raises(PermissionDenied):
        V.name_inspector(case, world.kz_admin, user_id=world.fresh.id)
    V.name_inspector(case, world.bz_admin, user_id=world.fresh.id, reason="熟悉该领域")
    V.name_inspector(case, world.bz_admin, user_id=world.region_staff.id)  # an upper bureau's officer may inspect
    expert_user = factories.user("clean.expert", Role.EXPERT, expert_id=world.clean.id)
    V.name_inspector(case, world.bz_admin, expert_id=world.clean.id)
    with pytest.raises(Conflict):
        V.name_inspector(case, world.bz_admin, expert_id=world.clean.id)
    assert {(p.user_id, p.expert_id) for p in case.inspectors} == {
        (world.fresh.id, None), (world.region_staff.id, None), (None, world.clean.id)}
    assert all(p.draw_id is None for p in case.inspectors)
    told = set(db.session.execute(sa.select(Notification.user_id).where(
        Notification.link == f"/inspections/{case.id}", Notification.title.contains("检查任务"))).scalars())
    assert told == {world.fresh.id, world.region_staff.id, expert_user.id}


def test_a_targeted_case_draws_independent_inspectors(world, reviewed):
    e = reviewed
    case = _case(world, e)
    record = V.draw_case_inspectors(case, world.bz_admin)
    with pytest.raises(Conflict):
        V.draw_case_inspectors(case, world.bz_admin)   # announced, waiting for its witnesses
    excluded = {x["id"]: x["reasons"] for x in record.exclusions}
    assert world.bz_staff.id in excluded and world.bz_admin.id in excluded
    factories.witnessed(record, operator=world.bz_admin, witnesses=[world.bz_staff])
    staff = [p for p in case.inspectors if p.user_id]
    experts = [p for p in case.inspectors if p.expert_id]
    assert [p.user_id for p in staff] == [world.fresh.id]      # the only independent officer of 巴州
    assert len(experts) == 1 and experts[0].expert_id not in set(_scored(e)) | {world.tied.id, world.unit_expert.id}
    expert_draw = db.session.get(Draw, experts[0].draw_id)
    assert expert_draw.derived_from_id == record.id and draws.verify(expert_draw).ok
    assert {x["id"] for x in expert_draw.exclusions} >= set(_scored(e)) | {world.tied.id, world.unit_expert.id}
    with pytest.raises(Conflict):
        V.draw_case_inspectors(case, world.bz_admin)   # drawn once


def test_without_an_independent_officer_the_upper_bureau_serves(world, reviewed):
    e = reviewed
    world.fresh.is_enabled = False
    db.session.flush()
    staff, exclusions = V.inspector_staff_candidates(world.bz, e)
    eligible = {u.id for u in staff} - set(exclusions)
    assert eligible == {world.region_admin.id, world.region_staff.id}


# --- a second case on the same engagement ---------------------------------------------------------------

def test_a_second_case_on_the_same_engagement_warns_and_links_the_first(world, reviewed):
    e = reviewed
    first = _case(world, e)
    assert V.same_engagement_warning(first, world.bz_staff) is None
    second = _case(world, e, trigger=Trigger.OTHER)
    warning = V.same_engagement_warning(second, world.bz_staff)
    assert f"#{first.id}" in warning and e.reference in warning
    event = db.session.execute(sa.select(AuditEvent).where(
        AuditEvent.action == "inspection.opened", AuditEvent.object_id == second.id)).scalar_one()
    assert event.payload["other_cases"] == [first.id]
    assert [i.id for i in V.other_cases(first, world.bz_staff)] == [second.id]


def test_the_case_form_warns_and_the_page_links_the_other_case(client, login, world, reviewed):
    e = reviewed
    first = _case(world, e)
    db.session.commit()
    login(world.bz_staff)
    response = client.post("/inspections/new", data={"trigger": Trigger.OTHER.value, "engagement_reference": e.reference,
                                                      "detail": "另一条线索：报告数据与现场不符"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "请核对是否重复立案" in page
    assert f'href="/inspections/{first.id}"' in page


# --- inspectors on the web: the wrong role, the wrong organisation -------------------------------------

def test_naming_and_drawing_inspectors_needs_a_manager_of_the_own_bureau(client, login, world, reviewed):
    case = _case(world, reviewed)
    db.session.commit()
    for user in (world.firm_user, world.expert_user, world.kz_admin, world.kz_staff):
        login(user)
        assert client.post(f"/inspections/{case.id}/inspectors", data={"user_id": str(world.fresh.id)}).status_code == 403
        assert client.post(f"/inspections/{case.id}/draw-inspectors").status_code == 403
    login(world.bz_admin)
    response = client.post(f"/inspections/{case.id}/inspectors", data={"user_id": str(world.bz_staff.id)})
    assert response.status_code == 422 and "经办过该评价任务的采购" in response.get_data(as_text=True)
    response = client.post(f"/inspections/{case.id}/inspectors", data={"user_id": str(world.fresh.id)})
    assert response.status_code == 302
    assert [p.user_id for p in db.session.get(type(case), case.id).inspectors] == [world.fresh.id]
    response = client.post(f"/inspections/{case.id}/draw-inspectors")
    assert response.status_code == 302 and "/draws/" in response.headers["Location"]


# --- complaints: 不予立案 and the complainant's lookup --------------------------------------------------

def _complaint(world, address="10.9.9.9"):
    complaint = V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name, text=TEXT, engagement_reference=None,
                                 complainant_name="举报人钱七", complainant_contact="13700000000", address=address)
    code = complaint.lookup_code
    db.session.commit()
    return complaint, code


def test_a_complaint_is_declined_with_a_reason_once(world):
    complaint, code = _complaint(world)
    with pytest.raises(ValidationFailed) as caught:
        V.decline_complaint(complaint, world.bz_staff, "不属实")
    assert "reason" in caught.value.fields
    with pytest.raises(PermissionDenied):
        V.decline_complaint(complaint, world.kz_admin, "投诉事项不属于本局受理范围，已告知向有关部门反映。")
    V.decline_complaint(complaint, world.bz_staff, "投诉事项已在检查 #12 中核查，无新的事实和证据。")
    assert complaint.status == ComplaintStatus.DECLINED and complaint.decided_by_id == world.bz_staff.id
    with pytest.raises(Conflict):
        V.decline_complaint(complaint, world.bz_admin, "重复决定：投诉事项已在检查中核查过。")
    with pytest.raises(Conflict):
        V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="投诉", complaint=complaint)
    assert db.session.execute(sa.select(AuditEvent.id).where(AuditEvent.action == "complaint.declined")).first()


def test_the_complainant_looks_it_up_by_reference_and_code(world):
    complaint, code = _complaint(world)
    other, other_code = _complaint(world, address="10.9.9.10")
    assert len(code) == 8 and complaint.lookup_digest and code not in complaint.lookup_digest
    assert V.lookup_complaint(complaint.reference, code, address="192.0.2.1") is complaint
    assert V.lookup_complaint(complaint.reference.lower(), code.lower(), address="192.0.2.1") is complaint
    assert V.lookup_complaint(complaint.reference, other_code, address="192.0.2.1") is None        # another complaint's code
    assert V.lookup_complaint("TS20250101000000", code, address="192.0.2.1") is None
    assert V.lookup_complaint(complaint.reference, "", address="192.0.2.1") is None
    assert "正在审查" in V.complaint_progress(complaint)
    V.decline_complaint(complaint, world.bz_staff, "投诉事项不属于第三方机构评价业务，不予立案。")
    assert V.complaint_progress(complaint) == "不予立案。理由：投诉事项不属于第三方机构评价业务，不予立案。"


def test_the_lookup_page_shows_the_decision_and_nothing_else(client, login, world):
    complaint, code = _complaint(world)
    V.decline_complaint(complaint, world.bz_staff, "投诉事项已由审计部门处理，本局不予重复立案。")
    db.session.commit()
    assert client.get("/public/complaints/lookup").status_code == 200
    response = client.post("/public/complaints/lookup", data={"reference": complaint.reference, "code": code})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "不予立案" in page and "本局不予重复立案" in page
    for secret in (TEXT, "举报人钱七", "13700000000"):
        assert secret not in page
    wrong = client.post("/public/complaints/lookup", data={"reference": complaint.reference, "code": "AAAAAAAA"})
    assert wrong.status_code == 404 and "本局不予重复立案" not in wrong.get_data(as_text=True)


def test_the_public_form_shows_the_code_once(client, world):
    response = client.post("/public/complaints", data={"bureau_id": str(world.bz.id), "firm_name": world.firm.name,
                                                        "text": TEXT, "form_token": "t" * 24},
                           environ_base={"REMOTE_ADDR": "198.51.100.77"})
    page = response.get_data(as_text=True)
    complaint = db.session.execute(sa.select(Complaint)).scalar_one()
    assert response.status_code == 200 and complaint.reference in page and 'data-testid="complaint-code"' in page
    code = page.split('data-testid="complaint-code">')[1].split("<")[0]
    assert V.lookup_complaint(complaint.reference, code, address="192.0.2.1") is not None


def test_declining_on_the_web_needs_a_manager_of_the_own_bureau(client, login, world):
    complaint, _code = _complaint(world)
    url = f"/complaints/{complaint.id}/decline"
    reason = {"reason": "投诉事项已由审计部门处理，本局不予重复立案。"}
    for user in (world.firm_user, world.expert_user, world.kz_admin):
        login(user)
        assert client.post(url, data=reason).status_code == 403
    login(world.bz_staff)
    response = client.post(url, data={"reason": "短"})
    assert response.status_code == 422 and "不少于 10 字" in response.get_data(as_text=True)
    assert client.post(url, data=reason).status_code == 302
    page = client.get(f"/complaints/{complaint.id}").get_data(as_text=True)
    assert "本局不予重复立案" in page and 'data-testid="decline-complaint"' not in page
    assert client.post(url, data=reason).status_code == 409


# --- 申报回避: an inspector declares a tie and leaves; the declaration is kept ------------------------------

def test_an_inspector_declares_a_tie_and_is_never_named_for_that_firm_again(world, reviewed):
    case = _case(world, reviewed)
    V.name_inspector(case, world.bz_admin, user_id=world.fresh.id)
    V.name_inspector(case, world.bz_admin, expert_id=world.clean.id)
    expert_user = factories.user("clean.expert", Role.EXPERT, expert_id=world.clean.id)
    with pytest.raises(PermissionDenied):
        V.declare_conflict(case, world.bz_staff, "我不是检查人员")
    with pytest.raises(ValidationFailed):
        V.declare_conflict(case, world.fresh, "无")
    V.declare_conflict(case, world.fresh, "本人配偶在该机构任项目负责人")
    V.declare_conflict(case, expert_user, "近两年为该机构提供过培训服务")
    assert case.inspectors == []
    with pytest.raises(ValidationFailed) as caught:
        V.name_inspector(case, world.bz_admin, user_id=world.fresh.id)
    assert "申报与巴州示范评价咨询有限公司存在利害关系" in caught.value.message and "配偶" in caught.value.message
    with pytest.raises(ValidationFailed):
        V.name_inspector(case, world.bz_admin, expert_id=world.clean.id)
    other = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="另一条线索", firm=world.firm)
    with pytest.raises(ValidationFailed):   # the firm, whatever the engagement
        V.name_inspector(other, world.bz_admin, user_id=world.fresh.id)
    told = db.session.execute(sa.select(Notification.user_id).where(
        Notification.link == f"/inspections/{case.id}", Notification.title.contains("申报回避"))).scalars().all()
    assert set(told) == {world.bz_admin.id, world.bz_staff.id, world.fresh.id}


def test_an_expert_inspector_reads_the_case_and_recuses_on_the_web(client, login, world, reviewed):
    case = _case(world, reviewed)
    V.name_inspector(case, world.bz_admin, expert_id=world.clean.id)
    expert_user = factories.user("clean.expert", Role.EXPERT, expert_id=world.clean.id)
    db.session.commit()
    login(world.expert_user)
    assert client.get(f"/inspections/{case.id}").status_code == 403
    assert client.post(f"/inspections/{case.id}/recuse", data={"reason": "与该机构有利害关系"}).status_code == 403
    login(expert_user)
    page = client.get(f"/inspections/{case.id}").get_data(as_text=True)
    assert 'data-testid="recuse-form"' in page
    response = client.post(f"/inspections/{case.id}/recuse", data={"reason": "短"})
    assert response.status_code == 422
    assert client.post(f"/inspections/{case.id}/recuse", data={"reason": "近两年为该机构提供过培训服务"}).status_code == 302
    assert client.get(f"/inspections/{case.id}").status_code == 403   # no longer an inspector


def test_a_campaign_draws_inspectors_independent_of_each_sampled_engagement(world, reviewed):
    e = reviewed
    e.state = type(e.state)("accepted")  # completed: in the campaign's population
    db.session.flush()
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_admin, ratio=100))
    inspection = campaign.inspections[0]
    staff = next(p for p in inspection.inspectors if p.user_id)
    expert = next(p for p in inspection.inspectors if p.expert_id)
    assert staff.user_id == world.fresh.id
    staff_draw = db.session.get(Draw, staff.draw_id)
    reasons = {x["id"]: " ".join(x["reasons"]) for x in staff_draw.exclusions}
    assert "经办过该评价任务的采购" in reasons[world.bz_staff.id] and "经办过该评价任务的采购" in reasons[world.bz_admin.id]
    assert expert.expert_id not in set(_scored(e)) | {world.tied.id, world.unit_expert.id}
    assert db.session.execute(sa.select(Notification.id).where(
        Notification.user_id == world.fresh.id, Notification.link == f"/inspections/{inspection.id}")).first()


def test_a_campaign_inspector_who_recuses_is_replaced_by_a_witnessed_draw_not_only_by_naming(world, reviewed):
    """双随机: the seat a drawn inspector leaves by declaring a tie is filled by a draw of its own, among those who
    qualify (not the one who recused, not the staff who ran the engagement)."""
    e = reviewed
    e.state = type(e.state)("accepted")
    world.second = factories.user("bz.inspector2", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    db.session.flush()
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_admin, ratio=100))
    inspection = campaign.inspections[0]
    officer = next(p for p in inspection.inspectors if p.user_id)
    gone = officer.user
    assert V.seats_to_draw(inspection) == []
    with pytest.raises(Conflict):
        V.draw_case_inspectors(inspection, world.bz_admin)  # both seats filled
    V.declare_conflict(inspection, gone, "本人曾在该机构兼职")
    assert V.seats_to_draw(inspection) == ["staff"]
    record = V.draw_case_inspectors(inspection, world.bz_admin)
    assert record.params["seats"] == ["staff"] and "补抽" in record.purpose
    excluded = {x["id"]: " ".join(x["reasons"]) for x in record.exclusions}
    assert gone.id in excluded and "经办过该评价任务的采购" in excluded[world.bz_staff.id]
    factories.witnessed(record, operator=world.bz_admin, witnesses=[world.region_staff])
    officers = [p.user_id for p in inspection.inspectors if p.user_id]
    assert len(officers) == 1 and officers[0] not in {gone.id, world.bz_staff.id, world.bz_admin.id}
    assert len([p for p in inspection.inspectors if p.expert_id]) == 1  # the expert's seat untouched
    assert V.seats_to_draw(inspection) == [] and draws.verify(record).ok


def test_an_officer_drawn_for_a_case_who_no_longer_qualifies_at_the_reveal_is_replaced_from_the_witnessed_seed(
        world, reviewed):
    """The draw stands as announced; the rules are asked again of the one it picks, at the reveal: an officer who
    declared a tie with the firm in the meantime is not seated, a draw derived from the witnessed seed is."""
    case = _case(world, reviewed)
    world.second = factories.user("bz.inspector2", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    db.session.flush()
    record = V.draw_case_inspectors(case, world.bz_admin)
    assert set(draws.eligible_ids(record)) == {world.fresh.id, world.second.id}
    draws.name_witnesses(record, [world.region_staff], world.bz_admin, check=False, notify=False)
    draws.enter_number(record, world.region_staff, 20261207)
    seed = draws.seed_of(record.secret, record.candidate_hash, ["20261207"])
    picked, other = draws.rank(seed, draws.eligible_ids(record))
    db.session.add(V.StaffTie(user_id=picked, firm_id=world.firm.id, reason="揭晓前申报：亲属在该机构任职"))
    db.session.flush()
    draws.reveal(record, world.bz_admin)
    assert record.result_ids == [picked]  # the witnessed result is what it was
    officer = next(p for p in case.inspectors if p.user_id)
    assert officer.user_id == other and officer.draw_id != record.id
    derived = db.session.get(Draw, officer.draw_id)
    assert derived.derived_from_id == record.id and draws.verify(derived).ok
    assert any("揭晓时已不符合条件" in " ".join(x["reasons"]) for x in derived.exclusions if x["id"] == picked)
    assert len([p for p in case.inspectors if p.expert_id]) == 1


def test_the_officer_who_ran_the_procurement_does_not_write_the_record_of_its_inspection(world, reviewed):
    """The checklist, findings and conclusion are written by the inspection's officer inspector (of this bureau or
    an upper one) or by a manager independent of what is inspected; the officer who ran the engagement's
    procurement may open the case but not tick its checklist or close it as clean."""
    from evalhub.supervision.models import CHECKLIST, Severity

    case = _case(world, reviewed)
    all_ok = {code: (True, "") for code, _ in CHECKLIST}
    for who in (world.bz_staff, world.bz_admin):
        with pytest.raises(PermissionDenied) as refused:
            V.record_checklist(case, who, all_ok)
        assert "经办过该评价任务的采购" in refused.value.message
    with pytest.raises(PermissionDenied):
        V.add_finding(case, world.bz_staff, severity=Severity.MINOR, description="个别底稿未签名")
    with pytest.raises(PermissionDenied):
        V.close(case, world.bz_staff, "底稿完整，评分有据，未发现问题。")
    with pytest.raises(PermissionDenied):  # an upper bureau's officer who is not an inspector of the case
        V.record_checklist(case, world.region_staff, all_ok)
    V.name_inspector(case, world.bz_admin, user_id=world.region_staff.id)
    V.record_checklist(case, world.region_staff, all_ok)  # as its inspector
    V.close(case, world.fresh, "底稿完整，评分有据，未发现问题。")  # an independent officer of 巴州
    assert case.status.value == "closed" and V.recording_refusal(case, world.fresh) is None


def test_lookups_are_limited_per_requester(client, world):
    """References are predictable (date + six digits): guesses of reference and 查询码 are counted per requester
    and refused past the hourly limit, found or not — and another requester is not affected."""
    complaint, code = _complaint(world)
    db.session.commit()
    guess = {"reference": complaint.reference, "code": "AAAAAAAA"}
    for _ in range(V.LOOKUPS_PER_HOUR):
        assert client.post("/public/complaints/lookup", data=guess,
                           environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 404
    refused = client.post("/public/complaints/lookup", data={"reference": complaint.reference, "code": code},
                          environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert refused.status_code == 429 and "请求过于频繁" in refused.get_data(as_text=True)
    assert "lookup-result" not in refused.get_data(as_text=True)   # not even the right code gets through
    other = client.post("/public/complaints/lookup", data={"reference": complaint.reference, "code": code},
                        environ_base={"REMOTE_ADDR": "203.0.113.10"})
    assert other.status_code == 200 and 'data-testid="lookup-result"' in other.get_data(as_text=True)
