"""Accounts: passwords, login with lock-out, API tokens."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from werkzeug.security import check_password_hash

from evalhub.core import audit, concurrency, passwords, permissions, ratelimit
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AccountLink, ApiToken, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

hash_password = passwords.hash_password  # (the name other modules and the test factories use)


def check_password_strength(password: str, *, user: User | None = None, username: str | None = None,
                            field: str = "password") -> None:
    """The system's password policy (core/passwords.py): length, character classes and, for an existing
    ``user``, the history of their last passwords."""
    passwords.check(password, user=user, username=username, field=field)


@dataclass
class LoginResult:
    """``user``: signed in. ``pending``: the password was right but the account has a second factor — the
    caller asks for the TOTP code (core.accounts.verify_totp_login) before anyone is signed in; ``user`` is
    then None, so a caller that knows nothing of second factors signs nobody in."""

    user: User | None
    error: str | None = None
    pending: User | None = None
    limited: bool = False  # refused for the address's failures, not the account's (429)


GENERIC_LOGIN_ERROR = "用户名或密码错误。"
# A hash of a random password made with the configured method, so that refusing an unknown, locked or
# disabled account costs exactly what checking a real password costs (timing must not tell them apart).
_dummy_hash = passwords.dummy_hash


def _password_matches(stored_hash: str, password: str) -> bool:
    # An account awaiting activation holds an unusable hash: nothing matches it, at the cost of one hash.
    if not stored_hash or stored_hash == passwords.UNUSABLE:
        check_password_hash(_dummy_hash(), password or "")
        return False
    return check_password_hash(stored_hash, password or "")


def _locked_message(user_id: int) -> str:
    locked_until = db.session.execute(sa.select(User.locked_until).where(User.id == user_id)).scalar_one()
    now = utcnow()
    if locked_until is not None and locked_until > now:
        minutes = int((locked_until - now).total_seconds() // 60) + 1
        return f"连续登录失败次数过多，账户已锁定，请 {minutes} 分钟后再试。"
    return "连续登录失败次数过多，账户已锁定，请稍后再试。"


VIA = {"web": "网页", "api": "API"}


def _where(address: str | None, via: str) -> str:
    return f"{VIA.get(via, via)}，来自 {address or '未知地址'}"


def _refused(user_id: int, now: datetime, attempt: int, error: str, *, address: str | None, via: str,
             what: str = "", doing: str | None = None) -> LoginResult:
    """A counted attempt failed (a wrong password or second-factor code): ``user.login_failed`` in the audit log
    and, the last attempt allowed, the account locked for the configured minutes (``user.locked``; the count
    starts again). Committed here: the request answers 4xx, and the event must stay. The events join the chain
    in a transaction of its own after the hash was checked (the chain's lock held only for their append); attempts
    beyond the lock and from an address over its limit are refused before it and write nothing, so a flood of
    guesses adds at most ``LOGIN_MAX_FAILURES`` events per account per lock. ``what`` says what was wrong.

    ``doing``: the password was asked again in a signed-in session (``recheck_password``; what the person was
    doing, e.g. "修改密码"): the event is ``user.reauth_failed``, by the account's session, and a lock it reaches
    also ends every browser session of the account — the one that guessed first of all."""
    max_failures = max(1, current_app.config["LOGIN_MAX_FAILURES"])
    lock_minutes = current_app.config["LOGIN_LOCK_MINUTES"]
    user = db.session.get(User, user_id, populate_existing=True)
    if doing is None:
        audit.record("user.login_failed", user, actor=None, bureau_id=user.bureau_id,
                     summary=f"账户 {user.username} 登录失败：{what or '密码错误'}（第 {attempt} 次，{_where(address, via)}）",
                     payload={"address": address, "via": via, "attempt": attempt, "what": what or "password"})
    else:
        audit.record("user.reauth_failed", user, actor=user, bureau_id=user.bureau_id,
                     summary=f"账户 {user.username} {doing}时重新输入的密码错误（第 {attempt} 次，{_where(address, via)}）",
                     payload={"address": address, "via": via, "attempt": attempt, "doing": doing})
    if attempt >= max_failures:
        db.session.execute(sa.update(User).where(User.id == user_id)
                           .values(failed_logins=0, locked_until=now + timedelta(minutes=lock_minutes))
                           .execution_options(synchronize_session=False))
        if doing is None:
            counted = "（含两步验证码）" if what else ""
            audit.record("user.locked", user, actor=None, bureau_id=user.bureau_id,
                         summary=f"账户 {user.username} 连续 {max_failures} 次登录失败{counted}，锁定 {lock_minutes} 分钟")
            error = f"连续登录失败 {max_failures} 次，账户已锁定 {lock_minutes} 分钟。"
        else:
            # The guesser holds a signed-in browser: the lock alone would stop only new sign-ins and leave them in.
            _bump_generation(user)
            audit.record("user.locked", user, actor=None, bureau_id=user.bureau_id,
                         summary=f"账户 {user.username} 连续 {max_failures} 次密码错误（{doing}时重新输入密码），"
                                 f"锁定 {lock_minutes} 分钟，已退出该账户的所有网页登录")
            error = (f"连续 {max_failures} 次密码错误，账户已锁定 {lock_minutes} 分钟，并已退出登录。"
                     "请稍后重新登录；忘记密码的，请使用“忘记密码”重设。")
    db.session.commit()
    return LoginResult(None, error)


def claim_attempt(user_id: int, now: datetime) -> int | None:
    """Count an attempt (a password or second-factor code) *before* it is checked, by one conditional UPDATE that
    claims a slot (``failed_logins < limit``, not locked): PostgreSQL re-checks that condition on the row each
    concurrent UPDATE waited for, so however many requests arrive together, at most ``limit`` secrets are checked
    before the lock. Committed, so that concurrent attempts see it. Returns the attempt's number, or None (rolled
    back) when the account is locked or out of slots."""
    max_failures = max(1, current_app.config["LOGIN_MAX_FAILURES"])
    claimed = db.session.execute(
        sa.update(User).where(User.id == user_id, User.failed_logins < max_failures,
                              sa.or_(User.locked_until.is_(None), User.locked_until <= now))
        .values(failed_logins=User.failed_logins + 1).execution_options(synchronize_session=False)).rowcount == 1
    if not claimed:
        db.session.rollback()
        return None
    # Our UPDATE holds the row until commit, so this reads our own count.
    attempt = db.session.execute(sa.select(User.failed_logins).where(User.id == user_id)).scalar_one()
    db.session.commit()
    return attempt


def recheck_password(user: User, password: str, *, doing: str, field: str = "password",
                     message: str = "密码不正确。", address: str | None = None, via: str = "web") -> None:
    """The current password asked again in a signed-in session before a sensitive change (changing the password,
    binding or turning off the second factor: OWASP ASVS 3.7.1). Raises ValidationFailed (on ``field``) when it
    is wrong — and counts it like a wrong password at sign-in, since whoever holds a signed-in browser must not
    be able to guess the password here without limit: the same conditional claim of a slot before the (slow)
    hash, the same ``user.locked`` after ``LOGIN_MAX_FAILURES``, which here also ends the account's browser
    sessions (``_refused`` with ``doing``). An account locked already is refused unchecked, as the sign-in does.

    Commits (the claim before the hash, then the outcome), so that the count holds however the caller's request
    ends; call it before the change writes anything. Not counted per source address (``counted_from``): that
    limit stops one guess tried on many accounts, and a session can only guess its own account's password."""
    user_id, stored_hash = user.id, user.password_hash
    now = utcnow()
    attempt = claim_attempt(user_id, now)
    if attempt is None:
        _password_matches(_dummy_hash(), password)
        raise ValidationFailed(_locked_message(user_id), {field: "账户已锁定"})
    if _password_matches(stored_hash, password):
        # A right password gives back only this attempt's slot; the failures counted before it stay (they end at
        # the next whole sign-in, ``signed_in``, or at the lock) — as ``authenticate`` does half-way, password
        # right and second factor still to come, and unlike a successful sign-in, which clears them. A session
        # shows that someone once signed in, not that whoever holds it now did: with a copied cookie and a
        # password seen typed, a reset here would clear the wrong second-factor codes counted at /login/totp and
        # buy unlimited guesses of the code — the one thing that holder still lacks to sign in on their own.
        db.session.execute(sa.update(User).where(User.id == user_id, User.failed_logins > 0)
                           .values(failed_logins=User.failed_logins - 1).execution_options(synchronize_session=False))
        db.session.commit()
        return
    refused = _refused(user_id, now, attempt, message, address=address, via=via, doing=doing)
    locked = refused.error != message
    raise ValidationFailed(refused.error, {field: "账户已锁定" if locked else message.rstrip("。")})


# What refuses a sign-in whose secrets were right (core.accounts registers the API's gate: an expired password, a
# second factor still to enrol — the API issues no token then, while the web signs in to the pages that fix it).
# Each: (user, via) -> the reason, or None.
_SIGN_IN_REFUSALS: list[Callable[[User, str], "str | None"]] = []


def refuses_sign_in(fn: Callable[[User, str], "str | None"]) -> Callable[[User, str], "str | None"]:
    _SIGN_IN_REFUSALS.append(fn)
    return fn


def signed_in(user: User, now: datetime, *, address: str | None, via: str) -> None:
    """A sign-in succeeded (the password, and the second factor when the account has one): the count of failures
    returns to 0, and ``user.login`` goes in the audit log with the source address and the way in (web or API).
    One a registered refusal stops (the API's gate) signs nobody in: only this attempt's claim is given back, the
    failures before it stay, the last sign-in is not moved, and ``user.login_refused`` says why."""
    refusal = next((r for r in (fn(user, via) for fn in _SIGN_IN_REFUSALS) if r), None)
    if refusal:
        db.session.execute(sa.update(User).where(User.id == user.id, User.failed_logins > 0)
                           .values(failed_logins=User.failed_logins - 1)
                           .execution_options(synchronize_session=False))
        db.session.refresh(user, ["failed_logins"])
        audit.record("user.login_refused", user, actor=user, bureau_id=user.bureau_id,
                     summary=f"{user.username} 未能登录（{_where(address, via)}）：{refusal}",
                     payload={"address": address, "via": via, "reason": refusal})
        return
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record("user.login", user, actor=user, bureau_id=user.bureau_id,
                 summary=f"{user.username} 登录（{_where(address, via)}）", payload={"address": address, "via": via})


ADDRESS_LIMITED = "本网络地址近一小时登录失败次数过多，请稍后再试。"


def authenticate(username: str, password: str, address: str | None = None, via: str = "web") -> LoginResult:
    """``_authenticate``, with the failed sign-ins from ``address`` limited too (``counted_from``). ``via``: "web"
    or "api", for the audit log."""
    return counted_from(address, lambda: _authenticate(username, password, address, via),
                        on_limited=lambda: _password_matches(_dummy_hash(), password))  # as long as any other answer


def counted_from(address: str | None, attempt: Callable[[], LoginResult],
                 on_limited: Callable[[], object] = lambda: None) -> LoginResult:
    """A sign-in step (a password, a second-factor code) with the failures from one ``address`` limited over all
    accounts (``LOGIN_FAILURES_PER_ADDRESS_HOUR``): the account lock stops guessing one account's secret, not one
    guess tried on every account. Each attempt claims a slot before it is checked (exact under simultaneous
    requests, like the account's); a right one gives it back, so an office behind one address is never stopped by
    its colleagues signing in. No address (the CLI, direct calls): not counted."""
    if address is None:
        return attempt()
    try:
        hit_id = ratelimit.count_hit("login_failure", address,
                                     max(1, current_app.config["LOGIN_FAILURES_PER_ADDRESS_HOUR"]),
                                     message=ADDRESS_LIMITED).id
    except ratelimit.RateLimited:
        db.session.rollback()
        on_limited()
        return LoginResult(None, ADDRESS_LIMITED, limited=True)
    db.session.commit()
    result = attempt()
    if result.user is not None or result.pending is not None:
        ratelimit.give_back(hit_id)
        db.session.commit()
    return result


def name_key(username: str | None) -> str:
    """A login name as the unique index on lower(username) holds it: sign-in and 忘记密码 find "BZ.Admin" as
    "bz.admin", the one account the name can mean."""
    return (username or "").strip().lower()


def _authenticate(username: str, password: str, address: str | None = None, via: str = "web") -> LoginResult:
    """Check a password, counting failures; lock the account after too many (both limits are settings).

    Every call hashes exactly once — against the account's hash, or against a dummy for unknown, locked and
    over-limit accounts — so the answer takes as long whether or not the account exists. The attempt is
    counted *before* the password is looked at (``claim_attempt``). A right password gives the slot back (the
    count returns to 0)."""
    user = db.session.execute(sa.select(User).where(sa.func.lower(User.username) == name_key(username))
                              .execution_options(populate_existing=True)).scalar_one_or_none()
    if user is None:
        _password_matches(_dummy_hash(), password)
        return LoginResult(None, GENERIC_LOGIN_ERROR)
    user_id, stored_hash = user.id, user.password_hash
    now = utcnow()
    attempt = claim_attempt(user_id, now)
    if attempt is None:
        _password_matches(_dummy_hash(), password)
        return LoginResult(None, _locked_message(user_id))
    if not _password_matches(stored_hash, password):
        return _refused(user_id, now, attempt, GENERIC_LOGIN_ERROR, address=address, via=via)
    user = db.session.get(User, user_id, populate_existing=True)
    if user.totp_enabled:
        # Half-way: give the slot back, but keep the earlier failures — the code is checked next and counts
        # toward the same lock, so a known password does not buy unlimited guesses of the code.
        db.session.execute(sa.update(User).where(User.id == user_id, User.failed_logins > 0)
                           .values(failed_logins=User.failed_logins - 1)
                           .execution_options(synchronize_session=False))
        db.session.refresh(user, ["failed_logins"])
        if not user.is_enabled:
            db.session.commit()
            return LoginResult(None, "该账户已停用，请联系管理员。")
        db.session.commit()
        return LoginResult(None, pending=user)
    if not user.is_enabled:  # said only to someone who knows the password
        user.failed_logins = 0
        db.session.commit()
        return LoginResult(None, "该账户已停用，请联系管理员。")
    signed_in(user, now, address=address, via=via)
    db.session.commit()
    return LoginResult(user)


# --- sessions: a per-user generation ---------------------------------------------------------------

def session_user(session_id: str) -> User | None:
    """The user a browser session ("id:generation", see ``User.get_id``) belongs to, if it is still valid:
    the account is enabled and its sessions have not been ended since."""
    ident, _, generation = (session_id or "").partition(":")
    if not (ident.isascii() and ident.isdigit() and generation.isascii() and generation.isdigit()) \
            or len(ident) > 12 or len(generation) > 12:
        return None
    user = permissions.load_user(int(ident))  # with its bureau's tree, which every signed-in page reads
    if user is None or not user.is_enabled or user.session_generation != int(generation):
        return None
    return user


def _bump_generation(user: User) -> None:
    db.session.execute(sa.update(User).where(User.id == user.id)
                       .values(session_generation=User.session_generation + 1)
                       .execution_options(synchronize_session=False))
    db.session.refresh(user, ["session_generation"])


def _revoke_all_tokens(user: User) -> int:
    return db.session.execute(
        sa.update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount


def end_session(user: User) -> None:
    """Logout: every browser session of the user ends (a copied cookie no longer works); API tokens stay."""
    _bump_generation(user)


def sign_out_everywhere(user: User, actor: User) -> int:
    """退出所有登录: end every browser session and revoke every API token of ``user``. The user may do it
    for themselves; an administrator for an account they manage. Returns the number of tokens revoked."""
    if actor.id != user.id:
        permissions.require(actor, "user.account", user)
    _bump_generation(user)
    revoked = _revoke_all_tokens(user)
    by = "本人" if actor.id == user.id else f"管理员 {actor.username}"
    audit.record("user.signed_out_everywhere", user, actor=actor, bureau_id=user.bureau_id,
                 summary=f"{by}退出账户 {user.username} 的所有登录（撤销 API 令牌 {revoked} 个）",
                 payload={"tokens_revoked": revoked})
    return revoked


def void_links(user: User, purpose: str | None = None) -> int:
    """The user's unused one-time links (of ``purpose``, or all) stop working: a new one replaces them, and a
    password change or a deactivation leaves no link issued before it as a way back in."""
    stmt = sa.update(AccountLink).where(AccountLink.user_id == user.id, AccountLink.used_at.is_(None),
                                        AccountLink.revoked_at.is_(None))
    if purpose is not None:
        stmt = stmt.where(AccountLink.purpose == purpose)
    return db.session.execute(stmt.values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount


def void_links_issued_by(issuer: User) -> int:
    """The unused links ``issuer`` gave out for other accounts stop working: a disabled administrator (one who
    left office) must not keep a reset link into a colleague's account."""
    return db.session.execute(
        sa.update(AccountLink).where(AccountLink.created_by_id == issuer.id, AccountLink.user_id != issuer.id,
                                     AccountLink.used_at.is_(None), AccountLink.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount


def change_password(user: User, current_password: str, new_password: str, *, address: str | None = None) -> None:
    """The user changes their own password: every other session ends and every API token is revoked (the
    view signs the current browser in again under the new generation). The current password is counted toward
    the sign-in lock (``recheck_password``)."""
    recheck_password(user, current_password, doing="修改密码", field="current_password", message="当前密码不正确。",
                     address=address)
    if _password_matches(user.password_hash, new_password):
        raise ValidationFailed("新密码不能与当前密码相同。", {"new_password": "与当前密码相同"})
    check_password_strength(new_password, user=user, field="new_password")
    passwords.record(user, hash_password(new_password))
    _bump_generation(user)
    revoked = _revoke_all_tokens(user)
    void_links(user)  # a reset link asked for earlier no longer overrides the password just chosen
    audit.record("user.password_changed", user, actor=user, bureau_id=user.bureau_id,
                 summary=f"{user.username} 修改密码；其他登录已退出，撤销 API 令牌 {revoked} 个",
                 payload={"tokens_revoked": revoked})


def set_enabled(user: User, enabled: bool, actor: User, reason: str = "") -> None:
    """停用 / 启用 an account. Deactivation ends every session and revokes every API token."""
    permissions.require(actor, "user.account", user)
    if user.id == actor.id:
        raise Conflict("不能停用或启用自己的账户。")
    concurrency.hold(user)  # a double click, two administrators: the second reads the account the first changed
    if user.is_enabled == enabled:
        raise Conflict("该账户已经是启用状态。" if enabled else "该账户已经停用。")
    if enabled and not permissions.can(actor, "user.enable", user):
        decided = user.disabled_authority
        raise PermissionDenied(f"该账户由{decided.label}停用，只能由{decided.label}或其上级启用。" if decided
                               else "该账户由财政局一方停用，只能由财政局管理员或系统管理员启用。")
    reason = (reason or "").strip()
    if not enabled and not reason:
        raise ValidationFailed("请填写停用原因。", {"reason": "必填"})
    user.is_enabled = enabled
    previous = user.disabled_authority
    user.disabled_authority = None if enabled else permissions.authority(actor)
    revoked = voided = 0
    if not enabled:
        _bump_generation(user)
        revoked = _revoke_all_tokens(user)
        void_links(user)  # re-enabled later, it does not wake a link issued before
        # An administrator leaving office leaves no reset link into a colleague's account behind.
        voided = void_links_issued_by(user)
    audit.record("user.enabled" if enabled else "user.disabled", user, actor=actor, bureau_id=user.bureau_id,
                 summary=(f"启用账户 {user.username}" if enabled else
                          f"停用账户 {user.username}：{reason}（撤销 API 令牌 {revoked} 个"
                          + (f"，其签发的未使用链接 {voided} 个作废" if voided else "") + "）"),
                 payload={"reason": reason, "tokens_revoked": revoked, "links_voided": voided,
                          "authority": user.disabled_authority if not enabled else previous})


def create_user(*, username: str, password: str | None, display_name: str, role: Role, actor: User | None,
                bureau_id: int | None = None, firm_id: int | None = None, expert_id: int | None = None,
                email: str | None = None, phone: str | None = None, summary: str | None = None) -> User:
    """Create an account. ``password=None`` creates one awaiting activation: nobody can sign in to it until
    the person sets a password through a one-time link (``core.accounts.issue_link``)."""
    username = (username or "").strip()
    if not username:
        raise ValidationFailed("请填写用户名。", {"username": "必填"})
    if db.session.execute(sa.select(User.id).where(sa.func.lower(User.username) == name_key(username))).first():
        raise ValidationFailed("该用户名已被使用。", {"username": "用户名已被使用"})
    if password is not None:
        check_password_strength(password, username=username)
    user = User(username=username, password_hash=passwords.UNUSABLE, display_name=display_name,
                role=role, bureau_id=bureau_id, firm_id=firm_id, expert_id=expert_id, email=email, phone=phone)
    db.session.add(user)
    db.session.flush()
    if password is not None:
        passwords.record(user, hash_password(password))
    audit.record("user.created", user, actor=actor, bureau_id=bureau_id,
                 summary=summary or (f"创建账户 {username}（{role.label}）" + ("" if password is not None else "，待激活")))
    return user


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User) -> str:
    token = "ehb_" + secrets.token_urlsafe(32)
    days = current_app.config["API_TOKEN_DAYS"]
    db.session.add(ApiToken(user_id=user.id, token_hash=_token_digest(token),
                            expires_at=utcnow() + timedelta(days=days)))
    audit.record("token.issued", user, actor=user, bureau_id=user.bureau_id, summary=f"{user.username} 申请 API 令牌")
    return token


TOKEN_TOUCH_EVERY = timedelta(minutes=5)


def token_row(token: str) -> ApiToken | None:
    return db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_hash == _token_digest(token or ""))
        .execution_options(populate_existing=True)  # revocation is checked against the row as it is now
    ).scalar_one_or_none()


def user_for_token(token: str) -> User | None:
    """The account an API token signs in, if the token is live (not revoked, not expired) and the account is
    enabled; read with the account's bureau tree and settings, which the API's scoped reads use."""
    row = permissions.load_token(_token_digest(token or ""))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now or not row.user.is_enabled:
        return None
    # Record use at most every few minutes: an API read must not turn into a write (and a commit) each time.
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_EVERY:
        row.last_used_at = now
    return row.user


def active_tokens(user: User) -> list[ApiToken]:
    """The user's tokens that still work, newest first."""
    return list(db.session.execute(
        sa.select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None),
                                  ApiToken.expires_at > utcnow()).order_by(ApiToken.id.desc())
    ).scalars())


def revoke_token(row: ApiToken, actor: User) -> None:
    """Revoke one API token: its owner may; so may an administrator of the owner's account."""
    if row.user_id != actor.id:
        permissions.require(actor, "user.manage", row.user.bureau)
    done = db.session.execute(  # conditional, so two revocations at once write one event
        sa.update(ApiToken).where(ApiToken.id == row.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if not done:
        raise Conflict("该令牌已撤销。")
    db.session.refresh(row, ["revoked_at"])
    audit.record("token.revoked", row.user, actor=actor, bureau_id=row.user.bureau_id,
                 summary=f"撤销 {row.user.username} 的 API 令牌 #{row.id}", payload={"token_id": row.id})
