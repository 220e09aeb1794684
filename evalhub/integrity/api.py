"""Integrity on the JSON API: a procurement's consistency-check flags with the committee's decisions, and the
red flags of the bureaus' procurement history. Bureau users only: a firm reading either is answered 404
(the flags) or 403 (the red-flag list), as it may never learn what was found about other bidders."""
from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify

from evalhub.core import permissions
from evalhub.core.api import api_user, list_schema, operation, schema
from evalhub.core.apiutil import (
    INTEGER, NULLABLE_DATETIME, NULLABLE_STRING, NUMBER, PAGE_PARAMS, STRING, YEAR_QUERY, choice_query, datetime_str, labeled,
    labeled_schema, list_response, query, visible,
)
from evalhub.core.errors import PermissionDenied
from evalhub.core.listing import Filter, enum_filter, int_filter, year_filter
from evalhub.core.models import Bureau
from evalhub.extensions import db
from evalhub.integrity import services
from evalhub.integrity.models import CollusionFlag, CollusionRule, FlagDecision, Indicator, IntegrityCheck, RedFlag
from evalhub.procurement.models import Procurement

TAG = "采购诚信"

COLLUSION_FLAG = schema("CollusionFlag", {"type": "object", "required": ["id", "rule", "clause", "bids", "summary"], "properties": {
    "id": INTEGER, "rule": labeled_schema(CollusionRule), "clause": {"type": "string", "description": "所对应的财政部令第87号第三十七条情形"},
    "bids": {"type": "array", "items": {"type": "object", "properties": {"id": INTEGER, "firm": STRING}}},
    "summary": {"type": "string", "description": "比较了什么、发现了什么"},
    "evidence": {"type": "object", "description": "比较的细节：相同句子并列、相同的文档属性、同一人员（不含身份证号）、报价"},
    "decision": {"allOf": [labeled_schema(FlagDecision)], "nullable": True, "description": "评审委员会的处理决定；未处理为空"},
    "reason": NULLABLE_STRING, "decided_at": NULLABLE_DATETIME}})
INTEGRITY = schema("ProcurementIntegrity", {"type": "object", "required": ["procurement_id", "checked", "flags"], "properties": {
    "procurement_id": INTEGER, "checked": {"type": "boolean"}, "checked_at": NULLABLE_DATETIME,
    "bid_count": INTEGER, "duration_ms": INTEGER,
    "scoring_blocked": {"type": "string", "nullable": True, "description": "尚有未处理提示时不能录入评分的原因"},
    "flags": {"type": "array", "items": COLLUSION_FLAG}}})
RED_FLAG = schema("RedFlag", {"type": "object", "required": ["id", "bureau_id", "year", "indicator", "explanation"], "properties": {
    "id": INTEGER, "bureau_id": INTEGER, "year": INTEGER, "indicator": labeled_schema(Indicator),
    "procurement_id": {"type": "integer", "nullable": True}, "firm_id": {"type": "integer", "nullable": True},
    "value": NUMBER, "threshold": NUMBER, "explanation": STRING,
    "procurement_ids": {"type": "array", "items": INTEGER},
    "quality": {"type": "object", "description": "成交项目交付质量：score 首轮评审得分、rounds 评审轮次、findings 检查发现问题数、"
                                                 "risk 筛查风险，worse 为低于全区中位数的项"},
    "computed_at": NULLABLE_DATETIME}})
RED_FLAG_LIST = schema("RedFlagList", list_schema(RED_FLAG))


def flag_json(flag: CollusionFlag, bids: dict) -> dict:
    return {"id": flag.id, "rule": labeled(flag.rule), "clause": flag.clause,
            "bids": [{"id": i, "firm": bids[i].firm.name if i in bids else None} for i in flag.bid_ids],
            "summary": flag.summary, "evidence": flag.evidence, "decision": labeled(flag.decision), "reason": flag.reason,
            "decided_at": datetime_str(flag.decided_at)}


@operation("/procurements/<int:procurement_id>/integrity", "GET", tag=TAG, response=INTEGRITY, errors=(404,),
           summary="采购项目的投标文件一致性检查：提示、所依据的情形、比较内容和评审委员会的处理决定（仅财政局用户）")
def procurement_integrity(procurement_id: int):
    procurement = visible(Procurement, procurement_id, "integrity.view", "未找到该采购项目的一致性检查。")
    check = db.session.execute(sa.select(IntegrityCheck).where(IntegrityCheck.procurement_id == procurement.id)).scalar_one_or_none()
    bids = {b.id: b for b in procurement.bids}
    return jsonify({"procurement_id": procurement.id, "checked": check is not None,
                    "checked_at": datetime_str(check.checked_at) if check else None,
                    "bid_count": check.bid_count if check else 0, "duration_ms": check.duration_ms if check else 0,
                    "scoring_blocked": services.undecided_flags_block(procurement),
                    "flags": [flag_json(f, bids) for f in services.flags_of(procurement)]})


def _bureau_subtree(code: str) -> Bureau:
    bureau = db.session.execute(sa.select(Bureau).where(Bureau.code == code)).scalar_one_or_none()
    if bureau is None or not permissions.can(api_user(), "redflags.view", bureau):
        raise LookupError(code)
    return bureau


def red_flag_json(flag: RedFlag) -> dict:
    return {"id": flag.id, "bureau_id": flag.bureau_id, "year": flag.year, "indicator": labeled(flag.indicator),
            "procurement_id": flag.procurement_id, "firm_id": flag.firm_id, "value": flag.value, "threshold": flag.threshold,
            "explanation": flag.explanation, "procurement_ids": flag.procurement_ids, "quality": flag.quality,
            "computed_at": datetime_str(flag.computed_at)}


@operation("/red-flags", "GET", tag=TAG, response=RED_FLAG_LIST, errors=(400, 403),
           params=[query("bureau", "财政局区划代码（本局及下级）", maxLength=12), YEAR_QUERY, choice_query("indicator", Indicator),
                   query("firm", "机构编号", "integer", minimum=1, maximum=2**31 - 1), *PAGE_PARAMS],
           summary="采购红旗：按财政局（含下级）、年度、指标或机构列出，附相关采购和交付质量（仅财政局用户）")
def list_red_flags():
    user = api_user()
    if not permissions.can(user, "redflags.view"):
        raise PermissionDenied("采购红旗仅供财政部门查阅。")
    bureau_filter = Filter("bureau", _bureau_subtree,
                           lambda stmt, b: stmt.where(RedFlag.bureau_id.in_(permissions.subtree_ids(b))),
                           "没有这个区划代码的财政局，或无权查看")
    stmt = permissions.scope(user, sa.select(RedFlag), RedFlag)
    return list_response(stmt, bureau_filter, year_filter(RedFlag.year), enum_filter("indicator", Indicator, RedFlag.indicator),
                         int_filter("firm", RedFlag.firm_id), item=red_flag_json,
                         order_by=[RedFlag.year.desc(), RedFlag.indicator, RedFlag.id])
