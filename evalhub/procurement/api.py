"""Procurement API: annual evaluation plans, engagements and their state machine, procurements, bids, OCDS.

Same rules as the registry API: rows are always narrowed with ``permissions.scope`` (single records are
checked with ``permissions.can``; not visible → 404), the rules live in ``procurement.services`` and
``procurement.workflow``, and domain errors become the one error shape. Bids are read ONLY through the
``Bid`` row scope, which keeps them sealed: a firm sees its own bid, a bureau sees bids once opened.
Firm users read an engagement's timeline without the names of the people who acted (experts included).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core.api import api_user, json_body, list_schema, operation, schema
from evalhub.core.apiutil import (
    BUREAU_REF, DATE, INTEGER, NULLABLE_DATETIME, NULLABLE_STRING, PAGE_PARAMS, STRING, YEAR_QUERY, bureau_ref, choice,
    choice_query, date_str, datetime_str, id_field, integer, labeled, labeled_schema, list_response, money,
    nullable, number, query, raise_if, read_body, text, text_field, utc_datetime, visible,
)
from evalhub.core import bureau_tree, permissions
from evalhub.core.enums import BUREAU_SIDE, Field, Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.listing import (
    INT_MAX, as_int, bureau_filter, enum_filter, looked_up, scoped, text_filter, year_filter,
)
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.extensions import db
from evalhub.procurement import counts, media, ocds, services, workflow
from evalhub.procurement.models import (
    Bid, BidStatus, BudgetKind, Challenge, ChallengeEvidence, ChallengeRemedy, ChallengeStatus, Engagement, EngagementState, EngagementTransition, EvaluationPlan, JustificationDecision,
    ObjectType, PlanItem, PlanStatus, Procurement, ProcurementMethod, ProcurementStatus, ResultNotice, ServiceKind,
)
from evalhub.registry.models import Firm, StaffRole

TAG_PLANS = "年度评价计划"
TAG_ENGAGEMENTS = "评价任务"
TAG_PROCUREMENTS = "采购"

TEN_THOUSAND = Decimal("10000")
CENT = Decimal("0.01")

# Transitions that belong to a procurement service, which does more than change the state (creates the
# procurement round, the contract, records the 流标 reason on the round). The generic transitions
# endpoint refuses them so that an engagement never shows "采购中" without a procurement, etc.
SERVICE_ACTIONS = {
    "start_procurement": "发起采购",
    "rerun_procurement": "重新发起采购",
    "fail_procurement": "开标（有效投标不足时自动流标）",
    "sign_contract": "签订合同",
}


# --- serialisation helpers -------------------------------------------------------------------------

def _yuan(value: Decimal | None) -> str | None:
    return str(Decimal(value).quantize(CENT)) if value is not None else None


def _wan(value: Decimal | None) -> float | None:
    return float(Decimal(value) / TEN_THOUSAND) if value is not None else None


def _money(prefix: str, value: Decimal | None) -> dict:
    """``amount`` → {"amount": "3000000.00", "amount_wan": 300.0}: yuan as an exact string, 万元 as a number."""
    return {prefix: _yuan(value), f"{prefix}_wan": _wan(value)}


def _unit_ref(unit: BudgetUnit | None) -> dict | None:
    return {"id": unit.id, "name": unit.name} if unit is not None else None


# --- request parsing helpers -----------------------------------------------------------------------

def _integer_value(value: Any) -> int | None:
    """An integer, or a string of digits; anything else (booleans included) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -INT_MAX <= value <= INT_MAX else None
    if isinstance(value, str):
        return as_int(value, -INT_MAX, INT_MAX)  # digits the database can hold; "99999999999" is not an id
    return None


def _optional_id(data: dict, name: str, errors: dict[str, str]) -> int | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    number = _integer_value(value)
    if number is None:
        errors[name] = "必须是整数 ID"
    return number


def _number_or_text(data: dict, name: str, errors: dict[str, str]) -> Any:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
        errors[name] = "必须是数字或数字字符串"
        return None
    return value


# --- schemas ---------------------------------------------------------------------------------------

def _money_properties(prefix: str, label: str, nullable: bool = False) -> dict:
    return {prefix: {"type": "string", "nullable": nullable, "description": f"{label}（元，精确到分的字符串）",
                     "example": "3000000.00"},
            f"{prefix}_wan": {"type": "number", "nullable": nullable, "description": f"{label}（万元）"}}


PLAN_STATUS = labeled_schema(PlanStatus)
OBJECT_TYPE = labeled_schema(ObjectType)
BUDGET_KIND = labeled_schema(BudgetKind)
SERVICE_KIND = labeled_schema(ServiceKind)
FIELD = labeled_schema(Field)
ENGAGEMENT_STATE = labeled_schema(EngagementState)
PROCUREMENT_METHOD = labeled_schema(ProcurementMethod)
PROCUREMENT_STATUS = labeled_schema(ProcurementStatus)
BID_STATUS = labeled_schema(BidStatus)
JUSTIFICATION_DECISION = labeled_schema(JustificationDecision)
ROLE = labeled_schema(Role)
STAFF_ROLE = labeled_schema(StaffRole)

UNIT_REF = schema("BudgetUnitRef", {"type": "object", "required": ["id", "name"], "properties": {
    "id": INTEGER, "name": STRING}})
FIRM_REF = schema("FirmRef", {"type": "object", "required": ["id", "name"], "properties": {
    "id": INTEGER, "name": STRING, "uscc": {"type": "string", "description": "统一社会信用代码"}}})

PLAN_CHECK = schema("PlanCheck", {"type": "object", "required": ["level", "message"], "properties": {
    "level": {"type": "string", "enum": ["error", "warning"],
              "description": "error：不能批准；warning：批准时须写明理由（warnings_reason）"},
    "message": STRING}})

PLAN = schema("Plan", {"type": "object", "required": ["id", "year", "bureau", "status", "item_count", "total_amount"],
                       "properties": {
    "id": INTEGER, "year": INTEGER, "bureau": BUREAU_REF, "status": PLAN_STATUS,
    "item_count": {"type": "integer", "description": "评价对象个数"},
    **_money_properties("total_amount", "评价对象涉及资金合计"),
    "note": NULLABLE_STRING, "approved_at": NULLABLE_DATETIME, "created_at": NULLABLE_DATETIME,
    "approval_warnings": {"type": "array", "items": {"type": "string"}, "description": "批准时计划核对的提示事项"},
    "approval_reason": {**NULLABLE_STRING, "description": "在提示事项下仍予批准的理由"}}})

ENGAGEMENT_REF = schema("EngagementRef", {"type": "object", "required": ["id", "reference", "state"], "properties": {
    "id": INTEGER, "reference": {"type": "string", "description": "任务编号，如 652800-2025-001"},
    "name": STRING, "state": ENGAGEMENT_STATE}})

PLAN_ITEM = schema("PlanItem", {"type": "object", "required": [
    "id", "position", "name", "object_type", "budget_kind", "field", "service_kind", "amount", "amount_wan",
    "budget_unit", "reason"], "properties": {
    "id": INTEGER, "plan_id": INTEGER, "position": INTEGER, "name": STRING, "object_type": OBJECT_TYPE,
    "budget_kind": BUDGET_KIND, "field": FIELD, "service_kind": SERVICE_KIND,
    **_money_properties("amount", "涉及资金"),
    "budget_unit": UNIT_REF, "commissioner_unit": nullable(UNIT_REF),
    "commissioner_name": {"type": "string", "description": "委托方（未指定预算单位时为财政局本身）"},
    "reason": {"type": "string", "description": "选取理由"},
    "engagement": nullable(ENGAGEMENT_REF)}})

PLAN_DETAIL = schema("PlanDetail", {"allOf": [PLAN, {"type": "object", "required": ["items", "checks"], "properties": {
    "approved_by": {"type": "string", "nullable": True, "description": "批准人用户名"},
    "items": {"type": "array", "items": PLAN_ITEM},
    "checks": {"type": "array", "items": PLAN_CHECK, "description": "计划核对结果（空：无问题）"},
    "may_edit": {"type": "boolean", "description": "当前用户此刻可以增加评价对象"},
    "may_approve": {"type": "boolean", "description": "当前用户此刻可以批准计划"}}}]})

PLAN_REQUEST = schema("PlanRequest", {"type": "object", "required": ["year"], "properties": {
    "year": integer(2000, 2100, "年度；计划属于令牌用户所在的财政局，已存在则返回已有计划")}})

PLAN_ITEM_INPUT = schema("PlanItemInput", {"type": "object", "required": [
    "name", "object_type", "budget_kind", "field", "amount_wan", "budget_unit_id", "reason"], "properties": {
    "name": text(PlanItem.name, "评价对象名称", name=True),
    "object_type": choice(ObjectType), "budget_kind": choice(BudgetKind), "field": choice(Field),
    "service_kind": choice(ServiceKind, "默认重点绩效评价"),
    "amount_wan": money("涉及资金（万元），可为数字或如 \"1,234.56\" 的字符串"),
    "budget_unit_id": id_field("被评价单位（本局或下级的预算单位）"),
    "commissioner_unit_id": id_field("委托方预算单位；空表示由财政局委托。不得与被评价单位相同（主体分离）", nullable=True),
    "reason": text(2000, "选取理由")}})

APPROVE_REQUEST = schema("PlanApproveRequest", {"type": "object", "properties": {
    "warnings_reason": text(2000, "计划核对有提示事项（warning）时仍予批准的理由（不少于 10 字），显示在计划和导出表中；"
                                  "有错误（error）时仍不能批准", nullable=True)}})

CONTRACT = schema("Contract", {"type": "object", "required": [
    "id", "amount", "amount_wan", "signed_on", "start_date", "end_date", "plan_due", "report_due"], "properties": {
    "id": INTEGER, "firm": FIRM_REF, **_money_properties("amount", "合同金额"),
    "signed_on": DATE, "start_date": DATE, "end_date": DATE,
    "plan_due": {"type": "string", "format": "date", "description": "实施方案提交期限"},
    "report_due": {"type": "string", "format": "date", "description": "评价报告提交期限"},
    "deliverables": STRING,
    "notice_due_on": {"type": "string", "format": "date", "nullable": True,
                      "description": "合同公告应发布的最后一日（政府采购法实施条例第五十条）；已发布为空，详见 /engagements/{id}/contract-notice"}}})

ACTOR = schema("TransitionActor", {"type": "object", "required": ["role"], "description":
    "操作人。第三方机构用户只看到角色和所属单位，看不到用户名（评审专家连单位也不显示）。", "properties": {
    "username": NULLABLE_STRING, "display_name": NULLABLE_STRING, "role": ROLE,
    "organisation": {"type": "string", "nullable": True, "description": "所属财政局或机构"}}})

TRANSITION = schema("EngagementTransition", {"type": "object", "required": ["id", "action", "from", "to"], "properties": {
    "id": INTEGER, "action": STRING, "label": STRING, "from": ENGAGEMENT_STATE, "to": ENGAGEMENT_STATE,
    "note": NULLABLE_STRING, "actor": nullable(ACTOR), "at": NULLABLE_DATETIME}})

AVAILABLE_ACTION = schema("AvailableAction", {"type": "object", "required": ["action", "label", "to", "needs_note"],
                                              "properties": {
    "action": {"type": "string", "description": "POST /engagements/{id}/transitions 的 action"},
    "label": STRING, "to": ENGAGEMENT_STATE, "needs_note": {"type": "boolean", "description": "须填写说明"},
    "unmet": {"type": "string", "nullable": True, "description": "尚不满足的前提（有值时执行会返回 409）"}}})

PROCUREMENT_REF = schema("ProcurementRef", {"type": "object", "required": ["id", "method", "status"], "properties": {
    "id": INTEGER, "title": STRING, "method": PROCUREMENT_METHOD, "status": PROCUREMENT_STATUS}})

ENGAGEMENT = schema("Engagement", {"type": "object", "required": [
    "id", "reference", "name", "year", "bureau", "state", "amount", "amount_wan"], "properties": {
    "id": INTEGER, "reference": STRING, "name": STRING, "year": INTEGER, "bureau": BUREAU_REF,
    "state": ENGAGEMENT_STATE, "state_changed_at": NULLABLE_DATETIME,
    "service_kind": SERVICE_KIND, "field": FIELD, **_money_properties("amount", "涉及资金"),
    "budget_unit": UNIT_REF, "commissioner_name": STRING, "firm": nullable(FIRM_REF),
    "overdue_reason": {"type": "string", "nullable": True, "description": "逾期原因（空：未逾期）"}}})

ENGAGEMENT_DETAIL = schema("EngagementDetail", {"allOf": [ENGAGEMENT, {"type": "object", "required": [
    "timeline", "available_actions"], "properties": {
    "plan_id": INTEGER, "plan_item_id": INTEGER,
    "commissioner_unit": nullable(UNIT_REF),
    "contract": nullable(CONTRACT),
    "procurements": {"type": "array", "items": PROCUREMENT_REF, "description": "当前用户可见的采购轮次"},
    "timeline": {"type": "array", "items": TRANSITION, "description": "每一次状态变更"},
    "available_actions": {"type": "array", "items": AVAILABLE_ACTION,
                          "description": "当前用户此刻可以执行的状态变更"}}}]})

TRANSITION_REQUEST = schema("TransitionRequest", {"type": "object", "required": ["action"], "properties": {
    "action": {"type": "string", "enum": list(workflow.TRANSITIONS), "description": "；".join(
        t.described for t in workflow.TRANSITIONS.values() if t.action not in SERVICE_ACTIONS) +
        "。" + "、".join(SERVICE_ACTIONS) + " 由采购和合同接口办理，此处返回 409"},
    "note": text(1000, "说明；退回、终止等操作必填", nullable=True)}})

RUBRIC_ITEM = schema("BidRubricItem", {"type": "object", "required": ["position", "name", "max_points"], "properties": {
    "id": INTEGER, "position": INTEGER, "name": STRING, "max_points": {"type": "number"}}})

AWARD = schema("Award", {"type": "object", "required": ["id", "firm", "amount", "amount_wan"], "properties": {
    "id": INTEGER, "firm": FIRM_REF, **_money_properties("amount", "中标/成交金额"),
    "score": {"type": "number", "nullable": True, "description": "综合得分（竞争性方式）"},
    "reasons": STRING, "notice": {"type": "string", "description": "中标/成交结果公告的文字（公开招标为中标，其他方式为成交）"}, "awarded_at": NULLABLE_DATETIME}})

TEAM_MEMBER = schema("BidTeamMember", {"type": "object", "required": ["staff_id", "name", "is_lead"], "properties": {
    "staff_id": INTEGER, "name": STRING, "role": STAFF_ROLE, "is_lead": {"type": "boolean"}}})

BID = schema("Bid", {"type": "object", "required": ["id", "procurement_id", "firm", "price", "price_wan", "status"],
                     "description": "密封投标：机构只看到本机构的投标；财政局开标后才看到投标。", "properties": {
    "id": INTEGER, "procurement_id": INTEGER, "firm": FIRM_REF, **_money_properties("price", "投标报价"),
    "status": BID_STATUS, "submitted_at": NULLABLE_DATETIME, "updated_at": NULLABLE_DATETIME,
    "withdrawn_at": NULLABLE_DATETIME, "invalid_reason": NULLABLE_STRING,
    "needs_justification": {"type": "boolean", "nullable": True,
                            "description": "报价是否异常偏低须说明（开标前为 null）"},
    "low_price_explanation": NULLABLE_STRING, "justification_decision": nullable(JUSTIFICATION_DECISION),
    "technical_file": {"type": "object", "nullable": True, "properties": {
        "id": INTEGER, "name": STRING, "kind": STRING, "size": INTEGER, "sha256": STRING}},
    "team": {"type": "array", "items": TEAM_MEMBER}}})

RESULT_NOTICE = schema("ResultNotice", {"type": "object", "required": ["id", "published_at", "challenge_until", "revoked_at"],
                                         "description": services.RESULT_NOTICE_RULE,
                                         "properties": {
    "id": INTEGER, "text": STRING, "firm": FIRM_REF, **_money_properties("amount", "中标/成交金额"),
    "published_at": {"type": "string", "format": "date-time"},
    "challenge_until": {"type": "string", "format": "date", "description": "可提出质疑的最后一日（北京时间）"},
    "revoked_at": NULLABLE_DATETIME, "revoked_reason": NULLABLE_STRING}})

PROCUREMENT = schema("Procurement", {"type": "object", "required": [
    "id", "title", "method", "status", "engagement", "bureau", "ceiling_price", "bids"], "properties": {
    "id": INTEGER, "title": STRING, "description": NULLABLE_STRING,
    "engagement": {"type": "object", "required": ["id", "reference", "name"], "properties": {
        "id": INTEGER, "reference": STRING, "name": STRING, "year": INTEGER, "field": FIELD}},
    "bureau": BUREAU_REF, "method": PROCUREMENT_METHOD, "status": PROCUREMENT_STATUS,
    **_money_properties("ceiling_price", "最高限价"),
    "price_weight": {"type": "number", "description": "价格分权重（%）"},
    "low_bid_ratio": {"type": "number", "description": "异常低价线：有效报价平均值的百分比"},
    "bid_deadline": NULLABLE_DATETIME, "opened_at": NULLABLE_DATETIME,
    "failure_reason": NULLABLE_STRING, "rerun_reason": NULLABLE_STRING, "justification": NULLABLE_STRING,
    "single_source_firm": nullable(FIRM_REF), "previous_id": {"type": "integer", "nullable": True},
    "created_at": NULLABLE_DATETIME,
    "rubric": {"type": "array", "items": RUBRIC_ITEM, "description": "技术评分项"},
    "award": nullable(AWARD),
    "notices": {"type": "array", "items": RESULT_NOTICE, "description": "结果公告（含已撤销的）"},
    "contract_block": {"type": "string", "nullable": True, "description": "定标后暂不能签订合同的原因（质疑期未满、质疑未答复）"},
    "period_problem": {"type": "string", "nullable": True, "description": (
        "等标期不足：采购公告在指定媒体发布（法定的公告）晚于本系统发布，自该日起算的期限不足；未开标的，延长投标截止时间前不能开标"
        "（仅财政局可见；无问题时为空）")},
    "bids": {"type": "array", "items": BID, "description": "当前用户可见的投标（密封规则见 Bid）"}}})
DEADLINE_CHANGE = schema("ProcurementDeadlineChange", {"type": "object", "required": ["bid_deadline", "reason"], "properties": {
    "bid_deadline": {"type": "string", "format": "date-time", "maxLength": 40, "description": (
        "新的投标截止时间，ISO 8601 带时区（例如 2025-03-17T10:00:00+08:00）。等标期自采购公告发布之日起算，已登记指定媒体发布的"
        "自在指定媒体发布之日起算（公开招标不少于 20 日，竞争性磋商不少于 10 日）；提前截止时间须留足法定通知期")},
    "reason": text(500, "变更原因（记入采购记录）")}})

CHALLENGE = schema("ProcurementChallenge", {"type": "object", "required": ["id", "procurement_id", "notice_id", "status"],
                                            "description": "质疑：财政局看到本局采购的全部质疑，机构只看到本机构的质疑",
                                            "properties": {
    "id": INTEGER, "procurement_id": INTEGER, "notice_id": INTEGER, "firm": FIRM_REF, "grounds": STRING,
    "evidence": {"type": "array", "items": {"type": "object", "properties": {"id": INTEGER, "name": STRING}}},
    "filed_at": {"type": "string", "format": "date-time"}, "answer_due": {"type": "string", "format": "date"},
    "status": labeled_schema(ChallengeStatus), "remedy": nullable(labeled_schema(ChallengeRemedy)),
    "answer": NULLABLE_STRING, "answered_at": NULLABLE_DATETIME,
    "complaint_until": {"type": "string", "format": "date",
                        "description": "对答复不满意或未按期答复的，可在此日前向本级财政部门投诉（答复期满后 15 个工作日，财政部令第94号 第十七条）"}}})
CHALLENGE_LIST = schema("ProcurementChallengeList", {"type": "array", "items": CHALLENGE})

CHALLENGE_REQUEST = schema("ProcurementChallengeRequest", {"type": "object", "required": ["grounds", "evidence"], "properties": {
    "grounds": text(5000, "质疑事项、事实依据和请求（不少于 10 字）"),
    "evidence": {"type": "array", "minItems": 1, "maxItems": 10, "description": "证明材料（PDF、Word、文本或图片）",
                 "items": {"type": "object", "required": ["name", "content_base64"], "properties": {
                     "name": text(255, "文件名", name=True),
                     "content_base64": {"type": "string", "maxLength": 28_000_000, "description": "文件内容（Base64）"}}}}}})

CHALLENGE_ANSWER = schema("ProcurementChallengeAnswer", {"type": "object", "required": ["outcome", "answer"], "properties": {
    "outcome": choice(ChallengeStatus, "dismissed（驳回）或 upheld（成立）"),
    "answer": text(5000, "答复意见（不少于 10 字）"),
    "remedy": choice(ChallengeRemedy, "质疑成立时：reevaluate（重新评审，仅竞争性方式）或 rerun（重新采购）", nullable=True)}})

OCDS_PACKAGE = schema("OcdsReleasePackage", {
    "type": "object", "required": ["uri", "version", "publishedDate", "publisher", "releases"],
    "description": "OCDS 1.1 发布数据包（release package），含投标扩展；开标前不含投标信息。",
    "externalDocs": {"url": "https://standard.open-contracting.org/1.1/en/schema/release_package/"},
    "properties": {"uri": STRING, "version": {"type": "string", "enum": ["1.1"]},
                   "publishedDate": {"type": "string", "format": "date-time"},
                   "publisher": {"type": "object", "properties": {"name": STRING}},
                   "extensions": {"type": "array", "items": STRING},
                   "releases": {"type": "array", "minItems": 1, "items": {"type": "object"}}}})

PLAN_LIST = schema("PlanList", list_schema(PLAN))
ENGAGEMENT_LIST = schema("EngagementList", list_schema(ENGAGEMENT))
BID_LIST = schema("BidList", list_schema(BID))


# --- plans -----------------------------------------------------------------------------------------

def _engagement_ref(engagement: Engagement | None) -> dict | None:
    if engagement is None:
        return None
    return {"id": engagement.id, "reference": engagement.reference, "name": engagement.name,
            "state": labeled(engagement.state)}


def plan_json(plan: EvaluationPlan, item_count: int | None = None, total: Decimal | None = None) -> dict:
    if item_count is None:
        item_count, total = len(plan.items), plan.total_amount
    return {
        "id": plan.id, "year": plan.year, "bureau": bureau_ref(plan.bureau), "status": labeled(plan.status),
        "item_count": item_count, **_money("total_amount", total or Decimal("0")),
        "note": plan.note, "approved_at": datetime_str(plan.approved_at), "created_at": datetime_str(plan.created_at),
        "approval_warnings": plan.approval_warnings or [], "approval_reason": plan.approval_reason,
    }


def plan_item_json(item: PlanItem) -> dict:
    return {
        "id": item.id, "plan_id": item.plan_id, "position": item.position, "name": item.name,
        "object_type": labeled(item.object_type), "budget_kind": labeled(item.budget_kind),
        "field": labeled(item.field), "service_kind": labeled(item.service_kind),
        **_money("amount", item.amount),
        "budget_unit": _unit_ref(item.budget_unit), "commissioner_unit": _unit_ref(item.commissioner_unit),
        "commissioner_name": item.commissioner_name, "reason": item.reason,
        "engagement": _engagement_ref(item.engagement),
    }


def plan_detail_json(plan: EvaluationPlan, user: User) -> dict:
    draft = plan.status == PlanStatus.DRAFT
    items = services.plan_items(plan)
    return {
        **plan_json(plan),
        "approved_by": plan.approved_by.username if plan.approved_by else None,
        "items": [plan_item_json(i) for i in items],
        "checks": [{"level": c.level, "message": c.message} for c in services.plan_checks(plan)],
        "may_edit": draft and permissions.can(user, "plan.edit", plan),
        "may_approve": draft and permissions.can(user, "plan.approve", plan),
    }


def _visible_plan(plan_id: int) -> EvaluationPlan:
    return visible(EvaluationPlan, plan_id, "plan.view", "未找到该年度评价计划。")


@operation("/plans", "GET", summary="年度重点绩效评价计划列表（按当前用户可见范围）", tag=TAG_PLANS, response=PLAN_LIST,
           params=[YEAR_QUERY, query("bureau", "编制计划的财政局的行政区划代码"),
                   choice_query("status", PlanStatus), *PAGE_PARAMS],
           errors=(400, 403, 422))
def list_plans():
    user = api_user()
    permissions.require(user, "plan.list")
    return list_response(lambda: scoped(EvaluationPlan, user=user).join(Bureau, Bureau.id == EvaluationPlan.bureau_id),
                         year_filter(EvaluationPlan.year), bureau_filter(EvaluationPlan.bureau_id),
                         enum_filter("status", PlanStatus, EvaluationPlan.status),
                         options=[selectinload(EvaluationPlan.bureau)],
                         order_by=[EvaluationPlan.year.desc(), Bureau.path, EvaluationPlan.id], items=_plans_json,
                         keep="api.plans")


def _plans_json(plans: list[EvaluationPlan]) -> list[dict]:
    """A page of plans with their item counts and sums in one query."""
    rows = db.session.execute(
        sa.select(PlanItem.plan_id, sa.func.count(PlanItem.id), sa.func.sum(PlanItem.amount))
        .where(PlanItem.plan_id.in_([p.id for p in plans] or [-1])).group_by(PlanItem.plan_id))
    sums = {plan_id: (count, Decimal(str(amount or 0))) for plan_id, count, amount in rows}
    return [plan_json(p, *sums.get(p.id, (0, Decimal("0")))) for p in plans]


@operation("/plans", "POST", summary="编制（或取得）本局某年度的评价计划", tag=TAG_PLANS, response=PLAN_DETAIL,
           status=201, also=(200,), body=PLAN_REQUEST, errors=(400, 403, 409, 422))
def create_plan():
    user = api_user()
    if user.bureau is None:
        raise PermissionDenied("只有财政局用户可以编制年度评价计划（计划属于本局）。")
    data = json_body()
    year = _integer_value(data.get("year"))
    if year is None:
        raise ValidationFailed("请填写年度（整数）。", {"year": "必须是整数"})
    # 201 only for the request that created it; simultaneous twins get the same plan with 200.
    plan, created = services.ensure_plan(user.bureau, year, user)
    db.session.commit()
    return jsonify(plan_detail_json(plan, user)), 201 if created else 200


@operation("/plans/<int:plan_id>", "GET", summary="计划详情：评价对象和计划核对结果", tag=TAG_PLANS,
           response=PLAN_DETAIL, errors=(404,))
def get_plan(plan_id: int):
    return jsonify(plan_detail_json(_visible_plan(plan_id), api_user()))


@operation("/plans/<int:plan_id>/items", "POST", summary="向编制中的计划增加评价对象（金额以万元填写）", tag=TAG_PLANS,
           response=PLAN_ITEM, status=201, body=PLAN_ITEM_INPUT, errors=(400, 403, 404, 409, 422))
def create_plan_item(plan_id: int):
    user = api_user()
    plan = _visible_plan(plan_id)
    permissions.require(user, "plan.edit", plan)
    data = json_body()
    errors: dict[str, str] = {}
    text = {name: text_field(data, name, errors)
            for name in ("name", "object_type", "budget_kind", "field", "service_kind", "reason")}
    item_input = services.PlanItemInput(
        name=text["name"] or "", object_type=text["object_type"] or "", budget_kind=text["budget_kind"] or "",
        field=text["field"] or "", service_kind=text["service_kind"] or None, reason=text["reason"] or "",
        amount_wan=_number_or_text(data, "amount_wan", errors),
        budget_unit_id=_optional_id(data, "budget_unit_id", errors),
        commissioner_unit_id=_optional_id(data, "commissioner_unit_id", errors))
    if plan.status != PlanStatus.DRAFT:
        raise Conflict(f"{plan.year} 年度计划已批准，不能再修改评价对象。")
    values = None
    try:
        values = services.clean_plan_item(plan, item_input)
    except ValidationFailed as exc:
        errors = {**exc.fields, **errors}  # our type errors say more than "请填写…"
    raise_if(errors)
    item = services.add_plan_item(plan, item_input, user, values=values)
    db.session.commit()
    return jsonify(plan_item_json(item)), 201


@operation("/plans/<int:plan_id>/approve", "POST", summary="批准计划：每个评价对象成为“已列入计划”的评价任务",
           tag=TAG_PLANS, response=PLAN_DETAIL, body=APPROVE_REQUEST, errors=(400, 403, 404, 409, 422))
def approve_plan(plan_id: int):
    user = api_user()
    plan = _visible_plan(plan_id)
    data = json_body()
    errors: dict[str, str] = {}
    reason = text_field(data, "warnings_reason", errors)
    raise_if(errors)
    services.approve_plan(plan, user, warnings_reason=reason)
    db.session.commit()
    return jsonify(plan_detail_json(plan, user))


# --- engagements -----------------------------------------------------------------------------------

def _firm_ref(firm) -> dict | None:
    return {"id": firm.id, "name": firm.name, "uscc": firm.uscc} if firm is not None else None


def _engagement_fields(e: Any, bureau: Any, unit: dict, commissioner_name: str, firm: dict | None,
                       overdue: str | None) -> dict:
    """The JSON of one engagement (``ENGAGEMENT``): ``e`` an engagement or a row of its columns, with what it
    names read by the caller (the detail from the ORM, the list from its row)."""
    return {
        "id": e.id, "reference": e.reference, "name": e.name, "year": e.year, "bureau": bureau_ref(bureau),
        "state": labeled(e.state), "state_changed_at": datetime_str(e.state_changed_at),
        "service_kind": labeled(e.service_kind), "field": labeled(e.field), **_money("amount", e.amount),
        "budget_unit": unit, "commissioner_name": commissioner_name, "firm": firm, "overdue_reason": overdue,
    }


def engagement_json(engagement: Engagement) -> dict:
    return _engagement_fields(engagement, engagement.bureau, _unit_ref(engagement.budget_unit),
                              engagement.commissioner_name, _firm_ref(engagement.firm),
                              workflow.overdue_reason(engagement))


def _engagement_list_columns() -> sa.Select:
    """What the list shows of each engagement, as plain columns; its unit's, firm's and commissioning unit's
    names as scalar subqueries rather than joined objects: joined, PostgreSQL planned the page at every request
    for longer than it ran it (巴州's admin at province scale, in psql: 0.55 ms planning, 0.2 ms running)."""
    return sa.select(
        Engagement.id, Engagement.reference, Engagement.name, Engagement.year, Engagement.bureau_id,
        Engagement.state, Engagement.state_changed_at, Engagement.service_kind, Engagement.field, Engagement.amount,
        Engagement.due_on, Engagement.budget_unit_id, Engagement.firm_id,
        looked_up(BudgetUnit.name, Engagement.budget_unit_id).label("unit_name"),
        looked_up(BudgetUnit.name, Engagement.commissioner_unit_id).label("commissioner_unit_name"),
        looked_up(Firm.name, Engagement.firm_id).label("firm_name"),
        looked_up(Firm.uscc, Engagement.firm_id).label("firm_uscc"))


def _engagement_rows_json(rows: list) -> list[dict]:
    """``_engagement_fields`` of each row of ``_engagement_list_columns``. The bureaus are the tree the token's
    bureau user already holds; a firm's token holds none, so its page's few bureaus are read in one statement."""
    bureaus = dict(bureau_tree.held())
    missing = {r.bureau_id for r in rows} - bureaus.keys()
    if missing:
        bureaus.update((b.id, b) for b in db.session.execute(
            sa.select(Bureau.id, Bureau.code, Bureau.name, Bureau.short_name).where(Bureau.id.in_(missing))))
    overdue = workflow.overdue_reasons(rows)
    return [_engagement_fields(
        r, bureaus[r.bureau_id], {"id": r.budget_unit_id, "name": r.unit_name},
        r.commissioner_unit_name or bureaus[r.bureau_id].name,
        {"id": r.firm_id, "name": r.firm_name, "uscc": r.firm_uscc} if r.firm_id is not None else None,
        overdue.get(r.id)) for r in rows]


def _actor_json(actor: User | None, viewer: User) -> dict | None:
    if actor is None:
        return None
    if actor.role in permissions.BUREAU_ROLES:
        organisation = actor.bureau.name if actor.bureau else None
    elif actor.role == Role.FIRM_USER:
        organisation = actor.firm.name if actor.firm else None
    else:
        organisation = None  # experts belong to no organisation we disclose; the system admin is the platform
    if viewer.role == Role.FIRM_USER:
        # A firm learns which role and which organisation acted, never who (and never which expert).
        return {"username": None, "display_name": None, "role": labeled(actor.role), "organisation": organisation}
    return {"username": actor.username, "display_name": actor.display_name, "role": labeled(actor.role),
            "organisation": organisation}


def _transition_json(row: EngagementTransition, viewer: User) -> dict:
    declared = workflow.TRANSITIONS.get(row.action)
    return {"id": row.id, "action": row.action, "label": declared.label if declared else row.action,
            "from": labeled(row.from_state), "to": labeled(row.to_state), "note": row.note,
            "actor": _actor_json(row.actor, viewer), "at": datetime_str(row.created_at)}


def _available_actions(engagement: Engagement, user: User) -> list[dict]:
    out = []
    for t in workflow.available(engagement, user):
        if t.action in SERVICE_ACTIONS:
            continue
        # as the state machine tells this user (a case of a bureau above stays that bureau's)
        unmet = [u.problem for u in workflow.unmet(engagement, t.action, reader=user)]
        out.append({"action": t.action, "label": t.label, "to": labeled(t.target), "needs_note": t.needs_note,
                    "unmet": "；".join(unmet) or None})
    return out


def _contract_json(engagement: Engagement) -> dict | None:
    c = engagement.contract
    if c is None:
        return None
    return {"id": c.id, "firm": _firm_ref(c.firm), **_money("amount", c.amount), "signed_on": date_str(c.signed_on),
            "start_date": date_str(c.start_date), "end_date": date_str(c.end_date), "plan_due": date_str(c.plan_due),
            "report_due": date_str(c.report_due), "deliverables": c.deliverables, "notice_due_on": date_str(c.notice_due_on)}


def engagement_detail_json(engagement: Engagement, user: User) -> dict:
    return {
        **engagement_json(engagement),
        "plan_id": engagement.plan_item.plan_id, "plan_item_id": engagement.plan_item_id,
        "commissioner_unit": _unit_ref(engagement.commissioner_unit),
        "contract": _contract_json(engagement),
        "procurements": [{"id": p.id, "title": p.title, "method": labeled(p.method), "status": labeled(p.status)}
                         for p in engagement.procurements if permissions.can(user, "procurement.view", p)],
        "timeline": [_transition_json(t, user) for t in engagement.transitions],
        "available_actions": _available_actions(engagement, user),
    }


def _visible_engagement(engagement_id: int) -> Engagement:
    return visible(Engagement, engagement_id, "engagement.view", "未找到该评价任务。")


@operation("/engagements", "GET", summary="评价任务列表（财政局按可见范围；第三方机构只看到本机构承担的任务）",
           tag=TAG_ENGAGEMENTS, response=ENGAGEMENT_LIST,
           params=[YEAR_QUERY, choice_query("state", EngagementState),
                   query("bureau", "所属财政局的行政区划代码"), query("q", "按任务名称或编号模糊查找"), *PAGE_PARAMS],
           errors=(400, 403, 422))
def list_engagements():
    user = api_user()
    permissions.require(user, "engagement.list")
    return list_response(lambda: scoped(Engagement, _engagement_list_columns(), user=user),
                         year_filter(Engagement.year),
                         enum_filter("state", EngagementState, Engagement.state), bureau_filter(Engagement.bureau_id),
                         text_filter("q", Engagement.name, Engagement.reference, ignore_case=True),
                         order_by=[Engagement.year.desc(), Engagement.reference, Engagement.id],
                         items=_engagement_rows_json, rows=True,
                         # unfiltered: the total kept on write
                         total=lambda listed: counts.list_total(user, listed), keep="api.engagements")


@operation("/engagements/<int:engagement_id>", "GET", summary="评价任务详情：时间线、合同、逾期情况、可执行的操作",
           tag=TAG_ENGAGEMENTS, response=ENGAGEMENT_DETAIL, errors=(404,))
def get_engagement(engagement_id: int):
    return jsonify(engagement_detail_json(_visible_engagement(engagement_id), api_user()))


@operation("/engagements/<int:engagement_id>/transitions", "POST", summary="按状态机变更评价任务状态",
           tag=TAG_ENGAGEMENTS, response=ENGAGEMENT_DETAIL, body=TRANSITION_REQUEST,
           errors=(400, 403, 404, 409, 422))
def create_transition(engagement_id: int):
    user = api_user()
    engagement = _visible_engagement(engagement_id)
    _, errors, body = read_body("action", "note")
    action, note = body["action"], body["note"]
    if not (action or "").strip() and "action" not in errors:
        errors["action"] = "请填写 action（见 available_actions）"
    raise_if(errors)
    action = action.strip()
    if action in SERVICE_ACTIONS:
        raise Conflict(f"“{workflow.TRANSITIONS[action].label}”由“{SERVICE_ACTIONS[action]}”办理时自动完成，"
                       "不能直接变更状态。")
    workflow.perform(engagement, action, user, note=note)
    db.session.commit()
    return jsonify(engagement_detail_json(engagement, user))


# --- procurements and bids -------------------------------------------------------------------------

def bid_json(bid: Bid) -> dict:
    procurement = bid.procurement
    stored = bid.technical_file
    return {
        "id": bid.id, "procurement_id": bid.procurement_id, "firm": _firm_ref(bid.firm),
        **_money("price", bid.price), "status": labeled(bid.status),
        "submitted_at": datetime_str(bid.submitted_at), "updated_at": datetime_str(bid.updated_at),
        "withdrawn_at": datetime_str(bid.withdrawn_at), "invalid_reason": bid.invalid_reason,
        # The low-bid line is computed from every bid's price: before opening it would unseal them.
        "needs_justification": services.needs_justification(bid) if procurement.opened_at is not None else None,
        "low_price_explanation": bid.low_price_explanation,
        "justification_decision": labeled(bid.justification_decision),
        "technical_file": {"id": stored.id, "name": stored.original_name, "kind": stored.kind, "size": stored.size,
                           "sha256": stored.sha256} if stored is not None else None,
        "team": [{"staff_id": m.staff_id, "name": m.staff.name, "role": labeled(m.staff.role), "is_lead": m.is_lead}
                 for m in sorted(bid.team, key=lambda m: (not m.is_lead, m.staff_id))],
    }


def _visible_bids_stmt(procurement: Procurement) -> sa.Select:
    """The procurement's bids that the token user may read: the sealed-bid rule lives in the Bid scope."""
    stmt = permissions.scope(api_user(), sa.select(Bid), Bid).where(Bid.procurement_id == procurement.id)
    return stmt.options(selectinload(Bid.firm), selectinload(Bid.technical_file),
                        selectinload(Bid.team)).order_by(Bid.id)


def procurement_json(procurement: Procurement) -> dict:
    engagement = procurement.engagement
    award = procurement.award
    bids = db.session.execute(_visible_bids_stmt(procurement)).scalars().all()
    return {
        "id": procurement.id, "title": procurement.title, "description": procurement.description,
        "engagement": {"id": engagement.id, "reference": engagement.reference, "name": engagement.name,
                       "year": engagement.year, "field": labeled(engagement.field)},
        "bureau": bureau_ref(procurement.bureau), "method": labeled(procurement.method),
        "status": labeled(procurement.status), **_money("ceiling_price", procurement.ceiling_price),
        "price_weight": number(procurement.price_weight), "low_bid_ratio": number(procurement.low_bid_ratio),
        "bid_deadline": datetime_str(procurement.bid_deadline), "opened_at": datetime_str(procurement.opened_at),
        "failure_reason": procurement.failure_reason, "rerun_reason": procurement.rerun_reason,
        "justification": procurement.justification, "single_source_firm": _firm_ref(procurement.single_source_firm),
        "previous_id": procurement.previous_id, "created_at": datetime_str(procurement.created_at),
        "rubric": [{"id": r.id, "position": r.position, "name": r.name, "max_points": number(r.max_points)}
                   for r in procurement.rubric],
        "award": {"id": award.id, "firm": _firm_ref(award.firm), **_money("amount", award.amount),
                  "score": number(award.score), "reasons": services.award_reasons_for(award, api_user()), "notice": award.notice,
                  "awarded_at": datetime_str(award.awarded_at)} if award is not None else None,
        "notices": [notice_json(n) for n in procurement.notices],
        "contract_block": services.contract_block(procurement) if award is not None else None,
        "period_problem": media.procurement_period_problem(procurement) if api_user().role in BUREAU_SIDE else None,
        "bids": [bid_json(b) for b in bids],
    }


def notice_json(notice: ResultNotice) -> dict:
    return {"id": notice.id, "text": notice.text, "firm": _firm_ref(notice.firm), **_money("amount", notice.amount),
            "published_at": datetime_str(notice.published_at), "challenge_until": date_str(notice.challenge_until),
            "revoked_at": datetime_str(notice.revoked_at), "revoked_reason": notice.revoked_reason}


def challenge_json(c: Challenge, complaint_until: date | None = None) -> dict:
    """A challenge; ``complaint_until`` as a list read it for all its challenges (``services.complaint_dates``)."""
    return {"id": c.id, "procurement_id": c.procurement_id, "notice_id": c.notice_id, "firm": _firm_ref(c.firm),
            "grounds": c.grounds, "evidence": [{"id": e.file_id, "name": e.file.original_name} for e in c.evidence],
            "filed_at": datetime_str(c.filed_at), "answer_due": date_str(c.answer_due), "status": labeled(c.status),
            "remedy": labeled(c.remedy), "answer": c.answer, "answered_at": datetime_str(c.answered_at),
            "complaint_until": date_str(complaint_until or services.complaint_until(c))}


def _visible_procurement(procurement_id: int) -> Procurement:
    return visible(Procurement, procurement_id, "procurement.view", "未找到该采购项目。")


@operation("/procurements/<int:procurement_id>", "GET", summary="采购项目详情：方式、状态、截止时间、评分项、成交结果和可见的投标",
           tag=TAG_PROCUREMENTS, response=PROCUREMENT, errors=(404,))
def get_procurement(procurement_id: int):
    return jsonify(procurement_json(_visible_procurement(procurement_id)))


@operation("/procurements/<int:procurement_id>/bids", "GET",
           summary="采购项目的投标（密封：机构只看到本机构的投标，财政局开标后才看到）", tag=TAG_PROCUREMENTS,
           response=BID_LIST, params=PAGE_PARAMS, errors=(400, 404))
def list_bids(procurement_id: int):
    procurement = _visible_procurement(procurement_id)
    return list_response(_visible_bids_stmt(procurement), item=bid_json)


DEADLINE_FORMAT = "请填写带时区的投标截止时间（ISO 8601，例如 2025-03-17T10:00:00+08:00）"


def _deadline(data: dict, errors: dict[str, str]) -> datetime | None:
    """The body's ``bid_deadline`` (required here): an ISO 8601 time with its offset → naive UTC, as stored."""
    at = utc_datetime(data, "bid_deadline", errors, DEADLINE_FORMAT)
    if at is None and "bid_deadline" not in errors:
        errors["bid_deadline"] = DEADLINE_FORMAT
    return at


@operation("/procurements/<int:procurement_id>/deadline", "POST",
           summary="变更投标截止时间（投标截止前；或等标期自采购公告在指定媒体发布之日起算不足、尚不能开标时延长）",
           tag=TAG_PROCUREMENTS, response=PROCUREMENT, body=DEADLINE_CHANGE, errors=(400, 403, 404, 409, 422))
def change_procurement_deadline(procurement_id: int):
    """The same service as the procurement page's form (``services.change_deadline``): the purchasing bureau only."""
    procurement = _visible_procurement(procurement_id)
    # a bidder sees the procurement: refused as the service would refuse it, before its body is read (not a 422)
    permissions.require(api_user(), "procurement.manage", procurement.engagement)
    data, errors, body = read_body("reason")
    deadline = _deadline(data, errors)
    raise_if(errors)
    services.change_deadline(procurement, deadline, api_user(), body["reason"] or "")
    db.session.commit()
    return jsonify(procurement_json(procurement))


# --- challenges (质疑) -------------------------------------------------------------------------------

def _visible_challenges(procurement: Procurement) -> list[Challenge]:
    rows = db.session.execute(sa.select(Challenge).where(Challenge.procurement_id == procurement.id)
                              .options(joinedload(Challenge.firm),
                                       selectinload(Challenge.evidence).joinedload(ChallengeEvidence.file))
                              .order_by(Challenge.id)).scalars().all()
    return [c for c in rows if permissions.can(api_user(), "challenge.view", c)]


@operation("/procurements/<int:procurement_id>/challenges", "GET",
           summary="采购项目的质疑（财政局看全部，机构只看本机构的）", tag=TAG_PROCUREMENTS,
           response=CHALLENGE_LIST, errors=(404,))
def list_challenges(procurement_id: int):
    challenges = _visible_challenges(_visible_procurement(procurement_id))
    until = services.complaint_dates(challenges)
    return jsonify([challenge_json(c, until[c.id]) for c in challenges])


@operation("/procurements/<int:procurement_id>/challenges", "POST",
           summary="参与采购的机构在质疑期内对结果提出质疑（附证明材料）", tag=TAG_PROCUREMENTS,
           response=CHALLENGE, status=201, body=CHALLENGE_REQUEST, errors=(400, 403, 404, 409, 422))
def create_challenge(procurement_id: int):
    import base64
    import binascii

    user = api_user()
    procurement = _visible_procurement(procurement_id)
    data, errors, body = read_body("grounds")
    evidence = []
    items = data.get("evidence")
    if not isinstance(items, list):
        errors["evidence"] = "请上传证明材料"
    else:
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                    or not isinstance(item.get("content_base64"), str):
                errors["evidence"] = "每份证明材料须有 name 和 content_base64"
                break
            try:
                evidence.append((item["name"], base64.b64decode(item["content_base64"], validate=True)))
            except (binascii.Error, ValueError):
                errors["evidence"] = f"“{item['name']}”的内容不是有效的 Base64"
                break
    raise_if(errors)
    challenge = services.file_challenge(procurement, user, body["grounds"] or "", evidence)
    db.session.commit()
    return jsonify(challenge_json(challenge)), 201


@operation("/challenges/<int:challenge_id>/answer", "POST",
           summary="采购财政局答复质疑：驳回，或成立并重新评审/重新采购", tag=TAG_PROCUREMENTS,
           response=CHALLENGE, body=CHALLENGE_ANSWER, errors=(400, 403, 404, 409, 422))
def answer_challenge(challenge_id: int):
    user = api_user()
    challenge = visible(Challenge, challenge_id, "challenge.view", "未找到该质疑。")
    _, errors, body = read_body("outcome", "answer", "remedy")
    raise_if(errors)
    services.answer_challenge(challenge, user, body["outcome"] or "", body["answer"] or "", body["remedy"])
    db.session.commit()
    return jsonify(challenge_json(challenge))


# --- OCDS ------------------------------------------------------------------------------------------

def _require_bureau_reader(visible_row: bool) -> None:
    """OCDS packages carry every opened bid: only bureau users who see the row itself read them."""
    if not visible_row:
        raise PermissionDenied("OCDS 数据由财政局导出；第三方机构请查看本机构的投标。")


@operation("/procurements/<int:procurement_id>/ocds", "GET", summary="采购项目的 OCDS 1.1 发布数据包",
           tag=TAG_PROCUREMENTS, response=OCDS_PACKAGE, errors=(403, 404))
def procurement_ocds(procurement_id: int):
    procurement = _visible_procurement(procurement_id)
    _require_bureau_reader(permissions.visible(api_user(), procurement))
    return jsonify(ocds.package([procurement], uri=request.url, publisher=procurement.bureau.name))


@operation("/plans/<int:plan_id>/ocds", "GET", summary="年度计划全部采购项目的 OCDS 1.1 发布数据包",
           tag=TAG_PLANS, response=OCDS_PACKAGE, errors=(404, 409))
def plan_ocds(plan_id: int):
    plan = _visible_plan(plan_id)
    procurements = ocds.plan_procurements(plan)
    if not procurements:
        raise Conflict(f"{plan.bureau.short_name} {plan.year} 年度计划尚未发起任何采购，无法生成 OCDS 数据包"
                       "（数据包至少须包含 1 个发布）。")
    return jsonify(ocds.package(procurements, uri=request.url, publisher=plan.bureau.name))


from evalhub.procurement import team_api  # noqa: E402,F401  (主评人及团队、人员记分, issue 14)
from evalhub.procurement import contract_notice_api  # noqa: E402,F401  (合同公告, 政府采购法实施条例 第五十条)
from evalhub.procurement import media_api  # noqa: E402,F401  (指定媒体发布, 政府采购法 第十一条)
from evalhub.procurement import amendment_api  # noqa: E402,F401  (澄清/更正公告, 财政部令第87号 第二十七条)
