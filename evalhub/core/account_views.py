"""我的账号 (the signed-in user's own page: details, API tokens with revoke, sign out everywhere, password
change) and a bureau administrator's accounts page (停用 / 启用, 退出所有登录; creating accounts with an
activation link, changing roles with a reason, reset links, resetting the second factor), and the
administrators' directory of every account they may see (``/users``).

Its routes sit on the core blueprint (endpoints ``core.account`` …); the app factory imports this module
before registering that blueprint."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload
from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from evalhub.core import accounts, passwords, permissions, services
from evalhub.core.enums import Role
from evalhub.core.errors import ValidationFailed
from evalhub.core.forms import AccountCreateForm, ActionForm, PasswordChangeForm, RoleChangeForm
from evalhub.core.listing import Export, Listing, choice_filter, enum_filter, int_filter, text_filter
from evalhub.core.models import ApiToken, Bureau, User
from evalhub.core.timeutil import to_beijing
from evalhub.core.views import bp
from evalhub.core.web import button, load, require, signed_out_by_service, submit_form
from evalhub.extensions import db



def _account_page(password_form: PasswordChangeForm | None = None, status: int = 200):
    password_form = password_form or PasswordChangeForm(formdata=None)
    password_form.new_password.description = (passwords.policy().describe()
                                              + "修改后，其他浏览器上的登录将退出，所有 API 令牌将被撤销。")
    return render_template("core/account.html", user=current_user, tokens=services.active_tokens(current_user),
                           form=ActionForm(), password_form=password_form,
                           password_expired=passwords.expired(current_user),
                           totp_available=accounts.totp_available(current_user),
                           totp_required=accounts.totp_required(current_user)), status


@bp.route("/account")
def account():
    return _account_page()


@bp.route("/account/password", methods=["POST"])
def account_password():
    form = PasswordChangeForm()
    done, _, status = submit_form(
        form, lambda: services.change_password(current_user, form.current_password.data, form.new_password.data,
                                               address=request.remote_addr))
    if not done:
        return signed_out_by_service(form) or _account_page(form, status)
    login_user(current_user._get_current_object())  # this browser stays signed in, under the new generation; all others are out
    flash("密码已修改。其他浏览器上的登录已退出，所有 API 令牌已撤销。", "success")
    return redirect(url_for("core.account"))


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
def account_token_revoke(token_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    row = db.session.get(ApiToken, token_id)
    if row is None or row.user_id != current_user.id:
        abort(404)
    services.revoke_token(row, current_user)
    db.session.commit()
    flash(f"API 令牌 #{token_id} 已撤销。", "success")
    return redirect(url_for("core.account"))


@bp.route("/account/sign-out-everywhere", methods=["POST"])
def account_sign_out_everywhere():
    if not ActionForm().validate_on_submit():
        abort(400)
    revoked = services.sign_out_everywhere(current_user, current_user)
    db.session.commit()
    logout_user()
    session.clear()
    flash(f"已退出所有登录（包括本浏览器），撤销 API 令牌 {revoked} 个。请重新登录。", "info")
    return redirect(url_for("core.login"))


# --- an administrator's accounts page --------------------------------------------------------------

def _users_page(bureau: Bureau, status: int = 200, create_form: AccountCreateForm | None = None):
    stmt = permissions.scope(current_user, sa.select(User), User).where(User.bureau_id == bureau.id)
    users = db.session.execute(stmt.order_by(User.username)).scalars().all()
    roles = accounts.creatable_roles(current_user, bureau)
    if create_form is None:
        create_form = AccountCreateForm(formdata=None)
    create_form.role.choices = [(r.value, r.label) for r in roles]
    role_form = RoleChangeForm(formdata=None)
    return render_template("core/bureau_users.html", bureau=bureau, users=users, form=ActionForm(),
                           create_form=create_form, can_create=bool(roles), role_form=role_form,
                           status_label=accounts.status_label, bureau_roles=accounts.BUREAU_ROLES), status


@bp.route("/bureaus/<int:bureau_id>/users", methods=["GET", "POST"])
def bureau_users(bureau_id: int):
    bureau = load(Bureau, bureau_id, "bureau.users")
    form = AccountCreateForm()  # a GET shows the page with the form empty (submit_form answers 200)
    form.role.choices = [(r.value, r.label) for r in accounts.creatable_roles(current_user, bureau)]
    return _create_account(form, lambda: accounts.create_bureau_account(
        current_user, bureau, username=form.username.data, display_name=form.display_name.data,
        role=form.role.data or "", email=form.email.data, phone=form.phone.data),
        failed=lambda status: _users_page(bureau, status, form))


def _create_account(form: AccountCreateForm, call, *, failed):
    """Create an account from ``form`` and show its activation link once; or ``failed(status)``."""
    done, result, status = submit_form(form, call)
    if not done:
        return failed(status)
    user, token = result
    return _link_issued(user, token, accounts.LinkPurpose.ACTIVATION, created=True)


def _link_issued(user: User, token: str, purpose, *, created: bool = False):
    """The page that shows a one-time link, once: it is not stored anywhere but in the e-mail, if sent."""
    emailed = accounts.email_link(user, token, purpose)
    link = accounts.find_link(token)
    return render_template("core/link_issued.html", user=user, url=accounts.link_url(token, purpose),
                           purpose=accounts.LinkPurpose(purpose), expires_at=link.expires_at, emailed=emailed,
                           created=created, back=_back_url(user))


def _user(user_id: int, *, visible: bool = False) -> User:
    """The account ``user_id``: 404 when missing (or, with ``visible``, hidden from the signed-in user)."""
    user = db.session.get(User, user_id)
    if user is None or (visible and not permissions.visible(current_user, user)):
        abort(404)
    return user


def _managed_user(user_id: int) -> User:
    """An account the signed-in administrator manages (disable, enable, sign out everywhere); their own only
    through the bureau's accounts page right (everyone signs themselves out at /account/sign-out-everywhere)."""
    user = _user(user_id)
    if user.id != current_user.id:
        require("user.account", user)
    elif not permissions.can(current_user, "user.manage", user.bureau):
        abort(403)
    return user


def _back_url(user: User, otherwise: str = "core.user_directory") -> str:
    """The accounts page of the account's bureau; for an account without a bureau, ``otherwise``."""
    if user.bureau_id is not None:
        return url_for("core.bureau_users", bureau_id=user.bureau_id)
    return url_for(otherwise)


def _back_to(user: User, otherwise: str = "core.user_directory"):
    return redirect(_back_url(user, otherwise))


def _back(user: User):
    return _back_to(user, "core.dashboard")


def _refused(user: User, exc: ValidationFailed, otherwise):
    """A change to ``user`` the service refused: nothing written; say why on the accounts page of their
    bureau (``otherwise()`` for an account without one)."""
    db.session.rollback()
    flash(exc.message, "danger")
    if user.bureau is not None:
        return _users_page(user.bureau, exc.status)
    return otherwise()


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
def user_disable(user_id: int):
    user = _managed_user(user_id)
    form = ActionForm()
    try:
        return button(lambda: services.set_enabled(user, False, current_user, form.reason.data or ""), form=form,
                      to=_back_url(user, "core.dashboard"),
                      message=f"账户 {user.username} 已停用：其所有登录已退出，API 令牌已撤销。")
    except ValidationFailed as exc:
        return _refused(user, exc, lambda: abort(exc.status))


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
def user_enable(user_id: int):
    user = _managed_user(user_id)
    return button(lambda: services.set_enabled(user, True, current_user), form=ActionForm(),
                  to=_back_url(user, "core.dashboard"), message=f"账户 {user.username} 已启用。")


@bp.route("/users/<int:user_id>/sign-out-everywhere", methods=["POST"])
def user_sign_out_everywhere(user_id: int):
    user = _managed_user(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    revoked = services.sign_out_everywhere(user, current_user)
    db.session.commit()
    if user.id == current_user.id:
        logout_user()
        session.clear()
        return redirect(url_for("core.login"))
    flash(f"已退出账户 {user.username} 的所有登录，撤销 API 令牌 {revoked} 个。", "success")
    return _back(user)


# --- roles, reset links and the second factor of someone else's account -----------------------------

def _target(user_id: int, action: str) -> User:
    user = _user(user_id, visible=True)
    require(action, user)
    return user


@bp.route("/users/<int:user_id>/role", methods=["POST"])
def user_change_role(user_id: int):
    user = _target(user_id, "user.change_role")
    form = RoleChangeForm()
    if not form.validate_on_submit():
        flash("；".join(e for errors in form.errors.values() for e in errors) or "请填写调整原因。", "danger")
        return _users_page(user.bureau, 422) if user.bureau else _back_to(user)
    try:
        accounts.change_role(user, form.role.data or "", current_user, form.reason.data)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(exc.message, "danger")
        return _users_page(user.bureau, exc.status)
    db.session.commit()
    flash(f"已将 {user.username} 的角色调整为{user.role.label}，其登录已退出。", "success")
    return _back_to(user)


@bp.route("/users/<int:user_id>/reset-link", methods=["POST"])
def user_reset_link(user_id: int):
    user = _target(user_id, "user.administer")
    if not ActionForm().validate_on_submit():
        abort(400)
    token = accounts.admin_reset_link(user, current_user)
    purpose = accounts.LinkPurpose.ACTIVATION if user.awaiting_activation else accounts.LinkPurpose.RESET
    db.session.commit()
    return _link_issued(user, token, purpose)


@bp.route("/users/<int:user_id>/totp-reset", methods=["POST"])
def user_totp_reset(user_id: int):
    user = _target(user_id, "user.administer")
    form = ActionForm()
    try:
        return button(lambda: accounts.totp_reset(user, current_user, form.reason.data or ""), form=form,
                      to=_back_url(user), message=f"已重置 {user.username} 的两步验证；其登录已退出。")
    except ValidationFailed as exc:
        return _refused(user, exc, lambda: _back_to(user))


# --- every account the administrator may see ------------------------------------------------------

_STATUS = {
    "enabled": User.is_enabled.is_(True),
    "disabled": User.is_enabled.is_(False),
    "pending": User.password_hash == passwords.UNUSABLE,
    "totp": User.totp_enabled_at.is_not(None),
}
STATUS_LABELS = {"enabled": "启用", "disabled": "已停用", "pending": "待激活", "totp": "已启用两步验证"}


def _directory_rows(users: list[User]):
    for u in users:
        yield {"用户名": u.username, "姓名": u.display_name, "角色": u.role.label, "所属单位": u.organisation_name,
               "电子邮箱": u.email or "", "状态": accounts.status_label(u), "两步验证": "是" if u.totp_enabled else "否",
               "上次登录（北京）": to_beijing(u.last_login_at), "创建时间（北京）": to_beijing(u.created_at)}


DIRECTORY_EXPORT = Export("账户", ["用户名", "姓名", "角色", "所属单位", "电子邮箱", "状态", "两步验证",
                                 "上次登录（北京）", "创建时间（北京）"], _directory_rows)


def _directory_page(create_form: AccountCreateForm | None = None, status: int = 200):
    listing = Listing(permissions.scope(current_user, sa.select(User), User),
                      text_filter("q", User.username, User.display_name, User.email, ignore_case=True),
                      enum_filter("role", Role, User.role),
                      int_filter("bureau", User.bureau_id),
                      choice_filter("status", _STATUS),
                      # each row names its organisation: read with the page, not a lookup per account
                      options=[joinedload(User.bureau), selectinload(User.firm), selectinload(User.expert),
                               selectinload(User.budget_unit)],
                      order_by=[User.username])
    if request.args.get("export") == "xlsx" and status == 200:
        return listing.export(DIRECTORY_EXPORT)
    bureaus = db.session.execute(permissions.scope(current_user, sa.select(Bureau), Bureau)
                                 .order_by(Bureau.path)).scalars().all()
    can_create_system_admin = permissions.can(current_user, "user.create_system_admin")
    if create_form is None:
        create_form = AccountCreateForm(formdata=None)
    create_form.role.choices = [(Role.SYSTEM_ADMIN.value, Role.SYSTEM_ADMIN.label)]
    return render_template("core/users.html", page=listing.page(), filters=listing.filters, bureaus=bureaus,
                           roles=list(Role), statuses=STATUS_LABELS, status_label=accounts.status_label,
                           create_form=create_form, can_create_system_admin=can_create_system_admin), status


@bp.route("/users", methods=["GET", "POST"])
def user_directory():
    if not permissions.can(current_user, "user.directory"):
        abort(403)
    if request.method == "GET":
        return _directory_page()
    if not permissions.can(current_user, "user.create_system_admin"):
        abort(403)
    form = AccountCreateForm()
    form.role.choices = [(Role.SYSTEM_ADMIN.value, Role.SYSTEM_ADMIN.label)]
    return _create_account(form, lambda: accounts.create_bureau_account(
        current_user, None, username=form.username.data, display_name=form.display_name.data,
        role=Role.SYSTEM_ADMIN, email=form.email.data, phone=form.phone.data),
        failed=lambda status: _directory_page(form, status))
