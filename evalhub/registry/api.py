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
from sqlalchemy.orm import joinedload

from evalhub.core.api import api_user, list_schema, operation, schema
from evalhub.core.apiutil import (
    BUREAU_REF, NULLABLE_DATE, NULLABLE_DATETIME, NULLABLE_STRING, PAGE_PARAMS, STRING, bureau_ref, choice,
    choice_query, date_str, datetime_str, integer, labeled, labeled_schema, list_response, query, raise_if,
    read_body, text, visible,
)
from evalhub.core import permissions
from evalhub.core.enums import Field, Role
from evalhub.core.errors import PermissionDenied, ValidationFailed
from evalhub.core.listing import bureau_filter, enum_filter, scoped, text_filter
from evalhub.core.models import Bureau, User
from evalhub.extensions import db
from evalhub.registry import services
from evalhub.registry.forms import field_filter
from evalhub.registry.models import (
    Degree,
    Expert,
    ExpertStatus,
    Firm,
    FirmDocument,
    FirmDocumentKind,
    FirmKind,
    FirmStaff,
    FirmStatus,
    HasFields,
    LegalForm,
    ProfessionalTitle,
    TieKind,
)

TAG_FIRMS = "第三方机构库"
TAG_EXPERTS = "专家库"


# --- lists -----------------------------------------------------------------------------------------

# The firm library and the expert pool list alike: by status, library (bureau), field and a text search.

def _pool_params(status_enum: type, search: str) -> list[dict]:
    return [choice_query("status", status_enum), query("q", search),
            query("bureau", "所属财政局的行政区划代码"), choice_query("field", Field), *PAGE_PARAMS]


def _pool_list(model: type[HasFields], action: str, status_enum: type, to_json, *searched):
    user = api_user()
    permissions.require(user, action)

    def page_json(rows: list, extras: list[dict]) -> list[dict]:  # the fields read with the page
        return [to_json(r, model.parse_fields(x["fields"])) for r, x in zip(rows, extras)]

    # one statement: the page, its count, each row's library and fields
    # built once per scope and filters (``permissions.kept``)
    extra = permissions.kept(user, f"api.{model.__tablename__}.extra", lambda: [model.fields_column()])
    return list_response(lambda: scoped(model, user=user), enum_filter("status", status_enum, model.status),
                         bureau_filter(model.bureau_id), field_filter(model),
                         text_filter("q", *searched, ignore_case=True), options=[joinedload(model.bureau)],
                         order_by=[model.name, model.id], items=page_json, keep=f"api.{model.__tablename__}",
                         extra=extra)


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
    # A concurrent request that registered the same code or number between our check and our write makes
    # this (or the service's flush) a unique violation: the app's one handler answers it 409 (core.concurrency).
    db.session.commit()


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

FIRM_DOCUMENT_KIND = labeled_schema(FirmDocumentKind)
FIRM_DOCUMENT = schema("FirmDocument", {"type": "object", "required": ["id", "kind", "filename"], "properties": {
    "id": {"type": "integer"}, "kind": FIRM_DOCUMENT_KIND, "filename": STRING,
    "size": {"type": "integer", "description": "字节"}, "sha256": STRING, "uploaded_at": NULLABLE_DATETIME}})
FIRM_DOCUMENT_UPLOAD = {"type": "object", "required": ["kind", "file"], "properties": {
    "kind": choice(FirmDocumentKind), "file": {"type": "string", "format": "binary"}}}

FIRM_DETAIL = schema("FirmDetail", {"allOf": [FIRM, {"type": "object", "properties": {
    "founded_on": NULLABLE_DATE, "description": NULLABLE_STRING,
    "declares_no_major_violation": {"type": "boolean"},
    "status_reason": NULLABLE_STRING, "status_since": NULLABLE_DATETIME, "status_until": NULLABLE_DATE,
    "staff_count": {"type": "integer", "description": "名册在岗人数"},
    "status_history": {"type": "array", "items": FIRM_STATUS_CHANGE},
    "available_actions": {"type": "array", "items": STRING,
                          "description": "当前用户此刻可以执行的状态操作（POST /firms/{id}/status 的 action）"},
    "documents": {"type": "array", "items": FIRM_DOCUMENT},
    "missing_admission_documents": {"type": "array", "items": FIRM_DOCUMENT_KIND,
                                    "description": "准予入库前尚缺的材料（财预〔2021〕6号）；为空时材料齐全"}}}]})

FIELDS_INPUT = {"type": "array", "minItems": 1, "maxItems": 2 * len(Field), "items": choice(Field)}

FIRM_INPUT = schema("FirmInput", {"type": "object", "required": [
    "name", "uscc", "legal_form", "kind", "address", "legal_representative", "contact_name", "contact_phone", "fields"],
    "properties": {
    "name": text(Firm.name, "机构名称", name=True), "uscc": text(32, "18 位统一社会信用代码（GB 32100）"),
    "legal_form": choice(LegalForm), "kind": choice(FirmKind),
    "address": text(Firm.address), "legal_representative": text(Firm.legal_representative, name=True),
    "contact_name": text(Firm.contact_name, name=True), "contact_phone": text(Firm.contact_phone),
    "contact_email": text(Firm.contact_email, nullable=True), "founded_on": NULLABLE_DATE,
    "description": text(5000, nullable=True), "declares_no_major_violation": {"type": "boolean"},
    "fields": FIELDS_INPUT}})

STATUS_ACTIONS = list(services.FIRM_STATUS_ACTIONS)
FIRM_STATUS_REQUEST = schema("FirmStatusRequest", {"type": "object", "required": ["action"], "properties": {
    "action": {"type": "string", "enum": STATUS_ACTIONS,
               "description": "；".join(a.described for a in services.FIRM_STATUS_ACTIONS.values())},
    "reason": text(500, "除准予入库外必填"),
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
    "name": text(Expert.name, "姓名", name=True),
    "id_number": text(32, "18 位居民身份证号码（只加密保存，响应中仅返回脱敏形式）"),
    "employer": text(Expert.employer, "工作单位", name=True),
    "title": choice(ProfessionalTitle), "degree": choice(Degree),
    "years_in_field": integer(0, 60, "从业年限"), "birth_year": integer(1900, 2100, "出生年份（年满 18 岁、不超过 100 岁）"),
    "phone": text(Expert.phone, nullable=True), "email": text(Expert.email, nullable=True),
    "fields": FIELDS_INPUT}})

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
    services.read_firm_details(firm)
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
        "available_actions": [a.action for a in services.available_status_actions(firm, user)],
        "documents": [document_json(d) for d in sorted(firm.documents, key=lambda d: d.id)],
        "missing_admission_documents": [labeled(k) for k in services.missing_admission_documents(firm)],
    }


def document_json(document: FirmDocument) -> dict:
    return {"id": document.id, "kind": labeled(document.kind), "filename": document.file.original_name,
            "size": document.file.size, "sha256": document.file.sha256,
            "uploaded_at": datetime_str(document.uploaded_at)}


def _visible_firm(firm_id: int) -> Firm:
    return visible(Firm, firm_id, "firm.view", "未找到该机构。")


@operation("/firms", "GET", summary="第三方机构库列表（按当前用户可见范围）", tag=TAG_FIRMS, response=FIRM_LIST,
           params=_pool_params(FirmStatus, "按机构名称或统一社会信用代码模糊查找"), errors=(400, 403, 422))
def list_firms():
    return _pool_list(Firm, "firm.list", FirmStatus, firm_json, Firm.name, Firm.uscc)


@operation("/firms", "POST", summary="录入第三方机构（进入本局机构库，状态为待审核）", tag=TAG_FIRMS,
           response=FIRM_DETAIL, status=201, body=FIRM_INPUT, errors=(400, 403, 409, 422))
def create_firm():
    user = api_user()
    bureau = _own_bureau_for_create(user, "firm.create")
    data, errors, text = read_body("name", "uscc", "legal_form", "kind", "address", "legal_representative",
                                   "contact_name", "contact_phone", "contact_email", "description")
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
        clean = services.clean_firm(firm_input, actor=user)
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
    data, errors, text = read_body("action", "reason")
    action, reason = text["action"], text["reason"]
    effective_from = _iso_date(data, "effective_from", errors)
    effective_until = _iso_date(data, "effective_until", errors)
    if not action and "action" not in errors:
        errors["action"] = "可选值：" + "、".join(STATUS_ACTIONS)
    raise_if(errors)
    services.change_firm_status(firm, action.strip(), user, reason=reason, effective_from=effective_from,
                                effective_until=effective_until)
    db.session.commit()
    return jsonify(firm_detail_json(firm, user))


@operation("/firms/<int:firm_id>/documents", "POST",
           summary="上传机构的入库申请材料（营业执照、信用记录、从业人员资格证明、各项制度、无重大违法违规声明等）",
           tag=TAG_FIRMS, response=FIRM_DOCUMENT, status=201, body=FIRM_DOCUMENT_UPLOAD,
           body_content_type="multipart/form-data", errors=(400, 403, 404, 409, 422))
def upload_firm_document(firm_id: int):
    user = api_user()
    firm = _visible_firm(firm_id)
    permissions.require(user, "firm.edit", firm)
    if request.mimetype != "multipart/form-data":
        raise ValidationFailed("请求体必须是 multipart/form-data（字段 kind、file）。", {"file": "请上传文件"})
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed("请选择要上传的文件。", {"file": "请选择要上传的文件"})
    document = services.attach_firm_document(firm, request.form.get("kind", ""), upload.filename, upload.read(), user)
    db.session.commit()
    return jsonify(document_json(document)), 201


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
           params=_pool_params(ExpertStatus, "按姓名或工作单位模糊查找"), errors=(400, 403, 422))
def list_experts():
    return _pool_list(Expert, "expert.list", ExpertStatus, expert_json, Expert.name, Expert.employer)


@operation("/experts", "POST", summary="录入专家（进入本局专家库）", tag=TAG_EXPERTS, response=EXPERT_DETAIL,
           status=201, body=EXPERT_INPUT, errors=(400, 403, 409, 422))
def create_expert():
    user = api_user()
    bureau = _own_bureau_for_create(user, "expert.create")
    data, errors, text = read_body("name", "id_number", "employer", "title", "degree", "phone", "email")
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
    return jsonify(expert_detail_json(visible(Expert, expert_id, "expert.view", "未找到该专家。")))
