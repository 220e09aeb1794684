"""The credit rating and supervision API: ratings by role and scope (克州 and firm2 refused), components and the
change from last year, the objection flow (201, 409 outside the period, 422 short text, answer by the bureau
admin only), inspections with findings (no inspector names for the firm), the public list of final ratings
without a token, and the OpenAPI document."""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from evalhub.core.timeutil import beijing_today
from evalhub.credit import services as C
from evalhub.credit.models import CreditGrade, CreditObjection, CreditRating, RatingStatus
from evalhub.extensions import db
from evalhub.supervision import services as V
from evalhub.supervision.models import Inspection, Severity, Trigger
from tests import factories
from tests.test_api import assert_error
from tests.test_credit_supervision_services import _completed
from tests.test_review_services import _experts
from tests.kept_states import kept


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def _rating(world, firm, bureau, *, year=2025, status=RatingStatus.DRAFT, total="76", grade=CreditGrade.C,
            components=None, deadline: date | None = None) -> CreditRating:
    """A rating row written directly (the computation has its own tests)."""
    rating = CreditRating(bureau_id=bureau.id, firm_id=firm.id, year=year, status=status, rated=True,
                          total=Decimal(total), grade=grade, components=components or [], objection_deadline=deadline)
    db.session.add(rating)
    db.session.flush()
    return rating


@pytest.fixture()
@kept
def ratings(world):
    """2025 ratings: 巴州 (computed from a completed engagement, then published), 轮台县 (a county under
    巴州, draft), 克州 (firm2's firm, published); and 巴州's FINAL 2024 rating of firm1's firm."""
    _completed(world)
    C.compute(world.bz, 2025, world.bz_admin)
    C.publish(world.bz, 2025, world.bz_admin, today=beijing_today())
    bz = db.session.execute(sa.select(CreditRating).where(CreditRating.bureau_id == world.bz.id,
                                                          CreditRating.year == 2025)).scalar_one()
    previous = _rating(world, world.firm, world.bz, year=2024, status=RatingStatus.FINAL, total="81.5",
                       grade=CreditGrade.B, components=[{"code": "quality", "label": "执业质量", "max": "40", "points": "30.00",
                                                          "detail": [], "records": []}])
    lt = _rating(world, world.firm, world.lt)
    kz = _rating(world, world.other_firm, world.kz, status=RatingStatus.PUBLISHED, total="92", grade=CreditGrade.A,
                 deadline=beijing_today() + timedelta(days=10))
    db.session.commit()
    return {"bz": bz.id, "bz_2024": previous.id, "lt": lt.id, "kz": kz.id}


def _ids(client, headers, query: str = "") -> set[int]:
    body = ok(client.get(f"/api/v1/ratings?per_page=200{query}", headers=headers))
    assert set(body) == {"items", "total", "page", "per_page"} and body["total"] == len(body["items"])
    return {i["id"] for i in body["items"]}


# --- ratings: scope --------------------------------------------------------------------------------

def test_rating_list_is_scoped_by_role(client, world, ratings, auth):
    r = ratings
    assert _ids(client, auth("bz.admin")) == {r["bz"], r["bz_2024"], r["lt"]}     # 巴州 and its counties
    assert _ids(client, auth("bz.staff")) == {r["bz"], r["bz_2024"], r["lt"]}
    assert _ids(client, auth("lt.admin")) == {r["lt"]}
    assert _ids(client, auth("kz.admin")) == {r["kz"]}                            # not 巴州's
    assert _ids(client, auth("region.admin")) == set(r.values())
    assert _ids(client, auth("admin")) == set(r.values())
    assert _ids(client, auth("firm1")) == {r["bz"], r["bz_2024"]}                 # own, not the county's draft
    assert _ids(client, auth("firm2")) == {r["kz"]}
    assert_error(client.get("/api/v1/ratings", headers=auth("expert1")), 403, "forbidden")
    assert_error(client.get("/api/v1/ratings"), 401, "unauthorized")


def test_a_rating_outside_scope_is_404(client, world, ratings, auth):
    assert_error(client.get(f"/api/v1/ratings/{ratings['bz']}", headers=auth("kz.admin")), 404, "not_found")   # 克州
    assert_error(client.get(f"/api/v1/ratings/{ratings['bz']}", headers=auth("firm2")), 404, "not_found")      # firm2
    assert_error(client.get(f"/api/v1/ratings/{ratings['kz']}", headers=auth("firm1")), 404, "not_found")
    assert_error(client.get(f"/api/v1/ratings/{ratings['lt']}", headers=auth("firm1")), 404)   # a draft is not the firm's yet
    assert_error(client.get("/api/v1/ratings/999999", headers=auth("bz.admin")), 404)
    ok(client.get(f"/api/v1/ratings/{ratings['lt']}", headers=auth("bz.staff")))
    ok(client.get(f"/api/v1/ratings/{ratings['kz']}", headers=auth("firm2")))


def test_rating_list_filters(client, world, ratings, auth):
    r, headers = ratings, auth("region.admin")
    assert _ids(client, headers, "&year=2024") == {r["bz_2024"]}
    assert _ids(client, headers, "&grade=A") == {r["kz"]}
    assert _ids(client, headers, "&grade=B 级") == {r["bz_2024"]}
    assert _ids(client, headers, "&status=published") == {r["bz"], r["kz"]}
    assert _ids(client, headers, "&status=草稿") == {r["lt"]}
    assert _ids(client, headers, "&bureau=653000") == {r["kz"]}
    assert "grade" in assert_error(client.get("/api/v1/ratings?grade=E", headers=headers), 422)["fields"]
    assert "status" in assert_error(client.get("/api/v1/ratings?status=x", headers=headers), 422)["fields"]
    assert "year" in assert_error(client.get("/api/v1/ratings?year=abc", headers=headers), 422)["fields"]
    assert_error(client.get("/api/v1/ratings?page=x", headers=headers), 400)


# --- ratings: detail -------------------------------------------------------------------------------

def test_rating_detail_has_components_objections_and_the_change_from_last_year(client, world, ratings, auth):
    body = ok(client.get(f"/api/v1/ratings/{ratings['bz']}", headers=auth("firm1")))
    assert body["year"] == 2025 and body["bureau"]["code"] == "652800" and body["firm"]["name"] == world.firm.name
    assert body["status"] == {"value": "published", "label": "公示中"}
    assert body["total"] == 76.0 and body["grade"] == {"value": "C", "label": "C 级"}
    assert [c["code"] for c in body["components"]] == ["quality", "performance", "feedback", "supervision", "external"]
    quality = body["components"][0]
    assert set(quality) >= {"code", "label", "max", "points", "detail", "records"}
    assert quality["label"] == "执业质量" and quality["max"] == 40.0 and quality["points"] == 20.0
    assert quality["previous_points"] == 30.0 and body["components"][1]["previous_points"] is None
    assert isinstance(quality["detail"], list) and quality["detail"]
    assert body["previous"] == {"id": ratings["bz_2024"], "year": 2024, "status": {"value": "final", "label": "已确定"},
                                "rated": True, "total": 81.5, "grade": {"value": "B", "label": "B 级"}}
    assert body["change"] == {"total": -5.5, "grade": "down"}
    assert body["objections"] == [] and body["can_object"] is True
    assert body["objection_deadline"] and body["objections_open"] == 0
    # the bureau reads the same rating but may not object to it
    assert ok(client.get(f"/api/v1/ratings/{ratings['bz']}", headers=auth("bz.admin")))["can_object"] is False
    # a rating without last year's has no change
    kz = ok(client.get(f"/api/v1/ratings/{ratings['kz']}", headers=auth("firm2")))
    assert kz["previous"] is None and kz["change"] == {"total": None, "grade": None}


# --- objections ------------------------------------------------------------------------------------

def _object(client, headers, rating_id, text="合同履行得分有误：实施方案实际按期提交，附回执。"):
    return client.post(f"/api/v1/ratings/{rating_id}/objections", json={"text": text}, headers=headers)


def test_the_objection_flow(client, world, ratings, auth):
    rating_id = ratings["bz"]
    firm1 = auth("firm1")
    assert "text" in assert_error(_object(client, firm1, rating_id, "太短了"), 422, "validation_failed")["fields"]
    assert "text" in assert_error(_object(client, firm1, rating_id, 12345), 422)["fields"]
    assert_error(client.post(f"/api/v1/ratings/{rating_id}/objections", data="text", headers=firm1), 400)
    assert_error(_object(client, auth("firm2"), rating_id), 404)                  # another firm's rating
    assert_error(_object(client, auth("bz.admin"), rating_id), 403, "forbidden")   # only the rated firm objects
    objection = ok(_object(client, firm1, rating_id), 201)
    assert objection["rating_id"] == rating_id and objection["decision"] is None and objection["answer"] is None
    assert objection["answer_due"] > beijing_today().isoformat() and objection["evidence"] == []
    assert ok(client.get(f"/api/v1/ratings/{rating_id}", headers=firm1))["objections_open"] == 1

    url = f"/api/v1/objections/{objection['id']}/answer"
    answer = {"decision": "upheld", "answer": "经核实，方案回执日期为 4 月 1 日，予以更正。", "recompute": True}
    assert_error(client.post(url, json=answer, headers=auth("bz.staff")), 403)    # staff: not a bureau admin
    assert_error(client.post(url, json=answer, headers=auth("firm1")), 403)
    assert_error(client.post(url, json=answer, headers=auth("kz.admin")), 404)    # 克州 does not see it
    assert_error(client.post(url, json=answer, headers=auth("firm2")), 404)
    assert_error(client.post("/api/v1/objections/999999/answer", json=answer, headers=auth("bz.admin")), 404)
    assert "answer" in assert_error(client.post(url, json={**answer, "answer": "同意"}, headers=auth("bz.admin")), 422)["fields"]
    assert "decision" in assert_error(client.post(url, json={**answer, "decision": "maybe"}, headers=auth("bz.admin")),
                                      422)["fields"]
    assert "recompute" in assert_error(client.post(url, json={**answer, "recompute": "yes"}, headers=auth("bz.admin")),
                                       422)["fields"]
    body = ok(client.post(url, json=answer, headers=auth("bz.admin")))
    assert body["id"] == rating_id and body["version"] == 2 and body["objections_open"] == 0   # recomputed
    answered = body["objections"][0]
    assert answered["decision"] == {"value": "upheld", "label": "异议成立"} and answered["answered_by"]["name"] == "bz.admin"
    assert_error(client.post(url, json=answer, headers=auth("bz.admin")), 409, "conflict")      # answered already
    # the firm reads the answer, not who wrote it
    seen = ok(client.get(f"/api/v1/ratings/{rating_id}", headers=firm1))["objections"][0]
    assert seen["answer"].startswith("经核实") and seen["answered_by"] is None
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(CreditObjection.id))).scalar_one() == 1


def test_objections_outside_the_period_are_409(client, world, ratings, auth):
    closed = _rating(world, world.firm, world.bz, year=2023, status=RatingStatus.PUBLISHED,
                     deadline=beijing_today() - timedelta(days=1))
    final = db.session.get(CreditRating, ratings["bz_2024"])
    db.session.commit()
    assert "截止" in assert_error(_object(client, auth("firm1"), closed.id), 409, "conflict")["message"]
    assert ok(client.get(f"/api/v1/ratings/{closed.id}", headers=auth("firm1")))["can_object"] is False
    assert_error(_object(client, auth("firm1"), final.id), 409, "conflict")       # a final rating is history
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(CreditObjection.id))).scalar_one() == 0


# --- inspections -----------------------------------------------------------------------------------

@pytest.fixture()
@kept
def inspections(world):
    """A random inspection of firm1's engagement with drawn inspectors and a finding, a targeted case from a
    complaint, and a 克州 case against firm2's firm."""
    e = _completed(world)
    _experts(world, 2)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    random_case = campaign.inspections[0]
    officer = next(p.user for p in random_case.inspectors if p.user_id)  # the drawn officer writes the record
    V.record_checklist(random_case, officer, {"working_papers": (False, "缺少访谈记录")})
    V.add_finding(random_case, officer, severity=Severity.GENERAL, description="工作底稿缺少访谈记录",
                  measures=["责令整改"])
    complaint = V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name,
                                 text="评价报告照抄被评价单位自评报告，问题建议空泛，投诉人王某某。",
                                 engagement_reference=e.reference, complainant_name="王某某",
                                 complainant_contact="13800000000", address="5.5.5.5")
    targeted = V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="王某某投诉：报告照抄自评",
                           complaint=complaint, engagement=e)
    kz_e = _completed(world, bureau_key="kz", unit="克州农业农村局", firm=world.other_firm)
    kz_case = V.open_case(world.kz, world.kz_staff, trigger=Trigger.LOW_SCORE, detail="评审得分偏低", engagement=kz_e)
    db.session.commit()
    names = [p.name for p in random_case.inspectors]
    return {"random": random_case.id, "targeted": targeted.id, "kz": kz_case.id, "inspector_names": names,
            "complaint": complaint.reference, "officer": officer.display_name}


def _inspection_ids(client, headers, query: str = "") -> set[int]:
    body = ok(client.get(f"/api/v1/inspections?per_page=200{query}", headers=headers))
    assert body["total"] == len(body["items"])
    return {i["id"] for i in body["items"]}


def test_inspection_list_is_scoped(client, world, inspections, auth):
    i = inspections
    assert _inspection_ids(client, auth("bz.staff")) == {i["random"], i["targeted"]}
    assert _inspection_ids(client, auth("kz.admin")) == {i["kz"]}
    assert _inspection_ids(client, auth("region.admin")) == {i["random"], i["targeted"], i["kz"]}
    assert _inspection_ids(client, auth("firm1")) == {i["random"], i["targeted"]}
    assert _inspection_ids(client, auth("firm2")) == {i["kz"]}
    assert _inspection_ids(client, auth("lt.admin")) == set()
    # an expert lists the cases it is seated on as inspector (inspection.view), nothing else
    seated = {case for case in (i["random"], i["targeted"], i["kz"])
              if any(p.expert_id == world.expert.id for p in db.session.get(Inspection, case).inspectors)}
    assert _inspection_ids(client, auth("expert1")) == seated
    assert _inspection_ids(client, auth("bz.staff"), "&trigger=complaint") == {i["targeted"]}
    assert _inspection_ids(client, auth("bz.staff"), "&status=待机构整改回复") == {i["random"]}
    assert "status" in assert_error(client.get("/api/v1/inspections?status=x", headers=auth("bz.staff")), 422)["fields"]
    assert "campaign" in assert_error(client.get("/api/v1/inspections?campaign=x", headers=auth("bz.staff")), 422)["fields"]
    for username in ("kz.admin", "firm2", "lt.admin"):
        assert_error(client.get(f"/api/v1/inspections/{i['random']}", headers=auth(username)), 404)
        assert_error(client.get(f"/api/v1/inspections/{i['random']}/findings", headers=auth(username)), 404)
    assert_error(client.get(f"/api/v1/inspections/{i['kz']}", headers=auth("firm1")), 404)


def test_bureau_reads_an_inspection_in_full(client, world, inspections, auth):
    body = ok(client.get(f"/api/v1/inspections/{inspections['random']}", headers=auth("bz.staff")))
    assert body["trigger"]["value"] == "random" and body["campaign"]["year"] == 2025
    assert body["status"]["value"] == "awaiting_response" and body["finding_count"] == 1
    assert {p["kind"] for p in body["inspectors"]} == {"staff", "expert"}
    assert sorted(p["name"] for p in body["inspectors"]) == sorted(inspections["inspector_names"])
    assert all(p["draw_id"] for p in body["inspectors"])
    finding = body["findings"][0]
    assert finding["severity"] == {"value": "general", "label": "一般"}
    assert finding["measures"] == [{"value": "order_to_correct", "label": "责令整改"}]
    assert finding["created_by"]["name"] == inspections["officer"]
    assert body["checklist"][0] == {"code": "working_papers", "label": "工作底稿完整", "done": True, "ok": False,
                                    "note": "缺少访谈记录"}
    targeted = ok(client.get(f"/api/v1/inspections/{inspections['targeted']}", headers=auth("bz.admin")))
    assert targeted["complaint"]["reference"] == inspections["complaint"] and "王某某" in targeted["trigger_detail"]


def test_the_firm_never_sees_inspector_names_or_the_complaint(client, world, inspections, auth):
    response = client.get(f"/api/v1/inspections/{inspections['random']}", headers=auth("firm1"))
    body = ok(response)
    assert [p for p in body["inspectors"]] and all(set(p) == {"kind"} for p in body["inspectors"])
    assert body["findings"][0]["description"] == "工作底稿缺少访谈记录" and "created_by" not in body["findings"][0]
    assert "opened_by" not in body and "complaint" not in body
    findings = client.get(f"/api/v1/inspections/{inspections['random']}/findings", headers=auth("firm1"))
    assert ok(findings)["items"][0]["severity"]["value"] == "general"
    for text in (response.get_data(as_text=True), findings.get_data(as_text=True)):
        for name in inspections["inspector_names"] + ["bz.staff", "bz.admin"]:
            assert name not in text
    targeted = client.get(f"/api/v1/inspections/{inspections['targeted']}", headers=auth("firm1"))
    assert ok(targeted)["trigger"]["value"] == "complaint" and targeted.json["trigger_detail"] is None
    assert "王某某" not in targeted.get_data(as_text=True)
    assert inspections["complaint"] not in targeted.get_data(as_text=True)


def test_findings_endpoint(client, world, inspections, auth):
    body = ok(client.get(f"/api/v1/inspections/{inspections['random']}/findings", headers=auth("region.admin")))
    assert body["inspection"]["id"] == inspections["random"] and len(body["items"]) == 1
    assert ok(client.get(f"/api/v1/inspections/{inspections['kz']}/findings", headers=auth("firm2")))["items"] == []
    assert_error(client.get("/api/v1/inspections/999999/findings", headers=auth("bz.staff")), 404)


# --- public ratings --------------------------------------------------------------------------------

def test_public_ratings_show_only_final_ratings_without_a_token(client, world, ratings):
    kz_final = _rating(world, world.other_firm, world.kz, year=2024, status=RatingStatus.FINAL, total="91",
                       grade=CreditGrade.A)
    unrated = _rating(world, world.other_firm, world.bz, year=2024, status=RatingStatus.FINAL)
    unrated.rated, unrated.total, unrated.grade = False, None, None
    db.session.commit()
    response = client.get("/api/v1/public/ratings")  # no Authorization header
    body = ok(response)
    assert set(body) == {"items", "total", "page", "per_page"} and body["total"] == 2
    assert {(i["year"], i["bureau"]["code"], i["firm"]["name"], i["grade"]["value"], i["total"]) for i in body["items"]} == {
        (2024, "652800", world.firm.name, "B", 81.5), (2024, "653000", world.other_firm.name, "A", 91.0)}
    assert all(set(i) == {"year", "bureau", "firm", "grade", "total", "finalised_at"} for i in body["items"])
    assert "components" not in response.get_data(as_text=True) and "watch" not in response.get_data(as_text=True)

    def years_and_grades(query):
        return {(i["year"], i["grade"]["value"]) for i in ok(client.get(f"/api/v1/public/ratings?{query}"))["items"]}

    assert years_and_grades("year=2025") == set()
    assert years_and_grades("grade=A") == {(2024, "A")}
    assert years_and_grades("bureau=652800") == {(2024, "B")}
    assert years_and_grades("firm=克州") == {(2024, "A")} and years_and_grades("firm=%25") == set()
    assert "grade" in assert_error(client.get("/api/v1/public/ratings?grade=Z"), 422)["fields"]
    assert "year" in assert_error(client.get("/api/v1/public/ratings?year=x"), 422)["fields"]
    assert "bureau" in assert_error(client.get("/api/v1/public/ratings?bureau=999999"), 422)["fields"]
    first = ok(client.get("/api/v1/public/ratings?per_page=1"))
    second = ok(client.get("/api/v1/public/ratings?per_page=1&page=2"))
    assert first["total"] == second["total"] == 2 and first["items"][0] != second["items"][0]
    assert first["items"][0]["firm"]["uscc"] in {world.firm.uscc, kz_final.firm.uscc}


# --- the OpenAPI document --------------------------------------------------------------------------

def test_openapi_document_validates_and_describes_credit_and_supervision(app, client, world):
    spec = ok(client.get("/api/v1/openapi.json"))
    validate(spec)
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for rule in (r for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1")):
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {rule.rule} is not in the OpenAPI document"
    for path, method in [("/api/v1/ratings", "get"), ("/api/v1/ratings/{rating_id}", "get"),
                         ("/api/v1/ratings/{rating_id}/objections", "post"),
                         ("/api/v1/objections/{objection_id}/answer", "post"),
                         ("/api/v1/inspections", "get"), ("/api/v1/inspections/{inspection_id}", "get"),
                         ("/api/v1/inspections/{inspection_id}/findings", "get"), ("/api/v1/public/ratings", "get")]:
        assert (path, method) in documented
    objection = spec["paths"]["/api/v1/ratings/{rating_id}/objections"]["post"]
    assert {"201", "403", "404", "409", "422"} <= set(objection["responses"])
    public = spec["paths"]["/api/v1/public/ratings"]["get"]
    assert "security" not in public and "401" not in public["responses"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["CreditComponent"]["properties"]) >= {"code", "label", "max", "points", "detail", "records"}
    assert set(schemas["PublicCreditRating"]["properties"]) >= {"year", "bureau", "firm", "grade", "total"}
