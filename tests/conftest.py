"""Test fixtures. SQLite by default; PostgreSQL when EVALHUB_TEST_DATABASE_URL is set.

The schema is built once per session; every test starts from empty tables. The ``world`` is built through
the factories once, then put back from its saved rows before each test that asks for it.
"""
from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from evalhub import create_app
from evalhub.extensions import db
from tests import factories, kept_states

TEST_DATABASE_URL = os.environ.get("EVALHUB_TEST_DATABASE_URL")


def pytest_report_header(config):
    return f"evalhub test database: {'PostgreSQL ' + TEST_DATABASE_URL if TEST_DATABASE_URL else 'SQLite (temporary file)'}"


# Fixtures through which a test reaches a database: ``app`` (the test database; ``world``, ``client`` and the rest
# depend on it) and ``empty_database_url`` (a new one).
DATABASE_FIXTURES = {"app", "empty_database_url"}


def pytest_collection_modifyitems(config, items):
    """``make test`` runs SQLite and PostgreSQL at once, and sets EVALHUB_DATABASE_TESTS_ONLY=1 for the PostgreSQL
    run: there a test that reaches no database (pure rules, text features, the import layers) is skipped, as it
    runs in the SQLite run beside it and a second run on the same code proves nothing more. So are the browser
    tests (tests/e2e): what they add is the page as a browser runs it (scripts, forms, the content policy), the
    same on either database, and the rules and queries behind each of their steps run on PostgreSQL in the view,
    API and service tests. They were a sixth of the PostgreSQL run, the longer of the two."""
    if os.environ.get("EVALHUB_DATABASE_TESTS_ONLY") != "1":
        return
    skip = pytest.mark.skip(reason="reaches no database: run once, in the SQLite run (EVALHUB_DATABASE_TESTS_ONLY)")
    browser = pytest.mark.skip(reason="browser test: run once, in the SQLite run (EVALHUB_DATABASE_TESTS_ONLY)")
    for item in items:
        if not DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)
        elif item.nodeid.startswith("tests/e2e/"):
            item.add_marker(browser)


def pytest_collection_finish(session):
    """The collector's work: what was imported and built to collect (modules, the models, hypothesis' and
    schemathesis' tables) lives until the run ends, and the run's heap grows to ~2 million objects, which Python's
    full collections walked again and again (about 9 % of a run, most of it in ~50 full passes). Frozen, the
    collector no longer walks them; the young generation is collected every 50,000 allocations instead of 700. The
    tests' own objects are still collected. Measured on tests/test_[a-m]*.py, both runs side by side: 339 s, 31 s in
    the collector → 321 s, 12 s."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


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
        for saved, _ids in _WORLDS.values():
            drop_saved_database(saved)
        _WORLDS.clear()
        for saved, _ref, _blobs in kept_states._KEPT.values():
            drop_saved_database(saved)
        kept_states._KEPT.clear()
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
    _TABLES_EMPTY[0] = True
    from evalhub.screening.services import forget_cache

    forget_cache()  # the per-process screening index and models belong to the data just deleted


# True from the end of _empty_all_tables until this process runs a statement other than a SELECT on any engine:
# the ``world`` fixture then knows the tables are empty without asking each of them (_holding_tables, a probe of
# every table: ~14 ms on PostgreSQL, about 40% of the fixture's own time).
_TABLES_EMPTY = [False]


@sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
def _maybe_written(_conn, _cursor, statement, _params, _context, _many):
    if _TABLES_EMPTY[0] or kept_states.STATE[0] is not None:
        head = statement.lstrip()[:6].upper()
        if head != "SELECT":
            _TABLES_EMPTY[0] = False
        if head != "SELECT" or "nextval(" in statement or "setval(" in statement:
            kept_states.STATE[0] = None


def save_database(name: str) -> str:
    """Keep the rows every table holds now, to be put back by ``restore_database`` (a world built once and
    restored before each of many runs): SQLite copies its file, PostgreSQL copies the tables holding rows
    into the schema ``snapshot_<name>``. Ids are kept; new rows take the ids after the restored ones."""
    db.session.commit()
    if db.engine.dialect.name == "sqlite":
        import shutil

        db.session.remove()
        db.engine.dispose()
        path = f"{db.engine.url.database}.{name}"
        shutil.copyfile(db.engine.url.database, path)
        return path
    schema = f"snapshot_{name}"
    holding = _holding_tables()  # parents first, the order the rows go back in
    connection = db.session.connection()
    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
    for t in holding:
        connection.exec_driver_sql(f'CREATE TABLE "{schema}"."{t}" AS SELECT * FROM "{t}"')
    db.session.commit()
    return schema + ":" + ",".join(holding)


def restore_database(saved: str, *, emptied: bool = False) -> None:
    """Every table as ``save_database`` found it (other rows deleted; ``emptied``: there are none)."""
    from evalhub.screening.services import forget_cache

    db.session.remove()
    if db.engine.dialect.name == "sqlite":
        import shutil

        db.engine.dispose()
        shutil.copyfile(saved, db.engine.url.database)
    else:
        if not emptied:
            _empty_all_tables()
        db.session.connection().exec_driver_sql(SKIP_KEY_CHECKS + refill_sql(saved))
        db.session.commit()
    forget_cache()


# The rows put back were consistent when saved, so the foreign-key triggers are skipped (as a superuser) like in
# _pg_empty_sql, for the transaction.
SKIP_KEY_CHECKS = ("DO $$ BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN "
                   "SET LOCAL session_replication_role = replica; END IF; END $$; ")


def refill_sql(saved: str) -> str:
    """PostgreSQL: the statements that copy ``save_database``'s rows back into their (empty) tables, in one round
    trip. The ids of new rows follow the restored ones, as on SQLite (an audit chain without a gap of ids, as a
    test that builds its world would have)."""
    schema, _, names = saved.partition(":")
    tables = [t for t in names.split(",") if t]
    inserts = "".join(f'INSERT INTO "{t}" SELECT * FROM "{schema}"."{t}"; ' for t in tables)
    counters = "".join(f"""SELECT setval(pg_get_serial_sequence('"{t}"', 'id'), max(id)) FROM "{t}"; """
                       for t in tables if "id" in db.metadata.tables[t].c)
    return inserts + counters


def drop_saved_database(saved: str) -> None:
    db.session.remove()
    if db.engine.dialect.name == "sqlite":
        os.remove(saved)
    else:
        with db.engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{saved.partition(":")[0]}" CASCADE')


@pytest.fixture()
def app_ctx(app):
    from evalhub.core import jobs

    # Another app built in the same process (the migrations test) re-points the job queue: take it back.
    jobs.configure(app)
    with app.app_context():
        yield app
        kept_states.WORLD[0] = kept_states.STATE[0] = kept_states.MONKEYPATCH[0] = None
        db.session.remove()
        with app.app_context():
            _empty_all_tables()


@pytest.fixture()
def world(app_ctx, request):
    """Bureaus at every level, budget units, and one user of every role: built by ``factories.make_world``
    for the first test, then put back from its saved rows (same ids, same audit chain) for every later one.
    The world so restored is what the kept factory states (tests/kept_states.py) start from."""
    key = str(db.engine.url)
    saved = _WORLDS.get(key)
    if saved is not None and (_TABLES_EMPTY[0] or not _holding_tables()):
        restore_database(saved[0], emptied=True)
        return _untouched(_load_world(saved[1]), request)
    empty = saved is None and not _holding_tables()
    w = factories.make_world()
    if empty:  # nothing but the world in the tables: safe to keep as the world's rows
        ids = _world_ids(w)
        _WORLDS[key] = (save_database("world"), ids)
        w = _untouched(_load_world(ids), request)
    return w


def _untouched(w, request):
    kept_states.MONKEYPATCH[0] = request.getfixturevalue("monkeypatch") if "monkeypatch" in request.fixturenames else None
    kept_states.WORLD[0] = (w, kept_states.world_as_given(w))
    kept_states.STATE[0] = ("world", kept_states._tables(_WORLDS[str(db.engine.url)][0]))
    return w


_WORLDS: dict[str, tuple[str, dict]] = {}  # database URL → (save_database's answer, attribute → (model, id))


def _holding_tables() -> list[str]:
    """The names of the tables holding any row, parents first; one statement."""
    tables, connection = db.metadata.sorted_tables, db.session.connection()
    quote = connection.dialect.identifier_preparer.quote
    probe = " UNION ALL ".join(f"SELECT {i} FROM (SELECT 1 FROM {quote(t.name)} LIMIT 1) AS t{i}"
                               for i, t in enumerate(tables))
    return [tables[i].name for i in sorted(i for (i,) in connection.exec_driver_sql(probe))]


def _world_ids(w) -> dict:
    def ref(obj):
        return (type(obj), obj.id)

    return {name: ({k: ref(v) for k, v in value.items()} if isinstance(value, dict) else ref(value))
            for name, value in vars(w).items()}


def _load_world(ids: dict):
    """The world's objects by id, expired and out of any transaction, as make_world leaves them."""
    from types import SimpleNamespace

    wanted: dict[type, set[int]] = {}
    for value in ids.values():
        for model, id_ in (value.values() if isinstance(value, dict) else [value]):
            wanted.setdefault(model, set()).add(id_)
    loaded = {(model, o.id): o for model, id_set in wanted.items()
              for o in db.session.execute(sa.select(model).where(model.id.in_(id_set))).scalars()}
    db.session.commit()
    return SimpleNamespace(**{name: ({k: loaded[v] for k, v in value.items()} if isinstance(value, dict)
                                     else loaded[value]) for name, value in ids.items()})


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
    """login(user) puts the test client in a session of that user, as a sign-in leaves it (Flask-Login's keys, the
    "id:generation" the user loader checks), without going through the sign-in form: the form's own path (its
    counters, audit events, second factor, rate limit) is tested by the tests that post /login themselves, and the
    thousands of other tests need only the session. As the form would, it refuses an account that cannot sign in
    (disabled, or awaiting activation). The previous user's session ends on the server, as ``/logout`` ends it; a
    second-factor account is signed in fully (the form would stop at the code)."""
    from flask import g, has_app_context

    from evalhub.core.models import User
    from evalhub.core.services import end_session, session_user
    from evalhub.extensions import login_manager

    def do(user):
        with client.session_transaction() as sess:
            previous = sess.get("_user_id")
        if previous and (ending := session_user(previous)) is not None:
            end_session(ending)
            db.session.commit()
        generation, enabled, password_hash = db.session.execute(sa.select(
            User.session_generation, User.is_enabled, User.password_hash).where(User.id == user.id)).one()
        assert enabled and password_hash != "!", f"{user.username} cannot sign in (disabled or awaiting activation)"
        with client.session_transaction() as sess:  # Flask-Login's keys, as ``login_user`` writes them
            sess.clear()
            sess["_user_id"] = f"{user.id}:{generation}"  # ``User.get_id``, as the database has it now
            sess["_fresh"] = True
            with client.application.test_request_context(environ_base=client.environ_base):
                sess["_id"] = login_manager._session_identifier_generator()  # this client's address and agent
        if has_app_context():
            g.pop("_login_user", None)  # the test's app context outlives requests: Flask-Login's cached user goes
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
