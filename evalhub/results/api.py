"""Results-loop API under /api/v1/results: the unit's engagements (timeline, firm, lead evaluator — never an
expert), findings (firm enters, bureau confirms and verifies, unit plans and reports with evidence), and the
results-application list (bureau builds and confirms). Same services as the pages; a record the user may not
see is 404."""
from __future__ import annotations

from flask import jsonify, request

import sqlalchemy as sa

from evalhub.core.api import api_user, list_schema, operation, schema
from evalhub.core.apiutil import (
    INTEGER, NULLABLE_DATE, NULLABLE_STRING, STRING, YEAR_QUERY, choice, date_str, datetime_str, id_field, labeled,
    labeled_schema, nullable, number, query, raise_if, read_body, text, visible, PAGE_PARAMS, list_response,
)
from evalhub.core.listing import year_filter
from evalhub.review.models import SelfEvaluation, SelfEvaluationStatus
from evalhub.core import files, permissions
from evalhub.core.errors import DomainError, NotFound, ValidationFailed
from evalhub.core.listing import as_int, parse_year
from evalhub.core.models import Bureau, BudgetUnit
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, EngagementState
from evalhub.results import services
from evalhub.results.permissions import evaluated_ids
from evalhub.results.models import ApplicationEntry, ResultFinding, FindingKind, FindingStatus, Measure, Verification
from evalhub.review.models import Grade, IndicatorCategory

TAG = "结果应用与整改"
NUMBER = {"type": "number", "nullable": True}

FINDING = schema("ResultFinding", {"type": "object", "required": ["id", "kind", "text", "category", "status"], "properties": {
    "id": INTEGER, "engagement_id": INTEGER, "position": INTEGER, "kind": labeled_schema(FindingKind, "ResultFindingKind"),
    "text": STRING, "category": labeled_schema(IndicatorCategory, "FindingCategory"), "indicator": NULLABLE_STRING,
    "responsible_unit": STRING, "deadline": NULLABLE_DATE, "status": labeled_schema(FindingStatus, "ResultFindingStatus"),
    "plan": NULLABLE_STRING, "unit_note": NULLABLE_STRING,
    "verification": {"allOf": [labeled_schema(Verification, "RectificationVerification")], "nullable": True}, "verification_note": NULLABLE_STRING,
    "evidence": {"type": "array", "items": {"type": "object", "properties": {"id": INTEGER, "name": STRING}}},
    "escalations": {"type": "array", "items": {"type": "object", "properties": {
        "level": STRING, "on": STRING, "overdue_days": INTEGER}}}}})
FINDING_LIST = list_schema(FINDING)
FINDING_REQUEST = schema("ResultFindingRequest", {"type": "object", "required": ["kind", "text", "category"], "properties": {
    "kind": choice(FindingKind), "text": text(2000, "内容"), "category": choice(IndicatorCategory, "指标类别"),
    "indicator": text(200, "相关指标", nullable=True), "responsible_unit_id": id_field("责任单位（默认被评价单位）", nullable=True),
    "deadline": {"type": "string", "format": "date", "nullable": True, "maxLength": 10, "description": "整改期限"}}})
PLAN_REQUEST = schema("RectificationPlanRequest", {"type": "object", "required": ["plan"], "properties": {
    "plan": text(5000, "整改计划")}})
EVIDENCE_UPLOAD = schema("RectificationEvidenceUpload", {"type": "object", "required": ["note"], "properties": {
    "note": text(5000, "整改情况说明"), "file": {"type": "string", "format": "binary", "description": "佐证材料（可多个 file 字段）"}}})
VERIFY_REQUEST = schema("RectificationVerifyRequest", {"type": "object", "required": ["verification"], "properties": {
    "verification": choice(Verification, "核验结论"), "note": text(5000, "核验意见", nullable=True),
    "deadline": {"type": "string", "format": "date", "nullable": True, "maxLength": 10}}})
UNIT_ENGAGEMENT = schema("UnitEngagement", {"type": "object", "required": ["id", "reference", "name"], "properties": {
    "id": INTEGER, "reference": STRING, "name": STRING, "year": INTEGER, "state": nullable(labeled_schema(EngagementState, "UnitEngagementState")),
    "budget_unit": STRING, "firm": NULLABLE_STRING, "lead_evaluator": NULLABLE_STRING,
    "evaluated": {"type": "boolean", "description": "本单位（或下属单位）是被评价单位；否则本单位只是其中已确认问题的整改责任单位，"
                                                   "只见自己负责的问题（不含进度 state、过程和主评人，均为空）"},
    "timeline": {"type": "array", "items": {"type": "object", "properties": {
        "at": STRING, "from": STRING, "to": STRING}}}}})
ENTRY = schema("ApplicationEntry", {"type": "object", "required": ["id", "engagement_id", "score", "grade"], "properties": {
    "id": INTEGER, "engagement_id": INTEGER, "reference": STRING, "name": STRING, "budget_unit": STRING, "year": INTEGER,
    "score": {"type": "number"}, "grade": labeled_schema(Grade, "ApplicationGrade"),
    "proposed": {"type": "array", "items": STRING}, "proposed_percent": NUMBER, "proposed_basis": STRING,
    "measures": {"type": "array", "items": STRING, "nullable": True}, "cut_percent": NUMBER,
    "cut_amount": NUMBER, "reason": NULLABLE_STRING, "confirmed_at": NULLABLE_STRING}})
ENTRY_REQUEST = schema("ApplicationEntryRequest", {"type": "object", "required": ["measures"], "properties": {
    "measures": {"type": "array", "maxItems": 5, "items": choice(Measure)},
    "cut_percent": {"type": "number", "minimum": 0, "maximum": 100, "nullable": True},
    "cut_amount_wan": {"type": "number", "minimum": 0, "maximum": 100000000, "nullable": True},
    "reason": text(5000, "理由（与规则建议不一致时必填）", nullable=True)}})


def finding_json(f: ResultFinding) -> dict:
    return {"id": f.id, "engagement_id": f.engagement_id, "position": f.position, "kind": labeled(f.kind), "text": f.text,
            "category": labeled(f.category), "indicator": f.indicator, "responsible_unit": f.responsible_unit.name,
            "deadline": date_str(f.deadline), "status": labeled(f.status), "plan": f.plan, "unit_note": f.unit_note,
            "verification": labeled(f.verification), "verification_note": f.verification_note,
            "evidence": [{"id": e.id, "name": e.file.original_name} for e in f.evidence],
            "escalations": [{"level": x.level.label, "on": x.on_date.isoformat(), "overdue_days": x.overdue_days}
                            for x in f.escalations]}


def entry_json(e: ApplicationEntry) -> dict:
    return {"id": e.id, "engagement_id": e.engagement_id, "reference": e.engagement.reference, "name": e.engagement.name,
            "budget_unit": e.engagement.budget_unit.name, "year": e.year, "score": number(e.score),
            "grade": labeled(e.grade), "proposed": e.proposed, "proposed_percent": number(e.proposed_percent),
            "proposed_basis": e.proposed_basis, "measures": e.measures, "cut_percent": number(e.cut_percent),
            "cut_amount": number(e.cut_amount), "reason": e.reason, "confirmed_at": datetime_str(e.confirmed_at)}


def _engagement(engagement_id: int) -> Engagement:
    """The engagement, for whoever may see it: its firm and bureaus, the unit it evaluates, or a unit responsible
    for one of its confirmed findings (whose findings list then holds its own only: the row scope)."""
    user = api_user()
    engagement = db.session.get(Engagement, engagement_id)
    if engagement is None or not (permissions.can(user, "engagement.view", engagement)
                                  or permissions.can(user, "results.unit_findings", engagement)):
        raise NotFound("未找到该评价任务。")
    return engagement


def _date(raw, field: str, errors: dict[str, str]):
    from datetime import date

    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        errors[field] = "日期格式应为 2025-01-31"
        return None


@operation("/results/unit/engagements", "GET", summary="预算单位用户：本单位及下属单位的评价任务（进度、机构、项目负责人；不含评审专家），"
           "以及本单位负责整改已确认问题的其他单位的评价任务", tag=TAG, response={"type": "array", "items": UNIT_ENGAGEMENT},
           errors=(403,))
def results_unit_engagements():
    user = api_user()
    permissions.require(user, "results.unit_home")
    out = []
    engagements = services.unit_engagements(user)
    evaluated_of = evaluated_ids(user, engagements)
    for e in engagements:
        evaluated = e.id in evaluated_of
        out.append({"id": e.id, "reference": e.reference, "name": e.name, "year": e.year, "state": labeled(e.state) if evaluated else None,
                    "budget_unit": e.budget_unit.name, "firm": e.firm.name if e.firm else None,
                    "evaluated": evaluated, "lead_evaluator": services.lead_evaluator(e) if evaluated else None,
                    "timeline": [{"at": datetime_str(t["at"]), "from": t["from"].label, "to": t["to"].label}
                                 for t in services.timeline(e)] if evaluated else []})
    return jsonify(out)


@operation("/results/engagements/<int:engagement_id>/findings", "GET", summary="评价任务的问题和建议及整改情况",
           tag=TAG, response=FINDING_LIST, errors=(404,))
def results_list_findings(engagement_id: int):
    rows = services.findings_of(_engagement(engagement_id), api_user())
    return jsonify({"items": [finding_json(f) for f in rows], "total": len(rows), "page": 1, "per_page": len(rows)})


@operation("/results/engagements/<int:engagement_id>/findings", "POST", summary="第三方机构（或财政局）录入一条问题或建议",
           tag=TAG, response=FINDING, status=201, body=FINDING_REQUEST, errors=(400, 403, 404, 409, 422))
def results_create_finding(engagement_id: int):
    engagement = _engagement(engagement_id)
    data, errors, body = read_body("kind", "text", "category", "indicator", "deadline")
    deadline = _date(body["deadline"], "deadline", errors)
    raise_if(errors)
    finding = services.add_finding(engagement, api_user(), services.FindingInput(
        kind=body["kind"] or "", text=body["text"] or "", category=body["category"] or "", indicator=body["indicator"] or "",
        responsible_unit_id=data.get("responsible_unit_id"), deadline=deadline))
    db.session.commit()
    return jsonify(finding_json(finding)), 201


@operation("/results/engagements/<int:engagement_id>/findings/confirm", "POST", summary="财政局确认全部待确认的问题和建议（通知责任单位）",
           tag=TAG, response=FINDING_LIST, errors=(403, 404, 409))
def results_confirm_findings(engagement_id: int):
    rows = services.confirm_findings(_engagement(engagement_id), api_user())
    db.session.commit()
    return jsonify({"items": [finding_json(f) for f in rows], "total": len(rows), "page": 1, "per_page": len(rows)})


@operation("/results/findings/<int:finding_id>/plan", "POST", summary="责任单位提交整改计划", tag=TAG, response=FINDING,
           body=PLAN_REQUEST, errors=(400, 403, 404, 409, 422))
def results_plan_finding(finding_id: int):
    finding = visible(ResultFinding, finding_id, "finding.view", "未找到该问题。")
    _, errors, body = read_body("plan")
    raise_if(errors)
    services.submit_plan(finding, api_user(), body["plan"] or "")
    db.session.commit()
    return jsonify(finding_json(finding))


@operation("/results/findings/<int:finding_id>/evidence", "POST", summary="责任单位提交整改情况和佐证材料（multipart，可多个 file）",
           tag=TAG, response=FINDING, body=EVIDENCE_UPLOAD, body_content_type="multipart/form-data",
           errors=(400, 403, 404, 409, 422))
def results_evidence_finding(finding_id: int):
    finding = visible(ResultFinding, finding_id, "finding.view", "未找到该问题。")
    if request.mimetype != "multipart/form-data":
        raise DomainError("请求体必须是 multipart/form-data（字段 note、file）。")
    uploads = [files.Upload(f.filename or "", f.read()) for f in request.files.getlist("file") if f.filename]
    services.submit_evidence(finding, api_user(), request.form.get("note", ""), uploads)
    db.session.commit()
    return jsonify(finding_json(finding))


@operation("/results/findings/<int:finding_id>/verify", "POST", summary="财政局核验整改（整改到位/部分整改/未整改）",
           tag=TAG, response=FINDING, body=VERIFY_REQUEST, errors=(400, 403, 404, 409, 422))
def results_verify_finding(finding_id: int):
    finding = visible(ResultFinding, finding_id, "finding.view", "未找到该问题。")
    _, errors, body = read_body("verification", "note", "deadline")
    deadline = _date(body["deadline"], "deadline", errors)
    raise_if(errors)
    services.verify(finding, api_user(), body["verification"] or "", body["note"] or "", deadline)
    db.session.commit()
    return jsonify(finding_json(finding))


def _bureau_year() -> tuple[Bureau, int]:
    user = api_user()
    code = (request.args.get("bureau") or "").strip()
    bureau = db.session.query(Bureau).filter(Bureau.code == code[:12]).one_or_none() if code else user.bureau
    if bureau is None or not permissions.can(user, "results.view_bureau", bureau):
        raise NotFound("未找到该财政局。")
    try:
        year = parse_year((request.args.get("year") or str(beijing_today().year - 1)).strip(), 2000, 2100)
    except ValueError:
        raise ValidationFailed("参数 year 无效。", {"year": "应为四位年份"})
    return bureau, year


@operation("/results/application", "GET", summary="结果应用清单（财政局及其上级可见）", tag=TAG,
           response={"type": "array", "items": ENTRY},
           params=[YEAR_QUERY, query("bureau", "财政局的行政区划代码（默认本局）")], errors=(403, 404, 422))
def results_list_application():
    bureau, year = _bureau_year()
    return jsonify([entry_json(e) for e in services.entries(bureau, year)])


@operation("/results/application/build", "POST", summary="按本局规则生成（刷新）结果应用清单的建议", tag=TAG,
           response={"type": "array", "items": ENTRY}, params=[YEAR_QUERY], errors=(403, 404, 409, 422))
def results_build_application():
    bureau, year = _bureau_year()
    rows = services.build_list(bureau, year, api_user())
    db.session.commit()
    return jsonify([entry_json(e) for e in rows])


@operation("/results/application/entries/<int:entry_id>/confirm", "POST",
           summary="财政局确认一项结果应用（与规则建议不一致时须说明理由）", tag=TAG, response=ENTRY, body=ENTRY_REQUEST,
           errors=(400, 403, 404, 409, 422))
def results_confirm_entry(entry_id: int):
    entry = visible(ApplicationEntry, entry_id, "application.confirm", "未找到该清单项。")
    data, errors, body = read_body("reason")
    measures = data.get("measures")
    if not isinstance(measures, list):
        errors["measures"] = "必须是数组"
    raise_if(errors)
    services.confirm_entry(entry, api_user(), measures=measures, cut_percent=data.get("cut_percent"),
                           cut_amount_wan=data.get("cut_amount_wan"), reason=body["reason"] or "")
    db.session.commit()
    return jsonify(entry_json(entry))


UNIT_PUBLICATION_REQUEST = schema("UnitPublicationRequest", {"type": "object", "required": ["url", "published_on"], "properties": {
    "url": text(300, "公开网址（http:// 或 https://）"),
    "published_on": {"type": "string", "format": "date", "maxLength": 10, "description": "公开日期"}}})
UNIT_PUBLICATION = schema("UnitPublication", {"type": "object", "required": ["engagement_id", "url", "published_on"],
                                              "properties": {"engagement_id": INTEGER, "url": STRING, "published_on": STRING}})


@operation("/results/engagements/<int:engagement_id>/unit-publication", "POST",
           summary="被评价单位记录其公开脱密评价报告的网址和日期（双公开）", tag=TAG, response=UNIT_PUBLICATION,
           body=UNIT_PUBLICATION_REQUEST, errors=(400, 403, 404, 409, 422))
def results_unit_publication(engagement_id: int):
    engagement = _engagement(engagement_id)
    _, errors, body = read_body("url", "published_on")
    published_on = _date(body["published_on"], "published_on", errors)
    raise_if(errors)
    row = services.record_unit_publication(engagement, api_user(), body["url"] or "", published_on)
    db.session.commit()
    return jsonify({"engagement_id": row.engagement_id, "url": row.url, "published_on": row.published_on.isoformat()})


# --- budget-unit accounts and the signed 整改报告 (issue 15) --------------------------------------------

UNIT_ACCOUNT_REQUEST = schema("UnitAccountRequest", {"type": "object", "required": ["username", "display_name"], "properties": {
    "username": text(64, "登录名", name=True), "display_name": text(100, "姓名", name=True),
    "email": text(200, "电子邮箱", nullable=True), "phone": text(30, "电话", nullable=True)}})
UNIT_ACCOUNT = schema("UnitAccount", {"type": "object", "required": ["id", "username", "budget_unit_id"], "properties": {
    "id": INTEGER, "username": STRING, "display_name": STRING, "budget_unit_id": INTEGER, "budget_unit": STRING,
    "activation_url": {"type": "string", "description": "一次性激活链接（只在创建时返回一次）"}}})
SIGNED_UPLOAD = schema("SignedRectificationUpload", {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary", "description": "已签章的整改报告（PDF、Word 或图片）"}}})
SIGNED_REPORT = schema("SignedRectificationReport", {"type": "object", "required": ["id", "engagement_id"], "properties": {
    "id": INTEGER, "engagement_id": INTEGER, "file": STRING, "uploaded_at": STRING}})


@operation("/results/units/<int:unit_id>/accounts", "POST",
           summary="本局管理员为本局预算单位开通账户（返回一次性激活链接）", tag=TAG, response=UNIT_ACCOUNT,
           body=UNIT_ACCOUNT_REQUEST, errors=(400, 403, 404, 409, 422), status=201)
def results_create_unit_account(unit_id: int):
    from evalhub.core import accounts

    user = api_user()
    unit = db.session.get(BudgetUnit, unit_id)
    if unit is None or not permissions.can(user, "unit_account.create", unit):
        raise NotFound("未找到该预算单位。")
    _, errors, body = read_body("username", "display_name", "email", "phone")
    raise_if(errors)
    account, token = services.create_unit_account(user, unit, username=body["username"] or "",
                                                  display_name=body["display_name"] or "", email=body["email"],
                                                  phone=body["phone"])
    db.session.commit()
    accounts.email_link(account, token, accounts.LinkPurpose.ACTIVATION)
    return jsonify({"id": account.id, "username": account.username, "display_name": account.display_name,
                    "budget_unit_id": unit.id, "budget_unit": unit.name,
                    "activation_url": accounts.link_url(token, accounts.LinkPurpose.ACTIVATION)}), 201


@operation("/results/engagements/<int:engagement_id>/rectification/signed", "POST",
           summary="被评价单位上传签章的整改报告（multipart，字段 file）", tag=TAG, response=SIGNED_REPORT,
           body=SIGNED_UPLOAD, body_content_type="multipart/form-data", errors=(400, 403, 404, 409, 422), status=201)
def results_upload_signed_report(engagement_id: int):
    engagement = _engagement(engagement_id)
    if request.mimetype != "multipart/form-data":
        raise DomainError("请求体必须是 multipart/form-data（字段 file）。")
    upload = request.files.get("file")
    report = services.upload_signed_report(engagement, api_user(), files.Upload(
        (upload.filename or "") if upload else "", upload.read() if upload else b""))
    db.session.commit()
    return jsonify({"id": report.id, "engagement_id": engagement.id, "file": report.file.original_name,
                    "uploaded_at": datetime_str(report.created_at)}), 201


# --- self-evaluation reviews (克州 item 7) ------------------------------------------------------------

SELF_EVALUATION = schema("SelfEvaluation", {"type": "object", "required": ["id", "reference", "name", "status"], "properties": {
    "id": INTEGER, "reference": STRING, "year": INTEGER, "name": STRING, "budget_unit": STRING,
    "funds": NUMBER, "status": labeled_schema(SelfEvaluationStatus, "SelfEvaluationStatus"), "score": NUMBER,
    "versions": {"type": "array", "items": {"type": "object", "properties": {
        "version": INTEGER, "file": STRING, "submitted_at": STRING, "outcome": NULLABLE_STRING, "score": NUMBER,
        "letter": NULLABLE_STRING}}}}})
SELF_EVALUATION_UPLOAD = schema("SelfEvaluationUpload", {"type": "object", "required": ["year", "name", "file"], "properties": {
    "unit_id": {"type": "integer", "minimum": 1, "maximum": 2147483647, "description": "自评单位（默认本单位）"},
    "year": {"type": "integer", "minimum": 2000, "maximum": 2100}, "name": text(200, "项目（资金）名称"),
    "funds": {"type": "string", "maxLength": 20, "description": "资金金额（元）"}, "note": text(1000, "说明"),
    "file": {"type": "string", "format": "binary", "description": "自评报告（Word 或 PDF）"}}})
RESUBMIT_UPLOAD = schema("SelfEvaluationResubmit", {"type": "object", "required": ["file"], "properties": {
    "note": text(1000, "整改说明"), "file": {"type": "string", "format": "binary", "description": "整改后的自评报告"}}})


def self_evaluation_json(se: SelfEvaluation) -> dict:
    """What the unit and the bureaus read: versions with the outcome as the unit reads it (never a reviewer)."""
    panels = {p.submission_id: p for p in services.self_evaluation_panels(se)}
    versions = []
    for s in se.submissions:
        outcome = services.unit_outcome(panels[s.id]) if s.id in panels else None
        versions.append({"version": s.version, "file": s.file.original_name, "submitted_at": datetime_str(s.submitted_at),
                         "outcome": outcome["label"] if outcome else None,
                         "score": number(outcome["score"]) if outcome else None,
                         "letter": outcome["letter"] if outcome else None})
    return {"id": se.id, "reference": se.reference, "year": se.year, "name": se.name, "budget_unit": se.budget_unit.name,
            "funds": number(se.funds), "status": labeled(se.status), "score": number(se.score), "versions": versions}


def _multipart() -> None:
    if request.mimetype != "multipart/form-data":
        raise DomainError("请求体必须是 multipart/form-data。")


def _file() -> files.Upload:
    upload = request.files.get("file")
    return files.Upload((upload.filename or "") if upload else "", upload.read() if upload else b"")


@operation("/results/self-evaluations", "GET", summary="部门自评报告评审结果（本单位及下属单位，或本局及下级财政局）",
           tag=TAG, response=list_schema(SELF_EVALUATION), params=[YEAR_QUERY, *PAGE_PARAMS], errors=(400, 403, 422))
def results_list_self_evaluations():
    user = api_user()
    permissions.require(user, "self_evaluation.list")
    return list_response(permissions.scope(user, sa.select(SelfEvaluation), SelfEvaluation), year_filter(SelfEvaluation.year),
                         item=self_evaluation_json, order_by=[SelfEvaluation.year.desc(), SelfEvaluation.id.desc()])


@operation("/results/self-evaluations", "POST", summary="预算单位提交中央转移支付项目自评报告（multipart）", tag=TAG,
           response=SELF_EVALUATION, body=SELF_EVALUATION_UPLOAD, body_content_type="multipart/form-data",
           errors=(400, 403, 404, 422), status=201)
def results_create_self_evaluation():
    user = api_user()
    _multipart()
    raw = (request.form.get("unit_id") or "").strip() or str(user.budget_unit_id or "")
    unit_id = as_int(raw)  # ASCII digits only: "²" is a digit to isdigit(), not to int()
    unit = db.session.get(BudgetUnit, unit_id) if unit_id is not None else None
    if unit is None:
        raise NotFound("未找到该预算单位。")
    se = services.submit_self_evaluation(user, unit, year=request.form.get("year"), name=request.form.get("name", ""),
                                         funds=request.form.get("funds"), upload=_file(), note=request.form.get("note"))
    db.session.commit()
    return jsonify(self_evaluation_json(se)), 201


@operation("/results/self-evaluations/<int:se_id>/resubmit", "POST", summary="退回整改后重新提交自评报告（multipart）",
           tag=TAG, response=SELF_EVALUATION, body=RESUBMIT_UPLOAD, body_content_type="multipart/form-data",
           errors=(400, 403, 404, 409, 422), status=201)
def results_resubmit_self_evaluation(se_id: int):
    se = visible(SelfEvaluation, se_id, "self_evaluation.view", "未找到该自评报告。")
    _multipart()
    services.resubmit_self_evaluation(se, api_user(), _file(), request.form.get("note"))
    db.session.commit()
    return jsonify(self_evaluation_json(se)), 201
