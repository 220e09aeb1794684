"""The audit log: append-only, each event carrying the hash of the one before it.

Tampering with any stored event (or deleting one) breaks the chain at that point, and
``verify_chain`` reports the first broken link.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Iterator

import sqlalchemy as sa

from evalhub.core.models import AuditEvent, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

GENESIS_HASH = "0" * 64
# An arbitrary constant key for PostgreSQL's transaction-level advisory lock that serialises appends.
_PG_LOCK_KEY = 0x657661_6C68


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


def _digest(prev_hash: str, occurred_at: datetime, actor_id: int | None, actor_name: str, action: str,
            object_type: str, object_id: int | None, bureau_id: int | None, summary: str,
            payload: dict) -> str:
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": occurred_at.isoformat(timespec="microseconds"),
            "actor_id": actor_id,
            "actor": actor_name,
            "action": action,
            "type": object_type,
            "id": object_id,
            "bureau": bureau_id,
            "summary": summary,
            "payload": payload,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def event_digest(event: AuditEvent) -> str:
    return _digest(event.prev_hash, event.occurred_at, event.actor_id, event.actor_name, event.action,
                   event.object_type, event.object_id, event.bureau_id, event.summary, event.payload or {})


def lock_chain() -> None:
    """Serialise with every other writer of the chain until this transaction ends (PostgreSQL; SQLite
    serialises writers anyway). Appends take it; so does a checkpoint reading the head."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def record(action: str, obj: Any | None = None, *, summary: str, actor: User | None = None,
           bureau_id: int | None = None, payload: dict | None = None,
           object_type: str | None = None, object_id: int | None = None) -> AuditEvent:
    """Append one event in the caller's transaction. ``obj`` gives type, id and bureau if it has them."""
    # The chain's lock before the caller's pending changes are flushed: a request that has changed a row waits
    # for the chain without holding that row's lock, so it never deadlocks with a chain holder about to update the
    # same row (the last review deciding a panel while an officer records the engagement's spending).
    with db.session.no_autoflush:
        lock_chain()
    if obj is not None:
        db.session.flush()  # the object needs its id
        object_type = object_type or obj.__tablename__
        object_id = object_id if object_id is not None else obj.id
        if bureau_id is None:
            bureau_id = getattr(obj, "bureau_id", None)
    prev = db.session.execute(
        sa.select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none() or GENESIS_HASH
    occurred_at = utcnow()
    clean_payload = _jsonable(payload or {})
    actor_name = actor.username if actor is not None else "system"
    event = AuditEvent(
        occurred_at=occurred_at,
        actor_id=actor.id if actor is not None else None,
        actor_name=actor_name,
        action=action,
        object_type=object_type or "system",
        object_id=object_id,
        bureau_id=bureau_id,
        summary=summary[:300],
        payload=clean_payload,
        prev_hash=prev,
    )
    event.hash = _digest(prev, occurred_at, event.actor_id, actor_name, action, event.object_type,
                         object_id, bureau_id, event.summary, clean_payload)
    db.session.add(event)
    db.session.flush()
    return event


@dataclass
class ChainReport:
    ok: bool
    checked: int
    broken_id: int | None = None
    problem: str = ""


def iter_events(batch_size: int = 2000, after_id: int = 0) -> Iterator[AuditEvent]:
    """The events after ``after_id`` in chain order, read ``batch_size`` at a time; the session is expired
    after each batch, so a walk over the whole chain holds one batch in memory."""
    last_id = after_id
    while True:
        events = db.session.execute(
            sa.select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch_size)
        ).scalars().all()
        if not events:
            return
        yield from events
        last_id = events[-1].id
        db.session.expire_all()


def link_problem(event: AuditEvent, expected_prev: str) -> str | None:
    """Why ``event`` breaks the chain after a link whose hash is ``expected_prev``; None when it holds."""
    if event.prev_hash != expected_prev:
        return f"事件 #{event.id} 的前序哈希与上一事件不符（可能有事件被删除或插入）"
    if event_digest(event) != event.hash:
        return f"事件 #{event.id} 的内容已被改动（哈希不符）"
    return None


def verify_chain(batch_size: int = 2000) -> ChainReport:
    """Walk the chain in order and report the first event whose link or content does not match."""
    expected_prev = GENESIS_HASH
    checked = 0
    for event in iter_events(batch_size):
        problem = link_problem(event, expected_prev)
        if problem:
            return ChainReport(False, checked, event.id, problem)
        expected_prev = event.hash
        checked += 1
    return ChainReport(ok=True, checked=checked)


def history(object_type: str, object_id: int) -> list[AuditEvent]:
    return db.session.execute(
        sa.select(AuditEvent)
        .where(AuditEvent.object_type == object_type, AuditEvent.object_id == object_id)
        .order_by(AuditEvent.id)
    ).scalars().all()
