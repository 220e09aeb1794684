"""PostgreSQL connections use evalhub.core.driver's cursor: the same description as psycopg's, made only when read."""
from __future__ import annotations

import os

import psycopg
import pytest
import sqlalchemy as sa

from evalhub.core import driver
from evalhub.core.models import Bureau
from evalhub.extensions import db

pytestmark = pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"),
                                reason="psycopg's cursor: PostgreSQL only")


def _as_tuples(description) -> list[tuple]:
    return [tuple(column) for column in description]


def test_the_description_is_psycopgs_own(app_ctx):
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        assert isinstance(cursor, driver.Cursor)
        cursor.execute("SELECT 1 AS a, 'x'::varchar(5) AS b, now() AS c")
        described = cursor.description
        expected = psycopg.Cursor.description.fget(cursor)
        assert len(described) == 3
        assert _as_tuples(described) == _as_tuples(expected)
        assert [c.name for c in described] == ["a", "b", "c"]
        assert described[1].internal_size == expected[1].internal_size and described[-1].name == "c"
        cursor.execute("SELECT WHERE false")  # no columns, but a result that returns rows: described, empty
        assert cursor.description is not None and len(cursor.description) == 0
        cursor.execute("SET LOCAL statement_timeout = 0")  # returns no rows: no description, as psycopg says
        assert cursor.description is None
    finally:
        raw.rollback()
        raw.close()


def test_a_description_is_read_from_its_own_result(app_ctx):
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT 1 AS a")
        first = cursor.description
        cursor.execute("SELECT 2 AS b, 3 AS c")
        with pytest.raises(psycopg.InterfaceError):
            list(first)  # never the next result's columns under the first one's name
        assert [c.name for c in cursor.description] == ["b", "c"]
    finally:
        raw.rollback()
        raw.close()


def test_a_statement_sqlalchemy_knows_reads_no_columns(app_ctx, monkeypatch):
    made = []
    real = driver.Column

    def counting(cursor, index):
        made.append(index)
        return real(cursor, index)

    monkeypatch.setattr(driver, "Column", counting)
    stmt = sa.select(Bureau).where(Bureau.id == sa.bindparam("id"))
    db.session.execute(stmt, {"id": 0}).scalars().all()  # compiled, its result columns read and cached
    made.clear()
    assert db.session.execute(stmt, {"id": 0}).scalars().all() == []
    assert made == []  # a second run: SQLAlchemy asks only whether there is a description
    # a textual statement is described by the cursor every time, and its columns are right
    assert db.session.execute(sa.text("SELECT 7 AS seven, 'x' AS ex")).mappings().one() == {"seven": 7, "ex": "x"}
    assert made == [0, 1]


def test_a_pooled_connection_that_died_while_idle_is_replaced_before_use(app_ctx, monkeypatch):
    """``ping_after_idle``: a connection that sat idle in the pool is checked before it is handed out, and one the
    database dropped (a restart, a firewall) is replaced, unseen by the request; one just checked in is handed
    out unchecked (no round trip per request) — which is why a connection dropped the moment it came back does
    fail its next statement."""
    engine = sa.create_engine(db.engine.url, pool_size=1, max_overflow=0)
    driver.ping_after_idle(engine, 2)
    plain = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    clock = [1000.0]
    monkeypatch.setattr(driver, "monotonic", lambda: clock[0])

    def backend() -> int:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()

    def drop(pid: int) -> None:
        with psycopg.connect(plain, autocommit=True) as other:
            assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]

    try:
        first = backend()
        drop(first)
        clock[0] += 2.5  # idle past the threshold: checked, found dead, replaced
        second = backend()
        assert second != first
        drop(second)
        clock[0] += 0.5  # just used: handed out as it is, and the dropped connection fails
        with pytest.raises(sa.exc.OperationalError):
            backend()
    finally:
        engine.dispose()
