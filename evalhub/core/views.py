"""Sign-in, the dashboard, and the spines' pages: audit log, draws, jobs, bureaus and their settings."""
from __future__ import annotations

import time
from urllib.parse import urlparse

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.orm import selectinload

from evalhub.core import anchoring, audit, draws, organisations, permissions
from evalhub.core.enums import Role
from evalhub.core.errors import ValidationFailed
from evalhub.core.exports import to_xlsx
from evalhub.core.forms import ActionForm, LoginForm, OrganisationImportForm
from evalhub.core.models import AuditEvent, Bureau, BudgetUnit, Draw, Job, User
from evalhub.core.notifications import AUDIENCE_LABELS, MATRIX
from evalhub.core.services import authenticate, end_session, session_user
from evalhub.core.settings import SETTINGS, effective_settings, set_setting
from evalhub.core.timeutil import format_beijing
from evalhub.core.web import button, load, paginate, require, submit_form, wants_export, xlsx_response
from evalhub.extensions import db, login_manager

bp = Blueprint("core", __name__)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    # "id:generation": a session from before a logout, password change, deactivation or "sign out
    # everywhere" no longer loads (its cookie is refused and the browser is sent to the login page).
    return session_user(user_id)


def _safe_next(target: str | None) -> str:
    if target and urlparse(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("core.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("core.dashboard"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        result = authenticate(form.username.data, form.password.data)
        if result.pending is not None:
            # Password right, second factor next (core/auth_views.py): nobody is signed in yet.
            session["totp_pending"] = {"id": result.pending.get_id(), "at": int(time.time()),
                                       "next": _safe_next(request.args.get("next"))}
            return redirect(url_for("core.login_totp"))
        if result.user is not None:
            login_user(result.user)
            return redirect(_safe_next(request.args.get("next")))
        form.form_errors = [result.error]
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("core/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    end_session(current_user)  # on the server: a copy of this cookie must not keep working
    db.session.commit()
    logout_user()
    session.clear()  # the next person at this browser must not see the previous one's messages
    flash("您已退出登录。", "info")
    return redirect(url_for("core.login"))


@bp.route("/audit")
@login_required
def audit_list():
    require("audit.view")
    stmt = permissions.scope(current_user, sa.select(AuditEvent), AuditEvent)
    action = request.args.get("action", "").strip()
    object_type = request.args.get("object_type", "").strip()
    actor = request.args.get("actor", "").strip()
    if action:
        stmt = stmt.where(AuditEvent.action.startswith(action))
    if object_type:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if actor:
        stmt = stmt.where(AuditEvent.actor_name == actor)
    stmt = stmt.order_by(AuditEvent.id.desc())
    if wants_export():
        rows = [{"序号": e.id, "时间（北京）": format_beijing(e.occurred_at, "%Y-%m-%d %H:%M:%S"), "操作人": e.actor_name,
                 "事件": e.action, "对象": f"{e.object_type}#{e.object_id or ''}", "摘要": e.summary, "哈希": e.hash}
                for e in db.session.execute(stmt.limit(50000)).scalars()]
        return xlsx_response(to_xlsx(rows, "审计日志"), "审计日志.xlsx")
    return render_template("core/audit_list.html", page=paginate(stmt), form=ActionForm(),
                           filters={"action": action, "object_type": object_type, "actor": actor})


@bp.route("/audit/verify", methods=["POST"])
@login_required
def audit_verify():
    require("audit.verify")
    return button(lambda: anchoring.verify_all([]),  # the chain, and the signed checkpoints stored beside it
                  to=url_for("core.audit_list"), form=ActionForm(),
                  message=lambda result: (f"审计链完整：已校验 {result.checked} 个事件。", "success") if result.ok
                  else (f"审计链断裂：{result.problem}", "danger"))


# --- draws -----------------------------------------------------------------------------------------

@bp.route("/draws")
@login_required
def draw_list():
    require("draw.view")
    stmt = permissions.scope(current_user, sa.select(Draw), Draw)
    return render_template("core/draw_list.html", page=paginate(stmt.order_by(Draw.id.desc())))


@bp.route("/draws/<int:draw_id>")
@login_required
def draw_detail(draw_id: int):
    record = load(Draw, draw_id, "draw.view")
    return render_template("core/draw_detail.html", draw=record, check=draws.verify(record),
                           redraws=db.session.execute(sa.select(Draw).where(Draw.redraw_of_id == record.id)).scalars().all())


# --- jobs ------------------------------------------------------------------------------------------

@bp.route("/jobs/<int:job_id>")
@login_required
def job_detail(job_id: int):
    job = load(Job, job_id, "job.view")
    if request.args.get("format") == "json":
        return jsonify({"id": job.id, "status": job.status.value, "status_label": job.status.label,
                        "progress": job.progress, "total": job.total, "percent": job.percent,
                        "message": job.message, "finished": job.finished_at is not None})
    return render_template("core/job_detail.html", job=job)


# --- bureaus, budget units and settings ------------------------------------------------------------

@bp.route("/bureaus")
@login_required
def bureau_list():
    require("dashboard.bureau")
    stmt = permissions.scope(current_user, sa.select(Bureau).order_by(Bureau.path), Bureau)
    bureaus = db.session.execute(stmt).scalars().all()
    return render_template("core/bureau_list.html", bureaus=bureaus)


@bp.route("/organisations/import", methods=["GET", "POST"])
@login_required
def organisations_import():
    """Bureaus and budget units from Excel (core.organisations): checked whole, nothing written on any error."""
    require("organisations.import")
    form = OrganisationImportForm()
    result = None

    def run():
        data = form.file.data.read(current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024 + 1)
        return organisations.import_workbook(data, actor=current_user)

    done, result, status = submit_form(form, run)
    if done:
        flash(f"导入完成：{result.summary}", "success")
        return redirect(url_for("core.bureau_list"))
    return render_template("core/organisations_import.html", form=form), status


@bp.route("/organisations/import/template.xlsx")
@login_required
def organisations_template():
    require("organisations.import")
    return xlsx_response(organisations.template(), "组织机构导入模板.xlsx")


@bp.route("/bureaus/<int:bureau_id>")
@login_required
def bureau_detail(bureau_id: int):
    bureau = load(Bureau, bureau_id, "bureau.view")
    units = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.bureau_id == bureau.id)
                               .options(selectinload(BudgetUnit.parent)).order_by(BudgetUnit.name)).scalars().all()
    return render_template("core/bureau_detail.html", bureau=bureau, units=units)


@bp.route("/admin/notifications")
@login_required
def notification_matrix():
    """The notification matrix as the code holds it (event → who → text): what each party is told, and when."""
    require("notifications.matrix")
    return render_template("core/notification_matrix.html", events=list(MATRIX.values()), audiences=AUDIENCE_LABELS)


@bp.route("/bureaus/<int:bureau_id>/settings", methods=["GET", "POST"])
@login_required
def bureau_settings(bureau_id: int):
    bureau = load(Bureau, bureau_id, "bureau.settings")
    form = ActionForm()
    status = 200
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        current = {d.key: v for d, v, _own in effective_settings(bureau)}
        try:
            for key, definition in SETTINGS.items():
                raw = request.form.get(key)
                if raw is None or raw == "":
                    continue
                if str(definition.parse(raw)) != str(current[key]):
                    set_setting(bureau, key, raw, current_user)
            db.session.commit()
            flash("设置已保存。", "success")
            return redirect(url_for("core.bureau_settings", bureau_id=bureau.id))
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
            flash(exc.message, "danger")
            status = 422
    return render_template("core/bureau_settings.html", bureau=bureau, rows=effective_settings(bureau),
                           form=form, errors=errors), status
