"""Signing in, continued: the TOTP step, "忘记密码", the one-time activation and reset pages, enrolment of
the second factor on 我的账号, and the gate that sends a signed-in user to change an expired password or to
enrol a required second factor before anything else.

Its routes sit on the core blueprint (endpoints ``core.login_totp`` …); the app factory imports this module
before registering that blueprint. The rules are in core/accounts.py and core/passwords.py.
"""
from __future__ import annotations

import time

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user

from evalhub.core import accounts, passwords
from evalhub.core.accounts import LinkPurpose
from evalhub.core.errors import Conflict
from evalhub.core.forms import (ForgotPasswordForm, SetPasswordForm, TotpBeginForm, TotpConfirmForm, TotpDisableForm,
                                TotpLoginForm)
from evalhub.core.services import session_user
from evalhub.core.views import bp
from evalhub.core.web import handle_form, public, signed_out_by_service, submit_form, visitors_only
from evalhub.extensions import db

# --- the gate ---------------------------------------------------------------------------------------
# What a signed-in user may still open while the gate holds them: the page that clears it, and signing out.
_OPEN = {
    accounts.PASSWORD_EXPIRED: {"core.account", "core.account_password", "core.logout", "core.account_sign_out_everywhere"},
    accounts.TOTP_ENROLMENT: {"core.account_totp", "core.account_totp_setup", "core.account_totp_confirm", "core.logout"},
}



@bp.before_app_request
def account_gate():
    if request.endpoint in (None, "static") or request.path.startswith("/api/"):
        return None
    if not current_user.is_authenticated:
        return None
    reason = accounts.gate(current_user)
    if reason is None or request.endpoint in _OPEN[reason]:
        return None
    if reason == accounts.PASSWORD_EXPIRED:
        flash(f"您的密码已超过 {passwords.policy().max_age_days} 天未更换，请先修改密码。", "warning")
        return redirect(url_for("core.account"))
    flash("本局要求管理员使用两步验证：请先绑定验证器。", "warning")
    return redirect(url_for("core.account_totp"))


# --- the second step of signing in ------------------------------------------------------------------

def _pending_user():
    pending = session.get("totp_pending")
    if not isinstance(pending, dict) or not isinstance(pending.get("at"), int) \
            or time.time() - pending["at"] > accounts.PENDING_SECONDS:
        session.pop("totp_pending", None)
        return None, None
    return session_user(str(pending.get("id") or "")), pending


@bp.route("/login/totp", methods=["GET", "POST"])
@visitors_only
def login_totp():
    user, pending = _pending_user()
    if user is None:
        flash("登录已超时，请重新输入用户名和密码。", "warning")
        return redirect(url_for("core.login"))
    form = TotpLoginForm()
    status = 200
    if form.validate_on_submit():
        result = accounts.verify_totp_login(user, form.code.data, request.remote_addr)
        if result.user is not None:
            session.pop("totp_pending", None)
            login_user(result.user)
            return redirect(pending.get("next") or url_for("core.dashboard"))
        if "锁定" in (result.error or "") or result.error == "请重新登录。":
            session.pop("totp_pending", None)
            flash(result.error, "danger")
            return redirect(url_for("core.login"))
        form.form_errors = [result.error]
        status = 429 if result.limited else 401
    elif request.method == "POST":
        status = 400
    return render_template("core/login_totp.html", form=form, username=user.username), status


# --- 忘记密码 ----------------------------------------------------------------------------------------

@bp.route("/account/forgot", methods=["GET", "POST"])
@public
def account_forgot():
    form = ForgotPasswordForm()
    done, issued, status = submit_form(
        form, lambda: accounts.request_password_reset(form.identifier.data, request.remote_addr))
    if not done:
        return render_template("core/forgot.html", form=form, answered=False), status
    if issued is not None:
        accounts.email_link(*issued)
    return render_template("core/forgot.html", form=ForgotPasswordForm(formdata=None), answered=True,
                           answer=accounts.forgot_answer())


# --- the one-time links -------------------------------------------------------------------------------

def _link_page(token: str, purpose: LinkPurpose):
    check = accounts.check_link(token, purpose)
    if not check.ok:
        return render_template("core/set_password.html", purpose=purpose, problem=check.problem, form=None), 410 \
            if check.link is not None else 404
    form = SetPasswordForm()
    form.new_password.description = passwords.policy().describe()
    try:
        done, user, status = submit_form(
            form, lambda: accounts.use_link(token, purpose, form.new_password.data, form.confirm.data))
    except Conflict as exc:
        db.session.rollback()
        return render_template("core/set_password.html", purpose=purpose, problem=exc.message, form=None), 409
    if done:
        flash(("账户已激活" if purpose == LinkPurpose.ACTIVATION else "密码已重新设置")
              + f"，请用用户名 {user.username} 和新密码登录。", "success")
        return redirect(url_for("core.login"))
    return render_template("core/set_password.html", purpose=purpose, problem=None, form=form,
                           user=check.link.user), status


@bp.route("/account/activate/<token>", methods=["GET", "POST"])
@public
def account_activate(token: str):
    return _link_page(token, LinkPurpose.ACTIVATION)


@bp.route("/account/reset/<token>", methods=["GET", "POST"])
@public
def account_reset(token: str):
    return _link_page(token, LinkPurpose.RESET)


# --- enrolling the second factor ----------------------------------------------------------------------

def _totp_page(confirm_form: TotpConfirmForm | None = None, disable_form: TotpDisableForm | None = None,
               status: int = 200, begin_form: TotpBeginForm | None = None, secret: str | None = None):
    """The second-factor page. ``secret``: only in the answer to a begin whose password was right — a later GET
    (a borrowed session) does not show a begun enrolment's secret, only the forms to confirm it or begin again."""
    user = current_user
    if not accounts.totp_available(user):
        abort(403)
    uri = accounts.totp_uri(user, secret) if secret else None
    return render_template(
        "core/totp.html", user=user, secret=secret, uri=uri, qr=accounts.totp_qr_data_uri(uri) if uri else None,
        pending=accounts.totp_pending(user), enrolment_minutes=accounts.enrolment_minutes(),
        required=accounts.totp_required(user), begin_form=begin_form or TotpBeginForm(formdata=None),
        confirm_form=confirm_form or TotpConfirmForm(formdata=None),
        disable_form=disable_form or TotpDisableForm(formdata=None)), status


@bp.route("/account/totp")
def account_totp():
    return _totp_page()


@bp.route("/account/totp/setup", methods=["POST"])
def account_totp_setup():
    form = TotpBeginForm()
    done, secret, status = submit_form(
        form, lambda: accounts.totp_begin(current_user, form.password.data, request.remote_addr))
    if not done:
        return signed_out_by_service(form) or _totp_page(begin_form=form, status=status)
    return _totp_page(secret=secret)  # shown here, once: no redirect to a page that would show it again


@bp.route("/account/totp/confirm", methods=["POST"])
def account_totp_confirm():
    return _totp_submit(TotpConfirmForm(),
                        lambda form: accounts.totp_confirm(current_user, form.code.data, form.password.data,
                                                           request.remote_addr),
                        "confirm_form", "两步验证已启用：此后每次登录须输入验证器显示的动态验证码。")


@bp.route("/account/totp/disable", methods=["POST"])
def account_totp_disable():
    return _totp_submit(TotpDisableForm(),
                        lambda form: accounts.totp_disable(current_user, form.password.data, request.remote_addr),
                        "disable_form", "两步验证已停用。")


def _totp_submit(form, call, which: str, message: str):
    """One of the second-factor page's forms (``which``: its argument to ``_totp_page``): run the service
    (``call(form)``), then back to 我的账号 with ``message``; or the page again with the form's errors."""
    return handle_form(form, lambda: call(form),
                       failed=lambda status: signed_out_by_service(form) or _totp_page(**{which: form}, status=status),
                       to=url_for("core.account"), message=message)
