"""Report screening API (bureau users): score a text, the ranked queue, the texts left unscored, the model cards.

A risk score is the bureaus' own working material: firm users and experts are refused every endpoint
(403), whatever they ask. A copied passage or a near-duplicate names its source only when the caller may read
that submission (``services.shown_to``; a report withheld as classified only inside its own bureau); otherwise
it reads "另一地区报告（无权查看原文）" with the share, and no text, chapter or id. The rules live in ``screening.services``; this module reads the request, checks
its shape (wrong types are 422 with the field named, a body that is not a JSON object is 400) and writes the
answer.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify

from evalhub.core.api import api_user, json_body, list_schema, operation, page_args, schema
from evalhub.core.apiutil import (
    INTEGER, NULLABLE_DATETIME, PAGE_PARAMS, STRING, YEAR_QUERY, datetime_str, id_field, listing,
    int_field, query, raise_if, text, text_field,
)
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import User
from evalhub.core.listing import INT_MAX, read_args
from evalhub.extensions import db
from evalhub.review.models import SubmissionKind
from evalhub.screening import services
from evalhub.screening.features import FEATURES
from evalhub.screening.forms import QUEUE_FILTERS
from evalhub.screening.models import ModelStatus, RiskMethod, ScreeningModel

TAG = "报告筛查"

# --- schemas ---------------------------------------------------------------------------------------

_KINDS = [k.value for k in SubmissionKind]
_KIND_TEXT = "、".join(f"{k.value}（{k.label}）" for k in SubmissionKind)
_METHOD = {"type": "string", "enum": [m.value for m in RiskMethod],
           "description": "；".join(f"{m.value} = {m.label}" for m in RiskMethod)}
_RISK = {"type": "number", "minimum": 0, "maximum": 1, "description": "风险分（0–1，越高越需要抽查）"}
_MODEL_VERSION = {"type": "string", "nullable": True, "description": "评分所用模型的版本；规则评分时为空"}

FEATURE_VALUES = schema("ScreeningFeatures", {
    "type": "object", "description": "可解释的特征；文本或上下文不足以计算时为空（片段没有章节，未指定评价任务时没有备案预算）",
    "properties": {f.key: {"type": "number", "nullable": True, "description": f.label} for f in FEATURES},
    "additionalProperties": {"type": "number", "nullable": True}})

COPIED_PASSAGE = schema("CopiedPassage", {"type": "object", "required": [
    "text", "chapter", "relation", "source_submission_id", "source", "share"], "properties": {
    "text": {"type": "string", "nullable": True,
             "description": "本文中与已存报告重复的连续句子；来源报告无权查看时为空"},
    "chapter": {"type": "string", "nullable": True, "description": "所在章节；来源报告无权查看时为空"},
    "relation": {"type": "string", "enum": ["same_firm", "other_firms", "previous"],
                 "description": "same_firm（本机构其他报告）、other_firms（其他机构报告）、previous（同一对象以往评价报告）"},
    "source_submission_id": {"type": "integer", "nullable": True,
                             "description": "来源报告的提交编号；无权查看来源报告时为空"},
    "source": {"type": "string", "description": "来源：机构 · 任务编号 · 提交日期；无权查看来源报告"
                                                "（其他地区的报告，或其他财政局不予公开的涉密报告）时为“另一地区报告（无权查看原文）”"},
    "share": {"type": "number", "nullable": True, "minimum": 0, "maximum": 1,
              "description": "这段重复句子占本文句子的比例"}}})

SCORE_REQUEST = schema("ScreeningScoreRequest", {"type": "object", "required": ["text"], "properties": {
    "text": text(500_000, "要筛查的文本：整篇报告或片段（不超过 50 万字）"),
    "firm_id": id_field("撰写机构（用于区分本机构和其他机构的重复）"),
    "engagement_id": id_field("所属评价任务：按其备案预算、章节设置和以往报告比对（指定后 firm_id 不再使用）"),
    "kind": {"type": "string", "enum": list(services.TEXT_KINDS),
             "description": "文本类别：" + "；".join(f"{k}（{v}）" for k, v in services.TEXT_KINDS.items())
                            + "。不填时按篇幅和章节标题判断是整篇报告还是片段；片段不计算章节特征"}}})

SCORE = schema("ScreeningScore", {"type": "object", "required": [
    "risk", "method", "model_version", "kind", "features", "reasons", "gaps", "copied_passages"], "properties": {
    "risk": _RISK, "method": _METHOD, "model_version": _MODEL_VERSION,
    "kind": {"type": "string", "enum": list(services.TEXT_KINDS), "description": "按哪一类文本评分（请求未指定时为判断结果）"},
    "features": FEATURE_VALUES,
    "reasons": {"type": "array", "items": STRING,
                "description": "提示理由：使本文风险升高的特征，按对风险的实际贡献从大到小，每条写明贡献（“使风险 +0.12”）"},
    "gaps": {"type": "array", "items": STRING, "description": "具体性不足之处"},
    "copied_passages": {"type": "array", "items": COPIED_PASSAGE}}})

# What a queue row and an unscored row say of the submission they list, and why.
_SUBMISSION_PROPERTIES = {
    "submission_id": INTEGER, "version": {"type": "integer", "description": "第几版"},
    "kind": {"type": "string", "enum": _KINDS, "description": _KIND_TEXT},
    "engagement": {"type": "object", "required": ["id", "reference", "name"], "properties": {
        "id": INTEGER, "reference": STRING, "name": STRING}},
    "firm": {"type": "object", "nullable": True, "required": ["id", "name"], "properties": {
        "id": INTEGER, "name": STRING}},
    "bureau": {"type": "object", "required": ["id", "name"], "properties": {"id": INTEGER, "name": STRING}},
    "submitted_at": {"type": "string", "format": "date-time"},
    "reasons": {"type": "array", "items": STRING}}

QUEUE_ITEM = schema("ScreeningQueueItem", {"type": "object", "required": [
    "rank", "flagged", "risk", "method", "model_version", "submission_id", "version", "kind", "engagement", "firm",
    "bureau", "submitted_at", "reasons"], "properties": {
    "rank": {"type": "integer", "description": "按风险从高到低的名次（从 1 开始，跨页连续）"},
    "flagged": {"type": "boolean", "description": "是否在重点抽查比例之内"},
    "risk": _RISK, "method": _METHOD, "model_version": _MODEL_VERSION, **_SUBMISSION_PROPERTIES}})
QUEUE = schema("ScreeningQueue", list_schema(QUEUE_ITEM))

UNSCORED_ITEM = schema("ScreeningUnscoredItem", {"type": "object", "required": [
    "method", "flagged", "submission_id", "version", "kind", "engagement", "firm", "bureau", "submitted_at", "chars",
    "reasons"], "properties": {
    "method": {"type": "string", "enum": [RiskMethod.UNSCORED.value], "description": RiskMethod.UNSCORED.label},
    "flagged": {"type": "boolean", "enum": [True],
                "description": "始终建议抽查：文本无法读取的不能由筛查排除，须人工查看（不占抽查比例）"},
    "chars": {"type": "integer", "description": f"提取到的字数（不足 {services.MIN_SCORED_CHARS} 字不评分）"},
    **_SUBMISSION_PROPERTIES}})
UNSCORED = schema("ScreeningUnscored", {"type": "object", "required": ["items"], "properties": {
    "items": {"type": "array", "items": UNSCORED_ITEM,
              "description": f"最多 {services.UNSCORED_LIMIT} 份，最新提交的在前"}}})

MODEL = schema("ScreeningModel", {"type": "object", "required": [
    "id", "version", "algorithm", "status", "created_at", "promoted_at", "card"], "properties": {
    "id": INTEGER, "version": STRING, "algorithm": STRING,
    "status": {"type": "string", "enum": [s.value for s in ModelStatus],
               "description": "；".join(f"{s.value} = {s.label}" for s in ModelStatus)},
    "created_at": NULLABLE_DATETIME, "promoted_at": NULLABLE_DATETIME,
    "card": {"type": "object", "description": "模型卡：训练数据、指标、特征重要性等"}}})

MODELS = schema("ScreeningModels", {"type": "object", "required": ["active", "problem", "models"], "properties": {
    "active": {"type": "string", "nullable": True, "description": "已启用模型的版本；没有时为空（使用规则评分）"},
    "problem": {"type": "string", "nullable": True,
                "description": "已启用的模型无法使用的原因（此时改用规则评分）；可以使用时为空"},
    "models": {"type": "array", "items": MODEL, "description": "所有训练过的模型，最新的在前"}}})


# --- request helpers -------------------------------------------------------------------------------

# --- serialisation ---------------------------------------------------------------------------------

def queue_item_json(entry: services.QueueEntry) -> dict:
    s = entry.shown  # a page row (``services.queue_page``): the columns shown, no screening loaded
    return {
        "rank": entry.rank, "flagged": entry.flagged, "risk": s.risk, "method": s.method.value,
        "model_version": s.model_version, "submission_id": s.submission_id, "version": s.version,
        "kind": s.kind.value,
        "engagement": {"id": s.engagement_id, "reference": s.reference, "name": s.name},
        "firm": {"id": s.firm_id, "name": s.screening_firm_name} if s.firm_id is not None else None,
        "bureau": {"id": s.bureau_id, "name": s.screening_bureau_name},
        "submitted_at": datetime_str(s.submitted_at),
        "reasons": entry.reasons,  # as this user may read them: no other report they may not read is named
    }


def unscored_json(row) -> dict:
    e = row.engagement
    return {"method": row.method.value, "flagged": True, "submission_id": row.submission_id, "version": row.submission.version,
            "kind": row.kind.value, "engagement": {"id": e.id, "reference": e.reference, "name": e.name},
            "firm": {"id": e.firm.id, "name": e.firm.name} if e.firm is not None else None,
            "bureau": {"id": e.bureau.id, "name": e.bureau.name}, "submitted_at": datetime_str(row.submitted_at),
            "chars": int((row.features or {}).get("length_chars") or 0),
            "reasons": [r["text"] for r in row.reasons or []]}


def model_json(model: ScreeningModel) -> dict:
    return {"id": model.id, "version": model.version, "algorithm": model.algorithm, "status": model.status.value,
            "created_at": datetime_str(model.created_at), "promoted_at": datetime_str(model.promoted_at),
            "card": model.card or {}}


# --- endpoints -------------------------------------------------------------------------------------

@operation("/screening/score", "POST",
           summary="对任意文本（整篇报告或片段）做质量筛查评分，不保存；仅财政局用户",
           tag=TAG, response=SCORE, body=SCORE_REQUEST, errors=(400, 403, 422))
def screening_score():
    user = api_user()
    services.require_screening(user)
    data = json_body()
    errors: dict[str, str] = {}
    text = text_field(data, "text", errors)
    kind = text_field(data, "kind", errors)
    firm_id = int_field(data, "firm_id", errors)
    engagement_id = int_field(data, "engagement_id", errors)
    raise_if(errors)
    result = services.screen_text(text or "", user, firm_id=firm_id, engagement_id=engagement_id, kind=kind or None)
    return jsonify(result)


# The queue's filters, and who may read it: the ranked queue and the unscored list alike.
_QUEUE_PARAMS = [{**YEAR_QUERY, "required": True},
                 query("bureau_id", "只看这个财政局的任务", "integer", minimum=1, maximum=INT_MAX),
                 query("firm_id", "只看这家机构的报告", "integer", minimum=1, maximum=INT_MAX),
                 query("firm", "只看名称含这段文字的机构的报告（不超过 100 字）", "string", maxLength=100),
                 query("kind", _KIND_TEXT)]


def _queue_args() -> tuple[User, dict]:
    user = api_user()
    services.require_screening(user)
    _, args = read_args(QUEUE_FILTERS, strict=True)
    if args["year"] is None:
        raise ValidationFailed("请指定年度（参数 year）。", {"year": "必填，四位年份"})
    return user, args


@operation("/screening/queue", "GET",
           summary="某年度已筛查的方案和报告按风险从高到低排列（每个任务每类只排最新一版），"
                   "重点抽查比例之内的标记 flagged；仅财政局用户，按可见范围",
           tag=TAG, response=QUEUE,
           params=[*_QUEUE_PARAMS, *PAGE_PARAMS], errors=(400, 403, 422))
def screening_queue():
    user, args = _queue_args()
    page, per_page = page_args()
    queued = services.queue_page(user, year=args["year"], bureau_id=args["bureau_id"], firm_id=args["firm_id"],
                                 firm_name=args["firm"], kind=args["kind"], page=page, per_page=per_page)
    return listing([queue_item_json(e) for e in queued.entries], queued.total, page, per_page)


@operation("/screening/unscored", "GET",
           summary="某年度未评分的方案和报告：提取不到文本（可能是扫描件），不参与排名和抽查比例，需人工查看；"
                   "仅财政局用户，按可见范围",
           tag=TAG, response=UNSCORED,
           params=_QUEUE_PARAMS, errors=(400, 403, 422))
def screening_unscored():
    user, args = _queue_args()
    rows = services.unscored(user, year=args["year"], bureau_id=args["bureau_id"], firm_id=args["firm_id"],
                             firm_name=args["firm"], kind=args["kind"])
    return jsonify({"items": [unscored_json(r) for r in rows]})


@operation("/screening/models", "GET",
           summary="报告筛查模型：已启用的版本、无法使用的原因和各模型的模型卡；仅财政局用户",
           tag=TAG, response=MODELS, errors=(403,))
def screening_models():
    services.require_screening(api_user())
    row = services.active_model_row()
    _model, problem = services.active_model()
    models = db.session.execute(sa.select(ScreeningModel).order_by(ScreeningModel.created_at.desc(),
                                                                   ScreeningModel.id.desc())).scalars().all()
    return jsonify({"active": row.version if row is not None else None, "problem": problem,
                    "models": [model_json(m) for m in models]})
