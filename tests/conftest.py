"""Test fixtures. SQLite by default; PostgreSQL when EVALHUB_TEST_DATABASE_URL is set.

The schema is built once per session; every test starts from empty tables.
"""
from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from evalhub import create_app
from evalhub.extensions import db
from tests import factories

TEST_DATABASE_URL = os.environ.get("EVALHUB_TEST_DATABASE_URL")


def pytest_report_header(config):
    return f"evalhub test database: {'PostgreSQL ' + TEST_DATABASE_URL if TEST_DATABASE_URL else 'SQLite (temporary file)'}"


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("evalhub")
    url = TEST_DATABASE_URL or f"sqlite:///{base / 'test.sqlite3'}"
    app = create_app({
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "WTF_CSRF_ENABLED": False,
        "JOBS_IMMEDIATE": True,
        "FILE_STORE": base / "files",
        "MODELS_DIR": base / "models_ml",
        "SECRET_KEY": "test-secret",
        "FIELD_KEY": "test-field-key",
        "SESSION_COOKIE_SECURE": False,
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "SERVER_NAME": None,
    })
    from evalhub.core import jobs

    app.config["JOBS_IMMEDIATE"] = True
    jobs.configure(app)
    with app.app_context():
        _no_commit_flush(db.engine)
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def _no_commit_flush(engine: sa.Engine) -> None:
    """The test database need not survive a power cut: commits do not wait for the disk (PostgreSQL's
    synchronous_commit, SQLite's synchronous pragma). Locking and isolation are unchanged."""

    @sa.event.listens_for(engine, "connect")
    def _connected(dbapi_connection, _record):
        if engine.dialect.name == "postgresql":
            dbapi_connection.execute("SET synchronous_commit TO off")
            dbapi_connection.commit()
        elif engine.dialect.name == "sqlite":
            dbapi_connection.execute("PRAGMA synchronous = OFF")

    engine.dispose()  # connections opened before the listener (none, normally) are not kept


_PG_EMPTY_SQL: str | None = None


def _pg_empty_sql() -> str:
    """One round trip that empties every table holding rows, children first. As a superuser (the CI and the
    usual local setup) the foreign-key triggers are skipped for this transaction: every table is emptied, so
    there is nothing for them to check, and they were most of the cost. firm and user_account point at each
    other, so that one link is cut first (needed when the triggers do run)."""
    global _PG_EMPTY_SQL
    if _PG_EMPTY_SQL is None:
        names = ", ".join(f"'{t.name}'" for t in reversed(db.metadata.sorted_tables))
        _PG_EMPTY_SQL = f"""DO $$
DECLARE t text; present boolean;
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    SET LOCAL session_replication_role = replica;
  END IF;
  UPDATE firm SET created_by_id = NULL WHERE created_by_id IS NOT NULL;
  FOREACH t IN ARRAY ARRAY[{names}]::text[] LOOP
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM ' || quote_ident(t) || ')' INTO present;
    IF present THEN
      EXECUTE 'DELETE FROM ' || quote_ident(t);
    END IF;
  END LOOP;
END $$"""
    return _PG_EMPTY_SQL


def _empty_all_tables() -> None:
    """Every table empty again, in as few statements as possible (this runs after each of ~1,800 tests):
    PostgreSQL in one DO block; SQLite asks once which tables hold rows and deletes from those alone."""
    db.session.rollback()
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_pg_empty_sql())
    else:
        tables = list(reversed(db.metadata.sorted_tables))  # children first
        quote = connection.dialect.identifier_preparer.quote
        probe = " UNION ALL ".join(f"SELECT {i} FROM (SELECT 1 FROM {quote(t.name)} LIMIT 1)"
                                   for i, t in enumerate(tables))
        holding = sorted(i for (i,) in connection.exec_driver_sql(probe))
        if any(tables[i].name == "firm" for i in holding):
            connection.exec_driver_sql("UPDATE firm SET created_by_id = NULL")
        for i in holding:
            connection.execute(tables[i].delete())
    db.session.commit()
    from evalhub.screening.services import forget_cache

    forget_cache()  # the per-process screening index and models belong to the data just deleted


@pytest.fixture()
def app_ctx(app):
    from evalhub.core import jobs

    # Another app built in the same process (the migrations test) re-points the job queue: take it back.
    jobs.configure(app)
    with app.app_context():
        yield app
        db.session.remove()
        with app.app_context():
            _empty_all_tables()


@pytest.fixture()
def world(app_ctx):
    """Bureaus at every level, budget units, and one user of every role."""
    return factories.make_world()


@pytest.fixture()
def client(app, app_ctx):
    return app.test_client()


@pytest.fixture()
def auth(client):
    """auth(username) → headers carrying a Bearer token for that user (one token per user and test)."""
    cache: dict[str, dict] = {}

    def do(username: str) -> dict:
        if username not in cache:
            response = client.post("/api/v1/tokens", json={"username": username, "password": factories.PASSWORD})
            assert response.status_code == 201, response.get_data(as_text=True)
            cache[username] = {"Authorization": f"Bearer {response.json['token']}"}
        return cache[username]

    return do


@pytest.fixture()
def login(client):
    """login(user) signs the test client in as that user (password from the factories)."""

    def do(user):
        client.post("/logout")
        response = client.post("/login", data={"username": user.username, "password": factories.PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return client

    return do


# A brand-new empty database (a temporary SQLite file, or a fresh PostgreSQL database dropped afterwards) for
# tests that migrate, restore or install from nothing.
@pytest.fixture()
def empty_database_url(tmp_path):
    base = os.environ.get("EVALHUB_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    url = sa.engine.make_url(base)
    name = f"{url.database}_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
