"""States built by the factories once, put back from their saved rows for later tests (PostgreSQL).

``world`` is built once and restored before each test; most tests then walk the same services again to reach
the same starting point (an engagement contracted, in fieldwork, accepted…; a module's scene fixture): the
single-source approval, the contract, a work-plan panel and its reviews, on every test. A factory or fixture marked
``@kept`` does that walk for real the first time it is called with its arguments on a given state, commits, and
keeps the rows every table then holds (``conftest.save_database``) with the blobs of their stored files; a later
test making the same call on the same state gets those rows back in one round trip (same ids, same audit chain, the
blobs back in the store), what the call returned read again by id, and the world's names it re-pointed pointed again.

A state is the world as the ``world`` fixture restored it, or a kept state restored or built on it, with nothing
written since by any session or request, nothing waiting in the session and nothing monkeypatched by the test; only
in the main thread. Anywhere else (after the test wrote, inside a thread, in a test that patches) the factory runs
as written. The state is committed on return either way (first build or restore), as a test that commits after its
factory sees it. The walks themselves are tested by the tests that drive the services and pages step by step, not
through these factories' shortcuts. SQLite runs every factory as written.
"""
from __future__ import annotations

import copy
import enum
import functools
import inspect
import threading
import types

import sqlalchemy as sa

from evalhub.extensions import db

# The world as the ``world`` fixture returned it (with ``world_as_given``); the state the tables are in — ("world", its tables) after the
# fixture, (key, tables) after a kept state — while nothing has been written since (conftest._maybe_written
# clears it at any statement that may write); the test's monkeypatch fixture, if it asked for one.
WORLD: list = [None]
STATE: list = [None]
MONKEYPATCH: list = [None]
LIMIT = 400  # states kept at most (each is a schema of a few dozen small tables)

# key → (save_database's answer, (the returned value's _result_ref, the world's names changed), {sha256: blob})
_KEPT: dict[tuple, tuple[str, object, dict[str, bytes]]] = {}
_NAMES = iter(range(1, 10**9))
STATS = {"hit": 0, "miss": 0, "bypass": 0}
BY_FN: dict[str, list[int]] = {}  # name → [first builds, restores, run inside another's first build]
_BUILDING = [False]


def world_as_given(w) -> tuple:
    """Which objects the world's names point at (a test may point one at another object without writing)."""
    return tuple((name, id(v), tuple((k, id(x)) for k, x in v.items()) if isinstance(v, dict) else ())
                 for name, v in vars(w).items())


def _untouched() -> bool:
    if STATE[0] is None or db.engine.dialect.name != "postgresql" or threading.current_thread() is not threading.main_thread():
        return False
    if WORLD[0] is None or world_as_given(WORLD[0][0]) != WORLD[0][1]:
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
    if value is WORLD[0][0]:
        return "world"
    if hasattr(value, "__table__"):
        identity = sa.inspect(value).identity  # without loading an expired row
        if identity is None or len(identity) != 1:
            raise TypeError(value)
        return (type(value), identity[0])
    if isinstance(value, (str, int, float, bool, type(None), enum.Enum)):
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
    return (STATE[0][0], fn.__module__, fn.__qualname__, parts, str(db.engine.url), config, beijing_date(utcnow()))


def kept(fn):
    """Mark a factory (or a fixture) whose effect is rows and their blobs, returning rows, plain data or None, as a
    state kept after its first build (see above)."""

    assert not inspect.isgeneratorfunction(fn), f"{fn.__name__}: a yielding fixture cannot be kept"

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        if not _untouched() or (key := _key(fn, args, kw)) is None:
            STATS["bypass"] += 1
            return fn(*args, **kw)
        BY_FN.setdefault(fn.__name__, [0, 0, 0])[2 if key not in _KEPT and _BUILDING[0] else key in _KEPT] += 1
        saved = _KEPT.get(key)
        if saved is None and _BUILDING[0]:  # inside another kept factory's first build: that one is kept
            STATS["bypass"] += 1
            return fn(*args, **kw)
        if saved is None:
            STATS["miss"] += 1
            w = WORLD[0][0]
            before = {name: (v, dict(v) if isinstance(v, dict) else None) for name, v in vars(w).items()}
            _BUILDING[0] = True
            try:
                result = fn(*args, **kw)
            finally:
                _BUILDING[0] = False
            db.session.commit()
            ref, names = _result_ref(result), _world_changes(w, before)
            if len(_KEPT) < LIMIT and ref is not None and names is not None:
                _KEPT[key] = _save(ref, names)
                STATE[0] = (key, _tables(_KEPT[key][0]))
            WORLD[0] = (w, world_as_given(w))
            return result
        STATS["hit"] += 1
        return _restore(key, *saved)

    return wrapper


_PLAIN = (str, int, float, bool, type(None))


def _plain(value) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_plain(v) for v in value)
    return isinstance(value, dict) and all(_plain(k) and _plain(v) for k, v in value.items())


def _result_ref(result):
    """How to find the returned value again: plain data (a fixture's ids and names), the world, a row by id, or a
    tuple, list, dict or namespace of those; None if it cannot be found again."""
    try:
        if _plain(result):
            return ("plain", copy.deepcopy(result))
        if result is WORLD[0][0]:
            return ("world",)
        if isinstance(result, (tuple, list)):
            return ("seq", type(result), [_result_ref(r) or _fail() for r in result])
        if isinstance(result, dict):
            return ("dict", type(result), {k: _result_ref(v) or _fail() for k, v in result.items()})
        if isinstance(result, types.SimpleNamespace):
            return ("dict", types.SimpleNamespace, {k: _result_ref(v) or _fail() for k, v in vars(result).items()})
        if hasattr(result, "__table__"):
            return ("row",) + _ref(result)
    except TypeError:
        pass
    return None


def _fail():
    raise TypeError


def _found(ref):
    kind = ref[0]
    if kind == "plain":
        return copy.deepcopy(ref[1])
    if kind == "seq":
        return ref[1](_found(r) for r in ref[2])
    if kind == "dict":
        return ref[1](**{k: _found(r) for k, r in ref[2].items()}) if ref[1] is types.SimpleNamespace \
            else ref[1]((k, _found(r)) for k, r in ref[2].items())
    if kind == "world":
        return WORLD[0][0]
    return db.session.get(ref[1], ref[2])


def _world_changes(w, before: dict) -> dict | None:
    """The world's names the build pointed at new objects (a fixture adding its rows to the world), as
    ``_result_ref``s; None if one of them cannot be found again."""
    changed = {}
    for name, value in vars(w).items():
        old, old_items = before.get(name, (None, None))
        if value is old and (old_items is None or old_items == value):
            continue
        if isinstance(value, dict) and value is old:  # w.units with new units: the dict, its new entries
            items = {k: _result_ref(v) for k, v in value.items() if old_items.get(k) is not v}
            if any(r is None for r in items.values()):
                return None
            changed[name] = ("items", items)
            continue
        changed[name] = _result_ref(value)
        if changed[name] is None:
            return None
    return changed


def _tables(saved: str) -> list[str]:
    return [t for t in saved.partition(":")[2].split(",") if t]


def _save(ref, names: dict) -> tuple[str, tuple, dict[str, bytes]]:
    from evalhub.core import files
    from evalhub.core.models import StoredFile

    from tests.conftest import save_database

    blobs = {sha: files._final_path(sha).read_bytes() for (sha,) in db.session.execute(sa.select(StoredFile.sha256))}
    saved = save_database(f"kept_{next(_NAMES)}")
    return saved, (ref, names), blobs


def _restore(key, saved: str, refs: tuple, blobs: dict[str, bytes]):
    """The saved rows in place of the current state's, committed, in the test's own session (its objects stay
    usable: same ids)."""
    from evalhub.core import files
    from evalhub.screening.services import forget_cache

    for sha, data in blobs.items():  # a blob another test removed from the store comes back
        path = files._final_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    from tests.conftest import SKIP_KEY_CHECKS, refill_sql

    deletes = "".join(f'DELETE FROM "{t}"; ' for t in reversed(STATE[0][1]))
    db.session.connection().exec_driver_sql(
        SKIP_KEY_CHECKS + "UPDATE firm SET created_by_id = NULL WHERE created_by_id IS NOT NULL; " + deletes
        + refill_sql(saved))
    db.session.commit()  # ends the replica role too: the test's own writes are checked as always
    forget_cache()
    STATE[0] = (key, _tables(saved))
    ref, names = refs
    w = WORLD[0][0]
    for name, r in names.items():
        if r[0] == "items":
            getattr(w, name).update({k: _found(v) for k, v in r[1].items()})
        else:
            setattr(w, name, _found(r))
    WORLD[0] = (w, world_as_given(w))
    return _found(ref)
