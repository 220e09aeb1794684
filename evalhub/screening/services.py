"""Report screening rules: screen each upload, rank the year's reports, explain a flag, turn a flag into
a targeted inspection, collect labels, train and promote models. No Flask request objects here."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import aliased, defer, joinedload
from flask import current_app

from evalhub.core import audit, concurrency, jobs, permissions
from evalhub.core.batches import BatchMemory, batches
from evalhub.core.enums import JobStatus
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import Bureau, Job, User
from evalhub.core.settings import get_setting
from evalhub.core.summaries import KeptCount
from evalhub.core.timeutil import format_beijing, utcnow
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, ServiceKind
from evalhub.registry.models import Firm
from evalhub.review import services as review_services
from evalhub.review.models import ReviewPanel, Submission, SubmissionKind
from evalhub.review.permissions import quotable_submission_ids
from evalhub.screening import explain, learning, references, textproc
from evalhub.screening.features import BY_KEY, FEATURE_KEYS, Screening, ScreeningContext, compute
from evalhub.screening.index import BufferedIndex, SharedIndex, StoredReport, reference_id_of, section_copy
from evalhub.screening.models import (IndexedDocument, ModelStatus, ReferenceDocument, ReportScreening, RiskMethod,
                                      ScreeningModel, ScreeningQueueCount)

_YEAR_IN_NAME = re.compile(r"^\s*\d{4}\s*年度?|\d{4}\s*年度?")
PEER_MINIMUM = 30  # fewer peers than this in the year: compare with every year's reports of the kind
# An upload whose extracted text has fewer characters than this (whitespace, page numbers and page chrome left
# out) is not scored: a scan without a text layer, or a layout the extractor cannot read. Its densities would
# be zeros of a text never read, and the rule score turns those into a confident high risk. The shortest real
# part of a report worth a score (a conclusion, a problems section) runs to several hundred characters.
MIN_SCORED_CHARS = 200


# === context ======================================================================================

def object_key(engagement: Engagement) -> str:
    """The evaluated object across years: the budget unit and the project name without its year."""
    return f"{engagement.budget_unit_id}:{_YEAR_IN_NAME.sub('', engagement.name).strip()}"[:240]


def context_for(engagement: Engagement, kind: SubmissionKind) -> ScreeningContext:
    names = [engagement.name, _YEAR_IN_NAME.sub("", engagement.name).strip(), engagement.budget_unit.name,
             engagement.bureau.name, engagement.bureau.short_name]
    if engagement.commissioner_unit is not None:
        names.append(engagement.commissioner_unit.name)
    if engagement.firm is not None:
        names.append(engagement.firm.name)
    budget = (engagement.amount / 10000).quantize(Decimal("0.01")) if engagement.amount is not None else None
    spent = (engagement.spent / 10000).quantize(Decimal("0.01")) if engagement.spent is not None else None
    rate = (spent / budget * 100).quantize(Decimal("0.1")) if spent is not None and budget else None
    # the outline of the engagement's kind, as the panel's machine checks read it (none for a kind without one)
    chapters = review_services.report_outline(engagement) if kind == SubmissionKind.REPORT else ()
    return ScreeningContext(kind=kind.value, names=names, firm_id=engagement.firm_id, engagement_id=engagement.id,
                            object_key=object_key(engagement), year=engagement.year, budget_wan=budget,
                            spent_wan=spent, execution_rate=rate, chapters=list(chapters))


# === the shared index and the per-process model ====================================================

def forget_cache() -> None:
    """Drop this process's loaded models and peer references (tests, and after a bulk delete). The index
    itself lives in the database (``index.SharedIndex``): no process keeps a copy to forget."""
    with _lock:
        _models.clear()
        _references.clear()
        if _peer_features.memory is not None:
            _peer_features.memory.clear()


_lock = threading.Lock()


def _label(firm_name: str | None, reference: str, submitted_at: datetime) -> str:
    return f"{firm_name or '—'} · {reference} · {format_beijing(submitted_at, '%Y-%m-%d')}"


def current_index() -> SharedIndex:
    """The one index every worker shares (postings, key counts and LSH buckets in the database), read
    through this request's session: a text stored through any worker is found as soon as it commits."""
    return SharedIndex(db.session)


def index_missing(progress: Callable[[int, int, str], None] | None = None) -> int:
    """Put into the shared index every screened submission it lacks (screenings stored before the index
    moved into the database, or a bulk load): their stored keys and signatures, nothing re-read."""
    indexed = sa.select(IndexedDocument.doc_id).where(IndexedDocument.doc_id > 0)
    ids = db.session.execute(sa.select(ReportScreening.id).where(ReportScreening.submission_id.not_in(indexed))
                             .order_by(ReportScreening.id)).scalars().all()
    index = current_index()
    for n, screening_id in enumerate(ids, start=1):
        row = db.session.execute(
            sa.select(ReportScreening.submission_id, ReportScreening.firm_id, ReportScreening.engagement_id,
                      ReportScreening.object_key, ReportScreening.year, ReportScreening.kind,
                      ReportScreening.sentence_keys, ReportScreening.signature, ReportScreening.submitted_at,
                      Firm.name, Engagement.reference)
            .join(Engagement, Engagement.id == ReportScreening.engagement_id)
            .outerjoin(Firm, Firm.id == ReportScreening.firm_id).where(ReportScreening.id == screening_id)).one()
        index.add(StoredReport(doc_id=row.submission_id, firm_id=row.firm_id, engagement_id=row.engagement_id,
                               object_key=row.object_key, year=row.year, kind=row.kind.value,
                               keys=np.frombuffer(row.sentence_keys, dtype=np.uint64),
                               signature=np.frombuffer(row.signature, dtype=np.uint32),
                               label=_label(row.name, row.reference, row.submitted_at)))
        if progress and (n % 200 == 0 or n == len(ids)):
            progress(n, len(ids), f"已写入共享索引 {n}/{len(ids)}")
    return len(ids)


_models: dict[str, Any] = {}


def models_dir() -> Path:
    return Path(current_app.config["MODELS_DIR"])


def active_model_row() -> ScreeningModel | None:
    return db.session.execute(sa.select(ScreeningModel).where(ScreeningModel.status == ModelStatus.ACTIVE)).scalar_one_or_none()


def active_model() -> tuple[learning.LoadedModel | None, str | None]:
    """The promoted model, loaded once per process; (None, why) when there is none or it cannot be used
    (then the rule score is used and the pages say why)."""
    row = active_model_row()
    if row is None:
        return None, None
    cached = _models.get(row.version)
    if cached is None:
        try:
            cached = learning.load(models_dir(), row.artefact)
        except (learning.IncompatibleModel, FileNotFoundError, ValueError) as exc:
            return None, str(exc)  # not cached: a restored file is picked up on the next call
        _models[row.version] = cached
    return cached, None


def load_active_model_at_start(app) -> None:
    """Called by create_app: load the active model now and log plainly if it cannot be used."""
    with app.app_context():
        try:
            _model, problem = active_model()
        except sa.exc.SQLAlchemyError:  # before `flask db upgrade` there is no table yet
            db.session.rollback()
            return
        if problem:
            app.logger.error("报告筛查模型不可用，改用规则评分：%s", problem)


# === peers, risk, reasons ===========================================================================

_references: dict[tuple, learning.Reference] = {}


def peer_reference(kind: str, year: int | None) -> learning.Reference:
    """The year's screened texts of the same kind (all years while a year has fewer than 30)."""
    # The cache is valid while no screening was added or re-screened (by any process) since it was built.
    stamp = tuple(db.session.execute(sa.select(sa.func.count(ReportScreening.id), sa.func.max(ReportScreening.id),
                                               sa.func.max(ReportScreening.screened_at))).one())
    token = (kind, year, stamp, str(db.engine.url))
    cached = _references.get(token)
    if cached is not None:
        return cached
    stmt = sa.select(ReportScreening.id, ReportScreening.screened_at).where(ReportScreening.kind == SubmissionKind(kind),
                                                                           is_scored())
    rows = db.session.execute(stmt.where(ReportScreening.year == year)).all() if year else []
    if len(rows) < PEER_MINIMUM:
        rows = db.session.execute(stmt).all()
    reference = learning.Reference(_features_of(rows))
    if len(_references) > 64:
        _references.clear()
    _references[token] = reference
    return reference


# Within a batch (``peer_features_kept``: a year's rescreen, the demo's archive): (database, screening id) ->
# (screened_at, features), the stored features of a screening read once per version. A batch screens hundreds of
# texts, each against a reference of its peers that changed by one row since the last. Outside a batch nothing is
# kept: a long-lived worker keeps no copy of the year's features (some 3 KB a screening).
_peer_features: BatchMemory[tuple[str, int], tuple[datetime, dict[str, Any]]] = BatchMemory()
peer_features_kept = _peer_features.kept


def _features_of(rows: list) -> list[dict[str, Any]]:
    """The stored features of the screenings ``rows`` (id, screened_at): within a batch, those read at that version
    from memory, the others from the database (re-screening sets screened_at with the features)."""
    kept = _peer_features.memory
    if kept is None:
        ids = [id_ for id_, _at in rows]
        found = {}
        for part in batches(ids, 900):
            found.update(db.session.execute(sa.select(ReportScreening.id, ReportScreening.features)
                                            .where(ReportScreening.id.in_(part))).all())
        return [found[id_] for id_ in ids if id_ in found]
    url = str(db.engine.url)
    missing = [id_ for id_, at in rows if kept.get((url, id_), (None,))[0] != at]
    fetched: dict[int, dict[str, Any]] = {}
    for part in batches(missing, 900):
        for id_, at, features in db.session.execute(sa.select(ReportScreening.id, ReportScreening.screened_at,
                                                              ReportScreening.features).where(ReportScreening.id.in_(part))):
            fetched[id_] = features
            kept[(url, id_)] = (at, features)
    out = []
    for id_, _at in rows:
        features = fetched[id_] if id_ in fetched else kept.get((url, id_), (None, None))[1]
        if features is not None:  # None: deleted since the ids were read
            out.append(features)
    return out


def assess(screening: Screening, ctx: ScreeningContext) -> dict[str, Any]:
    """Risk, method and reasons for computed features."""
    reference = peer_reference(ctx.kind, ctx.year)
    model, _problem = active_model() if ctx.kind == SubmissionKind.REPORT.value else (None, None)
    if model is not None:
        risk, method, version = float(model.predict([screening.features])[0]), RiskMethod.MODEL, model.version
    else:
        risk, method, version = reference.rule_score(screening.features), RiskMethod.RULE, None
    return {"risk": round(risk, 4), "method": method, "model_version": version,
            "reasons": _explained(screening.features, _details(screening), model, reference), "peers": reference.size}


def _explained(features: dict[str, Any], details: dict[str, Any], model: Any, reference: Any) -> list[dict[str, Any]]:
    """The features that moved this risk, by their exact contribution (screening.explain, H6a), under the model (or
    rule score) that gave it. A near-duplicate names the other report; who may read that name is decided when it
    is shown (shown_to)."""
    dup = (details.get("near_duplicates") or [None])[0]
    return explain.reasons(features, model, reference=reference, limit=6, missing=details.get("missing") or (),
                           duplicated=details.get("duplicated") or (), near_duplicate=None if dup is None else {
                               "doc_id": dup["doc_id"], "jaccard": dup["jaccard"],
                               "text": _near_duplicate_text(dup["label"], dup["jaccard"])})


def _details(screening: Screening) -> dict[str, Any]:
    return {"chapters": screening.chapters, "most_similar": screening.most_similar,
            "near_duplicates": screening.near_duplicates, "gaps": screening.gaps, "missing": screening.missing,
            "duplicated": screening.duplicated}


def unreadable(features: dict[str, Any]) -> bool:
    """Whether too little text was extracted to score it (``MIN_SCORED_CHARS``)."""
    return float(features.get("length_chars") or 0) < MIN_SCORED_CHARS


def unscored_reason(features: dict[str, Any]) -> dict[str, Any]:
    """The one reason an unscored text shows (card, queue, export, API, the expert's page)."""
    chars = int(features.get("length_chars") or 0)
    return {"feature": None, "contribution": 0.0, "percentile": None, "value": chars, "neutral": None,
            "text": f"{RiskMethod.UNSCORED.label}：只提取到 {chars} 字（不足 {MIN_SCORED_CHARS} 字），"
                    f"无法计算风险和排名，请人工查看原件"}


def is_scored(rs: type[ReportScreening] = ReportScreening) -> sa.ColumnElement[bool]:
    """The screenings that have a risk (ranked, counted, compared with, learned from)."""
    return rs.method != RiskMethod.UNSCORED


# === screening submissions ==========================================================================

def screen_submission(submission: Submission, index: SharedIndex | BufferedIndex | None = None) -> ReportScreening:
    """Screen an uploaded version against every stored text and keep the result (the firm never sees it).
    ``index``: a batch's BufferedIndex; by default the shared index."""
    engagement = submission.engagement
    ctx = context_for(engagement, submission.kind)
    index = index if index is not None else current_index()
    screening = compute(submission.file.text or "", ctx, index)
    blank = unreadable(screening.features)
    if blank:  # nothing to judge: what a gap or a missing chapter would say is about words never read
        screening.gaps, screening.missing, screening.duplicated = [], [], []
        verdict = {"risk": 0.0, "method": RiskMethod.UNSCORED, "model_version": None,
                   "reasons": [unscored_reason(screening.features)]}
    else:
        verdict = assess(screening, ctx)
    # before the row exists: the shared index is read from the database, and an autoflush of a half-filled row
    # would fail on its NOT NULL risk (H6a)
    sections = sections_for(submission.file.text or "", ctx, index, screening)
    row = db.session.execute(sa.select(ReportScreening).where(ReportScreening.submission_id == submission.id)).scalar_one_or_none()
    if row is None:
        row = ReportScreening(submission_id=submission.id)
        db.session.add(row)
    row.engagement_id = engagement.id
    row.bureau_id = engagement.bureau_id
    row.firm_id = engagement.firm_id
    row.kind = submission.kind
    row.year = engagement.year
    row.object_key = ctx.object_key
    row.submitted_at = submission.submitted_at or utcnow()
    row.sentence_keys = screening.keys.astype(np.uint64).tobytes()
    row.signature = screening.signature.astype(np.uint32).tobytes()
    row.features = screening.features
    row.details = {**_details(screening), "sections": sections}
    row.passages = screening.passages
    row.reasons = verdict["reasons"]
    row.risk = verdict["risk"]
    row.method = verdict["method"]
    row.model_version = verdict["model_version"]
    row.screened_at = utcnow()
    db.session.flush()
    # Into the one shared index (replacing an earlier screening of this version): every worker finds it
    # once this transaction commits.
    index.add(screening.stored(submission.id, ctx, _label(engagement.firm.name if engagement.firm else None,
                                                         engagement.reference, row.submitted_at)))
    return row


def sections_for(text: str, ctx: ScreeningContext, index, screening: Screening | None = None) -> dict[str, dict[str, float]]:
    """Copying per chapter group (indicator system, findings, recommendations), the firm's in-house template
    told apart from content taken from one other report or another firm (``index.section_copy``).
    ``screening``: the text's screening against this same index, unchanged since (``compute``): its sentences and
    matches are used instead of parsing the text and looking its sentences up again."""
    if screening is not None:
        if screening.lookup is None or not ctx.chapters:  # finish looked nothing up: no sentence, or an empty index
            return {}
        sentences, matches, threshold = screening.lookup
        return section_copy(sentences, matches, threshold)
    sentences = textproc.parse(text, ctx.chapters, ctx.names).copy_sentences
    if not sentences or not ctx.chapters or not len(index):
        return {}
    threshold = index.boilerplate_threshold(ctx.kind)
    matches = index.lookup([s.key for s in sentences], kind=ctx.kind, firm_id=ctx.firm_id,
                           engagement_id=ctx.engagement_id, object_key=ctx.object_key, year=ctx.year,
                           list_limit=threshold)
    return section_copy(sentences, matches, threshold)


SCREEN_JOB = "screening.screen_upload"


def screens_in_worker() -> bool:
    """Uploads are screened by the background worker after the upload commits, so the upload answers at
    once. With ``JOBS_IMMEDIATE`` (no worker: tests, a laptop) the job would run in this process anyway, so
    the upload is screened inline unless ``SCREENING_IN_WORKER`` asks for the queued path."""
    config = current_app.config
    return bool(config.get("SCREENING_IN_WORKER", not config.get("JOBS_IMMEDIATE")))


@review_services.after_upload
def on_upload(submission: Submission) -> None:
    """The upload hook: queue the screening for the worker (it runs once the upload commits; the bureau's
    pages show "筛查中" until then), or screen inline when there is no worker."""
    if submission.engagement is None:  # a budget unit's self-evaluation: no engagement, no firm to compare
        return
    if not screens_in_worker():
        screen_upload(submission)
        return
    engagement = submission.engagement
    # A system job (no actor): the firm never sees that its upload is screened.
    jobs.submit_after_commit(SCREEN_JOB, f"报告质量筛查：{engagement.reference} {submission.kind.label}第 {submission.version} 版",
                             {"submission_id": submission.id}, actor=None, bureau_id=engagement.bureau_id)


@jobs.job_kind(SCREEN_JOB)
def _screen_job(job, report) -> dict:
    submission = db.session.get(Submission, int(job.params.get("submission_id") or 0))
    if submission is None:
        return {"failed": True, "message": "提交的文件已不存在"}
    row = screen_upload(submission)
    db.session.commit()
    done = RiskMethod.UNSCORED.label if row.method == RiskMethod.UNSCORED else f"风险分 {row.risk:.2f}"
    return {"message": f"已筛查，{done}", "screening_id": row.id, "submission_id": submission.id}


def pending_screening(submission: Submission) -> Job | None:
    """The queued or running screening job of a submission not screened yet (None once it is screened)."""
    if screening_for(submission) is not None:
        return None
    rows = db.session.execute(sa.select(Job).where(Job.kind == SCREEN_JOB, Job.bureau_id == submission.engagement.bureau_id)
                              .order_by(Job.id.desc()).limit(500)).scalars()
    return next((job for job in rows if (job.params or {}).get("submission_id") == submission.id), None)


def screen_upload(submission: Submission, related_limit: int = 5) -> ReportScreening:
    """Screen a new upload, then re-screen the stored texts it copies from: copying is evidence against
    both sides, and the earlier text could not see the later one when it was screened."""
    row = screen_submission(submission)
    related = [p["source_doc_id"] for p in row.passages or [] if reference_id_of(p["source_doc_id"]) is None]
    related += [d["doc_id"] for d in (row.details or {}).get("near_duplicates", [])]
    if (row.details or {}).get("most_similar"):
        related.append(row.details["most_similar"]["doc_id"])
    related = [i for i in related if reference_id_of(i) is None]  # an outside report is never re-screened
    for source_id in list(dict.fromkeys(related))[:related_limit]:
        source = db.session.get(Submission, source_id)
        if source is not None and source.id != submission.id:
            screen_submission(source)
    return row


def rescreen(*, year: int | None = None, progress: Callable[[int, int, str], None] | None = None) -> int:
    """Screen every stored submission of the year again against the whole corpus (after a bulk import, or
    once the year's reports are in, so early uploads are compared with later ones too) — and screen those whose
    screening job failed, which have no screening yet: every upload the hook screens (an engagement's)."""
    # The engagement's year is the screening's year (``screen_submission``): one filter for both kinds.
    stmt = sa.select(Submission).join(Engagement, Engagement.id == Submission.engagement_id)
    if year is not None:
        stmt = stmt.where(Engagement.year == year)
    submissions = db.session.execute(stmt.order_by(Submission.id)).scalars().all()
    index_missing()
    # One in-memory copy of the index for the batch, written back to the shared index in bulk.
    index = BufferedIndex(db.session) if len(submissions) > 50 else current_index()
    with peer_features_kept():
        for n, submission in enumerate(submissions, start=1):
            screen_submission(submission, index)
            if progress and (n % 20 == 0 or n == len(submissions)):
                progress(n, len(submissions), f"已筛查 {n}/{len(submissions)}")
    if isinstance(index, BufferedIndex):
        index.flush()
    return len(submissions)


TEXT_KINDS = {"report": "整篇评价报告", "work_plan": "实施方案", "self_evaluation": "绩效自评报告", "fragment": "片段"}


def screen_text(text: str, actor: User, *, firm_id: int | None = None, engagement_id: int | None = None,
                kind: str | None = None) -> dict[str, Any]:
    """Score any text — a whole report or a fragment — computing what the context allows. Nothing is stored.
    ``kind``: report, work_plan, self_evaluation or fragment; None decides report/fragment from the text (H6a)."""
    require_screening(actor)
    if not (text or "").strip():
        raise ValidationFailed("请提供要筛查的文本。", {"text": "不能为空"})
    if len(text) > 500_000:
        raise ValidationFailed("文本过长（超过 50 万字）。", {"text": "过长"})
    if kind is not None and kind not in TEXT_KINDS:
        raise ValidationFailed("kind 应为 report、work_plan、self_evaluation 或 fragment。", {"kind": "取值无效"})
    # Work plans are compared with work plans; reports, self-evaluations and fragments with reports.
    submission_kind = SubmissionKind.WORK_PLAN if kind == "work_plan" else SubmissionKind.REPORT
    if engagement_id is not None:
        engagement = db.session.get(Engagement, engagement_id)
        if engagement is None or not permissions.can(actor, "engagement.view", engagement):
            raise ValidationFailed("找不到该评价任务或无权查看。", {"engagement_id": "无效"})
        ctx = context_for(engagement, submission_kind)
    else:
        # no engagement, so no kind of work: a report is read as an evaluation report (the key-evaluation outline)
        ctx = ScreeningContext(kind=submission_kind.value,
                               chapters=review_services.outline_for(actor.bureau, ServiceKind.KEY_EVALUATION)
                               if submission_kind == SubmissionKind.REPORT else [])
        if firm_id is not None:
            firm = db.session.get(Firm, firm_id)
            if firm is None or not permissions.can(actor, "firm.view", firm):
                raise ValidationFailed("找不到该机构或无权查看。", {"firm_id": "无效"})
            ctx.firm_id = firm.id
            ctx.names = [firm.name]
    ctx.text_kind = kind
    screening = compute(text, ctx, current_index())
    verdict = assess(screening, ctx)
    shown = _shown(actor, verdict["reasons"], _details(screening), screening.passages)
    copied = []
    for p in shown.passages:
        if p.get("hidden"):  # copied from a text the caller may not read: the share only
            copied.append({"text": None, "chapter": None, "relation": p["relation"], "source_submission_id": None,
                           "source": HIDDEN_SOURCE, "share": p["share"]})
        else:
            outside = reference_id_of(p["source_doc_id"]) is not None  # an outside published report
            copied.append({"text": p["text"], "chapter": p["chapter"], "relation": "reference" if outside else p["relation"],
                           "source_submission_id": None if outside else p["source_doc_id"], "source": p["source_label"],
                           "share": p.get("share")})
    return {"risk": verdict["risk"], "method": verdict["method"].value, "model_version": verdict["model_version"],
            "kind": screening.text_kind,
            "features": screening.features, "reasons": shown.reason_texts, "gaps": screening.gaps,
            "copied_passages": copied}


# === who sees what ==================================================================================

def require_screening(actor: User) -> None:
    permissions.require(actor, "screening.view")


def visible_screenings(actor: User):
    return permissions.scope(actor, sa.select(ReportScreening), ReportScreening)


# === what a reader may see of the other stored texts ================================================
# A screening compares a text with every stored text (the copy features and the risk count them all), but
# it shows another text — its words, firm, reference, chapter, a link to its card — only to a reader who may
# quote it: the rule is review.permissions.quotable_submission_ids ("submission.quote"); a report withheld
# as classified is quoted only inside the bureau that holds it. Everything that shows a screening's sources
# or reasons (the flag card, the queue and its export, the API, a case opened from a flag, the expert's view)
# reads them through ``shown_to`` / ``shown_to_many`` / ``_shown`` below; the others read HIDDEN_SOURCE and
# the share, with no id.

HIDDEN_SOURCE = "另一地区报告（无权查看原文）"
RELATION_LABELS = {"same_firm": "本机构其他报告", "other_firms": "其他机构报告", "previous": "同一对象以往评价报告"}


def _near_duplicate_text(label: str, jaccard: float) -> str:
    return f"与 {label} 的报告近似重复（句子重合 {jaccard:.0%}）"


def _hidden_near_duplicate_text(jaccard: float | None) -> str:
    return f"与{HIDDEN_SOURCE}近似重复" + (f"（句子重合 {jaccard:.0%}）" if jaccard is not None else "")


@dataclass
class Shown:
    """A screening's references to other stored texts, as one reader may see them."""

    reasons: list[dict[str, Any]]  # {"feature", "percentile", "text"}
    most_similar: dict[str, Any] | None  # {"doc_id" (None when hidden), "share", "label", "hidden"}
    near_duplicates: list[dict[str, Any]]  # {"doc_id" (None when hidden), "jaccard", "label", "hidden"}
    passages: list[dict[str, Any]]  # the stored passage, or {"hidden", "relation", "sentences", "share"}

    @property
    def reason_texts(self) -> list[str]:
        return [r["text"] for r in self.reasons]


def _referenced(reasons: Iterable[dict] | None, details: dict | None, passages: Iterable[dict] | None) -> set[int]:
    details = details or {}
    ids = {p.get("source_doc_id") for p in passages or []}
    ids |= {d.get("doc_id") for d in details.get("near_duplicates") or []}
    ids |= {(details.get("most_similar") or {}).get("doc_id")}
    ids |= {r.get("doc_id") for r in reasons or []}
    return {int(i) for i in ids if i is not None}


def _redact(reasons: Iterable[dict] | None, details: dict | None, passages: Iterable[dict] | None,
            allowed: set[int]) -> Shown:
    details = details or {}
    near = details.get("near_duplicates") or []
    shown_reasons = []
    for reason in reasons or []:
        text = reason["text"]
        if reason.get("feature") == "near_duplicate":
            doc_id, jaccard = reason.get("doc_id"), reason.get("jaccard")
            if doc_id is None and near:  # screened before a reason kept its source
                doc_id, jaccard = near[0].get("doc_id"), near[0].get("jaccard")
            if doc_id not in allowed:
                text = _hidden_near_duplicate_text(jaccard)
        shown_reasons.append({"feature": reason.get("feature"), "percentile": reason.get("percentile"), "text": text})

    def similar(item: dict | None, measure: str) -> dict | None:
        if item is None:
            return None
        if item.get("doc_id") in allowed:
            return {**item, "hidden": False}
        return {"doc_id": None, measure: item.get(measure), "label": HIDDEN_SOURCE, "hidden": True}

    total = sum(int(c.get("sentences") or 0) for c in (details.get("chapters") or {}).values())
    shown_passages = []
    for passage in passages or []:
        if passage.get("source_doc_id") in allowed:
            shown_passages.append(passage)
            continue
        n = len(passage.get("positions") or [])
        share = passage.get("share")
        if share is None:  # screened before passages kept their share
            share = round(n / total, 4) if total else None
        shown_passages.append({"hidden": True, "relation": passage.get("relation"), "sentences": n, "share": share})
    return Shown(reasons=shown_reasons, most_similar=similar(details.get("most_similar"), "share"),
                 near_duplicates=[similar(d, "jaccard") for d in near], passages=shown_passages)


def _quotable(reader: User | Bureau | None, ids: set[int]) -> set[int]:
    """The referenced texts ``reader`` may see: outside reference reports are published, so everyone; a
    stored submission by review's rule (``quotable_submission_ids``)."""
    references = {i for i in ids if reference_id_of(i) is not None}
    submissions = ids - references
    return references | (quotable_submission_ids(reader, submissions) if reader is not None and submissions else set())


def _shown(reader: User | Bureau | None, reasons, details, passages) -> Shown:
    return _redact(reasons, details, passages, _quotable(reader, _referenced(reasons, details, passages)))


def shown_to_many(reader: User | Bureau | None, screenings: Iterable[ReportScreening]) -> dict[int, Shown]:
    """``shown_to`` for many screenings at once (one permission query). ``reader``: a user; a bureau, meaning
    everyone who reads that bureau's records; or None, someone who may quote nothing (an expert)."""
    screenings = list(screenings)
    referenced: set[int] = set()
    for row in screenings:
        referenced |= _referenced(row.reasons, row.details, row.passages)
    allowed = _quotable(reader, referenced)
    return {row.id: _redact(row.reasons, row.details, row.passages, allowed) for row in screenings}


def shown_to(reader: User | Bureau | None, screening: ReportScreening) -> Shown:
    """What ``reader`` may see of the stored texts ``screening`` refers to (see the section's note)."""
    return shown_to_many(reader, [screening])[screening.id]


# === the queue =====================================================================================

@dataclass
class QueueEntry:
    rank: int
    screening_id: int
    risk: float
    flagged: bool
    bureau_id: int
    firm_id: Optional[int]
    screening: Optional[ReportScreening] = None  # loaded for the entries of ``queue`` (``fill_entries``)
    reasons: list[str] = field(default_factory=list)  # as the reader may see them (shown_to)
    shown: Optional[sa.Row] = None  # ``queue_page``: the columns a row shows (``_page_columns``)


def _ranking(actor: User, year: int, kinds: Iterable[SubmissionKind]) -> sa.Subquery:
    """The year's latest version of each engagement's text of each kind that the user may see, ranked in SQL
    per kind (riskiest first; ties by id) with its kind's count: columns id, bureau_id, firm_id, risk, kind,
    rank, of. Work plans and reports are scored apart, so each kind has its own ranking. The database reads
    four columns of the rows in scope and hands back only the rows asked for."""
    kinds = list(kinds)
    latest = (sa.select(sa.func.max(ReportScreening.submission_id).label("submission_id"))
              .where(ReportScreening.year == year, ReportScreening.kind.in_(kinds))
              .group_by(ReportScreening.engagement_id, ReportScreening.kind)).subquery("latest")
    # a join on the aggregate, not ``IN (subquery)``: PostgreSQL then groups once instead of once per row
    # the latest version decides: an unreadable latest version is listed apart (``unscored``), not replaced by
    # the version before it
    stmt = visible_screenings(actor).join(latest, latest.c.submission_id == ReportScreening.submission_id).where(
        ReportScreening.year == year, ReportScreening.kind.in_(kinds), is_scored()).with_only_columns(
        ReportScreening.id, ReportScreening.bureau_id, ReportScreening.firm_id, ReportScreening.risk,
        ReportScreening.kind,
        sa.func.row_number().over(partition_by=ReportScreening.kind,
                                  order_by=(ReportScreening.risk.desc(), ReportScreening.id)).label("rank"),
        sa.func.count().over(partition_by=ReportScreening.kind).label("of"))
    return stmt.subquery("ranked")


def _share(actor: User) -> int:
    return int(get_setting(actor.bureau, "screening.spot_check_share")) if actor.bureau else 10


def _queue_stmt(actor: User, year: int, bureau_id: int | None, firm_id: int | None,
                kind: SubmissionKind | None, firm_name: str | None = None) -> sa.Select:
    """The queue as a statement, one row per entry: id, risk, rank, bureau_id, firm_id, flagged. The
    spot-check budget of each kind is the top ⌈count × share / 100⌉ of its ranking, and at least the first
    (``flagged``: rank ≤ that, in integers). ``firm_name``: the firms whose name contains it."""
    ranked = _ranking(actor, year, [kind] if kind is not None else [SubmissionKind.REPORT, SubmissionKind.WORK_PLAN])
    flagged = sa.or_(ranked.c.rank == 1, ranked.c.rank * 100 <= ranked.c.of * _share(actor) + 99)
    stmt = sa.select(ranked.c.id, ranked.c.risk, ranked.c.rank, ranked.c.bureau_id, ranked.c.firm_id,
                     flagged.label("flagged"))
    if bureau_id is not None:
        stmt = stmt.where(ranked.c.bureau_id == bureau_id)
    if firm_id is not None:
        stmt = stmt.where(ranked.c.firm_id == firm_id)
    if firm_name:
        stmt = stmt.where(ranked.c.firm_id.in_(sa.select(Firm.id).where(Firm.name.contains(firm_name, autoescape=True))))
    return stmt


def queue_firms(actor: User, year: int, name: str = "", limit: int = 20) -> list[tuple[int, str]]:
    """The firms of the year's screened texts the user may see whose name contains ``name``, by name, at most
    ``limit``: what the queue page's firm filter suggests as the user types. Not listed on the page itself: a
    region's year holds hundreds of firms (574 at twice province scale), and the list grew the page with them."""
    require_screening(actor)
    rs = ReportScreening
    stmt = sa.select(Firm.id, Firm.name).where(
        Firm.id.in_(visible_screenings(actor).where(rs.year == year).with_only_columns(rs.firm_id)))
    if name:
        stmt = stmt.where(Firm.name.contains(name, autoescape=True))
    return [(row.id, row.name) for row in db.session.execute(stmt.order_by(Firm.name, Firm.id).limit(limit))]


def _entries(stmt: sa.Select) -> list[QueueEntry]:
    return [QueueEntry(rank=row.rank, screening_id=row.id, risk=row.risk, flagged=bool(row.flagged),
                       bureau_id=row.bureau_id, firm_id=row.firm_id) for row in db.session.execute(stmt)]


def _queue_order(stmt: sa.Select) -> sa.Select:
    ranked = stmt.selected_columns
    return stmt.order_by(ranked.risk.desc(), ranked.rank, ranked.id)


def queue(actor: User, *, year: int, bureau_id: int | None = None, firm_id: int | None = None,
          kind: SubmissionKind | None = None, firm_name: str | None = None, fill: bool = True) -> list[QueueEntry]:
    """The year's screened texts the user may see, riskiest first. Ranks and the spot-check budget (the top
    share marked for inspection) are per kind over everything the user supervises; the bureau and firm
    filters then narrow the list without renumbering it. ``fill=False`` leaves the rows to ``fill_entries``.
    A page of the queue: ``queue_page``, which reads only the rows shown."""
    require_screening(actor)
    stmt = _queue_stmt(actor, year, bureau_id, firm_id, kind, firm_name)
    entries = _entries(_queue_order(stmt))
    return fill_entries(actor, entries) if fill else entries


@dataclass
class QueuePage:
    entries: list[QueueEntry]  # the rows of the page, filled (``fill_entries``)
    total: int  # entries in the (filtered) queue
    flagged: int  # of which marked for a spot check


def _page_columns() -> list:
    """What a page row of the queue shows (the web page and the API), over the screening joined to its
    engagement: the screening's own columns, its version, its engagement's reference and name, the engagement's
    firm and bureau (the page) and the screening's firm and bureau (the API). The names are scalar subqueries,
    not joins: with seven tables in the join PostgreSQL spent 2 ms planning it, more than running it."""
    rs = ReportScreening

    def name_of(model, column, key):
        return sa.select(column).where(model.id == key).scalar_subquery()

    return [rs.id, rs.submission_id, rs.engagement_id, rs.kind, rs.risk, rs.method, rs.model_version,
            rs.submitted_at, rs.reasons, rs.details["near_duplicates"].label("near"),
            name_of(Submission, Submission.version, rs.submission_id).label("version"),
            Engagement.reference, Engagement.name,
            name_of(Firm, Firm.name, Engagement.firm_id).label("firm_name"),
            name_of(Bureau, Bureau.name, Engagement.bureau_id).label("bureau_name"),
            name_of(Bureau, Bureau.short_name, Engagement.bureau_id).label("bureau_short_name"),
            rs.firm_id, name_of(Firm, Firm.name, rs.firm_id).label("screening_firm_name"), rs.bureau_id,
            name_of(Bureau, Bureau.name, rs.bureau_id).label("screening_bureau_name")]


def queue_page(actor: User, *, year: int, page: int, per_page: int, bureau_id: int | None = None,
               firm_id: int | None = None, kind: SubmissionKind | None = None,
               firm_name: str | None = None) -> QueuePage:
    """One page of ``queue``: the page's rows with the columns they show (``_page_columns``: no screening,
    engagement or firm is loaded, and the texts' hashes, features, details and passages are not read — a row
    shows its reasons only, ``_reason_texts``), the queue's length and how many of it are marked.

    The whole queue (no bureau or firm filter) costs the same however long the year's queue is (issue 18): the
    database walks each kind's ranking down ``ix_report_screening_ranking`` and stops at the page's last row, and
    the lengths come from ``ScreeningQueueCount``. A bureau or firm filter keeps the ranks of the whole queue, so
    that page ranks the year's queue in one statement (``_filtered_page``)."""
    require_screening(actor)
    if bureau_id is not None or firm_id is not None or firm_name:
        return _filtered_page(actor, year=year, page=page, per_page=per_page, bureau_id=bureau_id, firm_id=firm_id,
                              kind=kind, firm_name=firm_name)
    kinds = [kind] if kind is not None else [SubmissionKind.REPORT, SubmissionKind.WORK_PLAN]
    counts = queue_counts(actor, year, kinds)
    share = _share(actor)
    # a kind's rank r is marked when r = 1 or r × 100 ≤ count × share + 99 (``_queue_stmt``): its first
    # ⌈count × share / 100⌉, at least one
    total = sum(counts.values())
    marked = sum(min(n, max(1, (n * share + 99) // 100)) for n in counts.values() if n)
    rows = []
    if (page - 1) * per_page < total:
        listed = tuple(k for k in kinds if counts.get(k))
        # built once per scope, year, kinds and page (``permissions.kept``): the walks cost more to build than to run
        rows = db.session.execute(permissions.kept(actor, "screening.queue_page", lambda: _page_stmt(
            actor, year, listed, page, per_page), year, listed, page, per_page)).all()
    reasons = _reason_texts(actor, rows)
    entries = [QueueEntry(rank=row.rank, screening_id=row.id, risk=row.risk,
                          flagged=row.rank == 1 or row.rank * 100 <= counts.get(row.kind, 0) * share + 99,
                          bureau_id=row.bureau_id, firm_id=row.firm_id, reasons=reasons[row.id], shown=row)
               for row in rows]
    return QueuePage(entries, total, marked)


def _page_stmt(actor: User, year: int, kinds: tuple[SubmissionKind, ...], page: int, per_page: int) -> sa.Select:
    """``queue_page``'s rows: each kind's first (page × per_page) by rank hold every row of the merged page (a
    row's kind-mates ranked above it come before it in the queue's order: riskier, or as risky with a smaller
    rank)."""
    walks = [_walk(actor, year, k, page * per_page) for k in kinds]
    walked = walks[0] if len(walks) == 1 else sa.union_all(*(sa.select(*w.c) for w in walks)).subquery("walked")
    shown = (sa.select(walked.c.id, walked.c.risk, walked.c.rank)
             .order_by(walked.c.risk.desc(), walked.c.rank, walked.c.id)
             .limit(per_page).offset((page - 1) * per_page).subquery("shown"))
    return sa.select(*_page_columns(), shown.c.rank).join(shown, shown.c.id == ReportScreening.id) \
        .join(Engagement, Engagement.id == ReportScreening.engagement_id) \
        .order_by(shown.c.risk.desc(), shown.c.rank, shown.c.id)


def _walk(actor: User, year: int, kind: SubmissionKind, limit: int) -> sa.Subquery:
    """The first ``limit`` of the year's ranking of ``kind`` as the user sees it (id, risk, rank), read down
    ``ix_report_screening_ranking`` in its order: the latest version of each engagement's text (no later
    screened version of the same kind and year), in the user's scope, numbered as read. The LIMIT belongs to
    this statement, so the database stops at the row it needs instead of ranking the year."""
    rs = ReportScreening
    stmt = visible_screenings(actor).where(rs.year == year, rs.kind == kind, is_scored(rs), ~_superseded(rs)).with_only_columns(
        rs.id, rs.risk, sa.func.row_number().over(order_by=(rs.risk.desc(), rs.id)).label("rank"))
    return stmt.order_by(rs.risk.desc(), rs.id).limit(limit).subquery(f"walk_{kind.value}")


def _superseded(rs: type[ReportScreening]) -> sa.Exists:
    """Whether a later version of the engagement's text of the same kind and year was screened: the queue
    holds the latest only (one probe of the engagement's few screenings)."""
    later = aliased(ReportScreening)
    return sa.exists().where(later.engagement_id == rs.engagement_id, later.kind == rs.kind, later.year == rs.year,
                             later.submission_id > rs.submission_id)


# The queue's length per (year, kind, bureau), kept by ``core.summaries``: recounted for each (year, kind) a
# transaction wrote, just before it commits. A (year, kind) is recounted whole: a new version takes the
# engagement's earlier one out of the queue, whichever bureau that one was filed under. An unscored text
# (``RiskMethod.UNSCORED``) is not in the queue. A rescore moves risks only (it never scores an unscored text) and
# recounts nothing unless a method changes (a promotion); a deleted submission takes its screening with it in the database (ON DELETE
# CASCADE): everything is recounted.
QUEUE_COUNTS = KeptCount("screening.queue_counts", ReportScreening, ("year", "kind"), ScreeningQueueCount.__table__,
                         by=("bureau_id",), where=lambda: sa.and_(is_scored(), ~_superseded(ReportScreening)),
                         watched=("engagement_id", "submission_id", "method"), cascaded_from=(Submission,))


def queue_counts(actor: User, year: int, kinds: Iterable[SubmissionKind]) -> dict[SubmissionKind, int]:
    """How many texts of each kind the user's queue of ``year`` holds (kinds with none left out), from the
    counts kept on write: a few rows per bureau in scope, however many screenings the year has."""
    session = db.session()
    session.flush()  # this transaction's own screenings, counted before they are read
    QUEUE_COUNTS.recount(session)
    qc, kinds = ScreeningQueueCount, tuple(kinds)
    # the screenings' own row scope (``screening.permissions``: the bureau subtree, all for the system admin)
    stmt = permissions.kept(actor, "screening.queue_counts", lambda: permissions.bureau_rows(
        actor, sa.select(qc.kind, sa.func.sum(qc.n)), qc).where(
        qc.year == year, qc.kind.in_(kinds)).group_by(qc.kind), year, kinds)
    return {k: int(n) for k, n in db.session.execute(stmt) if n}


def _filtered_page(actor: User, *, year: int, page: int, per_page: int, bureau_id: int | None,
                   firm_id: int | None, kind: SubmissionKind | None, firm_name: str | None) -> QueuePage:
    """A page of the queue narrowed to a bureau or firms, in one statement: the database ranks the user's
    whole queue (the ranks and marks are the whole queue's), filters, counts and cuts the page."""
    stmt = _queue_stmt(actor, year, bureau_id, firm_id, kind, firm_name)
    # the two numbers ride along each row as windows over the filtered queue (evaluated before the LIMIT)
    listed = stmt.selected_columns
    ranked = _queue_order(stmt.add_columns(
        sa.func.count().over().label("total"),
        sa.func.sum(sa.case((listed.flagged, 1), else_=0)).over().label("marked"))
    ).limit(per_page).offset((page - 1) * per_page).subquery("shown")
    rows = db.session.execute(
        sa.select(*_page_columns(), ranked.c.rank, ranked.c.flagged, ranked.c.total, ranked.c.marked)
        .join(ranked, ranked.c.id == ReportScreening.id)
        .join(Engagement, Engagement.id == ReportScreening.engagement_id)
        .order_by(ranked.c.risk.desc(), ranked.c.rank, ranked.c.id)).all()
    if rows:
        total, marked = rows[0].total, rows[0].marked
    elif page > 1:  # past the end: no row carries the numbers, so count alone
        counted = stmt.subquery("listed")
        total, marked = db.session.execute(sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((counted.c.flagged, 1), else_=0)), 0))
            .select_from(counted)).one()
    else:
        total = marked = 0
    reasons = _reason_texts(actor, rows)
    entries = [QueueEntry(rank=row.rank, screening_id=row.id, risk=row.risk, flagged=bool(row.flagged),
                          bureau_id=row.bureau_id, firm_id=row.firm_id, reasons=reasons[row.id], shown=row)
               for row in rows]
    return QueuePage(entries, int(total), int(marked or 0))


def _reason_texts(reader: User, rows: list) -> dict[int, list[str]]:
    """The reasons of each row (id, reasons, near — its near duplicates) as ``reader`` may read them: the reasons
    of ``shown_to_many``, which need only the reasons and the near duplicates (a reason's source, or the first
    near duplicate for a screening from before reasons kept theirs), not the passages or the rest of the
    details."""
    details = {row.id: {"near_duplicates": row.near or []} for row in rows}
    referenced: set[int] = set()
    for row in rows:
        referenced |= _referenced(row.reasons, details[row.id], None)
    allowed = _quotable(reader, referenced)
    return {row.id: _redact(row.reasons, details[row.id], None, allowed).reason_texts for row in rows}


def fill_entries(actor: User, entries: list[QueueEntry]) -> list[QueueEntry]:
    """Load the screenings of ``entries`` (with their engagement, firm, bureau and submission) and the reasons
    as ``actor`` may read them: two queries however many entries."""
    if not entries:
        return entries
    # One joined statement for the four rows each entry names (each at most one: the joins add no rows); as
    # five selectin queries the loading cost 5 ms of Python for a page of 20, joined 2.3 ms. The hashes and
    # the features are not shown.
    rows = {row.id: row for row in db.session.execute(
        sa.select(ReportScreening).where(ReportScreening.id.in_([e.screening_id for e in entries])).options(
            defer(ReportScreening.sentence_keys), defer(ReportScreening.signature), defer(ReportScreening.features),
            joinedload(ReportScreening.submission),
            joinedload(ReportScreening.engagement).joinedload(Engagement.firm),
            joinedload(ReportScreening.engagement).joinedload(Engagement.bureau))).scalars()}
    shown = shown_to_many(actor, rows.values())
    for entry in entries:
        entry.screening = rows[entry.screening_id]
        entry.reasons = shown[entry.screening_id].reason_texts
    return entries


def rank_of(screening: ReportScreening, actor: User) -> tuple[int, int]:
    """(rank, out of) of the text among the same year's texts of its kind that the user may see (a text not in
    that queue — an earlier version, or outside the user's scope — after the last): the texts ranked above it
    counted down ``ix_report_screening_ranking``, the queue's length from the counts kept on write."""
    rs = ReportScreening
    queued = visible_screenings(actor).where(rs.year == screening.year, rs.kind == screening.kind, is_scored(rs),
                                             ~_superseded(rs))
    # riskier, or as risky with a smaller id: an index range from the top down to this text's risk
    above = queued.where(rs.risk >= screening.risk, sa.or_(rs.risk > screening.risk, rs.id < screening.id))
    ahead, listed = db.session.execute(sa.select(
        above.with_only_columns(sa.func.count()).scalar_subquery(),
        queued.where(rs.id == screening.id).with_only_columns(rs.id).exists())).one()
    total = queue_counts(actor, screening.year, [screening.kind]).get(screening.kind, 0)
    return (ahead + 1 if listed else total + 1), total


UNSCORED_LIMIT = 200  # a page lists at most this many unscored texts (normally a handful a year)


def unscored(actor: User, *, year: int, bureau_id: int | None = None, firm_id: int | None = None,
             kind: SubmissionKind | None = None, firm_name: str | None = None,
             limit: int = UNSCORED_LIMIT) -> list[ReportScreening]:
    """The year's texts (latest version of each engagement's text of a kind) the user may see that were not
    scored because too little text could be extracted: outside the ranking and the spot-check share, listed
    apart for a person to open. Newest first; with their engagement, firm, bureau and submission."""
    require_screening(actor)
    rs = ReportScreening
    kinds = [kind] if kind is not None else [SubmissionKind.REPORT, SubmissionKind.WORK_PLAN]
    stmt = visible_screenings(actor).where(rs.year == year, rs.kind.in_(kinds), ~is_scored(rs), ~_superseded(rs))
    if bureau_id is not None:
        stmt = stmt.where(rs.bureau_id == bureau_id)
    if firm_id is not None:
        stmt = stmt.where(rs.firm_id == firm_id)
    if firm_name:
        stmt = stmt.where(rs.firm_id.in_(sa.select(Firm.id).where(Firm.name.contains(firm_name, autoescape=True))))
    stmt = stmt.options(defer(rs.sentence_keys), defer(rs.signature), joinedload(rs.submission),
                        joinedload(rs.engagement).joinedload(Engagement.firm),
                        joinedload(rs.engagement).joinedload(Engagement.bureau))
    return list(db.session.execute(stmt.order_by(rs.submitted_at.desc(), rs.id.desc()).limit(limit)).scalars())


# === the flag card ==================================================================================

def _sentences_by_key(submission: Submission) -> tuple[list[textproc.Sentence], list[str]]:
    engagement = submission.engagement
    ctx = context_for(engagement, submission.kind)
    doc = textproc.parse(submission.file.text or "", ctx.chapters, ctx.names)
    return doc.sentences, [n for n in ctx.names if n]


def flag_card(screening: ReportScreening, actor: User) -> dict[str, Any]:
    """What an inspector reads in a minute: risk and rank, reasons against peers, copied passages beside
    their sources (names the masking ignored listed so the page can highlight them), specificity gaps."""
    rank, total = rank_of(screening, actor)
    if screening.method == RiskMethod.UNSCORED:
        rank = None  # not ranked: listed apart for a person to open
    reference = peer_reference(screening.kind.value, screening.year)
    own_names = [n for n in context_for(screening.engagement, screening.kind).names if n]
    shown = shown_to(actor, screening)
    sources: dict[int, tuple[Submission, list[textproc.Sentence], list[str]]] = {}
    passages = []
    hidden = [p for p in shown.passages if p.get("hidden")]
    for passage in shown.passages:
        if passage.get("hidden"):
            continue
        source_id = passage["source_doc_id"]
        if source_id not in sources:
            outside = references.reference_for(source_id)
            if outside is not None:  # an outside published report (外部公开报告)
                sources[source_id] = (outside, references.source_sentences(outside),
                                      [n for n in (outside.firm_name, outside.region) if n])
            else:
                source = db.session.get(Submission, source_id)
                if source is None:
                    continue
                sentences, names = _sentences_by_key(source)
                sources[source_id] = (source, sentences, names)
        source, sentences, names = sources[source_id]
        wanted = {int(k) for k in passage["keys"]}
        matched = [s for s in sentences if s.key in wanted]
        is_reference = isinstance(source, ReferenceDocument)
        passages.append({**passage, "source": None if is_reference else source,
                         "reference": source if is_reference else None,
                         "source_text": "".join(s.text for s in matched),
                         "source_chapter": matched[0].chapter if matched else None, "source_names": names,
                         "relation_label": references.REFERENCE_LABEL if is_reference else RELATION_LABELS[passage["relation"]]})
    features = [{"key": k, "label": BY_KEY[k].label, "value": BY_KEY[k].show(screening.features.get(k)),
                 "median": BY_KEY[k].show(reference.median(k)),
                 "percentile": reference.percentile(k, screening.features.get(k))} for k in FEATURE_KEYS]
    # Passages copied from texts the reader may not read: how many and what share of this text, nothing else.
    hidden_summary = {"passages": len(hidden), "sentences": sum(p["sentences"] for p in hidden),
                      "share": sum(p["share"] or 0 for p in hidden), "label": HIDDEN_SOURCE} if hidden else None
    return {"rank": rank, "total": total, "passages": passages, "hidden": hidden_summary, "own_names": own_names,
            "features": features, "peers": reference.size, "model_problem": active_model()[1],
            "reasons": shown.reasons, "most_similar": shown.most_similar, "near_duplicates": shown.near_duplicates,
            "sections": (screening.details or {}).get("sections") or {}}


def open_case(screening: ReportScreening, actor: User):
    """A bureau user turns the flag into a targeted inspection, the flag recorded as its trigger."""
    from evalhub.supervision.models import Inspection, Trigger
    from evalhub.supervision.services import flag_for_inspection

    engagement = screening.engagement
    permissions.require(actor, "supervision.manage", engagement.bureau)
    concurrency.serialise(f"screening.case:{screening.id}")  # two clicks at once open one case
    existing = db.session.execute(sa.select(Inspection).where(
        Inspection.engagement_id == engagement.id, Inspection.trigger == Trigger.SCREENING_FLAG,
        Inspection.trigger_detail.contains(f"筛查#{screening.id}，"))).scalars().first()
    if existing is not None:
        raise Conflict(f"该报告已因筛查提示立案（检查 #{existing.id}）。")
    # The case is read by the engagement's bureau and every bureau above it: name only what all of them may read.
    reasons = "；".join(shown_to(engagement.bureau, screening).reason_texts[:4]) or "风险排名靠前"
    lead = f"报告质量筛查提示（筛查#{screening.id}，{screening.submission.kind.label}第 {screening.submission.version} 版）："
    if screening.method == RiskMethod.UNSCORED:
        detail = f"{lead}{reasons}"  # the reason says it: no risk, no rank
    else:
        rank, total = rank_of(screening, actor)
        detail = f"{lead}风险 {screening.risk:.2f}，{screening.year} 年第 {rank}/{total} 名。{reasons}"
    inspection = flag_for_inspection(engagement, detail, actor)
    audit.record("screening.case_opened", screening, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} 依据报告筛查提示立案检查", payload={"inspection_id": inspection.id})
    return inspection


# === labels, training, promotion ====================================================================

_FLAGGED = re.compile(r"筛查#(\d+)，")  # the screening a flag's case names in its lead (open_case)


def labelled_frame() -> pd.DataFrame:
    """One row per labelled report: the features it had when screened, the label and its source.
    Positive: the panel's first-round score was below the pass mark, or an inspection answered that the
    report was copied, templated or fabricated. An inspection's answer overrides the panel's."""
    from evalhub.supervision.models import Inspection, InspectionStatus, Trigger

    rows = db.session.execute(
        sa.select(ReportScreening, Submission.version, ReviewPanel.round, ReviewPanel.score, ReviewPanel.pass_mark)
        .join(Submission, Submission.id == ReportScreening.submission_id)
        .outerjoin(ReviewPanel, ReviewPanel.submission_id == Submission.id)
        .where(ReportScreening.kind == SubmissionKind.REPORT)).all()
    versions: dict[int, list[ReportScreening]] = {}
    labels: dict[int, dict[str, Any]] = {}
    for screening, version, round_, score, pass_mark in rows:
        versions.setdefault(screening.engagement_id, []).append(screening)
        if version == 1 and round_ == 1 and score is not None and pass_mark is not None:
            labels[screening.id] = {"screening": screening, "label": int(score < pass_mark), "source": "panel", "random": False}
    inspections = db.session.execute(sa.select(Inspection).where(
        Inspection.status == InspectionStatus.CLOSED, Inspection.engagement_id.in_(list(versions) or [-1]))).scalars().all()
    for inspection in inspections:
        answer = (inspection.checklist or {}).get("report_original")
        # the answer is about the report the inspection looked at: the flagged version of a case opened from a
        # flag (its lead names it, open_case), else the latest version handed in before the case opened (else
        # before it closed) — never one uploaded after it: a rectified text is not what was judged
        flagged = _FLAGGED.search(inspection.trigger_detail or "") if inspection.trigger == Trigger.SCREENING_FLAG else None
        screening = next((x for x in versions[inspection.engagement_id] if flagged and x.id == int(flagged.group(1))), None)
        for limit in (() if screening is not None else (inspection.opened_at, inspection.closed_at)):
            before = [x for x in versions[inspection.engagement_id] if limit is not None and x.submitted_at <= limit]
            if before:
                screening = max(before, key=lambda x: (x.submitted_at, x.submission_id))
                break
        if answer is None or screening is None:
            continue
        labels[screening.id] = {"screening": screening, "label": int(not answer.get("ok")), "source": "inspection",
                                "random": inspection.trigger == Trigger.RANDOM}
    records = []
    for item in labels.values():
        s = item["screening"]
        if s.method == RiskMethod.UNSCORED:  # its features describe words never read: nothing to learn from
            continue
        records.append({**{k: s.features.get(k) for k in FEATURE_KEYS}, "label": item["label"], "at": s.submitted_at,
                        "source": item["source"], "random": item["random"], "screening_id": s.id})
    columns = FEATURE_KEYS + ["label", "at", "source", "random", "screening_id"]
    frame = pd.DataFrame(records, columns=columns)
    frame[FEATURE_KEYS] = frame[FEATURE_KEYS].astype(float)
    return frame


def require_model_admin(actor: User) -> None:
    permissions.require(actor, "screening.models.manage")


def _next_version() -> str:
    stem = utcnow().strftime("%Y%m%d")
    taken = set(db.session.execute(sa.select(ScreeningModel.version).where(ScreeningModel.version.like(f"{stem}-%"))).scalars())
    n = 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def train_model(actor: User | None, progress: Callable[[int, int, str], None] | None = None) -> ScreeningModel:
    """Train on evalhub's own labels, save the artefact and card in models_ml/ and register a candidate.
    The active model does not change until a bureau admin promotes the new one."""
    if actor is not None:
        require_model_admin(actor)
    frame = labelled_frame()
    result = learning.train(frame, progress=progress)
    version = _next_version()
    artefact = learning.save(result, models_dir(), version)
    model = ScreeningModel(version=version, algorithm=result.card["algorithm"], artefact=artefact, card=result.card,
                           status=ModelStatus.CANDIDATE, created_by_id=actor.id if actor else None)
    db.session.add(model)
    db.session.flush()
    metrics = result.card["metrics"]
    audit.record("screening.model_trained", model, actor=actor, bureau_id=actor.bureau_id if actor else None,
                 summary=f"训练报告筛查模型 {version}（{result.card['algorithm_label']}，平均精度 {metrics['average_precision']}）")
    return model


@jobs.job_kind("screening.train")
def _train_job(job, report) -> dict:
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    try:
        model = train_model(actor, progress=report)
    except learning.NotEnoughLabels as exc:
        return {"failed": True, "message": str(exc)}
    db.session.commit()
    return {"message": f"已训练模型 {model.version}，待启用", "model_id": model.id, "version": model.version}


def start_training(actor: User):
    require_model_admin(actor)
    # A double click (or two administrators at once) while a training waits or runs gets that job back, not a
    # second model trained on the same labels; a job whose worker died is failed by the hourly reaper (core.jobs).
    # Only a job that will run counts: not one queued by an account disabled since (the worker refuses it), nor
    # one queued longer than the reaper's bound (its task lost with the queue).
    concurrency.serialise("screening.train.start")
    creator = aliased(User)
    waiting = db.session.execute(sa.select(Job).outerjoin(creator, creator.id == Job.created_by_id).where(
        Job.kind == "screening.train",
        sa.or_(Job.created_by_id.is_(None), creator.is_enabled.is_(True)),
        sa.or_(Job.status == JobStatus.RUNNING,
               sa.and_(Job.status == JobStatus.QUEUED, Job.created_at >= utcnow() - jobs.STALE_AFTER)))
        .order_by(Job.id.desc()).limit(1)).scalar_one_or_none()
    if waiting is not None:
        return waiting
    return jobs.submit("screening.train", "训练报告筛查模型", {}, actor=actor, bureau_id=actor.bureau_id)


def promote(model: ScreeningModel, actor: User) -> int:
    """Make a candidate the active model (refusing one this installation cannot load), then re-score the
    stored reports with it. Returns how many were re-scored."""
    require_model_admin(actor)
    # One promotion at a time, the candidate read again under the lock: of two at once (a double click, two
    # administrators with two candidates) the second finds the first's model active — and retires it, or is refused.
    concurrency.hold(model, "screening.model.promote")
    if model.status == ModelStatus.ACTIVE:
        raise Conflict(f"模型 {model.version} 已在使用中。")
    try:
        learning.check_promotable(model.card or {})  # the rule score stays until a model beats it (H6a)
        loaded = learning.load(models_dir(), model.artefact)
    except (learning.NotPromotable, learning.IncompatibleModel, FileNotFoundError) as exc:
        raise Conflict(str(exc))
    previous = active_model_row()
    if previous is not None:
        previous.status = ModelStatus.RETIRED
    model.status = ModelStatus.ACTIVE
    model.promoted_by_id = actor.id
    model.promoted_at = utcnow()
    db.session.flush()
    _models[model.version] = loaded
    audit.record("screening.model_promoted", model, actor=actor, bureau_id=actor.bureau_id,
                 summary=f"启用报告筛查模型 {model.version}" + (f"（替换 {previous.version}）" if previous else ""))
    return rescore()


def rescore() -> int:
    """Apply the active model (reports) or the rule score against today's peers (work plans, and reports
    while no model is active) to the stored features, without re-reading texts. Runs on promotion and
    hourly in the worker, so an early upload's rule score does not stay measured against few peers."""
    model, _problem = active_model()
    # an unscored text stays unscored: there is no text to score (screen it again once a readable one is in)
    rows = db.session.execute(sa.select(ReportScreening).where(is_scored())).scalars().all()
    by_model = [r for r in rows if model is not None and r.kind == SubmissionKind.REPORT]
    if by_model:
        for row, risk in zip(by_model, model.predict([r.features for r in by_model])):
            if (row.method, row.model_version) != (RiskMethod.MODEL, model.version):  # the reasons go with the risk
                row.reasons = _explained(row.features, row.details or {}, model, peer_reference(row.kind.value, row.year))
            row.risk, row.method, row.model_version = round(float(risk), 4), RiskMethod.MODEL, model.version
    for row in rows:
        if model is None or row.kind != SubmissionKind.REPORT:
            reference = peer_reference(row.kind.value, row.year)
            if row.method != RiskMethod.RULE:  # back from a model (retired) to the rule score: its reasons again
                row.reasons = _explained(row.features, row.details or {}, None, reference)
            row.risk, row.method, row.model_version = reference.rule_score(row.features), RiskMethod.RULE, None
    db.session.flush()
    return len(rows)


# Rule scores are percentiles among the year's texts: the worker refreshes them as the year's uploads arrive.
jobs.periodic("evalhub.screening_scores", minute="37")(rescore)


def risk_visible_to_experts(engagement: Engagement) -> bool:
    return get_setting(engagement.bureau, "screening.show_risk_to_experts") == "on"


@review_services.expert_context
def expert_view(submission: Submission) -> dict:
    """The submission's screening result for the expert's review page, only when its bureau shows the risk to
    experts (off by default: experts see the machine checks, not the risk score, so as not to sway their own
    scoring)."""
    if not risk_visible_to_experts(submission.engagement):
        return {}
    row = screening_for(submission)
    if row is None:
        return {"screening": None}
    # An expert may quote no other stored text: reasons naming one read HIDDEN_SOURCE.
    return {"screening": ExpertScreening(risk=row.risk, method=row.method, model_version=row.model_version,
                                         reasons=shown_to(None, row).reasons)}


@dataclass
class ExpertScreening:
    """What an expert's review page shows of a screening (when the bureau shows it): the risk and the reasons."""

    risk: float
    method: RiskMethod
    model_version: str | None
    reasons: list[dict[str, Any]]


def screening_for(submission: Submission) -> ReportScreening | None:
    return db.session.execute(sa.select(ReportScreening).where(ReportScreening.submission_id == submission.id)).scalar_one_or_none()

