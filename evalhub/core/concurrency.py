"""What keeps simultaneous requests — several gunicorn workers on one PostgreSQL, or a double click — from
racing each other. Everything here holds on SQLite as well, so the suite can prove it on both.

- ``serialise(name)``: a named lock held until the transaction ends. It is a row of ``named_lock`` taken
  with an UPDATE: on PostgreSQL a row lock (a second transaction waits at the same UPDATE until the first
  commits or rolls back), on SQLite the database's write lock. Rules of the form "count, then insert" (a
  rate limit, get-or-create by a natural key, "not the same objection twice") take it *before* they count,
  so the second of two simultaneous requests counts what the first wrote.
- ``refuse_twin(lock, twin, message)``: a record that is the same as one already written (the same finding
  entered twice, the same penalty recorded twice) is refused with 409, under ``lock`` so that of two
  simultaneous requests the second sees the first's row. For the web forms' double clicks and resends,
  and the same on the API and the CLI, which have no form to carry a token.
- ``run_once``: the API's optional ``Idempotency-Key`` header. The first POST with a key runs; a repeat by
  the same user within 24 hours — even one that arrives while the first is still running — gets the first
  one's answer, and nothing is done twice.
- ``init_app``: a unique (or foreign-key) violation that got past the services' checks (two requests
  registering the same code at the same moment) answers 409 with a Chinese message, on the web and the API
  alike, instead of a 500. Domains name the record for their tables with ``unique_message``.
"""
from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from typing import Any, Callable

import sqlalchemy as sa
from flask import Flask, Response, current_app, make_response, render_template, request
from sqlalchemy.exc import IntegrityError, InvalidRequestError, OperationalError
from sqlalchemy.orm.exc import ObjectDeletedError

from evalhub.core import jobs
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import IdempotencyKey, NamedLock
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

# === named locks ==================================================================================

LOCK_ROWS_KEPT = timedelta(days=1)


def _insert_ignoring_conflict(values: dict) -> sa.Executable:
    """INSERT … ON CONFLICT DO NOTHING for the lock table (PostgreSQL ≥ 9.5 and SQLite ≥ 3.24 both have it)."""
    name = db.session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the two databases the project supports
        raise RuntimeError(f"不支持的数据库：{name}")
    return insert(NamedLock.__table__).values(**values).on_conflict_do_nothing(index_elements=["name"])


def serialise(name: str) -> None:
    """Hold the lock called ``name`` until the current transaction ends (commit or rollback).

    Take it before reading what the rule counts: after the wait, PostgreSQL's READ COMMITTED shows every
    statement what the previous holder committed."""
    if len(name) > 200:
        name = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    for _ in range(5):
        now = utcnow()
        db.session.execute(_insert_ignoring_conflict({"name": name, "locked_at": now}))
        held = db.session.execute(sa.update(NamedLock.__table__).where(NamedLock.__table__.c.name == name)
                                  .values(locked_at=now)).rowcount
        if held == 1:
            return
        # The row was pruned between our insert and our update (``prune``): make it again.
    raise RuntimeError(f"无法取得锁 {name}")  # pragma: no cover


def hold(row: Any, name: str | None = None) -> None:
    """One change to ``row`` at a time: its lock (``name``, else "<table>:<id>") to the end of the transaction,
    then the row read again as the request before left it — so a step checked against its state is checked
    against the state it will change (a double decision, a removal and a reinstatement at once)."""
    serialise(name or f"{row.__tablename__}:{row.id}")
    try:
        db.session.refresh(row)
    except (ObjectDeletedError, InvalidRequestError) as exc:  # deleted by the request before
        raise Conflict("该记录刚被他人删除，请刷新页面。") from exc


def refuse_twin(lock: str, twin: sa.Select, message: Callable[[Any], str]) -> None:
    """Conflict (``message(row)``) when ``twin`` finds a row the caller is about to write again; the lock is
    held to the end of the transaction, so the caller's own insert is in it."""
    serialise(lock)
    found = db.session.execute(twin.limit(1)).scalars().first()
    if found is not None:
        raise Conflict(message(found))


# === idempotency keys =============================================================================

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_TTL = timedelta(hours=24)
REPLAY_WAIT_SECONDS = 10.0
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[!-~]+$"},
    "description": "可选：幂等键（1–100 个可见 ASCII 字符，如 UUID）。同一用户 24 小时内以同一键重复提交同一请求，"
                   "只执行一次，重复的请求得到第一次的应答（响应头 Idempotent-Replayed: true）；"
                   "同一键用于内容不同的请求时答复 422。",
}


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= 100 and all(33 <= ord(c) <= 126 for c in key)


def _fingerprint() -> str:
    """sha256 of what makes two requests the same: method, path, query and body (an upload's files are read
    in chunks from their spooled copies, not held in memory a second time)."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}?{request.query_string.decode('latin-1')}\n".encode())
    if request.mimetype == "multipart/form-data":
        # a malformed part may come without a name (werkzeug gives None): order by name, then value, as text
        for name, value in sorted(request.form.items(multi=True), key=lambda item: (item[0] or "", item[1] or "")):
            digest.update(f"{name}={value}\n".encode())
        for name, upload in sorted(request.files.items(multi=True), key=lambda item: (item[0] or "", item[1].filename or "")):
            digest.update(f"{name}:{upload.filename}\n".encode())
            for chunk in iter(lambda: upload.stream.read(65536), b""):
                digest.update(chunk)
            upload.stream.seek(0)
    else:
        digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def run_once(user_id: int, call: Callable[[], Any]) -> Response:
    """Run the API operation ``call`` once per (user, Idempotency-Key); without the header, just run it.

    The key's row is inserted in the operation's own transaction, before the operation: a simultaneous
    twin waits at its insert (PostgreSQL: the unique index; SQLite: the write lock) until the first commits,
    then reads and replays the stored answer. An operation that fails (an error, or nothing committed)
    leaves no row, so the client may retry with the same key."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return make_response(call())
    key = key.strip()
    if not _valid_key(key):
        raise ValidationFailed("Idempotency-Key 须为 1–100 个可见 ASCII 字符（如 UUID）。",
                               {IDEMPOTENCY_HEADER: "格式不正确"})
    fingerprint = _fingerprint()
    for _ in range(3):
        now = utcnow()
        db.session.execute(sa.delete(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.key == key, IdempotencyKey.created_at < now - IDEMPOTENCY_TTL))
        db.session.add(IdempotencyKey(user_id=user_id, key=key, fingerprint=fingerprint, created_at=now))
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            replayed = _replay(user_id, key, fingerprint)
            if replayed is not None:
                return replayed
            continue  # the first request failed and gave the key back: run this one
        return _store(user_id, key, fingerprint, make_response(call()))
    raise Conflict("使用同一 Idempotency-Key 的请求正在处理中，请稍后重试。")  # pragma: no cover


def _store(user_id: int, key: str, fingerprint: str, response: Response) -> Response:
    # What the operation left uncommitted is not ours to commit (it would have been discarded).
    db.session.rollback()
    mine = (IdempotencyKey.user_id == user_id, IdempotencyKey.key == key, IdempotencyKey.fingerprint == fingerprint,
            IdempotencyKey.status.is_(None))
    if 200 <= response.status_code < 300:
        # The row exists when the operation committed (it was in the same transaction); then keep the answer.
        db.session.execute(sa.update(IdempotencyKey).where(*mine).values(
            status=response.status_code, content_type=response.content_type,
            body=response.get_data(as_text=True)))
    else:
        db.session.execute(sa.delete(IdempotencyKey).where(*mine))  # refused: the key may be used again
    db.session.commit()
    return response


def _replay(user_id: int, key: str, fingerprint: str) -> Response | None:
    """The stored answer for a key already used (waiting while its first request is still running); None
    when the first request gave the key back."""
    deadline = time.monotonic() + REPLAY_WAIT_SECONDS
    while True:
        row = db.session.execute(sa.select(IdempotencyKey.fingerprint, IdempotencyKey.status, IdempotencyKey.content_type,
                                           IdempotencyKey.body).where(IdempotencyKey.user_id == user_id,
                                                                      IdempotencyKey.key == key)).first()
        db.session.rollback()  # a fresh look every time round
        if row is None:
            return None
        if row.fingerprint != fingerprint:
            raise ValidationFailed("该 Idempotency-Key 已用于内容不同的另一请求，请为新的请求使用新的键。",
                                   {IDEMPOTENCY_HEADER: "已用于另一请求"})
        if row.status is not None:
            response = Response(row.body or "", status=row.status, content_type=row.content_type or "application/json")
            response.headers["Idempotent-Replayed"] = "true"
            return response
        if time.monotonic() > deadline:
            raise Conflict("使用同一 Idempotency-Key 的请求正在处理中，请稍后重试。")
        time.sleep(0.05)


@jobs.periodic("evalhub.concurrency_prune", minute="23")
def prune(now=None) -> tuple[int, int]:
    """Forget idempotency keys past their 24 hours and lock rows nobody took for a day."""
    now = now or utcnow()
    keys = db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < now - IDEMPOTENCY_TTL)).rowcount
    locks = db.session.execute(sa.delete(NamedLock.__table__).where(NamedLock.__table__.c.locked_at < now - LOCK_ROWS_KEPT)).rowcount
    return keys, locks


# === unique violations → 409 ======================================================================

GENERIC_UNIQUE = "该记录已经存在（可能是同时提交的另一请求刚刚登记），请刷新页面查看，不要重复提交。"
GENERIC_FOREIGN_KEY = "相关记录刚被他人修改或删除，请刷新页面后重试。"
_UNIQUE_MESSAGES: dict[str, str] = {"user_account": "该用户名已被使用（可能是同时提交的另一请求刚刚注册），请换一个用户名。"}


def unique_message(table: str, message: str) -> None:
    """The Chinese sentence for a unique violation on ``table`` (the module owning the table registers it)."""
    _UNIQUE_MESSAGES[table] = message


def _index_table(name: str) -> str | None:
    return next((table.name for table in db.metadata.tables.values()
                 if any(index.name == name for index in table.indexes)), None)


def _violation(exc: IntegrityError) -> tuple[str, str | None]:
    """("unique" | "foreign_key" | "other", the table when known) for PostgreSQL (psycopg) and SQLite."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate:
        diag = getattr(orig, "diag", None)
        table = getattr(diag, "table_name", None)
        return {"23505": "unique", "23503": "foreign_key"}.get(sqlstate, "other"), table
    text = str(orig)
    name = getattr(orig, "sqlite_errorname", "") or ""
    if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY") or text.startswith("UNIQUE constraint failed"):
        columns = text.split(":", 1)[1].strip() if ":" in text else ""
        if columns.startswith("index "):  # an expression index names itself, not its columns: find its table
            return "unique", _index_table(columns[len("index "):].strip("'\""))
        return "unique", columns.split(".", 1)[0] or None
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY" or text.startswith("FOREIGN KEY constraint failed"):
        return "foreign_key", None
    return "other", None


def conflict_message(exc: IntegrityError) -> str | None:
    """The 409 message for a unique or foreign-key violation; None for anything else (a bug: a 500)."""
    kind, table = _violation(exc)
    if kind == "unique":
        return _UNIQUE_MESSAGES.get(table or "", GENERIC_UNIQUE)
    if kind == "foreign_key":
        return GENERIC_FOREIGN_KEY
    return None


@jobs.explains_failures
def _job_conflict(exc: Exception) -> str | None:
    """A job beaten to a record by another (two clerks importing one expert): the record's own sentence."""
    return conflict_message(exc) if isinstance(exc, IntegrityError) else None


# PostgreSQL gave up one of two transactions waiting on each other (deadlock_detected, serialization_failure):
# nothing of it was written, and the same request a moment later goes through.
RETRYABLE_STATES = {"40P01": "deadlock", "40001": "serialization"}
RETRY_MESSAGE = "与他人同时操作同一记录，本次操作未保存，请稍后重试。"


def retryable(exc: OperationalError) -> bool:
    orig = exc.orig
    return (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)) in RETRYABLE_STATES


def init_app(app: Flask, wants_json: Callable[[], bool], api_error: Callable[..., Any]) -> None:
    """Register the one IntegrityError handler (called from the app's ``_register_error_handlers``, which
    passes how it tells an API request and how the API words an error), and the one for a transaction the
    database gave up in a deadlock: 409, never a 500."""

    @app.errorhandler(OperationalError)
    def operational_error(exc: OperationalError):
        db.session.rollback()
        if not retryable(exc):
            raise exc  # any other database failure is a 500, as before (logged by Flask)
        current_app.logger.warning("事务因并发冲突被数据库中止：%s", exc.orig)
        if wants_json():
            return api_error(409, "conflict", RETRY_MESSAGE)
        return render_template("error.html", status=409, message=RETRY_MESSAGE), 409

    @app.errorhandler(IntegrityError)
    def integrity_error(exc: IntegrityError):
        db.session.rollback()  # nothing half-written
        message = conflict_message(exc)
        status, code = (409, "conflict") if message else (500, "server_error")
        if message is None:
            current_app.logger.error("数据库完整性错误", exc_info=exc)
            message = "服务器内部错误，请稍后再试。"
        if wants_json():
            return api_error(status, code, message)
        return render_template("error.html", status=status, message=message), status
