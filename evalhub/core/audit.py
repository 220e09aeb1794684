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
from sqlalchemy.orm import Session
from sqlalchemy.sql.util import find_tables

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


def lock_chain(session: Session | None = None) -> None:
    """Serialise with every other writer of the chain until this transaction ends (PostgreSQL; SQLite
    serialises writers anyway). Appends take it; so does a checkpoint reading the head."""
    session = session or db.session()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


# Events recorded in a transaction wait in the session (with the savepoint they were recorded in) and join the chain
# just before the outermost commit: the chain's lock is then held for the few statements of the append, not for
# the whole transaction. Taken at the first event, it made every audited write in the province (a sign-in, too)
# wait behind a long import or a slow request that had recorded anything.
_PENDING = "audit_pending"
_HELD = "audit_chain_held"  # set once this transaction holds the chain: later events are appended at once
# The hash of the last event this transaction appended, while it holds the chain: no one else can append meanwhile,
# so the next append links to it without reading the head again. Dropped on any rollback (a savepoint's too: its
# events may be gone) and when the transaction ends.
_HEAD = "audit_chain_head"


def record(action: str, obj: Any | None = None, *, summary: str, actor: User | None = None,
           bureau_id: int | None = None, payload: dict | None = None,
           object_type: str | None = None, object_id: int | None = None) -> AuditEvent:
    """Record one event in the caller's transaction: it joins the chain when that transaction commits (and goes
    with it, or with its savepoint, on a rollback). ``obj`` gives type, id and bureau if it has them."""
    session = db.session()
    if obj is not None:
        session.flush()  # the object needs its id
        object_type = object_type or obj.__tablename__
        object_id = object_id if object_id is not None else obj.id
        if bureau_id is None:
            bureau_id = getattr(obj, "bureau_id", None)
    event = AuditEvent(
        occurred_at=utcnow(),
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else "system",
        action=action,
        object_type=object_type or "system",
        object_id=object_id,
        bureau_id=bureau_id,
        summary=summary[:300],
        payload=_jsonable(payload or {}),
    )
    if session.info.get(_HELD):  # recorded while this transaction commits (after the append below)
        _append(session, [event])
        return event
    session.connection()  # the transaction begun, to know which one the event belongs to
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((transaction, event))
    return event


def _append(session, events: list[AuditEvent]) -> None:
    """Link ``events`` to the head of the chain, in order; the caller holds the chain's lock. The chain's order is
    the ids' order: on PostgreSQL the ids are taken from the sequence at once, in order, and the events written in
    one statement (a long import's thousands, while the lock is held); elsewhere one flush an event."""
    prev = session.info.pop(_HEAD, None) or session.execute(
        sa.select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none() or GENESIS_HASH
    for event in events:
        event.prev_hash = prev
        event.hash = prev = event_digest(event)
    if len(events) > 1 and session.get_bind().dialect.name == "postgresql":
        # Only appenders take these ids, and they hold the lock: no other transaction's id falls between them.
        ids = sorted(session.execute(sa.text(
            "SELECT nextval(pg_get_serial_sequence('audit_event', 'id')) FROM generate_series(1, :n)"),
            {"n": len(events)}).scalars())
        for event, id_ in zip(events, ids):
            event.id = id_
        session.add_all(events)
        session.flush()
        session.info[_HEAD] = prev
        return
    for event in events:
        session.add(event)
        session.flush()
    session.info[_HEAD] = prev


def _join_chain(session: Session) -> None:
    """Take the chain and append this transaction's waiting events; from now on its events are appended at once."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    # The transaction's own rows first, without the chain: the lock's holder then writes only the chain (and the
    # commit hooks after this one), never waiting for a row another writer holds while that writer waits for the
    # chain.
    session.flush()
    with session.no_autoflush:
        lock_chain(session)
        session.info[_HELD] = True
        _append(session, [event for _transaction, event in pending])


# First among the commit hooks, so that every process takes the chain's lock at the same point of its commit:
# what the later hooks write (the summary counts) is written only under the chain's lock, so two commits never
# wait for each other's rows in opposite orders.
@sa.event.listens_for(Session, "before_commit", insert=True)
def _append_pending(session: Session) -> None:
    if not session.in_nested_transaction():
        _join_chain(session)


@sa.event.listens_for(Session, "do_orm_execute")
def _read_own_events(state) -> None:
    """A transaction that reads the log after recording sees its own events, as it sees its other rows: they join
    the chain before the read (rare outside tests: requests record, then redirect). Not inside a savepoint: the
    events recorded before it would be written in it, and go if it is rolled back."""
    session = state.session
    if (state.is_select and session.info.get(_PENDING) and not session.in_nested_transaction()
            and AuditEvent.__table__ in find_tables(state.statement)):
        _join_chain(session)


@sa.event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session, previous_transaction) -> None:
    """The events recorded in a transaction or savepoint that was rolled back (or in one nested inside it) go."""
    session.info.pop(_HEAD, None)  # the events appended in it may have gone with it: read the head again
    pending = session.info.get(_PENDING)
    if not pending:
        return

    def inside(transaction) -> bool:
        while transaction is not None:
            if transaction is previous_transaction:
                return True
            transaction = transaction.parent
        return False

    session.info[_PENDING] = [(t, e) for t, e in pending if not inside(t)]


@sa.event.listens_for(Session, "after_transaction_end")
def _forget(session, transaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended: committed, rolled back or closed
        session.info.pop(_PENDING, None)
        session.info.pop(_HELD, None)
        session.info.pop(_HEAD, None)


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
