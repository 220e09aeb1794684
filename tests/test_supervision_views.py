"""Supervision pages: who may open and post what (login, roles, organisation scope: 克州 never sees 巴州's
inspections or complaints, firm2 never sees firm1's inspection), what each side may read (a firm never
sees inspector names, the complaint or the complainant), bad input answered 4xx with the Chinese message
and nothing written, the public complaint form (no login, a reference, 429 after the limit, no other
complaint's data), the dashboard card, and a random campaign through the browser's forms from the draw
to the published results."""
from __future__ import annotations

import io

import pandas as pd
import pytest
import sqlalchemy as sa

from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.supervision import services as V
from evalhub.supervision.models import (
    CHECKLIST,
    CampaignStatus,
    Complaint,
    ComplaintStatus,
    Finding,
    Inspection,
    InspectionCampaign,
    InspectionStatus,
    Severity,
    Trigger,
)
from tests import factories
from tests.test_credit_supervision_services import _completed
from tests.test_review_services import _experts

COMPLAINT_TEXT = "评价人员未到现场即出具报告，报告数据照抄被评价单位的自评材料。"
CONTACT = "13912345678"
COMPLAINANT = "举报人赵六"


def text(response) -> str:
    return response.get_data(as_text=True)


def count(model, *where) -> int:
    stmt = sa.select(sa.func.count()).select_from(model)
    for clause in where:
        stmt = stmt.where(clause)
    return db.session.execute(stmt).scalar_one()


def _case(world, bureau_key="bz", firm=None, engagement=None, trigger=Trigger.LOW_SCORE, detail="评审得分偏低：62 分"):
    bureau = getattr(world, bureau_key)
    staff = getattr(world, f"{bureau_key}_staff")
    inspection = V.open_case(bureau, staff, trigger=trigger, detail=detail, engagement=engagement,
                             firm=firm or (None if engagement else world.firm))
    db.session.commit()
    return inspection


def _complaint(world, address="10.0.0.1", bureau=None, **kw):
    values = dict(bureau_id=(bureau or world.bz).id, firm_name=world.firm.name, text=COMPLAINT_TEXT,
                  engagement_reference=None, complainant_name=COMPLAINANT, complainant_contact=CONTACT, address=address)
    values.update(kw)
    complaint = V.file_complaint(**values)
    db.session.commit()
    return complaint


def _campaign(world, n=1):
    engagements = [_completed(world, unit=u) for u in (["巴州统计局", "巴州民政局"] * n)[:n]]
    _experts(world, n + 1)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    db.session.commit()
    return campaign, engagements


def _all_ok() -> dict:
    data = {}
    for key, _label in CHECKLIST:
        data[f"ok_{key}"] = "1"
        data[f"note_{key}"] = ""
    return data


def _assert_status(client, login, users, method, url, expected, data=None):
    for user in users:
        login(user)
        response = client.open(url, method=method, data=data or {})
        assert response.status_code == expected, (user.username, method, url, response.status_code)


# --- login and roles -------------------------------------------------------------------------------

def test_every_bureau_page_needs_a_login(client, world):
    inspection = _case(world)
    complaint = _complaint(world)
    campaign, _ = _campaign(world)
    gets = ["/inspections", f"/inspections/{inspection.id}", "/inspections/new", "/campaigns", "/campaigns/new",
            f"/campaigns/{campaign.id}", "/complaints", f"/complaints/{complaint.id}"]
    posts = [f"/inspections/{inspection.id}/checklist", f"/inspections/{inspection.id}/findings",
             f"/inspections/{inspection.id}/close", f"/inspections/{inspection.id}/response", "/inspections/new",
             "/campaigns/new", f"/campaigns/{campaign.id}/publish-list", f"/campaigns/{campaign.id}/publish-results",
             f"/complaints/{complaint.id}/case"]
    client.post("/logout")
    for method, urls in (("GET", gets), ("POST", posts)):
        for url in urls:
            response = client.open(url, method=method)
            assert response.status_code == 302 and "/login" in response.headers["Location"], (method, url)
    assert count(Finding) == 0 and inspection.checklist in ({}, None)


def test_the_public_pages_need_no_login(client, world):
    client.post("/logout")
    assert client.get("/public/complaints").status_code == 200
    assert client.get("/public/inspections").status_code == 200
    home = text(client.get("/public/reports"))
    assert "投诉举报" in home and "抽查公示" in home and "/public/complaints" in home and "/public/inspections" in home


def test_roles_that_may_not_open_the_bureau_pages(client, login, world):
    inspection = _case(world)
    complaint = _complaint(world)
    campaign, _ = _campaign(world)
    for url in ["/inspections", "/campaigns", "/complaints", "/inspections/new", "/campaigns/new",
                f"/inspections/{inspection.id}", f"/campaigns/{campaign.id}", f"/complaints/{complaint.id}"]:
        _assert_status(client, login, [world.expert_user], "GET", url, 403)
    for url in ["/campaigns", "/complaints", "/inspections/new", "/campaigns/new", f"/campaigns/{campaign.id}",
                f"/complaints/{complaint.id}"]:
        _assert_status(client, login, [world.firm_user, world.other_firm_user], "GET", url, 403)
    # the platform administrator reads everything but has no bureau of its own to open cases or campaigns in
    _assert_status(client, login, [world.sysadmin], "GET", "/inspections/new", 403)
    _assert_status(client, login, [world.sysadmin], "GET", "/campaigns/new", 403)
    for url in ["/inspections", "/campaigns", "/complaints", f"/inspections/{inspection.id}",
                f"/campaigns/{campaign.id}", f"/complaints/{complaint.id}"]:
        _assert_status(client, login, [world.sysadmin, world.bz_admin, world.bz_staff, world.region_admin], "GET", url, 200)
    for url in ["/inspections/new", "/campaigns/new"]:
        _assert_status(client, login, [world.bz_staff, world.kz_admin, world.krl_staff], "GET", url, 200)


def test_the_nav_links(client, login, world):
    page = text(login(world.bz_staff).get("/"))
    assert 'data-testid="nav-inspections"' in page and "监督检查" in page
    assert 'data-testid="supervision-card"' in page
    page = text(login(world.firm_user).get("/engagements"))
    assert 'data-testid="nav-firm-inspections"' in page


# --- scope -----------------------------------------------------------------------------------------

def test_each_bureau_sees_its_subtree_only(client, login, world):
    bz_case = _case(world)
    kz_case = _case(world, "kz", firm=world.other_firm, detail="克州线索")
    bz_complaint = _complaint(world)
    kz_complaint = _complaint(world, address="10.0.0.2", bureau=world.kz, firm_name=world.other_firm.name,
                              complainant_contact="kz-contact-000")

    page = text(login(world.kz_admin).get("/inspections"))
    assert f'inspection-row-{kz_case.id}"' in page and f'inspection-row-{bz_case.id}"' not in page
    assert client.get(f"/inspections/{bz_case.id}").status_code == 403
    page = text(client.get("/complaints"))
    assert kz_complaint.reference in page and bz_complaint.reference not in page and CONTACT not in page
    assert client.get(f"/complaints/{bz_complaint.id}").status_code == 403
    assert client.post(f"/complaints/{bz_complaint.id}/case", data={"detail": "x"}).status_code == 403

    page = text(login(world.bz_admin).get("/inspections"))
    assert f'inspection-row-{bz_case.id}"' in page and f'inspection-row-{kz_case.id}"' not in page
    assert client.get(f"/inspections/{kz_case.id}").status_code == 403
    page = text(client.get("/complaints"))
    assert bz_complaint.reference in page and CONTACT in page and kz_complaint.reference not in page

    # a county below 巴州 does not see 巴州's own records; the region sees both prefectures
    assert client.get(f"/inspections/{bz_case.id}").status_code == 200
    login(world.krl_admin)
    assert client.get(f"/inspections/{bz_case.id}").status_code == 403
    assert client.get(f"/complaints/{bz_complaint.id}").status_code == 403
    page = text(login(world.region_admin).get("/inspections"))
    assert f'inspection-row-{bz_case.id}"' in page and f'inspection-row-{kz_case.id}"' in page


def test_a_firm_sees_only_its_own_inspections(client, login, world):
    mine = _case(world)
    theirs = _case(world, "kz", firm=world.other_firm, detail="克州线索")
    page = text(login(world.firm_user).get("/inspections"))
    assert f'inspection-row-{mine.id}"' in page and f'inspection-row-{theirs.id}"' not in page
    assert client.get(f"/inspections/{mine.id}").status_code == 200
    assert client.get(f"/inspections/{theirs.id}").status_code == 403
    login(world.other_firm_user)
    assert client.get(f"/inspections/{mine.id}").status_code == 403
    page = text(client.get("/inspections"))
    assert f'inspection-row-{theirs.id}"' in page and f'inspection-row-{mine.id}"' not in page
    response = client.get("/inspections?export=xlsx")
    frame = pd.read_excel(io.BytesIO(response.data))
    assert list(frame["检查编号"]) == [theirs.id]


def test_inspector_names_are_for_the_bureau_only(client, login, world):
    campaign, _ = _campaign(world)
    inspection = campaign.inspections[0]
    names = [p.name for p in inspection.inspectors]
    assert len(names) == 2
    page = text(login(world.bz_staff).get(f"/inspections/{inspection.id}"))
    assert all(name in page for name in names)
    assert f"/draws/{inspection.inspectors[0].draw_id}" in page
    page = text(login(world.firm_user).get(f"/inspections/{inspection.id}"))
    assert "财政检查人员" in page and "专家" in page
    assert not any(name in page for name in names)
    assert "/draws/" not in page
    assert client.get(f"/draws/{inspection.inspectors[0].draw_id}").status_code == 403


def test_the_firm_never_reads_the_complaint_or_the_complainant(client, login, world):
    e = _completed(world)
    complaint = _complaint(world, engagement_reference=e.reference)
    login(world.bz_staff)
    page = text(client.get(f"/complaints/{complaint.id}"))
    assert CONTACT in page and COMPLAINANT in page and "立案检查" in page
    response = client.post(f"/complaints/{complaint.id}/case",
                           data={"firm_id": str(world.firm.id), "engagement_reference": e.reference,
                                 "detail": f"投诉举报（{complaint.reference}）：{COMPLAINT_TEXT}，投诉人 {COMPLAINANT}"})
    assert response.status_code == 302
    inspection = db.session.execute(sa.select(Inspection)).scalar_one()
    assert inspection.trigger == Trigger.COMPLAINT and inspection.complaint_id == complaint.id
    assert inspection.engagement_id == e.id
    assert db.session.get(Complaint, complaint.id).status == ComplaintStatus.CASE_OPENED
    page = text(client.get(f"/inspections/{inspection.id}"))
    assert f"/complaints/{complaint.id}" in page and complaint.reference in page
    assert f"/engagements/{e.id}" in page
    # the button is gone and a second case from the same complaint is refused
    assert 'data-testid="open-case"' not in text(client.get(f"/complaints/{complaint.id}"))
    assert client.post(f"/complaints/{complaint.id}/case", data={"detail": "再次立案"}).status_code == 409

    page = text(login(world.firm_user).get(f"/inspections/{inspection.id}"))
    assert "投诉举报" in page
    for secret in (CONTACT, COMPLAINANT, COMPLAINT_TEXT, complaint.reference, f"/complaints/{complaint.id}"):
        assert secret not in page, secret
    assert f"/engagements/{e.id}" in page  # the firm's own engagement
    listing = text(client.get("/inspections"))
    assert CONTACT not in listing and COMPLAINANT not in listing and complaint.reference not in listing


# --- the list: filters and export ------------------------------------------------------------------

def test_inspection_filters_and_export(client, login, world):
    campaign, engagements = _campaign(world)
    random_one = campaign.inspections[0]
    targeted = _case(world, trigger=Trigger.SCREENING_FLAG, detail="重复句子占 71%")
    other_firm = factories.firm(world.bz, name="巴州第二评价有限公司")
    third = _case(world, firm=other_firm, trigger=Trigger.OTHER, detail="其他线索")
    V.record_checklist(third, factories.recorder(third), {k: (True, "") for k, _ in CHECKLIST})
    V.close(third, factories.recorder(third), "经检查未发现问题，予以办结。")
    db.session.commit()

    login(world.bz_staff)

    def rows(query):
        page = text(client.get(f"/inspections?{query}"))
        return {i.id for i in (random_one, targeted, third) if f'inspection-row-{i.id}"' in page}

    assert rows("") == {random_one.id, targeted.id, third.id}
    assert rows("kind=random") == {random_one.id}
    assert rows("kind=targeted") == {targeted.id, third.id}
    assert rows("status=closed") == {third.id}
    assert rows("status=open") == {random_one.id, targeted.id}
    assert rows("trigger=screening_flag") == {targeted.id}
    assert rows(f"firm={other_firm.id}") == {third.id}
    assert rows("status=nonsense") == {random_one.id, targeted.id, third.id}

    response = client.get("/inspections?export=xlsx&kind=targeted")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    frame = pd.read_excel(io.BytesIO(response.data))
    assert set(frame["检查编号"]) == {targeted.id, third.id}
    assert set(frame["线索来源"]) == {"报告质量筛查提示", "其他线索"}
    assert "已办结" in set(frame["状态"])
    assert not any("检查人员" in column for column in frame.columns)


# --- inspection work through the forms -------------------------------------------------------------

def test_a_targeted_case_from_the_form_runs_to_closing(client, login, world):
    e = _completed(world)
    login(world.bz_staff)
    page = text(client.get("/inspections/new"))
    assert "不定向抽查" not in page.split('name="trigger"')[1].split("</select>")[0]  # not a choice
    assert world.firm.name in page and world.other_firm.name not in page  # 克州's library is not 巴州's
    response = client.post("/inspections/new", data={"trigger": "low_score", "engagement_reference": e.reference,
                                                      "detail": "报告评审第一轮得分 58 分"})
    assert response.status_code == 302
    inspection = db.session.execute(sa.select(Inspection)).scalar_one()
    assert inspection.firm_id == world.firm.id and inspection.engagement_id == e.id
    assert inspection.trigger == Trigger.LOW_SCORE and inspection.opened_by_id == world.bz_staff.id
    url = f"/inspections/{inspection.id}"
    page = text(client.get(url))
    assert "评审得分偏低" in page and "报告评审第一轮得分 58 分" in page and f"/engagements/{e.id}" in page

    checklist = _all_ok()
    checklist["ok_working_papers"] = "0"
    checklist["note_working_papers"] = "缺少访谈记录"
    # the officer who ran the engagement's procurement opens the case but does not write its record
    assert 'data-testid="recording-refusal"' in page and "保存检查清单" not in page
    refused = client.post(f"{url}/checklist", data=checklist)
    assert refused.status_code == 403 and "经办过该评价任务的采购" in text(refused)
    recorder = factories.recorder(inspection)
    db.session.commit()
    login(recorder)
    assert client.post(f"{url}/checklist", data=checklist).status_code == 302
    assert db.session.get(Inspection, inspection.id).checklist["working_papers"] == {"ok": False, "note": "缺少访谈记录"}
    response = client.post(f"{url}/findings", data={"severity": "general", "description": "工作底稿缺少访谈记录",
                                                    "measures": ["order_to_correct", "interview"]})
    assert response.status_code == 302
    page = text(client.get(url))
    assert "一般" in page and "责令整改" in page and "约谈" in page and "工作底稿缺少访谈记录" in page
    assert db.session.get(Inspection, inspection.id).status == InspectionStatus.AWAITING_RESPONSE
    response = client.post(f"{url}/close", data={"conclusion": "等待机构回复之前不能办结本检查。"})
    assert response.status_code == 409 and "整改回复" in text(response)
    assert 'data-testid="submit-response"' not in page  # the bureau does not answer for the firm
    assert client.post(f"{url}/response", data={"text": "已补充访谈记录 12 份。"}).status_code == 403

    page = text(login(world.firm_user).get(url))
    assert 'data-testid="submit-response"' in page and "记录问题" not in page and "保存检查清单" not in page
    assert "缺少访谈记录" in page  # the firm reads the checklist result and the finding
    assert login(world.other_firm_user).post(f"{url}/response", data={"text": "不是我们的检查，随便回复一下。"}).status_code == 403
    login(world.firm_user)
    assert client.post(f"{url}/response", data={"text": "已补充访谈记录 12 份，并完善底稿复核制度。"}).status_code == 302
    assert db.session.get(Inspection, inspection.id).status == InspectionStatus.OPEN
    assert 'data-testid="submit-response"' not in text(client.get(url))
    for path in ("checklist", "findings", "close"):
        assert client.post(f"{url}/{path}", data={"conclusion": "机构自己办结检查是不允许的。"}).status_code == 403

    assert login(world.bz_staff).post(f"{url}/close", data={"conclusion": "经办人不能办结对本人经办事项的检查。"}).status_code == 403
    login(recorder)
    assert "已补充访谈记录 12 份" in text(client.get(url))
    assert client.post(f"{url}/close", data={"conclusion": "机构已完成整改，按一般问题处理。"}).status_code == 302
    inspection = db.session.get(Inspection, inspection.id)
    assert inspection.status == InspectionStatus.CLOSED and inspection.findings[0].rectified
    page = text(client.get(url))
    assert "机构已完成整改，按一般问题处理。" in page and "办结检查" not in page and "记录问题" not in page
    assert client.post(f"{url}/findings", data={"severity": "minor", "description": "办结后再加问题"}).status_code == 409


def test_opening_a_case_needs_a_manager_of_the_own_bureau(client, login, world):
    inspection = _case(world)
    url = f"/inspections/{inspection.id}"
    # the region and the county read 巴州's records (the region) or not at all (the county); neither works on them
    _assert_status(client, login, [world.region_admin], "POST", f"{url}/findings", 403,
                   {"severity": "minor", "description": "上级局不直接办理下级局的检查"})
    _assert_status(client, login, [world.kz_admin, world.krl_admin, world.firm_user, world.expert_user], "POST",
                   f"{url}/checklist", 403, _all_ok())
    assert count(Finding) == 0 and not db.session.get(Inspection, inspection.id).checklist


@pytest.mark.parametrize("data, message", [
    ({"trigger": "", "firm_id": "{firm}", "detail": "线索"}, "请选择线索来源"),
    ({"trigger": "random", "firm_id": "{firm}", "detail": "线索"}, "不定向抽查通过抽查批次产生"),
    ({"trigger": "other", "firm_id": "", "detail": "线索"}, "请选择被检查的机构"),
    ({"trigger": "other", "firm_id": "{firm}", "detail": ""}, "请写明线索内容"),
    ({"trigger": "complaint", "firm_id": "{firm}", "detail": "线索"}, "投诉线索须关联投诉编号"),
    ({"trigger": "other", "firm_id": "{firm}", "engagement_reference": "NO-SUCH-REF", "detail": "线索"}, "未找到评价任务 NO-SUCH-REF"),
    ({"trigger": "complaint", "firm_id": "{firm}", "complaint_reference": "TS000", "detail": "线索"}, "未找到投诉 TS000"),
    ({"trigger": "other", "firm_id": "{other_firm}", "detail": "线索"}, "所选机构不存在或不在本局可见范围内"),
    ({"trigger": "other", "firm_id": "{firm}", "detail": "长" * 5001}, "线索内容不能超过 5000 个字符"),
])
def test_bad_case_input_is_refused_with_nothing_written(client, login, world, data, message):
    data = {k: v.format(firm=world.firm.id, other_firm=world.other_firm.id) for k, v in data.items()}
    response = login(world.bz_staff).post("/inspections/new", data=data)
    assert response.status_code == 422 and message in text(response)
    assert count(Inspection) == 0


def test_a_case_must_name_the_engagements_firm(client, login, world):
    e = _completed(world)
    other = factories.firm(world.bz, name="巴州无关评价有限公司")
    db.session.commit()
    response = login(world.bz_staff).post("/inspections/new", data={
        "trigger": "other", "firm_id": str(other.id), "engagement_reference": e.reference, "detail": "线索"})
    assert response.status_code == 422 and "不是评价任务" in text(response)
    assert count(Inspection) == 0


def test_a_complaint_case_from_the_case_form_links_the_complaint(client, login, world):
    complaint = _complaint(world)
    response = login(world.bz_staff).post("/inspections/new", data={
        "trigger": "complaint", "complaint_reference": complaint.reference, "detail": "群众投诉线索"})
    assert response.status_code == 302
    inspection = db.session.execute(sa.select(Inspection)).scalar_one()
    assert inspection.complaint_id == complaint.id and inspection.firm_id == world.firm.id
    assert db.session.get(Complaint, complaint.id).status == ComplaintStatus.CASE_OPENED
    # 克州 cannot name 巴州's complaint
    kz_response = login(world.kz_staff).post("/inspections/new", data={
        "trigger": "complaint", "firm_id": str(world.other_firm.id), "complaint_reference": complaint.reference,
        "detail": "线索"})
    assert kz_response.status_code == 422 and "未找到投诉" in text(kz_response)
    assert count(Inspection) == 1


def test_bad_inspection_work_is_refused_with_nothing_written(client, login, world):
    inspection = _case(world)
    url = f"/inspections/{inspection.id}"
    login(world.bz_staff)
    response = client.post(f"{url}/checklist", data={})
    assert response.status_code == 422 and "请至少填写一项检查结果" in text(response)
    response = client.post(f"{url}/checklist", data={"ok_working_papers": "maybe"})
    assert response.status_code == 422 and "检查结果无效" in text(response)
    response = client.post(f"{url}/checklist", data={"note_evidence": "只写了说明"})
    assert response.status_code == 422 and "请选择“证据支持评分”的检查结果" in text(response)
    assert not db.session.get(Inspection, inspection.id).checklist

    response = client.post(f"{url}/findings", data={"severity": "", "description": ""})
    assert response.status_code == 422
    assert "请选择问题严重程度" in text(response) and "请描述发现的问题" in text(response)
    response = client.post(f"{url}/findings", data={"severity": "serious", "description": "问题", "measures": ["jail"]})
    assert response.status_code == 422 and "未知的处理措施" in text(response)
    assert count(Finding) == 0

    response = client.post(f"{url}/close", data={"conclusion": "检查结论已经写得足够长了。"})
    assert response.status_code == 422 and "检查清单尚未完成" in text(response)
    client.post(f"{url}/checklist", data=_all_ok())
    response = client.post(f"{url}/close", data={"conclusion": "太短"})
    assert response.status_code == 422 and "请写明检查结论（不少于 10 字）" in text(response)
    assert db.session.get(Inspection, inspection.id).status == InspectionStatus.OPEN

    client.post(f"{url}/findings", data={"severity": "general", "description": "底稿不全"})
    response = login(world.firm_user).post(f"{url}/response", data={"text": "已整改"})
    assert response.status_code == 422 and "请写明整改情况（不少于 10 字）" in text(response)
    assert db.session.get(Inspection, inspection.id).firm_response is None


# --- campaigns -------------------------------------------------------------------------------------

def test_a_campaign_needs_a_valid_year_and_at_least_the_ratio_setting(client, login, world):
    _completed(world)
    _experts(world, 2)
    set_setting(world.bz, "supervision.random_ratio", 20, world.bz_admin)
    db.session.commit()
    login(world.bz_admin)
    page = text(client.get("/campaigns/new"))
    assert 'value="20"' in page and "不低于 20%" in page
    for data, message in [({"year": "2025", "ratio": "15"}, "抽查比例应在 20%–100% 之间"),
                          ({"year": "2025", "ratio": "abc"}, "抽查比例必须是整数"),
                          ({"year": "二〇二五", "ratio": "20"}, "年度应为 4 位数字"),
                          ({"year": "2019", "ratio": "20"}, "2019 年度没有已完成的评价任务可供抽查")]:
        response = client.post("/campaigns/new", data=data)
        assert response.status_code == 422 and message in text(response), data
    assert count(InspectionCampaign) == 0 and count(Inspection) == 0


def test_campaign_pages_are_scoped(client, login, world):
    campaign, _ = _campaign(world)
    url = f"/campaigns/{campaign.id}"
    login(world.kz_admin)
    assert client.get(url).status_code == 403
    assert f'campaign-row-{campaign.id}"' not in text(client.get("/campaigns"))
    assert client.post(f"{url}/publish-list").status_code == 403
    _assert_status(client, login, [world.firm_user, world.krl_admin], "GET", url, 403)
    # the region reads it but publishing is 巴州's
    login(world.region_admin)
    page = text(client.get(url))
    assert client.get(url).status_code == 200 and 'data-testid="publish-list"' not in page
    assert client.post(f"{url}/publish-list").status_code == 403
    assert db.session.get(InspectionCampaign, campaign.id).status == CampaignStatus.DRAWN


def test_a_campaign_through_the_web_to_the_public_page(client, login, world):
    set_setting(world.bz, "firm.max_key_evaluations", 50, world.bz_admin)
    set_setting(world.bz, "firm.rotation_years", 0, world.bz_admin)
    engagements = [_completed(world, unit=u) for u in ("巴州统计局", "巴州民政局", "巴州统计局")]
    _experts(world, 4)
    db.session.commit()

    login(world.bz_admin)
    assert 'data-testid="new-campaign"' in text(client.get("/campaigns"))
    response = client.post("/campaigns/new", data={"year": "2025", "ratio": "50"})
    assert response.status_code == 302
    assert "/draws/" in response.headers["Location"]  # announced: witnessed and revealed on the draw page
    factories.witness_pending()
    db.session.commit()
    campaign = db.session.execute(sa.select(InspectionCampaign)).scalar_one()
    assert campaign.population_size == 3 and campaign.ratio == 50 and len(campaign.inspections) == 2
    url = f"/campaigns/{campaign.id}"
    page = text(client.get(url))
    assert 'data-testid="population">3<' in page and 'data-testid="ratio">50%<' in page
    assert f"/draws/{campaign.engagement_draw_id}" in page
    inspector_names = [p.name for i in campaign.inspections for p in i.inspectors]
    assert all(name in page for name in inspector_names)
    drawn = {i.engagement.reference for i in campaign.inspections}
    assert all(reference in page for reference in drawn)
    assert client.get(f"/draws/{campaign.engagement_draw_id}").status_code == 200

    # nothing is public before the list is published; results cannot come first
    client.post("/logout")
    assert not any(reference in text(client.get("/public/inspections")) for reference in drawn)
    login(world.bz_admin)
    response = client.post(f"{url}/publish-results")
    assert response.status_code == 409 and "须先公开抽查名单" in text(response)
    assert client.post(f"{url}/publish-list").status_code == 302
    assert db.session.get(InspectionCampaign, campaign.id).status == CampaignStatus.LIST_PUBLISHED
    assert client.post(f"{url}/publish-list").status_code == 409
    response = client.post(f"{url}/publish-results")
    assert response.status_code == 409 and "还有 2 项检查未办结" in text(response)

    client.post("/logout")
    public = text(client.get("/public/inspections"))
    assert all(reference in public for reference in drawn)
    assert world.firm.name in public and "巴音郭楞蒙古自治州财政局" in public and "检查中" in public
    assert not any(name in public for name in inspector_names)

    # the inspectors do the work: one clean, one with a minor finding and no measures
    first, second = campaign.inspections
    officer = {i.id: next(p.user for p in i.inspectors if p.user_id) for i in (first, second)}  # drawn, independent
    for inspection in (first, second):
        login(officer[inspection.id])
        assert client.post(f"/inspections/{inspection.id}/checklist", data=_all_ok()).status_code == 302
    assert client.post(f"/inspections/{second.id}/findings",
                       data={"severity": "minor", "description": "个别底稿未签名"}).status_code == 302
    assert db.session.get(Inspection, second.id).status == InspectionStatus.OPEN
    for inspection, conclusion in ((first, "底稿完整，评分有据，未发现问题。"), (second, "存在轻微问题，已当场提醒，予以办结。")):
        login(officer[inspection.id])
        assert client.post(f"/inspections/{inspection.id}/close", data={"conclusion": conclusion}).status_code == 302

    login(world.bz_admin)
    assert client.post(f"{url}/publish-results").status_code == 302
    assert db.session.get(InspectionCampaign, campaign.id).status == CampaignStatus.RESULTS_PUBLISHED
    client.post("/logout")
    public = text(client.get("/public/inspections"))
    assert "底稿完整，评分有据，未发现问题。" in public and "存在轻微问题，已当场提醒，予以办结。" in public
    assert 'data-testid="severity-minor"' in public and "未发现问题" in public
    assert "个别底稿未签名" not in public  # severities only
    assert not any(name in public for name in inspector_names)
    # a targeted case is never on the public page
    case = _case(world, detail="定向检查的线索不公开")
    V.record_checklist(case, factories.recorder(case), {k: (True, "") for k, _ in CHECKLIST})
    V.close(case, factories.recorder(case), "定向检查的结论也不在抽查公示中。")
    db.session.commit()
    public = text(client.get("/public/inspections"))
    assert "定向检查的线索不公开" not in public and "定向检查的结论也不在抽查公示中。" not in public


# --- complaints: the public form -------------------------------------------------------------------

def _form(world, **kw):
    data = {"bureau_id": str(world.bz.id), "firm_name": world.firm.name, "engagement_reference": "",
            "text": COMPLAINT_TEXT, "complainant_name": COMPLAINANT, "complainant_contact": CONTACT}
    data.update(kw)
    return data


def test_the_public_complaint_form_gives_a_reference(client, world):
    client.post("/logout")
    page = text(client.get("/public/complaints"))
    assert "巴音郭楞蒙古自治州财政局" in page and "克孜勒苏柯尔克孜自治州财政局" in page
    response = client.post("/public/complaints", data=_form(world), environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 200
    complaint = db.session.execute(sa.select(Complaint)).scalar_one()
    assert complaint.reference in text(response) and complaint.reference.startswith("TS")
    assert complaint.firm_id == world.firm.id and complaint.complainant_contact == CONTACT
    assert complaint.client_digest == V.client_digest("203.0.113.7")
    assert "203.0.113.7" not in complaint.client_digest


@pytest.mark.parametrize("changes, message", [
    ({"bureau_id": ""}, "请选择受理的财政局"),
    ({"bureau_id": "999999"}, "请选择受理的财政局"),
    ({"firm_name": "  "}, "请填写被投诉的第三方机构名称"),
    ({"text": "太短了"}, "请具体说明投诉事项（不少于 20 字）"),
    ({"text": "长" * 5001}, "投诉事项不能超过 5000 个字符"),
    ({"complainant_contact": "1" * 101}, "联系方式（选填）不能超过 100 个字符"),
])
def test_bad_complaints_are_refused_with_nothing_written(client, world, changes, message):
    client.post("/logout")
    response = client.post("/public/complaints", data=_form(world, **changes))
    assert response.status_code == 422 and message in text(response)
    assert count(Complaint) == 0


def test_complaints_are_rate_limited_per_address(client, world):
    set_setting(world.bz, "supervision.complaints_per_hour", 2, world.bz_admin)
    db.session.commit()
    client.post("/logout")
    for _ in range(2):
        assert client.post("/public/complaints", data=_form(world), environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 200
    response = client.post("/public/complaints", data=_form(world), environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert response.status_code == 429 and "提交过于频繁，请一小时后再试。" in text(response)
    assert count(Complaint) == 2
    # another sender is not held back by the first one's limit
    assert client.post("/public/complaints", data=_form(world), environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 200
    assert count(Complaint) == 3


def test_the_public_form_never_shows_another_complaint(client, login, world):
    first = _complaint(world, address="10.0.0.9", text="第一位投诉人的投诉：评价机构收取被评价单位的好处费。",
                       complainant_name="第一位投诉人", complainant_contact="first-contact@example.com")
    client.post("/logout")
    for response in (client.get("/public/complaints"),
                     client.post("/public/complaints", data=_form(world), environ_base={"REMOTE_ADDR": "10.0.0.10"}),
                     client.post("/public/complaints", data=_form(world, text="短"), environ_base={"REMOTE_ADDR": "10.0.0.10"}),
                     client.get("/public/inspections")):
        page = text(response)
        for secret in (first.reference, first.text, "第一位投诉人", "first-contact@example.com"):
            assert secret not in page, secret
    # nor does a later visitor see the second sender's reference or contact
    second = db.session.execute(sa.select(Complaint).where(Complaint.id != first.id)).scalar_one()
    page = text(client.get("/public/complaints"))
    assert second.reference not in page and CONTACT not in page


def test_a_complaint_case_needs_valid_input_and_the_own_bureau(client, login, world):
    complaint = _complaint(world, firm_name="机构库里没有的评价公司")
    url = f"/complaints/{complaint.id}/case"
    login(world.bz_staff)
    page = text(client.get(f"/complaints/{complaint.id}"))
    assert "未在机构库中找到同名机构" in page
    response = client.post(url, data={"firm_id": "", "detail": "投诉线索"})
    assert response.status_code == 422 and "请选择被检查的机构" in text(response)
    response = client.post(url, data={"firm_id": str(world.firm.id), "engagement_reference": "652800-2025-999",
                                      "detail": "投诉线索"})
    assert response.status_code == 422 and "未找到评价任务 652800-2025-999" in text(response)
    response = client.post(url, data={"firm_id": str(world.firm.id), "detail": ""})
    assert response.status_code == 422 and "请写明线索内容" in text(response)
    assert count(Inspection) == 0 and db.session.get(Complaint, complaint.id).status == ComplaintStatus.RECEIVED
    # the region reads the complaint but opening the case is 巴州's business
    login(world.region_admin)
    page = text(client.get(f"/complaints/{complaint.id}"))
    assert CONTACT in page and 'data-testid="open-case"' not in page
    assert client.post(url, data={"firm_id": str(world.firm.id), "detail": "投诉线索"}).status_code == 403
    assert count(Inspection) == 0


def test_the_complaint_list_filters_by_status(client, login, world):
    received = _complaint(world, address="10.1.0.1")
    opened = _complaint(world, address="10.1.0.2")
    V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="线索", complaint=opened)
    db.session.commit()
    login(world.bz_staff)
    page = text(client.get("/complaints?status=received"))
    assert received.reference in page and opened.reference not in page
    page = text(client.get("/complaints?status=case_opened"))
    assert opened.reference in page and received.reference not in page


# --- the dashboard card ----------------------------------------------------------------------------

def test_the_dashboard_card_counts_inspections_and_findings_in_scope(client, login, world):
    open_case = _case(world)
    V.add_finding(open_case, factories.recorder(open_case), severity=Severity.SERIOUS, description="报告数据与底稿不符")
    closed_case = _case(world, detail="评审得分偏低：58 分")  # another lead: the same one entered twice is one case
    V.add_finding(closed_case, factories.recorder(closed_case), severity=Severity.MINOR, description="个别底稿未签名")
    V.record_checklist(closed_case, factories.recorder(closed_case), {k: (True, "") for k, _ in CHECKLIST})
    V.close(closed_case, factories.recorder(closed_case), "轻微问题已当场纠正，予以办结。")
    _case(world, "kz", firm=world.other_firm, detail="克州线索")
    db.session.commit()

    page = text(login(world.bz_admin).get("/"))
    assert 'data-testid="inspections-open">1<' in page and 'data-testid="inspections-closed">1<' in page
    assert 'data-testid="findings-serious">1<' in page and 'data-testid="findings-minor">1<' in page
    assert 'data-testid="findings-general">0<' in page
    page = text(login(world.kz_admin).get("/"))
    assert 'data-testid="inspections-open">1<' in page and 'data-testid="inspections-closed">0<' in page
    assert 'data-testid="findings-serious">0<' in page
    page = text(login(world.region_admin).get("/"))
    assert 'data-testid="inspections-open">2<' in page
