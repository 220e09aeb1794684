"""Integrity pages: a procurement's 投标文件一致性检查 panel (the committee decides each flag before scoring)
and the red-flag page per bureau and per firm (with its Excel export and the quality figures).

Bureau users only: a flag names other bidders and quotes their documents, so firm users are refused (403).
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user

from evalhub.core import permissions
from evalhub.core.listing import Export, export, int_arg, paginate, parse_year, scoped
from evalhub.core.models import Bureau
from evalhub.core.web import button, detail_form, load, load_child, require
from evalhub.extensions import db
from evalhub.integrity import redflags, services
from evalhub.integrity.forms import DecisionForm
from evalhub.integrity.models import CollusionFlag, Indicator, RedFlag
from evalhub.procurement.models import Procurement
from evalhub.registry.models import Firm

bp = Blueprint("integrity", __name__)


# --- the consistency panel ---------------------------------------------------------------------------

def _render_panel(p: Procurement, status: int = 200, form: DecisionForm | None = None, form_flag: int | None = None):
    flags = services.flags_of(p)
    bids = {b.id: b for b in p.bids}
    check = db.session.execute(sa.select(services.IntegrityCheck).where(
        services.IntegrityCheck.procurement_id == p.id)).scalar_one_or_none()
    forms = {f.id: (form if form is not None and form_flag == f.id else DecisionForm(formdata=None, flag_id=str(f.id)))
             for f in flags if f.decision is None}
    return render_template("integrity/panel.html", p=p, flags=flags, bids=bids, check=check, forms=forms,
                           may_decide=permissions.can(current_user, "integrity.decide", p),
                           may_check=check is None and permissions.can(current_user, "integrity.decide", p),
                           blocked=services.undecided_flags_block(p)), status


def _decidable(procurement_id: int) -> Procurement:
    """A procurement whose panel the user sees and whose flags they may decide (and check)."""
    p = load(Procurement, procurement_id, "integrity.view")
    require("integrity.decide", p)
    return p


@bp.route("/procurements/<int:procurement_id>/integrity")
def panel(procurement_id: int):
    return _render_panel(load(Procurement, procurement_id, "integrity.view"))


@bp.route("/procurements/<int:procurement_id>/integrity/check", methods=["POST"])
def run_check(procurement_id: int):
    p = _decidable(procurement_id)
    return button(lambda: services.run_checks(p, current_user), to=url_for(".panel", procurement_id=p.id),
                  message="已完成投标文件一致性检查。")


@bp.route("/procurements/<int:procurement_id>/integrity/flags/<int:flag_id>", methods=["POST"])
def decide(procurement_id: int, flag_id: int):
    p = _decidable(procurement_id)
    flag = load_child(CollusionFlag, flag_id, procurement_id=p.id)
    form = DecisionForm()
    return detail_form(form, lambda: services.decide(flag, current_user, form.decision.data, form.reason.data), "form",
                       render=lambda status, form: _render_panel(p, status, form, flag.id),
                       to=url_for(".panel", procurement_id=p.id) + f"#flag-{flag.id}", message="已记录评审委员会的处理决定。")


# --- red flags ---------------------------------------------------------------------------------------

def _scope_args():
    """(bureau, year, firm, indicator) from the query string; a bureau or firm the user may not read: 403."""
    bureau = None
    bureau_id = int_arg("bureau")
    if bureau_id is not None:
        bureau = db.get_or_404(Bureau, bureau_id)
    elif current_user.bureau is not None:
        bureau = current_user.bureau
    require("redflags.view", bureau)
    try:
        year = parse_year((request.args.get("year") or "").strip()) if request.args.get("year") else None
    except ValueError:
        year = None
    firm = None
    firm_id = int_arg("firm")
    if firm_id is not None:  # the heading names it: only a firm of the libraries the user reads ("firm.view")
        firm = load(Firm, firm_id, "firm.view")
    try:
        indicator = Indicator.from_label(request.args.get("indicator") or "") if request.args.get("indicator") else None
    except ValueError:
        indicator = None
    return bureau, year, firm, indicator


def _export_spec(medians: dict) -> Export:
    def rows(items):
        for f in items:
            q = f.quality or {}
            yield {"年度": f.year, "指标": f.indicator.label, "说明": f.explanation, "取值": f.value, "阈值": f.threshold,
                   "相关采购": "、".join(f"#{i}" for i in f.procurement_ids),
                   **{redflags.QUALITY_LABELS[k]: q.get(k) for k in redflags.QUALITY_LABELS},
                   **{f"全区中位数·{redflags.QUALITY_LABELS[k]}": medians.get(k) for k in redflags.QUALITY_LABELS},
                   "低于全区中位数": "、".join(redflags.QUALITY_LABELS[k] for k in q.get("worse", []))}
    columns = ["年度", "指标", "说明", "取值", "阈值", "相关采购", *redflags.QUALITY_LABELS.values(),
               *(f"全区中位数·{v}" for v in redflags.QUALITY_LABELS.values()), "低于全区中位数"]
    return Export("采购红旗", columns, rows)


@bp.route("/integrity/red-flags")
def red_flags():
    bureau, year, firm, indicator = _scope_args()
    stmt = redflags.flags_stmt(current_user, bureau=bureau, year=year, firm_id=firm.id if firm else None, indicator=indicator)
    refresh = redflags.latest_refresh()
    medians = refresh.medians if refresh else {}
    if request.args.get("export") == "xlsx":
        return export(_export_spec(medians), list(db.session.execute(stmt).scalars()))
    page = paginate(stmt)
    summary = redflags.counts(redflags.flags_stmt(current_user, bureau=bureau, year=year,
                                                  firm_id=firm.id if firm else None))
    firm_ids = {f.firm_id for f in page.items if f.firm_id}
    firms = {f.id: f for f in db.session.execute(sa.select(Firm).where(Firm.id.in_(firm_ids))).scalars()} if firm_ids else {}
    bureaus = list(db.session.execute(scoped(Bureau).order_by(Bureau.path)).scalars())
    cases = redflags.outcomes_for(page.items)
    return render_template("integrity/red_flags.html", page=page, bureau=bureau, year=year, firm=firm, indicator=indicator,
                           summary=summary, refresh=refresh, medians=medians, firms=firms, bureaus=bureaus, cases=cases,
                           Indicator=Indicator, labels=redflags.QUALITY_LABELS, explain=redflags.EXPLAIN,
                           may_refresh=permissions.can(current_user, "redflags.refresh"),
                           may_inspect=lambda f: permissions.can(current_user, "supervision.manage",
                                                                 db.session.get(Bureau, f.bureau_id)))


@bp.route("/integrity/red-flags/refresh", methods=["POST"])
def refresh_red_flags():
    require("redflags.refresh")
    return button(lambda: redflags.start_refresh(current_user), to=url_for(".red_flags"),
                  message=lambda job: f"已提交重新计算（后台任务 #{job.id}：{job.status.label}）。")


@bp.route("/integrity/red-flags/<int:flag_id>/inspection", methods=["POST"])
def open_inspection(flag_id: int):
    flag = db.session.get(RedFlag, flag_id)
    if flag is None or not permissions.visible(current_user, flag):
        abort(404)
    return button(lambda: redflags.open_inspection(flag, current_user),
                  to=lambda inspection: url_for("supervision.inspection_detail", inspection_id=inspection.id),
                  message="已依据红旗立案定向检查。")
