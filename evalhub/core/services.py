"""Accounts: passwords, login with lock-out, API tokens."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from evalhub.core import audit
from evalhub.core.enums import Role
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import ApiToken, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config.get("PASSWORD_HASH_METHOD", "scrypt"))


def check_password_strength(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"密码至少需要 {MIN_PASSWORD_LENGTH} 位。", {"password": "密码太短"})


@dataclass
class LoginResult:
    user: User | None
    error: str | None = None


def authenticate(username: str, password: str) -> LoginResult:
    """Check a password, counting failures; lock the account after too many (both limits are settings)."""
    max_failures = current_app.config["LOGIN_MAX_FAILURES"]
    lock_minutes = current_app.config["LOGIN_LOCK_MINUTES"]
    generic = "用户名或密码错误。"
    user = db.session.execute(sa.select(User).where(User.username == (username or "").strip())).scalar_one_or_none()
    if user is None:
        return LoginResult(None, generic)
    now = utcnow()
    if user.locked_until and user.locked_until > now:
        minutes = int((user.locked_until - now).total_seconds() // 60) + 1
        return LoginResult(None, f"连续登录失败次数过多，账户已锁定，请 {minutes} 分钟后再试。")
    if not user.is_enabled:
        return LoginResult(None, "该账户已停用，请联系管理员。")
    if not check_password_hash(user.password_hash, password or ""):
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(minutes=lock_minutes)
            user.failed_logins = 0
            audit.record("user.locked", user, actor=None, bureau_id=user.bureau_id,
                         summary=f"账户 {user.username} 连续 {max_failures} 次登录失败，锁定 {lock_minutes} 分钟")
            db.session.commit()
            return LoginResult(None, f"连续登录失败 {max_failures} 次，账户已锁定 {lock_minutes} 分钟。")
        db.session.commit()
        return LoginResult(None, generic)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    db.session.commit()
    return LoginResult(user)


def create_user(*, username: str, password: str, display_name: str, role: Role, actor: User | None,
                bureau_id: int | None = None, firm_id: int | None = None, expert_id: int | None = None,
                email: str | None = None) -> User:
    username = (username or "").strip()
    if not username:
        raise ValidationFailed("请填写用户名。", {"username": "必填"})
    if db.session.execute(sa.select(User.id).where(User.username == username)).first():
        raise ValidationFailed("该用户名已被使用。", {"username": "用户名已被使用"})
    check_password_strength(password)
    user = User(username=username, password_hash=hash_password(password), display_name=display_name,
                role=role, bureau_id=bureau_id, firm_id=firm_id, expert_id=expert_id, email=email)
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", user, actor=actor, bureau_id=bureau_id,
                 summary=f"创建账户 {username}（{role.label}）")
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


def user_for_token(token: str) -> User | None:
    row = db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_hash == _token_digest(token or ""))
    ).scalar_one_or_none()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now or not row.user.is_enabled:
        return None
    row.last_used_at = now
    return row.user
