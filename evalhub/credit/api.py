"""Credit rating API: the annual ratings with their components, objections and answers, and the public list
of final ratings, under /api/v1.

Same rules as the other domain APIs: rows are narrowed with ``permissions.scope`` (a single record the user
may not see is 404), the rules live in ``credit.services``, and domain errors become the one error shape.
Who sees what:

- bureau users see the ratings of their bureau and the bureaus below it; the rating bureau's admins
  answer objections (``credit.manage``);
- a firm user sees its own firm's ratings once they are published (a draft is the bureau's working copy
  until ``publish``), objects to a published one within the objection period, and never sees who
  answered;
- everyone, without a token, sees FINAL ratings (year, bureau, firm, grade, total).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import jsonify
from sqlalchemy.orm import selectinload

from evalhub.core.api import api_user, json_body, list_schema, operation, schema
from evalhub.core.apiutil import (
    BOOLEAN, BUREAU_REF, INTEGER, NULLABLE_DATETIME, NULLABLE_NUMBER, NULLABLE_STRING, NUMBER, PAGE_PARAMS, STRING,
    YEAR_QUERY, bureau_ref, choice, choice_query, date_str, datetime_str, labeled, labeled_schema, list_response,
    nullable, number, query, raise_if, read_body, text, text_field,
)
from evalhub.core import permissions
from evalhub.core.enums import Role
from evalhub.core.errors import NotFound, PermissionDenied
from evalhub.core.listing import Listing, bureau_filter, enum_filter, year_filter
from evalhub.core.models import StoredFile, User
from evalhub.core.timeutil import beijing_today
from evalhub.credit import services
from evalhub.credit.models import CreditGrade, CreditObjection, CreditRating, ObjectionDecision, RatingStatus
from evalhub.extensions import db
from evalhub.registry.forms import firm_name_filter
from evalhub.registry.models import Firm

TAG_CREDIT = "信用评价"
TAG_PUBLIC = "信息公开"

# --- schemas ---------------------------------------------------------------------------------------

CREDIT_GRADE = labeled_schema(CreditGrade)
RATING_STATUS = labeled_schema(RatingStatus)
OBJECTION_DECISION = labeled_schema(ObjectionDecision)

RATED_FIRM_REF = schema("RatedFirmRef", {"type": "object", "required": ["id", "name"], "properties": {
    "id": INTEGER, "name": STRING, "uscc": {"type": "string", "description": "统一社会信用代码"}}})

RATING = schema("CreditRating", {"type": "object", "required": [
    "id", "year", "bureau", "firm", "status", "rated", "total", "grade"], "properties": {
    "id": INTEGER, "year": INTEGER, "bureau": BUREAU_REF, "firm": RATED_FIRM_REF, "status": RATING_STATUS,
    "rated": {"type": "boolean", "description": "false：本年度没有已完成的评价任务，不予评级"},
    "total": {"type": "number", "nullable": True, "description": "总分（0–100）；不予评级时为空"},
    "grade": nullable(CREDIT_GRADE),
    "watch_list": {"type": "boolean", "description": "是否列入重点关注名单（检查发现故意违规）"},
    "watch_reason": NULLABLE_STRING,
    "version": {"type": "integer", "description": "第几次计算"},
    "computed_at": NULLABLE_DATETIME, "published_at": NULLABLE_DATETIME,
    "objection_deadline": {"type": "string", "format": "date", "nullable": True,
                           "description": "异议截止日（含当日；按工作日计算）"},
    "finalised_at": NULLABLE_DATETIME,
    "objections_open": {"type": "integer", "description": "未答复的异议数"}}})
RATING_LIST = schema("CreditRatingList", list_schema(RATING))

RATING_RECORD = schema("CreditRecordRef", {"type": "object", "required": ["type", "id", "label"], "properties": {
    "type": {"type": "string", "description": "panel（评审组）、engagement（评价任务）、complaint（投诉）、"
                                              "inspection（检查）、external（外部信用记录）"},
    "id": {"type": "integer", "nullable": True,
           "description": "记录编号；被评价机构看到的投诉记录为空（投诉编号和内容依规保密）"}, "label": STRING,
    "ref": {"type": "string", "description": "异议可以指明的记录（如 submission:12 逾期提交、finding:3 检查发现的问题、"
                                             "external:5 外部信用记录）；提出异议时放入 records"}}})

RATING_COMPONENT = schema("CreditComponent", {"type": "object", "required": [
    "code", "label", "max", "points", "detail", "records"], "properties": {
    "code": {"type": "string", "description": "quality、performance、feedback、supervision、external"},
    "label": STRING, "max": {"type": "number", "description": "该项满分（权重）"}, "points": NUMBER,
    "detail": {"type": "array", "items": STRING, "description": "计分依据说明"},
    "records": {"type": "array", "items": RATING_RECORD, "description": "计分所依据的记录"},
    "previous_points": {"type": "number", "nullable": True, "description": "上一年度同项得分"}}})

EVIDENCE_FILE = schema("ObjectionEvidence", {"type": "object", "required": ["id", "name"], "properties": {
    "id": INTEGER, "name": STRING, "size": INTEGER, "sha256": STRING}})

OBJECTION = schema("CreditObjection", {"type": "object", "required": [
    "id", "rating_id", "text", "submitted_at", "answer_due", "decision", "answer"], "properties": {
    "id": INTEGER, "rating_id": INTEGER, "text": STRING,
    "evidence": {"type": "array", "items": EVIDENCE_FILE},
    "submitted_at": {"type": "string", "format": "date-time"},
    "answer_due": {"type": "string", "format": "date", "description": "答复期限（工作日）"},
    "decision": nullable(OBJECTION_DECISION), "answer": NULLABLE_STRING, "answered_at": NULLABLE_DATETIME,
    "answered_by": {"type": "object", "nullable": True, "description": "仅财政局用户可见",
                    "properties": {"id": INTEGER, "name": STRING}},
    "component": {"type": "string", "nullable": True, "description": "异议针对的评分项代码（为空：针对评价整体）"},
    "contested": {"type": "array", "items": {"type": "object", "properties": {"ref": STRING, "label": STRING}},
                  "description": "异议指明的记录"},
    "corrections": {"type": "array", "description": "异议成立时逐条更正的记录（原始记录保留不变）", "items": {
        "type": "object", "properties": {"ref": STRING, "label": STRING, "original": STRING, "corrected": STRING,
                                         "evidence": {"type": "object", "properties": {"id": INTEGER, "name": STRING}}}}},
    "total_before": {"type": "number", "nullable": True, "description": "答复时重新计算前的总分"},
    "total_after": {"type": "number", "nullable": True, "description": "答复时重新计算后的总分"},
    "grade_before": nullable(CREDIT_GRADE), "grade_after": nullable(CREDIT_GRADE)}})

PREVIOUS_RATING = schema("PreviousCreditRating", {"type": "object", "required": ["id", "year", "status", "total", "grade"],
                                                  "properties": {
    "id": INTEGER, "year": INTEGER, "status": RATING_STATUS, "rated": BOOLEAN, "total": NULLABLE_NUMBER,
    "grade": nullable(CREDIT_GRADE)}})

RATING_CHANGE = schema("CreditRatingChange", {"type": "object", "required": ["total", "grade"], "properties": {
    "total": {"type": "number", "nullable": True, "description": "总分较上一年度的变化"},
    "grade": {"type": "string", "nullable": True, "enum": ["up", "down", "same", None],
              "description": "等级较上一年度：up（上升）、down（下降）、same（不变）；无法比较时为空"}}})

RATING_DETAIL = schema("CreditRatingDetail", {"allOf": [RATING, {"type": "object", "required": [
    "components", "objections", "previous", "change"], "properties": {
    "components": {"type": "array", "items": RATING_COMPONENT},
    "objections": {"type": "array", "items": OBJECTION},
    "previous": {"allOf": [PREVIOUS_RATING], "nullable": True,
                 "description": "同一财政局对该机构上一年度的评价（无则为空）"},
    "change": RATING_CHANGE,
    "can_object": {"type": "boolean", "description": "令牌用户现在是否可以对此结果提出异议"}}}]})

OBJECTION_REQUEST = schema("CreditObjectionRequest", {"type": "object", "required": ["text"], "properties": {
    "text": text(5000, "异议的事实和理由（不少于 10 字）"),
    "component": {"type": "string", "maxLength": 20, "nullable": True,
                  "description": "异议针对的评分项代码（见评价结果 components[].code）"},
    "records": {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 40},
                "description": "有异议的记录（该评分项 records[].ref），财政部门逐条核实更正"}}})

ANSWER_REQUEST = schema("CreditObjectionAnswer", {"type": "object", "required": ["decision", "answer"], "properties": {
    "decision": choice(ObjectionDecision), "answer": text(5000, "答复意见（不少于 10 字）"),
    "recompute": {"type": "boolean", "default": False,
                  "description": "异议成立但未指明记录时：按现有记录重新计算该机构的评价（只重算该机构）"},
    "corrections": {"type": "object", "maxProperties": 50,
                    "additionalProperties": {"type": "string", "maxLength": 20},
                    "description": "异议成立时每条被指明记录的核实结果：submission 记录为实际提交日期（YYYY-MM-DD）；"
                                   "其他记录成立即不计入。证明材料采用机构提交的材料"}}})

PUBLIC_RATING = schema("PublicCreditRating", {"type": "object", "required": ["year", "bureau", "firm", "grade", "total"],
                                              "properties": {
    "year": INTEGER,
    "bureau": {"type": "object", "properties": {"code": STRING, "name": STRING, "short_name": STRING}},
    "firm": {"type": "object", "properties": {"name": STRING, "uscc": {"type": "string", "description": "统一社会信用代码"}}},
    "grade": CREDIT_GRADE, "total": NUMBER, "finalised_at": NULLABLE_DATETIME}})
PUBLIC_RATING_LIST = schema("PublicCreditRatingList", list_schema(PUBLIC_RATING))


# --- serialisation ---------------------------------------------------------------------------------

def _firm_ref(firm: Firm) -> dict:
    return {"id": firm.id, "name": firm.name, "uscc": firm.uscc}


def _bureau_side(user: User) -> bool:
    return user.role != Role.FIRM_USER


def rating_json(rating: CreditRating) -> dict:
    return {
        "id": rating.id, "year": rating.year, "bureau": bureau_ref(rating.bureau), "firm": _firm_ref(rating.firm),
        "status": labeled(rating.status), "rated": rating.rated, "total": number(rating.total),
        "grade": labeled(rating.grade), "watch_list": rating.watch_list, "watch_reason": rating.watch_reason,
        "version": rating.version, "computed_at": datetime_str(rating.computed_at),
        "published_at": datetime_str(rating.published_at), "objection_deadline": date_str(rating.objection_deadline),
        "finalised_at": datetime_str(rating.finalised_at),
        "objections_open": sum(1 for o in rating.objections if o.decision is None),
    }


def objection_json(objection: CreditObjection, user: User) -> dict:
    files = {f.id: f for f in db.session.execute(sa.select(StoredFile).where(
        StoredFile.id.in_(objection.evidence_file_ids or []))).scalars()} if objection.evidence_file_ids else {}
    answered_by = db.session.get(User, objection.answered_by_id) if objection.answered_by_id else None
    return {
        "id": objection.id, "rating_id": objection.rating_id, "text": objection.text,
        "evidence": [{"id": f.id, "name": f.original_name, "size": f.size, "sha256": f.sha256}
                     for f in (files.get(i) for i in objection.evidence_file_ids or []) if f is not None],
        "submitted_at": datetime_str(objection.submitted_at), "answer_due": date_str(objection.answer_due),
        "decision": labeled(objection.decision), "answer": objection.answer,
        "answered_at": datetime_str(objection.answered_at),
        "answered_by": ({"id": answered_by.id, "name": answered_by.display_name}
                        if answered_by is not None and _bureau_side(user) else None),
        "component": objection.component, "contested": list(objection.contested or []),
        "corrections": [{"ref": f"{c.record_type}:{c.record_id}", "label": c.label, "original": c.original,
                         "corrected": c.corrected, "evidence": {"id": c.evidence_file_id,
                                                                "name": c.evidence_file.original_name}}
                        for c in objection.corrections],
        "total_before": number(objection.total_before), "total_after": number(objection.total_after),
        "grade_before": labeled(objection.grade_before), "grade_after": labeled(objection.grade_after),
    }


def _previous(rating: CreditRating, user: User) -> CreditRating | None:
    """The same bureau's rating of the same firm for the year before, if the user may see it."""
    stmt = sa.select(CreditRating).where(CreditRating.bureau_id == rating.bureau_id,
                                         CreditRating.firm_id == rating.firm_id, CreditRating.year == rating.year - 1)
    return db.session.execute(_shown_to(user, stmt)).scalar_one_or_none()


_GRADE_ORDER = [CreditGrade.A, CreditGrade.B, CreditGrade.C, CreditGrade.D]


def _grade_change(now: CreditGrade | None, before: CreditGrade | None) -> str | None:
    if now is None or before is None:
        return None
    diff = _GRADE_ORDER.index(before) - _GRADE_ORDER.index(now)
    return "up" if diff > 0 else "down" if diff < 0 else "same"


def _can_object(rating: CreditRating, user: User) -> bool:
    return (user.role == Role.FIRM_USER and user.firm_id == rating.firm_id and rating.status == RatingStatus.PUBLISHED
            and rating.objection_deadline is not None and beijing_today() <= rating.objection_deadline)


def rating_detail_json(rating: CreditRating, user: User) -> dict:
    previous = _previous(rating, user)
    before = {c["code"]: c["points"] for c in (previous.components or [])} if previous is not None else {}
    components = [{
        "code": c["code"], "label": c["label"], "max": number(Decimal(c["max"])), "points": number(Decimal(c["points"])),
        "detail": list(c.get("detail") or []), "records": [services.record_shown_to(r, user) for r in c.get("records") or []],
        "previous_points": number(Decimal(before[c["code"]])) if c["code"] in before else None,
    } for c in rating.components or []]
    total_change = (number(rating.total - previous.total)
                    if previous is not None and rating.total is not None and previous.total is not None else None)
    return {
        **rating_json(rating),
        "components": components,
        "objections": [objection_json(o, user) for o in rating.objections],
        "previous": {"id": previous.id, "year": previous.year, "status": labeled(previous.status),
                     "rated": previous.rated, "total": number(previous.total), "grade": labeled(previous.grade)}
        if previous is not None else None,
        "change": {"total": total_change, "grade": _grade_change(rating.grade, previous.grade if previous else None)},
        "can_object": _can_object(rating, user),
    }


# --- finding records -------------------------------------------------------------------------------

def _shown_to(user: User, stmt: sa.Select) -> sa.Select:
    """The ratings of ``stmt`` the user may read: the row scope (for a firm, nothing before publication)."""
    return permissions.scope(user, stmt, CreditRating)


def _visible_rating(rating_id: int) -> CreditRating:
    user = api_user()
    rating = db.session.get(CreditRating, rating_id)
    if rating is None or not permissions.can(user, "credit.view", rating):
        raise NotFound("未找到该信用评价结果。")
    return rating


# Filters both rating lists take (the public one adds the firm's name).
RATING_FILTERS = (year_filter(CreditRating.year), bureau_filter(CreditRating.bureau_id),
                  enum_filter("grade", CreditGrade, CreditRating.grade))


# --- ratings ---------------------------------------------------------------------------------------

@operation("/ratings", "GET",
           summary="机构年度信用评价结果（财政局按可见范围；第三方机构只看到本机构已公示和已确定的结果）",
           tag=TAG_CREDIT, response=RATING_LIST,
           params=[YEAR_QUERY, choice_query("grade", CreditGrade),
                   choice_query("status", RatingStatus), query("bureau", "评价财政局的行政区划代码"),
                   *PAGE_PARAMS],
           errors=(400, 403, 422))
def list_ratings():
    user = api_user()
    if not permissions.can(user, "credit.list"):
        raise PermissionDenied("评审专家不能查看机构信用评价。" if user.role == Role.EXPERT else "无权查看机构信用评价。")
    return list_response(_shown_to(user, sa.select(CreditRating)), *RATING_FILTERS,
                         enum_filter("status", RatingStatus, CreditRating.status),
                         options=[selectinload(CreditRating.bureau), selectinload(CreditRating.firm),
                                  selectinload(CreditRating.objections)],
                         order_by=[CreditRating.year.desc(), CreditRating.bureau_id, CreditRating.rated.desc(),
                                   CreditRating.total.desc(), CreditRating.id], item=rating_json,
                         total=lambda listed: _kept_total(user, listed))


def _kept_total(user: User, listed: Listing) -> Any:
    """The list's total from the kept counts when nothing but the year narrows it; None (counted as before)
    with any other filter, and for a firm, whose list ``_shown_to`` narrows beyond its scope (no drafts)."""
    if user.role == Role.FIRM_USER or listed.narrowed("year"):
        return None
    return services.rating_total(user, listed["year"])


@operation("/ratings/<int:rating_id>", "GET",
           summary="一家机构一个年度的信用评价：各项得分及依据记录、异议及答复、与上一年度相比的变化",
           tag=TAG_CREDIT, response=RATING_DETAIL, errors=(404,))
def get_rating(rating_id: int):
    return jsonify(rating_detail_json(_visible_rating(rating_id), api_user()))


@operation("/ratings/<int:rating_id>/objections", "POST",
           summary="被评价机构在公示期内对评价结果提出异议（答复期限按工作日计算）",
           tag=TAG_CREDIT, response=OBJECTION, status=201, body=OBJECTION_REQUEST, errors=(400, 403, 404, 409, 422))
def create_objection(rating_id: int):
    user = api_user()
    rating = _visible_rating(rating_id)
    data, errors, body = read_body("text")
    component = text_field(data, "component", errors)
    records = data.get("records") or []
    if not isinstance(records, list) or not all(isinstance(r, str) for r in records):
        errors["records"] = "必须是字符串数组"
    raise_if(errors)
    objection = services.object_to(rating, user, body["text"] or "", component=component, records=records)
    db.session.commit()
    return jsonify(objection_json(objection, user)), 201


@operation("/objections/<int:objection_id>/answer", "POST",
           summary="评价财政局的管理员答复异议（成立或不成立），可同时重新计算；返回更新后的评价结果",
           tag=TAG_CREDIT, response=RATING_DETAIL, body=ANSWER_REQUEST, errors=(400, 403, 404, 409, 422))
def answer_objection(objection_id: int):
    user = api_user()
    objection = db.session.get(CreditObjection, objection_id)
    if objection is None or not permissions.can(user, "credit.view", objection.rating):
        raise NotFound("未找到该异议。")
    data = json_body()
    errors: dict[str, str] = {}
    decision = text_field(data, "decision", errors)
    answer = text_field(data, "answer", errors)
    recompute = data.get("recompute", False)
    if not isinstance(recompute, bool):
        errors["recompute"] = "必须是 true 或 false"
    corrections = data.get("corrections") or {}
    if not isinstance(corrections, dict) or not all(isinstance(v, str) for v in corrections.values()):
        errors["corrections"] = "必须是“记录 → 核实结果”的对象"
    raise_if(errors)
    services.answer(objection, user, decision or "", answer or "", recompute=recompute, corrections=corrections)
    db.session.commit()
    return jsonify(rating_detail_json(objection.rating, user))


# --- final ratings (no login) ----------------------------------------------------------------------

def public_rating_json(rating: CreditRating) -> dict:
    return {
        "year": rating.year,
        "bureau": {"code": rating.bureau.code, "name": rating.bureau.name, "short_name": rating.bureau.short_name},
        "firm": {"name": rating.firm.name, "uscc": rating.firm.uscc},
        "grade": labeled(rating.grade), "total": number(rating.total),
        "finalised_at": datetime_str(rating.finalised_at),
    }


@operation("/public/ratings", "GET",
           summary="已确定的机构信用评价等级（无需登录；公示中和草稿结果不在此列，不予评级的机构不列出）",
           tag=TAG_PUBLIC, response=PUBLIC_RATING_LIST, auth=False,
           params=[YEAR_QUERY, query("bureau", "评价财政局的行政区划代码"),
                   choice_query("grade", CreditGrade), query("firm", "按第三方机构名称模糊查找"),
                   *PAGE_PARAMS],
           errors=(400, 422))
def list_public_ratings():
    stmt = sa.select(CreditRating).where(CreditRating.status == RatingStatus.FINAL, CreditRating.rated.is_(True),
                                         CreditRating.grade.is_not(None))
    return list_response(stmt, *RATING_FILTERS, firm_name_filter(CreditRating.firm_id),
                         options=[selectinload(CreditRating.bureau), selectinload(CreditRating.firm)],
                         order_by=[CreditRating.year.desc(), CreditRating.bureau_id, CreditRating.total.desc(),
                                   CreditRating.id], item=public_rating_json)
