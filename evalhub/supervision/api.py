"""Supervision API: inspections (random campaigns and targeted cases) with their findings, under /api/v1.

Same rules as the other domain APIs: rows are narrowed with ``permissions.scope`` (a single record the user
may not see is 404), and domain errors become the one error shape. Who sees what:

- bureau users see the inspections of their bureau and the bureaus below it, in full: the drawn
  inspectors by name, the related complaint, who opened the case and who recorded each finding;
- a firm user sees the inspections of its own firm (as on the web pages): trigger, status, checklist,
  findings with their measures, its own response and the conclusion; of the inspectors only their kind
  (财政检查人员 / 专家), never names; never the complaint's reference, and no lead detail when the case
  came from a complaint (its content and the complainant are confidential) or from a screening flag (risk,
  rank and reasons are the bureaus' own) — ``services.lead_for`` decides, for the web pages too;
- an expert sees the cases it is seated on as inspector, as the firm sees them (no names, no complaint).
"""
from __future__ import annotations

from flask import jsonify
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core.api import api_user, list_schema, operation, schema
from evalhub.core.apiutil import (
    BUREAU_REF, DATETIME, INTEGER, NULLABLE_DATETIME, NULLABLE_STRING, PAGE_PARAMS, STRING, bureau_ref,
    choice_query, datetime_str, id_field, int_field, labeled, labeled_definition, labeled_schema, list_response, nullable, query,
    raise_if, read_body, text, visible,
)
from evalhub.core import permissions
from evalhub.core.enums import BUREAU_SIDE
from evalhub.core.errors import NotFound, PermissionDenied
from evalhub.core.listing import INT_MAX, bureau_filter, enum_filter, int_filter, scoped
from evalhub.core.models import User
from evalhub.extensions import db
from evalhub.supervision import services
from evalhub.supervision.models import (
    CHECKLIST, CampaignStatus, Complaint, ComplaintStatus, Finding, Inspection, InspectionStatus, Inspector, Measure,
    Rectification, Severity, Trigger,
)

TAG_SUPERVISION = "监督检查"

# --- schemas ---------------------------------------------------------------------------------------

SEVERITY = labeled_schema(Severity)
MEASURE = labeled_schema(Measure)
TRIGGER = labeled_schema(Trigger)
INSPECTION_STATUS = labeled_schema(InspectionStatus)

INSPECTED_FIRM_REF = schema("InspectedFirmRef", {"type": "object", "required": ["id", "name"], "properties": {
    "id": INTEGER, "name": STRING, "uscc": STRING}})

INSPECTED_ENGAGEMENT_REF = schema("InspectedEngagementRef", {"type": "object", "required": ["id", "reference", "name"],
                                                             "properties": {
    "id": INTEGER, "reference": STRING, "name": STRING, "year": INTEGER}})

CAMPAIGN_REF = schema("InspectionCampaignRef", {"type": "object", "required": ["id", "year"], "properties": {
    "id": INTEGER, "year": INTEGER, "status": labeled_definition(CampaignStatus)}})

FINDING = schema("Finding", {"type": "object", "required": ["id", "severity", "description", "measures", "rectified"],
                             "properties": {
    "id": INTEGER, "inspection_id": INTEGER, "severity": SEVERITY, "description": STRING,
    "measures": {"type": "array", "items": MEASURE, "description": "处理措施"},
    "rectified": {"type": "boolean", "description": "机构是否已整改（检查办结时按是否有整改回复确定）；不要求机构回复的问题"
                                                    "（轻微且未采取处理措施）为 false，此时 rectification 为 not_required"},
    "rectification": {**labeled_definition(Rectification),
                      "description": "整改情况：pending 待办结、rectified 已整改、not_rectified 未整改、"
                                     "not_required 无需整改（轻微且未采取处理措施，不要求机构回复）"},
    "created_at": DATETIME,
    "created_by": {"type": "object", "nullable": True, "description": "记录人；仅财政局用户可见",
                   "properties": {"id": INTEGER, "name": STRING}}}})

INSPECTION = schema("Inspection", {"type": "object", "required": [
    "id", "bureau", "firm", "trigger", "status", "opened_at", "finding_count"], "properties": {
    "id": INTEGER, "bureau": BUREAU_REF, "firm": INSPECTED_FIRM_REF,
    "engagement": nullable(INSPECTED_ENGAGEMENT_REF),
    "campaign": {"allOf": [CAMPAIGN_REF], "nullable": True, "description": "不定向抽查批次（定向检查为空）"},
    "trigger": TRIGGER, "status": INSPECTION_STATUS,
    "opened_at": DATETIME, "closed_at": NULLABLE_DATETIME,
    "finding_count": {"type": "integer", "description": "发现问题数"}}})
INSPECTION_LIST = schema("InspectionList", list_schema(INSPECTION))

INSPECTOR = schema("InspectorRef", {"type": "object", "required": ["kind"], "properties": {
    "kind": {"type": "string", "enum": ["staff", "expert"], "description": "staff（财政检查人员）或 expert（检查专家）"},
    "id": {"type": "integer", "description": "用户编号或专家编号；仅财政局用户可见"},
    "name": {"type": "string", "description": "姓名；仅财政局用户可见"},
    "draw_id": {"type": "integer", "nullable": True, "description": "随机抽取记录编号（可验证）；仅财政局用户可见"}}})

CHECKLIST_ITEM = schema("InspectionChecklistItem", {"type": "object", "required": ["code", "label", "done"], "properties": {
    "code": {"type": "string", "description": "、".join(code for code, _ in CHECKLIST)}, "label": STRING,
    "done": {"type": "boolean", "description": "是否已记录"}, "ok": {"type": "boolean", "nullable": True},
    "note": NULLABLE_STRING}})

INSPECTION_DETAIL = schema("InspectionDetail", {"allOf": [INSPECTION, {"type": "object", "required": [
    "findings", "checklist", "inspectors"], "properties": {
    "findings": {"type": "array", "items": FINDING},
    "firm_response": {"type": "string", "nullable": True, "description": "机构最近一次的整改回复（全部回复见 responses）"},
    "responded_at": NULLABLE_DATETIME,
    "responses": {"type": "array", "description": "机构的全部整改回复，按提交先后；后来的检查发现问题会再次要求回复，之前的回复保留",
                  "items": {"type": "object", "required": ["id", "text", "submitted_at"], "properties": {
                      "id": INTEGER, "text": STRING, "submitted_at": STRING,
                      "by": {"type": "object", "nullable": True, "properties": {"id": INTEGER, "name": STRING}}}}},
    "conclusion": NULLABLE_STRING,
    "trigger_detail": {"type": "string", "nullable": True,
                       "description": "线索内容；投诉举报和报告质量筛查提示立案的，被检查机构看到的是空值"
                                      "（投诉内容依规保密，筛查结果仅供财政部门内部使用）"},
    "complaint": {"type": "object", "nullable": True, "description": "关联的投诉；仅财政局用户可见",
                  "properties": {"id": INTEGER, "reference": STRING}},
    "inspectors": {"type": "array", "items": INSPECTOR,
                   "description": "检查人员；被检查机构只看到人员类别（财政检查人员、专家），看不到姓名"},
    "checklist": {"type": "array", "items": CHECKLIST_ITEM, "description": "检查清单"},
    "opened_by": {"type": "object", "nullable": True, "description": "立案人（系统筛查立案时为空）；仅财政局用户可见",
                  "properties": {"id": INTEGER, "name": STRING}}}}]})

FINDING_LIST = schema("FindingList", {"type": "object", "required": ["inspection", "items"], "properties": {
    "inspection": INSPECTION, "items": {"type": "array", "items": FINDING}}})


# --- serialisation ---------------------------------------------------------------------------------

def _bureau_side(user: User) -> bool:
    # as the web page (core.web.bureau_side): an expert inspector reads its case as the firm does, without names
    return user.role in BUREAU_SIDE


def _person(user: User | None) -> dict | None:
    return {"id": user.id, "name": user.display_name} if user is not None else None


def inspection_json(inspection: Inspection) -> dict:
    engagement, campaign, firm = inspection.engagement, inspection.campaign, inspection.firm
    return {
        "id": inspection.id, "bureau": bureau_ref(inspection.bureau),
        "firm": {"id": firm.id, "name": firm.name, "uscc": firm.uscc},
        "engagement": {"id": engagement.id, "reference": engagement.reference, "name": engagement.name,
                       "year": engagement.year} if engagement is not None else None,
        "campaign": {"id": campaign.id, "year": campaign.year, "status": labeled(campaign.status)}
        if campaign is not None else None,
        "trigger": labeled(inspection.trigger), "status": labeled(inspection.status),
        "opened_at": datetime_str(inspection.opened_at), "closed_at": datetime_str(inspection.closed_at),
        "finding_count": len(inspection.findings),
    }


def _measure(value: str) -> dict | None:
    try:
        return labeled(Measure(value))
    except ValueError:
        return {"value": value, "label": value}


def finding_json(finding: Finding, user: User) -> dict:
    out = {
        "id": finding.id, "inspection_id": finding.inspection_id, "severity": labeled(finding.severity),
        "description": finding.description, "measures": [_measure(m) for m in finding.measures or []],
        "rectified": finding.rectified, "rectification": labeled(finding.rectification),
        "created_at": datetime_str(finding.created_at),
    }
    if _bureau_side(user):
        out["created_by"] = _person(db.session.get(User, finding.created_by_id) if finding.created_by_id else None)
    return out


def _inspector_json(inspector: Inspector, bureau_side: bool) -> dict:
    """A drawn inspector; the inspected firm learns only that a staff member and an expert were drawn."""
    kind = "staff" if inspector.user_id is not None else "expert"
    if not bureau_side:
        return {"kind": kind}
    return {"kind": kind, "id": inspector.user_id if kind == "staff" else inspector.expert_id, "name": inspector.name,
            "draw_id": inspector.draw_id}


def inspection_detail_json(inspection: Inspection, user: User) -> dict:
    bureau_side = _bureau_side(user)
    checklist = inspection.checklist or {}
    complaint = inspection.complaint
    out = {
        **inspection_json(inspection),
        # A complaint's content and a screening flag's risk, rank and reasons are the bureau's alone.
        "trigger_detail": services.lead_for(inspection, user),
        "findings": [finding_json(f, user) for f in inspection.findings],
        "checklist": [{"code": code, "label": label, "done": code in checklist,
                       "ok": checklist[code].get("ok") if code in checklist else None,
                       "note": checklist[code].get("note") if code in checklist else None}
                      for code, label in CHECKLIST],
        "inspectors": [_inspector_json(i, bureau_side) for i in sorted(inspection.inspectors, key=lambda i: i.id)],
        "firm_response": inspection.firm_response, "responded_at": datetime_str(inspection.responded_at),
        "responses": [{"id": r.id, "text": r.text, "submitted_at": datetime_str(r.created_at), "by": _person(r.actor)}
                      for r in inspection.responses],
        "conclusion": inspection.conclusion,
    }
    if bureau_side:
        out["complaint"] = {"id": complaint.id, "reference": complaint.reference} if complaint is not None else None
        out["opened_by"] = _person(db.session.get(User, inspection.opened_by_id) if inspection.opened_by_id else None)
    return out


# --- finding records -------------------------------------------------------------------------------

def _visible_inspection(inspection_id: int) -> Inspection:
    # who reads a case is "inspection.view", as on the web: an expert the cases it is seated on as inspector
    return visible(Inspection, inspection_id, "inspection.view", "未找到该检查。")


# --- inspections -----------------------------------------------------------------------------------

@operation("/inspections", "GET",
           summary="监督检查（不定向抽查和定向检查）列表：财政局按可见范围；第三方机构只看到对本机构的检查；专家只看到本人担任检查人员的检查",
           tag=TAG_SUPERVISION, response=INSPECTION_LIST,
           params=[choice_query("status", InspectionStatus), choice_query("trigger", Trigger),
                   query("bureau", "检查财政局的行政区划代码"), query("campaign", "不定向抽查批次编号", "integer", minimum=1, maximum=INT_MAX),
                   *PAGE_PARAMS],
           errors=(400, 403, 422))
def list_inspections():
    user = api_user()
    permissions.require(user, "inspection.list")
    return list_response(lambda: scoped(Inspection, user=user),
                         enum_filter("status", InspectionStatus, Inspection.status),
                         enum_filter("trigger", Trigger, Inspection.trigger), bureau_filter(Inspection.bureau_id),
                         int_filter("campaign", Inspection.campaign_id),
                         options=[joinedload(Inspection.bureau), selectinload(Inspection.firm),
                                  selectinload(Inspection.engagement),
                                  selectinload(Inspection.campaign), selectinload(Inspection.findings)],
                         order_by=[Inspection.opened_at.desc(), Inspection.id.desc()], item=inspection_json,
                         keep="api.inspections")


@operation("/inspections/<int:inspection_id>", "GET",
           summary="一项检查：线索、状态、发现的问题和处理措施、机构整改回复、结论；财政局用户另见检查人员和检查清单"
                   "（第三方机构看不到检查人员姓名）",
           tag=TAG_SUPERVISION, response=INSPECTION_DETAIL, errors=(403, 404))
def get_inspection(inspection_id: int):
    return jsonify(inspection_detail_json(_visible_inspection(inspection_id), api_user()))


@operation("/inspections/<int:inspection_id>/findings", "GET",
           summary="一项检查发现的问题：严重程度、描述、处理措施、是否已整改",
           tag=TAG_SUPERVISION, response=FINDING_LIST, errors=(403, 404))
def list_findings(inspection_id: int):
    user = api_user()
    inspection = _visible_inspection(inspection_id)
    return jsonify({"inspection": inspection_json(inspection),
                    "items": [finding_json(f, user) for f in inspection.findings]})


# --- decisions: 不予立案 and 指定检查人员 (the same services as the pages) -----------------------------------

COMPLAINT_DECISION = schema("ComplaintDecision", {"type": "object", "required": ["id", "reference", "status"],
                                                  "properties": {
    "id": INTEGER, "reference": STRING, "status": labeled_schema(ComplaintStatus),
    "decision_reason": {"type": "string", "nullable": True, "description": "不予立案的理由（投诉人凭编号和查询码可查询）"},
    "decided_at": NULLABLE_DATETIME}})

COMPLAINT_DECLINE = schema("ComplaintDecline", {"type": "object", "required": ["reason"], "properties": {
    "reason": text(2000, "不予立案的理由，10–2000 字；投诉人可查询到")}})

INSPECTOR_NAMING = schema("InspectorNaming", {"type": "object", "properties": {
    "user_id": id_field("财政检查人员（本局或上级财政局在用的工作人员）的用户编号；与 expert_id 二选一", nullable=True),
    "expert_id": id_field("本局或上级财政局专家库中专家的编号；与 user_id 二选一", nullable=True),
    "reason": text(500, "指定理由（可选，记入审计日志）", nullable=True)}})


def _require_bureau_side(user: User) -> None:
    if user.role not in BUREAU_SIDE:
        raise PermissionDenied("只有财政局工作人员可以办理。")


@operation("/complaints/<int:complaint_id>/decline", "POST",
           summary="投诉不予立案：写明理由（不少于 10 字，投诉人凭编号和查询码可查询）；仅受理投诉的财政局可办理，且只能决定一次",
           tag=TAG_SUPERVISION, response=COMPLAINT_DECISION, body=COMPLAINT_DECLINE, errors=(400, 403, 404, 409, 422))
def decline_complaint(complaint_id: int):
    user = api_user()
    _require_bureau_side(user)
    complaint = db.session.get(Complaint, complaint_id)
    if complaint is None or not permissions.visible(user, complaint):
        raise NotFound("未找到该投诉。")
    _data, errors, texts = read_body("reason")
    raise_if(errors)
    services.decline_complaint(complaint, user, texts["reason"] or "")
    db.session.commit()
    return jsonify({"id": complaint.id, "reference": complaint.reference, "status": labeled(complaint.status),
                    "decision_reason": complaint.decision_reason, "decided_at": datetime_str(complaint.decided_at)})


@operation("/inspections/<int:inspection_id>/inspectors", "POST",
           summary="指定检查人员：一名财政检查人员（user_id）或一名专家（expert_id）；与被检查事项不独立的（经办过该项目采购或评审、"
                   "评审过该项目、与机构有关联等）予以拒绝并说明理由（422）",
           tag=TAG_SUPERVISION, response=INSPECTION_DETAIL, status=201, body=INSPECTOR_NAMING,
           errors=(400, 403, 404, 409, 422))
def name_inspector(inspection_id: int):
    user = api_user()
    inspection = _visible_inspection(inspection_id)
    data, errors, texts = read_body("reason")
    user_id, expert_id = int_field(data, "user_id", errors), int_field(data, "expert_id", errors)
    raise_if(errors)
    services.name_inspector(inspection, user, user_id=user_id, expert_id=expert_id, reason=texts["reason"])
    db.session.commit()
    return jsonify(inspection_detail_json(inspection, user)), 201
