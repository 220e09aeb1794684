"""The report-screening API: scoring a whole report or a fragment (with and without an engagement's context),
body validation, the ranked queue and its year check, the model list, and who is refused (no token: 401;
firm users and experts: 403 on every endpoint, the firm never sees a risk score); and the OpenAPI document."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.screening import services as S
from evalhub.screening.features import FEATURE_KEYS
from evalhub.review.models import SubmissionKind
from evalhub.screening.models import ModelStatus, ReportScreening, ScreeningModel
from tests import factories
from tests.screening_support import report_text, upload_report
from tests.test_api import assert_error
from tests.kept_states import kept

SCORE_FIELDS = {"risk", "method", "model_version", "kind", "features", "reasons", "gaps", "copied_passages"}
QUEUE_FIELDS = {"rank", "flagged", "risk", "method", "model_version", "submission_id", "version", "kind", "engagement",
                "firm", "bureau", "submitted_at", "reasons"}
FRAGMENT = "进一步加强管理。"


@pytest.fixture(autouse=True)
def _fresh_screening_cache(app_ctx):
    """The index and loaded models are cached per process; every test starts from empty tables."""
    S.forget_cache()
    yield
    S.forget_cache()


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def _score(client, headers, **body):
    return client.post("/api/v1/screening/score", json=body, headers=headers)


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# --- scoring ---------------------------------------------------------------------------------------

def test_scores_a_whole_report_and_a_fragment(client, world, auth):
    whole = ok(_score(client, auth("bz.staff"), kind="report",
                      text=report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=False)))
    assert set(whole) == SCORE_FIELDS and whole["kind"] == "report"
    assert 0.0 <= whole["risk"] <= 1.0 and whole["method"] == "rule" and whole["model_version"] is None
    assert set(whole["features"]) >= set(FEATURE_KEYS)
    assert whole["features"]["missing_chapters"] == 0 and whole["features"]["length_chars"] > 200
    assert whole["features"]["generic_advice_share"] > 0.5
    assert all(isinstance(r, str) and r for r in whole["reasons"])  # no peers stored yet: maybe none
    assert any("没有数字、责任主体或时限" in g for g in whole["gaps"])
    assert whole["copied_passages"] == []  # nothing stored yet

    fragment = ok(_score(client, auth("bz.admin"), text=FRAGMENT, kind="report"))
    assert set(fragment) == SCORE_FIELDS and 0.0 <= fragment["risk"] <= 1.0
    assert fragment["features"]["missing_chapters"] is None  # "report" is believed only with an outline
    assert fragment["features"]["length_chars"] == len(FRAGMENT)
    plan = ok(_score(client, auth("region.admin"), text=FRAGMENT, kind="work_plan"))
    assert 0.0 <= plan["risk"] <= 1.0 and plan["features"]["missing_chapters"] is None  # a plan has no report chapters
    assert ok(_score(client, auth("admin"), text=FRAGMENT))["method"] == "rule"  # the platform's own administrator


def test_kind_defaults_to_detection_and_fragments_get_no_chapter_features(client, world, auth):
    headers = auth("bz.staff")
    excerpt = "一、基本情况\n项目资金已全部到位，严格管理，做到专款专用。\n五、存在的问题\n暂无问题。"
    detected = ok(_score(client, headers, text=excerpt))
    assert detected["kind"] == "fragment" and detected["features"]["missing_chapters"] is None
    declared = ok(_score(client, headers, text=excerpt, kind="self_evaluation"))
    assert declared["kind"] == "self_evaluation" and declared["features"]["missing_chapters"] is None
    assert ok(_score(client, headers, text=excerpt, kind="fragment"))["kind"] == "fragment"
    short_report = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=True)
    assert ok(_score(client, headers, text=short_report, kind="report"))["features"]["missing_chapters"] == 0
    long_report = short_report + "\n" + "评价组于2025年3月抽查了东风村等12个实施点，回收有效问卷300份。" * 60
    assert ok(_score(client, headers, text=long_report))["kind"] == "report"  # long, with the outline: a report


def test_with_an_engagement_a_copy_from_the_same_firm_is_found(client, world, auth):
    original = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=False)
    e1, s1 = upload_report(world, original, name="饮水安全工程")
    e2 = factories.contracted(world, name="高标准农田建设", unit="巴州民政局")
    db.session.commit()
    # the same report with the project and the unit swapped: names are masked, so it is still a copy
    text = original.replace("饮水安全工程", "高标准农田建设").replace("巴州统计局", "巴州民政局")

    body = ok(_score(client, auth("bz.staff"), text=text, engagement_id=e2.id))
    assert body["features"]["copy_same_firm"] >= 0.9 and body["features"]["copy_other_firms"] == 0.0
    assert body["features"]["near_duplicate"] == 1.0
    assert body["copied_passages"], body
    passage = body["copied_passages"][0]
    assert passage["source_submission_id"] == s1.id and passage["relation"] == "same_firm"
    assert e1.reference in passage["source"] and world.firm.name in passage["source"] and passage["text"]
    assert any("近似重复" in r and e1.reference in r for r in body["reasons"])
    # the engagement's recorded budget is compared with the text
    assert body["features"]["facts_stated"] is not None

    # with the firm only (no names to mask), the unchanged text is a copy from the same firm
    by_firm = ok(_score(client, auth("bz.staff"), text=original, firm_id=world.firm.id))
    assert by_firm["features"]["copy_same_firm"] >= 0.7, by_firm["features"]
    # the other firm's bureau sees it as copied from another firm
    other = ok(_score(client, auth("kz.staff"), text=original, firm_id=world.other_firm.id))
    assert other["features"]["copy_same_firm"] == 0.0 and other["features"]["copy_other_firms"] >= 0.7
    assert other["copied_passages"][0]["relation"] == "other_firms"


def test_an_engagement_or_firm_outside_the_users_scope_is_refused(client, world, auth):
    kz_engagement = factories.contracted(world, firm=world.other_firm, bureau_key="kz", unit="克州农业农村局")
    db.session.commit()
    error = assert_error(_score(client, auth("bz.staff"), text=FRAGMENT, engagement_id=kz_engagement.id), 422,
                         "validation_failed")
    assert "engagement_id" in error["fields"] and _has_chinese(error["message"])
    assert "engagement_id" in assert_error(_score(client, auth("bz.staff"), text=FRAGMENT, engagement_id=999999),
                                           422)["fields"]
    assert "firm_id" in assert_error(_score(client, auth("kz.staff"), text=FRAGMENT, firm_id=world.firm.id),
                                     422)["fields"]
    assert "firm_id" in assert_error(_score(client, auth("bz.staff"), text=FRAGMENT, firm_id=999999), 422)["fields"]
    # the engagement's own bureau and the region above it may use it
    ok(_score(client, auth("kz.staff"), text=FRAGMENT, engagement_id=kz_engagement.id))
    ok(_score(client, auth("region.staff"), text=FRAGMENT, engagement_id=kz_engagement.id))


def test_score_body_is_validated(client, world, auth):
    headers = auth("bz.staff")
    for empty in ("", "   \n ", None):
        error = assert_error(_score(client, headers, text=empty), 422, "validation_failed")
        assert "text" in error["fields"] and _has_chinese(error["message"])
    assert "text" in assert_error(client.post("/api/v1/screening/score", json={}, headers=headers), 422)["fields"]
    assert assert_error(_score(client, headers, text=123), 422)["fields"] == {"text": "必须是字符串"}
    assert "firm_id" in assert_error(_score(client, headers, text=FRAGMENT, firm_id="1"), 422)["fields"]
    assert "engagement_id" in assert_error(_score(client, headers, text=FRAGMENT, engagement_id=True), 422)["fields"]
    assert "engagement_id" in assert_error(_score(client, headers, text=FRAGMENT, engagement_id=1.5), 422)["fields"]
    assert "kind" in assert_error(_score(client, headers, text=FRAGMENT, kind="summary"), 422)["fields"]
    assert "kind" in assert_error(_score(client, headers, text=FRAGMENT, kind=["report"]), 422)["fields"]
    # bodies that are not a JSON object
    for data, content_type in (("{text: 进一步", "application/json"), ('["进一步加强管理"]', "application/json"),
                               ("text=进一步加强管理", "application/x-www-form-urlencoded"), ("", None)):
        response = client.post("/api/v1/screening/score", data=data.encode(), content_type=content_type,
                               headers=headers)
        error = assert_error(response, 400, "bad_request")
        assert _has_chinese(error["message"])
    assert_error(client.get("/api/v1/screening/score", headers=headers), 405)


# --- the queue -------------------------------------------------------------------------------------

@pytest.fixture()
@kept
def uploaded(world):
    """Two 巴州 reports of 2025 (firm1's firm): a specific one and a copied, generic one."""
    _e1, specific = upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=True),
                                  name="饮水安全工程")
    generic_text = report_text("高标准农田", "巴州民政局", world.firm.name, specific=False)
    _e2, first = upload_report(world, generic_text, name="高标准农田", unit="巴州民政局")
    _e3, generic = upload_report(world, generic_text.replace("高标准农田", "农村道路"), name="农村道路",
                                 unit="巴州民政局")
    db.session.commit()
    return {"specific": specific.id, "first": first.id, "generic": generic.id}


def _queue(client, headers, query: str = "year=2025") -> dict:
    body = ok(client.get(f"/api/v1/screening/queue?{query}", headers=headers))
    assert set(body) == {"items", "total", "page", "per_page"}
    return body


def test_queue_is_ranked_by_risk(client, world, uploaded, auth):
    body = _queue(client, auth("bz.staff"), "year=2025&kind=report&per_page=200")
    items = body["items"]
    assert body["total"] == len(items) == 3
    assert [i["rank"] for i in items] == [1, 2, 3]
    assert [i["risk"] for i in items] == sorted((i["risk"] for i in items), reverse=True)
    assert all(set(i) == QUEUE_FIELDS and 0.0 <= i["risk"] <= 1.0 for i in items)
    assert items[0]["flagged"] is True and items[-1]["flagged"] is False  # 10 % of 3 rounds up to one report
    rows = db.session.execute(sa.select(ReportScreening).where(ReportScreening.kind == SubmissionKind.REPORT)
                              .order_by(ReportScreening.risk.desc(), ReportScreening.id)).scalars().all()
    assert [i["submission_id"] for i in items] == [r.submission_id for r in rows]
    assert set(uploaded.values()) == {r.submission_id for r in rows}
    top, row = items[0], rows[0]
    assert top["risk"] == pytest.approx(row.risk) and top["reasons"] == [r["text"] for r in row.reasons]
    assert top["kind"] == "report" and top["version"] == 1 and top["method"] == "rule" and top["model_version"] is None
    assert top["firm"] == {"id": world.firm.id, "name": world.firm.name}
    assert top["bureau"] == {"id": world.bz.id, "name": world.bz.name}
    assert top["engagement"] == {"id": row.engagement_id, "reference": row.engagement.reference,
                                 "name": row.engagement.name}
    assert top["engagement"]["reference"].startswith("652800-2025-") and top["submitted_at"].endswith("+00:00")
    copy = next(i for i in items if i["submission_id"] == uploaded["generic"])
    assert any("近似重复" in r for r in copy["reasons"])  # the copy of an earlier report says so

    # pages keep the overall rank
    second = _queue(client, auth("bz.staff"), "year=2025&kind=report&per_page=1&page=2")
    assert second["total"] == 3 and [i["rank"] for i in second["items"]] == [2] and second["per_page"] == 1
    assert second["items"][0]["submission_id"] == items[1]["submission_id"]
    # filters and scope
    assert _queue(client, auth("region.admin"), "year=2025&kind=report")["total"] == 3
    assert _queue(client, auth("kz.staff"), "year=2025")["total"] == 0
    assert _queue(client, auth("bz.staff"), "year=2024")["total"] == 0
    assert _queue(client, auth("bz.staff"), f"year=2025&kind=report&bureau_id={world.kz.id}")["total"] == 0
    assert _queue(client, auth("bz.staff"), f"year=2025&kind=评价报告&bureau_id={world.bz.id}")["total"] == 3
    assert _queue(client, auth("bz.staff"), f"year=2025&kind=report&firm_id={world.other_firm.id}")["total"] == 0
    assert _queue(client, auth("bz.staff"), f"year=2025&kind=report&firm_id={world.firm.id}")["total"] == 3
    assert _queue(client, auth("bz.staff"), f"year=2025&kind=report&firm={world.firm.name[1:-1]}")["total"] == 3
    assert _queue(client, auth("bz.staff"), f"year=2025&kind=report&firm={world.other_firm.name}")["total"] == 0
    assert _queue(client, auth("bz.staff"), "year=2025&kind=work_plan")["total"] == 3  # the approved work plans
    assert _queue(client, auth("bz.staff"))["total"] == 6


def test_queue_arguments_are_validated(client, world, auth):
    headers = auth("bz.staff")
    error = assert_error(client.get("/api/v1/screening/queue", headers=headers), 422, "validation_failed")
    assert "year" in error["fields"] and _has_chinese(error["message"])
    for bad in ("abc", "25", "20255", "２０２５", "2025.0"):
        assert "year" in assert_error(client.get(f"/api/v1/screening/queue?year={bad}", headers=headers),
                                      422)["fields"]
    for name in ("bureau_id", "firm_id", "kind"):
        assert name in assert_error(client.get(f"/api/v1/screening/queue?year=2025&{name}=x", headers=headers),
                                    422)["fields"]
    assert "firm" in assert_error(client.get("/api/v1/screening/queue?year=2025&firm=" + "机" * 101, headers=headers),
                                  422)["fields"]
    assert_error(client.get("/api/v1/screening/queue?year=2025&page=x", headers=headers), 400)
    assert _queue(client, headers)["items"] == []


# --- models ----------------------------------------------------------------------------------------

def test_models_endpoint(client, world, auth):
    headers = auth("bz.staff")
    assert ok(client.get("/api/v1/screening/models", headers=headers)) == {"active": None, "problem": None,
                                                                           "models": []}
    card = {"algorithm": "logistic", "metrics": {"average_precision": 0.61}, "features": FEATURE_KEYS[:3]}
    old = ScreeningModel(version="20250101-1", algorithm="logistic", artefact="20250101-1.joblib", card=card,
                         status=ModelStatus.RETIRED, created_at=utcnow().replace(year=2025, month=1, day=1))
    active = ScreeningModel(version="20250601-1", algorithm="hist_gradient_boosting", artefact="missing.joblib",
                            card={"metrics": {}}, status=ModelStatus.ACTIVE,
                            created_at=utcnow().replace(year=2025, month=6, day=1),
                            promoted_at=utcnow().replace(year=2025, month=6, day=2))
    db.session.add_all([old, active])
    db.session.commit()
    body = ok(client.get("/api/v1/screening/models", headers=headers))
    assert body["active"] == "20250601-1"
    assert isinstance(body["problem"], str) and body["problem"]  # the promoted file is not there
    assert [m["version"] for m in body["models"]] == ["20250601-1", "20250101-1"]
    newest, oldest = body["models"]
    assert newest["status"] == "active" and newest["promoted_at"].startswith("2025-06-02")
    assert oldest == {"id": old.id, "version": "20250101-1", "algorithm": "logistic", "status": "retired",
                      "created_at": oldest["created_at"], "promoted_at": None, "card": card}
    assert oldest["created_at"].startswith("2025-01-01")
    # an active model that cannot be loaded leaves scoring on the rule score
    score = ok(_score(client, headers, text=FRAGMENT))
    assert score["method"] == "rule" and score["model_version"] is None


# --- who may call ----------------------------------------------------------------------------------

CALLS = [("post", "/api/v1/screening/score", {"text": FRAGMENT}), ("get", "/api/v1/screening/queue?year=2025", None),
         ("get", "/api/v1/screening/models", None)]


def test_a_token_is_required(client, world):
    for method, url, body in CALLS:
        assert_error(getattr(client, method)(url, json=body), 401, "unauthorized")
        assert_error(getattr(client, method)(url, json=body, headers={"Authorization": "Bearer nonsense"}), 401)


def test_firm_users_and_experts_are_refused(client, world, uploaded, auth):
    for username in ("firm1", "firm2", "expert1"):
        for method, url, body in CALLS:
            response = getattr(client, method)(url, json=body, headers=auth(username))
            assert_error(response, 403, "forbidden")
            assert "risk" not in response.get_data(as_text=True)
        # refused before the request is read: no hint from the validation either
        assert_error(client.get("/api/v1/screening/queue", headers=auth(username)), 403)
        assert_error(client.post("/api/v1/screening/score", data="x", headers=auth(username)), 403)


# --- the OpenAPI document --------------------------------------------------------------------------

def test_openapi_document_describes_screening(client, world):
    spec = ok(client.get("/api/v1/openapi.json"))
    validate(spec)
    paths = spec["paths"]
    assert "post" in paths["/api/v1/screening/score"]
    assert "get" in paths["/api/v1/screening/queue"] and "get" in paths["/api/v1/screening/models"]
    score = paths["/api/v1/screening/score"]["post"]
    assert {"200", "400", "401", "403", "422"} <= set(score["responses"]) and score["security"] == [{"bearerAuth": []}]
    assert score["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ScreeningScoreRequest"}
    year = next(p for p in paths["/api/v1/screening/queue"]["get"]["parameters"] if p["name"] == "year")
    assert year["required"] is True and year["in"] == "query"
    schemas = spec["components"]["schemas"]
    assert set(schemas["ScreeningScore"]["required"]) == SCORE_FIELDS
    assert set(schemas["ScreeningQueueItem"]["required"]) == QUEUE_FIELDS
    assert set(schemas["ScreeningFeatures"]["properties"]) == set(FEATURE_KEYS)
    assert set(schemas["ScreeningModels"]["required"]) == {"active", "problem", "models"}
