"""Audit of the outside users' own journeys through the pages: the expert (invitation → review form → draft →
submit), the evaluated unit (notifications → its engagement page → plans, evidence, materials) and the firm.

Each test states the rule it holds the pages to and fails on the current code because of the defect named in
its docstring."""
from __future__ import annotations

import io
from datetime import timedelta

import sqlalchemy as sa

from evalhub.core.models import Notification, User
from evalhub.extensions import db
from evalhub.review import services as R
from evalhub.review.models import ReviewStatus
from tests import factories


def _notes(user) -> list[Notification]:
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)
                              .order_by(Notification.id)).scalars().all()


def _text(response) -> str:
    return response.get_data(as_text=True)


# --- the expert ------------------------------------------------------------------------------------

def _seated_expert(world):
    """A report under review by a panel of three; the first drawn expert has accepted (signed the declaration):
    (review, the expert's account)."""
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    panel = factories.own_panel(e)
    invitation = sorted(panel.invitations, key=lambda i: i.id)[0]
    expert_user = factories.expert_user(invitation.expert_id)
    R.respond(invitation, expert_user, accept=True, declaration_signed=True)
    db.session.commit()
    return invitation.review, expert_user


def test_a_saved_draft_keeps_the_reasons_the_expert_typed_before_scoring(client, login, world):
    """Rule: an expert "can save a draft and come back" (brief; review_form's 保存草稿 answers "草稿已保存。"): what
    was typed into the form is what the draft holds. Experts read the report and note their reasons item by item,
    and score at the end.

    Defect: ``services.save_review`` skips every rubric item whose score is blank — its reason (评分理由) is thrown
    away with it, while the page says "草稿已保存". Coming back, the expert finds the reasons gone."""
    review, expert_user = _seated_expert(world)
    items = review.rubric.items
    login(expert_user)
    data = {"action": "save", "opinion": "报告总体结构完整，数据支撑不足。"}
    for item in items:
        data[f"score_{item.id}"] = ""
        data[f"comment_{item.id}"] = f"关于{item.name}：第三章引用数据未注明来源，需核实"
    data[f"score_{items[0].id}"] = "15"  # one item scored, the others only reasoned so far
    saved = client.post(f"/reviews/{review.id}", data=data)
    assert saved.status_code == 302
    page = _text(client.get(f"/reviews/{review.id}"))
    assert "草稿已保存" in page
    lost = [item.name for item in items if f"关于{item.name}：第三章引用数据未注明来源" not in page]
    assert not lost, f"保存草稿后再打开，以下评分项写好的评分理由丢失：{lost}"


def test_a_score_the_expert_cleared_is_not_submitted(client, login, world):
    """Rule: the review submitted is the one on the form (review_form: "提交时以系统按已保存分值计算的合计为准"; a
    submission needs every item scored — submit_review refuses "请为“…”打分").

    Defect: ``services.save_review`` ignores a blank score instead of clearing the saved one. An expert who
    saved 18 for an item, then erased it to reconsider and pressed 提交 with the box empty, is not asked to
    score it: the old 18 is submitted and counted in the panel's score."""
    review, expert_user = _seated_expert(world)
    items = review.rubric.items
    login(expert_user)

    def form(points, action):
        data = {"action": action, "opinion": "总体符合要求，个别章节需完善。"}
        for item, p in zip(items, points):
            data[f"score_{item.id}"] = p
            data[f"comment_{item.id}"] = f"{item.name}的评分理由"
        return data

    full = [str(int(i.max_points) - 2) for i in items]
    assert client.post(f"/reviews/{review.id}", data=form(full, "save")).status_code == 302
    cleared = [""] + full[1:]  # the first item's score erased
    response = client.post(f"/reviews/{review.id}", data=form(cleared, "submit"))
    db.session.refresh(review)
    assert review.status == ReviewStatus.DRAFT, (
        f"第一项得分已清空仍被提交，合计 {review.total} 分（含已清空的 {full[0]} 分）")
    assert response.status_code == 422 and f"请为“{items[0].name}”打分" in _text(response)


# --- the evaluated unit ----------------------------------------------------------------------------

def test_an_overdue_interview_or_notice_links_the_unit_to_a_page_it_may_open(client, login, world):
    """Rule: every notification a user receives links to a page that opens for them (core/notifications.py: the
    matrix names the unit among the audience of 整改逾期约谈/通报, "rectification_escalated", BUREAU + NAMED).

    Defect: ``results.services.escalate_overdue`` sends the unit's accounts the bureau's findings page
    (/results/engagements/<id>/findings, permission engagement.view) — a budget unit gets 403 there. Its own
    page is /results/unit/engagements/<id>, the link the reminder (催办) of the same finding uses."""
    from evalhub.results import services as S

    e = factories.accepted(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj.audit")
    finding = factories.confirmed_findings(world, e, n=1)[0]
    db.session.commit()
    S.escalate_overdue(finding.deadline + timedelta(days=60))  # past 约谈 and 通报 alike
    db.session.commit()
    notes = [n for n in _notes(unit) if "整改逾期：" in n.title]
    assert {n.title.rsplit("：", 1)[1] for n in notes} == {"约谈", "通报"}
    login(unit)
    opened = {n.title: client.get(n.link).status_code for n in notes}
    assert all(code == 200 for code in opened.values()), opened


def test_a_finding_confirmed_for_another_unit_reaches_that_unit(client, login, world):
    """Rule: the firm names the unit responsible for each finding (FindingForm.responsible_unit_id, any unit of the
    bureau); the bureau confirms and "the units responsible are told" (confirm_findings), and that unit answers it:
    ``finding.answer`` is granted to the responsible unit, and the findings' row scope shows a unit what was
    confirmed "about itself or about an engagement evaluating it". The notification must open a page where it
    reads the finding and hands in its plan.

    Defect: the notice links to /results/unit/engagements/<id>, which requires the unit to be the *evaluated*
    unit (``results.unit_engagement``) — 403 for the responsible unit; and its home page lists only engagements
    evaluating it (``services.unit_engagements``), so no page shows it the finding it must rectify."""
    from evalhub.results import services as S

    e = factories.accepted(world)  # evaluates 巴州统计局
    mzj = factories.unit_user(world, "巴州民政局", "mzj.audit")
    S.add_finding(e, world.firm_user, S.FindingInput(
        kind="问题", text="民政配套资金未按期拨付到位", category="过程", indicator="资金到位率",
        responsible_unit_id=world.units["巴州民政局"].id))
    S.confirm_findings(e, world.bz_staff)
    db.session.commit()
    notes = [n for n in _notes(mzj) if "问题已确认" in n.title]
    assert len(notes) == 1
    login(mzj)
    opened = client.get(notes[0].link)
    home = _text(client.get("/results/unit"))
    assert opened.status_code == 200 and "民政配套资金未按期拨付到位" in _text(opened), opened.status_code
    assert e.reference in home


def _materials_line(world):
    from evalhub.core.timeutil import beijing_today
    from evalhub.results import services as S

    e = factories.in_fieldwork(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj.zl.audit")
    item = S.request_materials(e, world.firm_user, [("2024 年度资金拨付凭证", beijing_today() + timedelta(days=10),
                                                     "可打包上传")])[0]
    db.session.commit()
    return item, unit


def _zip_of_scans() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("凭证1.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 200)
        z.writestr("凭证2.jpg", b"\xff\xd8\xff\xe0" + b"\x01" * 200)
    return buffer.getvalue()


def test_a_unit_uploading_a_zip_of_scans_to_the_materials_list_gets_no_500(client, login, world):
    """Rule: the unit hands the firm the materials it lists, "请登录系统上传" (materials_requested); the accepted
    kinds include a zip archive (results.services.MATERIAL_FILES = (…, "zip")); a refused file is answered
    with a Chinese message, never a 500 (core/files.py: "Raises ValidationFailed with a Chinese message").

    Defect: core/files.py knows no "zip" kind (KIND_LABELS, EXTENSIONS): a zip of scanned vouchers is
    refused and building the refusal message looks up KIND_LABELS["zip"] — KeyError, HTTP 500. The same 500
    answers any refused file on this form (a .doc, an .exe), since the message lists every allowed kind."""
    item, unit = _materials_line(world)
    login(unit)
    response = client.post(f"/results/materials/{item.id}/upload", data={
        f"m{item.id}-file": (io.BytesIO(_zip_of_scans()), "拨付凭证扫描件.zip"), f"m{item.id}-note": "共 2 张"},
        content_type="multipart/form-data")
    assert response.status_code != 500
    assert response.status_code == 302 or "文件类型" in _text(response), response.status_code


def test_a_material_upload_without_a_file_tells_the_unit_why(client, login, world):
    """Rule: a refused form is shown again with the Chinese reason beside it (core/web.handle_form: "otherwise
    ``failed(status)`` shows the page again with the form and its errors").

    Defect: ``results.views.material_upload`` answers a refusal with ``_materials_page(item.engagement, status)``
    — the posted form (holding the error) is not passed and the materials table has no place for errors: the
    unit gets a 422 page that never says "请选择要上传的资料文件"."""
    item, unit = _materials_line(world)
    login(unit)
    response = client.post(f"/results/materials/{item.id}/upload", data={f"m{item.id}-note": "扫描件"},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert "请选择要上传的资料文件" in _text(response)


# --- the firm --------------------------------------------------------------------------------------

def test_the_firms_findings_page_offers_no_link_that_refuses_it(client, login, world):
    """Rule: a page shows a user only what opens for them — no dead ends (every action on a user's own page is
    one it may take; DESIGN "A person should be able to walk a whole engagement … in the browser").

    Defect: templates/results/findings.html shows the firm — which enters the findings of its accepted report
    on this page — the button "整改报告（Word）" whenever findings exist, but the route
    (results.views.rectification_docx, permission ``rectification.report``) admits only the unit and the
    bureaus: the firm's click answers 403."""
    e = factories.accepted(world)
    factories.confirmed_findings(world, e, n=1)
    db.session.commit()
    login(world.firm_user)
    page = client.get(f"/results/engagements/{e.id}/findings")
    assert page.status_code == 200
    link = f"/results/engagements/{e.id}/rectification.docx"
    if link in _text(page):
        assert client.get(link).status_code == 200, "机构的问题录入页上的“整改报告（Word）”按钮打开后是 403"


def test_a_firms_second_answer_to_an_inspection_keeps_the_first(client, login, world):
    """Rule: the firm answers an inspection's findings with its explanation and rectification ("检查要求说明":
    "请登录系统提交说明及整改情况"), and the case record keeps what it was told; a later finding of the same case
    asks the firm again (supervision.services.add_finding sets 待机构回复 and notifies once more).

    Defect: ``supervision.services.respond`` writes the one column ``Inspection.firm_response`` over the
    previous answer: after the firm answers the second finding, its answer to the first is gone from the case
    page (and from the record the bureau closes and the credit rating reads) — the audit log keeps only
    "提交整改回复", not the text."""
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    e = factories.contracted(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="群众反映的线索", engagement=e)
    recorder = factories.recorder(case)
    V.add_finding(case, recorder, severity=Severity.GENERAL, description="工作底稿缺少访谈记录", measures=["责令整改"])
    db.session.commit()
    login(world.firm_user)
    first = "已补充 12 份访谈记录并由项目负责人签字确认，附件已归档。"
    assert client.post(f"/inspections/{case.id}/response", data={"text": first}).status_code == 302
    V.add_finding(db.session.get(type(case), case.id), factories.recorder(case), severity=Severity.GENERAL,
                  description="满意度问卷样本量不足", measures=["责令整改"])
    db.session.commit()
    second = "已按抽样方案补发问卷 200 份，回收有效问卷 186 份。"
    assert client.post(f"/inspections/{case.id}/response", data={"text": second}).status_code == 302
    page = _text(client.get(f"/inspections/{case.id}"))
    assert second in page
    assert first in page, "机构对第一个问题的整改回复在第二次回复后从检查记录中消失"
