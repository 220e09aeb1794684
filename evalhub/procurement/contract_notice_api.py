"""API of the contract announcement (合同公告, 政府采购法实施条例 第五十条; procurement/contract_notices.py).

The same service as the page: the bureau that ran the procurement publishes (multipart POST, the contract's public
text as the file), anyone who sees the engagement reads its state; the public list needs no token. Not visible → 404,
as everywhere in the API; visible but not the purchasing bureau → 403.
"""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from flask import jsonify, request

from evalhub.core.api import api_user, list_schema, operation, schema
from evalhub.core.apiutil import (
    BOOLEAN, DATE, DATETIME, INTEGER, NULLABLE_DATE, NULLABLE_STRING, PAGE_PARAMS, choice, date_str,
    datetime_str, labeled, labeled_schema, list_response, nullable, query, text, visible,
)
from evalhub.core import permissions
from evalhub.core.enums import BUREAU_SIDE
from evalhub.core.errors import DomainError
from evalhub.core.listing import bureau_filter, text_filter
from evalhub.core.timeutil import beijing_date
from evalhub.extensions import db
from evalhub.procurement import contract_notices, media_api
from evalhub.procurement.models import ContractNotice, Engagement, WithheldContent

TAG = "合同公告"
LAW = contract_notices.LAW
CENT = Decimal("0.01")

_FIELDS = {
    "id": INTEGER, "project_name": {"type": "string", "description": "项目名称"},
    "purchaser_name": {"type": "string", "description": "采购人（委托的预算单位，或财政局）"},
    "supplier_name": {"type": "string", "description": "供应商名称（公告时）"},
    "supplier_uscc": {"type": "string", "description": "供应商统一社会信用代码"},
    "amount": {"type": "string", "description": "合同金额（元，精确到分的字符串）", "example": "180000.00"},
    "amount_wan": {"type": "number", "description": "合同金额（万元）"},
    "services": {"type": "string", "description": "主要服务内容（不含不予公开的内容）"},
    "start_date": DATE, "end_date": DATE, "signed_on": DATE,
    "published_at": DATETIME, "published_on": {"type": "string", "format": "date", "description": "公告日期（北京）"},
    "withheld": nullable(labeled_schema(WithheldContent)),
    "public_url": {"type": "string", "description": "公开页面"},
    "download_url": {"type": "string", "description": "公开的合同文本（已去除文档属性）"},
}
PUBLIC_NOTICE = schema("PublicContractNotice", {"type": "object", "required": [
    "id", "project_name", "purchaser_name", "supplier_name", "amount", "signed_on", "published_at"],
    "description": "合同公告（公开内容：不含不予公开的内容及其理由）", "properties": _FIELDS})
NOTICE = schema("ContractNotice", {"type": "object", "required": [
    "id", "project_name", "purchaser_name", "supplier_name", "amount", "signed_on", "published_at", "due_on",
    "late_workdays"], "description": "合同公告（财政局可见的完整记录）", "properties": {
    **_FIELDS, "engagement_id": INTEGER, "due_on": {"type": "string", "format": "date", "description": "法定发布期限"},
    "late_workdays": {"type": "integer", "description": "逾期的工作日数（0：按期）"},
    "late_reason": {**NULLABLE_STRING, "description": "逾期公告原因（仅财政局可见）"},
    "withheld_reason": {**NULLABLE_STRING, "description": "不予公开的内容及理由（仅财政局可见）"}}})
NOTICE_STATE = schema("ContractNoticeState", {"type": "object", "required": ["engagement_id", "due_on", "overdue", "notice"],
                                               "properties": {
    "engagement_id": INTEGER,
    "due_on": {**NULLABLE_DATE, "description": "合同公告应发布的最后一日（合同签订之日起 2 个工作日）；尚未签订合同为空"},
    "overdue": {**BOOLEAN, "description": "已过期限仍未发布"},
    "overdue_reason": NULLABLE_STRING,
    "may_publish": {**BOOLEAN, "description": "当前用户可以发布（组织采购的财政局，尚未发布）"},
    "notice": nullable(NOTICE),
    "media_posting": {**nullable(media_api.POSTING),
                      "description": "在指定媒体的发布（法定的合同公告）；本系统已发布但未登记时为空，仍计逾期"}}})
NOTICE_UPLOAD = schema("ContractNoticeUpload", {"type": "object", "required": ["services", "file"], "properties": {
    "services": text(2000, "主要服务内容：按合同约定（交付成果）；删去涉及国家秘密、商业秘密的内容时须同时填写 withheld 和 withheld_reason"),
    "file": {"type": "string", "format": "binary",
             "description": "公开的合同文本（Word .docx 或 PDF，已删去不予公开的内容；系统另去除文档属性后公开）"},
    "withheld": choice(WithheldContent, "不予公开的内容涉及（有删去的内容时必填）"),
    "withheld_reason": text(500, "不予公开的内容及理由（10–500 字；仅财政局可见，记入操作日志）"),
    "late_reason": text(500, "逾期公告原因（晚于法定期限发布时必填，10–500 字）")}})
PUBLIC_NOTICE_LIST = schema("PublicContractNoticeList", list_schema(PUBLIC_NOTICE))


def public_json(n: ContractNotice) -> dict:
    return {"id": n.id, "project_name": n.project_name, "purchaser_name": n.purchaser_name,
            "supplier_name": n.supplier_name, "supplier_uscc": n.supplier_uscc,
            "amount": str(n.amount.quantize(CENT)), "amount_wan": float(n.amount / 10000),
            "services": n.services, "start_date": date_str(n.start_date), "end_date": date_str(n.end_date),
            "signed_on": date_str(n.signed_on), "published_at": datetime_str(n.published_at),
            "published_on": date_str(beijing_date(n.published_at)), "withheld": labeled(n.withheld),
            "public_url": f"/public/contracts/{n.id}", "download_url": f"/public/contracts/{n.id}/file"}


def notice_json(n: ContractNotice, bureau_side: bool) -> dict:
    """The announcement with its record: the reasons (late, withheld) are the bureaus' — a firm reads them null."""
    return {**public_json(n), "engagement_id": n.contract.engagement_id, "due_on": date_str(n.due_on),
            "late_workdays": n.late_workdays, "late_reason": n.late_reason if bureau_side else None,
            "withheld_reason": n.withheld_reason if bureau_side else None}


def _engagement(engagement_id: int) -> Engagement:
    return visible(Engagement, engagement_id, "engagement.view", "未找到该评价任务。")


@operation("/engagements/<int:engagement_id>/contract-notice", "GET",
           summary=f"合同公告的状态：应发布日期、是否逾期、已发布的公告（{LAW}）", tag=TAG, response=NOTICE_STATE,
           errors=(404,))
def get_contract_notice(engagement_id: int):
    engagement = _engagement(engagement_id)
    contract, user = engagement.contract, api_user()
    notice = contract.notice if contract is not None else None
    due = None if contract is None else (notice.due_on if notice is not None else contract_notices.due_of(contract))
    # owed until posted on the designated media (procurement/media.py), evalhub's copy out or not
    reason = (contract_notices.overdue_reason(contract.notice_due_on, published_here=notice is not None)
              if contract is not None else None)
    posting = notice.media_posting if notice is not None else None
    return jsonify({"engagement_id": engagement.id, "due_on": date_str(due), "overdue": reason is not None,
                    "overdue_reason": reason,
                    "media_posting": media_api.posting_json(posting, user.role in BUREAU_SIDE) if posting else None,
                    "notice": notice_json(notice, user.role in BUREAU_SIDE) if notice is not None else None,
                    "may_publish": contract is not None and notice is None
                    and permissions.can(user, "contract.notice.publish", engagement)})


@operation("/engagements/<int:engagement_id>/contract-notice", "POST",
           summary=f"发布合同公告（{LAW}：合同签订之日起 2 个工作日内公告，涉及国家秘密、商业秘密的内容除外）",
           tag=TAG, response=NOTICE, status=201, body=NOTICE_UPLOAD, body_content_type="multipart/form-data",
           errors=(400, 403, 404, 409, 422))
def publish_contract_notice(engagement_id: int):
    """Only the bureau that ran the procurement, only a signed contract, once (409 after); late allowed with
    ``late_reason``; each problem of the input named (422)."""
    engagement = _engagement(engagement_id)
    if request.mimetype != "multipart/form-data":
        raise DomainError("请求体必须是 multipart/form-data（字段 services、file 等）。")
    form, upload = request.form, request.files.get("file")
    has_file = upload is not None and bool(upload.filename)
    notice = contract_notices.publish_notice(engagement, contract_notices.NoticeInput(
        services=form.get("services"), filename=upload.filename if has_file else None,
        data=upload.read() if has_file else None, withheld=form.get("withheld"),
        withheld_reason=form.get("withheld_reason"), late_reason=form.get("late_reason")), api_user())
    db.session.commit()
    return jsonify(notice_json(notice, True)), 201


@operation("/public/contract-notices", "GET", summary=f"已发布的合同公告（{LAW}；无需登录）", tag=TAG,
           response=PUBLIC_NOTICE_LIST, auth=False,
           params=[query("bureau", "组织采购的财政局的行政区划代码"), query("q", "按项目名称或供应商模糊查找"), *PAGE_PARAMS],
           errors=(400, 422))
def list_public_contract_notices():
    return list_response(sa.select(ContractNotice), bureau_filter(ContractNotice.bureau_id),
                         text_filter("q", ContractNotice.project_name, ContractNotice.supplier_name, ignore_case=True),
                         order_by=[ContractNotice.published_at.desc(), ContractNotice.id.desc()], item=public_json)
