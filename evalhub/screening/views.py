"""Report screening pages: the bureau queue, the flag card, models and training.

Thin routes: check permission, call a service, commit, redirect. ``Conflict`` and ``PermissionDenied``
from the services propagate to the app's error handlers (409 / 403).

Who sees what:
- every page is for bureau users and the system administrator (``screening.view``); firms and experts
  get 403 — the firm never learns its reports were screened, experts see the risk only on their review
  page and only when the bureau turns ``screening.show_risk_to_experts`` on (see ``review.views``);
- queue rows are read through ``services.queue`` (``permissions.scope``); a flag card through
  ``load(..., "screening.card")`` — a report outside the user's bureau subtree answers 403;
- another stored text (a copied passage's source, a similar report, a near-duplicate reason) is shown — text,
  firm, reference, chapter, link — only to a user who may read it (``services.shown_to``; a report withheld as
  classified only inside its bureau); otherwise the card reads "另一地区报告（无权查看原文）" and the share;
- 立案检查 from a card needs ``supervision.manage`` on the engagement's bureau;
- models are the region's: everyone on the bureau side reads their cards, only the region's
  administrators (``screening.models.manage``) train and promote.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Optional

import sqlalchemy as sa
from flask import Blueprint, jsonify, redirect, render_template, url_for
from flask_login import current_user
from markupsafe import Markup, escape

from evalhub.core import permissions
from evalhub.core.listing import (Export, Filter, counted_page, export, page_request, paginate, read_args,
                                  year_filter)
from evalhub.core.models import Job
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import beijing_today, to_beijing
from evalhub.core.web import button, handle_form, load, require, wants_export
from evalhub.extensions import db
from evalhub.registry.models import Firm
from evalhub.review.models import SubmissionKind
from evalhub.screening import learning
from evalhub.screening import services as S
from evalhub.screening import references as refs
from evalhub.screening.forms import (QUEUE_FILTERS, OpenCaseForm, firm_text, PromoteForm, ReferenceDeleteForm, ReferenceImportForm,
                                     TrainForm)
from evalhub.screening.models import ModelStatus, ReferenceDocument, ReportScreening, RiskMethod, ScreeningModel
from evalhub.review.models import Submission

bp = Blueprint("screening", __name__)


# --- small helpers ---------------------------------------------------------------------------------

def highlight_names(text: Optional[str], names: Iterable[str] | None) -> Markup:
    """``text`` escaped, with each occurrence of ``names`` (longest first, as written and NFKC-normalised,
    since the screening compares normalised text) wrapped in <mark>. Never trusts the text."""
    text = text or ""
    forms: set[str] = set()
    for name in names or ():
        name = (name or "").strip()
        if len(name) >= 2:
            forms.update({name, unicodedata.normalize("NFKC", name)})
    if not forms:
        return escape(text)
    pattern = re.compile("|".join(re.escape(n) for n in sorted(forms, key=len, reverse=True)))
    parts: list[Markup] = []
    last = 0
    for match in pattern.finditer(text):
        parts.append(escape(text[last:match.start()]))
        parts.append(Markup("<mark>%s</mark>") % match.group())
        last = match.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


bp.add_app_template_filter(highlight_names, "highlight_names")
bp.add_app_template_filter(learning.card_time, "card_time")


def _spot_check_share() -> int:
    return int(get_setting(current_user.bureau, "screening.spot_check_share")) if current_user.bureau else 10


def _method_note() -> tuple[str, Optional[str]]:
    """Which method scores now, and why the model is not used when it cannot be."""
    model, problem = S.active_model()
    if model is not None:
        return f"评价报告按模型 {model.version} 评分（实施方案按规则评分）", problem
    return RiskMethod.RULE.label, problem


def _screening_ids_for(submission_ids: Iterable[int]) -> dict[int, int]:
    """submission id → screening id, for the screenings this user may open (to link sources to their cards)."""
    ids = [i for i in set(submission_ids) if i is not None and i > 0]  # an outside report (< 0) has no card
    if not ids:
        return {}
    stmt = permissions.scope(current_user, sa.select(ReportScreening.submission_id, ReportScreening.id)
                             .where(ReportScreening.submission_id.in_(ids)), ReportScreening)
    return dict(db.session.execute(stmt).all())


def _cases_opened_from(screening: ReportScreening) -> list:
    """Targeted cases already opened from this flag (services.open_case records the flag in the case's
    trigger as ``（筛查#<id>，``; the closing comma keeps #3 from matching #30)."""
    from evalhub.supervision.models import Inspection, Trigger

    stmt = permissions.scope(current_user, sa.select(Inspection).where(
        Inspection.engagement_id == screening.engagement_id, Inspection.trigger == Trigger.SCREENING_FLAG,
        Inspection.trigger_detail.contains(f"筛查#{screening.id}，")), Inspection)
    return db.session.execute(stmt.order_by(Inspection.id)).scalars().all()


# --- the queue ------------------------------------------------------------------------------------

def _queue_row(entry) -> dict:
    s, e = entry.screening, entry.screening.engagement
    return {"排名": entry.rank, "风险分": round(s.risk, 4), "建议抽查": "是" if entry.flagged else "",
            "评价任务编号": e.reference, "评价任务": e.name, "承担机构": e.firm.name if e.firm else "",
            "财政局": e.bureau.name, "类型": s.kind.label, "版本": s.submission.version,
            "提交时间": to_beijing(s.submitted_at),
            "评分方法": s.method.label + (f" {s.model_version}" if s.model_version else ""),
            "主要原因": "；".join(entry.reasons[:3])}  # as this user may read them (services.shown_to)


def _unscored_row(s: ReportScreening) -> dict:
    """An unscored text in the export: after the ranked ones, no rank and no risk, its reason said."""
    e = s.engagement
    return {"排名": "", "风险分": "未评分", "建议抽查": "是（文本无法提取，须人工查看）", "评价任务编号": e.reference, "评价任务": e.name,
            "承担机构": e.firm.name if e.firm else "", "财政局": e.bureau.name, "类型": s.kind.label,
            "版本": s.submission.version, "提交时间": to_beijing(s.submitted_at), "评分方法": s.method.label,
            "主要原因": "；".join(r["text"] for r in s.reasons or [])}


QUEUE_EXPORT_COLUMNS = ["排名", "风险分", "建议抽查", "评价任务编号", "评价任务", "承担机构", "财政局", "类型", "版本",
                        "提交时间", "评分方法", "主要原因"]


@bp.route("/screening/queue")
def queue():
    require("screening.view")
    this_year = beijing_today().year
    filters, values = read_args(QUEUE_FILTERS)
    if wants_export():
        years = _choices()[0] if values["year"] is None else []
        year = values["year"] or (years[0] if years else this_year)
        chosen = dict(year=year, bureau_id=values["bureau_id"], firm_id=values["firm_id"], kind=values["kind"],
                      firm_name=values["firm"])
        # the ranked texts, then those that could not be scored (no rank, no risk: a person opens them)
        rows = [*map(_queue_row, S.queue(current_user, **chosen)), *map(_unscored_row, S.unscored(current_user, **chosen))]
        return export(Export("报告筛查", QUEUE_EXPORT_COLUMNS, lambda rows: rows, f"报告筛查队列-{year}.xlsx"), rows)
    years, pending = _choices()
    year = values["year"] or (years[0] if years else this_year)
    filters["year"] = str(year)
    chosen = dict(year=year, bureau_id=values["bureau_id"], firm_id=values["firm_id"], kind=values["kind"],
                  firm_name=values["firm"])
    # a link's one firm (``firm_id``) shows as its name in the firm box
    if values["firm_id"] is not None and not values["firm"]:
        # scoped: an id typed into the address names only a firm the reader may see (not another bureau's application)
        filters["firm"] = db.session.execute(permissions.scope(
            current_user, sa.select(Firm.name).where(Firm.id == values["firm_id"]), Firm)).scalar() or ""
    method, problem = _method_note()
    number, per_page = page_request()
    # ranked, counted and cut to the page by the database: only the rows shown are read
    queued = S.queue_page(current_user, page=number, per_page=per_page, **chosen)
    page = counted_page(queued.entries, queued.total, number, per_page)
    return render_template("screening/queue.html", page=page, filters=filters, pending=pending,
                           years=sorted(set(years) | {this_year, year}, reverse=True),
                           bureaus=permissions.visible_bureaus(current_user),
                           kinds=SubmissionKind.choices(), method=method, problem=problem, flagged=queued.flagged,
                           total=queued.total, share=_spot_check_share(),
                           unscored=S.unscored(current_user, **chosen))


def _choices() -> tuple[list[int], list[dict]]:
    """What the queue page offers besides the ranking, in one statement (a UNION ALL of two parts, each row
    (part, position, number, text)): the years with screenings the user may see, newest first; and the
    uploads the worker has not screened yet (queued or running), newest first, as far as the user sees. The
    firms of the year are not listed (hundreds for the region): the firm box asks ``queue_firms`` as one types."""
    from evalhub.core.enums import JobStatus

    def build() -> sa.Select:
        rs = ReportScreening
        # the years: a skip scan (each step the next year above the last, by the year index), about one probe per
        # year instead of reading every screening in scope
        years = permissions.scope(current_user, sa.select(sa.func.min(rs.year).label("year")), rs).cte(
            "years", recursive=True)
        following = permissions.scope(current_user, sa.select(sa.func.min(rs.year)).where(rs.year > years.c.year),
                                      rs).scalar_subquery()
        years = years.union_all(sa.select(following).where(years.c.year.is_not(None)))
        # a system job (no creator) is scoped like the queue itself, by the engagement's bureau
        jobs = sa.select(Job.id, Job.title, Job.params["submission_id"].as_integer().label("submission_id")).where(
            Job.kind == S.SCREEN_JOB, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        bureaus = permissions.visible_bureau_ids(current_user)
        if bureaus is not None:
            jobs = jobs.where(permissions.in_bureaus(Job.bureau_id, bureaus))
        jobs = jobs.order_by(Job.id.desc()).limit(20).subquery("pending")
        text = sa.cast(sa.null(), sa.String)
        # the parts numbered 0 (years) and 1 (uploads, newest first), and sorted once; the
        # years' WITH sits inside the statement, which so begins with SELECT: a page that only read ends its
        # transaction with COMMIT and keeps its prepared statements (``evalhub._end_reads_with_commit`` takes a
        # statement beginning with WITH for a write; a WITH inside a subquery cannot write)
        parts = sa.union_all(
            sa.select(sa.literal(0).label("part"), years.c.year.label("pos"), years.c.year.label("number"),
                      text.label("text")).where(years.c.year.is_not(None)),
            sa.select(sa.literal(1), -jobs.c.id, jobs.c.submission_id, jobs.c.title)
        ).add_cte(years, nest_here=True).subquery("choices")
        return sa.select(parts).order_by(parts.c.part, parts.c.pos, parts.c.text)

    # built once per scope (``permissions.kept``): the recursive years and the uploads cost more to build than
    # to run
    stmt = permissions.kept(current_user, "screening.choices", build)
    found: list[list] = [[], []]
    for part, _, number, label in db.session.execute(stmt):
        found[part].append((number, label))
    years_found, jobs_found = found
    return (sorted((year for year, _ in years_found), reverse=True),
            [{"title": title, "params": {"submission_id": submission_id}} for submission_id, title in jobs_found])


@bp.route("/screening/queue/firms")
def queue_firms():
    """The firm box's suggestions: up to 20 firms of the year's queue as the user sees it whose name holds the
    text typed (``q``), as JSON."""
    require("screening.view")
    _, values = read_args((year_filter(), Filter("q", firm_text)))
    year = values["year"] or beijing_today().year
    return jsonify(firms=[{"id": firm_id, "name": name}
                          for firm_id, name in S.queue_firms(current_user, year, values["q"] or "")])


# --- the flag card ---------------------------------------------------------------------------------

@bp.route("/screening/<int:screening_id>")
def card(screening_id: int):
    screening = load(ReportScreening, screening_id, "screening.card")
    data = S.flag_card(screening, current_user)  # other texts only as far as this user may read them
    details = screening.details or {}
    linked = [p["source"].id for p in data["passages"] if p["source"] is not None]
    linked += [d.get("doc_id") for d in data["near_duplicates"]]
    if data["most_similar"]:
        linked.append(data["most_similar"].get("doc_id"))
    engagement = screening.engagement
    may_open = permissions.can(current_user, "supervision.manage", engagement.bureau)
    return render_template("screening/card.html", s=screening, e=engagement, card=data, details=details,
                           source_cards=_screening_ids_for(linked), cases=_cases_opened_from(screening),
                           form=OpenCaseForm(formdata=None) if may_open else None, RiskMethod=RiskMethod)


@bp.route("/screening/<int:screening_id>/case", methods=["POST"])
def open_case(screening_id: int):
    screening = load(ReportScreening, screening_id, "screening.card")
    require("supervision.manage", screening.engagement.bureau)
    return button(lambda: S.open_case(screening, current_user), form=OpenCaseForm(),
                  message=lambda inspection: f"已依据筛查提示立案定向检查 #{inspection.id}：{inspection.firm.name}。",
                  to=lambda inspection: url_for("supervision.inspection_detail", inspection_id=inspection.id))


# --- models ----------------------------------------------------------------------------------------

def _model(model_id: int) -> ScreeningModel:
    return db.get_or_404(ScreeningModel, model_id)


@bp.route("/screening/models")
def model_list():
    require("screening.view")
    models = db.session.execute(sa.select(ScreeningModel)
                                .order_by(ScreeningModel.created_at.desc(), ScreeningModel.id.desc())).scalars().all()
    loaded, problem = S.active_model()
    jobs = db.session.execute(permissions.scope(
        current_user, sa.select(Job).where(Job.kind == "screening.train"), Job)
        .order_by(Job.id.desc()).limit(5)).scalars().all()
    manage = permissions.can(current_user, "screening.models.manage")
    return render_template("screening/models.html", models=models, active=S.active_model_row(), loaded=loaded,
                           problem=problem, jobs=jobs, manage=manage, ModelStatus=ModelStatus,
                           train_form=TrainForm(formdata=None) if manage else None,
                           promote_form=PromoteForm(formdata=None) if manage else None)


@bp.route("/screening/models/<int:model_id>")
def model_detail(model_id: int):
    require("screening.view")
    model = _model(model_id)
    problem = S.active_model()[1] if model.status == ModelStatus.ACTIVE else None
    manage = permissions.can(current_user, "screening.models.manage")
    return render_template("screening/model_detail.html", m=model, c=model.card or {}, problem=problem,
                           ModelStatus=ModelStatus,
                           promote_form=PromoteForm(formdata=None) if manage and model.status != ModelStatus.ACTIVE else None)


@bp.route("/screening/models/train", methods=["POST"])
def train():
    require("screening.models.manage")
    return button(lambda: S.start_training(current_user), form=TrainForm(),
                  to=lambda job: url_for("core.job_detail", job_id=job.id))


@bp.route("/screening/models/<int:model_id>/promote", methods=["POST"])
def promote(model_id: int):
    require("screening.models.manage")
    model = _model(model_id)
    return button(lambda: S.promote(model, current_user), form=PromoteForm(),
                  message=lambda rescored: f"已启用模型 {model.version}，已重新计算 {rescored} 份筛查结果的风险分。",
                  to=url_for(".model_detail", model_id=model.id))


# --- an upload being screened in the worker --------------------------------------------------------

@bp.route("/screening/submission/<int:submission_id>")
def submission_status(submission_id: int):
    """The screening of one upload: its card once the worker has screened it; until then "筛查中", and the
    page reloads itself every few seconds."""
    submission = load(Submission, submission_id, "screening.pending")
    screening = S.screening_for(submission)
    if screening is not None and permissions.can(current_user, "screening.card", screening):
        return redirect(url_for(".card", screening_id=screening.id))
    return render_template("screening/reference_pending.html", submission=submission, e=submission.engagement,
                           job=S.pending_screening(submission))


# --- outside reference reports (外部公开报告) -----------------------------------------------------------

def _reference_page(form: ReferenceImportForm | None):
    page = paginate(refs.visible_references(current_user).order_by(ReferenceDocument.imported_at.desc(),
                                                                   ReferenceDocument.id.desc()))
    return render_template("screening/references.html", page=page, form=form, label=refs.REFERENCE_LABEL,
                           delete_form=ReferenceDeleteForm(formdata=None),
                           may_delete=lambda r: permissions.can(current_user, "screening.references.delete", r))


@bp.route("/screening/references", methods=["GET", "POST"])
def references():
    require("screening.view")
    manage = permissions.can(current_user, "screening.references.manage")
    form = ReferenceImportForm() if manage else None
    if form is None:
        return _reference_page(None)

    def run():
        archive, metadata = form.archive.data, form.metadata.data
        return refs.import_references(current_user, archive.filename or "", archive.read(),
                                      metadata.read() if metadata else None)

    return handle_form(form, run, message=lambda result: result.message, to=url_for(".references"),
                       failed=lambda status: (_reference_page(form), status))


@bp.route("/screening/references/<int:reference_id>/delete", methods=["POST"])
def reference_delete(reference_id: int):
    reference = load(ReferenceDocument, reference_id, "screening.references.delete")
    title = reference.title
    return button(lambda: refs.delete_reference(reference, current_user), form=ReferenceDeleteForm(),
                  message=f"已删除外部公开报告：{title}。", to=url_for(".references"))
