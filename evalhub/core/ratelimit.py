"""Limits per requester kept in the database, so every worker shares them: the public forms, "忘记密码" and
failed sign-ins. Who asked is kept only as a keyed hash of their address."""
from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from evalhub.core import concurrency
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import RateLimitHit
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db


class RateLimited(ValidationFailed):
    status = 429
    code = "too_many_requests"


def client_digest(address: str | None) -> str:
    """A keyed hash of the requester's address: enough to count, useless to identify anyone."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, (address or "unknown").encode(), hashlib.sha256).hexdigest()


def count_hit(bucket: str, address: str | None, limit: int, window: timedelta = timedelta(hours=1),
              message: str = "请求过于频繁，请一小时后再试。") -> RateLimitHit:
    """Count one request of ``bucket`` from ``address``; RateLimited (429) when it is over ``limit`` in
    ``window``. Exact under simultaneous requests (one named lock per requester). Returns the counted row, so
    that a caller may give the slot back (``give_back``) when the request turns out not to count."""
    digest = client_digest(address)
    concurrency.serialise(f"rate:{bucket}:{digest}")
    now = utcnow()
    recent = db.session.execute(sa.select(sa.func.count(RateLimitHit.id)).where(
        RateLimitHit.bucket == bucket, RateLimitHit.digest == digest,
        RateLimitHit.created_at > now - window)).scalar_one()
    if recent >= limit:
        raise RateLimited(message)
    hit = RateLimitHit(bucket=bucket, digest=digest, created_at=now)
    db.session.add(hit)
    db.session.execute(sa.delete(RateLimitHit).where(RateLimitHit.bucket == bucket,
                                                     RateLimitHit.created_at < now - timedelta(days=1))
                       .execution_options(synchronize_session=False))
    db.session.flush()
    return hit


def give_back(hit_id: int) -> None:
    db.session.execute(sa.delete(RateLimitHit).where(RateLimitHit.id == hit_id)
                       .execution_options(synchronize_session=False))
