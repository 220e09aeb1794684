"""Bad input at the edge (issue 11, "Bad input"): integers the database cannot hold, control characters, money
out of bounds, invisible characters in names, and 405 without ``Allow``. Each of these answered 500 (on
PostgreSQL, and many on SQLite too) or was stored wrong; each must now be a 4xx that says why in Chinese.

The rules live in evalhub/core/inputs.py; the API's bounds are in its OpenAPI document (core/api.py,
core/apiutil.py, each domain's api.py) and enforced from there; web forms share core/forms.py:BaseForm.
"""
from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.errors import ValidationFailed
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import Bid, PlanItem, ProcurementMethod
from evalhub.registry.models import Firm
from tests import factories
from tests.test_api import assert_error, firm_payload

INT_MAX = 2**31 - 1  # PostgreSQL INTEGER (core.listing.INT_MAX)
HUGE_PAGE = "963728318727131540488192"
HUGE_ID = "99999999999999999999"  # past 2**63: even SQLite's driver cannot bind it


def text(response) -> str:
    return response.get_data(as_text=True)


def count(model) -> int:
    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


# --- integers --------------------------------------------------------------------------------------

def test_a_huge_page_number_is_an_empty_page_not_a_server_error(client, world, auth, login):
    factories.engagement(world)
    db.session.commit()
    body = client.get(f"/api/v1/engagements?page={HUGE_PAGE}", headers=auth("bz.admin")).json
    assert body["items"] == [] and body["total"] == 1
    assert login(world.bz_admin).get(f"/engagements?page={HUGE_PAGE}").status_code == 200


def test_a_huge_year_is_refused_by_the_api_and_ignored_by_the_web_list(client, world, auth, login):
    e = factories.engagement(world)
    db.session.commit()
    for year in ("99999999999", str(2**63)):
        error = assert_error(client.get(f"/api/v1/engagements?year={year}", headers=auth("bz.admin")), 422)
        assert "year" in error["fields"]
        for url in (f"/api/v1/public/reports?year={year}", f"/api/v1/plans?year={year}"):
            assert client.get(url, headers=auth("bz.admin")).status_code == 422
    page = login(world.bz_admin).get("/engagements?year=99999999999")
    assert page.status_code == 200 and e.reference in text(page)  # the filter it cannot read is not applied


@pytest.mark.parametrize("number", [HUGE_ID, str(INT_MAX + 1), "9" * 5000])
def test_a_huge_path_id_is_404_on_the_api_and_the_web(client, world, auth, login, number):
    for url in (f"/api/v1/engagements/{number}", f"/api/v1/firms/{number}", f"/api/v1/plans/{number}/ocds"):
        assert_error(client.get(url, headers=auth("bz.admin")), 404, "not_found")
    assert_error(client.post(f"/api/v1/engagements/{number}/transitions", json={"action": "cancel"},
                             headers=auth("bz.admin")), 404)
    web = login(world.bz_admin)
    for url in (f"/engagements/{number}", f"/firms/{number}", f"/public/reports/{number}/file"):
        assert web.get(url).status_code == 404


def test_a_huge_id_in_a_json_body_is_refused_with_the_field_named(client, world, auth):
    plan = client.post("/api/v1/plans", json={"year": 2025}, headers=auth("bz.admin")).json
    for unit_id in (2**40, str(2**40), HUGE_ID):
        payload = {"name": "巴州统计局普查项目", "object_type": "project", "budget_kind": "一般公共预算", "field": "统计",
                   "amount_wan": "100", "budget_unit_id": unit_id, "reason": "资金量大"}
        error = assert_error(client.post(f"/api/v1/plans/{plan['id']}/items", json=payload, headers=auth("bz.admin")), 422)
        assert "budget_unit_id" in error["fields"]
    assert count(PlanItem) == 0


# --- control characters ----------------------------------------------------------------------------

def test_nul_in_the_login_username_is_refused_beside_the_field(client, world):
    response = client.post("/login", data={"username": "bz.admin\x00", "password": factories.PASSWORD})
    assert response.status_code == 400 and "不能包含控制字符" in text(response)
    token = client.post("/api/v1/tokens", json={"username": "bz.admin\u0000", "password": factories.PASSWORD})
    assert "username" in assert_error(token, 422, "validation_failed")["fields"]


def test_nul_in_the_public_reports_filter_is_refused(client, world):
    assert client.get("/public/reports?firm=%00").status_code == 400
    error = assert_error(client.get("/api/v1/public/reports?firm=%00"), 422, "validation_failed")
    assert "控制字符" in error["fields"]["firm"]
    assert client.get("/public/reports?firm=%E5%B7%B4%E5%B7%9E").status_code == 200  # 巴州: ordinary text still works


def test_control_characters_in_json_bodies_are_refused_naming_the_field(client, world, auth):
    for bad in ("示范\x00公司", "示范\x1b[31m公司", "示范\x7f公司", "示范\ud800公司"):
        response = client.post("/api/v1/firms", json=firm_payload(name=bad, description="简介"), headers=auth("bz.staff"))
        assert "name" in assert_error(response, 422, "validation_failed")["fields"]
    response = client.post("/api/v1/firms", json=firm_payload(description="第一行\n第二行\t制表\x00"),
                           headers=auth("bz.staff"))
    assert set(assert_error(response, 422)["fields"]) == {"description"}
    assert count(Firm) == 2  # the world's two firms, nothing more


def test_control_characters_in_an_upload_form_and_file_name_are_refused(client, world, auth):
    e = factories.contracted(world)
    db.session.commit()
    url = f"/api/v1/engagements/{e.id}/submissions"
    for data in ({"kind": "work_plan", "note": "说明\x00", "file": (io.BytesIO(factories.docx_bytes("实施方案")), "方案.docx")},
                 {"kind": "work_plan", "file": (io.BytesIO(factories.docx_bytes("实施方案")), "方案\x1b.docx")}):
        response = client.post(url, data=data, content_type="multipart/form-data", headers=auth("firm1"))
        assert set(assert_error(response, 422)["fields"]) & {"note", "file"}


def test_json_nested_too_deep_for_the_parser_is_400(client, world, auth):
    response = client.post("/api/v1/firms", data="[" * 100_000, content_type="application/json", headers=auth("bz.staff"))
    assert assert_error(response, 400, "bad_request")["message"] == "请求体 JSON 嵌套层数过多。"


def test_tab_and_newlines_are_kept_in_free_text(client, world, auth):
    response = client.post("/api/v1/firms", json=firm_payload(description="第一行\r\n第二行\t制表"), headers=auth("bz.staff"))
    assert response.status_code == 201, text(response)


def test_control_characters_in_web_forms_are_refused_beside_the_field(world, login):
    client = login(world.bz_staff)
    response = client.post("/firms/new", data={
        "name": "新疆天山评价\x00咨询有限公司", "uscc": factories.uscc(), "legal_form": "limited_company",
        "kind": "会计师事务所", "address": "库尔勒市\x08石化大道", "legal_representative": "赵六", "contact_name": "钱七",
        "contact_phone": "0996-2888888", "fields": ["finance"]})
    assert response.status_code in (400, 422) and text(response).count("不能包含控制字符") == 2
    assert count(Firm) == 2


# --- names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["巴州示范\u202e司公限有询咨", "巴州示范\u200b评价咨询有限公司", "巴州示范\u2066评价\u2069有限公司",
                                  "巴州示范评价咨询\ufeff有限公司"])
def test_bidi_overrides_and_zero_width_characters_are_refused_in_firm_names(client, world, auth, login, name):
    error = assert_error(client.post("/api/v1/firms", json=firm_payload(name=name), headers=auth("bz.staff")), 422)
    assert "不可见字符" in error["fields"]["name"]
    response = login(world.bz_staff).post("/firms/new", data={
        "name": name, "uscc": factories.uscc(), "legal_form": "limited_company", "kind": "会计师事务所",
        "address": "库尔勒市石化大道", "legal_representative": "赵六", "contact_name": "钱七",
        "contact_phone": "0996-2888888", "fields": ["finance"]})
    assert response.status_code == 422 and "不可见字符" in text(response)
    with pytest.raises(ValidationFailed) as caught:  # every path: the service itself refuses (imports, CLI)
        factories.firm(world.bz, name=name)
    assert "name" in caught.value.fields
    db.session.rollback()
    assert count(Firm) == 2


def test_invisible_characters_stay_allowed_in_free_text(client, world, auth):
    response = client.post("/api/v1/firms", json=firm_payload(description="引用维吾尔文\u200f段落"),
                           headers=auth("bz.staff"))
    assert response.status_code == 201, text(response)


def test_an_expert_name_with_a_zero_width_space_is_refused(client, world, auth):
    payload = {"name": "王\u200b专家", "id_number": factories.id_number(), "employer": "新疆大学", "title": "正高级",
               "degree": "doctor", "years_in_field": 12, "birth_year": 1975, "fields": ["finance"]}
    assert "name" in assert_error(client.post("/api/v1/experts", json=payload, headers=auth("bz.staff")), 422)["fields"]


# --- money -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("amount", ["1e30", 1e30, "100000001", "0.0000001", 0.0000001, "-5", "NaN", "Infinity"])
def test_an_amount_out_of_bounds_is_refused(client, world, auth, amount):
    plan = client.post("/api/v1/plans", json={"year": 2025}, headers=auth("bz.admin")).json
    payload = {"name": "巴州统计局普查项目", "object_type": "project", "budget_kind": "一般公共预算", "field": "统计",
               "amount_wan": amount, "budget_unit_id": world.units["巴州统计局"].id, "reason": "资金量大"}
    error = assert_error(client.post(f"/api/v1/plans/{plan['id']}/items", json=payload, headers=auth("bz.admin")), 422)
    assert set(error["fields"]) == {"amount_wan"}
    assert count(PlanItem) == 0


def test_amounts_at_the_bounds_are_accepted(client, world, auth):
    plan = client.post("/api/v1/plans", json={"year": 2025}, headers=auth("bz.admin")).json
    for amount, yuan in (("0.000001", Decimal("0.01")), ("100,000,000", Decimal("1000000000000.00"))):
        payload = {"name": f"普查项目{amount}", "object_type": "project", "budget_kind": "一般公共预算", "field": "统计",
                   "amount_wan": amount, "budget_unit_id": world.units["巴州统计局"].id, "reason": "资金量大"}
        body = client.post(f"/api/v1/plans/{plan['id']}/items", json=payload, headers=auth("bz.admin"))
        assert body.status_code == 201, text(body)
        assert Decimal(body.json["amount"]) == yuan


def test_a_web_plan_item_of_1e30_wan_is_refused(world, login):
    plan = P.get_or_create_plan(world.bz, 2025, world.bz_admin)
    db.session.commit()
    response = login(world.bz_admin).post(f"/plans/{plan.id}/items", data={
        "name": "巴州统计局普查项目", "object_type": "project", "budget_kind": "一般公共预算", "field": "finance",
        "amount_wan": "1e30", "budget_unit_id": str(world.units["巴州统计局"].id), "reason": "资金量大"})
    assert response.status_code == 422 and "不能超过 100,000,000 万元" in text(response)
    assert count(PlanItem) == 0


def test_spending_of_1e30_wan_is_refused(world):
    e = factories.engagement(world)
    with pytest.raises(ValidationFailed) as caught:
        P.record_spending(e, "1e30", world.bz_admin)
    assert "spent_wan" in caught.value.fields


def _consultation(world):
    return factories.witnessed(P.open_procurement(factories.engagement(world), P.ProcurementInput(
        method=ProcurementMethod.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=factories.bid_deadline(world.bz, 10)), world.bz_staff))  # the consultation's legal minimum


def test_a_bid_of_a_tenth_of_a_fen_is_refused_not_stored_as_zero(world, login):
    from evalhub.registry.services import StaffInput, add_staff

    p = _consultation(world)
    staff = add_staff(world.firm, StaffInput(name="示范负责人", id_number=factories.id_number(), role="项目负责人",
                                             years_experience=10), world.sysadmin)
    db.session.commit()
    client = login(world.firm_user)
    for price in ("0.0000001", "0.000000001", "1e30"):
        response = client.post(f"/procurements/{p.id}/bid", data={
            "price_wan": price, "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id),
            "technical_file": (io.BytesIO(factories.docx_bytes("技术方案")), "方案.docx")},
            content_type="multipart/form-data")
        assert response.status_code == 422, text(response)[:300]
        assert "投标报价" in text(response)
    assert count(Bid) == 0


# --- 405 -------------------------------------------------------------------------------------------

def test_405_carries_allow_on_the_api_and_the_web(client, world):
    response = client.delete("/api/v1/firms")
    assert_error(response, 405, "method_not_allowed")
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}
    page = client.put("/login")
    assert page.status_code == 405 and "POST" in page.headers["Allow"]


# --- the document shows the bounds -----------------------------------------------------------------

def test_the_openapi_document_declares_the_bounds(client, world):
    spec = client.get("/api/v1/openapi.json").json
    path_id = spec["paths"]["/api/v1/engagements/{engagement_id}"]["get"]["parameters"][0]["schema"]
    assert path_id == {"type": "integer", "minimum": 1, "maximum": INT_MAX}
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/engagements"]["get"]["parameters"]}
    assert params["year"]["maximum"] == 9999 and params["page"]["maximum"] and params["per_page"]["maximum"] == 200
    item = spec["components"]["schemas"]["PlanItemInput"]["properties"]
    number = next(b for b in item["amount_wan"]["oneOf"] if b["type"] == "number")
    assert number["minimum"] == 0.000001 and number["maximum"] == 1e8
    assert item["budget_unit_id"]["maximum"] == INT_MAX and "project" in item["object_type"]["enum"]
    firm = spec["components"]["schemas"]["FirmInput"]["properties"]
    assert firm["name"]["maxLength"] == 120 and "\\u202e" in firm["name"]["pattern"]
    assert "422" in spec["paths"]["/api/v1/procurements/{procurement_id}/bids"]["get"]["responses"]


# --- guards that keep the class from coming back ---------------------------------------------------

def _unbounded(spec: dict) -> list[str]:
    """Request fields (bodies and numeric query parameters) the document leaves without bounds."""
    components = spec["components"]["schemas"]

    def resolve(s: dict) -> dict:
        while "$ref" in s:
            s = components[s["$ref"].rsplit("/", 1)[-1]]
        return s

    found: list[str] = []

    def walk(s: dict, where: str) -> None:
        s = resolve(s)
        for key in ("allOf", "oneOf", "anyOf"):
            for part in s.get(key, ()):
                walk(part, where)
        kind = s.get("type")
        if kind == "object":
            for name, part in s.get("properties", {}).items():
                walk(part, f"{where}.{name}")
            if isinstance(s.get("additionalProperties"), dict):
                walk(s["additionalProperties"], f"{where}.*")
        elif kind == "array":
            if "maxItems" not in s:
                found.append(f"{where}: maxItems")
            walk(s.get("items", {}), f"{where}[]")
        elif kind == "string" and not ("maxLength" in s or "enum" in s or s.get("format") in ("date", "date-time", "binary")):
            found.append(f"{where}: maxLength")
        elif kind in ("integer", "number") and not ("minimum" in s and "maximum" in s):
            found.append(f"{where}: minimum/maximum")

    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            label = f"{method.upper()} {path}"
            for content in op.get("requestBody", {}).get("content", {}).values():
                walk(content["schema"], label)
            for parameter in op.get("parameters", ()):
                if parameter["schema"].get("type") in ("integer", "number"):
                    walk(parameter["schema"], f"{label} ?{parameter['name']}")
    return found


def test_every_request_field_in_the_document_is_bounded(client, world):
    """A new body field or numeric parameter must say its bounds (core.apiutil: text, choice, integer, id_field,
    money, query(..., minimum=, maximum=)); core.api.check_body enforces what the document says."""
    assert _unbounded(client.get("/api/v1/openapi.json").json) == []


def test_every_web_form_derives_from_the_base_form(app):
    """core.forms.BaseForm refuses control characters beside the field: a form on FlaskForm directly would not."""
    from flask_wtf import FlaskForm

    from evalhub.core.forms import BaseForm

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    loose = [f"{c.__module__}.{c.__name__}" for c in subclasses(FlaskForm)
             if c.__module__.startswith("evalhub.") and not issubclass(c, BaseForm)]
    assert loose == []
