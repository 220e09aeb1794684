"""Follow-up of the complaints/challenges/inspections audit (tests/test_audit_complaints.py): the other side of each
fix — who still may not read, what is still not published, what is not counted twice."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.models import Notification
from evalhub.extensions import db
from tests import factories


def text(response) -> str:
    return response.get_data(as_text=True)


# --- 1–3. challenges ------------------------------------------------------------------------------------------

def test_the_complaint_deadline_is_fifteen_working_days_after_the_answer_period(world, client, auth):
    from evalhub.core.calendar import add_working_days
    from evalhub.procurement import services as P
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    challenger = bidders["乙"][1]
    challenge = P.file_challenge(p, challenger, "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "dismissed", "经核查，技术分计算无误，质疑不成立。")
    db.session.commit()
    until = add_working_days(world.bz, challenge.answer_due, 15)
    assert P.complaint_until(challenge) == until
    note = db.session.execute(sa.select(Notification).where(
        Notification.user_id == challenger.id, Notification.title.contains("质疑答复"))).scalars().one()
    assert f"{until:%Y-%m-%d}" in note.body and world.bz.name in note.body and "投诉" in note.body
    listed = client.get(f"/api/v1/procurements/{p.id}/challenges", headers=auth(challenger.username)).json
    assert listed[0]["complaint_until"] == f"{until:%Y-%m-%d}"  # the API says it too


def test_the_other_suppliers_hear_the_outcome_not_the_grounds_the_answer_or_the_challenger(world):
    from evalhub.procurement import services as P
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    loser, third = bidders["乙"], bidders["丙"]
    loser[0].name = "长风绩效评价咨询有限公司"
    db.session.flush()
    challenge = P.file_challenge(p, loser[1], "评审委员会未按评分标准打分，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，评审委员会确未按评分标准打分，质疑成立。", "reevaluate")
    db.session.commit()
    told = db.session.execute(sa.select(Notification).where(
        Notification.user_id == third[1].id, Notification.title.contains("质疑处理结果"))).scalars().all()
    assert len(told) == 1
    body = told[0].body
    assert "重新评审" in body and "继续有效" in body
    assert loser[0].name not in body and "评分标准" not in body
    # the challenger is told once, by the answer — not a second time as "another supplier"
    assert not db.session.execute(sa.select(Notification).where(
        Notification.user_id == loser[1].id, Notification.title.contains("质疑处理结果"))).first()


def test_a_dismissed_challenge_tells_no_other_supplier(world):
    from evalhub.procurement import services as P
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "dismissed", "经核查，技术分计算无误，质疑不成立。")
    db.session.commit()
    assert not db.session.execute(sa.select(Notification).where(Notification.title.contains("质疑处理结果"))).first()


# --- 4. credit: a late finding of any severity counts once ------------------------------------------------------

def _rated_2025_final(world):
    from evalhub.credit import services as C
    from evalhub.procurement.models import EngagementState as S

    work_2025 = factories.contracted(world, year=2025)
    work_2025.state = S.ACCEPTED
    work_2026 = factories.contracted(world, year=2026, unit="巴州民政局")
    work_2026.state = S.ACCEPTED
    db.session.flush()
    return work_2025


def _records(rating, finding) -> list:
    return [rec for c in rating.components or [] for rec in c.get("records", []) if rec.get("ref") == f"finding:{finding.id}"]


def test_a_late_minor_finding_is_deducted_in_the_next_year_without_the_watch_list(world):
    from evalhub.credit import services as C
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    work_2025 = _rated_2025_final(world)
    C.compute(world.bz, 2025, world.bz_admin, today=date(2026, 3, 1))
    C.publish(world.bz, 2025, world.bz_admin, today=date(2026, 3, 2))
    C.finalise(world.bz, 2025, world.bz_admin, today=date(2026, 3, 20))
    before = {r.firm_id: r for r in C.compute(world.bz, 2026, world.bz_admin, today=date(2026, 12, 31))}[world.firm.id]
    supervision_before = next(c for c in before.components if c["code"] == "supervision")["points"]
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="抽查发现：目录页码错误", engagement=work_2025)
    finding = V.add_finding(case, factories.recorder(case), severity=Severity.MINOR, description="报告目录页码与正文不一致")
    db.session.flush()
    after = {r.firm_id: r for r in C.compute(world.bz, 2026, world.bz_admin, today=date(2026, 12, 31))}[world.firm.id]
    supervision = next(c for c in after.components if c["code"] == "supervision")
    assert _records(after, finding)
    assert float(supervision["points"]) == float(supervision_before) - 1  # credit.deduct_minor
    assert not after.watch_list


def test_a_finding_made_before_the_rating_was_computed_counts_in_its_work_year_only(world):
    from evalhub.credit import services as C
    from evalhub.credit.models import CreditRating
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    work_2025 = _rated_2025_final(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="抽查发现：底稿缺失", engagement=work_2025)
    finding = V.add_finding(case, factories.recorder(case), severity=Severity.SERIOUS, description="工作底稿缺少现场核查记录")
    db.session.flush()
    C.compute(world.bz, 2025, world.bz_admin, today=date(2026, 3, 1))
    C.publish(world.bz, 2025, world.bz_admin, today=date(2026, 3, 2))
    C.finalise(world.bz, 2025, world.bz_admin, today=date(2026, 3, 20))
    C.compute(world.bz, 2026, world.bz_admin, today=date(2026, 12, 31))
    ratings = {r.year: r for r in db.session.execute(
        sa.select(CreditRating).where(CreditRating.firm_id == world.firm.id)).scalars()}
    assert _records(ratings[2025], finding) and not _records(ratings[2026], finding)


# --- 5. a finding that asked no answer ------------------------------------------------------------------------

def test_the_api_says_a_finding_that_asked_no_answer_needs_no_rectification(world, client, auth):
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST, Severity, Trigger

    e = factories.contracted(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索：报告格式不规范", engagement=e)
    recorder = factories.recorder(case)
    minor = V.add_finding(case, recorder, severity=Severity.MINOR, description="报告目录页码与正文不一致")
    V.record_checklist(case, recorder, {key: (True, "") for key, _ in CHECKLIST})
    V.close(case, recorder, "报告存在轻微格式问题，其余符合要求。")
    db.session.commit()
    findings = client.get(f"/api/v1/inspections/{case.id}/findings", headers=auth(world.firm_user.username)).json["items"]
    shown = next(f for f in findings if f["id"] == minor.id)
    assert shown["rectification"] == {"value": "not_required", "label": "无需整改"}


def test_a_finding_that_asked_an_answer_and_got_none_is_still_unrectified(world, client, login):
    """Only a finding that asked no answer is 无需整改: one with a measure that the firm never answered stays 未整改."""
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST, Measure, Severity, Trigger

    e = factories.contracted(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索：报告格式不规范", engagement=e)
    recorder = factories.recorder(case)
    V.record_checklist(case, recorder, {key: (True, "") for key, _ in CHECKLIST})
    first = V.add_finding(case, recorder, severity=Severity.MINOR, description="报告目录页码与正文不一致",
                          measures=[Measure.ORDER_TO_CORRECT])
    V.respond(case, world.firm_user, "已核对目录页码并重新排版，更正后的报告已提交。")
    V.close(case, recorder, "报告存在轻微格式问题，机构已整改。")
    db.session.commit()
    assert first.rectified and first.rectification.label == "已整改"


# --- 6. 通报批评 -----------------------------------------------------------------------------------------------

def test_a_targeted_cases_public_criticism_is_published_once_the_case_is_closed(world, client):
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST, Measure, Severity, Trigger

    e = factories.contracted(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.SCREENING_FLAG, detail="筛查提示：与张三公司报告雷同", engagement=e)
    recorder = factories.recorder(case)
    V.record_checklist(case, recorder, {key: (True, "") for key, _ in CHECKLIST})
    V.add_finding(case, recorder, severity=Severity.GENERAL, description="评价报告照搬被评价单位自评材料",
                  measures=[Measure.PUBLIC_CRITICISM])
    quiet = V.add_finding(case, recorder, severity=Severity.GENERAL, description="工作底稿归档不完整",
                          measures=[Measure.ORDER_TO_CORRECT])
    db.session.commit()
    assert "照搬被评价单位自评材料" not in text(client.get("/public/criticisms"))  # the case is open: the firm answers first
    V.respond(case, world.firm_user, "已重新撰写报告问题分析部分，并补齐底稿归档。")
    V.close(case, recorder, "报告问题分析存在一般问题，机构已完成整改。")
    db.session.commit()
    page = client.get("/public/criticisms")
    assert page.status_code == 200
    html = text(page)
    assert "照搬被评价单位自评材料" in html and world.firm.name in html and "通报批评" in html
    assert quiet.description not in html  # a finding not criticised publicly stays off the page
    assert "张三" not in html and "筛查" not in html  # never the case's lead


def test_a_campaigns_public_criticism_waits_for_the_results(world, client):
    from evalhub.procurement.models import EngagementState as S
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST, Measure, Severity
    from tests.test_review_services import _experts

    e = factories.contracted(world)
    e.state = S.ACCEPTED
    _experts(world, 2)
    db.session.flush()
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    V.publish_campaign_list(campaign, world.bz_staff)
    inspection = campaign.inspections[0]
    recorder = factories.recorder(inspection)
    V.record_checklist(inspection, recorder, {key: (True, "") for key, _ in CHECKLIST})
    V.add_finding(inspection, recorder, severity=Severity.GENERAL, description="问题分析空泛，未结合项目实际",
                  measures=[Measure.PUBLIC_CRITICISM])
    V.respond(inspection, world.firm_user, "已重新撰写问题分析部分，并对项目组进行培训。")
    V.close(inspection, recorder, "报告问题分析存在一般问题，机构已完成整改。")
    db.session.commit()
    assert "问题分析空泛" not in text(client.get("/public/criticisms"))  # closed, but the results are not public yet
    assert "通报批评" not in text(client.get("/public/inspections"))
    V.publish_campaign_results(campaign, world.bz_staff)
    db.session.commit()
    assert "问题分析空泛" in text(client.get("/public/criticisms"))


# --- 7. an expert inspector reads its case's engagement: nobody else gains anything ------------------------------

def _case_with_expert_inspector(world):
    from evalhub.review.models import Submission, SubmissionKind
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Trigger

    e = factories.accepted(world)
    report = db.session.execute(sa.select(Submission).where(
        Submission.engagement_id == e.id, Submission.kind == SubmissionKind.REPORT).order_by(Submission.id.desc())).scalars().first()
    case = V.open_case(world.bz, world.bz_admin, trigger=Trigger.SCREENING_FLAG, detail="筛查提示：李四公司报告数据异常",
                       engagement=e)
    V.name_inspector(case, world.bz_admin, expert_id=world.expert.id, reason="熟悉该领域")
    db.session.commit()
    return e, report, case


def _reads(client, e, report) -> dict[str, int]:
    return {url: client.get(url).status_code
            for url in (f"/engagements/{e.id}", f"/submissions/{report.id}/file", f"/submissions/{report.id}")}


def test_an_expert_not_seated_on_the_case_reads_nothing_of_it(world, client, login, auth):
    e, report, case = _case_with_expert_inspector(world)
    other = factories.user("expert2", Role.EXPERT, expert_id=factories.expert(world.bz, name="李专家").id)
    db.session.commit()
    login(other)
    assert set(_reads(client, e, report).values()) == {403}
    assert client.get(f"/inspections/{case.id}").status_code == 403
    headers = auth(other.username)
    assert client.get(f"/api/v1/inspections/{case.id}", headers=headers).status_code == 404
    assert client.get("/api/v1/inspections", headers=headers).json["items"] == []
    assert client.get(f"/api/v1/engagements/{e.id}/submissions", headers=headers).status_code == 404


def test_the_expert_inspector_reads_its_case_as_the_firm_does(world, client, login, auth):
    e, report, case = _case_with_expert_inspector(world)
    login(world.expert_user)
    page = text(client.get(f"/engagements/{e.id}"))
    assert f"/submissions/{report.id}" in page  # the engagement page lists what was handed in
    headers = auth(world.expert_user.username)
    listed = client.get("/api/v1/inspections", headers=headers).json["items"]
    assert [i["id"] for i in listed] == [case.id]
    shown = client.get(f"/api/v1/inspections/{case.id}", headers=headers).json
    assert shown["trigger_detail"] is None  # a screening flag is the bureau's
    assert "complaint" not in shown and "opened_by" not in shown
    assert all(set(i) == {"kind"} for i in shown["inspectors"])  # no names, its own included
    assert client.get(f"/api/v1/engagements/{e.id}/submissions", headers=headers).status_code == 200
    # reading is all: the engagement's steps and the bureau's pages stay refused
    assert client.get(f"/engagements/{e.id}/result").status_code == 403


def test_a_recused_inspector_reads_nothing_more(world, client, login, auth):
    from evalhub.supervision import services as V

    e, report, case = _case_with_expert_inspector(world)
    V.declare_conflict(case, world.expert_user, "曾为该机构提供咨询服务")
    db.session.commit()
    login(world.expert_user)
    assert set(_reads(client, e, report).values()) == {403}
    assert client.get(f"/inspections/{case.id}").status_code == 403
    assert client.get(f"/api/v1/inspections/{case.id}", headers=auth(world.expert_user.username)).status_code == 404


def test_a_closed_case_no_longer_opens_the_engagement_to_its_expert(world, client, login):
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST

    e, report, case = _case_with_expert_inspector(world)
    recorder = factories.recorder(case)
    V.record_checklist(case, recorder, {key: (True, "") for key, _ in CHECKLIST})
    V.close(case, recorder, "经核查，报告数据有据可查，投诉不属实。", substantiated=False)
    db.session.commit()
    login(world.expert_user)
    assert client.get(f"/inspections/{case.id}").status_code == 200  # its own record stays readable
    assert set(_reads(client, e, report).values()) == {403}


def test_an_inspector_suspended_from_the_pool_reads_nothing_more(world, client, login):
    """An expert out of the pool (suspended, removed) keeps no reading of the case it sat on, though its login works."""
    from evalhub.registry import services as registry

    e, report, case = _case_with_expert_inspector(world)
    registry.change_expert_status(world.expert_user.expert, "suspend", "暂停三个月：评审意见敷衍", world.bz_admin)
    db.session.commit()
    login(world.expert_user)
    assert set(_reads(client, e, report).values()) == {403}
