"""The database connections: psycopg's cursor with a description built only when read, and a pooled connection
checked before use only after it sat idle.

SQLAlchemy reads ``cursor.description`` after every statement, but for a statement whose result columns it has
already cached (every ORM statement after its first run) it only checks that there is one
(``DefaultExecutionContext._setup_result_proxy``). psycopg 3.3 builds a ``Column`` object for every column each
time the description is read (psycopg/psycopg#446; the faster one, psycopg/psycopg#1240, was not merged): on
the engagement page, four statements and 188 columns, ~0.35 ms of a 7 ms request. Here the description is the
same sequence of the same ``Column`` objects, made on first use. Connections of the PostgreSQL engine get this
cursor when they are opened (``_use_lazy_description``); SQLite is untouched.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from time import monotonic
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import Column
from psycopg.pq import ExecStatus

# psycopg's own test (``BaseCursor.description``): a result that has columns, or that said it returned rows
_ROWS = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)


class Description(Sequence):
    """The description of one result: ``Column(cursor, i)`` for each column, made when first read, from the
    result it was taken of (a cursor that has moved on to another result is refused rather than misread)."""

    __slots__ = ("_cursor", "_result", "_columns")

    def __init__(self, cursor: psycopg.Cursor, result: Any) -> None:
        self._cursor, self._result, self._columns = cursor, result, None

    def _made(self) -> list[Column]:
        if self._columns is None:
            if self._cursor.pgresult is not self._result:
                raise psycopg.InterfaceError("the cursor's result changed before its description was read")
            self._columns = [Column(self._cursor, i) for i in range(self._result.nfields)]
        return self._columns

    def __len__(self) -> int:
        return self._result.nfields

    def __getitem__(self, index):  # type: ignore[override]
        return self._made()[index]

    def __iter__(self) -> Iterator[Column]:
        return iter(self._made())

    def __repr__(self) -> str:
        return repr(self._made())


class Cursor(psycopg.Cursor):
    @property
    def description(self) -> Description | None:  # type: ignore[override]
        result = self.pgresult
        if result is not None and (result.nfields or result.status in _ROWS):
            return Description(self, result)
        return None


@sa.event.listens_for(sa.engine.Engine, "connect")
def _use_lazy_description(dbapi_connection, record) -> None:
    if isinstance(dbapi_connection, psycopg.Connection):
        dbapi_connection.cursor_factory = Cursor


_IDLE_SINCE = "evalhub.idle_since"


def ping_after_idle(engine: sa.Engine, seconds: float) -> None:
    """Check a pooled connection with a round trip before a request uses it, but only when it has sat idle in
    the pool for ``seconds`` or more; a dead one (the database restarted, a firewall dropped it) is replaced
    before the request sees it (the pool's documented answer to ``DisconnectionError`` on checkout). SQLAlchemy's
    ``pool_pre_ping`` checked every checkout: a round trip on every request (~0.15 ms of a 5 ms page). A
    connection in steady use has just answered its last request; if the database goes away under load, the
    first failed statement makes the pool replace all its connections."""

    @sa.event.listens_for(engine, "checkin")
    def _note_idle(dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, proxy) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or monotonic() - since < seconds:
            return  # just opened, or just used
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()  # the ping began a transaction (psycopg and sqlite3 alike)
        except Exception as exc:  # noqa: BLE001  (whatever the driver raises, the connection is unusable)
            raise sa.exc.DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
