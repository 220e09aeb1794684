"""Accounts beyond signing in: the first administrator, accounts created by administrators, role changes,
one-time links (activation and password reset), "忘记密码", and the optional TOTP second factor.

For other modules (expert accounts, firm accounts) the entry points are:

- ``create_account_with_activation(...) -> (user, token)``: an account without a password and its activation
  link; the caller checks its own permission first.
- ``issue_link(user, purpose, actor) -> token``: a one-time link (activation or reset) for an existing account.
- ``link_url(token, purpose)``: the address to show (once) or send; ``email_link(user, token, purpose)``
  sends it, after the caller's transaction has committed.

Only the sha256 of a link's token is stored; the token itself is shown once to whoever issued it and e-mailed
to the person when SMTP is configured. Using a link sets the password under the policy (core/passwords.py),
ends every session and revokes every API token of the account.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Optional

import sqlalchemy as sa
from flask import current_app, has_request_context, url_for

from evalhub.core import audit, concurrency, notifications, passwords, permissions
from evalhub.core.enums import LabeledEnum, Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.inputs import check_name
from evalhub.core.models import AccountLink, ApiToken, Bureau, User
from evalhub.core.personal import decrypt_field, encrypt_field
from evalhub.core.ratelimit import count_hit
from evalhub.core.services import (LoginResult, claim_attempt, counted_from, _bump_generation, _locked_message, _refused, _revoke_all_tokens,
                                    void_links, create_user, name_key, recheck_password, refuses_sign_in, signed_in)
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import format_beijing, utcnow
from evalhub.extensions import db

ADMIN_ROLES = (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN)
BUREAU_ROLES = (Role.BUREAU_ADMIN, Role.BUREAU_STAFF)


class LinkPurpose(LabeledEnum):
    ACTIVATION = ("activation", "激活账户")
    RESET = ("reset", "重置密码")


def _clean(value: str | None, limit: int) -> str:
    return (value or "").strip()[:limit]


# === creating accounts ==============================================================================

def creatable_roles(actor: User, bureau: Bureau | None) -> list[Role]:
    """The roles ``actor`` may give a new account of ``bureau`` (None: an account of no bureau)."""
    if bureau is None:
        return [Role.SYSTEM_ADMIN] if permissions.can(actor, "user.create_system_admin") else []
    roles = []
    if permissions.can(actor, "user.create_admin", bureau):
        roles.append(Role.BUREAU_ADMIN)
    if permissions.can(actor, "user.create_staff", bureau):
        roles.append(Role.BUREAU_STAFF)
    return roles


def _contact(email: str | None, phone: str | None) -> tuple[str | None, str | None, dict[str, str]]:
    errors: dict[str, str] = {}
    email = _clean(email, 200) or None
    phone = _clean(phone, 50) or None
    if email is not None and (len(email) > 120 or email.count("@") != 1 or "." not in email.split("@")[1]
                              or any(c.isspace() for c in email)):
        errors["email"] = "电子邮箱格式不正确"
    if phone is not None and (len(phone) > 30 or not all(c.isdigit() or c in "+-() " for c in phone)):
        errors["phone"] = "电话只能包含数字、空格和 + - ( )"
    return email, phone, errors


def username_problem(username: str) -> str | None:
    """What is wrong with a new login name, or None: every path that opens an account asks this (a bureau's
    form, a firm's self-registration, the CLI). Unique whatever the case: "BZ.ADMIN" is "bz.admin"."""
    if not username:
        return "请填写用户名"
    if len(username) > 64 or not all(c.isascii() and (c.isalnum() or c in "._-@") for c in username):
        return "用户名只能使用英文字母、数字和 . _ - @，不超过 64 位"
    if db.session.execute(sa.select(User.id).where(sa.func.lower(User.username) == username.lower())).first():
        return "该用户名已被使用"
    return None


def _check_new_account(username: str, display_name: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    problem = username_problem(username)
    if problem:
        errors["username"] = problem
    if not display_name:
        errors["display_name"] = "请填写姓名"
    elif len(display_name) > 64:
        errors["display_name"] = "姓名不能超过 64 个字"
    else:
        check_name(errors, "display_name", display_name, "姓名")  # no direction overrides or zero-width characters
    return errors


def _raise_if(errors: dict[str, str]) -> None:
    if errors:
        raise ValidationFailed("；".join(errors.values()) + "。", errors)


def create_first_admin(*, username: str, password: str, display_name: str | None = None,
                       email: str | None = None) -> User:
    """`flask evalhub users create-admin`: a system administrator with a password that satisfies the policy.
    Refused when the username exists. Audited (actor: the command line)."""
    username = _clean(username, 100)
    display_name = _clean(display_name, 100) or "系统管理员"
    email, _phone, errors = _contact(email, None)
    errors.update(_check_new_account(username, display_name))
    if "username" not in errors:
        try:
            passwords.check(password, username=username)
        except ValidationFailed as exc:
            errors.update(exc.fields)
    _raise_if(errors)
    others = db.session.execute(sa.select(sa.func.count(User.id)).where(User.role == Role.SYSTEM_ADMIN)).scalar_one()
    return create_user(username=username, password=password, display_name=display_name, role=Role.SYSTEM_ADMIN,
                       actor=None, email=email,
                       summary=f"命令行创建系统管理员 {username}" + (f"（已有系统管理员 {others} 名）" if others else "（首个）"))


def create_account_with_activation(*, username: str, display_name: str, role: Role, actor: User | None,
                                   bureau_id: int | None = None, firm_id: int | None = None,
                                   expert_id: int | None = None, email: str | None = None,
                                   phone: str | None = None, summary: str | None = None) -> tuple[User, str]:
    """An account without a password and its activation link: (user, raw token). The caller has checked that
    ``actor`` may create it. Show ``link_url(token, LinkPurpose.ACTIVATION)`` once; after commit,
    ``email_link(user, token, LinkPurpose.ACTIVATION)`` sends it when the account has an e-mail address."""
    username = _clean(username, 100)
    display_name = _clean(display_name, 100)
    email, phone, errors = _contact(email, phone)
    errors.update(_check_new_account(username, display_name))
    _raise_if(errors)
    user = create_user(username=username, password=None, display_name=display_name, role=role, actor=actor,
                       bureau_id=bureau_id, firm_id=firm_id, expert_id=expert_id, email=email, phone=phone,
                       summary=summary)
    return user, issue_link(user, LinkPurpose.ACTIVATION, actor)


def create_bureau_account(actor: User, bureau: Bureau | None, *, username: str, display_name: str, role: Role | str,
                          email: str | None = None, phone: str | None = None) -> tuple[User, str]:
    """An administrator creates an account of ``bureau`` (or a system administrator, ``bureau`` None) without
    a password: (user, activation token). Who may create whom: ``creatable_roles``."""
    if isinstance(role, str):
        try:
            role = Role(role)
        except ValueError:
            raise ValidationFailed("请选择角色。", {"role": "角色无效"})
    allowed = creatable_roles(actor, bureau)
    if not allowed:
        raise PermissionDenied()
    if role not in allowed:
        if role in BUREAU_ROLES + (Role.SYSTEM_ADMIN,):
            raise PermissionDenied(f"您不能为{bureau.name if bureau else '系统'}创建“{role.label}”账户。")
        raise ValidationFailed("请选择角色。", {"role": "角色无效"})
    where = bureau.name if bureau else "系统"
    return create_account_with_activation(
        username=username, display_name=display_name, role=role, actor=actor,
        bureau_id=bureau.id if bureau else None, email=email, phone=phone,
        summary=f"{actor.username} 创建{where}的{role.label}账户 {_clean(username, 64)}（待激活）")


def change_role(target: User, new_role: Role | str, actor: User, reason: str) -> None:
    """Staff ↔ administrator of the same bureau, with a reason; audited. The account's sessions end (its
    rights changed)."""
    permissions.require(actor, "user.change_role", target)
    if isinstance(new_role, str):
        try:
            new_role = Role(new_role)
        except ValueError:
            raise ValidationFailed("请选择新的角色。", {"role": "角色无效"})
    concurrency.hold(target)  # a double click: the second reads the role the first gave
    errors: dict[str, str] = {}
    if new_role not in BUREAU_ROLES:
        errors["role"] = "只能在财政局管理员与工作人员之间调整"
    elif new_role == target.role:
        errors["role"] = f"该账户已经是{new_role.label}"
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "请填写调整原因"
    elif len(reason) > 500:
        errors["reason"] = "原因不能超过 500 个字"
    _raise_if(errors)
    old = target.role
    target.role = new_role
    _bump_generation(target)
    audit.record("user.role_changed", target, actor=actor, bureau_id=target.bureau_id,
                 summary=f"{target.username} 的角色由{old.label}调整为{new_role.label}：{reason}",
                 payload={"old": old, "new": new_role, "reason": reason})


# === one-time links =================================================================================

def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_lifetime(purpose: LinkPurpose) -> timedelta:
    config = current_app.config
    if purpose == LinkPurpose.ACTIVATION:
        return timedelta(days=max(1, int(config.get("ACTIVATION_LINK_DAYS", 7))))
    return timedelta(hours=max(1, int(config.get("RESET_LINK_HOURS", 24))))


def lifetime_text(purpose: LinkPurpose) -> str:
    span = link_lifetime(purpose)
    if span.total_seconds() % 86400 == 0:
        return f"{span.days} 天"
    return f"{int(span.total_seconds() // 3600)} 小时"


# Why an enabled account may still get no new link: registered by the module that owns the account's organisation
# (registry: an expert removed from the pool, a firm rejected, removed or blacklisted), so every path — a bureau's
# page, the admin's reset, "忘记密码", the CLI — asks the same.
_LINK_REFUSALS: list[Callable[[User], Optional[str]]] = []


def link_refusal(fn: Callable[[User], Optional[str]]) -> Callable[[User], Optional[str]]:
    _LINK_REFUSALS.append(fn)
    return fn


def _link_refused(user: User) -> Optional[str]:
    return next((problem for problem in (fn(user) for fn in _LINK_REFUSALS) if problem), None)


def issue_link(user: User, purpose: LinkPurpose | str, actor: User | None) -> str:
    """A new one-time link for ``user`` (replacing any unused one of the same purpose): the raw token, to be
    shown once and/or e-mailed — only its sha256 is stored. No permission check: callers check theirs
    (``admin_reset_link`` checks "user.administer"; the expert and firm pages check their own)."""
    purpose = LinkPurpose(purpose)
    if not user.is_enabled:
        raise Conflict("该账户已停用，请先启用。")
    refused = _link_refused(user)
    if refused:
        raise Conflict(refused)
    now = utcnow()
    void_links(user, purpose.value)
    token = secrets.token_urlsafe(32)
    link = AccountLink(user_id=user.id, purpose=purpose.value, token_hash=_digest(token), created_at=now,
                       expires_at=now + link_lifetime(purpose), created_by_id=actor.id if actor else None)
    db.session.add(link)
    db.session.flush()
    by = f"{actor.username} " if actor is not None else "本人申请"
    audit.record("user.link_issued", user, actor=actor, bureau_id=user.bureau_id,
                 summary=f"{by}为 {user.username} 签发{purpose.label}链接（有效期至 {format_beijing(link.expires_at)}）",
                 payload={"purpose": purpose.value, "link_id": link.id, "expires_at": link.expires_at})
    return token


def find_link(token: str) -> Optional[AccountLink]:
    return db.session.execute(sa.select(AccountLink).where(AccountLink.token_hash == _digest(token or ""))
                              ).scalar_one_or_none()


def link_url(token: str, purpose: LinkPurpose | str) -> str:
    """The link's full address, from EVALHUB_PUBLIC_URL whenever it is set — never from the request's Host
    header, which whoever asks "忘记密码" writes (password-reset poisoning). Without it (development only:
    production refuses to start without it, evalhub/config.py) from the request, else localhost."""
    purpose = LinkPurpose(purpose)
    path = f"/account/{'activate' if purpose == LinkPurpose.ACTIVATION else 'reset'}/{token}"
    base = current_app.config.get("PUBLIC_URL")
    if not base and has_request_context():
        endpoint = "core.account_activate" if purpose == LinkPurpose.ACTIVATION else "core.account_reset"
        return url_for(endpoint, token=token, _external=True)
    return f"{(base or 'http://localhost:8000').rstrip('/')}{path}"


def email_link(user: User, token: str, purpose: LinkPurpose | str) -> bool:
    """E-mail the link to the account's address when SMTP is configured; call after commit. True if sent."""
    purpose = LinkPurpose(purpose)
    if not user.email:
        return False
    url = link_url(token, purpose)
    if purpose == LinkPurpose.ACTIVATION:
        subject = "【第三方绩效评价管理平台】请激活您的账户"
        body = (f"{user.display_name}，您好：\n\n已为您开通第三方绩效评价管理平台账户，用户名：{user.username}。\n"
                f"请在 {lifetime_text(purpose)} 内打开以下链接设置密码以激活账户（链接只能使用一次）：\n\n{url}\n\n"
                "如果您不知道此事，请忽略本邮件。")
    else:
        subject = "【第三方绩效评价管理平台】重置密码"
        body = (f"{user.display_name}，您好：\n\n您的账户 {user.username} 申请了重置密码。请在 {lifetime_text(purpose)} 内"
                f"打开以下链接设置新密码（链接只能使用一次）：\n\n{url}\n\n"
                "如果不是您本人申请，请忽略本邮件，您的密码不会改变。")
    return notifications.send_mail(user.email, subject, body)


@dataclass
class LinkCheck:
    link: Optional[AccountLink]
    problem: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_link(token: str, purpose: LinkPurpose | str) -> LinkCheck:
    """Whether ``token`` is a live link of ``purpose``; otherwise why not, in Chinese."""
    purpose = LinkPurpose(purpose)
    token = (token or "").strip()
    link = None
    if 20 <= len(token) <= 100 and token.isascii():
        link = db.session.execute(sa.select(AccountLink).where(AccountLink.token_hash == _digest(token))
                                  .execution_options(populate_existing=True)).scalar_one_or_none()
    if link is None or link.purpose != purpose.value:
        return LinkCheck(None, "链接无效：请确认完整复制了邮件或管理员提供的链接。")
    if link.used_at is not None:
        return LinkCheck(link, f"该链接已于 {format_beijing(link.used_at)} 使用过，不能再次使用。"
                               "如需重新设置密码，请使用登录页的“忘记密码”或联系管理员。")
    # The account's own reasons first: disabling it or its organisation leaving also voids its links, and
    # "a newer link was issued" would then be untrue.
    if not link.user.is_enabled:
        return LinkCheck(link, "该账户已停用，请联系管理员。")
    refused = _link_refused(link.user)  # the rule that stops a new link stops one issued before it too
    if refused:
        return LinkCheck(link, refused)
    # A link an administrator issued lives on that administrator's trust: once their account is disabled (they left
    # office) it stops working — deactivation voids it too (``void_links_issued_by``, so a voided link names this
    # reason rather than "a newer link"); after the link's own states, which are the truer answer when they hold.
    issuer_gone = link.created_by is not None and link.created_by_id != link.user_id and not link.created_by.is_enabled
    if link.revoked_at is not None and not issuer_gone:
        return LinkCheck(link, "该链接已失效：此后已为该账户签发了新的链接，或密码已另行修改，请使用最新的链接。")
    if link.expires_at <= utcnow():
        return LinkCheck(link, f"该链接已于 {format_beijing(link.expires_at)} 过期。请联系管理员重新签发，"
                               "或使用登录页的“忘记密码”。")
    if issuer_gone:
        return LinkCheck(link, f"签发该链接的管理员账户已停用，链接随之失效。请联系{_reissuer(link.user)}重新签发，"
                               "或使用登录页的“忘记密码”。")
    return LinkCheck(link)


def _reissuer(user: User) -> str:
    """Who gives an account a new link, in words its holder knows: a bureau's people ask their bureau's other
    administrators; experts, firms and budget units have none there, and ask the bureau that gave them the link."""
    if user.role in (Role.BUREAU_ADMIN, Role.BUREAU_STAFF):
        return "本单位的其他管理员"
    if user.role == Role.SYSTEM_ADMIN:
        return "其他系统管理员"
    return "发放链接的财政局"


def use_link(token: str, purpose: LinkPurpose | str, new_password: str, confirm: str | None = None) -> User:
    """Set the password through a one-time link: the policy applies (with the account's history); the link is
    spent (once, even when two requests arrive together); every session ends and every API token is revoked;
    a lock from failed sign-ins is lifted. Activation also marks the account active."""
    purpose = LinkPurpose(purpose)
    check = check_link(token, purpose)
    if not check.ok:
        raise Conflict(check.problem)
    link = check.link
    user = link.user
    if confirm is not None and confirm != new_password:
        raise ValidationFailed("两次输入的密码不一致。", {"confirm": "两次输入的密码不一致"})
    passwords.check(new_password, user=user, field="new_password")
    spent = db.session.execute(sa.update(AccountLink).where(
        AccountLink.id == link.id, AccountLink.used_at.is_(None), AccountLink.revoked_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if spent != 1:
        raise Conflict("该链接已使用过，不能再次使用。")
    first = user.awaiting_activation
    passwords.record(user, passwords.hash_password(new_password))
    user.failed_logins = 0
    user.locked_until = None
    _bump_generation(user)
    revoked = _revoke_all_tokens(user)
    if purpose == LinkPurpose.ACTIVATION or first:
        audit.record("user.activated", user, actor=user, bureau_id=user.bureau_id,
                     summary=f"{user.username} 通过激活链接设置密码，账户已激活", payload={"link_id": link.id})
    else:
        audit.record("user.password_reset", user, actor=user, bureau_id=user.bureau_id,
                     summary=f"{user.username} 通过重置链接设置新密码；所有登录已退出，撤销 API 令牌 {revoked} 个",
                     payload={"link_id": link.id, "tokens_revoked": revoked})
    return user


def admin_reset_link(target: User, actor: User) -> str:
    """An administrator issues a password-reset link for an account they look after (shown to them once)."""
    permissions.require(actor, "user.administer", target)
    purpose = LinkPurpose.ACTIVATION if target.awaiting_activation else LinkPurpose.RESET
    return issue_link(target, purpose, actor)


# --- "忘记密码" ----------------------------------------------------------------------------------------

def request_password_reset(identifier: str, address: str | None) -> Optional[tuple[User, str, LinkPurpose]]:
    """The login page's "忘记密码": whoever asks gets the same answer; when ``identifier`` (a username, or an
    e-mail address that belongs to one account) names an enabled account with an e-mail address, a reset link
    is issued — at most ``RESET_LINKS_PER_ACCOUNT_HOUR`` an hour per account — and (user, token, purpose) returned for
    the caller to e-mail after commit. Requests per address are limited (429, which says nothing about the
    account)."""
    count_hit("password_reset", address, max(1, int(current_app.config.get("RESET_REQUESTS_PER_HOUR", 5))))
    identifier = _clean(identifier, 200)
    if not identifier:
        raise ValidationFailed("请填写用户名或电子邮箱。", {"identifier": "必填"})
    user = db.session.execute(sa.select(User).where(sa.func.lower(User.username) == name_key(identifier))
                              ).scalar_one_or_none()
    if user is None and "@" in identifier:
        found = db.session.execute(sa.select(User).where(sa.func.lower(User.email) == identifier.lower())
                                   .limit(2)).scalars().all()
        user = found[0] if len(found) == 1 else None
    if user is None or not user.is_enabled or not user.email or _link_refused(user):  # the same answer, whatever
        return None
    per_account = max(1, int(current_app.config.get("RESET_LINKS_PER_ACCOUNT_HOUR", 3)))
    concurrency.serialise(f"reset-links:{user.id}")
    recent = db.session.execute(sa.select(sa.func.count(AccountLink.id)).where(
        AccountLink.user_id == user.id, AccountLink.created_by_id.is_(None),
        AccountLink.created_at > utcnow() - timedelta(hours=1))).scalar_one()
    if recent >= per_account:
        return None
    purpose = LinkPurpose.ACTIVATION if user.awaiting_activation else LinkPurpose.RESET
    return user, issue_link(user, purpose, None), purpose


def forgot_answer() -> str:
    hours = lifetime_text(LinkPurpose.RESET)
    return (f"如果该账户存在并登记了电子邮箱，重置密码的链接已发送到该邮箱，{hours}内有效。"
            "没有登记电子邮箱的账户，请联系本单位的管理员重置密码。")


# === the TOTP second factor =========================================================================

TOTP_STEP = 30
PENDING_SECONDS = 300  # how long "password right, code pending" lasts in the browser's session


def totp_available(user: User) -> bool:
    """Administrators may protect their account with a second factor (and must when their bureau says so)."""
    return user.role in ADMIN_ROLES or user.totp_enabled


def totp_required(user: User) -> bool:
    """The bureau setting "管理员必须使用两步验证" applies to ``user``: a bureau administrator by their bureau's
    (inherited) value; a system administrator by the value of any top-level bureau (the region's)."""
    key = "security.require_totp_admins"
    if user.role == Role.BUREAU_ADMIN:
        return user.bureau is not None and get_setting(user.bureau, key) == "on"
    if user.role == Role.SYSTEM_ADMIN:
        roots = db.session.execute(sa.select(Bureau).where(Bureau.parent_id.is_(None))).scalars()
        return any(get_setting(root, key) == "on" for root in roots)
    return False


def _totp(secret: str):
    import pyotp

    return pyotp.TOTP(secret, interval=TOTP_STEP)


def totp_begin(user: User, password: str, address: str | None = None) -> str:
    """Start enrolment: a new secret, stored encrypted, not yet in force until ``totp_confirm``. The password
    again first (OWASP ASVS 3.7.1): whoever holds a signed-in browser for a moment must not bind their own phone
    and so lock the owner out. A wrong password counts toward the sign-in lock (``recheck_password``)."""
    import pyotp

    if not totp_available(user):
        raise PermissionDenied("两步验证仅供管理员账户使用。")
    if user.totp_enabled:
        raise Conflict("已启用两步验证。如需更换验证器，请先停用再重新绑定。")
    recheck_password(user, password, doing="绑定两步验证", address=address)
    secret = pyotp.random_base32()
    user.totp_secret_encrypted = encrypt_field(secret)
    user.totp_last_step = None
    user.totp_begun_at = utcnow()
    return secret


def enrolment_minutes() -> int:
    """How long an enrolment begun may still be confirmed (config TOTP_ENROLMENT_MINUTES, 15)."""
    return max(1, int(current_app.config.get("TOTP_ENROLMENT_MINUTES", 15)))


def _enrolment_expired(user: User) -> bool:
    """The pending secret is older than the enrolment's lifetime — or of unknown age (begun before its time was
    recorded): it was on a screen at the begin, and a photograph of it must not bind a phone weeks later."""
    begun = user.totp_begun_at
    return begun is None or utcnow() - begun > timedelta(minutes=enrolment_minutes())


def totp_pending(user: User) -> bool:
    """An enrolment begun, not yet confirmed and still within its lifetime (``enrolment_minutes``). Its secret is
    shown only in the answer to the password-checked ``totp_begin`` (core/auth_views.py), never on a later page: a
    borrowed session must not copy it."""
    return not user.totp_enabled and bool(user.totp_secret_encrypted) and not _enrolment_expired(user)


def totp_pending_secret(user: User) -> Optional[str]:
    if not totp_pending(user):
        return None
    return decrypt_field(user.totp_secret_encrypted)


def totp_uri(user: User, secret: str) -> str:
    return _totp(secret).provisioning_uri(name=user.username, issuer_name=current_app.config.get("TOTP_ISSUER", "evalhub"))


def totp_qr_data_uri(uri: str) -> str:
    """The enrolment QR code as an SVG data: URI (segno, pure Python; the CSP allows data: images)."""
    import segno

    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _normalise_code(code: str | None) -> str:
    return "".join(c for c in (code or "") if not c.isspace())


def _accept_code(user: User, code: str) -> bool:
    """The code is right for the previous, current or next time step and later than any code accepted
    before (no replay). Records the step."""
    code = _normalise_code(code)
    if not (len(code) == 6 and code.isascii() and code.isdigit()) or not user.totp_secret_encrypted:
        return False
    totp = _totp(decrypt_field(user.totp_secret_encrypted))
    now_step = int(time.time()) // TOTP_STEP
    for step in (now_step, now_step - 1, now_step + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP), code):
            taken = db.session.execute(sa.update(User).where(
                User.id == user.id, sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step))
                .values(totp_last_step=step).execution_options(synchronize_session=False)).rowcount
            return taken == 1
    return False


def totp_confirm(user: User, code: str, password: str, address: str | None = None) -> None:
    """Finish enrolment with the first code the authenticator shows — and the password again, as at the begin:
    whoever holds the browser between the two must not bind their phone to an enrolment the owner began."""
    if user.totp_enabled:
        raise Conflict("已启用两步验证。")
    if not user.totp_secret_encrypted:
        raise Conflict("请先开始绑定验证器。")
    if _enrolment_expired(user):
        # Cleared and committed here: the refusal rolls the request back, and the stale secret must stay gone.
        _clear_totp(user)
        db.session.commit()
        message = (f"绑定已超时：开始绑定后须在 {enrolment_minutes()} 分钟内输入验证码确认，原密钥已作废。"
                   "请重新开始绑定（输入当前密码后扫描新的二维码），并删除验证器中原先添加的条目。")
        raise ValidationFailed(message, {"code": "绑定已超时，请重新开始绑定"})
    recheck_password(user, password or "", doing="确认绑定两步验证", address=address)
    if not _accept_code(user, code):
        raise ValidationFailed("验证码不正确：请输入验证器当前显示的 6 位数字（并确认手机时间准确）。", {"code": "验证码不正确"})
    user.totp_enabled_at = utcnow()
    user.totp_begun_at = None
    audit.record("user.totp_enabled", user, actor=user, bureau_id=user.bureau_id,
                 summary=f"{user.username} 启用两步验证（TOTP）")


def totp_disable(user: User, password: str, address: str | None = None) -> None:
    """The user turns their second factor off (their password again, counted toward the sign-in lock); refused
    where the bureau requires it."""
    if not user.totp_enabled:
        raise Conflict("尚未启用两步验证。")
    recheck_password(user, password, doing="停用两步验证", address=address)
    if totp_required(user):
        raise Conflict("本局要求管理员使用两步验证，不能停用。更换手机时请联系上级管理员重置。")
    _clear_totp(user)
    audit.record("user.totp_disabled", user, actor=user, bureau_id=user.bureau_id,
                 summary=f"{user.username} 停用两步验证")


def totp_reset(target: User, actor: User | None, reason: str) -> None:
    """An administrator clears someone's second factor (a lost phone): they enrol again at their next sign-in
    where it is required. Their sessions end. ``actor`` None: the server's operator on the command line."""
    if actor is not None:
        permissions.require(actor, "user.administer", target)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("请填写重置原因。", {"reason": "必填"})
    if not target.totp_secret_encrypted:
        raise Conflict("该账户没有绑定验证器。")
    _clear_totp(target)
    _bump_generation(target)
    who = actor.username if actor is not None else "命令行"
    audit.record("user.totp_reset", target, actor=actor, bureau_id=target.bureau_id,
                 summary=f"{who} 重置 {target.username} 的两步验证：{reason}", payload={"reason": reason})


def _clear_totp(user: User) -> None:
    user.totp_secret_encrypted = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    user.totp_begun_at = None


def verify_totp_login(user: User, code: str, address: str | None = None, via: str = "web") -> LoginResult:
    """The second step of signing in (``authenticate`` answered ``pending``). Failures count toward the same
    lock as wrong passwords, claimed before the code is checked, exactly as ``authenticate`` does — and against
    the address's limit over all accounts, as wrong passwords do; both outcomes go in the audit log alike."""
    return counted_from(address, lambda: _verify_totp_login(user, code, address, via))


def _verify_totp_login(user: User, code: str, address: str | None = None, via: str = "web") -> LoginResult:
    user_id = user.id
    now = utcnow()
    attempt = claim_attempt(user_id, now)
    if attempt is None:
        return LoginResult(None, _locked_message(user_id))
    user = db.session.get(User, user_id, populate_existing=True)
    if not user.is_enabled or not user.totp_enabled:
        db.session.commit()
        return LoginResult(None, "请重新登录。")
    if not _accept_code(user, code):
        return _refused(user_id, now, attempt, "验证码不正确或已使用，请输入验证器当前显示的 6 位数字。",
                        address=address, via=via, what="两步验证码错误")
    user = db.session.get(User, user_id, populate_existing=True)
    signed_in(user, now, address=address, via=via)
    db.session.commit()
    return LoginResult(user)


# === what a signed-in user must do first ============================================================

PASSWORD_EXPIRED = "password_expired"
TOTP_ENROLMENT = "totp_enrolment"
# The API's answer (403) while the gate stands: at a token's issue and at each use of a token issued before
# the password expired or the bureau began to require a second factor.
GATE_API_MESSAGE = "请先登录网页：密码已过期须修改，或本局要求先绑定两步验证。"


def gate(user: User) -> Optional[str]:
    """Before anything else after signing in: change an expired password; enrol a second factor that the
    bureau requires of administrators. None when there is nothing to do."""
    if passwords.expired(user):
        return PASSWORD_EXPIRED
    if user.role in ADMIN_ROLES and not user.totp_enabled and totp_required(user):
        return TOTP_ENROLMENT
    return None


_GATE_REASONS = {PASSWORD_EXPIRED: "密码已过期，须先在网页修改", TOTP_ENROLMENT: "本局要求管理员先在网页绑定两步验证"}


@refuses_sign_in
def _api_gate(user: User, via: str) -> Optional[str]:
    """The API issues no token while the gate stands (``POST /tokens`` answers 403): no sign-in is recorded."""
    if via != "api":
        return None
    stands = gate(user)
    return _GATE_REASONS.get(stands, stands) if stands else None


def token_gate(user: User) -> Optional[str]:
    """``gate`` at each use of an API token, from what the token's statement already read: the password's age,
    and a bureau administrator's bureau setting (held with the token). The system administrator's second factor
    follows the top-level bureaus' settings, read when a token is issued, not at every request."""
    if passwords.expired(user):
        return PASSWORD_EXPIRED
    if user.role == Role.BUREAU_ADMIN and not user.totp_enabled and totp_required(user):
        return TOTP_ENROLMENT
    return None


def live_tokens(user: User) -> int:
    return db.session.execute(sa.select(sa.func.count(ApiToken.id)).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow())).scalar_one()


def status_label(user: User) -> str:
    if not user.is_enabled:
        return "已停用"
    if user.awaiting_activation:
        return "待激活"
    if user.locked_until is not None and user.locked_until > utcnow():
        return "已锁定"
    return "启用"


def recent_links(user: User, limit: int = 5) -> list[AccountLink]:
    return list(db.session.execute(sa.select(AccountLink).where(AccountLink.user_id == user.id)
                                   .order_by(AccountLink.id.desc()).limit(limit)).scalars())


def pending_expiry(user: User) -> Optional[datetime]:
    """When the newest unused activation link of an account awaiting activation expires."""
    return db.session.execute(sa.select(AccountLink.expires_at).where(
        AccountLink.user_id == user.id, AccountLink.purpose == LinkPurpose.ACTIVATION.value,
        AccountLink.used_at.is_(None), AccountLink.revoked_at.is_(None)).order_by(AccountLink.id.desc()).limit(1)
    ).scalar_one_or_none()
