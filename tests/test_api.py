"""The JSON API: tokens, the error shape, row scope of the registry endpoints, writes, and the OpenAPI document."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from evalhub.core.personal import reveal_id_number
from evalhub.extensions import db
from evalhub.registry import services as registry
from evalhub.registry.models import Expert, Firm, FirmStatus
from tests import factories
from tests.kept_states import kept


@pytest.fixture()
def auth(client):
    """auth(username) → headers carrying a fresh Bearer token for that user."""

    def do(username: str) -> dict:
        response = client.post("/api/v1/tokens", json={"username": username, "password": factories.PASSWORD})
        assert response.status_code == 201, response.get_data(as_text=True)
        return {"Authorization": f"Bearer {response.json['token']}"}

    return do


@pytest.fixture()
@kept
def library(world):
    """Firms at every level and in every state that matters for row scope."""
    lib = SimpleNamespace(
        bz_admitted=world.firm,                                    # 巴州, admitted (firm1's firm)
        kz_admitted=world.other_firm,                              # 克州, admitted (firm2's firm)
        kz_pending=factories.firm(world.kz, FirmStatus.PENDING),   # an application made to 克州
        bz_pending=factories.firm(world.bz, FirmStatus.PENDING),
        krl_admitted=factories.firm(world.krl, FirmStatus.ADMITTED),
        krl_pending=factories.firm(world.krl, FirmStatus.PENDING),
        lt_pending=factories.firm(world.lt, FirmStatus.PENDING),
        region_admitted=factories.firm(world.region, FirmStatus.ADMITTED),
        region_pending=factories.firm(world.region, FirmStatus.PENDING),
    )
    db.session.commit()
    return lib


def listed_ids(client, headers, url="/api/v1/firms?per_page=200") -> set[int]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"items", "total", "page", "per_page"}
    assert body["total"] == len(body["items"])
    return {item["id"] for item in body["items"]}


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error = response.json["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code
    return error


def firm_payload(**overrides) -> dict:
    payload = {
        "name": "新疆天山绩效评价咨询有限公司", "uscc": factories.uscc(), "legal_form": "limited_company",
        "kind": "会计师事务所", "address": "新疆库尔勒市石化大道 8 号", "legal_representative": "赵六",
        "contact_name": "钱七", "contact_phone": "0996-2888888", "contact_email": "qq@example.cn",
        "founded_on": "2010-05-01", "fields": ["finance", "教育"],
    }
    payload.update(overrides)
    return payload


def firm_count() -> int:
    db.session.rollback()  # read what is committed, not what this session may still hold
    return db.session.execute(sa.select(sa.func.count(Firm.id))).scalar_one()


# --- tokens and the error shape --------------------------------------------------------------------

def test_token_issued_for_good_password(client, world):
    response = client.post("/api/v1/tokens", json={"username": "bz.staff", "password": factories.PASSWORD})
    assert response.status_code == 201
    assert response.json["token"].startswith("ehb_")


def test_token_refused_for_bad_password(client, world):
    response = client.post("/api/v1/tokens", json={"username": "bz.staff", "password": "wrong-password"})
    error = assert_error(response, 401, "unauthorized")
    assert "token" not in response.json


def test_token_request_must_be_json(client, world):
    assert_error(client.post("/api/v1/tokens", data="username=x"), 400)


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-a-real-token"},
    {"Authorization": "Basic YnouYWRtaW46eA=="},
    {"Authorization": "Bearer "},
])
def test_missing_or_invalid_token_is_401_with_error_shape(client, world, headers):
    for url in ("/api/v1/firms", "/api/v1/experts", f"/api/v1/firms/{world.firm.id}"):
        error = assert_error(client.get(url, headers=headers), 401, "unauthorized")
        assert error["fields"] == {}
    assert_error(client.post("/api/v1/firms", json=firm_payload(), headers=headers), 401, "unauthorized")


def test_token_works_and_unknown_route_answers_json(client, world, auth):
    headers = auth("bz.staff")
    assert client.get("/api/v1/firms", headers=headers).status_code == 200
    assert_error(client.get("/api/v1/no-such-thing", headers=headers), 404)
    assert_error(client.get("/api/v1/firms/999999", headers=headers), 404, "not_found")


# --- row scope of the firm list (the done-when check) ----------------------------------------------

def test_prefecture_sees_own_and_counties_but_not_another_prefectures_application(client, library, auth):
    ids = listed_ids(client, auth("bz.staff"))
    assert library.kz_pending.id not in ids          # an application made to 克州 is 克州's business
    assert library.kz_admitted.id not in ids          # 克州's library is not 巴州's (not an upper bureau)
    assert library.region_pending.id not in ids       # nor an application made to the region
    assert ids == {library.bz_admitted.id, library.bz_pending.id, library.krl_admitted.id,
                   library.krl_pending.id, library.lt_pending.id, library.region_admitted.id}


def test_region_sees_every_firm(client, library, auth):
    ids = listed_ids(client, auth("region.admin"))
    assert ids == {f.id for f in vars(library).values()}
    assert library.kz_pending.id in ids and library.bz_pending.id in ids


def test_system_admin_sees_every_firm(client, library, auth):
    assert listed_ids(client, auth("admin")) == {f.id for f in vars(library).values()}


def test_county_sees_own_and_admitted_library_of_its_upper_bureaus(client, library, auth):
    ids = listed_ids(client, auth("krl.staff"))
    assert ids == {library.krl_admitted.id, library.krl_pending.id,   # its own, in any state
                   library.bz_admitted.id, library.region_admitted.id}  # upper bureaus' admitted library
    # not the prefecture's applications, not a sibling county, not another prefecture
    assert not ids & {library.bz_pending.id, library.lt_pending.id, library.kz_pending.id, library.kz_admitted.id}


def test_firm_user_sees_only_its_own_firm(client, library, auth):
    headers = auth("firm1")
    own = client.get(f"/api/v1/firms/{library.bz_admitted.id}", headers=headers)
    assert own.status_code == 200 and own.json["id"] == library.bz_admitted.id
    for other in (library.krl_admitted, library.region_admitted, library.kz_admitted, library.bz_pending):
        assert_error(client.get(f"/api/v1/firms/{other.id}", headers=headers), 404, "not_found")
    # The library list is a bureau tool (permission firm.list); a firm reads its own record above.
    assert_error(client.get("/api/v1/firms", headers=headers), 403, "forbidden")


def test_item_read_outside_scope_is_404(client, library, auth):
    headers = auth("bz.staff")
    assert_error(client.get(f"/api/v1/firms/{library.kz_pending.id}", headers=headers), 404)
    assert client.get(f"/api/v1/firms/{library.region_admitted.id}", headers=headers).status_code == 200


def test_firm_list_filters_and_pagination(client, library, auth):
    headers = auth("bz.staff")
    pending = {library.bz_pending.id, library.krl_pending.id, library.lt_pending.id}
    assert listed_ids(client, headers, "/api/v1/firms?status=pending&per_page=200") == pending
    assert listed_ids(client, headers, "/api/v1/firms?status=待审核&per_page=200") == pending
    assert listed_ids(client, headers, "/api/v1/firms?bureau=652801&per_page=200") == {
        library.krl_admitted.id, library.krl_pending.id}
    # a filter can narrow the scope, never widen it
    assert listed_ids(client, headers, "/api/v1/firms?bureau=653000&per_page=200") == set()
    assert listed_ids(client, headers, "/api/v1/firms?q=示范&per_page=200") == {library.bz_admitted.id}
    assert listed_ids(client, headers, f"/api/v1/firms?q={library.krl_pending.uscc[-8:].lower()}&per_page=200") \
        == {library.krl_pending.id}
    assert listed_ids(client, headers, "/api/v1/firms?q=%25&per_page=200") == set()  # % is text, not a wildcard
    assert listed_ids(client, headers, "/api/v1/firms?field=finance&per_page=200") == listed_ids(client, headers)
    assert listed_ids(client, headers, "/api/v1/firms?field=law&per_page=200") == set()

    first = client.get("/api/v1/firms?per_page=4&page=1", headers=headers).json
    second = client.get("/api/v1/firms?per_page=4&page=2", headers=headers).json
    assert first["total"] == second["total"] == 6
    assert (len(first["items"]), len(second["items"])) == (4, 2)
    assert (first["page"], first["per_page"], second["page"]) == (1, 4, 2)
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


@pytest.mark.parametrize("query, field", [("status=nonsense", "status"), ("bureau=999999", "bureau"),
                                          ("field=astrology", "field")])
def test_bad_list_filter_is_422(client, library, auth, query, field):
    error = assert_error(client.get(f"/api/v1/firms?{query}", headers=auth("bz.staff")), 422, "validation_failed")
    assert field in error["fields"]


def test_bad_page_argument_is_400(client, library, auth):
    assert_error(client.get("/api/v1/firms?page=abc", headers=auth("bz.staff")), 400)


def test_firm_json_shape(client, library, auth):
    item = next(i for i in client.get("/api/v1/firms?per_page=200", headers=auth("bz.staff")).json["items"]
                if i["id"] == library.bz_admitted.id)
    assert item["name"] == "巴州示范评价咨询有限公司"
    assert item["uscc"] == library.bz_admitted.uscc
    assert item["legal_form"] == {"value": "limited_company", "label": "有限责任公司"}
    assert item["kind"] == {"value": "consultancy", "label": "咨询公司"}
    assert item["status"] == {"value": "admitted", "label": "已入库"}
    assert item["bureau"]["code"] == "652800" and item["bureau"]["name"] == "巴音郭楞蒙古自治州财政局"
    assert item["fields"] == [{"value": "finance", "label": "财政经济"}]
    for key in ("contact_name", "contact_phone", "contact_email", "address", "legal_representative",
                "applied_at", "admitted_at"):
        assert key in item


# --- firm detail -----------------------------------------------------------------------------------

def test_firm_detail_has_staff_count_fields_and_history(client, world, auth):
    firm = factories.firm(world.bz, FirmStatus.PENDING)
    registry.change_firm_status(firm, "admit", world.bz_admin, reason="材料齐全", documents=factories.admission_papers())
    registry.add_staff(firm, registry.StaffInput(name="孙八", id_number=factories.id_number(), role="项目负责人",
                                                 years_experience=6), world.bz_admin)
    registry.add_staff(firm, registry.StaffInput(name="周九", id_number=factories.id_number(), role="评价人员",
                                                 years_experience=2), world.bz_admin)
    db.session.commit()

    body = client.get(f"/api/v1/firms/{firm.id}", headers=auth("bz.admin")).json
    assert body["staff_count"] == 2
    assert body["fields"] == [{"value": "finance", "label": "财政经济"}]
    assert [(c["from_status"] and c["from_status"]["value"], c["to_status"]["value"]) for c in body["status_history"]] \
        == [(None, "pending"), ("pending", "admitted")]
    assert body["status_history"][1]["actor"] == "bz.admin"
    assert body["admitted_at"] is not None
    assert set(body["available_actions"]) == {"suspend", "remove", "blacklist"}


def test_firm_user_reads_own_detail_without_bureau_actors_or_actions(client, world, auth):
    registry.change_firm_status(world.firm, "suspend", world.bz_admin, reason="年度信用评价较差")
    db.session.commit()
    body = client.get(f"/api/v1/firms/{world.firm.id}", headers=auth("firm1")).json
    assert body["status"]["value"] == "suspended"
    assert body["status_reason"] == "年度信用评价较差"
    assert all(c["actor"] is None for c in body["status_history"])
    assert body["available_actions"] == []


# --- creating firms --------------------------------------------------------------------------------

def test_bureau_staff_creates_firm(client, world, auth):
    payload = firm_payload()
    response = client.post("/api/v1/firms", json=payload, headers=auth("bz.staff"))
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.json
    assert body["status"] == {"value": "pending", "label": "待审核"}
    assert body["bureau"]["code"] == "652800"
    assert body["kind"] == {"value": "cpa_firm", "label": "会计师事务所"}  # accepted by its Chinese label
    assert body["legal_form"]["value"] == "limited_company"               # and by its value
    assert [f["value"] for f in body["fields"]] == ["finance", "education"]
    assert body["founded_on"] == "2010-05-01"
    assert body["admitted_at"] is None and body["applied_at"]
    assert len(body["status_history"]) == 1

    db.session.rollback()
    firm = db.session.get(Firm, body["id"])  # committed, not only flushed
    assert firm is not None and firm.uscc == payload["uscc"] and firm.created_by.username == "bz.staff"
    assert client.get(f"/api/v1/firms/{firm.id}", headers=auth("bz.admin")).status_code == 200
    # the new application is 巴州's business: 克州 does not see it
    assert_error(client.get(f"/api/v1/firms/{firm.id}", headers=auth("kz.admin")), 404)


def test_bad_credit_code_is_422_and_writes_nothing(client, world, auth):
    before = firm_count()
    good = factories.uscc()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")  # wrong check character
    response = client.post("/api/v1/firms", json=firm_payload(uscc=bad), headers=auth("bz.staff"))
    error = assert_error(response, 422, "validation_failed")
    assert "uscc" in error["fields"]
    assert firm_count() == before


def test_short_credit_code_and_other_problems_are_reported_together(client, world, auth):
    before = firm_count()
    response = client.post("/api/v1/firms", headers=auth("bz.staff"), json=firm_payload(
        uscc="12345", name="", kind="星际旅行社", founded_on="2010-13-45", fields="finance", contact_phone=12345))
    fields = assert_error(response, 422, "validation_failed")["fields"]
    assert {"uscc", "name", "kind", "founded_on", "fields", "contact_phone"} <= set(fields)
    assert fields["contact_phone"] == "必须是字符串"
    assert firm_count() == before


def test_duplicate_credit_code_is_422(client, world, auth):
    before = firm_count()
    response = client.post("/api/v1/firms", json=firm_payload(uscc=world.firm.uscc), headers=auth("bz.staff"))
    assert "uscc" in assert_error(response, 422)["fields"]
    assert firm_count() == before


def test_create_firm_needs_a_json_object(client, world, auth):
    assert_error(client.post("/api/v1/firms", json=["not", "an", "object"], headers=auth("bz.staff")), 400)


@pytest.mark.parametrize("username", ["firm1", "expert1", "admin"])
def test_non_bureau_users_cannot_create_firms(client, world, auth, username):
    before = firm_count()
    assert_error(client.post("/api/v1/firms", json=firm_payload(), headers=auth(username)), 403, "forbidden")
    assert firm_count() == before


# --- status changes --------------------------------------------------------------------------------

def test_admit_then_second_admit_is_409(client, world, auth):
    firm = factories.firm(world.bz, FirmStatus.PENDING)
    for kind, name, data in factories.admission_papers():
        registry.attach_firm_document(firm, kind, name, data, world.bz_admin)
    db.session.commit()
    headers = auth("bz.admin")
    url = f"/api/v1/firms/{firm.id}/status"

    response = client.post(url, json={"action": "admit", "reason": "材料齐全"}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["status"]["value"] == "admitted"
    assert response.json["admitted_at"] is not None
    assert response.json["status_history"][-1]["to_status"]["value"] == "admitted"

    assert_error(client.post(url, json={"action": "admit", "reason": "材料齐全"}, headers=headers), 409, "conflict")
    db.session.rollback()
    assert db.session.get(Firm, firm.id).status == FirmStatus.ADMITTED
    assert len(db.session.get(Firm, firm.id).status_history) == 2


def test_suspend_needs_reason_and_keeps_its_end_date(client, world, auth):
    headers = auth("bz.admin")
    url = f"/api/v1/firms/{world.firm.id}/status"
    assert "reason" in assert_error(client.post(url, json={"action": "suspend"}, headers=headers), 422)["fields"]
    assert "effective_until" in assert_error(
        client.post(url, json={"action": "suspend", "reason": "x", "effective_until": "someday"}, headers=headers),
        422)["fields"]
    response = client.post(url, json={"action": "suspend", "reason": "报告质量抽查不合格",
                                      "effective_until": "2099-12-31"}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["status"]["value"] == "suspended"
    assert response.json["status_until"] == "2099-12-31"
    assert response.json["status_history"][-1]["effective_until"] == "2099-12-31"


@pytest.mark.parametrize("body", [{}, {"action": "promote"}, {"action": 7}])
def test_unknown_or_missing_action_is_422(client, world, auth, body):
    response = client.post(f"/api/v1/firms/{world.firm.id}/status", json=body, headers=auth("bz.admin"))
    assert "action" in assert_error(response, 422)["fields"]


def test_another_prefecture_cannot_change_a_firm(client, world, auth):
    response = client.post(f"/api/v1/firms/{world.firm.id}/status", json={"action": "suspend", "reason": "越权"},
                           headers=auth("kz.admin"))
    assert response.status_code in (403, 404)
    assert_error(response, response.status_code)
    db.session.rollback()
    assert db.session.get(Firm, world.firm.id).status == FirmStatus.ADMITTED


@pytest.mark.parametrize("username", ["krl.admin", "bz.staff", "firm1", "region.admin"])
def test_users_who_see_a_firm_but_may_not_change_it_get_403(client, world, auth, username):
    # a county uses 巴州's library, staff may not suspend, a firm may not suspend itself, the region supervises
    response = client.post(f"/api/v1/firms/{world.firm.id}/status", json={"action": "suspend", "reason": "越权"},
                           headers=auth(username))
    assert_error(response, 403, "forbidden")
    db.session.rollback()
    assert db.session.get(Firm, world.firm.id).status == FirmStatus.ADMITTED


# --- experts ---------------------------------------------------------------------------------------

def expert_payload(**overrides) -> dict:
    payload = {"name": "马专家", "id_number": factories.id_number(birth="19750612"), "employer": "巴州审计局",
               "title": "副高级", "degree": "master", "years_in_field": 12, "birth_year": 1975,
               "fields": ["accounting"], "phone": "13900000000", "email": "ma@example.cn"}
    payload.update(overrides)
    return payload


def test_expert_read_never_contains_the_full_identity_number(client, world, auth):
    expert = world.expert
    full = reveal_id_number(expert.id_number_encrypted)
    for username in ("bz.staff", "region.admin", "krl.staff", "expert1", "admin"):
        response = client.get(f"/api/v1/experts/{expert.id}", headers=auth(username))
        assert response.status_code == 200, (username, response.get_data(as_text=True))
        text = response.get_data(as_text=True)
        assert full not in text and full[:14] not in text
        assert expert.id_number_encrypted not in text and expert.id_number_digest not in text
        assert response.json["id_number_masked"] == expert.id_number_masked
        assert "id_number" not in response.json
    listed = client.get("/api/v1/experts", headers=auth("bz.staff"))
    assert listed.status_code == 200 and full not in listed.get_data(as_text=True)


def test_expert_detail_includes_eligibility(client, world, auth):
    weak = factories.expert(world.bz, years_in_field=3, title="初级", birth_year=1970)
    db.session.commit()
    headers = auth("bz.staff")
    good = client.get(f"/api/v1/experts/{world.expert.id}", headers=headers).json
    assert good["eligible"] is True and good["eligibility_reasons"] == []
    assert good["title"] == {"value": "senior", "label": "正高级"}
    assert any(t["kind"]["value"] == "employment" for t in good["ties"])
    bad = client.get(f"/api/v1/experts/{weak.id}", headers=headers).json
    assert bad["eligible"] is False
    assert any("从业年限" in r for r in bad["eligibility_reasons"])
    assert any("职称" in r for r in bad["eligibility_reasons"])


def test_expert_scope(client, world, auth):
    kz_expert = factories.expert(world.kz)
    other_bz = factories.expert(world.bz)
    db.session.commit()
    bz_ids = {i["id"] for i in client.get("/api/v1/experts?per_page=200", headers=auth("bz.staff")).json["items"]}
    assert bz_ids == {world.expert.id, other_bz.id}
    assert_error(client.get(f"/api/v1/experts/{kz_expert.id}", headers=auth("bz.staff")), 404)
    region_ids = {i["id"] for i in client.get("/api/v1/experts?per_page=200", headers=auth("region.admin")).json["items"]}
    assert region_ids == {world.expert.id, other_bz.id, kz_expert.id}
    # an expert reads their own record, nobody else's, and has no pool list
    headers = auth("expert1")
    assert client.get(f"/api/v1/experts/{world.expert.id}", headers=headers).status_code == 200
    assert_error(client.get(f"/api/v1/experts/{other_bz.id}", headers=headers), 404)
    assert_error(client.get("/api/v1/experts", headers=headers), 403)
    assert_error(client.get("/api/v1/experts", headers=auth("firm1")), 403)


def test_expert_list_filters(client, world, auth):
    factories.expert(world.bz, name="热合曼", employer="新疆大学", fields=["law"])
    db.session.commit()
    headers = auth("bz.staff")
    names = lambda q: [i["name"] for i in client.get(f"/api/v1/experts?{q}", headers=headers).json["items"]]  # noqa: E731
    assert names("q=新疆大学") == ["热合曼"]
    assert names("field=法律") == ["热合曼"]
    assert names("status=active&q=王") == ["王专家"]
    assert names("bureau=653000") == []
    assert "status" in assert_error(client.get("/api/v1/experts?status=retired", headers=headers), 422)["fields"]


def test_bureau_staff_creates_expert(client, world, auth):
    payload = expert_payload()
    response = client.post("/api/v1/experts", json=payload, headers=auth("bz.staff"))
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.json
    text = response.get_data(as_text=True)
    assert payload["id_number"] not in text
    assert body["id_number_masked"].startswith(payload["id_number"][:3]) and "*" in body["id_number_masked"]
    assert body["title"]["value"] == "associate_senior" and body["degree"]["value"] == "master"
    assert body["bureau"]["code"] == "652800" and body["eligible"] is True
    db.session.rollback()
    assert db.session.get(Expert, body["id"]).name == "马专家"


def test_bad_expert_input_is_422_and_writes_nothing(client, world, auth):
    count = lambda: (db.session.rollback(), db.session.execute(sa.select(sa.func.count(Expert.id))).scalar_one())[1]  # noqa: E731
    before = count()
    response = client.post("/api/v1/experts", headers=auth("bz.staff"),
                           json=expert_payload(id_number="652801197506120000", years_in_field="many", birth_year=True))
    fields = assert_error(response, 422, "validation_failed")["fields"]
    assert {"id_number", "years_in_field", "birth_year"} <= set(fields)
    # the same person twice
    duplicate = expert_payload(id_number=reveal_id_number(world.expert.id_number_encrypted), birth_year=1970)
    assert "id_number" in assert_error(client.post("/api/v1/experts", json=duplicate, headers=auth("bz.staff")), 422)["fields"]
    assert count() == before


@pytest.mark.parametrize("username", ["firm1", "expert1", "admin"])
def test_non_bureau_users_cannot_create_experts(client, world, auth, username):
    assert_error(client.post("/api/v1/experts", json=expert_payload(), headers=auth(username)), 403, "forbidden")


# --- the OpenAPI document --------------------------------------------------------------------------

def test_openapi_document_validates_and_covers_every_api_route(app, client, world):
    response = client.get("/api/v1/openapi.json")  # no token needed
    assert response.status_code == 200
    spec = response.json
    validate(spec)

    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1")]
    assert rules
    for rule in rules:
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {rule.rule} is not in the OpenAPI document"


def test_openapi_document_describes_the_registry_schemas(client, world):
    spec = client.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    for name in ("Firm", "FirmDetail", "FirmInput", "FirmList", "FirmStatusRequest", "Expert", "ExpertDetail",
                 "ExpertInput", "ExpertList", "Error"):
        assert name in schemas
    assert set(schemas["Firm"]["properties"]) >= {"id", "name", "uscc", "legal_form", "kind", "status", "bureau",
                                                  "fields", "contact_name", "contact_phone", "contact_email",
                                                  "applied_at", "admitted_at"}
    assert "id_number_encrypted" not in str(schemas)
    create = spec["paths"]["/api/v1/firms"]["post"]
    assert {"201", "401", "403", "422"} <= set(create["responses"])
    assert create["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/api/v1/firms/{firm_id}/status"]["post"]["responses"]["409"]
