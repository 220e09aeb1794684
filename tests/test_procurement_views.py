"""Procurement pages: plans, engagements and their timeline, procurement, bids, committee, scores, award,
contract, the marketplace and the firm's workspace — who may open what, what each page refuses, and the
whole road from plan to contract through the browser's forms."""
from __future__ import annotations

import io
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.enums import Field, Role
from evalhub.core.models import Bureau
from evalhub.core.exports import to_xlsx
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.imports import PLAN_COLUMNS
from evalhub.procurement.models import (
    Award,
    Bid,
    BidStatus,
    CommitteeMember,
    Contract,
    Engagement,
    EngagementState as S,
    EngagementTransition,
    EvaluationPlan,
    ObjectType,
    PlanItem,
    PlanStatus,
    Procurement,
    ProcurementMethod as M,
    ProcurementStatus,
    TechnicalScore,
)
from evalhub.registry.services import StaffInput, add_staff
from tests import factories
from tests.kept_states import kept

USERS = ["sysadmin", "region_admin", "bz_admin", "bz_staff", "krl_admin", "kz_admin", "firm_user", "other_firm_user",
         "expert_user"]


def text(response) -> str:
    return response.get_data(as_text=True)


def count(model) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def _docx(content: str = "技术方案") -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(content)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _staff(firm, name: str | None = None):
    from evalhub.core.models import User

    admin = db.session.execute(sa.select(User).where(User.role == Role.SYSTEM_ADMIN)).scalar_one()
    return add_staff(firm, StaffInput(name=name or f"{firm.name[:4]}负责人", id_number=factories.id_number(),
                                      role="项目负责人", years_experience=10), admin)


def _bidder(world, name: str):
    firm = factories.firm(world.bz, name=name)
    user = factories.user(f"bidder{firm.id}", Role.FIRM_USER, firm_id=firm.id)
    return firm, user, _staff(firm, f"{name}负责人")


def _item_data(world, **overrides) -> dict:
    data = {"name": "巴州统计局第五次全国经济普查项目", "object_type": "project", "budget_kind": "general",
            "field": "finance", "service_kind": "key_evaluation", "amount_wan": "1,234.56",
            "budget_unit_id": str(world.units["巴州统计局"].id), "commissioner_unit_id": "", "reason": "资金量大、社会关注度高"}
    data.update(overrides)
    return data


def _consultation(world, engagement=None, *, days: int = 10) -> Procurement:
    engagement = engagement or factories.engagement(world)
    p = factories.witnessed(P.open_procurement(engagement, P.ProcurementInput(
        method=M.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=factories.bid_deadline(world.bz, days)), world.bz_staff))
    db.session.commit()
    return p


def _service_bid(p, user, staff, price):
    bid = P.submit_bid(p, P.BidInput(price_wan=price, team_staff_ids=[staff.id], lead_staff_id=staff.id,
                                     technical_filename="方案.docx", technical_data=_docx(f"方案 {user.username}")), user)
    db.session.commit()
    return bid


def _past_deadline(p):
    p.bid_deadline = utcnow() - timedelta(minutes=1)
    db.session.commit()


def _contract_form(**overrides) -> dict:
    data = {"amount_wan": "45", "signed_on": "2025-03-01", "start_date": "2025-03-01", "end_date": "2025-12-31",
            "plan_due": "2025-04-01", "report_due": "2025-11-01", "deliverables": "实施方案、评价报告、工作底稿"}
    data.update(overrides)
    return data


# --- access: who may open which page ---------------------------------------------------------------

@pytest.fixture()
@kept
def scene(world):
    """A 巴州 draft plan with one item, a planned engagement, an open consultation with firm1's sealed bid,
    an engagement contracted to firm1, and a 库尔勒市 plan."""
    _staff(world.firm, "示范负责人")
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    item = P.add_plan_item(plan, P.PlanItemInput(
        name="巴州民政局养老服务补贴", object_type=ObjectType.PROJECT, budget_kind="一般公共预算", field=Field.FINANCE,
        amount_wan="800", budget_unit_id=world.units["巴州民政局"].id, reason="社会关注度高"), world.bz_staff)
    planned = factories.engagement(world)
    consultation = _consultation(world)
    staff = world.firm.staff[0]
    bid = _service_bid(consultation, world.firm_user, staff, "40")
    contracted = factories.contracted(world)
    krl_plan = P.get_or_create_plan(world.krl, 2026, world.krl_staff)
    db.session.commit()
    return dict(plan=plan.id, item=item.id, planned=planned.id, procurement=consultation.id, bid=bid.id,
                contracted=contracted.id, krl_plan=krl_plan.id)


PAGES = {
    # url template: {user: status}; users not named get 403
    "/plans": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200, krl_admin=200, kz_admin=200),
    "/plans/new": dict(region_admin=200, bz_admin=200, bz_staff=200, krl_admin=200, kz_admin=200),
    "/plans/{plan}": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200),
    "/plans/{plan}?export=xlsx": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200),
    "/plans/{krl_plan}": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200, krl_admin=200),
    "/plans/{plan}/items/{item}/edit": dict(sysadmin=200, bz_admin=200, bz_staff=200),
    "/plans/{plan}/import": dict(sysadmin=200, bz_admin=200, bz_staff=200),
    "/plans/template.xlsx": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200, krl_admin=200, kz_admin=200),
    "/engagements": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200, krl_admin=200, kz_admin=200,
                         firm_user=200, other_firm_user=200),
    "/engagements?export=xlsx": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200, krl_admin=200,
                                     kz_admin=200, firm_user=200, other_firm_user=200),
    "/engagements/{planned}": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200),
    "/engagements/{contracted}": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200, firm_user=200),
    "/engagements/{planned}/procure": dict(sysadmin=200, bz_admin=200, bz_staff=200),
    "/procurements/{procurement}": dict(sysadmin=200, region_admin=200, bz_admin=200, bz_staff=200, firm_user=302),
    "/procurements/{procurement}/bid": dict(firm_user=200),
    "/bids/{bid}/technical": dict(firm_user=200),  # sealed: not even the bureau before opening
    "/market": dict(firm_user=200, other_firm_user=200),
    "/workspace": dict(firm_user=200, other_firm_user=200),
}


@pytest.mark.parametrize("url", list(PAGES))
def test_each_page_answers_its_roles_and_refuses_the_others(world, scene, login, url, client):
    path = url.format(**scene)
    for username in USERS:
        expected = PAGES[url].get(username, 403)
        response = login(getattr(world, username)).get(path)
        assert response.status_code == expected, (username, path, response.status_code)
        if expected == 200 and ("export" in path or path.endswith(".xlsx")):
            assert response.data[:2] == b"PK"
    client.post("/logout")
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"], path


@pytest.mark.parametrize("url", [
    "/plans/{plan}/items", "/plans/{plan}/items/{item}/delete", "/plans/{plan}/approve", "/engagements/{planned}/transitions",
    "/engagements/{planned}/procure", "/procurements/{procurement}/open", "/procurements/{procurement}/award",
    "/procurements/{procurement}/fail", "/procurements/{procurement}/approve", "/procurements/{procurement}/committee/enter",
    "/procurements/{procurement}/committee/make-up", "/procurements/{procurement}/committee/reform",
    "/procurements/{procurement}/bid", "/procurements/{procurement}/bid/withdraw", "/engagements/{contracted}/contract",
])
def test_other_bureaus_firms_and_anonymous_users_cannot_post(world, scene, login, client, url):
    path = url.format(**scene)
    before = (count(PlanItem), count(Procurement), count(EngagementTransition), count(Bid), count(CommitteeMember))
    bureau_only = "/bid" not in path
    refused = ["kz_admin", "krl_admin", "expert_user", "other_firm_user"] + (["firm_user"] if bureau_only else
                                                                            ["bz_admin", "bz_staff", "sysadmin"])
    for username in refused:
        response = login(getattr(world, username)).post(path, data={"reason": "x", "note": "x", "reasons": "x",
                                                                     "names": "甲\n乙\n丙", "price_wan": "10"})
        assert response.status_code == 403, (username, path, response.status_code)
    client.post("/logout")
    response = client.post(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    db.session.expire_all()
    assert (count(PlanItem), count(Procurement), count(EngagementTransition), count(Bid), count(CommitteeMember)) == before


def test_the_region_supervises_but_does_not_edit_a_prefecture_plan(world, scene, login):
    client = login(world.region_admin)
    assert client.post(f"/plans/{scene['plan']}/items", data=_item_data(world)).status_code == 403
    assert client.post(f"/plans/{scene['plan']}/approve", data={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"}).status_code == 403
    assert client.get(f"/engagements/{scene['planned']}/procure").status_code == 403
    body = text(client.get(f"/procurements/{scene['procurement']}"))
    assert "开标" not in body or 'data-testid="open-bids"' not in body


def test_lists_are_scoped_to_the_organisation(world, scene, login):
    krl = text(login(world.krl_admin).get("/plans"))
    assert "库尔勒市财政局" in krl and "巴音郭楞蒙古自治州财政局" not in krl
    bz = text(login(world.bz_admin).get("/plans"))
    assert "库尔勒市财政局" in bz and "巴音郭楞蒙古自治州财政局" in bz
    kz = text(login(world.kz_admin).get("/engagements"))
    assert "652800-" not in kz
    firm1 = text(login(world.firm_user).get("/engagements"))
    contracted = db.session.get(Engagement, scene["contracted"])
    planned = db.session.get(Engagement, scene["planned"])
    assert contracted.reference in firm1 and planned.reference not in firm1
    assert contracted.reference not in text(login(world.other_firm_user).get("/engagements"))
    assert login(world.other_firm_user).get(f"/engagements/{contracted.id}").status_code == 403


def test_a_bid_stays_sealed_until_opening(world, scene, login):
    p = db.session.get(Procurement, scene["procurement"])
    body = text(login(world.bz_admin).get(f"/procurements/{p.id}"))
    assert "投标截止前不可查看" in body and "40.00" not in body and world.firm.name not in body
    assert 'data-testid="open-bids"' not in body
    assert login(world.bz_staff).post(f"/procurements/{p.id}/open").status_code == 409
    # the other firm neither sees the bid nor its file
    assert login(world.other_firm_user).get(f"/bids/{scene['bid']}/technical").status_code == 403
    assert login(world.bz_admin).get(f"/bids/{scene['bid']}/technical").status_code == 403
    _past_deadline(p)
    body = text(login(world.bz_admin).get(f"/procurements/{p.id}"))
    assert 'data-testid="open-bids"' in body and "40.00" not in body


def test_the_audit_log_does_not_name_bidders_before_opening(world, scene, login):
    p = db.session.get(Procurement, scene["procurement"])
    sealed = f"{world.firm.name} 提交投标"
    admin = login(world.bz_admin)
    for url in ("/audit", "/audit?action=bid.", f"/audit?actor={world.firm_user.username}", "/"):
        response = admin.get(url)
        assert response.status_code == 200 and sealed not in text(response), url
    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(admin.get("/audit?export=xlsx").data)).active
    assert not any(sealed in str(v) for row in sheet.iter_rows(values_only=True) for v in row)
    _past_deadline(p)
    assert login(world.bz_staff).post(f"/procurements/{p.id}/open").status_code == 302
    assert sealed in text(login(world.bz_admin).get("/audit?action=bid."))


# --- plans -----------------------------------------------------------------------------------------

def test_a_plan_is_created_filled_and_approved_through_the_pages(world, login):
    client = login(world.lt_staff)
    response = client.post("/plans/new", data={"year": "2026"})
    assert response.status_code == 302
    plan = db.session.execute(sa.select(EvaluationPlan)).scalar_one()
    assert plan.bureau_id == world.lt.id and plan.year == 2026
    again = client.post("/plans/new", data={"year": "2026"}, follow_redirects=True)
    assert "已存在" in text(again) and count(EvaluationPlan) == 1
    assert client.post("/plans/new", data={"year": "二〇二六"}).status_code == 422

    unit = world.units["轮台县医疗保障局"].id
    response = client.post(f"/plans/{plan.id}/items", data=_item_data(world, budget_unit_id=str(unit)))
    assert response.status_code == 302
    item = db.session.execute(sa.select(PlanItem)).scalar_one()
    assert item.amount == Decimal("12345600.00")
    body = text(client.get(f"/plans/{plan.id}"))
    assert "1,234.56" in body and "不少于 5 项" in body and "部门整体支出" in body  # checks shown before approval

    response = client.post(f"/plans/{plan.id}/items/{item.id}/edit",
                           data=_item_data(world, budget_unit_id=str(unit), amount_wan="100", name="轮台县医保基金"))
    assert response.status_code == 302 and db.session.get(PlanItem, item.id).amount == Decimal("1000000.00")

    assert client.post(f"/plans/{plan.id}/approve", data={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"}).status_code == 403  # staff
    admin = login(world.lt_admin)
    body = text(admin.get(f"/plans/{plan.id}"))
    assert 'data-testid="approve-plan"' in body and "仍予批准的理由" in body
    response = admin.post(f"/plans/{plan.id}/approve", data={})
    assert response.status_code == 422 and "请写明仍予批准的理由" in text(response)
    assert db.session.get(EvaluationPlan, plan.id).status == PlanStatus.DRAFT and count(Engagement) == 0
    response = admin.post(f"/plans/{plan.id}/approve", data={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(EvaluationPlan, plan.id).status == PlanStatus.APPROVED
    engagement = db.session.execute(sa.select(Engagement)).scalar_one()
    assert engagement.reference == "652822-2026-001" and engagement.state == S.PLANNED
    body = text(admin.get(f"/plans/{plan.id}"))
    assert engagement.reference in body and 'data-testid="add-plan-item"' not in body
    assert 'data-testid="approval-reason"' in body and "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。" in body  # the reason shows on the plan
    # an approved plan is closed for editing
    assert client.post(f"/plans/{plan.id}/items", data=_item_data(world, budget_unit_id=str(unit))).status_code == 409
    assert client.post(f"/plans/{plan.id}/items/{item.id}/delete").status_code == 409
    assert client.get(f"/plans/{plan.id}/import").status_code == 409


def test_plan_item_errors_are_shown_and_nothing_is_written(world, login):
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    client = login(world.bz_staff)
    unit = str(world.units["巴州统计局"].id)
    response = client.post(f"/plans/{plan.id}/items", data=_item_data(world, commissioner_unit_id=unit))
    assert response.status_code == 422 and "主体分离" in text(response)
    response = client.post(f"/plans/{plan.id}/items", data=_item_data(
        world, name="", amount_wan="-3", reason="", budget_unit_id=str(world.units["克州农业农村局"].id)))
    body = text(response)
    assert response.status_code == 422
    assert "请填写评价对象名称" in body and "金额（万元）必须大于 0" in body and "请填写选取理由" in body
    assert "不属于巴州或其下级" in body
    assert count(PlanItem) == 0


def test_a_plan_with_an_error_cannot_be_approved_even_when_warnings_are_acknowledged(world, login):
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    response = login(world.bz_admin).post(f"/plans/{plan.id}/approve", data={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"})
    assert response.status_code == 422 and "计划中还没有评价对象" in text(response)
    assert db.session.get(EvaluationPlan, plan.id).status == PlanStatus.DRAFT


def test_deleting_a_plan_item(world, scene, login):
    response = login(world.bz_staff).post(f"/plans/{scene['plan']}/items/{scene['item']}/delete")
    assert response.status_code == 302 and db.session.get(PlanItem, scene["item"]) is None
    assert login(world.bz_staff).post(f"/plans/{scene['plan']}/items/99999/delete").status_code == 404


def _plan_sheet(rows: list[dict]) -> bytes:
    return to_xlsx(rows, "评价对象", columns=list(PLAN_COLUMNS))


def _row(**overrides) -> dict:
    row = {"评价对象名称": "巴州统计局统计调查项目", "评价类型": "项目支出", "预算类别": "一般公共预算", "业务领域": "统计",
           "委托事项": "", "金额（万元）": "320.5", "被评价单位": "巴州统计局", "委托方": "", "选取理由": "资金量大"}
    row.update(overrides)
    return row


def test_plan_items_are_imported_from_excel(world, login):
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    client = login(world.bz_staff)
    template = client.get("/plans/template.xlsx")
    assert template.status_code == 200 and template.data[:2] == b"PK"
    second = _row(评价对象名称="巴州民政局低保资金", 被评价单位="巴州民政局", 委托方="巴州统计局", 业务领域="社会保障")
    second["金额（万元）"] = "1,000"
    sheet = _plan_sheet([_row(), second])
    response = client.post(f"/plans/{plan.id}/import", data={"file": (io.BytesIO(sheet), "计划.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    job_page = text(client.get(response.headers["Location"]))
    assert "已导入 2 个评价对象" in job_page
    db.session.expire_all()
    items = db.session.execute(sa.select(PlanItem).order_by(PlanItem.position)).scalars().all()
    assert [i.amount for i in items] == [Decimal("3205000.00"), Decimal("10000000.00")]
    assert items[1].commissioner_unit.name == "巴州统计局"


def test_an_excel_file_with_a_bad_row_imports_nothing_and_the_job_page_lists_the_row(world, login):
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    client = login(world.bz_staff)
    sheet = _plan_sheet([_row(), _row(评价对象名称="克州的项目", 被评价单位="克州农业农村局"),
                         _row(评价对象名称="自己评自己", 委托方="巴州统计局")])
    response = client.post(f"/plans/{plan.id}/import", data={"file": (io.BytesIO(sheet), "计划.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    body = text(client.get(response.headers["Location"]))
    assert 'data-testid="import-errors"' in body and "未导入任何评价对象" in body
    assert "<td>3</td>" in body and "克州农业农村局" in body
    assert "<td>4</td>" in body and "主体分离" in body
    assert count(PlanItem) == 0
    # not an Excel file: refused at upload, no job
    response = client.post(f"/plans/{plan.id}/import", data={"file": (io.BytesIO(b"name,amount\n"), "计划.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "文件类型不符" in text(response)


# --- engagements -----------------------------------------------------------------------------------

def test_engagement_list_filters_and_export(world, login):
    overdue = factories.contracted(world)  # plan due 2025-04-01, long past
    planned = factories.engagement(world, year=2026)
    db.session.commit()
    client = login(world.bz_staff)
    body = text(client.get("/engagements"))
    assert overdue.reference in body and planned.reference in body and "已逾期" in body
    body = text(client.get("/engagements?overdue=1"))
    assert overdue.reference in body and planned.reference not in body
    body = text(client.get("/engagements?year=2026"))
    assert overdue.reference not in body and planned.reference in body
    body = text(client.get("/engagements?state=contracted"))
    assert overdue.reference in body and planned.reference not in body
    export = client.get("/engagements?export=xlsx&overdue=1")
    assert export.status_code == 200 and export.data[:2] == b"PK"
    import pandas as pd

    frame = pd.read_excel(io.BytesIO(export.data))
    assert list(frame["任务编号"]) == [overdue.reference] and "实施方案应于 2025-04-01 前提交" in frame["逾期情况"][0]


def test_overdue_engagements_on_the_dashboard_and_in_the_firm_workspace(world, login):
    engagement = factories.contracted(world)
    db.session.commit()
    body = text(login(world.bz_admin).get("/"))
    assert 'data-testid="overdue-card"' in body and engagement.reference in body and "已逾期" in body
    assert engagement.reference not in text(login(world.kz_admin).get("/"))
    body = text(login(world.firm_user).get("/workspace"))
    assert engagement.reference in body and "实施方案应于 2025-04-01 前提交" in body
    body = text(login(world.bz_staff).get(f"/engagements/{engagement.id}"))
    assert 'data-testid="overdue-reason"' in body


def test_state_machine_buttons_and_the_timeline(app, world, login):
    engagement = factories.contracted(world)
    db.session.commit()
    firm = login(world.firm_user)
    body = text(firm.get(f"/engagements/{engagement.id}"))
    assert 'data-testid="transition-cancel"' not in body  # a bureau admin's step
    if "review.submission_new" in app.view_functions:
        # the work plan is submitted on the review module's page, with the document; not by a bare button
        assert f'href="/engagements/{engagement.id}/submissions/new" data-testid="action-submit_plan"' in body
        assert firm.post(f"/engagements/{engagement.id}/transitions", data={"action": "submit_plan"}).status_code == 409
    else:
        assert 'data-testid="transition-submit_plan"' in body
    staff = login(world.bz_staff)
    body = text(staff.get(f"/engagements/{engagement.id}"))
    assert 'data-testid="transition-cancel"' not in body and 'data-testid="action-submit_plan"' not in body
    # the bureau's staff may not cancel (admins only); steps of other states and of other pages are refused
    assert staff.post(f"/engagements/{engagement.id}/transitions", data={"action": "cancel", "note": "x"}).status_code == 403
    assert staff.post(f"/engagements/{engagement.id}/transitions", data={"action": "archive"}).status_code == 409
    assert staff.post(f"/engagements/{engagement.id}/transitions", data={"action": "sign_contract"}).status_code == 409
    assert staff.post(f"/engagements/{engagement.id}/transitions", data={"action": "no_such_step"}).status_code == 409
    assert firm.post(f"/engagements/{engagement.id}/transitions", data={"action": "cancel", "note": "x"}).status_code == 403
    admin = login(world.bz_admin)
    assert 'data-testid="transition-cancel"' in text(admin.get(f"/engagements/{engagement.id}"))
    transitions = count(EngagementTransition)
    response = admin.post(f"/engagements/{engagement.id}/transitions", data={"action": "cancel", "note": ""})
    assert response.status_code == 422 and "“终止”必须填写说明" in text(response)
    assert count(EngagementTransition) == transitions
    db.session.expire_all()
    assert db.session.get(Engagement, engagement.id).state == S.CONTRACTED
    response = admin.post(f"/engagements/{engagement.id}/transitions", data={"action": "cancel", "note": "项目取消"})
    assert response.status_code == 302
    body = text(admin.get(f"/engagements/{engagement.id}"))
    assert 'data-testid="engagement-state">已终止<' in body
    for step in ["启动采购", "发起采购（单一来源）", "单一来源采购审批通过", "定标", "合同登记", "签订合同", "终止",
                 "项目取消", "采购中 → 已签约", "已签约 → 已终止", "bz.staff", "bz.admin"]:
        assert step in body, step
    assert "当前没有您可以办理的操作" in body


# --- procurement -----------------------------------------------------------------------------------

def _beijing_text(at: datetime) -> str:
    from evalhub.core.timeutil import to_beijing

    return to_beijing(at).strftime("%Y-%m-%dT%H:%M")


def _procure_form(**overrides) -> dict:
    data = {"method": "competitive_consultation", "title": "", "ceiling_price_wan": "50", "price_weight": "20",
            "bid_deadline": _beijing_text(factories.bid_deadline(db.session.execute(sa.select(Bureau)).scalars().first(), 11)),
            "description": "",
            "framework_agreement_id": "", "single_source_firm_id": "", "justification": "", "rerun_reason": ""}
    for i, (name, points) in enumerate(P.DEFAULT_BID_RUBRIC):
        data[f"rubric-{i}-name"] = name
        data[f"rubric-{i}-points"] = str(points)
    data.update(overrides)
    return data


def test_the_procure_form_shows_the_eligibility_assessment_with_reasons(world, login):
    from evalhub.registry.models import FirmStatus

    engagement = factories.engagement(world)
    factories.firm(world.bz, FirmStatus.SUSPENDED, name="暂停的机构")
    factories.firm(world.bz, name="水利专业机构", fields=[Field.WATER])
    db.session.commit()
    body = text(login(world.bz_staff).get(f"/engagements/{engagement.id}/procure"))
    assert 'name="method"' in body and 'data-testid="open-procurement"' in body
    assert world.firm.name in body
    assert "暂停的机构" in body and "机构库状态为“暂停”" in body
    assert "水利专业机构" in body and "业务领域不含“财政经济”" in body
    assert "克州另一家评价有限公司" not in body  # not a library this bureau uses


def test_a_consultation_with_a_bad_weight_is_refused_and_nothing_is_written(world, login):
    engagement = factories.engagement(world)
    db.session.commit()
    client = login(world.bz_staff)
    response = client.post(f"/engagements/{engagement.id}/procure", data=_procure_form(price_weight="35"))
    assert response.status_code == 422 and "竞争性磋商的价格分权重应在 10%–30% 之间" in text(response)
    response = client.post(f"/engagements/{engagement.id}/procure", data=_procure_form(
        **{"rubric-0-points": "30", "bid_deadline": ""}))
    body = text(response)
    assert response.status_code == 422 and "技术评分项分值合计应为 100" in body and "请设置投标截止时间" in body
    response = client.post(f"/engagements/{engagement.id}/procure", data=_procure_form(
        method="single_source", single_source_firm_id=str(world.firm.id), justification="太短"))
    assert response.status_code == 422 and "不少于 20 字" in text(response)
    db.session.expire_all()
    assert count(Procurement) == 0 and count(EngagementTransition) == 0
    assert db.session.get(Engagement, engagement.id).state == S.PLANNED


def test_the_deadline_is_entered_in_beijing_time_and_stored_in_utc(world, login):
    engagement = factories.engagement(world)
    db.session.commit()
    response = login(world.bz_staff).post(f"/engagements/{engagement.id}/procure",
                                          data=_procure_form(bid_deadline="2030-06-01T17:00"))
    assert response.status_code == 302
    p = db.session.execute(sa.select(Procurement)).scalar_one()
    assert p.bid_deadline == datetime(2030, 6, 1, 9, 0)
    assert p.status == ProcurementStatus.OPEN and len(p.rubric) == 5
    body = text(login(world.bz_staff).get(f"/procurements/{p.id}"))
    assert "2030-06-01 17:00" in body


def test_a_random_draw_awards_at_its_witnessed_reveal_and_links_its_draw(world, login):
    engagement = factories.engagement(world)
    db.session.commit()
    client = login(world.bz_staff)
    response = client.post(f"/engagements/{engagement.id}/procure", data=_procure_form(
        method="random_draw", ceiling_price_wan="15", price_weight="", bid_deadline=""))
    assert response.status_code == 302
    p = db.session.execute(sa.select(Procurement)).scalar_one()
    assert p.status == ProcurementStatus.EVALUATING and p.draw_id and response.headers["Location"].endswith(f"/procurements/{p.id}")
    factories.witnessed(p)  # announced; the award follows the witnessed reveal
    db.session.commit()
    assert p.status == ProcurementStatus.AWARDED
    body = text(client.get(f"/procurements/{p.id}"))
    # the contract waits for the challenge period after the result notice
    assert f"/draws/{p.draw_id}" in body and 'data-testid="contract-block"' in body and 'data-testid="to-contract"' not in body
    factories.past_challenge_period(p)
    db.session.commit()
    assert 'data-testid="to-contract"' in text(client.get(f"/procurements/{p.id}"))
    body = text(client.get(f"/engagements/{engagement.id}"))
    assert f"/draws/{p.draw_id}" in body
    # the firm that won sees the engagement but not the draw
    body = text(login(world.firm_user).get(f"/engagements/{engagement.id}"))
    assert f"/draws/{p.draw_id}" not in body and world.firm.name in body


def test_single_source_needs_another_admins_approval_on_the_page(world, login):
    engagement = factories.engagement(world)
    admin2 = factories.user("bz.admin2", Role.BUREAU_ADMIN, bureau_id=world.bz.id)
    db.session.commit()
    response = login(world.bz_admin).post(f"/engagements/{engagement.id}/procure", data=_procure_form(
        method="single_source", ceiling_price_wan="10", single_source_firm_id=str(world.firm.id),
        justification="该评价须沿用上一期的指标口径，只有原机构掌握基础数据。"))
    assert response.status_code == 302
    p = db.session.execute(sa.select(Procurement)).scalar_one()
    assert p.status == ProcurementStatus.PENDING_APPROVAL
    assert 'data-testid="approve-single-source"' not in text(login(world.bz_admin).get(f"/procurements/{p.id}"))
    assert login(world.bz_admin).post(f"/procurements/{p.id}/approve", data={"price_wan": "9"}).status_code == 403
    assert login(world.bz_staff).post(f"/procurements/{p.id}/approve", data={"price_wan": "9"}).status_code == 403
    client = login(admin2)
    assert 'data-testid="approve-single-source"' in text(client.get(f"/procurements/{p.id}"))
    response = client.post(f"/procurements/{p.id}/approve", data={"price_wan": "11"})
    assert response.status_code == 422 and "不能超过最高限价" in text(response) and count(Award) == 0
    assert client.post(f"/procurements/{p.id}/approve", data={"price_wan": "9"}).status_code == 302
    assert db.session.get(Procurement, p.id).award.amount == Decimal("90000.00")


def test_bids_through_the_marketplace_edit_withdraw_and_the_ceiling(world, login):
    p = _consultation(world)
    staff = _staff(world.firm, "示范负责人")
    other = _staff(world.firm, "示范评价员")
    suspended, suspended_user, _ = _bidder(world, "被暂停的机构")
    from evalhub.registry.models import FirmStatus

    suspended.status = FirmStatus.SUSPENDED
    db.session.commit()
    client = login(world.firm_user)
    market = text(client.get("/market"))
    assert p.title in market and f'data-testid="bid-link-{p.id}"' in market
    market = text(login(suspended_user).get("/market"))
    assert p.title in market and "机构库状态为“暂停”" in market and f'data-testid="bid-link-{p.id}"' not in market
    assert "机构库状态为“暂停”" in text(login(suspended_user).get(f"/procurements/{p.id}/bid"))
    assert login(suspended_user).post(f"/procurements/{p.id}/bid", data={"price_wan": "40"}).status_code == 403
    assert "克州" not in text(login(world.other_firm_user).get("/market")) or p.title not in text(
        login(world.other_firm_user).get("/market"))

    client = login(world.firm_user)
    body = text(client.get(f"/procurements/{p.id}/bid"))
    assert 'data-testid="submit-bid"' in body and "示范负责人" in body and "示范评价员" in body
    response = client.post(f"/procurements/{p.id}/bid", data={
        "price_wan": "60", "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id),
        "technical_file": (io.BytesIO(_docx()), "方案.docx")}, content_type="multipart/form-data")
    assert response.status_code == 422 and "超过最高限价 50.00 万元" in text(response)
    response = client.post(f"/procurements/{p.id}/bid", data={
        "price_wan": "40", "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id),
        "technical_file": (io.BytesIO(b"plain text"), "方案.txt")}, content_type="multipart/form-data")
    assert response.status_code == 422 and "只接受 Word (.docx) 或 PDF" in text(response)
    assert count(Bid) == 0
    response = client.post(f"/procurements/{p.id}/bid", data={
        "price_wan": "40", "team_staff_ids": [str(staff.id), str(other.id)], "lead_staff_id": str(staff.id),
        "technical_file": (io.BytesIO(_docx()), "方案.docx")}, content_type="multipart/form-data")
    assert response.status_code == 302
    bid = db.session.execute(sa.select(Bid)).scalar_one()
    assert bid.price == Decimal("400000.00") and {m.staff_id for m in bid.team} == {staff.id, other.id}
    # edit without a new file keeps the technical proposal
    response = client.post(f"/procurements/{p.id}/bid", data={
        "price_wan": "38.5", "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id)},
        content_type="multipart/form-data")
    assert response.status_code == 302
    db.session.expire_all()
    bid = db.session.get(Bid, bid.id)
    assert bid.price == Decimal("385000.00") and bid.technical_file_id and len(bid.team) == 1
    body = text(client.get(f"/procurements/{p.id}/bid"))
    assert 'data-testid="own-bid-price">38.50 万元' in body
    assert client.get(f"/bids/{bid.id}/technical").status_code == 200
    assert client.post(f"/procurements/{p.id}/bid/withdraw").status_code == 302
    assert db.session.get(Bid, bid.id).status == BidStatus.WITHDRAWN
    workspace = text(client.get("/workspace"))
    assert p.title in workspace and "已撤回" in workspace
    _past_deadline(p)
    assert client.post(f"/procurements/{p.id}/bid", data={"price_wan": "30", "team_staff_ids": [str(staff.id)]},
                       content_type="multipart/form-data").status_code == 409
    assert "投标已截止" in text(client.get(f"/procurements/{p.id}/bid"))


def test_firm_users_never_see_experts_or_other_firms_bids(world, login):
    engagement = factories.engagement(world)
    for name in ("李专家", "赵专家"):
        factories.expert(world.bz, name=name)
    p = _consultation(world, engagement)
    staff = _staff(world.firm)
    _service_bid(p, world.firm_user, staff, "45")
    rivals = [_bidder(world, n) for n in ("竞争者甲", "竞争者乙")]
    for (_, user, s), price in zip(rivals, ["41", "48"]):
        _service_bid(p, user, s, price)
    _past_deadline(p)
    bureau = login(world.bz_staff)
    assert bureau.post(f"/procurements/{p.id}/open").status_code == 302
    response = bureau.post(f"/procurements/{p.id}/committee/draw", data={"size": "4"})
    assert response.status_code == 422 and "单数" in text(response) and count(CommitteeMember) == 0
    assert bureau.post(f"/procurements/{p.id}/committee/draw", data={"size": "3"}).status_code == 302
    p = db.session.get(Procurement, p.id)
    assert not p.committee and p.committee_draw.status.value == "announced"  # seated at the witnessed reveal
    factories.witnessed(p.committee_draw)
    db.session.commit()
    names = {m.name for m in p.committee}
    assert names == {"王专家", "李专家", "赵专家"}
    body = text(bureau.get(f"/procurements/{p.id}"))
    assert all(n in body for n in names) and "竞争者甲" in body and "41.00" in body
    for member in p.committee:
        scores = {f"score_{b.id}_{i.id}": str(i.max_points * Decimal("0.8")) for b in p.bids for i in p.rubric}
        assert bureau.post(f"/procurements/{p.id}/scores/{member.id}", data=scores).status_code == 302
    # firm1 wins on price-adjusted score? force its win by awarding after it scores best
    for member in p.committee:
        scores = {f"score_{b.id}_{i.id}": str(i.max_points * (Decimal("0.95") if b.firm_id == world.firm.id else Decimal("0.6")))
                  for b in p.bids for i in p.rubric}
        bureau.post(f"/procurements/{p.id}/scores/{member.id}", data=scores)
    assert bureau.post(f"/procurements/{p.id}/award", data={"reasons": "综合得分第一"}).status_code == 302
    assert db.session.get(Procurement, p.id).award.firm_id == world.firm.id
    bureau.get("/")  # the flashed confirmations (which name the committee) are shown to the bureau, here
    firm = login(world.firm_user)
    # the result notice names the committee, by law and for everyone (实施条例 第四十三条): nowhere else
    in_notice = "评审委员会成员：" + "、".join(m.name for m in p.committee)
    for url in (f"/engagements/{engagement.id}", f"/procurements/{p.id}/bid", "/workspace"):
        body = text(firm.get(url)).replace(in_notice, "")
        assert not any(n in body for n in names), url
        assert "竞争者甲" not in body and "竞争者乙" not in body and "41.00" not in body and "48.00" not in body, url
    assert firm.get(f"/procurements/{p.id}").status_code == 302  # to its own bid page, never the bureau's
    rival_bid = next(b for b in p.bids if b.firm.name == "竞争者甲")
    assert firm.get(f"/bids/{rival_bid.id}/technical").status_code == 403
    assert login(world.bz_staff).get(f"/bids/{rival_bid.id}/technical").status_code == 200  # opened: the bureau reads it
    assert login(world.kz_admin).get(f"/bids/{rival_bid.id}/technical").status_code == 403


def test_a_low_bid_is_explained_by_the_firm_and_decided_by_the_bureau(world, login):
    p = _consultation(world)
    low_firm, low_user, low_staff = _bidder(world, "低价机构")
    _service_bid(p, low_user, low_staff, "20")
    for name, price in [("甲", "45"), ("乙", "48")]:
        _, user, staff = _bidder(world, name)
        _service_bid(p, user, staff, price)
    _past_deadline(p)
    bureau = login(world.bz_staff)
    bureau.post(f"/procurements/{p.id}/open")
    body = text(bureau.get(f"/procurements/{p.id}"))
    assert 'data-testid="low-bid-flag"' in body and "等待投标人书面说明" in body
    assert "须投标人说明并经评审委员会认定" in body and "E+" not in body  # "低于平均值的 70%", not "7E+1%"
    low_bid = next(b for b in db.session.get(Procurement, p.id).bids if b.firm_id == low_firm.id)
    firm = login(low_user)
    body = text(firm.get(f"/procurements/{p.id}/bid"))
    assert 'data-testid="explain-bid"' in body
    response = firm.post(f"/procurements/{p.id}/bid/explain", data={"explanation": "便宜"})
    assert response.status_code == 422 and "不少于 10 字" in text(response)
    assert firm.post(f"/procurements/{p.id}/bid/explain",
                     data={"explanation": "本机构在当地已有同类项目团队，差旅成本很低。"}).status_code == 302
    bureau = login(world.bz_staff)
    response = bureau.post(f"/procurements/{p.id}/bids/{low_bid.id}/decision", data={"note": "x"})
    assert response.status_code == 422 and "请选择认定结果" in text(response)
    response = bureau.post(f"/procurements/{p.id}/bids/{low_bid.id}/decision", data={"decision": "reject", "note": "成本构成不合理"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Bid, low_bid.id).justification_decision.value == "rejected"
    assert "说明不合理" in text(login(low_user).get(f"/procurements/{p.id}/bid"))


def test_too_few_bids_fail_the_round_and_a_rerun_needs_a_reason(world, login):
    p = _consultation(world)
    staff = _staff(world.firm)
    _service_bid(p, world.firm_user, staff, "40")
    _past_deadline(p)
    bureau = login(world.bz_staff)
    response = bureau.post(f"/procurements/{p.id}/open", follow_redirects=True)
    assert "不足 2 家" in text(response)
    engagement = db.session.get(Procurement, p.id).engagement
    assert engagement.state == S.FAILED_PROCUREMENT
    body = text(bureau.get(f"/engagements/{engagement.id}"))
    assert 'data-testid="action-rerun_procurement"' in body and "采购失败（流标）" in body
    assert "重新采购原因" in text(bureau.get(f"/engagements/{engagement.id}/procure"))
    response = bureau.post(f"/engagements/{engagement.id}/procure", data=_procure_form(method="random_draw", ceiling_price_wan="15"))
    assert response.status_code == 422 and "须说明原因" in text(response) and count(Procurement) == 1
    response = bureau.post(f"/engagements/{engagement.id}/procure", data=_procure_form(
        method="random_draw", ceiling_price_wan="15", rerun_reason="竞争性磋商流标，金额较小，改为机构库随机抽取"))
    assert response.status_code == 302 and count(Procurement) == 2


def test_failing_a_round_by_hand_needs_a_reason(world, login):
    p = _consultation(world)
    bureau = login(world.bz_staff)
    response = bureau.post(f"/procurements/{p.id}/fail", data={"reason": ""})
    assert response.status_code == 422 and "必须填写说明" in text(response)
    db.session.expire_all()
    assert db.session.get(Procurement, p.id).status == ProcurementStatus.OPEN
    assert db.session.get(Procurement, p.id).engagement.state == S.PROCURING
    assert bureau.post(f"/procurements/{p.id}/fail", data={"reason": "采购需求变更"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Procurement, p.id).status == ProcurementStatus.FAILED
    assert bureau.post(f"/procurements/{p.id}/fail", data={"reason": "再来"}).status_code == 409


def test_a_short_committee_is_shown_and_made_up_on_the_procurement_page(world, login):
    p = _consultation(world)
    for (_, user, staff), price in zip([_bidder(world, n) for n in "甲乙"], ["40", "45"]):
        _service_bid(p, user, staff, price)
    _past_deadline(p)
    bureau = login(world.bz_staff)
    bureau.post(f"/procurements/{p.id}/open")
    assert bureau.post(f"/procurements/{p.id}/committee/enter", data={"names": "甲评委、乙评委、丙评委"}).status_code == 302
    p = db.session.get(Procurement, p.id)
    p.committee.remove(p.committee[0])  # a seat released
    db.session.commit()
    body = text(bureau.get(f"/procurements/{p.id}"))
    assert 'data-testid="committee-short"' in body and "尚缺 1 人" in body
    response = bureau.post(f"/procurements/{p.id}/committee/make-up", data={"names": "丁评委\n戊评委"})
    assert response.status_code == 422 and "请录入 1 名补充评委" in text(response)
    assert bureau.post(f"/procurements/{p.id}/committee/make-up", data={"names": "丁评委"}).status_code == 302
    assert 'data-testid="committee-short"' not in text(bureau.get(f"/procurements/{p.id}"))


def test_award_and_contract_errors(world, login):
    p = _consultation(world)
    bidders = [_bidder(world, n) for n in "甲乙"]
    for (_, user, staff), price in zip(bidders, ["40", "45"]):
        _service_bid(p, user, staff, price)
    _past_deadline(p)
    bureau = login(world.bz_staff)
    bureau.post(f"/procurements/{p.id}/open")
    response = bureau.post(f"/procurements/{p.id}/award", data={"reasons": ""})
    assert response.status_code == 422 and "请填写定标理由" in text(response)
    assert bureau.post(f"/procurements/{p.id}/award", data={"reasons": "第一"}).status_code == 409  # no scores yet
    response = bureau.post(f"/procurements/{p.id}/committee/enter", data={"names": "甲评委\n乙评委"})
    assert response.status_code == 422 and "不少于 3 人的单数" in text(response)
    assert bureau.post(f"/procurements/{p.id}/committee/enter", data={"names": "甲评委、乙评委、丙评委"}).status_code == 302
    p = db.session.get(Procurement, p.id)
    member = p.committee[0]
    bid = p.bids[0]
    item = p.rubric[0]
    response = bureau.post(f"/procurements/{p.id}/scores/{member.id}", data={f"score_{bid.id}_{item.id}": "99"})
    body = text(response)
    assert response.status_code == 422 and "得分应在 0–40 之间" in body and "得分必须是数字" in body
    assert count(TechnicalScore) == 0
    assert bureau.get(f"/engagements/{p.engagement_id}/contract").status_code == 409  # no award yet


# --- the whole road through the web ----------------------------------------------------------------

def test_plan_to_contract_through_the_pages(world, login):
    # plan → item → approve
    staff_client = login(world.bz_staff)
    staff_client.post("/plans/new", data={"year": "2026"})
    plan = db.session.execute(sa.select(EvaluationPlan)).scalar_one()
    response = staff_client.post(f"/plans/{plan.id}/items", data=_item_data(
        world, name="巴州统计局经济普查专项", amount_wan="300", commissioner_unit_id=str(world.units["巴州民政局"].id)))
    assert response.status_code == 302
    admin = login(world.bz_admin)
    assert admin.post(f"/plans/{plan.id}/approve", data={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"}).status_code == 302
    engagement = db.session.execute(sa.select(Engagement)).scalar_one()
    body = text(admin.get(f"/engagements/{engagement.id}"))
    assert 'data-testid="engagement-state">已列入计划<' in body and 'data-testid="action-start_procurement"' in body

    # procure a competitive consultation
    staff_client = login(world.bz_staff)
    response = staff_client.post(f"/engagements/{engagement.id}/procure", data=_procure_form(ceiling_price_wan="50"))
    assert response.status_code == 302
    p = db.session.execute(sa.select(Procurement)).scalar_one()
    assert p.method == M.COMPETITIVE_CONSULTATION and p.status == ProcurementStatus.OPEN

    # three firms bid through the marketplace
    firm1_staff = _staff(world.firm, "示范负责人")
    rivals = [_bidder(world, n) for n in ("天山评价咨询", "孔雀河会计师事务所")]
    db.session.commit()
    for user, staff, price in [(world.firm_user, firm1_staff, "42"), (rivals[0][1], rivals[0][2], "45"),
                               (rivals[1][1], rivals[1][2], "48")]:
        client = login(user)
        assert p.title in text(client.get("/market"))
        response = client.post(f"/procurements/{p.id}/bid", data={
            "price_wan": price, "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id),
            "technical_file": (io.BytesIO(_docx(f"{user.username} 的技术方案")), "技术方案.docx")},
            content_type="multipart/form-data")
        assert response.status_code == 302, text(response)[:2000]
    assert count(Bid) == 3
    assert "投标截止前不可查看" in text(login(world.bz_staff).get(f"/procurements/{p.id}"))

    # the deadline passes; open, committee, scores
    _past_deadline(p)
    staff_client = login(world.bz_staff)
    assert staff_client.post(f"/procurements/{p.id}/open").status_code == 302
    body = text(staff_client.get(f"/procurements/{p.id}"))
    assert "天山评价咨询" in body and "45.00" in body and 'data-testid="enter-committee"' in body
    assert staff_client.post(f"/procurements/{p.id}/committee/enter",
                             data={"names": "张评委\n李评委\n王评委"}).status_code == 302
    p = db.session.get(Procurement, p.id)
    technical = {world.firm.id: Decimal("0.9"), rivals[0][0].id: Decimal("0.8"), rivals[1][0].id: Decimal("0.7")}
    for member in p.committee:
        assert staff_client.get(f"/procurements/{p.id}/scores/{member.id}").status_code == 200
        data = {f"score_{b.id}_{i.id}": f"{i.max_points * technical[b.firm_id]:f}" for b in p.bids for i in p.rubric}
        assert staff_client.post(f"/procurements/{p.id}/scores/{member.id}", data=data).status_code == 302
    body = text(staff_client.get(f"/procurements/{p.id}"))
    assert 'data-testid="evaluation"' in body
    assert "100.00" in body and "90.00" in body and "92.00" in body  # firm1: 0.2 × 100 + 0.8 × 90

    # award and contract
    assert 'data-testid="award"' in body
    assert staff_client.post(f"/procurements/{p.id}/award", data={"reasons": "综合得分第一"}).status_code == 302
    award = db.session.execute(sa.select(Award)).scalar_one()
    assert award.firm_id == world.firm.id and award.amount == Decimal("420000.00") and award.score == Decimal("92.00")
    assert staff_client.get(f"/engagements/{engagement.id}/contract").status_code == 409  # the challenge period
    factories.past_challenge_period(db.session.get(Procurement, p.id))
    db.session.commit()
    body = text(staff_client.get(f"/engagements/{engagement.id}/contract"))
    assert 'data-testid="sign-contract"' in body and 'value="42.00"' in body
    response = staff_client.post(f"/engagements/{engagement.id}/contract", data=_contract_form(
        amount_wan="43", end_date="2025-02-01", deliverables=""))
    body = text(response)
    assert response.status_code == 422 and "合同金额不能超过成交金额" in body and "服务结束日期不能早于开始日期" in body
    assert count(Contract) == 0
    today = beijing_today()
    signed = dict(amount_wan="42", signed_on=str(today), start_date=str(today), end_date=str(today + timedelta(days=200)),
                  plan_due=str(today + timedelta(days=30)), report_due=str(today + timedelta(days=180)))
    # today is past the 30 days from the (back-dated) notice: the form asks why (政府采购法 第四十六条)
    response = staff_client.post(f"/engagements/{engagement.id}/contract", data=_contract_form(**signed))
    assert response.status_code == 422 and "第四十六条" in text(response) and count(Contract) == 0
    response = staff_client.post(f"/engagements/{engagement.id}/contract", data=_contract_form(
        **signed, late_reason="采购文件约定的合同条款经双方协商后方才确定。"))
    assert response.status_code == 302
    assert staff_client.get(f"/engagements/{engagement.id}/contract").status_code == 409  # once

    # the bureau and the firm both see it contracted
    body = text(login(world.bz_admin).get(f"/engagements/{engagement.id}"))
    assert 'data-testid="engagement-state">已签约<' in body and world.firm.name in body
    for step in ["启动采购", "发起采购（竞争性磋商）", "开标", "定标", "签订合同", "合同登记"]:
        assert step in body, step
    assert 'data-testid="overdue-reason"' not in body
    workspace = text(login(world.firm_user).get("/workspace"))
    assert engagement.reference in workspace and "已签约" in workspace
    assert 'data-testid="engagement-state">已签约<' in text(login(world.firm_user).get(f"/engagements/{engagement.id}"))


def test_every_form_on_the_pages_carries_a_csrf_token(app, world, scene, login):
    import re

    client = login(world.bz_admin)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        for url in (f"/plans/{scene['plan']}", f"/engagements/{scene['planned']}", f"/engagements/{scene['planned']}/procure",
                    f"/engagements/{scene['contracted']}"):
            body = text(client.get(url))
            forms = re.findall(r'<form method="post".*?</form>', body, re.S)
            assert forms and all('name="csrf_token"' in f for f in forms), url
        response = client.post(f"/engagements/{scene['contracted']}/transitions", data={"action": "cancel", "note": "x"})
        assert response.status_code == 400 and "CSRF" in text(response)
        assert db.session.get(Engagement, scene["contracted"]).state == S.CONTRACTED
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_refreshing_the_item_url_after_a_refused_form_shows_the_plan(world, login):
    from evalhub.procurement import services as P

    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    db.session.commit()
    client = login(world.bz_staff)
    response = client.get(f"/plans/{plan.id}/items")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/plans/{plan.id}")
    assert login(world.kz_admin).get(f"/plans/{plan.id}/items").status_code == 403


def test_bureau_records_actual_spending_and_bad_input_is_refused(world, client, login):
    from tests import factories

    e = factories.engagement(world, amount_wan="300")
    db.session.commit()
    login(world.bz_staff)
    response = client.post(f"/engagements/{e.id}/spending", data={"spent_wan": "abc"})
    assert response.status_code == 422 and "实际支出（万元）必须是数字" in response.get_data(as_text=True)
    response = client.post(f"/engagements/{e.id}/spending", data={"spent_wan": "900"})
    assert response.status_code == 422 and "请核对单位" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(e), e.id).spent is None
    response = client.post(f"/engagements/{e.id}/spending", data={"spent_wan": "270.5"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "270.50 万元（预算执行率 90.2%）" in page
    login(world.kz_staff)
    assert client.post(f"/engagements/{e.id}/spending", data={"spent_wan": "1"}).status_code in (403, 404)
    login(world.firm_user)
    assert client.post(f"/engagements/{e.id}/spending", data={"spent_wan": "1"}).status_code in (403, 404)
