"""API of the 澄清/更正公告 of an open procurement (procurement/amendments.py; 财政部令第87号 第二十七条, 财库〔2014〕214号
第十条).

The same service as the procurement page's form: the staff and admins of the bureau that runs the procurement publish
one (POST, JSON; an optional file as Base64, as a challenge's evidence); whoever sees the procurement lists them (GET:
the bureau, the bureaus above it, the firms the 采购公告 went to and those that bid). Not visible → 404, as everywhere in
the API; visible but not the purchasing bureau → 403.
"""
from __future__ import annotations

import base64
import binascii

from flask import jsonify

from evalhub.core import permissions
from evalhub.core.api import api_user, operation, schema
from evalhub.core.apiutil import (
    BOOLEAN, DATETIME, INTEGER, NULLABLE_STRING, STRING, date_str, datetime_str, nullable, raise_if, read_body, text,
    utc_datetime, visible,
)
from evalhub.core.enums import BUREAU_SIDE
from evalhub.core.timeutil import beijing_date
from evalhub.extensions import db
from evalhub.procurement import amendments, media_api
from evalhub.procurement.models import Procurement, ProcurementAmendment

TAG = "采购"
RULE = ("可能影响投标（响应）文件编制的，截止时间前须留足公开招标 15 日、竞争性磋商 5 日（自本公告发布之日的次日起算的日历日），不足的须"
        "同时顺延截止时间（财政部令第87号 第二十七条；财库〔2014〕214号 第十条）")

FILE = {"type": "object", "required": ["name", "url"], "properties": {
    "name": STRING, "url": {"type": "string", "description": "公开的附件（已去除文档属性；无需登录）"}}}
AMENDMENT = schema("ProcurementAmendment", {
    "type": "object", "required": ["id", "procurement_id", "number", "text", "affects_bids", "deadline_before",
                                   "deadline_after", "deadline_moved", "published_at"],
    "description": "澄清/更正公告：为采购文件的组成部分，向全部潜在供应商书面通知并公开",
    "properties": {
        "id": INTEGER, "procurement_id": INTEGER, "number": {**INTEGER, "description": "序号（第 N 号），按采购项目连续编号"},
        "title": STRING, "text": {"type": "string", "description": "澄清或者修改的内容"},
        "affects_bids": {**BOOLEAN, "description": "财政局认定可能影响投标（响应）文件编制"},
        "deadline_before": {**DATETIME, "description": "发布前的投标截止时间"},
        "deadline_after": {**DATETIME, "description": "发布后的投标截止时间（未变更时与发布前相同）"},
        "deadline_moved": BOOLEAN, "published_at": DATETIME,
        "published_on": {"type": "string", "format": "date", "description": "发布日期（北京）"},
        "published_by": {**NULLABLE_STRING, "description": "发布人（仅财政局可见）"},
        "file": nullable(FILE), "public_url": STRING,
        "media_posting": {**nullable(media_api.POSTING), "description": "在指定媒体（采购公告的发布媒体）的发布；未登记时为空"}}})
AMENDMENTS = schema("ProcurementAmendments", {"type": "object", "required": ["procurement_id", "amendments", "may_amend"],
                                              "properties": {
    "procurement_id": INTEGER, "bid_deadline": {**DATETIME, "nullable": True, "description": "当前的投标截止时间"},
    "may_amend": {**BOOLEAN, "description": "当前用户可以发布（组织采购的财政局，投标截止前）"},
    "amendments": {"type": "array", "items": AMENDMENT}}})
REQUEST = schema("ProcurementAmendmentRequest", {"type": "object", "required": ["text"], "properties": {
    "text": text(amendments.TEXT_MAX, f"澄清或者修改的内容（{amendments.LIMITS}）"),
    "affects_bids": {**BOOLEAN, "description": f"是否可能影响投标（响应）文件编制，默认 true。{RULE}"},
    "bid_deadline": {"type": "string", "format": "date-time", "maxLength": 40, "nullable": True, "description": (
        "新的投标截止时间，ISO 8601 带时区（例如 2025-03-17T10:00:00+08:00）；不变更的省略或为 null。须晚于现在，自采购公告"
        "（已登记指定媒体发布的，自在指定媒体发布之日）起算的等标期仍须满足")},
    "file": {"type": "object", "nullable": True, "required": ["name", "content_base64"],
             "description": "附件（Word .docx 或 PDF，可选；去除文档属性后公开）", "properties": {
                 "name": text(255, "文件名", name=True),
                 "content_base64": {"type": "string", "maxLength": 28_000_000, "description": "文件内容（Base64）"}}}}})


def amendment_json(a: ProcurementAmendment, bureau_side: bool) -> dict:
    return {"id": a.id, "procurement_id": a.procurement_id, "number": a.number, "title": a.title, "text": a.text,
            "affects_bids": a.affects_bids, "deadline_before": datetime_str(a.deadline_before),
            "deadline_after": datetime_str(a.deadline_after), "deadline_moved": a.moved_deadline,
            "published_at": datetime_str(a.published_at), "published_on": date_str(beijing_date(a.published_at)),
            "published_by": a.published_by.display_name if bureau_side and a.published_by else None,
            "file": {"name": a.public_file.original_name, "url": f"/public/amendments/{a.id}/file"}
            if a.public_file is not None else None,
            "public_url": f"/public/procurements/{a.procurement_id}#amendment-{a.number}",
            "media_posting": media_api.posting_json(a.media_posting, bureau_side) if a.media_posting else None}


def _procurement(procurement_id: int) -> Procurement:
    return visible(Procurement, procurement_id, "procurement.view", "未找到该采购项目。")


@operation("/procurements/<int:procurement_id>/amendments", "GET",
           summary="采购项目的澄清/更正公告（按序号）", tag=TAG, response=AMENDMENTS, errors=(404,))
def list_amendments(procurement_id: int):
    procurement, user = _procurement(procurement_id), api_user()
    side = user.role in BUREAU_SIDE
    return jsonify({"procurement_id": procurement.id, "bid_deadline": datetime_str(procurement.bid_deadline),
                    "may_amend": permissions.can(user, "procurement.amend", procurement.engagement),
                    "amendments": [amendment_json(a, side) for a in amendments.listed(procurement)]})


@operation("/procurements/<int:procurement_id>/amendments", "POST",
           summary=f"发布澄清/更正公告（投标截止前；{RULE}）", tag=TAG, response=AMENDMENT, status=201, body=REQUEST,
           errors=(400, 403, 404, 409, 422))
def create_amendment(procurement_id: int):
    """Only the bureau that runs the procurement (403 before the body is read), only while bids are open (409); each
    problem of the input named (422): the text, the deadline (the earliest lawful day named), the file."""
    procurement, user = _procurement(procurement_id), api_user()
    permissions.require(user, "procurement.amend", procurement.engagement)
    data, errors, body = read_body("text")
    deadline = utc_datetime(data, "bid_deadline", errors,
                            "请填写带时区的投标截止时间（ISO 8601，例如 2025-03-17T10:00:00+08:00），不变更的省略")
    affects = data.get("affects_bids", True)
    if affects is None:
        affects = True
    elif not isinstance(affects, bool):
        errors["affects_bids"] = "必须是 true 或 false"
    filename = content = None
    upload = data.get("file")
    if upload is not None:
        if not isinstance(upload, dict) or not isinstance(upload.get("name"), str) \
                or not isinstance(upload.get("content_base64"), str):
            errors["file"] = "附件须有 name 和 content_base64"
        else:
            try:
                filename, content = upload["name"], base64.b64decode(upload["content_base64"], validate=True)
            except (binascii.Error, ValueError):
                errors["file"] = f"“{upload['name']}”的内容不是有效的 Base64"
    raise_if(errors)
    amendment = amendments.amend_procurement(procurement, amendments.AmendmentInput(
        text=body["text"], affects_bids=affects, bid_deadline=deadline, filename=filename, data=content), user)
    db.session.commit()
    return jsonify(amendment_json(amendment, True)), 201
