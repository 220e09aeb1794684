"""The password policy (等级保护 2.0 身份鉴别): length, character classes, history, optional expiry.

One policy for the whole system, from the deployment's configuration (``EVALHUB_PASSWORD_*``, see
config.py) rather than a bureau setting: it must hold before any bureau exists (`flask evalhub users
create-admin` on an empty database), for accounts that belong to no bureau (the system administrators) or
to several (firms and experts work for many bureaus), and a county must not be able to weaken what the
system is assessed on. Every path that sets a password goes through ``check`` and ``record``: the first
administrator, accounts created by administrators, firm registration, password change, reset and
activation (core/services.py, core/accounts.py).
"""
from __future__ import annotations

import secrets
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import sqlalchemy as sa
from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from evalhub.core.errors import ValidationFailed
from evalhub.core.models import PasswordHistory, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

CLASSES = (("大写字母", str.isupper), ("小写字母", str.islower), ("数字", str.isdigit))
MAX_LENGTH = 128
# What an account awaiting activation holds instead of a hash: no password matches it.
UNUSABLE = "!"


@dataclass(frozen=True)
class Policy:
    min_length: int
    min_classes: int
    history: int
    max_age_days: int

    def describe(self) -> str:
        parts = [f"至少 {self.min_length} 位"]
        if self.min_classes > 1:
            parts.append(f"包含大写字母、小写字母、数字、符号中的至少 {self.min_classes} 类")
        if self.history > 0:
            parts.append(f"不能与最近 {self.history} 次使用过的密码相同")
        if self.max_age_days > 0:
            parts.append(f"每 {self.max_age_days} 天须更换")
        return "，".join(parts) + "。"


def policy() -> Policy:
    config = current_app.config
    return Policy(min_length=max(1, int(config.get("PASSWORD_MIN_LENGTH", 10))),
                  min_classes=max(1, min(4, int(config.get("PASSWORD_MIN_CLASSES", 3)))),
                  history=max(0, int(config.get("PASSWORD_HISTORY", 5))),
                  max_age_days=max(0, int(config.get("PASSWORD_MAX_AGE_DAYS", 0))))


# --- the demo's published password ------------------------------------------------------------------
_WAIVED: ContextVar[str | None] = ContextVar("evalhub_password_policy_waived", default=None)
_SHARED_HASHES: ContextVar[dict[tuple[str, str], str] | None] = ContextVar("evalhub_shared_hashes", default=None)


@contextmanager
def policy_waived(reason: str) -> Iterator[None]:
    """Within this block (in this process only) strength rules are not applied: for the demo data set,
    whose accounts share a published password and which is refused in production. Length, history and
    the rest still apply everywhere else; nothing a request carries can turn this on."""
    if current_app.config.get("ENV_NAME") == "production":
        yield  # never in production
        return
    token, hashes = _WAIVED.set(reason), _SHARED_HASHES.set({})
    try:
        yield
    finally:
        _WAIVED.reset(token)
        _SHARED_HASHES.reset(hashes)


# --- hashing ----------------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
    shared = _SHARED_HASHES.get()
    if shared is None:
        return generate_password_hash(password, method=method)
    # Within the demo's waiver (never in production) the ~120 accounts all get the published password: one
    # hash, one salt, for all of them rather than a scrypt run each (15 s of `make run`). That their hashes
    # are equal says only what README.md already says.
    if (method, password) not in shared:
        shared[(method, password)] = generate_password_hash(password, method=method)
    return shared[(method, password)]


_DUMMY_HASHES: dict[str, str] = {}


def dummy_hash() -> str:
    """A hash of a random password made with the configured method, so that refusing an unknown, locked,
    disabled or not yet activated account costs what checking a real password costs."""
    method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash(secrets.token_urlsafe(16), method=method)
    return _DUMMY_HASHES[method]


def matches(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored_hash`` was made from; an unusable hash (an account awaiting
    activation) matches nothing but costs a hash all the same."""
    if not stored_hash or stored_hash == UNUSABLE:
        check_password_hash(dummy_hash(), password or "")
        return False
    return check_password_hash(stored_hash, password or "")


# --- the rules --------------------------------------------------------------------------------------

def _classes(password: str) -> int:
    found = sum(1 for _name, test in CLASSES if any(test(c) and c.isascii() for c in password))
    symbols = any(not (c.isascii() and c.isalnum()) for c in password)
    return found + (1 if symbols else 0)


def problems(password: str, *, username: str | None = None) -> list[str]:
    """What is wrong with ``password`` under the policy (history aside), in Chinese; empty when it passes."""
    rules = policy()
    password = password or ""
    out: list[str] = []
    if len(password) > MAX_LENGTH:
        out.append(f"密码不能超过 {MAX_LENGTH} 位")
        return out
    if password != password.strip() or any(c in "\r\n\t" for c in password):
        out.append("密码首尾不能有空格，也不能包含换行或制表符")
    if len(password) < rules.min_length:
        out.append(f"密码至少需要 {rules.min_length} 位")
    if _WAIVED.get() is not None:
        return out
    if _classes(password) < rules.min_classes:
        out.append(f"密码须包含大写字母、小写字母、数字、符号中的至少 {rules.min_classes} 类")
    if username and len(username) >= 3 and username.lower() in password.lower():
        out.append("密码不能包含用户名")
    return out


def _recent_hashes(user: User, count: int) -> list[str]:
    hashes = list(db.session.execute(
        sa.select(PasswordHistory.password_hash).where(PasswordHistory.user_id == user.id)
        .order_by(PasswordHistory.id.desc()).limit(count)).scalars())
    current = user.password_hash
    if current and current != UNUSABLE and current not in hashes:
        hashes.insert(0, current)  # accounts from before the history was kept
    return hashes[:count]


def check(password: str, *, user: User | None = None, username: str | None = None,
          field: str = "password") -> None:
    """Refuse ``password`` (ValidationFailed naming ``field``) unless it satisfies the policy; with ``user``,
    also unless it differs from that user's last ``PASSWORD_HISTORY`` passwords (the current one included)."""
    found = problems(password, username=username or (user.username if user is not None else None))
    if not found and user is not None and user.id is not None:
        rules = policy()
        if rules.history > 0 and any(check_password_hash(h, password) for h in _recent_hashes(user, rules.history)):
            found.append(f"不能与最近 {rules.history} 次使用过的密码相同")
    if found:
        raise ValidationFailed("；".join(found) + "。", {field: "；".join(found)})


def record(user: User, new_hash: str) -> None:
    """Keep ``new_hash`` as ``user``'s password: set it, note the time, remember it in the history and
    forget what is older than the history needs. ``user`` must have an id (flushed)."""
    previous = user.password_hash
    if previous and previous != UNUSABLE and not db.session.execute(sa.select(PasswordHistory.id).where(
            PasswordHistory.user_id == user.id, PasswordHistory.password_hash == previous)).first():
        db.session.add(PasswordHistory(user_id=user.id, password_hash=previous))  # from before the history was kept
        db.session.flush()
    user.password_hash = new_hash
    user.password_changed_at = utcnow()
    db.session.add(PasswordHistory(user_id=user.id, password_hash=new_hash))
    db.session.flush()
    keep = max(1, policy().history)
    stale = list(db.session.execute(
        sa.select(PasswordHistory.id).where(PasswordHistory.user_id == user.id)
        .order_by(PasswordHistory.id.desc()).offset(keep)).scalars())
    if stale:
        db.session.execute(sa.delete(PasswordHistory).where(PasswordHistory.id.in_(stale))
                           .execution_options(synchronize_session=False))


def expired(user: User) -> bool:
    """The password is older than ``PASSWORD_MAX_AGE_DAYS`` (never, when that is 0): the user must change
    it after signing in before doing anything else."""
    days = policy().max_age_days
    if days <= 0 or user.password_changed_at is None:
        return False
    return user.password_changed_at + timedelta(days=days) <= utcnow()
