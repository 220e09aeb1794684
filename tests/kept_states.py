"""States built by the factories once, put back from their saved rows for later tests (PostgreSQL).

``world`` is built once and restored before each test; most tests then walk the same services again to reach
the same starting point (an engagement contracted, in fieldwork, accepted…): the single-source approval, the
contract, a work-plan panel and its reviews, on every test. A factory marked ``@kept`` does that walk for real
the first time its arguments are seen, commits, and keeps the rows every table then holds (``conftest.
save_database``) with the blobs of their stored files; a later test calling it with the same arguments on the
untouched world gets those rows back in one round trip (same ids, same audit chain, the blobs back in the store)
and the object it returned, read again by id.

Only on the world as the ``world`` fixture restored it — nothing written since by any session or request, nothing
waiting in the session, nothing monkeypatched by the test — and only in the main thread: anywhere else (a second
call in the same test, a state built on another) the factory runs as written. The state is committed on return
either way (first build or restore), as a test that commits after its factory sees it. The walks themselves are
tested by the tests that drive the services and pages step by step, not through these factories' shortcuts.
"""
from __future__ import annotations

import functools
import threading

import sqlalchemy as sa

from evalhub.extensions import db

# The world as the ``world`` fixture returned it, while nothing has been written since (conftest._maybe_written
# clears it at any statement that may write); the test's monkeypatch fixture, if it asked for one.
PRISTINE: list = [None]
MONKEYPATCH: list = [None]

# key → (save_database's answer, the returned object's (model, id), {sha256: blob bytes})
_KEPT: dict[tuple, tuple[str, tuple, dict[str, bytes]]] = {}
_NAMES = iter(range(1, 10**9))
STATS = {"hit": 0, "miss": 0, "bypass": 0}


def _untouched(w) -> bool:
    if PRISTINE[0] is None or PRISTINE[0] is not w or threading.current_thread() is not threading.main_thread():
        return False
    if db.engine.dialect.name != "postgresql":
        return False
    session = db.session()
    if session.new or session.dirty or session.deleted:
        return False
    from evalhub.core import audit, files, jobs, summaries

    if any(session.info.get(k) for k in (audit._PENDING, files._PENDING, jobs._AFTER_COMMIT, summaries._PENDING)):
        return False
    mp = MONKEYPATCH[0]
    if mp is not None and (mp._setattr or mp._setitem or mp._cwd is not None or mp._savesyspath is not None):
        return False
    return True


def _ref(value):
    if hasattr(value, "__table__") and hasattr(value, "id"):
        return (type(value).__name__, value.id)
    if isinstance(value, (str, int, float, bool, type(None))) or hasattr(value, "value"):
        return repr(value)
    raise TypeError(value)


def _key(fn, args, kw) -> tuple | None:
    from flask import current_app

    from evalhub.core.timeutil import beijing_date, utcnow

    try:
        parts = tuple(_ref(a) for a in args) + tuple(sorted((k, _ref(v)) for k, v in kw.items()))
    except TypeError:
        return None
    config = hash(repr(sorted((k, repr(v)) for k, v in current_app.config.items())))
    return (fn.__qualname__, parts, str(db.engine.url), config, beijing_date(utcnow()))


def kept(fn):
    """Mark a factory ``fn(w, *args, **kw)`` returning one row as a state kept after its first build (see above)."""

    @functools.wraps(fn)
    def wrapper(w, *args, **kw):
        if not _untouched(w) or (key := _key(fn, args, kw)) is None:
            STATS["bypass"] += 1
            return fn(w, *args, **kw)
        saved = _KEPT.get(key)
        if saved is None:
            STATS["miss"] += 1
            result = fn(w, *args, **kw)
            db.session.commit()
            _KEPT[key] = _save(result)
            return result
        STATS["hit"] += 1
        return _restore(*saved)

    return wrapper


def _save(result) -> tuple[str, tuple, dict[str, bytes]]:
    from evalhub.core import files
    from evalhub.core.models import StoredFile

    from tests.conftest import save_database

    blobs = {sha: files._final_path(sha).read_bytes() for (sha,) in db.session.execute(sa.select(StoredFile.sha256))}
    saved = save_database(f"kept_{next(_NAMES)}")
    return saved, (type(result), result.id), blobs


def _restore(saved: str, ref: tuple, blobs: dict[str, bytes]):
    """The saved rows in place of the world's, committed, in the test's own session (its objects stay usable)."""
    from evalhub.core import files
    from evalhub.screening.services import forget_cache

    for sha, data in blobs.items():  # a blob another test removed from the store comes back
        path = files._final_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    schema, _, names = saved.partition(":")
    tables = [t for t in names.split(",") if t]
    from tests.conftest import _WORLDS

    world_tables = [t for t in _WORLDS[str(db.engine.url)][0].partition(":")[2].split(",") if t]
    deletes = "".join(f'DELETE FROM "{t}"; ' for t in reversed(world_tables))
    inserts = "".join(f'INSERT INTO "{t}" SELECT * FROM "{schema}"."{t}"; ' for t in tables)
    counters = "".join(f"""SELECT setval(pg_get_serial_sequence('"{t}"', 'id'), max(id)) FROM "{t}"; """
                       for t in tables if "id" in db.metadata.tables[t].c)
    connection = db.session.connection()
    connection.exec_driver_sql(
        "DO $$ BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN "
        "SET LOCAL session_replication_role = replica; END IF; END $$; "
        "UPDATE firm SET created_by_id = NULL WHERE created_by_id IS NOT NULL; " + deletes + inserts + counters)
    db.session.commit()  # ends the replica role too: the test's own writes are checked as always
    forget_cache()
    model, id_ = ref
    return db.session.get(model, id_)
