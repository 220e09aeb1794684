"""Report screening pages: the bureau queue, the flag card, models and training.

Thin routes: check permission, call a service, commit, redirect. ``Conflict`` and ``PermissionDenied``
from the services propagate to the app's error handlers (409 / 403).

Who sees what:
- every page is for bureau users and the system administrator (``screening.view``); firms and experts
  get 403 — the firm never learns its reports were screened, experts see the risk only on their review
  page and only when the bureau turns ``screening.show_risk_to_experts`` on (see ``review.views``);
- queue rows are read through ``services.queue`` (``permissions.scope``); a flag card through
  ``load(..., "screening.card")`` — a report outside the user's bureau subtree answers 403;
- 立案检查 from a card needs ``supervision.manage`` on the engagement's bureau;
- models are the region's: everyone on the bureau side reads their cards, only the region's
  administrators (``screening.models.manage``) train and promote.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_sqlalchemy.pagination import Pagination
from markupsafe import Markup, escape

from evalhub.core import permissions
from evalhub.core.exports import to_xlsx
from evalhub.core.models import Bureau, Job
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import beijing_today, format_beijing
from evalhub.core.web import load, require, wants_export, xlsx_response
from evalhub.extensions import db
from evalhub.registry.models import Firm
from evalhub.review.models import SubmissionKind
from evalhub.screening import services as S
from evalhub.screening.forms import OpenCaseForm, PromoteForm, TrainForm
from evalhub.screening.models import ModelStatus, ReportScreening, RiskMethod, ScreeningModel

bp = Blueprint("screening", __name__)


# --- small helpers ---------------------------------------------------------------------------------

def _int_arg(name: str) -> Optional[int]:
    raw = (request.args.get(name) or "").strip()
    return int(raw) if raw.isdigit() else None


def _kind_arg() -> Optional[SubmissionKind]:
    try:
        return SubmissionKind(request.args.get("kind", "").strip()) if request.args.get("kind") else None
    except ValueError:
        return None


class _ListPage(Pagination):
    """``db.paginate``'s page object over a list already in memory (the queue is ranked by the service)."""

    def _query_items(self) -> list[Any]:
        items = self._query_args["items"]
        start = (self.page - 1) * self.per_page
        return items[start:start + self.per_page]

    def _query_count(self) -> int:
        return len(self._query_args["items"])


def _paginate_list(items: list[Any]) -> _ListPage:
    return _ListPage(page=request.args.get("page", 1, type=int), per_page=current_app.config["PAGE_SIZE"],
                     max_per_page=200, error_out=False, items=items)


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


def _spot_check_share() -> int:
    return int(get_setting(current_user.bureau, "screening.spot_check_share")) if current_user.bureau else 10


def _method_note() -> tuple[str, Optional[str]]:
    """Which method scores now, and why the model is not used when it cannot be."""
    model, problem = S.active_model()
    if model is not None:
        return f"评价报告按模型 {model.version} 评分（实施方案按规则评分）", problem
    return RiskMethod.RULE.label, problem


def _visible_years() -> list[int]:
    stmt = permissions.scope(current_user, sa.select(ReportScreening.year).distinct(), ReportScreening)
    return sorted(db.session.execute(stmt).scalars(), reverse=True)


def _screening_ids_for(submission_ids: Iterable[int]) -> dict[int, int]:
    """submission id → screening id, for the screenings this user may open (to link sources to their cards)."""
    ids = [i for i in set(submission_ids) if i is not None]
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

QUEUE_EXPORT_COLUMNS = ["排名", "风险分", "建议抽查", "评价任务编号", "评价任务", "承担机构", "财政局", "类型", "版本",
                        "提交时间", "评分方法", "主要原因"]


@bp.route("/screening/queue")
@login_required
def queue():
    require("screening.view")
    years = _visible_years()
    this_year = beijing_today().year
    year = _int_arg("year") or (years[0] if years else this_year)
    filters = {"year": str(year), "bureau_id": request.args.get("bureau_id", "").strip(),
               "firm_id": request.args.get("firm_id", "").strip(), "kind": request.args.get("kind", "").strip()}
    entries = S.queue(current_user, year=year, bureau_id=_int_arg("bureau_id"), firm_id=_int_arg("firm_id"),
                      kind=_kind_arg())
    if wants_export():
        rows = []
        for entry in entries:
            s = entry.screening
            e = s.engagement
            rows.append({"排名": entry.rank, "风险分": round(s.risk, 4), "建议抽查": "是" if entry.flagged else "",
                         "评价任务编号": e.reference, "评价任务": e.name, "承担机构": e.firm.name if e.firm else "",
                         "财政局": e.bureau.name, "类型": s.kind.label, "版本": s.submission.version,
                         "提交时间": format_beijing(s.submitted_at),
                         "评分方法": s.method.label + (f" {s.model_version}" if s.model_version else ""),
                         "主要原因": "；".join(r["text"] for r in (s.reasons or [])[:3])})
        return xlsx_response(to_xlsx(rows, "报告筛查", columns=QUEUE_EXPORT_COLUMNS), f"报告筛查队列-{year}.xlsx")
    bureaus = db.session.execute(permissions.scope(current_user, sa.select(Bureau).order_by(Bureau.path), Bureau)).scalars().all()
    firm_ids = permissions.scope(current_user, sa.select(ReportScreening.firm_id).where(ReportScreening.year == year),
                                 ReportScreening)
    firms = db.session.execute(sa.select(Firm).where(Firm.id.in_(firm_ids)).order_by(Firm.name)).scalars().all()
    method, problem = _method_note()
    flagged = sum(1 for entry in entries if entry.flagged)
    return render_template("screening/queue.html", page=_paginate_list(entries), filters=filters,
                           years=sorted(set(years) | {this_year, year}, reverse=True), bureaus=bureaus, firms=firms,
                           kinds=SubmissionKind.choices(), method=method, problem=problem, flagged=flagged,
                           total=len(entries), share=_spot_check_share())


# --- the flag card ---------------------------------------------------------------------------------

@bp.route("/screening/<int:screening_id>")
@login_required
def card(screening_id: int):
    screening = load(ReportScreening, screening_id, "screening.card")
    data = S.flag_card(screening, current_user)
    details = screening.details or {}
    linked = [p["source"].id for p in data["passages"]]
    linked += [d.get("doc_id") for d in details.get("near_duplicates") or []]
    if details.get("most_similar"):
        linked.append(details["most_similar"].get("doc_id"))
    engagement = screening.engagement
    may_open = permissions.can(current_user, "supervision.manage", engagement.bureau)
    return render_template("screening/card.html", s=screening, e=engagement, card=data, details=details,
                           source_cards=_screening_ids_for(linked), cases=_cases_opened_from(screening),
                           form=OpenCaseForm(formdata=None) if may_open else None, RiskMethod=RiskMethod)


@bp.route("/screening/<int:screening_id>/case", methods=["POST"])
@login_required
def open_case(screening_id: int):
    screening = load(ReportScreening, screening_id, "screening.card")
    require("supervision.manage", screening.engagement.bureau)
    if not OpenCaseForm().validate_on_submit():
        abort(400)
    inspection = S.open_case(screening, current_user)
    db.session.commit()
    flash(f"已依据筛查提示立案定向检查 #{inspection.id}：{inspection.firm.name}。", "success")
    return redirect(url_for("supervision.inspection_detail", inspection_id=inspection.id))


# --- models ----------------------------------------------------------------------------------------

def _model(model_id: int) -> ScreeningModel:
    model = db.session.get(ScreeningModel, model_id)
    if model is None:
        abort(404)
    return model


@bp.route("/screening/models")
@login_required
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
@login_required
def model_detail(model_id: int):
    require("screening.view")
    model = _model(model_id)
    problem = S.active_model()[1] if model.status == ModelStatus.ACTIVE else None
    manage = permissions.can(current_user, "screening.models.manage")
    return render_template("screening/model_detail.html", m=model, c=model.card or {}, problem=problem,
                           ModelStatus=ModelStatus,
                           promote_form=PromoteForm(formdata=None) if manage and model.status != ModelStatus.ACTIVE else None)


@bp.route("/screening/models/train", methods=["POST"])
@login_required
def train():
    require("screening.models.manage")
    if not TrainForm().validate_on_submit():
        abort(400)
    job = S.start_training(current_user)
    return redirect(url_for("core.job_detail", job_id=job.id))


@bp.route("/screening/models/<int:model_id>/promote", methods=["POST"])
@login_required
def promote(model_id: int):
    require("screening.models.manage")
    model = _model(model_id)
    if not PromoteForm().validate_on_submit():
        abort(400)
    rescored = S.promote(model, current_user)
    db.session.commit()
    flash(f"已启用模型 {model.version}，已重新计算 {rescored} 份筛查结果的风险分。", "success")
    return redirect(url_for(".model_detail", model_id=model.id))
