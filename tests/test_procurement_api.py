"""The procurement API: plans, engagements and their transitions, procurements, sealed bids, OCDS export."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import (
    Engagement,
    EngagementState as S,
    EngagementTransition,
    EvaluationPlan,
    PlanItem,
    PlanStatus,
)
from tests import factories
from tests.test_api import assert_error
from tests.kept_states import kept
from tests.test_procurement_services import (
    OCDS_DIR,
    _bid,
    _bidder,
    _consultation,
    _ocds_validator,
    _past_deadline,
    _score_all,
)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def listing(client, headers, url) -> dict:
    body = ok(client.get(url, headers=headers))
    assert set(body) == {"items", "total", "page", "per_page"}
    return body


def ids(client, headers, url) -> set[int]:
    body = listing(client, headers, url + ("&" if "?" in url else "?") + "per_page=200")
    assert body["total"] == len(body["items"])
    return {i["id"] for i in body["items"]}


def item_payload(world, **overrides) -> dict:
    payload = {"name": "巴州统计局第五次全国经济普查项目", "object_type": "project", "budget_kind": "一般公共预算",
               "field": "统计", "amount_wan": "1,234.5678", "budget_unit_id": world.units["巴州统计局"].id,
               "reason": "资金量大、社会关注度高"}
    payload.update(overrides)
    return payload


def committed(model, id_):
    db.session.rollback()  # read what is committed, not what this session may still hold
    return db.session.get(model, id_)


# --- plans -----------------------------------------------------------------------------------------

def test_plans_need_a_token(client, world):
    assert_error(client.get("/api/v1/plans"), 401, "unauthorized")
    assert_error(client.get("/api/v1/engagements", headers={"Authorization": "Bearer nope"}), 401)


def test_create_plan_for_the_token_users_bureau_then_get_it_again(client, world, auth):
    first = client.post("/api/v1/plans", json={"year": 2025}, headers=auth("bz.staff"))
    body = ok(first, 201)
    assert body["bureau"]["code"] == "652800" and body["year"] == 2025
    assert body["status"] == {"value": "draft", "label": "编制中"}
    assert body["items"] == [] and body["item_count"] == 0 and body["total_amount"] == "0.00"
    assert {"level": "error", "message": "计划中还没有评价对象"} in body["checks"]
    assert body["may_edit"] is True and body["may_approve"] is False  # staff edit, admins approve
    assert committed(EvaluationPlan, body["id"]) is not None
    again = ok(client.post("/api/v1/plans", json={"year": "2025"}, headers=auth("bz.admin")), 200)
    assert again["id"] == body["id"] and again["may_approve"] is True


@pytest.mark.parametrize("payload", [{}, {"year": "明年"}, {"year": True}, {"year": 1900}])
def test_create_plan_needs_a_sensible_year(client, world, auth, payload):
    assert "year" in assert_error(client.post("/api/v1/plans", json=payload, headers=auth("bz.staff")), 422)["fields"]


@pytest.mark.parametrize("username", ["firm1", "expert1", "admin"])
def test_only_bureau_users_create_plans(client, world, auth, username):
    assert_error(client.post("/api/v1/plans", json={"year": 2025}, headers=auth(username)), 403, "forbidden")


def test_plan_row_scope_prefecture_county_and_region(client, world, auth):
    plans = {key: P.get_or_create_plan(getattr(world, key), 2025, getattr(world, f"{key}_admin"))
             for key in ("region", "bz", "kz", "krl", "lt", "ats")}
    old = P.get_or_create_plan(world.bz, 2024, world.bz_admin)
    db.session.commit()
    pid = {k: p.id for k, p in plans.items()}
    # 巴州 sees itself and its counties, never 克州
    assert ids(client, auth("bz.staff"), "/api/v1/plans") == {pid["bz"], pid["krl"], pid["lt"], old.id}
    # a county sees itself only: not its prefecture, not its neighbour
    assert ids(client, auth("krl.staff"), "/api/v1/plans") == {pid["krl"]}
    assert ids(client, auth("kz.admin"), "/api/v1/plans") == {pid["kz"], pid["ats"]}
    assert ids(client, auth("region.admin"), "/api/v1/plans") == set(pid.values()) | {old.id}
    # single records: not visible → 404
    assert_error(client.get(f"/api/v1/plans/{pid['kz']}", headers=auth("bz.admin")), 404, "not_found")
    assert_error(client.get(f"/api/v1/plans/{pid['bz']}", headers=auth("krl.admin")), 404)
    assert_error(client.get(f"/api/v1/plans/{pid['lt']}", headers=auth("krl.admin")), 404)
    assert ok(client.get(f"/api/v1/plans/{pid['krl']}", headers=auth("bz.staff")))["bureau"]["code"] == "652801"
    # filters
    assert ids(client, auth("bz.staff"), "/api/v1/plans?year=2024") == {old.id}
    assert ids(client, auth("region.admin"), "/api/v1/plans?bureau=652801") == {pid["krl"]}
    assert ids(client, auth("bz.staff"), "/api/v1/plans?bureau=653000") == set()
    assert "year" in assert_error(client.get("/api/v1/plans?year=last", headers=auth("bz.staff")), 422)["fields"]
    assert "bureau" in assert_error(client.get("/api/v1/plans?bureau=999999", headers=auth("bz.staff")), 422)["fields"]
    # firms and experts have no plan list, and no plan
    assert_error(client.get("/api/v1/plans", headers=auth("firm1")), 403)
    assert_error(client.get("/api/v1/plans", headers=auth("expert1")), 403)
    assert_error(client.get(f"/api/v1/plans/{pid['bz']}", headers=auth("firm1")), 404)


def test_plan_list_counts_items_and_money(client, world, auth):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    P.add_plan_item(plan, P.PlanItemInput(**{**item_payload(world), "amount_wan": "100"}), world.bz_staff)
    P.add_plan_item(plan, P.PlanItemInput(**{**item_payload(world, name="第二项"), "amount_wan": "50.5"}), world.bz_staff)
    db.session.commit()
    row = listing(client, auth("bz.staff"), "/api/v1/plans")["items"][0]
    assert row["item_count"] == 2 and row["total_amount"] == "1505000.00" and row["total_amount_wan"] == 150.5


def test_add_plan_item_in_wan(client, world, auth):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    db.session.commit()
    response = client.post(f"/api/v1/plans/{plan.id}/items", json=item_payload(world), headers=auth("bz.staff"))
    body = ok(response, 201)
    assert body["amount"] == "12345678.00" and body["amount_wan"] == pytest.approx(1234.5678)
    assert body["object_type"] == {"value": "project", "label": "项目支出"}
    assert body["budget_kind"]["value"] == "general" and body["field"]["value"] == "statistics"
    assert body["service_kind"]["value"] == "key_evaluation"
    assert body["budget_unit"]["name"] == "巴州统计局" and body["commissioner_name"] == "巴音郭楞蒙古自治州财政局"
    assert body["engagement"] is None
    assert committed(PlanItem, body["id"]).amount == Decimal("12345678.00")
    detail = ok(client.get(f"/api/v1/plans/{plan.id}", headers=auth("bz.staff")))
    assert [i["id"] for i in detail["items"]] == [body["id"]] and detail["total_amount_wan"] == pytest.approx(1234.5678)
    assert detail["checks"] and all(c["level"] == "warning" for c in detail["checks"])
    assert any("不少于" in c["message"] for c in detail["checks"])
    # a number works as well as a string
    numeric = ok(client.post(f"/api/v1/plans/{plan.id}/items", json=item_payload(world, amount_wan=80, name="乙"),
                             headers=auth("bz.staff")), 201)
    assert numeric["amount"] == "800000.00" and numeric["amount_wan"] == 80


def test_bad_plan_items_are_422_and_write_nothing(client, world, auth):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    db.session.commit()
    url = f"/api/v1/plans/{plan.id}/items"
    response = client.post(url, headers=auth("bz.staff"), json=item_payload(
        world, name="", object_type="魔法", amount_wan="-1", budget_unit_id=world.units["克州农业农村局"].id, reason=7))
    fields = assert_error(response, 422, "validation_failed")["fields"]
    assert {"name", "object_type", "amount_wan", "budget_unit_id", "reason"} <= set(fields)
    assert fields["reason"] == "必须是字符串"
    unit = world.units["巴州统计局"].id
    same = assert_error(client.post(url, json=item_payload(world, commissioner_unit_id=unit), headers=auth("bz.staff")), 422)
    assert "主体分离" in same["fields"]["commissioner_unit_id"]
    assert "budget_unit_id" in assert_error(
        client.post(url, json=item_payload(world, budget_unit_id=True), headers=auth("bz.staff")), 422)["fields"]
    assert "amount_wan" in assert_error(
        client.post(url, json=item_payload(world, amount_wan=[1]), headers=auth("bz.staff")), 422)["fields"]
    assert_error(client.post(url, json=[1], headers=auth("bz.staff")), 400, "bad_request")
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(PlanItem.id))).scalar_one() == 0


def test_only_the_own_bureau_adds_items(client, world, auth):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    db.session.commit()
    url = f"/api/v1/plans/{plan.id}/items"
    assert_error(client.post(url, json=item_payload(world), headers=auth("kz.admin")), 404)       # cannot see it
    assert_error(client.post(url, json=item_payload(world), headers=auth("krl.admin")), 404)      # a county neither
    assert_error(client.post(url, json=item_payload(world), headers=auth("region.admin")), 403)   # sees, may not edit
    assert_error(client.post(url, json=item_payload(world), headers=auth("firm1")), 404)


def test_approve_plan(client, world, auth):
    plan = P.get_or_create_plan(world.lt, 2025, world.lt_staff)
    P.add_plan_item(plan, P.PlanItemInput(**item_payload(world, budget_unit_id=world.units["轮台县医疗保障局"].id)),
                    world.lt_staff)
    db.session.commit()
    url = f"/api/v1/plans/{plan.id}/approve"
    assert_error(client.post(url, json={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"}, headers=auth("lt.staff")), 403)  # admins approve
    assert_error(client.post(url, json={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"}, headers=auth("bz.admin")), 403)  # own bureau only
    assert_error(client.post(url, json={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"}, headers=auth("kz.admin")), 404)
    unconfirmed = assert_error(client.post(url, json={}, headers=auth("lt.admin")), 422)
    assert "warnings_reason" in unconfirmed["fields"] and "部门整体支出" in unconfirmed["message"]
    assert "warnings_reason" in assert_error(
        client.post(url, json={"warnings_reason": True}, headers=auth("lt.admin")), 422)["fields"]
    assert "warnings_reason" in assert_error(
        client.post(url, json={"warnings_reason": "同意。"}, headers=auth("lt.admin")), 422)["fields"]
    assert committed(EvaluationPlan, plan.id).status == PlanStatus.DRAFT

    body = ok(client.post(url, json={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"}, headers=auth("lt.admin")))
    assert body["status"]["value"] == "approved" and body["approved_by"] == "lt.admin" and body["approved_at"]
    assert body["approval_reason"] == "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。" and body["approval_warnings"]
    assert body["may_edit"] is False and body["may_approve"] is False
    engagement = body["items"][0]["engagement"]
    assert engagement["reference"] == "652822-2025-001" and engagement["state"]["value"] == "planned"
    assert committed(Engagement, engagement["id"]).state == S.PLANNED
    # approved: no second approval, no more items
    assert_error(client.post(url, json={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"}, headers=auth("lt.admin")), 409, "conflict")
    assert_error(client.post(f"/api/v1/plans/{plan.id}/items", headers=auth("lt.staff"),
                             json=item_payload(world, budget_unit_id=world.units["轮台县医疗保障局"].id)), 409)


def test_a_plan_with_errors_cannot_be_approved(client, world, auth):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    db.session.commit()
    error = assert_error(client.post(f"/api/v1/plans/{plan.id}/approve", json={"warnings_reason": "本县医保基金规模大，今年集中评价一项，部门整体支出评价列入明年计划。"},
                                     headers=auth("bz.admin")), 422)
    assert "还没有评价对象" in error["message"]


# --- engagements -----------------------------------------------------------------------------------

@pytest.fixture()
@kept
def engagements(world):
    """巴州: one planned, one contracted to firm1; 轮台县 (a 巴州 county): one contracted to firm1;
    克州: one planned, one contracted to firm2."""
    e = {
        "bz_planned": factories.engagement(world),
        "bz_firm1": factories.contracted(world, unit="巴州民政局"),
        "lt_firm1": factories.contracted(world, bureau_key="lt", unit="轮台县医疗保障局"),
        "kz_planned": factories.engagement(world, bureau_key="kz", unit="克州农业农村局"),
        "kz_firm2": factories.contracted(world, firm=world.other_firm, bureau_key="kz", unit="克州农业农村局"),
    }
    db.session.commit()
    return {k: v.id for k, v in e.items()}


def test_engagement_row_scope(client, world, auth, engagements):
    e = engagements
    assert ids(client, auth("bz.staff"), "/api/v1/engagements") == {e["bz_planned"], e["bz_firm1"], e["lt_firm1"]}
    assert ids(client, auth("lt.staff"), "/api/v1/engagements") == {e["lt_firm1"]}
    assert ids(client, auth("krl.admin"), "/api/v1/engagements") == set()
    assert ids(client, auth("kz.staff"), "/api/v1/engagements") == {e["kz_planned"], e["kz_firm2"]}
    assert ids(client, auth("region.admin"), "/api/v1/engagements") == set(e.values())
    # a firm sees the engagements contracted to it, nothing else
    assert ids(client, auth("firm1"), "/api/v1/engagements") == {e["bz_firm1"], e["lt_firm1"]}
    assert ids(client, auth("firm2"), "/api/v1/engagements") == {e["kz_firm2"]}
    assert_error(client.get("/api/v1/engagements", headers=auth("expert1")), 403)
    # single records
    assert_error(client.get(f"/api/v1/engagements/{e['kz_firm2']}", headers=auth("bz.admin")), 404)
    assert_error(client.get(f"/api/v1/engagements/{e['bz_planned']}", headers=auth("lt.admin")), 404)
    assert_error(client.get(f"/api/v1/engagements/{e['bz_planned']}", headers=auth("firm1")), 404)
    assert_error(client.get(f"/api/v1/engagements/{e['kz_firm2']}", headers=auth("firm1")), 404)
    assert_error(client.get(f"/api/v1/engagements/{e['bz_firm1']}", headers=auth("expert1")), 404)
    assert ok(client.get(f"/api/v1/engagements/{e['lt_firm1']}", headers=auth("bz.staff")))["bureau"]["code"] == "652822"


def test_engagement_filters(client, world, auth, engagements):
    e = engagements
    headers = auth("region.admin")
    assert ids(client, headers, "/api/v1/engagements?state=contracted") == {e["bz_firm1"], e["lt_firm1"], e["kz_firm2"]}
    assert ids(client, headers, "/api/v1/engagements?state=已列入计划") == {e["bz_planned"], e["kz_planned"]}
    assert ids(client, headers, "/api/v1/engagements?bureau=653000&state=planned") == {e["kz_planned"]}
    assert ids(client, headers, "/api/v1/engagements?year=2025&bureau=652822") == {e["lt_firm1"]}
    assert ids(client, headers, "/api/v1/engagements?year=2024") == set()
    assert ids(client, headers, "/api/v1/engagements?q=民政局") == {e["bz_firm1"]}
    assert "state" in assert_error(client.get("/api/v1/engagements?state=flying", headers=headers), 422)["fields"]
    page = listing(client, headers, "/api/v1/engagements?per_page=2&page=2")
    assert page["total"] == 5 and len(page["items"]) == 2 and page["page"] == 2 and page["per_page"] == 2


def test_a_listed_engagement_is_the_detail_s_engagement(client, world, auth, engagements):
    """The list reads its rows as columns (names by subquery, bureaus from the held tree, or read for a firm's
    token); each item is still the detail's engagement fields, field for field: with and without a firm, with
    and without a commissioning unit, overdue or not, for a prefecture, the region and a firm."""
    unit = world.units["巴州民政局"]
    db.session.get(Engagement, engagements["bz_planned"]).commissioner_unit_id = unit.id
    db.session.commit()
    seen = set()
    for username in ("bz.staff", "region.admin", "firm1", "firm2"):
        headers = auth(username)
        for item in listing(client, headers, "/api/v1/engagements")["items"]:
            detail = ok(client.get(f"/api/v1/engagements/{item['id']}", headers=headers))
            assert item == {key: detail[key] for key in item}, (username, item["id"])
            seen.add((item["firm"] is None, item["commissioner_name"] == unit.name, item["overdue_reason"] is None))
    assert {(True, True, True), (True, False, True), (False, False, False)} <= seen


def test_engagement_detail_for_the_bureau(client, world, auth, engagements):
    body = ok(client.get(f"/api/v1/engagements/{engagements['bz_firm1']}", headers=auth("bz.admin")))
    assert body["state"] == {"value": "contracted", "label": "已签约"}
    assert body["firm"]["name"] == "巴州示范评价咨询有限公司"
    assert body["amount"] == "3000000.00" and body["amount_wan"] == 300
    contract = body["contract"]
    assert contract["amount"] == "180000.00" and contract["amount_wan"] == 18
    assert (contract["signed_on"], contract["plan_due"], contract["report_due"], contract["end_date"]) == \
        ("2025-03-01", "2025-04-01", "2025-10-31", "2025-12-31")
    assert "实施方案应于 2025-04-01 前提交" in body["overdue_reason"]  # the fixture's contract is from 2025
    timeline = body["timeline"]
    assert [(t["action"], t["from"]["value"], t["to"]["value"]) for t in timeline] == \
        [("start_procurement", "planned", "procuring"), ("sign_contract", "procuring", "contracted")]
    assert timeline[0]["actor"]["username"] == "bz.staff"
    assert timeline[0]["actor"]["organisation"] == "巴音郭楞蒙古自治州财政局"
    assert timeline[0]["label"] == "启动采购" and "单一来源" in timeline[0]["note"]
    assert [p["method"]["value"] for p in body["procurements"]] == ["single_source"]
    # the firm acts next; the bureau admin may only cancel
    assert [a["action"] for a in body["available_actions"]] == ["cancel"]
    assert body["available_actions"][0]["needs_note"] is True
    planned = ok(client.get(f"/api/v1/engagements/{engagements['bz_planned']}", headers=auth("bz.staff")))
    assert planned["contract"] is None and planned["overdue_reason"] is None and planned["timeline"] == []
    assert planned["available_actions"] == []  # start_procurement goes through the procurement service


def test_firm_reads_its_timeline_without_names(client, world, auth, engagements):
    from evalhub.core.models import User
    from evalhub.registry.models import Expert

    engagement = db.session.get(Engagement, engagements["bz_firm1"])
    factories.approve_plan(engagement)  # uploaded by firm1, panel drawn by bz.staff, the panel's outcome
    db.session.commit()
    response = client.get(f"/api/v1/engagements/{engagement.id}", headers=auth("firm1"))
    body = ok(response)
    text = response.get_data(as_text=True)
    experts = db.session.execute(sa.select(Expert)).scalars().all()
    reviewers = db.session.execute(sa.select(User).where(User.expert_id.is_not(None))).scalars().all()
    assert len(experts) >= 4
    for secret in ["bz.staff", "bz.admin"] + [x.name for x in experts] + [u.username for u in reviewers]:
        assert secret not in text
    actors = [t["actor"] for t in body["timeline"]]
    assert [t["action"] for t in body["timeline"]] == ["start_procurement", "sign_contract", "submit_plan",
                                                       "start_plan_review", "approve_plan"]
    assert all(a is None or (a["username"] is None and a["display_name"] is None) for a in actors)
    assert actors[0]["role"]["value"] == "bureau_staff" and actors[0]["organisation"] == "巴音郭楞蒙古自治州财政局"
    assert actors[2] == {"username": None, "display_name": None, "role": {"value": "firm_user", "label": "第三方机构用户"},
                         "organisation": "巴州示范评价咨询有限公司"}
    assert actors[4] is None  # the panel's outcome, recorded without a person
    assert "专家评审" in body["timeline"][4]["note"] and "通过线" in body["timeline"][4]["note"]
    assert body["state"]["value"] == "fieldwork"
    assert [(a["action"], a["unmet"]) for a in body["available_actions"]] == [
        ("submit_report", "尚未指定主评人：请先在“项目团队”中从本机构名册指定主评人，再提交评价报告；"
                          "尚未上传评价报告第 1 版（须上传文件，提交后状态随之变更）")]
    # the bureau sees who acted
    bureau_view = ok(client.get(f"/api/v1/engagements/{engagement.id}", headers=auth("bz.staff")))
    assert bureau_view["timeline"][3]["actor"]["username"] == "bz.staff"


# --- transitions -----------------------------------------------------------------------------------

def test_allowed_role_moves_the_engagement(client, world, auth, engagements):
    url = f"/api/v1/engagements/{engagements['bz_firm1']}/transitions"
    body = ok(client.post(url, json={"action": "cancel", "note": "项目资金调整"}, headers=auth("bz.admin")))
    assert body["state"] == {"value": "cancelled", "label": "已终止"}
    assert body["timeline"][-1]["action"] == "cancel" and body["timeline"][-1]["note"] == "项目资金调整"
    assert committed(Engagement, engagements["bz_firm1"]).state == S.CANCELLED


def test_the_api_walks_around_no_review_gate(client, world, auth, engagements):
    """submit_plan → approve_plan → submit_report → accept_report → publish with no file, no panel and no
    result: every bare step is a 409 saying what is missing; the upload is the way to hand a plan in."""
    import io

    eid = engagements["bz_firm1"]
    url = f"/api/v1/engagements/{eid}/transitions"
    firm, staff, admin = auth("firm1"), auth("bz.staff"), auth("bz.admin")

    def refused(body, headers, missing):
        error = assert_error(client.post(url, json=body, headers=headers), 409, "conflict")
        assert missing in error["message"], error["message"]
        return error

    detail = ok(client.get(f"/api/v1/engagements/{eid}", headers=firm))
    assert detail["available_actions"][0]["action"] == "submit_plan"
    assert "尚未上传实施方案第 1 版" in detail["available_actions"][0]["unmet"]
    refused({"action": "submit_plan", "note": "没有文件"}, firm, "尚未上传实施方案第 1 版")
    assert committed(Engagement, eid).state == S.CONTRACTED
    upload = client.post(f"/api/v1/engagements/{eid}/submissions", headers=firm, content_type="multipart/form-data",
                         data={"kind": "work_plan", "file": (io.BytesIO(factories.docx_bytes("实施方案")), "实施方案.docx")})
    assert upload.status_code == 201, upload.get_data(as_text=True)
    assert committed(Engagement, eid).state == S.PLAN_SUBMITTED
    refused({"action": "start_plan_review"}, staff, "尚未为实施方案第 1 版抽取评审专家")
    # put it in review the only way there is (a drawn panel), then try to approve before the panel decides
    engagement = db.session.get(Engagement, eid)
    factories.panel_experts(engagement, 3)
    from evalhub.review import services as R

    factories.witnessed(R.form_panel(engagement, world.bz_staff, size=3))
    db.session.commit()
    refused({"action": "approve_plan", "note": "直接通过"}, admin, "实施方案第 1 版尚无达到通过线的专家评审结果")
    refused({"action": "return_plan", "note": "直接退回"}, staff, "尚无未通过且已发出整改意见的专家评审结果")
    assert committed(Engagement, eid).state == S.PLAN_IN_REVIEW
    n = db.session.execute(sa.select(sa.func.count(EngagementTransition.id))
                           .where(EngagementTransition.engagement_id == eid)).scalar_one()
    assert n == 4  # start_procurement, sign_contract, submit_plan (the upload), start_plan_review (the panel)


def test_an_accepted_report_is_published_only_with_a_redacted_file(client, world, auth):
    e = factories.accepted(world)
    db.session.commit()
    url = f"/api/v1/engagements/{e.id}/transitions"
    error = assert_error(client.post(url, json={"action": "publish"}, headers=auth("bz.admin")), 409)
    assert "尚未上传脱密后的报告" in error["message"]
    assert committed(Engagement, e.id).state == S.ACCEPTED


def test_wrong_role_is_403_and_changes_nothing(client, world, auth, engagements):
    url = f"/api/v1/engagements/{engagements['bz_firm1']}/transitions"
    # the bureau cannot submit the firm's work plan; the firm cannot cancel; the region supervises
    error = assert_error(client.post(url, json={"action": "submit_plan"}, headers=auth("bz.staff")), 403, "forbidden")
    assert "第三方机构" in error["message"]
    assert_error(client.post(url, json={"action": "cancel", "note": "不做了"}, headers=auth("firm1")), 403)
    assert_error(client.post(url, json={"action": "cancel", "note": "越权"}, headers=auth("region.admin")), 403)
    assert_error(client.post(url, json={"action": "cancel", "note": "越权"}, headers=auth("bz.staff")), 403)  # admins only
    # someone who cannot see it at all gets 404
    assert_error(client.post(url, json={"action": "submit_plan"}, headers=auth("firm2")), 404)
    assert_error(client.post(url, json={"action": "cancel", "note": "x"}, headers=auth("kz.admin")), 404)
    assert committed(Engagement, engagements["bz_firm1"]).state == S.CONTRACTED


@pytest.mark.parametrize("action", ["approve_plan", "publish", "teleport"])
def test_undeclared_transition_is_409_with_the_reason(client, world, auth, engagements, action):
    url = f"/api/v1/engagements/{engagements['bz_firm1']}/transitions"
    error = assert_error(client.post(url, json={"action": action, "note": "试试"}, headers=auth("bz.admin")),
                         409, "conflict")
    assert "已签约" in error["message"] or "未定义" in error["message"]
    assert error["fields"] == {}
    db.session.rollback()
    assert committed(Engagement, engagements["bz_firm1"]).state == S.CONTRACTED
    count = db.session.execute(sa.select(sa.func.count(EngagementTransition.id))
                               .where(EngagementTransition.engagement_id == engagements["bz_firm1"])).scalar_one()
    assert count == 2


@pytest.mark.parametrize("action", ["start_procurement", "sign_contract", "fail_procurement"])
def test_transitions_owned_by_procurement_services_are_refused(client, world, auth, engagements, action):
    url = f"/api/v1/engagements/{engagements['bz_planned']}/transitions"
    error = assert_error(client.post(url, json={"action": action, "note": "绕过采购"}, headers=auth("bz.admin")), 409)
    assert "不能直接变更状态" in error["message"]
    assert committed(Engagement, engagements["bz_planned"]).state == S.PLANNED


def test_missing_note_is_422(client, world, auth, engagements):
    from evalhub.review import services as R

    engagement = db.session.get(Engagement, engagements["bz_firm1"])
    factories.submit_plan(engagement)
    factories.panel_experts(engagement, 3)
    factories.witnessed(R.form_panel(engagement, world.bz_staff, size=3))
    db.session.commit()
    url = f"/api/v1/engagements/{engagement.id}/transitions"
    for body in ({"action": "return_plan"}, {"action": "return_plan", "note": "   "}):
        error = assert_error(client.post(url, json=body, headers=auth("bz.staff")), 422, "validation_failed")
        assert error["fields"] == {"note": "必填"}
    assert committed(Engagement, engagement.id).state == S.PLAN_IN_REVIEW
    # with a note, returning still needs the panel's failed outcome and its letter (sent by the letter service)
    error = assert_error(client.post(url, json={"action": "return_plan", "note": "指标体系不完整"},
                                     headers=auth("bz.staff")), 409)
    assert "已发出整改意见" in error["message"]
    assert committed(Engagement, engagement.id).state == S.PLAN_IN_REVIEW


@pytest.mark.parametrize("payload", [{}, {"action": ""}, {"action": 3}, {"action": "cancel", "note": 5}])
def test_malformed_transition_requests_are_422(client, world, auth, engagements, payload):
    url = f"/api/v1/engagements/{engagements['bz_firm1']}/transitions"
    assert assert_error(client.post(url, json=payload, headers=auth("bz.admin")), 422)["fields"]


def test_cancel_by_the_bureau_admin(client, world, auth, engagements):
    url = f"/api/v1/engagements/{engagements['kz_planned']}/transitions"
    body = ok(client.post(url, json={"action": "cancel", "note": "预算调整，取消评价"}, headers=auth("kz.admin")))
    assert body["state"]["value"] == "cancelled" and body["available_actions"] == []
    assert body["timeline"][-1]["actor"]["username"] == "kz.admin"


# --- procurements and sealed bids ------------------------------------------------------------------

@pytest.fixture()
@kept
def tender(world):
    """A 巴州 consultation with sealed bids from two firms (甲 and 乙), deadline not yet passed."""
    p = _consultation(world)
    (firm_a, user_a, staff_a), (firm_b, user_b, staff_b) = _bidder(world, "甲"), _bidder(world, "乙")
    bid_a = _bid(p, user_a, staff_a, "40")
    bid_b = _bid(p, user_b, staff_b, "45")
    db.session.commit()
    return {"procurement": p.id, "a": (user_a.username, bid_a.id), "b": (user_b.username, bid_b.id),
            "firms": (firm_a.id, firm_b.id)}


def _open(world, procurement_id):
    from evalhub.procurement.models import Procurement

    p = db.session.get(Procurement, procurement_id)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    db.session.commit()
    return p


def test_procurement_detail(client, world, auth, tender):
    body = ok(client.get(f"/api/v1/procurements/{tender['procurement']}", headers=auth("bz.staff")))
    assert body["method"] == {"value": "competitive_consultation", "label": "竞争性磋商"}
    assert body["status"]["value"] == "open" and body["bid_deadline"].endswith("+00:00")
    assert body["ceiling_price"] == "500000.00" and body["ceiling_price_wan"] == 50
    assert body["price_weight"] == 20 and body["opened_at"] is None and body["award"] is None
    assert sum(r["max_points"] for r in body["rubric"]) == 100 and body["rubric"][0]["position"] == 1
    assert body["bureau"]["code"] == "652800" and body["engagement"]["reference"].startswith("652800-2025-")
    assert body["bids"] == []  # sealed
    assert_error(client.get(f"/api/v1/procurements/{tender['procurement']}", headers=auth("kz.admin")), 404)
    assert_error(client.get(f"/api/v1/procurements/{tender['procurement']}", headers=auth("expert1")), 404)
    assert_error(client.get("/api/v1/procurements/999999", headers=auth("bz.staff")), 404)


def test_a_firm_sees_only_its_own_bid(client, world, auth, tender):
    user_a, bid_a = tender["a"]
    user_b, bid_b = tender["b"]
    for username, own, other in ((user_a, bid_a, bid_b), (user_b, bid_b, bid_a)):
        detail = ok(client.get(f"/api/v1/procurements/{tender['procurement']}", headers=auth(username)))
        assert [b["id"] for b in detail["bids"]] == [own]
        assert detail["bids"][0]["needs_justification"] is None  # the low-bid line would unseal the others
        bids = listing(client, auth(username), f"/api/v1/procurements/{tender['procurement']}/bids")
        assert [b["id"] for b in bids["items"]] == [own] and bids["total"] == 1
        assert other not in {b["id"] for b in bids["items"]}
    own = listing(client, auth(user_a), f"/api/v1/procurements/{tender['procurement']}/bids")["items"][0]
    assert own["price"] == "400000.00" and own["price_wan"] == 40 and own["status"]["value"] == "submitted"
    assert own["team"][0]["is_lead"] is True and own["technical_file"]["name"] == "方案.docx"
    # 乙's price never reaches 甲, even after opening
    _open(world, tender["procurement"])
    response = client.get(f"/api/v1/procurements/{tender['procurement']}/bids", headers=auth(user_a))
    assert [b["id"] for b in ok(response)["items"]] == [bid_a] and "450000" not in response.get_data(as_text=True)
    # firm2 (克州 library) does not see this 巴州 procurement at all
    assert_error(client.get(f"/api/v1/procurements/{tender['procurement']}/bids", headers=auth("firm2")), 404)


def test_the_bureau_sees_no_bid_before_opening_and_all_after(client, world, auth, tender):
    url = f"/api/v1/procurements/{tender['procurement']}/bids"
    for username in ("bz.staff", "bz.admin", "region.admin"):
        body = listing(client, auth(username), url)
        assert body["items"] == [] and body["total"] == 0
    _open(world, tender["procurement"])
    expected = {tender["a"][1], tender["b"][1]}
    for username in ("bz.staff", "region.admin"):
        body = listing(client, auth(username), url)
        assert {b["id"] for b in body["items"]} == expected and body["total"] == 2
        detail = ok(client.get(f"/api/v1/procurements/{tender['procurement']}", headers=auth(username)))
        assert {b["id"] for b in detail["bids"]} == expected and detail["status"]["value"] == "evaluating"
    prices = {b["firm"]["name"]: (b["price"], b["needs_justification"]) for b in listing(client, auth("bz.staff"), url)["items"]}
    assert prices == {"甲": ("400000.00", False), "乙": ("450000.00", False)}
    assert_error(client.get(url, headers=auth("kz.admin")), 404)
    assert_error(client.get(url, headers=auth("krl.admin")), 404)  # a county does not see its prefecture's


def test_award_shows_on_the_procurement(client, world, auth, tender):
    p = _open(world, tender["procurement"])
    _score_all(world, p, {"甲": 90, "乙": 80})
    factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    db.session.commit()
    body = ok(client.get(f"/api/v1/procurements/{p.id}", headers=auth("bz.staff")))
    award = body["award"]
    assert award["firm"]["name"] == "甲" and award["amount"] == "400000.00" and award["amount_wan"] == 40
    assert award["score"] is not None and "成交供应商" in award["notice"] and award["reasons"] == "综合得分第一"
    assert body["status"]["value"] == "awarded"


# --- OCDS ------------------------------------------------------------------------------------------

needs_ocds_schema = pytest.mark.skipif(not OCDS_DIR.exists(), reason="shared/ocds-1.1 not beside the checkout")


@needs_ocds_schema
def test_procurement_ocds_validates_sealed_and_awarded(client, world, auth, tender):
    validator = _ocds_validator()
    url = f"/api/v1/procurements/{tender['procurement']}/ocds"
    sealed = ok(client.get(url, headers=auth("bz.staff")))
    assert [e.message for e in validator.iter_errors(sealed)] == []
    assert sealed["uri"].endswith(url) and sealed["publisher"] == {"name": "巴音郭楞蒙古自治州财政局"}
    assert "bids" not in sealed["releases"][0] and "tenderers" not in sealed["releases"][0]["tender"]

    p = _open(world, tender["procurement"])
    _score_all(world, p, {"甲": 90, "乙": 80})
    factories.witnessed(P.award_procurement(p, world.bz_staff, "第一"))
    factories.past_challenge_period(p)
    P.sign_contract(p.engagement, P.ContractInput(
        amount_wan="40", signed_on=date(2025, 3, 1), start_date=date(2025, 3, 1), end_date=date(2025, 12, 31),
        plan_due=date(2025, 4, 1), report_due=date(2025, 11, 1), deliverables="报告"), world.bz_staff)
    db.session.commit()
    data = ok(client.get(url, headers=auth("region.admin")))
    assert [e.message for e in validator.iter_errors(data)] == []
    assert data["releases"][0]["tag"] == ["tender", "award", "contract"]
    assert len(data["releases"][0]["bids"]["details"]) == 2

    assert_error(client.get(url, headers=auth("kz.admin")), 404)
    assert_error(client.get(url, headers=auth(tender["a"][0])), 403)  # a bidder sees the notice, not the export


@needs_ocds_schema
def test_plan_ocds_bundles_every_procurement_of_the_plan(client, world, auth, tender):
    from evalhub.procurement.models import Procurement

    validator = _ocds_validator()
    plan_id = db.session.get(Procurement, tender["procurement"]).engagement.plan_item.plan_id
    second = factories.contracted(world, unit="巴州民政局")  # same plan (巴州 2025), single source
    db.session.commit()
    assert second.plan_item.plan_id == plan_id
    data = ok(client.get(f"/api/v1/plans/{plan_id}/ocds", headers=auth("bz.admin")))
    assert [e.message for e in validator.iter_errors(data)] == []
    assert len(data["releases"]) == 2
    assert {r["tender"]["procurementMethod"] for r in data["releases"]} == {"selective", "direct"}
    assert len({r["ocid"] for r in data["releases"]}) == 2
    assert_error(client.get(f"/api/v1/plans/{plan_id}/ocds", headers=auth("kz.admin")), 404)
    assert_error(client.get(f"/api/v1/plans/{plan_id}/ocds", headers=auth("firm1")), 404)


def test_plan_ocds_without_procurements_is_409(client, world, auth):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    P.add_plan_item(plan, P.PlanItemInput(**item_payload(world)), world.bz_staff)
    db.session.commit()
    error = assert_error(client.get(f"/api/v1/plans/{plan.id}/ocds", headers=auth("bz.staff")), 409, "conflict")
    assert "尚未发起任何采购" in error["message"]


# --- the OpenAPI document --------------------------------------------------------------------------

def test_openapi_document_describes_the_procurement_api(app, client, world):
    spec = ok(client.get("/api/v1/openapi.json"))
    validate(spec)
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1")]
    for rule in rules:
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {rule.rule} is not in the OpenAPI document"
    for path, method in [("/api/v1/plans", "get"), ("/api/v1/plans", "post"), ("/api/v1/plans/{plan_id}", "get"),
                         ("/api/v1/plans/{plan_id}/items", "post"), ("/api/v1/plans/{plan_id}/approve", "post"),
                         ("/api/v1/plans/{plan_id}/ocds", "get"), ("/api/v1/engagements", "get"),
                         ("/api/v1/engagements/{engagement_id}", "get"),
                         ("/api/v1/engagements/{engagement_id}/transitions", "post"),
                         ("/api/v1/procurements/{procurement_id}", "get"),
                         ("/api/v1/procurements/{procurement_id}/bids", "get"),
                         ("/api/v1/procurements/{procurement_id}/ocds", "get")]:
        assert (path, method) in documented
    schemas = spec["components"]["schemas"]
    for name in ("Plan", "PlanDetail", "PlanItem", "PlanItemInput", "PlanCheck", "Engagement", "EngagementDetail",
                 "EngagementTransition", "TransitionRequest", "Procurement", "Bid", "BidList", "OcdsReleasePackage",
                 "Firm", "Expert"):
        assert name in schemas
    transition = spec["paths"]["/api/v1/engagements/{engagement_id}/transitions"]["post"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(transition["responses"])
    assert transition["security"] == [{"bearerAuth": []}]
    assert "submit_plan" in schemas["TransitionRequest"]["properties"]["action"]["description"]
