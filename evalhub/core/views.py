"""Sign-in, the dashboard, and the spines' pages: audit log, draws, jobs, bureaus and their settings."""
from __future__ import annotations

import time
from urllib.parse import urlparse

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy.orm import selectinload
from wtforms import SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from evalhub.core import anchoring, draws, organisations, permissions
from evalhub.core.errors import ValidationFailed
from evalhub.core.exports import to_xlsx
from evalhub.core.forms import ActionForm, LoginForm, OrganisationImportForm, SettingClearForm
from evalhub.core.forms import BaseForm
from evalhub.core.models import AuditEvent, Bureau, BudgetUnit, Draw, DrawWitness, Job, User
from evalhub.core.notifications import AUDIENCE_LABELS, MATRIX
from evalhub.core.services import authenticate, end_session, session_user
from evalhub.core.settings import SETTINGS, clear_setting, effective_settings, inherited, save_settings
from evalhub.core.timeutil import to_beijing
from evalhub.core.web import (
    button,
    handle_form,
    load,
    paginate,
    public,
    require,
    submit_form,
    visitors_only,
    wants_export,
    xlsx_response,
)
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
@visitors_only
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        result = authenticate(form.username.data, form.password.data, request.remote_addr)
        if result.pending is not None:
            # Password right, second factor next (core/auth_views.py): nobody is signed in yet.
            session["totp_pending"] = {"id": result.pending.get_id(), "at": int(time.time()),
                                       "next": _safe_next(request.args.get("next"))}
            return redirect(url_for("core.login_totp"))
        if result.user is not None:
            login_user(result.user)
            return redirect(_safe_next(request.args.get("next")))
        form.form_errors = [result.error]
        status = 429 if result.limited else 401
    elif request.method == "POST":
        status = 400
    return render_template("core/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    end_session(current_user)  # on the server: a copy of this cookie must not keep working
    db.session.commit()
    logout_user()
    session.clear()  # the next person at this browser must not see the previous one's messages
    flash("您已退出登录。", "info")
    return redirect(url_for("core.login"))


AUDIT_EXPORT_LIMIT = 50000  # rows of one audit-log export; more is said in the file and on the page


@bp.route("/audit")
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
        rows = [{"序号": e.id, "时间（北京）": to_beijing(e.occurred_at), "操作人": e.actor_name,
                 "事件": e.action, "对象": f"{e.object_type}#{e.object_id or ''}", "摘要": e.summary, "哈希": e.hash}
                for e in db.session.execute(stmt.limit(AUDIT_EXPORT_LIMIT + 1)).scalars()]
        notes, name = None, "审计日志.xlsx"
        if len(rows) > AUDIT_EXPORT_LIMIT:  # cut, and the file says so: a silent cut reads as the whole log
            del rows[AUDIT_EXPORT_LIMIT:]
            notes = {"说明": [f"符合筛选条件的事件超过 {AUDIT_EXPORT_LIMIT} 条，本文件只含最新的 {AUDIT_EXPORT_LIMIT} 条"
                            f"（序号 {rows[-1]['序号']} 及以后）。请按事件、对象或操作人缩小范围后分批导出。"]}
            name = f"审计日志（最新{AUDIT_EXPORT_LIMIT}条）.xlsx"
        return xlsx_response(to_xlsx(rows, "审计日志", notes=notes, datetime_format="yyyy-mm-dd hh:mm:ss"), name)
    return render_template("core/audit_list.html", page=paginate(stmt), form=ActionForm(), export_limit=AUDIT_EXPORT_LIMIT,
                           filters={"action": action, "object_type": object_type, "actor": actor})


@bp.route("/audit/verify", methods=["POST"])
def audit_verify():
    require("audit.verify")
    return button(lambda: anchoring.verify_all([]),  # the chain, and the signed checkpoints stored beside it
                  to=url_for("core.audit_list"), form=ActionForm(),
                  message=lambda result: (f"审计链完整：已校验 {result.checked} 个事件。", "success") if result.ok
                  else (f"审计链断裂：{result.problem}", "danger"))


# --- draws -----------------------------------------------------------------------------------------
# Two-phase witnessed draws (core/draws.py): the bureau's page names the witnesses and reveals; each witness,
# signed in as themselves, enters a number on the same page; anyone may recompute a drawn draw in the browser.

class _WitnessChoices(SelectMultipleField):
    def pre_validate(self, form) -> None:
        allowed = {value for value, _ in self.choices or []}
        if any(value not in allowed for value in self.data or []):
            raise ValidationError("所选监督人不在可选名单中。")


class WitnessesForm(BaseForm):
    witnesses = _WitnessChoices("监督人", coerce=int)


class NumberForm(BaseForm):
    number = StringField("您的数字", validators=[DataRequired("请输入数字"), Length(max=30, message="不能超过 18 位数字")])


def _witness_choices(record: Draw) -> list[tuple[int, str]]:
    users = draws.witness_candidates(record, current_user)
    return [(u.id, f"{u.display_name or u.username}（{u.username}，{u.bureau.short_name if u.bureau else ''}）") for u in users]


def _viewable(record: Draw) -> bool:
    return permissions.can(current_user, "draw.view", record) or draws.is_witness(current_user, record)


def _record_json(record: Draw, *, reasons: bool = True) -> dict:
    """What the browser recomputes from: only published values (the secret only once drawn). Without ``reasons``
    (a public page of a draw among people) the canonical text, which holds the exclusion reasons, is left out:
    the result is still recomputed from the list, the seed and the excluded ids."""
    drawn = record.status == draws.DrawStatus.DRAWN
    parent = record.derived_from
    return {"id": record.id, "canonical": draws.canonical(record) if draws.hashed(record) and reasons else None,
            "candidate_hash": record.candidate_hash, "commitment": record.commitment,
            "secret": record.secret if drawn and record.commitment else None,
            "numbers": [w.number for w in record.witnesses] if drawn else [],
            "parent_seed": parent.seed if parent is not None else None,
            "seed": record.seed if drawn else None, "k": record.k, "result": list(record.result_ids) if drawn else [],
            "candidates": list(record.candidate_ids), "excluded": [e["id"] for e in record.exclusions]}


def _render_draw(record: Draw, status: int = 200, *, public: bool = False, **forms):
    manage = not public and record.status == draws.DrawStatus.ANNOUNCED and permissions.can(current_user, "draw.manage", record)
    mine = None if public else next((w for w in record.witnesses if w.user_id == current_user.id), None)
    witnesses_form = forms.get("witnesses_form")
    if manage and witnesses_form is None:
        witnesses_form = WitnessesForm(data={"witnesses": [w.user_id for w in record.witnesses]})
    if witnesses_form is not None:
        witnesses_form.witnesses.choices = _witness_choices(record)
    # the public page shows who was drawn from whom, never why anyone was left out: a person's reasons (a
    # suspension, a tie) and a firm's (a draft rating's watch list, a recusal, a case) are not published facts
    reasons = not public
    return render_template(
        "core/draw_detail.html", draw=record, check=draws.verify(record), public=public, manage=manage, mine=mine,
        withdrawn_reason=draws.withdrawal_reason(record),
        witnesses_form=witnesses_form, number_form=forms.get("number_form") or NumberForm(), action_form=ActionForm(),
        record_json=_record_json(record, reasons=reasons), reasons=reasons, hashed=draws.hashed(record),
        is_public=draws.is_public(record), witnesses_changeable=draws.witnesses_changeable(record),
        names=draws.display_names(record, public=public),
        redraws=db.session.execute(sa.select(Draw).where(Draw.redraw_of_id == record.id)).scalars().all(),
        derived=[d for d in db.session.execute(sa.select(Draw).where(Draw.derived_from_id == record.id)).scalars()
                 if not public or draws.is_public(d)],  # a public page links only what is public
    ), status


@bp.route("/draws")
def draw_list():
    require("draw.view")
    stmt = permissions.scope(current_user, sa.select(Draw), Draw)
    status = request.args.get("status")
    if status == draws.DrawStatus.ANNOUNCED.value:
        stmt = stmt.where(Draw.status == draws.DrawStatus.ANNOUNCED)
    waiting = db.session.execute(sa.select(Draw).join(DrawWitness).where(
        DrawWitness.user_id == current_user.id, DrawWitness.number.is_(None),
        Draw.status == draws.DrawStatus.ANNOUNCED).order_by(Draw.id)).scalars().all()
    return render_template("core/draw_list.html", page=paginate(stmt.options(selectinload(Draw.witnesses))
                                                                .order_by(Draw.id.desc())), waiting=waiting,
                           status=status)


@bp.route("/draws/<int:draw_id>", methods=["GET"])
def draw_detail(draw_id: int):
    record = db.get_or_404(Draw, draw_id)
    if not _viewable(record):
        abort(403)
    return _render_draw(record)


@bp.route("/draws/<int:draw_id>/witnesses", methods=["POST"])
def draw_witnesses(draw_id: int):
    record = load(Draw, draw_id, "draw.manage")
    form = WitnessesForm()
    form.witnesses.choices = _witness_choices(record)

    def call():
        users = [db.session.get(User, i) for i in (form.witnesses.data or [])]
        return draws.name_witnesses(record, [u for u in users if u is not None], current_user)

    return _draw_step(record, form, call, "witnesses_form", "已指定监督人：请各监督人登录后在本页输入自己的数字。")


def _draw_step(record: Draw, form, call, form_name: str, message: str):
    """One step of a witnessed draw from its page: run it, or show the page again with the form's messages."""
    done, _, status = submit_form(form, call)
    if not done:
        return _render_draw(record, status, **{form_name: form})
    flash(message, "success")
    return redirect(url_for("core.draw_detail", draw_id=record.id))


@bp.route("/draws/<int:draw_id>/number", methods=["POST"])
def draw_number(draw_id: int):
    record = db.get_or_404(Draw, draw_id)
    if not draws.is_witness(current_user, record):
        abort(403)
    form = NumberForm()
    return _draw_step(record, form, lambda: draws.enter_number(record, current_user, form.number.data), "number_form",
                      "已记录您的数字。全部监督人输入后，由操作人揭晓。")


@bp.route("/draws/<int:draw_id>/reveal", methods=["POST"])
def draw_reveal(draw_id: int):
    record = load(Draw, draw_id, "draw.manage")
    return button(lambda: draws.reveal(record, current_user), form=ActionForm(),
                  to=url_for("core.draw_detail", draw_id=record.id),
                  message=lambda r: (f"已揭晓：抽中 {'、'.join(draws.display_names(r, public=False).get(str(i), str(i)) for i in r.result_ids)}。", "success"))


@bp.route("/public/draws/<int:draw_id>")
@public
def draw_public(draw_id: int):
    """Anyone, signed in or not, reads and recomputes a published draw (firm lotteries, inspection draws once
    their list is public, expert panels once the review has ended); anything else is 404."""
    record = db.session.get(Draw, draw_id)
    if record is None or not draws.is_public(record):
        abort(404)
    return _render_draw(record, public=True)


# --- jobs ------------------------------------------------------------------------------------------

@bp.route("/jobs/<int:job_id>")
def job_detail(job_id: int):
    job = load(Job, job_id, "job.view")
    if request.args.get("format") == "json":
        return jsonify({"id": job.id, "status": job.status.value, "status_label": job.status.label,
                        "progress": job.progress, "total": job.total, "percent": job.percent,
                        "message": job.message, "finished": job.finished_at is not None})
    return render_template("core/job_detail.html", job=job)


# --- bureaus, budget units and settings ------------------------------------------------------------

@bp.route("/bureaus")
def bureau_list():
    require("dashboard.bureau")
    stmt = permissions.scope(current_user, sa.select(Bureau).order_by(Bureau.path), Bureau)
    bureaus = db.session.execute(stmt).scalars().all()
    return render_template("core/bureau_list.html", bureaus=bureaus)


@bp.route("/organisations/import", methods=["GET", "POST"])
def organisations_import():
    """Bureaus and budget units from Excel (core.organisations): checked whole, nothing written on any error."""
    require("organisations.import")
    form = OrganisationImportForm()
    result = None

    def run():
        data = form.file.data.read(current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024 + 1)
        return organisations.import_workbook(data, actor=current_user, filename=form.file.data.filename or "")

    done, result, status = submit_form(form, run)
    if done:
        flash(f"导入完成：{result.summary}", "success")
        return redirect(url_for("core.bureau_list"))
    return render_template("core/organisations_import.html", form=form), status


@bp.route("/organisations/import/template.xlsx")
def organisations_template():
    require("organisations.import")
    return xlsx_response(organisations.template(), "组织机构导入模板.xlsx")


@bp.route("/bureaus/<int:bureau_id>")
def bureau_detail(bureau_id: int):
    bureau = load(Bureau, bureau_id, "bureau.view")
    units = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.bureau_id == bureau.id)
                               .options(selectinload(BudgetUnit.parent)).order_by(BudgetUnit.name)).scalars().all()
    return render_template("core/bureau_detail.html", bureau=bureau, units=units)


@bp.route("/admin/notifications")
def notification_matrix():
    """The notification matrix as the code holds it (event → who → text): what each party is told, and when."""
    require("notifications.matrix")
    return render_template("core/notification_matrix.html", events=list(MATRIX.values()), audiences=AUDIENCE_LABELS)


@bp.route("/bureaus/<int:bureau_id>/settings", methods=["GET", "POST"])
def bureau_settings(bureau_id: int):
    bureau = load(Bureau, bureau_id, "bureau.settings")
    form = ActionForm()
    status = 200
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        try:
            save_settings(bureau, {key: request.form.get(key) for key in SETTINGS}, current_user)
            db.session.commit()
            flash("设置已保存。", "success")
            return redirect(url_for("core.bureau_settings", bureau_id=bureau.id))
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
            flash(exc.message, "danger")
            status = 422
    return _settings_page(bureau, form, errors, status)


@bp.route("/bureaus/<int:bureau_id>/settings/clear", methods=["POST"])
def bureau_setting_clear(bureau_id: int):
    """恢复沿用上级: the bureau's own value of one setting removed (the same permission as setting it)."""
    bureau = load(Bureau, bureau_id, "bureau.settings")
    form = SettingClearForm()

    def done(now):
        definition = SETTINGS[form.key.data]
        return f"“{definition.label}”已恢复沿用上级，现为 {definition.text(now)}。"

    return handle_form(form, lambda: clear_setting(bureau, form.key.data, current_user), message=done,
                       to=url_for("core.bureau_settings", bureau_id=bureau.id),
                       failed=lambda status: _settings_page(bureau, ActionForm(), {}, status, clear_form=form))


def _settings_page(bureau: Bureau, form: ActionForm, errors: dict[str, str], status: int,
                   clear_form: SettingClearForm | None = None):
    rows = effective_settings(bureau)
    # what 恢复沿用上级 would leave in force, beside each value the bureau set itself
    follows = {d.key: d.text(inherited(bureau, d.key)) for d, _value, own in rows if own}
    return render_template("core/bureau_settings.html", bureau=bureau, rows=rows, form=form, errors=errors,
                           follows=follows, clear_form=clear_form or SettingClearForm(formdata=None),
                           labels={k: d.label for k, d in SETTINGS.items()}), status
