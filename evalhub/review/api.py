"""Review API: submissions (the firm's uploads), an expert's own reviews, panel outcomes, and the public list
of published reports, under /api/v1.

Same rules as the registry and procurement APIs: records are found through ``permissions`` (not visible →
404), the rules live in ``review.services``, and domain errors become the one error shape. Who sees whom:

- a firm never sees an expert's identity or an individual score — only the panel's consolidated outcome
  and letter, and the outcome only once it has been communicated (passed, or the letter sent);
- an expert sees their own review, and other members' submitted reviews only after submitting their own
  (``services.visible_reviews``), labelled 专家A/B/C instead of named;
- bureau users see the panel in full, per-expert totals included.
"""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from sqlalchemy.orm import selectinload

from evalhub.core.api import api_user, json_body, list_schema, operation, schema
from evalhub.core.apiutil import (
    BOOLEAN, DATETIME, INTEGER, NULLABLE_BOOLEAN, NULLABLE_DATETIME, NULLABLE_NUMBER, NULLABLE_STRING, NUMBER,
    PAGE_PARAMS, STRING, YEAR_QUERY, choice, datetime_str, labeled, labeled_definition, labeled_schema, list_response,
    int_field, nullable, number, query, raise_if, text, text_field, visible,
)
from evalhub.core import permissions
from evalhub.core.enums import BUREAU_SIDE, Role
from evalhub.core.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from evalhub.core.inputs import control_errors
from evalhub.core.listing import bureau_filter, enum_filter, year_filter
from evalhub.core.models import Bureau, StoredFile, User
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, EngagementState, ObjectType, PlanItem, ServiceKind
from evalhub.registry.forms import firm_name_filter
from evalhub.registry.models import Expert
from evalhub.review import ratings, services
from evalhub.review.models import (
    Grade, IndicatorCategory, InvitationStatus, PanelInvitation, PanelStatus, Publication, Review, ReviewPanel,
    ReviewStatus, Rubric, RubricKind, Submission, SubmissionKind,
)

TAG_SUBMISSIONS = "方案与报告提交"
TAG_REVIEWS = "专家评审"
TAG_PUBLIC = "信息公开"


# --- serialisation helpers -------------------------------------------------------------------------

def _engagement_ref(engagement: Engagement) -> dict:
    return {"id": engagement.id, "reference": engagement.reference, "name": engagement.name}


def _expert_label(index: int) -> str:
    return "专家" + (chr(ord("A") + index) if index < 26 else str(index + 1))


# --- schemas ---------------------------------------------------------------------------------------

SUBMISSION_KIND = labeled_schema(SubmissionKind)
GRADE = labeled_schema(Grade)
INDICATOR_CATEGORY = labeled_schema(IndicatorCategory)
INVITATION_STATUS = labeled_schema(InvitationStatus)
REVIEW_STATUS = labeled_schema(ReviewStatus)
PANEL_STATUS = labeled_schema(PanelStatus)

REVIEW_ENGAGEMENT_REF = schema("ReviewEngagementRef", {"type": "object", "required": ["id", "reference", "name"],
                                                       "properties": {
    "id": INTEGER, "reference": {"type": "string", "description": "任务编号，如 652800-2025-001"}, "name": STRING}})

SUBMISSION_FILE = schema("SubmissionFile", {"type": "object", "required": ["name", "sha256", "size"], "properties": {
    "name": {"type": "string", "description": "上传时的文件名"},
    "sha256": {"type": "string", "description": "文件内容的 SHA-256（十六进制）"},
    "size": {"type": "integer", "description": "字节数"}, "content_type": STRING}})

MACHINE_CHECK = schema("MachineCheck", {"type": "object", "required": ["code", "label", "ok", "detail"], "properties": {
    "code": {"type": "string", "description": "weights_sum、output_benefit_share、scores_within_weights、total_adds_up、"
                                              "grade_matches_band、chapters_present、chapters_unique"},
    "label": STRING, "ok": BOOLEAN, "detail": STRING}})

REPORT_INDICATOR = schema("ReportIndicator", {"type": "object", "required": ["category", "name", "weight", "score"],
                                              "properties": {
    "position": INTEGER, "category": INDICATOR_CATEGORY, "name": STRING, "weight": NUMBER, "score": NUMBER}})

PANEL_SUMMARY = schema("SubmissionPanel", {"type": "object", "required": ["round", "status"], "properties": {
    "round": {"type": "integer", "description": "第几轮评审"}, "status": PANEL_STATUS,
    "review_due": NULLABLE_DATETIME}})

SUBMISSION = schema("Submission", {"type": "object", "required": ["id", "kind", "version", "file", "machine_checks"],
                                   "properties": {
    "id": INTEGER, "engagement": REVIEW_ENGAGEMENT_REF, "kind": SUBMISSION_KIND,
    "version": {"type": "integer", "description": "同一任务同类文件的第几版"},
    "file": SUBMISSION_FILE, "note": NULLABLE_STRING,
    "concluded_total": {"type": "number", "nullable": True, "description": "报告结论总分（仅评价报告）"},
    "concluded_grade": nullable(GRADE),
    "indicators": {"type": "array", "items": REPORT_INDICATOR, "description": "报告的指标评分表（仅评价报告）"},
    "machine_checks": {"type": "array", "items": MACHINE_CHECK, "description": "机器核对结果（仅评价报告；实施方案为空）"},
    "submitted_at": NULLABLE_DATETIME,
    "panel": nullable(PANEL_SUMMARY)}})

SUBMISSION_UPLOAD = schema("SubmissionUpload", {"type": "object", "required": ["kind", "file"], "properties": {
    "kind": {"type": "string", "enum": ["work_plan", "report", "实施方案", "评价报告"],
             "description": "work_plan（实施方案）或 report（评价报告）"},
    "file": {"type": "string", "format": "binary", "description": "Word (.docx) 或 PDF"},
    "indicators": text(100000, "仅评价报告：指标评分表，JSON 数组字符串，每行 "
                               '{"category": "决策|过程|产出|效益（或 decision…）", "name": "…", "weight": 10, "score": 9}'
                               "（权重、得分 0–100）"),
    "concluded_total": text(12, "仅评价报告：报告结论总分（0–100）"),
    "concluded_grade": choice(Grade, "仅评价报告：报告结论等级"),
    "note": text(2000, "说明（可选）")}})

SUBMISSION_LIST = schema("SubmissionList", list_schema(SUBMISSION))

REVIEW_LIST_ITEM = schema("ReviewListItem", {"type": "object", "required": ["invitation", "engagement", "kind"],
                                             "properties": {
    "id": {"type": "integer", "nullable": True, "description": "评审意见编号（接受邀请后才有）"},
    "invitation": {"type": "object", "required": ["id", "status"], "properties": {
        "id": INTEGER, "status": INVITATION_STATUS, "respond_by": NULLABLE_DATETIME, "responded_at": NULLABLE_DATETIME}},
    "engagement": REVIEW_ENGAGEMENT_REF, "kind": SUBMISSION_KIND,
    "round": INTEGER, "version": INTEGER, "panel_status": PANEL_STATUS,
    "due": {"type": "string", "format": "date-time", "description": "评审截止时间"},
    "status": nullable(REVIEW_STATUS), "total": NULLABLE_NUMBER, "submitted_at": NULLABLE_DATETIME}})
REVIEW_LIST = schema("ReviewList", list_schema(REVIEW_LIST_ITEM))

REVIEW_ITEM = schema("ReviewRubricItem", {"type": "object", "required": ["id", "name", "max_points"], "properties": {
    "id": {"type": "integer", "description": "评分项编号（保存草稿时作为 scores / comments 的键）"},
    "position": INTEGER, "name": STRING, "description": STRING, "max_points": NUMBER,
    "points": NULLABLE_NUMBER, "comment": NULLABLE_STRING}})

PEER_REVIEW = schema("PeerReview", {"type": "object", "required": ["label", "total"], "properties": {
    "label": {"type": "string", "description": "匿名标识（专家A、专家B…），不含姓名"},
    "total": NULLABLE_NUMBER, "opinion": NULLABLE_STRING, "submitted_at": NULLABLE_DATETIME,
    "scores": {"type": "array", "items": {"type": "object", "properties": {
        "item_id": INTEGER, "points": NUMBER, "comment": STRING}}}}})

REVIEW_DETAIL = schema("ReviewDetail", {"type": "object", "required": ["id", "status", "rubric", "items", "others"],
                                        "properties": {
    "id": INTEGER, "status": REVIEW_STATUS, "total": NULLABLE_NUMBER, "opinion": NULLABLE_STRING,
    "submitted_at": NULLABLE_DATETIME, "updated_at": NULLABLE_DATETIME,
    "engagement": REVIEW_ENGAGEMENT_REF,
    "panel": {"type": "object", "properties": {
        "round": INTEGER, "status": PANEL_STATUS, "due": DATETIME, "size": INTEGER,
        "score": {"type": "number", "nullable": True, "description": "评审组综合得分（出结果后）"},
        "passed": NULLABLE_BOOLEAN}},
    "submission": SUBMISSION,
    "rubric": {"type": "object", "properties": {"id": INTEGER, "title": STRING, "version": INTEGER, "max_total": NUMBER}},
    "items": {"type": "array", "items": REVIEW_ITEM},
    "others": {"type": "array", "items": PEER_REVIEW,
               "description": "本人提交后才可见：同组其他专家已提交的评审意见（匿名）"}}})

REVIEW_DRAFT = schema("ReviewDraft", {"type": "object", "properties": {
    "scores": {"type": "object", "additionalProperties": {"oneOf": [{"type": "number", "minimum": 0, "maximum": 100},
                                                                     text(12)], "nullable": True},
               "description": "评分项编号 → 得分（0–该项分值）；未给出的评分项保持不变，给出 null 或空字符串则清除已保存的得分"
                              "（提交时须重新打分）"},
    "comments": {"type": "object", "additionalProperties": text(5000, nullable=True),
                 "description": "评分项编号 → 评分理由（未打分的评分项也可先写理由）；未给出的评分项保持不变，null 或空字符串清除"},
    "opinion": text(10000, "总体评审意见；不给出则保持不变", nullable=True)}})

EXPERT_TOTAL = schema("PanelExpertTotal", {"type": "object", "required": ["expert", "status"], "properties": {
    "expert": {"type": "object", "properties": {"id": INTEGER, "name": STRING}},
    "status": REVIEW_STATUS, "total": NULLABLE_NUMBER, "submitted_at": NULLABLE_DATETIME}})

PANEL_OUTCOME = schema("PanelOutcome", {"type": "object", "required": ["id", "kind", "round", "status"], "properties": {
    "id": INTEGER, "kind": SUBMISSION_KIND, "round": INTEGER,
    "version": {"type": "integer", "description": "评审的提交版本"},
    "status": PANEL_STATUS, "size": INTEGER, "review_due": NULLABLE_DATETIME,
    "communicated": {"type": "boolean", "description": "结果是否已告知机构（通过，或整改意见已发出）"},
    "score": NULLABLE_NUMBER, "spread": {"type": "number", "nullable": True, "description": "专家总分的极差"},
    "spread_flagged": NULLABLE_BOOLEAN, "pass_mark": NULLABLE_NUMBER, "passed": NULLABLE_BOOLEAN,
    "decided_at": NULLABLE_DATETIME,
    "letter": {"type": "string", "nullable": True,
               "description": "汇总评审意见函（不含专家姓名和个人评分）；机构在发出后可见，财政局可见草稿"},
    "letter_sent_at": NULLABLE_DATETIME, "resubmit_due": NULLABLE_DATETIME,
    "experts": {"type": "array", "items": EXPERT_TOTAL, "description": "仅财政局用户：各专家的总分"}}})
PANEL_OUTCOME_LIST = schema("PanelOutcomeList", {"type": "object", "required": ["items"], "properties": {
    "engagement": REVIEW_ENGAGEMENT_REF, "items": {"type": "array", "items": PANEL_OUTCOME}}})

PUBLIC_REPORT = schema("PublicReport", {"type": "object", "required": ["id", "year", "bureau", "download_url"],
                                        "properties": {
    "id": {"type": "integer", "description": "公开记录编号"},
    "reference": STRING, "name": {"type": "string", "description": "评价对象（任务）名称"},
    "year": INTEGER,
    "bureau": {"type": "object", "properties": {"code": STRING, "name": STRING, "short_name": STRING}},
    "object_type": labeled_definition(ObjectType),
    "firm": {"type": "object", "nullable": True, "properties": {"name": STRING}},
    "published_at": DATETIME,
    "download_url": {"type": "string", "description": "脱密报告下载地址（无需登录）"}}})
PUBLIC_REPORT_LIST = schema("PublicReportList", list_schema(PUBLIC_REPORT))


# --- submissions -----------------------------------------------------------------------------------

def _file_json(stored: StoredFile) -> dict:
    return {"name": stored.original_name, "sha256": stored.sha256, "size": stored.size,
            "content_type": stored.content_type}


def submission_json(submission: Submission, *, with_panel: bool = True) -> dict:
    out = {
        "id": submission.id, "engagement": _engagement_ref(submission.engagement or submission.self_evaluation),
        "kind": labeled(submission.kind), "version": submission.version, "file": _file_json(submission.file),
        "note": submission.note, "concluded_total": number(submission.concluded_total),
        "concluded_grade": labeled(submission.concluded_grade),
        "indicators": [{"position": i.position, "category": labeled(i.category), "name": i.name,
                        "weight": number(i.weight), "score": number(i.score)} for i in submission.indicators],
        "machine_checks": list(submission.machine_checks or []),
        "submitted_at": datetime_str(submission.submitted_at),
    }
    if with_panel:
        panel = submission.panel
        out["panel"] = ({"round": panel.round, "status": labeled(panel.status), "review_due": datetime_str(panel.review_due)}
                        if panel is not None else None)
    return out


def _engagement_or_404(engagement_id: int) -> Engagement:
    engagement = db.session.get(Engagement, engagement_id)
    if engagement is None:
        raise NotFound("未找到该评价任务。")
    return engagement


def _visible_engagement(engagement_id: int) -> Engagement:
    return visible(Engagement, engagement_id, "engagement.view", "未找到该评价任务。")


def _parse_indicators(raw: str | None, errors: dict[str, str]) -> list[services.IndicatorInput]:
    """The indicators form field: a JSON array of {category, name, weight, score}. Shape errors only; the
    service checks the values."""
    if raw is None or not raw.strip():
        return []
    try:
        rows = json.loads(raw)
    except (ValueError, RecursionError):  # "[[[[…" nested past the parser's depth: not a table either
        errors["indicators"] = "指标评分表应为 JSON 数组"
        return []
    if not isinstance(rows, list):
        errors["indicators"] = "指标评分表应为 JSON 数组"
        return []
    bad_text = control_errors(rows, "indicators")  # the JSON inside the form field: "\u0000" is a NUL here
    if bad_text:
        errors.update(bad_text)
        return []
    out = []
    for position, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            errors[f"indicator_{position}"] = f"第 {position} 行应为含 category、name、weight、score 的对象"
            continue
        bad = [k for k in ("category", "name") if not isinstance(row.get(k), str)]
        bad += [k for k in ("weight", "score")
                if isinstance(row.get(k), bool) or not isinstance(row.get(k), (int, float, str))]
        if bad:
            errors[f"indicator_{position}"] = f"第 {position} 行缺少或类型错误：" + "、".join(bad)
            continue
        out.append(services.IndicatorInput(row["category"], row["name"], row["weight"], row["score"]))
    return out


@operation("/engagements/<int:engagement_id>/submissions", "POST",
           summary="承担任务的第三方机构上传实施方案或评价报告（新版本）；报告附指标评分表和结论，返回机器核对结果",
           tag=TAG_SUBMISSIONS, response=SUBMISSION, status=201, body=SUBMISSION_UPLOAD,
           body_content_type="multipart/form-data", errors=(400, 403, 404, 409, 422))
def create_submission(engagement_id: int):
    user = api_user()
    engagement = _visible_engagement(engagement_id)  # what the caller may not see does not exist (404)
    # Only the contracted firm uploads; anyone else is refused before the engagement's state is revealed.
    if user.role != Role.FIRM_USER:
        raise PermissionDenied("只有承担该任务的第三方机构可以提交。")
    if request.mimetype != "multipart/form-data":
        raise DomainError("请求体必须是 multipart/form-data（字段 kind、file 等）。")
    form = request.form
    try:
        kind = SubmissionKind.from_label(form.get("kind", ""))
    except ValueError:
        raise ValidationFailed("请选择提交类型。", {"kind": "可选值：work_plan（实施方案）、report（评价报告）"})
    errors: dict[str, str] = {}
    upload = request.files.get("file")
    filename, data = "", b""
    if upload is None or not upload.filename:
        errors["file"] = "请选择要上传的文件"
    else:
        filename, data = upload.filename, upload.read()
    indicators: list[services.IndicatorInput] = []
    if kind == SubmissionKind.REPORT:
        indicators = _parse_indicators(form.get("indicators"), errors)
        if any(k.startswith("indicator") for k in errors):
            indicators = []  # a malformed table is never half-saved
    try:
        submission = services.submit(engagement, kind, filename, data, user, indicators=indicators,
                                     concluded_total=form.get("concluded_total"),
                                     concluded_grade=form.get("concluded_grade"), note=form.get("note"))
    except ValidationFailed as exc:
        fields = dict(exc.fields)
        if any(k.startswith("indicator") for k in errors):
            fields.pop("indicators", None)  # ours say what is wrong with the table's shape
        raise_if({**fields, **errors})
        raise
    if errors:  # defensive: the service should have refused already
        db.session.rollback()
        raise_if(errors)
    db.session.commit()
    return jsonify(submission_json(submission)), 201


@operation("/engagements/<int:engagement_id>/submissions", "GET",
           summary="任务的实施方案和评价报告各版本（财政局、承担机构；专家只看到本人已接受评审的版本）",
           tag=TAG_SUBMISSIONS, response=SUBMISSION_LIST,
           params=[query("kind", "work_plan（实施方案）或 report（评价报告）"), *PAGE_PARAMS], errors=(400, 404, 422))
def list_submissions(engagement_id: int):
    user = api_user()
    engagement = _engagement_or_404(engagement_id)
    stmt = sa.select(Submission).where(Submission.engagement_id == engagement.id)
    if not permissions.can(user, "engagement.view", engagement):
        if user.role != Role.EXPERT or user.expert_id is None:
            raise NotFound("未找到该评价任务。")
        # An expert reads only the versions on panels they accepted.
        accepted = (sa.select(ReviewPanel.submission_id).join(PanelInvitation, PanelInvitation.panel_id == ReviewPanel.id)
                    .where(PanelInvitation.expert_id == user.expert_id,
                           PanelInvitation.status == InvitationStatus.ACCEPTED))
        stmt = stmt.where(Submission.id.in_(accepted))
        if not db.session.execute(stmt.limit(1)).first():
            raise NotFound("未找到该评价任务。")
    return list_response(stmt, enum_filter("kind", SubmissionKind, Submission.kind, hint="可选值：work_plan、report"),
                         options=[selectinload(Submission.file), selectinload(Submission.indicators),
                                  selectinload(Submission.panel)],
                         order_by=[Submission.submitted_at, Submission.id], item=submission_json)


# --- an expert's reviews ---------------------------------------------------------------------------

def _require_expert(user: User) -> None:
    if user.role != Role.EXPERT or user.expert_id is None:
        raise PermissionDenied("只有评审专家可以查看本人的评审。")


def _own_review(review_id: int) -> Review:
    user = api_user()
    _require_expert(user)
    review = db.session.get(Review, review_id)
    if review is None or not services.reads_own_review(review, user):
        raise NotFound("未找到该评审。")  # another expert's review (or a released seat's) does not exist for this one
    return review


def review_list_json(invitation: PanelInvitation) -> dict:
    panel, review = invitation.panel, invitation.review
    return {
        "id": review.id if review else None,
        "invitation": {"id": invitation.id, "status": labeled(invitation.status),
                       "respond_by": datetime_str(invitation.respond_by), "responded_at": datetime_str(invitation.responded_at)},
        "engagement": _engagement_ref(panel.subject), "kind": labeled(panel.kind), "round": panel.round,
        "version": panel.submission.version, "panel_status": labeled(panel.status),
        "due": datetime_str(panel.review_due),
        "status": labeled(review.status) if review else None, "total": number(review.total) if review else None,
        "submitted_at": datetime_str(review.submitted_at) if review else None,
    }


def review_detail_json(review: Review, user: User) -> dict:
    panel = review.invitation.panel
    mine = {s.rubric_item_id: s for s in review.scores}
    others: list[dict] = []
    if review.status == ReviewStatus.SUBMITTED:
        # Labels follow the order members joined the panel, so 专家A stays 专家A as others submit.
        members = sorted((i for i in panel.invitations if i.review is not None and i.review.id != review.id),
                         key=lambda i: i.id)
        labels = {i.review.id: _expert_label(n) for n, i in enumerate(members)}
        for other in services.visible_reviews(panel, user):
            if other.id == review.id or other.status != ReviewStatus.SUBMITTED:
                continue
            others.append({"label": labels[other.id], "total": number(other.total), "opinion": other.opinion,
                           "submitted_at": datetime_str(other.submitted_at),
                           "scores": [{"item_id": s.rubric_item_id, "points": number(s.points), "comment": s.comment}
                                      for s in sorted(other.scores, key=lambda s: s.item.position)]})
        others.sort(key=lambda o: o["label"])
    rubric = review.rubric
    return {
        "id": review.id, "status": labeled(review.status), "total": number(review.total), "opinion": review.opinion,
        "submitted_at": datetime_str(review.submitted_at), "updated_at": datetime_str(review.updated_at),
        "engagement": _engagement_ref(panel.subject),
        "panel": {"round": panel.round, "status": labeled(panel.status), "due": datetime_str(panel.review_due),
                  "size": panel.size, "score": number(panel.score), "passed": panel.passed},
        "submission": submission_json(panel.submission, with_panel=False),
        "rubric": {"id": rubric.id, "title": rubric.title, "version": rubric.version, "max_total": number(rubric.max_total)},
        "items": [{"id": item.id, "position": item.position, "name": item.name, "description": item.description,
                   "max_points": number(item.max_points),
                   "points": number(mine[item.id].points) if item.id in mine else None,
                   "comment": mine[item.id].comment if item.id in mine else None} for item in rubric.items],
        "others": others,
    }


@operation("/reviews", "GET", summary="当前专家本人的评审邀请和评审意见（任务、截止时间、状态）", tag=TAG_REVIEWS,
           response=REVIEW_LIST, params=[query("status", "按邀请状态筛选：" + "、".join(
               f"{s.value}（{s.label}）" for s in InvitationStatus)), *PAGE_PARAMS], errors=(400, 403, 422))
def list_reviews():
    user = api_user()
    _require_expert(user)
    stmt = (sa.select(PanelInvitation).join(ReviewPanel, ReviewPanel.id == PanelInvitation.panel_id)
            .where(PanelInvitation.expert_id == user.expert_id))
    return list_response(stmt, enum_filter("status", InvitationStatus, PanelInvitation.status),
                         options=[selectinload(PanelInvitation.review),
                                  selectinload(PanelInvitation.panel).selectinload(ReviewPanel.engagement),
                                  selectinload(PanelInvitation.panel).selectinload(ReviewPanel.submission)],
                         order_by=[ReviewPanel.review_due.desc(), PanelInvitation.id.desc()], item=review_list_json)


@operation("/reviews/<int:review_id>", "GET",
           summary="本人的一份评审：评分表（含分值）、已填得分和理由、总体意见；本人提交后可见同组其他专家的意见（匿名）",
           tag=TAG_REVIEWS, response=REVIEW_DETAIL, errors=(403, 404))
def get_review(review_id: int):
    return jsonify(review_detail_json(_own_review(review_id), api_user()))


def _item_map(data: dict, name: str, item_ids: set[int], errors: dict[str, str], *, text: bool) -> dict[int, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors[name] = "应为对象：评分项编号 → " + ("评分理由" if text else "得分")
        return {}
    out: dict[int, Any] = {}
    for key, raw in value.items():
        try:
            item_id = int(key)
        except (TypeError, ValueError):
            item_id = None
        if item_id not in item_ids:
            errors[f"{name}.{key}"] = f"评分表中没有编号为 {key} 的评分项"
            continue
        ok = (raw is None or isinstance(raw, str)) if text else \
            (raw is None or (isinstance(raw, (int, float, str)) and not isinstance(raw, bool)))
        if not ok:
            errors[f"{name}.{key}"] = "必须是字符串" if text else "必须是数字"
            continue
        out[item_id] = raw
    return out


@operation("/reviews/<int:review_id>", "PUT",
           summary="保存评审草稿：各评分项得分和理由、总体意见（请求中未给出的评分项和意见保持不变；给出 null 的得分或理由被清除）",
           tag=TAG_REVIEWS, response=REVIEW_DETAIL, body=REVIEW_DRAFT, errors=(400, 403, 404, 409, 422))
def save_review(review_id: int):
    user = api_user()
    review = _own_review(review_id)
    data = json_body()
    item_ids = {i.id for i in review.rubric.items}
    errors: dict[str, str] = {}
    scores = _item_map(data, "scores", item_ids, errors, text=False)
    comments = _item_map(data, "comments", item_ids, errors, text=True)
    opinion = data.get("opinion", review.opinion)
    if opinion is not None and not isinstance(opinion, str):
        errors["opinion"] = "必须是字符串"
    raise_if(errors)
    services.save_review(review, user, scores=scores, comments=comments, opinion=opinion)
    db.session.commit()
    return jsonify(review_detail_json(review, user))


@operation("/reviews/<int:review_id>/submit", "POST",
           summary="提交评审意见（须为每个评分项打分并填写理由、填写总体意见；提交后不能修改）",
           tag=TAG_REVIEWS, response=REVIEW_DETAIL, errors=(403, 404, 409, 422))
def submit_review(review_id: int):
    user = api_user()
    review = _own_review(review_id)
    services.submit_review(review, user)
    db.session.commit()
    return jsonify(review_detail_json(review, user))


# --- panel outcomes --------------------------------------------------------------------------------

def _communicated(panel: ReviewPanel) -> bool:
    """Whether the firm has been told: a pass is final at once; a failure once the bureau sends the letter."""
    return panel.decided_at is not None and (bool(panel.passed) or panel.letter_sent_at is not None)


def outcome_json(panel: ReviewPanel, user: User) -> dict:
    bureau_side = user.role in BUREAU_SIDE
    shown = bureau_side or _communicated(panel)
    out = {
        "id": panel.id, "kind": labeled(panel.kind), "round": panel.round, "version": panel.submission.version,
        "status": labeled(panel.status), "size": panel.size, "review_due": datetime_str(panel.review_due),
        "communicated": _communicated(panel),
        "score": number(panel.score) if shown else None,
        "spread": number(panel.spread) if shown else None,
        "spread_flagged": panel.spread_flagged if shown and panel.decided_at else None,
        "pass_mark": number(panel.pass_mark) if shown else None,
        "passed": panel.passed if shown else None,
        "decided_at": datetime_str(panel.decided_at) if shown else None,
        "letter": panel.letter if (bureau_side or _communicated(panel)) else None,
        "letter_sent_at": datetime_str(panel.letter_sent_at),
        "resubmit_due": datetime_str(panel.resubmit_due),
    }
    if bureau_side:
        reviews = sorted(services.visible_reviews(panel, user), key=lambda r: r.invitation_id)
        out["experts"] = [{"expert": {"id": r.invitation.expert.id, "name": r.invitation.expert.name},
                           "status": labeled(r.status), "total": number(r.total),
                           "submitted_at": datetime_str(r.submitted_at)} for r in reviews]
    return out


@operation("/engagements/<int:engagement_id>/outcomes", "GET",
           summary="任务各轮专家评审结果（综合得分、极差、通过线、是否通过、汇总意见函）；机构看不到专家姓名和个人评分",
           tag=TAG_REVIEWS, response=PANEL_OUTCOME_LIST, errors=(404,))
def list_outcomes(engagement_id: int):
    user = api_user()
    engagement = _visible_engagement(engagement_id)
    panels = db.session.execute(
        sa.select(ReviewPanel).where(ReviewPanel.engagement_id == engagement.id)
        .options(selectinload(ReviewPanel.submission),
                 selectinload(ReviewPanel.invitations).options(selectinload(PanelInvitation.review),
                                                               selectinload(PanelInvitation.expert)))
        .order_by(ReviewPanel.created_at, ReviewPanel.id)).scalars().all()
    return jsonify({"engagement": _engagement_ref(engagement), "items": [outcome_json(p, user) for p in panels]})


# --- published reports (no login) ------------------------------------------------------------------

def public_report_json(publication: Publication) -> dict:
    engagement = publication.engagement
    return {
        "id": publication.id, "reference": engagement.reference, "name": engagement.name, "year": engagement.year,
        "bureau": {"code": engagement.bureau.code, "name": engagement.bureau.name,
                   "short_name": engagement.bureau.short_name},
        "object_type": labeled(engagement.plan_item.object_type),
        "firm": {"name": engagement.firm.name} if engagement.firm else None,
        "published_at": datetime_str(publication.published_at),
        "download_url": f"/public/reports/{publication.id}/file",
    }


@operation("/public/reports", "GET", summary="已公开的评价报告（脱密版本；无需登录）", tag=TAG_PUBLIC,
           response=PUBLIC_REPORT_LIST, auth=False,
           params=[YEAR_QUERY, query("bureau", "财政局的行政区划代码"),
                   query("object_type", "评价对象类型：" + "、".join(f"{t.value}（{t.label}）" for t in ObjectType)),
                   query("firm", "按第三方机构名称模糊查找"), *PAGE_PARAMS],
           errors=(400, 422))
def list_public_reports():
    stmt = (sa.select(Publication).join(Engagement, Engagement.id == Publication.engagement_id)
            .where(Publication.classified.is_(False), Publication.redacted_file_id.is_not(None),
                   Publication.published_at.is_not(None),
                   Engagement.state.in_([EngagementState.PUBLISHED, EngagementState.ARCHIVED])))
    return list_response(
        stmt, year_filter(Engagement.year), bureau_filter(Engagement.bureau_id),
        enum_filter("object_type", ObjectType, lambda stmt, kind: stmt.where(
            Engagement.plan_item_id.in_(sa.select(PlanItem.id).where(PlanItem.object_type == kind)))),
        firm_name_filter(Engagement.firm_id),
        options=[selectinload(Publication.engagement).selectinload(Engagement.bureau),
                 selectinload(Publication.engagement).selectinload(Engagement.firm),
                 selectinload(Publication.engagement).selectinload(Engagement.plan_item)],
        order_by=[Publication.published_at.desc(), Publication.id.desc()], item=public_report_json)


# --- expert ratings (issue 14): the bureau rates each seated expert after a panel; the expert's record ---------

TAG_RATINGS = "专家评价"

EXPERT_RATING = schema("ExpertRating", {"type": "object", "required": [
    "id", "panel", "expert", "timeliness", "quality", "rated_at"], "properties": {
    "id": INTEGER,
    "panel": {"type": "object", "description": "所评价的评审组（评价任务的方案或报告评审，或预算单位自评报告评审）",
              "properties": {"id": INTEGER, "kind": SUBMISSION_KIND, "round": INTEGER,
                             "subject_reference": STRING}},
    "expert": {"type": "object", "properties": {"id": INTEGER, "name": STRING}},
    "bureau": {"type": "object", "description": "作出评价的财政局", "properties": {"id": INTEGER, "name": STRING}},
    "timeliness": {"type": "integer", "minimum": 1, "maximum": 5, "description": ratings.CRITERIA["timeliness"]},
    "quality": {"type": "integer", "minimum": 1, "maximum": 5, "description": ratings.CRITERIA["quality"]},
    "note": NULLABLE_STRING, "rated_at": {"type": "string", "format": "date-time"}}})

EXPERT_RATING_INPUT = schema("ExpertRatingInput", {"type": "object", "required": ["expert_id", "timeliness", "quality"],
                                                   "properties": {
    "expert_id": {"type": "integer", "minimum": 1, "maximum": 2147483647, "description": "参加本评审组（已接受邀请）的专家编号"},
    "timeliness": {"type": "integer", "minimum": 1, "maximum": 5, "description": ratings.CRITERIA["timeliness"] + "，1–5 分"},
    "quality": {"type": "integer", "minimum": 1, "maximum": 5, "description": ratings.CRITERIA["quality"] + "，1–5 分"},
    "note": text(500, "说明；任一项不高于“不佳”线时必填（不少于 5 字）", nullable=True)}})

EXPERT_RATING_RECORD = schema("ExpertRatingRecord", {"type": "object", "required": ["expert", "excluded", "items"],
                                                     "properties": {
    "expert": {"type": "object", "properties": {"id": INTEGER, "name": STRING}},
    "excluded": {"type": "boolean", "description": "是否因持续评价不佳暂停参加随机抽取"},
    "exclusion": {"type": "array", "items": STRING, "description": "暂停抽取的理由（含预计恢复日期）"},
    "items": {"type": "array", "items": EXPERT_RATING,
              "description": "本局及下级财政局作出的评价（专家本人：全部）"},
    "elsewhere": {"type": "integer", "minimum": 0,
                  "description": "其他财政局作出、不在查看范围内的评价条数（计入是否暂停抽取）"}}})


def rating_json(rating: ratings.ExpertRating) -> dict:
    panel = rating.panel
    return {"id": rating.id,
            "panel": {"id": panel.id, "kind": labeled(panel.kind), "round": panel.round,
                      "subject_reference": panel.subject.reference},
            "expert": {"id": rating.expert.id, "name": rating.expert.name},
            "bureau": {"id": rating.bureau.id, "name": rating.bureau.name},
            "timeliness": rating.timeliness, "quality": rating.quality, "note": rating.note,
            "rated_at": datetime_str(rating.rated_at)}


@operation("/panels/<int:panel_id>/ratings", "POST",
           summary="评价专家：评审结束（已出结果）后，组织评审的财政局对参加评审组的专家按时性和意见质量各打 1–5 分"
                   "（每名专家一次；评分偏低须写明情况）；持续评价不佳的专家暂停参加随机抽取",
           tag=TAG_RATINGS, response=EXPERT_RATING, status=201, body=EXPERT_RATING_INPUT,
           errors=(400, 403, 404, 409, 422))
def rate_expert(panel_id: int):
    user = api_user()
    if user.role not in BUREAU_SIDE:
        raise PermissionDenied("只有组织评审的财政局可以评价专家。")
    panel = db.session.get(ReviewPanel, panel_id)
    if panel is None or not permissions.in_subtree(user, panel.bureau_id):
        raise NotFound("未找到该评审组。")
    data = json_body()
    errors: dict[str, str] = {}
    expert_id, timeliness, quality = (int_field(data, name, errors) for name in ("expert_id", "timeliness", "quality"))
    note = text_field(data, "note", errors)
    raise_if(errors)
    rating = ratings.rate_expert(panel, expert_id, user, timeliness=timeliness, quality=quality, note=note)
    db.session.commit()
    return jsonify(rating_json(rating)), 201


@operation("/experts/<int:expert_id>/ratings", "GET",
           summary="专家的评价记录：每次评审后的评分和说明，以及是否因持续评价不佳暂停抽取；"
                   "财政局（可见该专家的）读本局及下级财政局作出的评价（其他的只计条数），专家本人读全部，第三方机构不可查看",
           tag=TAG_RATINGS, response=EXPERT_RATING_RECORD, errors=(403, 404))
def expert_ratings(expert_id: int):
    user = api_user()
    if user.role not in BUREAU_SIDE and user.role != Role.EXPERT:
        raise PermissionDenied("第三方机构和预算单位不能查看专家评价记录。")
    expert = db.session.get(Expert, expert_id)
    if user.role == Role.EXPERT and (expert is None or user.expert_id != expert.id):
        raise PermissionDenied("专家只能查看本人的评价记录。")
    if expert is None or not permissions.can(user, "expert.ratings", expert):
        raise NotFound("未找到该专家。")
    exclusion = ratings.poor_rating_reasons(expert)
    shown = ratings.ratings_of(expert, user)
    return jsonify({"expert": {"id": expert.id, "name": expert.name}, "excluded": bool(exclusion),
                    "exclusion": exclusion, "items": [rating_json(r) for r in shown],
                    "elsewhere": ratings.ratings_elsewhere(expert, len(shown))})


# --- rubrics: the bureau's review rubrics, general or for one 委托事项, and the pass mark that goes with them -------

TAG_RUBRICS = "评审表"
RUBRIC_KIND = labeled_schema(RubricKind)
SERVICE_KIND_REF = labeled_schema(ServiceKind)

RUBRIC_ITEM = schema("RubricItem", {"type": "object", "required": ["position", "name", "max_points"], "properties": {
    "position": INTEGER, "name": STRING, "description": STRING, "max_points": NUMBER}})

RUBRIC = schema("Rubric", {"type": "object", "required": ["id", "kind", "version", "title", "items", "max_total"],
                           "properties": {
    "id": INTEGER, "kind": RUBRIC_KIND,
    "service_kind": {"allOf": [SERVICE_KIND_REF], "nullable": True,
                     "description": "该评审表所属的委托事项；null 为通用评审表"},
    "requested_service_kind": {"allOf": [SERVICE_KIND_REF], "nullable": True,
                               "description": "查询的委托事项；与 service_kind 不同时表示该委托事项尚无专用评审表，适用通用评审表"},
    "version": INTEGER, "title": STRING,
    "bureau": {"type": "object", "nullable": True, "description": "制定该评审表的财政局；null 为系统默认",
               "properties": {"id": INTEGER, "name": STRING}},
    "own": {"type": "boolean", "description": "是否为本局制定（否：沿用上级或系统默认）"},
    "max_total": NUMBER, "items": {"type": "array", "items": RUBRIC_ITEM},
    "pass_mark": {"type": "number", "nullable": True,
                  "description": "此时组建的评审组适用的通过分（按委托事项，未设置的沿用通用通过分）；委托方评价表为 null"}}})

RUBRIC_INPUT = schema("RubricInput", {"type": "object", "required": ["kind", "items"], "properties": {
    "kind": choice(RubricKind, "评审表类型"),
    "service_kind": choice(ServiceKind, "委托事项（仅实施方案评审表和评价报告评审表）；不填或 null 为通用评审表", nullable=True),
    "title": text(100, "标题；不填用默认标题", nullable=True),
    "items": {"type": "array", "minItems": 1, "maxItems": 30, "description": "评分项，分值合计须为 100",
              "items": {"type": "object", "required": ["name", "max_points"], "properties": {
                  "name": text(100, "评分项名称", name=True), "description": text(2000, "评分要点", nullable=True),
                  "max_points": {"oneOf": [{"type": "number", "minimum": 0, "maximum": 100}, text(12)],
                                 "description": "分值（大于 0，最多两位小数）"}}}}}})


def rubric_json(rubric: Rubric, bureau: Bureau, requested: ServiceKind | None) -> dict:
    submission_kind = next((k for k, r in services.RUBRIC_OF.items() if r == rubric.kind), None)
    return {
        "id": rubric.id, "kind": labeled(rubric.kind), "service_kind": labeled(rubric.service_kind),
        "requested_service_kind": labeled(requested), "version": rubric.version, "title": rubric.title,
        "bureau": {"id": rubric.bureau.id, "name": rubric.bureau.name} if rubric.bureau_id else None,
        "own": rubric.bureau_id == bureau.id, "max_total": number(rubric.max_total),
        "items": [{"position": i.position, "name": i.name, "description": i.description,
                   "max_points": number(i.max_points)} for i in rubric.items],
        "pass_mark": number(services.pass_mark_for(bureau, submission_kind, requested)) if submission_kind else None,
    }


def _rubric_kinds(kind_raw: Any, service_raw: Any) -> tuple[RubricKind, ServiceKind | None]:
    errors: dict[str, str] = {}
    kind = None
    try:
        kind = RubricKind.from_label(kind_raw if isinstance(kind_raw, str) else "")
    except ValueError:
        errors["kind"] = "评审表类型无效，可选值：" + "、".join(f"{k.value}（{k.label}）" for k in RubricKind)
    service_kind = None
    if service_raw not in (None, ""):
        try:
            service_kind = ServiceKind.from_label(service_raw if isinstance(service_raw, str) else "")
        except ValueError:
            errors["service_kind"] = "委托事项无效，可选值：" + "、".join(f"{k.value}（{k.label}）" for k in ServiceKind)
    raise_if(errors)
    return kind, services.rubric_service_kind(kind, service_kind.value if service_kind else None)


def _rubric_bureau(bureau_id: int) -> Bureau:
    user = api_user()
    if user.role not in BUREAU_SIDE:
        raise PermissionDenied("只有财政局用户可以查看评审表。")
    return visible(Bureau, bureau_id, "bureau.view", "未找到该财政局。")


@operation("/bureaus/<int:bureau_id>/rubrics", "GET",
           summary="财政局现行的评审表（通用的，或某一委托事项的；本局未制定的沿用上级或系统默认）及适用的通过分",
           tag=TAG_RUBRICS, response=RUBRIC,
           params=[query("kind", "评审表类型（必填）：" + "、".join(f"{k.value}（{k.label}）" for k in RubricKind),
                         enum=choice(RubricKind)["enum"]),
                   query("service_kind", "委托事项（仅实施方案、评价报告评审表）：" + "、".join(
                       f"{k.value}（{k.label}）" for k in ServiceKind), enum=choice(ServiceKind)["enum"])],
           errors=(400, 403, 404, 422))
def get_rubric(bureau_id: int):
    bureau = _rubric_bureau(bureau_id)
    kind, service_kind = _rubric_kinds(request.args.get("kind", ""), request.args.get("service_kind"))
    if services.ensure_default_rubrics():
        db.session.commit()
    return jsonify(rubric_json(services.current_rubric(bureau, kind, service_kind), bureau, service_kind))


@operation("/bureaus/<int:bureau_id>/rubrics", "POST",
           summary="本局管理员修订评审表（通用的，或某一委托事项专用的）：生成新版本；已组建的评审组继续使用原版本和原通过分",
           tag=TAG_RUBRICS, response=RUBRIC, status=201, body=RUBRIC_INPUT, errors=(400, 403, 404, 409, 422))
def revise_rubric(bureau_id: int):
    user = api_user()
    bureau = _rubric_bureau(bureau_id)
    if not permissions.can(user, "rubric.edit", bureau):
        raise PermissionDenied("只有本局管理员可以修订评审表。")
    data = json_body()
    kind, service_kind = _rubric_kinds(data.get("kind"), data.get("service_kind"))
    errors: dict[str, str] = {}
    rows = data.get("items")
    items: list[tuple[str, str, Any]] = []
    if not isinstance(rows, list) or not rows:
        errors["items"] = "评分项应为非空数组"
    else:
        for n, row in enumerate(rows, start=1):
            ok = (isinstance(row, dict) and isinstance(row.get("name"), str)
                  and isinstance(row.get("description", ""), (str, type(None)))
                  and isinstance(row.get("max_points"), (int, float, str)) and not isinstance(row.get("max_points"), bool))
            if not ok:
                errors[f"item_{n}"] = f"第 {n} 项应为含 name（字符串）、max_points（数字）的对象"
                continue
            if not row["name"].strip():
                errors[f"item_{n}"] = f"第 {n} 项缺少名称"
                continue
            items.append((row["name"], row.get("description") or "", row["max_points"]))
    title = text_field(data, "title", errors)
    raise_if(errors)
    rubric = services.revise_rubric(bureau, kind, items, user, title=title, service_kind=service_kind)
    db.session.commit()
    return jsonify(rubric_json(rubric, bureau, service_kind)), 201
