"""API of the notices' postings on the designated media (指定媒体, procurement/media.py).

The same service as the page: the bureau that ran the procurement records a posting (POST) and corrects one (PUT,
with the reason); anyone who sees the engagement reads its notices' postings. Not visible → 404, as everywhere in the
API; visible but not the purchasing bureau → 403.
"""
from __future__ import annotations

from flask import jsonify

from evalhub.core import permissions
from evalhub.core.api import api_user, operation, schema
from evalhub.core.apiutil import (
    BOOLEAN, DATE, INTEGER, NULLABLE_DATE, NULLABLE_DATETIME, NULLABLE_STRING, STRING, choice, date_str,
    datetime_str, id_field, labeled, labeled_schema, nullable, raise_if, read_body, text, visible,
)
from evalhub.core.enums import BUREAU_SIDE
from evalhub.extensions import db
from evalhub.procurement import media
from evalhub.procurement.models import DesignatedMedium, Engagement, MediaPosting, NoticeKind

TAG = "指定媒体发布"

POSTING = schema("MediaPosting", {"type": "object", "required": [
    "id", "kind", "medium", "medium_label", "url", "posted_on", "late_workdays"],
    "description": "公告在指定媒体（省级以上财政部门指定的媒体）上的发布记录：法定的公告即此发布，本系统的公开页面不是指定媒体",
    "properties": {
        "id": INTEGER, "kind": labeled_schema(NoticeKind), "medium": labeled_schema(DesignatedMedium),
        "medium_label": {"type": "string", "description": "媒体名称（其他指定媒体为登记的名称）"},
        "medium_name": NULLABLE_STRING,
        "url": {"type": "string", "format": "uri", "description": "该公告在指定媒体上的网址"},
        "posted_on": {"type": "string", "format": "date", "description": "在指定媒体发布的日期（北京）"},
        "due_on": {**NULLABLE_DATE, "description": "法定发布期限（结果公告、合同公告：2 个工作日）；采购公告为空"},
        "late_workdays": {"type": "integer", "description": "晚于法定期限的工作日数（0：按期或无期限）"},
        "note": {**NULLABLE_STRING, "description": "备注（仅财政局可见）"},
        "recorded_at": NULLABLE_DATETIME, "corrected_at": NULLABLE_DATETIME,
        "correction_reason": {**NULLABLE_STRING, "description": "最近一次更正的原因（仅财政局可见；每次更正及原值见操作日志）"},
        "period_problem": {**NULLABLE_STRING, "description": (
            "采购公告：在指定媒体发布晚于本系统发布，等标期自该日起算不足时的说明（未开标的，延长投标截止时间前不能开标；"
            "仅财政局可见；其他公告或无问题时为空）")}}})
NOTICE = schema("MediaNotice", {"type": "object", "required": ["kind", "notice_id", "title", "status", "posting"],
                                "properties": {
    "kind": labeled_schema(NoticeKind), "notice_id": {**INTEGER, "description": "采购公告为采购项目 ID；结果公告、合同公告、更正公告为其 ID"},
    "title": STRING, "event_day": {**DATE, "description": "发布日期不得早于的日期（采购公告发布、确定供应商、合同签订）"},
    "due_on": NULLABLE_DATE, "public_url": {**NULLABLE_STRING, "description": "本系统的公开页面（不是指定媒体）"},
    "status": {"type": "string", "description": "发布情况；未登记时为“未登记指定媒体发布”"},
    "posting": nullable(POSTING)}})
NOTICES = schema("MediaNotices", {"type": "object", "required": ["engagement_id", "notices", "may_record"], "properties": {
    "engagement_id": INTEGER, "may_record": {**BOOLEAN, "description": "当前用户可以登记（组织采购的财政局）"},
    "notices": {"type": "array", "items": NOTICE}}})
_INPUT = {
    "medium": choice(DesignatedMedium, "指定媒体"),
    "medium_name": text(100, "媒体名称（选择其他指定媒体时必填）", nullable=True),
    "url": text(media.URL_MAX, "该公告在指定媒体上的网址（http:// 或 https://）"),
    "posted_on": {"type": "string", "format": "date", "maxLength": 10,
                  "description": "在指定媒体发布的日期（YYYY-MM-DD，北京）：不晚于今天，不早于公告所载事项之日"},
    "note": text(500, "备注；超过法定期限（2 个工作日）发布的须说明逾期原因，不少于 10 字", nullable=True)}
RECORD = schema("MediaPostingRequest", {"type": "object", "required": ["notice_kind", "notice_id", "medium", "url", "posted_on"],
                                        "properties": {
    "notice_kind": choice(NoticeKind, "公告类型"), "notice_id": id_field("采购公告为采购项目 ID；结果公告、合同公告、更正公告为其 ID"),
    **_INPUT}})
CORRECT = schema("MediaPostingCorrection", {"type": "object", "required": ["medium", "url", "posted_on", "correction_reason"],
                                            "properties": {
    **_INPUT, "correction_reason": text(500, "更正原因（10–500 字；原值与原因记入操作日志）")}})


def posting_json(p: MediaPosting, bureau_side: bool) -> dict:
    return {"id": p.id, "kind": labeled(p.kind), "medium": labeled(p.medium), "medium_label": p.medium_label,
            "medium_name": p.medium_name, "url": p.url, "posted_on": date_str(p.posted_on), "due_on": date_str(p.due_on),
            "late_workdays": p.late_workdays, "note": p.note if bureau_side else None,
            "recorded_at": datetime_str(p.recorded_at), "corrected_at": datetime_str(p.corrected_at),
            "correction_reason": p.correction_reason if bureau_side else None,
            "period_problem": media.procurement_period_problem(p.procurement)
            if bureau_side and p.kind == NoticeKind.PROCUREMENT else None}


def _notice_json(t: media.Target, bureau_side: bool) -> dict:
    return {"kind": labeled(t.kind), "notice_id": t.id, "title": t.title, "event_day": date_str(t.event_day),
            "due_on": date_str(t.due), "public_url": t.public_url, "status": media.status(t),
            "posting": posting_json(t.posting, bureau_side) if t.posting is not None else None}


def _engagement(engagement_id: int) -> Engagement:
    return visible(Engagement, engagement_id, "engagement.view", "未找到该评价任务。")


def _input(body: dict) -> media.PostingInput:
    return media.PostingInput(medium=body["medium"], medium_name=body["medium_name"], url=body["url"],
                              posted_on=body["posted_on"], note=body["note"])


@operation("/engagements/<int:engagement_id>/media-postings", "GET",
           summary="评价任务各公告（采购公告、结果公告、合同公告）在指定媒体的发布情况", tag=TAG, response=NOTICES,
           errors=(404,))
def list_media_postings(engagement_id: int):
    engagement, user = _engagement(engagement_id), api_user()
    side = user.role in BUREAU_SIDE
    return jsonify({"engagement_id": engagement.id, "notices": [_notice_json(t, side) for t in media.targets(engagement)],
                    "may_record": permissions.can(user, "notice.media.record", engagement)})


@operation("/engagements/<int:engagement_id>/media-postings", "POST",
           summary=f"登记公告在指定媒体的发布（{media.LAW}；结果公告、合同公告另计 2 个工作日的法定期限）", tag=TAG,
           response=POSTING, status=201, body=RECORD, errors=(403, 404, 409, 422))
def record_media_posting(engagement_id: int):
    """Only the bureau that ran the procurement, once per notice (409 after; a correction is a PUT with its reason);
    each problem of the input named (422)."""
    engagement = _engagement(engagement_id)
    data, errors, body = read_body("notice_kind", "medium", "medium_name", "url", "posted_on", "note")
    notice_id = data.get("notice_id")
    if not isinstance(notice_id, int) or isinstance(notice_id, bool):
        errors["notice_id"] = "请填写公告的 ID（整数）"
    raise_if(errors)
    posting = media.record_posting(engagement, body["notice_kind"], notice_id, _input(body), api_user())
    db.session.commit()
    return jsonify(posting_json(posting, True)), 201


@operation("/engagements/<int:engagement_id>/media-postings/<int:posting_id>", "PUT",
           summary="更正指定媒体发布记录（须说明原因；原值记入操作日志）", tag=TAG, response=POSTING, body=CORRECT,
           errors=(403, 404, 422))
def correct_media_posting(engagement_id: int, posting_id: int):
    engagement = _engagement(engagement_id)
    data, errors, body = read_body("medium", "medium_name", "url", "posted_on", "note", "correction_reason")
    raise_if(errors)
    posting = media.correct_posting(engagement, posting_id, _input(body), body["correction_reason"],
                                    api_user())
    db.session.commit()
    return jsonify(posting_json(posting, True))
