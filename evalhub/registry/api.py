"""Registry API: the firm library and the expert pool under /api/v1.

Rows are always narrowed with ``permissions.scope`` and single records checked with ``permissions.can``
(not visible → 404, so the API does not reveal what exists elsewhere); the rules themselves live in
``registry.services``. Identity numbers leave the server only in their masked form.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from evalhub.core.api import api_user, json_body, list_schema, operation, page_args, schema
from evalhub.core.apiutil import (
    BUREAU_REF, NULLABLE_DATE, NULLABLE_DATETIME, NULLABLE_STRING, PAGE_PARAMS, STRING, bureau_arg, bureau_ref,
    choice_description, date_str, datetime_str, enum_arg, labeled, labeled_schema, listing, paginate, query, raise_if,
    text_field,
)
from evalhub.core import permissions
from evalhub.core.enums import Field, Role
from evalhub.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from evalhub.core.models import Bureau, User
from evalhub.extensions import db
from evalhub.registry import services
from evalhub.registry.models import (
    Degree,
    Expert,
    ExpertStatus,
    Firm,
    FirmKind,
    FirmStaff,
    FirmStatus,
    LegalForm,
    ProfessionalTitle,
    TieKind,
    expert_field,
    firm_field,
)

TAG_FIRMS = "第三方机构库"
TAG_EXPERTS = "专家库"


# --- serialisation helpers -------------------------------------------------------------------------

def _fields_by_owner(table: sa.Table, key: str, ids: list[int]) -> dict[int, list[Field]]:
    """Fields for a page of firms or experts in one query (instead of one per row)."""
    out: dict[int, list[Field]] = {i: [] for i in ids}
    if ids:
        owner = table.c[key]
        for owner_id, f in db.session.execute(sa.select(owner, table.c.field).where(owner.in_(ids))):
            out[owner_id].append(f)
    order = list(Field)
    return {k: sorted(v, key=order.index) for k, v in out.items()}


# --- request parsing helpers -----------------------------------------------------------------------

def _iso_date(data: dict, name: str, errors: dict[str, str]) -> date | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    errors[name] = "日期格式应为 YYYY-MM-DD"
    return None


def _field_list(data: dict, errors: dict[str, str]) -> list[str]:
    value = data.get("fields")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors["fields"] = "应为业务领域（值或中文名称）的字符串数组"
        return []
    return value


def _integer(data: dict, name: str, errors: dict[str, str]) -> Any:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
        errors[name] = "必须是整数"
        return None
    return value


def _own_bureau_for_create(user: User, action: str) -> Bureau:
    """Records are entered into the token user's own bureau's library; users without one cannot."""
    if user.bureau is None:
        raise PermissionDenied("只有财政局用户可以录入（记录归属于本局）。")
    permissions.require(user, action, user.bureau)
    return user.bureau


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent request registered the same code or number between our check and our write.
        db.session.rollback()
        raise Conflict("记录已被他人同时登记，请刷新后重试。")


# --- schemas ---------------------------------------------------------------------------------------

LEGAL_FORM = labeled_schema(LegalForm)
FIRM_KIND = labeled_schema(FirmKind)
FIRM_STATUS = labeled_schema(FirmStatus)
FIELD = labeled_schema(Field)
EXPERT_STATUS = labeled_schema(ExpertStatus)
TITLE = labeled_schema(ProfessionalTitle)
DEGREE = labeled_schema(Degree)
TIE_KIND = labeled_schema(TieKind)

FIRM = schema("Firm", {"type": "object", "required": ["id", "name", "uscc", "legal_form", "kind", "status", "bureau", "fields"],
                       "properties": {
    "id": {"type": "integer"}, "name": STRING, "uscc": {"type": "string", "description": "统一社会信用代码"},
    "legal_form": LEGAL_FORM, "kind": FIRM_KIND, "status": FIRM_STATUS, "bureau": BUREAU_REF,
    "fields": {"type": "array", "items": FIELD},
    "address": STRING, "legal_representative": STRING,
    "contact_name": STRING, "contact_phone": STRING, "contact_email": NULLABLE_STRING,
    "applied_at": NULLABLE_DATETIME, "admitted_at": NULLABLE_DATETIME}})

FIRM_STATUS_CHANGE = schema("FirmStatusChange", {"type": "object", "required": ["to_status", "reason", "effective_from"], "properties": {
    "id": {"type": "integer"},
    "from_status": {"allOf": [FIRM_STATUS], "nullable": True}, "to_status": FIRM_STATUS,
    "reason": STRING, "effective_from": {"type": "string", "format": "date"}, "effective_until": NULLABLE_DATE,
    "actor": {"type": "string", "nullable": True, "description": "操作人（机构用户看不到）"},
    "created_at": NULLABLE_DATETIME}})

FIRM_DETAIL = schema("FirmDetail", {"allOf": [FIRM, {"type": "object", "properties": {
    "founded_on": NULLABLE_DATE, "description": NULLABLE_STRING,
    "declares_no_major_violation": {"type": "boolean"},
    "status_reason": NULLABLE_STRING, "status_since": NULLABLE_DATETIME, "status_until": NULLABLE_DATE,
    "staff_count": {"type": "integer", "description": "名册在岗人数"},
    "status_history": {"type": "array", "items": FIRM_STATUS_CHANGE},
    "available_actions": {"type": "array", "items": STRING,
                          "description": "当前用户此刻可以执行的状态操作（POST /firms/{id}/status 的 action）"}}}]})

FIRM_INPUT = schema("FirmInput", {"type": "object", "required": [
    "name", "uscc", "legal_form", "kind", "address", "legal_representative", "contact_name", "contact_phone", "fields"],
    "properties": {
    "name": STRING, "uscc": {"type": "string", "description": "18 位统一社会信用代码（GB 32100）"},
    "legal_form": {"type": "string", "description": choice_description(LegalForm)},
    "kind": {"type": "string", "description": choice_description(FirmKind)},
    "address": STRING, "legal_representative": STRING, "contact_name": STRING, "contact_phone": STRING,
    "contact_email": NULLABLE_STRING, "founded_on": NULLABLE_DATE, "description": NULLABLE_STRING,
    "declares_no_major_violation": {"type": "boolean"},
    "fields": {"type": "array", "minItems": 1, "items": {"type": "string", "description": choice_description(Field)}}}})

STATUS_ACTIONS = list(services.FIRM_STATUS_ACTIONS)
FIRM_STATUS_REQUEST = schema("FirmStatusRequest", {"type": "object", "required": ["action"], "properties": {
    "action": {"type": "string", "enum": STATUS_ACTIONS,
               "description": "；".join(f"{a.name} = {a.label}（{'、'.join(s.label for s in a.sources)} → {a.target.label}）"
                                       for a in services.FIRM_STATUS_ACTIONS.values())},
    "reason": {"type": "string", "description": "除准予入库外必填"},
    "effective_from": NULLABLE_DATE,
    "effective_until": {"type": "string", "format": "date", "nullable": True, "description": "仅暂停和列入黑名单"}}})

EXPERT = schema("Expert", {"type": "object", "required": ["id", "name", "id_number_masked", "employer", "status", "bureau", "fields"],
                           "properties": {
    "id": {"type": "integer"}, "name": STRING,
    "id_number_masked": {"type": "string", "description": "脱敏身份证号码；完整号码不经接口提供"},
    "employer": STRING, "title": TITLE, "degree": DEGREE,
    "years_in_field": {"type": "integer"}, "birth_year": {"type": "integer"},
    "phone": NULLABLE_STRING, "email": NULLABLE_STRING, "status": EXPERT_STATUS,
    "available": {"type": "boolean"}, "unavailable_until": NULLABLE_DATE,
    "bureau": BUREAU_REF, "fields": {"type": "array", "items": FIELD}}})

EXPERT_TIE = schema("ExpertTie", {"type": "object", "required": ["id", "kind", "counterpart_name", "start_date"], "properties": {
    "id": {"type": "integer"}, "kind": TIE_KIND, "counterpart_name": STRING,
    "start_date": {"type": "string", "format": "date"}, "end_date": NULLABLE_DATE, "note": NULLABLE_STRING}})

EXPERT_DETAIL = schema("ExpertDetail", {"allOf": [EXPERT, {"type": "object", "properties": {
    "status_reason": NULLABLE_STRING, "availability_note": NULLABLE_STRING,
    "eligible": {"type": "boolean", "description": "是否满足本局专家库准入条件"},
    "eligibility_reasons": {"type": "array", "items": STRING, "description": "不满足准入条件的原因（空：满足）"},
    "ties": {"type": "array", "items": EXPERT_TIE}}}]})

EXPERT_INPUT = schema("ExpertInput", {"type": "object", "required": [
    "name", "id_number", "employer", "title", "degree", "years_in_field", "birth_year", "fields"], "properties": {
    "name": STRING, "id_number": {"type": "string", "description": "18 位居民身份证号码（只加密保存，响应中仅返回脱敏形式）"},
    "employer": STRING,
    "title": {"type": "string", "description": choice_description(ProfessionalTitle)},
    "degree": {"type": "string", "description": choice_description(Degree)},
    "years_in_field": {"type": "integer"}, "birth_year": {"type": "integer"},
    "phone": NULLABLE_STRING, "email": NULLABLE_STRING,
    "fields": {"type": "array", "minItems": 1, "items": {"type": "string", "description": choice_description(Field)}}}})

FIRM_LIST = schema("FirmList", list_schema(FIRM))
EXPERT_LIST = schema("ExpertList", list_schema(EXPERT))


# --- firms -----------------------------------------------------------------------------------------

def firm_json(firm: Firm, fields: list[Field] | None = None) -> dict:
    return {
        "id": firm.id, "name": firm.name, "uscc": firm.uscc,
        "legal_form": labeled(firm.legal_form), "kind": labeled(firm.kind), "status": labeled(firm.status),
        "bureau": bureau_ref(firm.bureau),
        "fields": [labeled(f) for f in (firm.fields if fields is None else fields)],
        "address": firm.address, "legal_representative": firm.legal_representative,
        "contact_name": firm.contact_name, "contact_phone": firm.contact_phone, "contact_email": firm.contact_email,
        "applied_at": datetime_str(firm.applied_at), "admitted_at": datetime_str(firm.admitted_at),
    }


def firm_detail_json(firm: Firm, user: User) -> dict:
    staff_count = db.session.execute(
        sa.select(sa.func.count(FirmStaff.id)).where(FirmStaff.firm_id == firm.id, FirmStaff.active.is_(True))
    ).scalar_one()
    show_actor = user.role != Role.FIRM_USER
    return {
        **firm_json(firm),
        "founded_on": date_str(firm.founded_on), "description": firm.description,
        "declares_no_major_violation": firm.declares_no_major_violation,
        "status_reason": firm.status_reason, "status_since": datetime_str(firm.status_since),
        "status_until": date_str(firm.status_until),
        "staff_count": staff_count,
        "status_history": [{
            "id": c.id, "from_status": labeled(c.from_status), "to_status": labeled(c.to_status),
            "reason": c.reason, "effective_from": date_str(c.effective_from),
            "effective_until": date_str(c.effective_until),
            "actor": (c.actor.display_name if c.actor else None) if show_actor else None,
            "created_at": datetime_str(c.created_at),
        } for c in firm.status_history],
        "available_actions": [a.name for a in services.available_status_actions(firm, user)],
    }


def _visible_firm(firm_id: int) -> Firm:
    firm = db.session.get(Firm, firm_id)
    if firm is None or not permissions.can(api_user(), "firm.view", firm):
        raise NotFound("未找到该机构。")
    return firm


@operation("/firms", "GET", summary="第三方机构库列表（按当前用户可见范围）", tag=TAG_FIRMS, response=FIRM_LIST,
           params=[query("status", choice_description(FirmStatus)),
                   query("q", "按机构名称或统一社会信用代码模糊查找"),
                   query("bureau", "所属财政局的行政区划代码"),
                   query("field", choice_description(Field)),
                   *PAGE_PARAMS],
           errors=(400, 403, 422))
def list_firms():
    user = api_user()
    permissions.require(user, "firm.list")
    page, per_page = page_args()
    stmt = permissions.scope(user, sa.select(Firm), Firm)
    status = enum_arg("status", FirmStatus)
    if status is not None:
        stmt = stmt.where(Firm.status == status)
    bureau = bureau_arg()
    if bureau is not None:
        stmt = stmt.where(Firm.bureau_id == bureau.id)
    field = enum_arg("field", Field)
    if field is not None:
        stmt = stmt.where(Firm.id.in_(sa.select(firm_field.c.firm_id).where(firm_field.c.field == field)))
    q = request.args.get("q", "").strip()
    if q:
        stmt = stmt.where(sa.or_(Firm.name.icontains(q, autoescape=True), Firm.uscc.icontains(q, autoescape=True)))
    stmt = stmt.options(selectinload(Firm.bureau)).order_by(Firm.name, Firm.id)
    firms, total = paginate(stmt, page, per_page)
    fields = _fields_by_owner(firm_field, "firm_id", [f.id for f in firms])
    return listing([firm_json(f, fields[f.id]) for f in firms], total, page, per_page)


@operation("/firms", "POST", summary="录入第三方机构（进入本局机构库，状态为待审核）", tag=TAG_FIRMS,
           response=FIRM_DETAIL, status=201, body=FIRM_INPUT, errors=(400, 403, 409, 422))
def create_firm():
    user = api_user()
    bureau = _own_bureau_for_create(user, "firm.create")
    data = json_body()
    errors: dict[str, str] = {}
    text = {name: text_field(data, name, errors) for name in (
        "name", "uscc", "legal_form", "kind", "address", "legal_representative", "contact_name", "contact_phone",
        "contact_email", "description")}
    declaration = data.get("declares_no_major_violation", False)
    if not isinstance(declaration, bool):
        errors["declares_no_major_violation"] = "必须是 true 或 false"
        declaration = False
    firm_input = services.FirmInput(
        name=text["name"] or "", uscc=text["uscc"] or "", legal_form=text["legal_form"] or "", kind=text["kind"] or "",
        address=text["address"] or "", legal_representative=text["legal_representative"] or "",
        contact_name=text["contact_name"] or "", contact_phone=text["contact_phone"] or "",
        contact_email=text["contact_email"], description=text["description"],
        founded_on=_iso_date(data, "founded_on", errors), fields=_field_list(data, errors),
        declares_no_major_violation=declaration)
    clean = None
    try:
        clean = services.clean_firm(firm_input)
    except ValidationFailed as exc:
        errors = {**exc.fields, **errors}  # our type errors say more than "请填写…"
    raise_if(errors)
    firm = services.create_firm(firm_input, bureau, user, via="staff", clean=clean)
    _commit()
    return jsonify(firm_detail_json(firm, user)), 201


@operation("/firms/<int:firm_id>", "GET", summary="机构详情：名册人数、业务领域、状态变更记录", tag=TAG_FIRMS,
           response=FIRM_DETAIL, errors=(404,))
def get_firm(firm_id: int):
    return jsonify(firm_detail_json(_visible_firm(firm_id), api_user()))


@operation("/firms/<int:firm_id>/status", "POST", summary="变更机构库状态（准予/不予入库、暂停、恢复、移出、列入黑名单）",
           tag=TAG_FIRMS, response=FIRM_DETAIL, body=FIRM_STATUS_REQUEST, errors=(400, 403, 404, 409, 422))
def change_firm_status(firm_id: int):
    user = api_user()
    firm = _visible_firm(firm_id)
    data = json_body()
    errors: dict[str, str] = {}
    action = text_field(data, "action", errors)
    reason = text_field(data, "reason", errors)
    effective_from = _iso_date(data, "effective_from", errors)
    effective_until = _iso_date(data, "effective_until", errors)
    if not action and "action" not in errors:
        errors["action"] = "可选值：" + "、".join(STATUS_ACTIONS)
    raise_if(errors)
    services.change_firm_status(firm, action.strip(), user, reason=reason, effective_from=effective_from,
                                effective_until=effective_until)
    db.session.commit()
    return jsonify(firm_detail_json(firm, user))


# --- experts ---------------------------------------------------------------------------------------

def expert_json(expert: Expert, fields: list[Field] | None = None) -> dict:
    # Never the encrypted number or its digest: only the masked form leaves the server.
    return {
        "id": expert.id, "name": expert.name, "id_number_masked": expert.id_number_masked,
        "employer": expert.employer, "title": labeled(expert.title), "degree": labeled(expert.degree),
        "years_in_field": expert.years_in_field, "birth_year": expert.birth_year,
        "phone": expert.phone, "email": expert.email, "status": labeled(expert.status),
        "available": expert.available, "unavailable_until": date_str(expert.unavailable_until),
        "bureau": bureau_ref(expert.bureau),
        "fields": [labeled(f) for f in (expert.fields if fields is None else fields)],
    }


def expert_detail_json(expert: Expert) -> dict:
    reasons = services.expert_eligibility(expert)
    return {
        **expert_json(expert),
        "status_reason": expert.status_reason, "availability_note": expert.availability_note,
        "eligible": not reasons, "eligibility_reasons": reasons,
        "ties": [{"id": t.id, "kind": labeled(t.kind), "counterpart_name": t.counterpart_name,
                  "start_date": date_str(t.start_date), "end_date": date_str(t.end_date), "note": t.note}
                 for t in sorted(expert.ties, key=lambda t: (t.start_date, t.id))],
    }


@operation("/experts", "GET", summary="专家库列表（按当前用户可见范围）", tag=TAG_EXPERTS, response=EXPERT_LIST,
           params=[query("status", choice_description(ExpertStatus)),
                   query("q", "按姓名或工作单位模糊查找"),
                   query("bureau", "所属财政局的行政区划代码"),
                   query("field", choice_description(Field)),
                   *PAGE_PARAMS],
           errors=(400, 403, 422))
def list_experts():
    user = api_user()
    permissions.require(user, "expert.list")
    page, per_page = page_args()
    stmt = permissions.scope(user, sa.select(Expert), Expert)
    status = enum_arg("status", ExpertStatus)
    if status is not None:
        stmt = stmt.where(Expert.status == status)
    bureau = bureau_arg()
    if bureau is not None:
        stmt = stmt.where(Expert.bureau_id == bureau.id)
    field = enum_arg("field", Field)
    if field is not None:
        stmt = stmt.where(Expert.id.in_(sa.select(expert_field.c.expert_id).where(expert_field.c.field == field)))
    q = request.args.get("q", "").strip()
    if q:
        stmt = stmt.where(sa.or_(Expert.name.icontains(q, autoescape=True),
                                 Expert.employer.icontains(q, autoescape=True)))
    stmt = stmt.options(selectinload(Expert.bureau)).order_by(Expert.name, Expert.id)
    experts, total = paginate(stmt, page, per_page)
    fields = _fields_by_owner(expert_field, "expert_id", [e.id for e in experts])
    return listing([expert_json(e, fields[e.id]) for e in experts], total, page, per_page)


@operation("/experts", "POST", summary="录入专家（进入本局专家库）", tag=TAG_EXPERTS, response=EXPERT_DETAIL,
           status=201, body=EXPERT_INPUT, errors=(400, 403, 409, 422))
def create_expert():
    user = api_user()
    bureau = _own_bureau_for_create(user, "expert.create")
    data = json_body()
    errors: dict[str, str] = {}
    text = {name: text_field(data, name, errors) for name in ("name", "id_number", "employer", "title", "degree", "phone", "email")}
    expert_input = services.ExpertInput(
        name=text["name"] or "", id_number=text["id_number"] or "", employer=text["employer"] or "",
        title=text["title"] or "", degree=text["degree"] or "",
        years_in_field=_integer(data, "years_in_field", errors), birth_year=_integer(data, "birth_year", errors),
        fields=_field_list(data, errors), phone=text["phone"], email=text["email"])
    clean = None
    try:
        clean = services.clean_expert(expert_input)
    except ValidationFailed as exc:
        errors = {**exc.fields, **errors}
    raise_if(errors)
    expert = services.create_expert(expert_input, bureau, user, clean=clean)
    _commit()
    return jsonify(expert_detail_json(expert)), 201


@operation("/experts/<int:expert_id>", "GET", summary="专家详情：准入条件核对、申报的关系（身份证号码仅脱敏）",
           tag=TAG_EXPERTS, response=EXPERT_DETAIL, errors=(404,))
def get_expert(expert_id: int):
    expert = db.session.get(Expert, expert_id)
    if expert is None or not permissions.can(api_user(), "expert.view", expert):
        raise NotFound("未找到该专家。")
    return jsonify(expert_detail_json(expert))
