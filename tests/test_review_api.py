"""The review API: the firm's multipart uploads, an expert's own reviews (and others' only after submitting,
anonymised), panel outcomes without expert identities for firms, the public list of published reports,
and the OpenAPI document."""
from __future__ import annotations

import hashlib
import io
import json
import re

import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from evalhub.core.models import User
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.models import Engagement, EngagementState as S
from evalhub.review import services as R
from evalhub.review.models import Review, ReviewStatus, Submission, SubmissionKind
from tests import factories
from tests.test_api import assert_error
from tests.test_review_services import CHAPTERS, _docx, _experts, _panel, _review

INDICATOR_ROWS = [
    {"category": "决策", "name": "立项依据充分性", "weight": 10, "score": 9},
    {"category": "process", "name": "资金到位率", "weight": "20", "score": "18"},
    {"category": "产出", "name": "完成数量", "weight": 35, "score": 33},
    {"category": "效益", "name": "群众满意度", "weight": 35, "score": 32},
]
CHECK_CODES = {"weights_sum", "output_benefit_share", "scores_within_weights", "total_adds_up",
               "grade_matches_band", "chapters_present", "chapters_unique"}


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def _fieldwork(world, **kw) -> Engagement:
    """An engagement whose work plan has been approved: the firm may now upload its report."""
    e = factories.in_fieldwork(world, **kw)  # the work plan through a real panel
    db.session.commit()
    return e


def _report_form(data: bytes | None = None, filename: str = "评价报告.docx", **overrides) -> dict:
    form = {"kind": "report", "file": (io.BytesIO(data if data is not None else _docx(CHAPTERS)), filename),
            "indicators": json.dumps(INDICATOR_ROWS, ensure_ascii=False), "concluded_total": "92",
            "concluded_grade": "优"}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def _upload(client, engagement_id: int, headers: dict, form: dict):
    return client.post(f"/api/v1/engagements/{engagement_id}/submissions", data=form, headers=headers,
                       content_type="multipart/form-data")


def _state(engagement_id: int) -> S:
    db.session.rollback()
    return db.session.get(Engagement, engagement_id).state


def _submission_count(engagement_id: int, kind: SubmissionKind | None = None) -> int:
    """Submissions of the engagement; the report tests count reports (the approved work plan is one too)."""
    db.session.rollback()
    stmt = sa.select(sa.func.count(Submission.id)).where(Submission.engagement_id == engagement_id)
    if kind is not None:
        stmt = stmt.where(Submission.kind == kind)
    return db.session.execute(stmt).scalar_one()


def _username(expert_id: int) -> str:
    """The login of an expert's user (e<id> from tests.test_review_services._experts, or the world's expert1)."""
    return db.session.execute(sa.select(User.username).where(User.expert_id == expert_id)).scalar_one()


def _panel_committed(world, size=3):
    e, panel = _panel(world, size=size)
    db.session.commit()
    return e, panel


def _expert_names(panel) -> list[str]:
    return [i.expert.name for i in panel.invitations]


# --- uploads ---------------------------------------------------------------------------------------

def test_firm_uploads_a_report_as_multipart_and_gets_the_machine_checks(client, world, auth):
    e = _fieldwork(world)
    data = _docx(CHAPTERS)
    body = ok(_upload(client, e.id, auth("firm1"), _report_form(data)), 201)
    assert body["kind"] == {"value": "report", "label": "评价报告"}
    assert body["version"] == 1
    assert body["file"]["name"] == "评价报告.docx"
    assert body["file"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert {c["code"] for c in body["machine_checks"]} == CHECK_CODES
    assert all(c["ok"] for c in body["machine_checks"]), body["machine_checks"]
    assert [i["name"] for i in body["indicators"]] == [r["name"] for r in INDICATOR_ROWS]
    assert body["indicators"][1]["category"]["value"] == "process"
    assert body["concluded_total"] == 92 and body["concluded_grade"]["label"] == "优"
    assert body["panel"] is None and body["engagement"]["id"] == e.id
    assert _state(e.id) == S.REPORT_SUBMITTED
    assert db.session.get(Submission, body["id"]).submitted_by_id == world.firm_user.id  # committed


def test_machine_checks_report_what_is_wrong_without_refusing_the_upload(client, world, auth):
    e = _fieldwork(world)
    body = ok(_upload(client, e.id, auth("firm1"), _report_form(
        _docx(CHAPTERS.replace("五、主要经验及做法", "")), concluded_grade="良")), 201)
    failing = {c["code"] for c in body["machine_checks"] if not c["ok"]}
    assert failing == {"grade_matches_band", "chapters_present"}


def test_a_work_plan_needs_only_kind_and_file_and_versions_count_up(client, world, auth):
    e = factories.contracted(world)
    db.session.commit()
    headers = auth("firm1")
    first = ok(_upload(client, e.id, headers, {"kind": "实施方案", "file": (io.BytesIO(_docx("实施方案第一版")), "方案.docx")}), 201)
    assert first["kind"]["value"] == "work_plan" and first["version"] == 1 and first["machine_checks"] == []
    assert first["indicators"] == [] and first["concluded_total"] is None
    # the same upload again is refused by the state machine, not duplicated
    again = _upload(client, e.id, headers, {"kind": "work_plan", "file": (io.BytesIO(_docx("第二版")), "方案.docx")})
    assert_error(again, 409, "conflict")
    assert _submission_count(e.id) == 1


def test_another_firm_and_bureau_users_may_not_upload(client, world, auth):
    e = _fieldwork(world)
    # who may see the engagement but not upload: 403; who may not see it: 404, as for an id that does not exist
    for username, status in (("bz.staff", 403), ("admin", 403), ("firm2", 404), ("expert1", 404)):
        assert_error(_upload(client, e.id, auth(username), _report_form()), status)
    # nor learn the state: another firm gets 404 even when the state would be wrong too
    assert_error(_upload(client, e.id, auth("firm2"), {"kind": "work_plan",
                                                      "file": (io.BytesIO(_docx("x")), "x.docx")}), 404)
    assert_error(_upload(client, 999999, auth("firm1"), _report_form()), 404, "not_found")
    assert_error(_upload(client, e.id, {}, _report_form()), 401, "unauthorized")
    assert _submission_count(e.id, SubmissionKind.REPORT) == 0 and _state(e.id) == S.FIELDWORK


def test_a_txt_upload_is_422_and_writes_nothing(client, world, auth):
    e = _fieldwork(world)
    response = _upload(client, e.id, auth("firm1"), _report_form("一、基本情况\n纯文本报告".encode(), filename="报告.txt"))
    error = assert_error(response, 422, "validation_failed")
    assert "file" in error["fields"] and "只接受" in error["message"]
    assert _submission_count(e.id, SubmissionKind.REPORT) == 0 and _state(e.id) == S.FIELDWORK


def test_bad_report_input_is_422_with_every_field(client, world, auth):
    e = _fieldwork(world)
    headers = auth("firm1")
    rows = [{"category": "星际", "name": "a", "weight": "x", "score": 1}, ["not", "an", "object"],
            {"category": "产出", "name": 5, "weight": 1, "score": 1}]
    response = _upload(client, e.id, headers, _report_form(indicators=json.dumps(rows), concluded_total="abc",
                                                          concluded_grade="特优"))
    fields = assert_error(response, 422, "validation_failed")["fields"]
    assert {"indicator_2", "indicator_3"} <= set(fields) and "indicators" not in fields
    assert fields["concluded_total"] and fields["concluded_grade"]

    fields = assert_error(_upload(client, e.id, headers, _report_form(indicators="{not json")), 422)["fields"]
    assert "indicators" in fields
    fields = assert_error(_upload(client, e.id, headers, _report_form(indicators=json.dumps(
        [{"category": "星际", "name": "a", "weight": 10, "score": 9}]))), 422)["fields"]
    assert "indicator_1" in fields  # the service's own check of the category
    fields = assert_error(_upload(client, e.id, headers, _report_form(indicators=None)), 422)["fields"]
    assert "indicators" in fields
    assert "kind" in assert_error(_upload(client, e.id, headers, _report_form(kind="minutes")), 422)["fields"]
    assert "file" in assert_error(_upload(client, e.id, headers, _report_form(file=None)), 422)["fields"]
    # not multipart at all
    assert_error(client.post(f"/api/v1/engagements/{e.id}/submissions", json={"kind": "report"}, headers=headers), 400)
    assert _submission_count(e.id, SubmissionKind.REPORT) == 0


def test_wrong_state_is_409(client, world, auth):
    e = _fieldwork(world)
    response = _upload(client, e.id, auth("firm1"), {"kind": "work_plan", "file": (io.BytesIO(_docx("方案")), "方案.docx")})
    assert "现场评价" in assert_error(response, 409, "conflict")["message"]
    contracted = factories.contracted(world)
    db.session.commit()
    assert_error(_upload(client, contracted.id, auth("firm1"), _report_form()), 409, "conflict")


# --- reading submissions ---------------------------------------------------------------------------

def test_submission_list_by_role(client, world, auth):
    e, panel = _panel_committed(world)
    firm = ok(client.get(f"/api/v1/engagements/{e.id}/submissions", headers=auth("firm1")))
    assert firm["total"] == 2 and [i["kind"]["value"] for i in firm["items"]] == ["work_plan", "report"]
    report = firm["items"][1]
    assert report["version"] == 1
    assert report["panel"]["round"] == 1 and report["panel"]["status"]["value"] == "reviewing"
    text = json.dumps(firm, ensure_ascii=False)
    assert not any(name in text for name in _expert_names(panel))
    assert ok(client.get(f"/api/v1/engagements/{e.id}/submissions?kind=work_plan", headers=auth("bz.staff")))["total"] == 1
    assert ok(client.get(f"/api/v1/engagements/{e.id}/submissions?kind=report", headers=auth("bz.staff")))["total"] == 1
    assert "kind" in assert_error(client.get(f"/api/v1/engagements/{e.id}/submissions?kind=x",
                                             headers=auth("bz.staff")), 422)["fields"]
    for outsider in ("firm2", "kz.admin"):
        assert_error(client.get(f"/api/v1/engagements/{e.id}/submissions", headers=auth(outsider)), 404)
    # an expert on the panel reads the version they review; an expert not on it reads nothing
    member = panel.invitations[0].expert_id
    assert ok(client.get(f"/api/v1/engagements/{e.id}/submissions", headers=auth(_username(member))))["total"] == 1
    outsider = _experts(world, 1)[0][1]
    db.session.commit()
    assert_error(client.get(f"/api/v1/engagements/{e.id}/submissions", headers=auth(outsider.username)), 404)


# --- an expert's reviews ---------------------------------------------------------------------------

def test_expert_lists_and_reads_only_their_own_reviews(client, world, auth):
    e, panel = _panel_committed(world)
    a, b, c = panel.invitations
    listing = ok(client.get("/api/v1/reviews", headers=auth(_username(a.expert_id))))
    assert listing["total"] == 1
    item = listing["items"][0]
    assert item["id"] == a.review.id and item["invitation"]["status"]["value"] == "accepted"
    assert item["engagement"] == {"id": e.id, "reference": e.reference, "name": e.name}
    assert item["due"] and item["status"]["value"] == "draft" and item["kind"]["value"] == "report"
    assert ok(client.get("/api/v1/reviews?status=declined", headers=auth(_username(a.expert_id))))["total"] == 0

    detail = ok(client.get(f"/api/v1/reviews/{a.review.id}", headers=auth(_username(a.expert_id))))
    assert detail["status"]["value"] == "draft" and detail["others"] == []
    assert [i["max_points"] for i in detail["items"]] == [20] * 5
    assert all(i["points"] is None for i in detail["items"])
    assert {ch["code"] for ch in detail["submission"]["machine_checks"]} == CHECK_CODES

    # another expert's review does not exist for this one; non-experts have no reviews here
    assert_error(client.get(f"/api/v1/reviews/{b.review.id}", headers=auth(_username(a.expert_id))), 404)
    assert_error(client.put(f"/api/v1/reviews/{b.review.id}", json={"opinion": "x"},
                            headers=auth(_username(a.expert_id))), 404)
    assert_error(client.post(f"/api/v1/reviews/{b.review.id}/submit", headers=auth(_username(a.expert_id))), 404)
    for username in ("bz.staff", "firm1", "admin"):
        assert_error(client.get("/api/v1/reviews", headers=auth(username)), 403, "forbidden")
        assert_error(client.get(f"/api/v1/reviews/{a.review.id}", headers=auth(username)), 403, "forbidden")
    assert_error(client.get("/api/v1/reviews"), 401)


def test_save_draft_then_submit_then_409(client, world, auth):
    e, panel = _panel_committed(world)
    invitation = panel.invitations[0]
    headers = auth(_username(invitation.expert_id))
    url = f"/api/v1/reviews/{invitation.review.id}"
    items = [i["id"] for i in ok(client.get(url, headers=headers))["items"]]

    draft = ok(client.put(url, headers=headers, json={"scores": {str(items[0]): 18, str(items[1]): "17.5"},
                                                       "comments": {str(items[0]): "结构完整"}}))
    assert [i["points"] for i in draft["items"]][:3] == [18, 17.5, None]
    assert draft["items"][0]["comment"] == "结构完整" and draft["items"][1]["comment"] == ""

    # incomplete: every missing score, reason and the opinion are listed
    fields = assert_error(client.post(url + "/submit", headers=headers), 422, "validation_failed")["fields"]
    assert {f"score_{i}" for i in items[2:]} | {f"comment_{items[1]}", "opinion"} <= set(fields)

    # a comment alone keeps the saved points; unknown items and out-of-range points are refused
    ok(client.put(url, headers=headers, json={"comments": {str(items[1]): "数据来源清楚"}}))
    assert_error(client.put(url, headers=headers, json={"scores": {"999999": 10}}), 422)
    assert f"score_{items[2]}" in assert_error(
        client.put(url, headers=headers, json={"scores": {str(items[2]): 25}}), 422)["fields"]
    # a reason may come before its score (kept, the item still unscored); a score given as null is cleared
    early = ok(client.put(url, headers=headers, json={"comments": {str(items[2]): "无分先评"}}))
    assert early["items"][2]["points"] is None and early["items"][2]["comment"] == "无分先评"
    cleared = ok(client.put(url, headers=headers, json={"scores": {str(items[0]): None}}))
    assert cleared["items"][0]["points"] is None and cleared["items"][0]["comment"] == "结构完整"
    assert f"score_{items[0]}" in assert_error(client.post(url + "/submit", headers=headers), 422)["fields"]
    ok(client.put(url, headers=headers, json={"scores": {str(items[0]): 18}}))
    assert_error(client.put(url, headers=headers, json={"scores": [1, 2]}), 422)
    assert_error(client.put(url, headers=headers, data="x"), 400)

    rest = ok(client.put(url, headers=headers, json={
        "scores": {str(i): 18 for i in items[2:]}, "comments": {str(i): "意见" for i in items[2:]},
        "opinion": "总体较好"}))
    assert rest["opinion"] == "总体较好" and rest["items"][1]["points"] == 17.5
    assert rest["items"][1]["comment"] == "数据来源清楚"

    submitted = ok(client.post(url + "/submit", headers=headers))
    assert submitted["status"]["value"] == "submitted" and submitted["total"] == 89.5
    db.session.rollback()
    assert db.session.get(Review, invitation.review.id).status == ReviewStatus.SUBMITTED

    # a repeated submit is idempotent: the review as submitted (issue 11); a change afterwards is a 409
    again = ok(client.post(url + "/submit", headers=headers))
    assert again["status"]["value"] == "submitted" and again["total"] == 89.5
    assert_error(client.put(url, headers=headers, json={"opinion": "改"}), 409, "conflict")


def test_others_reviews_appear_only_after_submitting_and_without_names(client, world, auth):
    e, panel = _panel_committed(world)
    a, b, c = panel.invitations
    names = _expert_names(panel)
    _review(a, world, [18] * 5, opinion="甲的意见")
    db.session.commit()
    b_url = f"/api/v1/reviews/{b.review.id}"
    b_headers = auth(_username(b.expert_id))

    before = ok(client.get(b_url, headers=b_headers))
    assert before["others"] == []
    assert "甲的意见" not in json.dumps(before, ensure_ascii=False)

    items = [i["id"] for i in before["items"]]
    ok(client.put(b_url, headers=b_headers, json={"scores": {str(i): 19 for i in items},
                                                   "comments": {str(i): "乙的理由" for i in items}, "opinion": "乙的意见"}))
    after = ok(client.post(b_url + "/submit", headers=b_headers))
    assert [o["label"] for o in after["others"]] == ["专家A"]
    other = after["others"][0]
    assert other["total"] == 90 and other["opinion"] == "甲的意见"
    assert [s["points"] for s in other["scores"]] == [18] * 5
    text = json.dumps(after, ensure_ascii=False)
    assert not any(name in text for name in names)
    assert "expert" not in other and "id" not in other

    # labels are the viewer's own: the other members in the order they joined the panel (c is 专家B for
    # a, and stays hidden until it submits)
    a_view = ok(client.get(f"/api/v1/reviews/{a.review.id}", headers=auth(_username(a.expert_id))))
    assert [(o["label"], o["opinion"]) for o in a_view["others"]] == [("专家A", "乙的意见")]
    # c has not submitted: still nothing of the others
    assert ok(client.get(f"/api/v1/reviews/{c.review.id}", headers=auth(_username(c.expert_id))))["others"] == []


# --- outcomes --------------------------------------------------------------------------------------

def test_outcomes_hide_expert_names_and_scores_from_the_firm(client, world, auth):
    e, panel = _panel_committed(world)
    names = _expert_names(panel)
    for invitation, points in zip(panel.invitations, ([17] * 5, [18] * 5, [16] * 5)):
        _review(invitation, world, points, opinion="问题分析不够具体")
    db.session.commit()
    url = f"/api/v1/engagements/{e.id}/outcomes"

    # decided, letter not yet sent: the firm learns nothing of the result yet
    firm = ok(client.get(url, headers=auth("firm1")))
    plan_round, round1 = firm["items"]  # the work plan's panel passed before the report's
    assert plan_round["kind"]["value"] == "work_plan" and plan_round["passed"] is True
    assert round1["round"] == 1 and round1["kind"]["value"] == "report" and round1["communicated"] is False
    assert round1["score"] is None and round1["passed"] is None and round1["letter"] is None
    assert "experts" not in round1

    bureau = ok(client.get(url, headers=auth("bz.staff")))["items"][-1]
    assert bureau["score"] == 85 and bureau["passed"] is False and bureau["pass_mark"] == 90
    assert bureau["spread"] == 10 and bureau["spread_flagged"] is False and bureau["decided_at"]
    assert bureau["letter"] and bureau["letter_sent_at"] is None
    assert sorted(x["total"] for x in bureau["experts"]) == [80, 85, 90]
    assert {x["expert"]["name"] for x in bureau["experts"]} == set(names)
    assert ok(client.get(url, headers=auth("bz.admin")))["items"][-1]["experts"]  # whoever in the bureau reads it

    R.send_letter(panel, world.bz_staff, panel.letter + "\n请于十五日内完成整改。")
    db.session.commit()
    response = client.get(url, headers=auth("firm1"))
    round1 = ok(response)["items"][-1]
    assert round1["communicated"] is True and round1["score"] == 85 and round1["passed"] is False
    assert round1["pass_mark"] == 90 and round1["spread"] == 10 and round1["decided_at"]
    assert "问题分析不够具体" in round1["letter"] and round1["letter_sent_at"] and round1["resubmit_due"]
    assert "experts" not in round1
    text = response.get_data(as_text=True)
    assert not any(name in text for name in names)
    assert "80.0" not in json.dumps(round1) and '"total"' not in text  # no individual totals (80 is the plan's pass mark)

    for outsider in ("firm2", "kz.admin", _username(panel.invitations[0].expert_id)):
        assert_error(client.get(url, headers=auth(outsider)), 404)


def test_a_passed_outcome_is_shown_to_the_firm_at_once(client, world, auth):
    e, panel = _panel_committed(world)
    for invitation in panel.invitations:
        _review(invitation, world, [19] * 5)
    db.session.commit()
    response = client.get(f"/api/v1/engagements/{e.id}/outcomes", headers=auth("firm1"))
    round1 = ok(response)["items"][-1]
    assert round1["passed"] is True and round1["score"] == 95 and round1["communicated"] is True
    assert round1["letter"] and not any(name in response.get_data(as_text=True) for name in _expert_names(panel))


# --- the public list -------------------------------------------------------------------------------

def _accepted(world):
    e, panel = _panel(world)
    for invitation in panel.invitations:
        _review(invitation, world, [19] * 5)
    assert e.state == S.ACCEPTED
    return e


def test_public_reports_list_only_published_non_classified_reports_without_a_token(client, world):
    published = _accepted(world)
    R.publish(published, world.bz_staff, filename="脱密版.docx", data=_docx("脱密后的报告一"))
    archived_after = _accepted(world)
    R.publish(archived_after, world.bz_staff, filename="脱密版2.docx", data=_docx("脱密后的报告二"))
    workflow.perform(archived_after, "archive", world.bz_staff)
    classified = _accepted(world)
    R.publish(classified, world.bz_admin, classified=True, reason="涉及国家秘密")
    accepted_only = _accepted(world)
    db.session.commit()
    assert classified.state == S.ARCHIVED and accepted_only.state == S.ACCEPTED

    response = client.get("/api/v1/public/reports")  # no Authorization header
    body = ok(response)
    assert set(body) == {"items", "total", "page", "per_page"}
    by_reference = {i["reference"]: i for i in body["items"]}
    assert set(by_reference) == {published.reference, archived_after.reference}
    item = by_reference[published.reference]
    assert item["year"] == 2025 and item["bureau"]["code"] == "652800"
    assert item["object_type"] == {"value": "project", "label": "项目支出"}
    assert item["firm"] == {"name": "巴州示范评价咨询有限公司"} and item["published_at"]
    assert re.fullmatch(r"/public/reports/\d+/file", item["download_url"])
    assert item["download_url"] == f"/public/reports/{item['id']}/file"
    assert classified.reference not in response.get_data(as_text=True)

    def refs(query):
        return {i["reference"] for i in ok(client.get(f"/api/v1/public/reports?{query}"))["items"]}

    both = {published.reference, archived_after.reference}
    assert refs("year=2025") == both and refs("year=2024") == set()
    assert refs("bureau=652800") == both and refs("bureau=653000") == set()
    assert refs("object_type=project") == both and refs("object_type=政府债务") == set()
    assert "object_type" in assert_error(client.get("/api/v1/public/reports?object_type=x"), 422)["fields"]
    assert refs("firm=示范") == both and refs("firm=克州") == set() and refs("firm=%25") == set()
    first = ok(client.get("/api/v1/public/reports?per_page=1"))
    second = ok(client.get("/api/v1/public/reports?per_page=1&page=2"))
    assert first["total"] == second["total"] == 2 and first["items"][0]["id"] != second["items"][0]["id"]
    assert "year" in assert_error(client.get("/api/v1/public/reports?year=abc"), 422)["fields"]
    assert "bureau" in assert_error(client.get("/api/v1/public/reports?bureau=999999"), 422)["fields"]
    assert_error(client.get("/api/v1/public/reports?page=x"), 400)


# --- the OpenAPI document --------------------------------------------------------------------------

def test_openapi_document_validates_covers_every_rule_and_declares_the_multipart_upload(app, client, world):
    spec = ok(client.get("/api/v1/openapi.json"))
    validate(spec)
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for rule in (r for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1")):
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {rule.rule} is not in the OpenAPI document"
    for path, method in [("/api/v1/engagements/{engagement_id}/submissions", "post"),
                         ("/api/v1/engagements/{engagement_id}/submissions", "get"),
                         ("/api/v1/reviews", "get"), ("/api/v1/reviews/{review_id}", "get"),
                         ("/api/v1/reviews/{review_id}", "put"), ("/api/v1/reviews/{review_id}/submit", "post"),
                         ("/api/v1/engagements/{engagement_id}/outcomes", "get"), ("/api/v1/public/reports", "get")]:
        assert (path, method) in documented
    upload = spec["paths"]["/api/v1/engagements/{engagement_id}/submissions"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    upload_schema = spec["components"]["schemas"]["SubmissionUpload"]
    assert upload_schema["properties"]["file"] == {**upload_schema["properties"]["file"], "type": "string", "format": "binary"}
    assert {"201", "403", "409", "422"} <= set(upload["responses"])
    public = spec["paths"]["/api/v1/public/reports"]["get"]
    assert "security" not in public and "401" not in public["responses"]
    assert spec["paths"]["/api/v1/reviews/{review_id}"]["put"]["requestBody"]["content"]["application/json"]
