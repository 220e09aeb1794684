"""The one place that answers "may this user do this to that object" and "which rows may this user see".

Organisation scope:
- the region sees everything; a prefecture sees itself and its counties; a county sees itself only;
- a bureau *changes* only its own records (an upper bureau supervises, it does not edit a lower
  bureau's library);
- an upper bureau's firm library and expert pool are usable by (so visible to) its lower bureaus;
- a firm user sees its own firm; an expert sees their own record.
Views and the API call ``require`` / ``scope`` and never filter by hand.
"""
from __future__ import annotations

import functools
import weakref
from typing import Any, Callable, Hashable, Optional

import psycopg
import psycopg.adapt
import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Select

from evalhub.core import bureau_tree, settings, sqljson
from evalhub.core.enums import Authority, BureauLevel, Role
from evalhub.core.errors import PermissionDenied
from evalhub.core.models import (
    ApiToken, AuditEvent, Bureau, BudgetUnit, BureauSetting, Draw, Job, Notification, User,
)
from evalhub.extensions import db

BUREAU_ROLES = (Role.BUREAU_ADMIN, Role.BUREAU_STAFF)


# --- organisation scope ----------------------------------------------------------------------------

_SUBTREES = "evalhub.subtrees"
_TREE_ROWS = "evalhub.tree_rows"  # the ORM bureaus ``load_tree`` read, held: the session's identity map is weak
_UNREAD = "evalhub.unread"  # {user id: unread notifications}, read by ``load_user`` with the account
_VISIBLE = "evalhub.visible"  # {(user id, model, row id): (answer, writes)}: ``visible``'s answers from the database


@sa.event.listens_for(Session, "after_commit")
@sa.event.listens_for(Session, "after_rollback")
def _forget_subtrees(session: Session) -> None:
    session.info.pop(_SUBTREES, None)
    session.info.pop(_TREE_ROWS, None)
    session.info.pop(_UNREAD, None)
    session.info.pop(_VISIBLE, None)


_writes = [0]  # statements other than a SELECT this process has run: a held count holds while this stays put


@sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
def _count_writes(conn, cursor, statement, parameters, context, executemany) -> None:
    # Any write (a flush storing a notification, 全部标为已读's bulk UPDATE) makes the held unread count stale.
    # An engine event, not the ORM's do_orm_execute, which costs every statement several times as much.
    if not statement.lstrip()[:7].upper().startswith("SELECT "):
        _writes[0] += 1


def subtree_ids(bureau: Bureau) -> set[int]:
    """The bureau and every bureau below it. Read once per bureau and database transaction: a page scopes
    several queries and checks several rows, and the tree does not change under it (a commit or rollback
    forgets the copy, so a bureau created by an import is seen at once)."""
    cache = db.session.info.setdefault(_SUBTREES, {})
    key = (bureau.id, bureau.path)
    if key not in cache and bureau.id is not None:
        load_tree(bureau.id)
    if key not in cache:  # a bureau not stored yet, or moved in this transaction: by its own path
        cache[key] = frozenset(db.session.execute(
            sa.select(Bureau.id).where(Bureau.path.startswith(bureau.path))).scalars())
    return set(cache[key])


@functools.cache
def _tree_statement(dialect: str) -> Select:
    """``load_tree``'s statement, built once per dialect: it runs on every page of a bureau user, and building
    the aliased join anew cost more than running it (SQLAlchemy adapts each aliased column per build)."""
    me = aliased(Bureau)
    return sa.select(Bureau, _below(dialect, me)).join(me, me.path.startswith(Bureau.path)) \
        .where(me.id == sa.bindparam("tree_bureau_id"))


def load_tree(bureau_id: int) -> Bureau | None:
    """One statement for what a bureau user's request reads of the tree: the bureau and the bureaus above it
    as ORM objects (so ``bureau.parent`` and the walks up read no more rows), and every bureau below it as a
    plain row (``bureau_tree``; ``subtree_ids``'s copy for this transaction). Returns the bureau (None if there
    is none)."""
    rows = db.session.execute(_tree_statement(db.engine.dialect.name), {"tree_bureau_id": bureau_id}).all()
    return _hold_tree(rows, 1, bureau_id)


def _hold_tree(rows: list, below_at: int, bureau_id: int) -> Bureau | None:
    """Keep a bureau's tree for this transaction — ``rows`` carry the ORM bureau (the bureau and those above it)
    first and, on the bureau's own row, column ``below_at``: ``_below``'s list — as ``bureau_tree`` rows, the ORM
    bureaus in the session, and the subtree's ids (``subtree_ids``); returns the bureau itself, if among them."""
    objects = [row[0] for row in rows if row[0] is not None]
    db.session.info.setdefault(_TREE_ROWS, []).extend(objects)
    mine = next((row for row in rows if row[0] is not None and row[0].id == bureau_id), None)
    if mine is None:
        return None
    below = [bureau_tree.TreeBureau(i, code, name, short, BureauLevel(level), parent, path)
             for i, code, name, short, level, parent, path, _ in mine[below_at] or ()]
    bureau_tree.hold([bureau_tree.TreeBureau(*(getattr(b, c) for c in bureau_tree.TreeBureau.__slots__))
                      for b in objects] + below)
    db.session.info.setdefault(_SUBTREES, {})[(bureau_id, mine[0].path)] = frozenset(
        [bureau_id, *(b.id for b in below)])
    return mine[0]


def _own_settings(dialect: str, bureau: Any) -> sa.ScalarSelect:
    """Each tree bureau's own settings as one JSON object ({key: value}; NULL when it set none), correlated to
    ``bureau`` (``Bureau`` or an alias): a page's settings then read no rows of their own, and a bureau adds one
    value to what is read, not one row per setting (the region's 99 bureaus × up to 50 settings)."""
    if dialect == "postgresql":
        agg = sa.func.json_object_agg(BureauSetting.key, BureauSetting.value)
    else:  # SQLite keeps JSON as text: json() so a list stays a list, not a quoted string
        agg = sa.func.json_group_object(BureauSetting.key, sa.func.json(BureauSetting.value))
    return sa.select(sa.type_coerce(agg, sa.JSON)).where(BureauSetting.bureau_id == bureau.id).scalar_subquery()


def _below(dialect: str, me: Any) -> sa.ColumnElement:
    """Every bureau below ``me`` (an alias of ``Bureau``) as one JSON list of [id, code, name, short name, level,
    parent id, path, own settings], on ``me``'s own row only (NULL on the rows above it). One value, not a row and
    an ORM object per bureau: the region's admin (98 bureaus below) is read in 1.6 ms instead of 2.1 (``load_user``
    with its commit, province scale); a prefecture's admin (9 below) in 0.97 instead of 0.86, the JSON costing
    PostgreSQL a little more than the rows did."""
    b = aliased(Bureau)
    columns = (b.id, b.code, b.name, b.short_name, b.level, b.parent_id, b.path)
    own = _own_settings(dialect, b)
    # SQLite: the settings' text as JSON (json()), not as a quoted string
    agg = sqljson.array_of_rows(dialect, *columns, own if dialect == "postgresql" else sa.func.json(own))
    below = sa.select(sa.type_coerce(agg, sa.JSON)).where(b.path.startswith(me.path), b.id != me.id).scalar_subquery()
    return sa.case((Bureau.id == me.id, below))


# Where ``_with_tree``'s rows carry what follows the ORM bureau: its settings, the bureaus below (``_below``), the
# account, and the token or the unread count.
_SETTINGS_AT, _BELOW_AT, _ACCOUNT_AT, _EXTRA_AT = range(1, 5)


def _with_tree(stmt: Select, dialect: str, account: Any, token: Any = None) -> Select:
    """``stmt`` (which reads ``User``, and ``ApiToken`` if ``token`` is given) as the rows of the account's bureau
    and those above it, one row each — the ORM bureau, its own settings, and on the account's bureau's row the
    bureaus below (``_below``) — or one row with no bureau for an account without one; then the account and
    token, the aliases ``account`` and ``token`` of the tables ``stmt`` reads, joined to one row only (its own
    bureau's, or the bureau-less one), so the ORM reads them once, not once per bureau."""
    me = aliased(Bureau)
    first = sa.or_(Bureau.id.is_(None), Bureau.id == me.id)
    # The key is NULL on every other row, so PostgreSQL looks the account up once, not once per bureau.
    stmt = stmt.with_only_columns(Bureau, _own_settings(dialect, Bureau), _below(dialect, me), account,
                                  *([token] if token is not None else []), maintain_column_froms=True) \
        .outerjoin(me, sa.and_(me.id == User.bureau_id, User.role.in_(BUREAU_ROLES))) \
        .outerjoin(Bureau, me.path.startswith(Bureau.path)) \
        .outerjoin(account, account.id == sa.case((first, User.id)))
    if token is not None:
        stmt = stmt.outerjoin(token, token.id == sa.case((first, ApiToken.id)))
    return stmt


@functools.cache
def _user_tree_statement(dialect: str) -> Select:
    """``load_user``'s statement, built once per dialect: the account with its tree (``_with_tree``), and the
    account's unread notifications (the navigation's badge on every page) beside it."""
    account = aliased(User)
    unread = sa.select(sa.func.count(Notification.id)).where(
        Notification.user_id == account.id, Notification.read_at.is_(None)).scalar_subquery()
    return _with_tree(sa.select(User), dialect, account) \
        .add_columns(sa.case((account.id.is_not(None), unread))) \
        .where(User.id == sa.bindparam("tree_user_id"))


@functools.cache
def _token_tree_statement(dialect: str) -> Select:
    """``load_token``'s statement: an API token with its account and the account's tree (no unread count: the
    API shows no badge)."""
    token, account = aliased(ApiToken), aliased(User)
    stmt = _with_tree(sa.select(ApiToken).join(User, User.id == ApiToken.user_id), dialect, account, token)
    return stmt.where(ApiToken.token_hash == sa.bindparam("tree_token_hash"))


def _account_row(rows: list) -> Any:
    """The one row of ``_with_tree``'s that carries the account."""
    return next(row for row in rows if row[_ACCOUNT_AT] is not None)


def _hold_account(user: User, rows: list) -> None:
    """Keep what ``_with_tree`` read with ``user`` for this transaction: the tree (``load_tree``'s copy) and every
    tree bureau's own settings (``settings.get_setting``)."""
    if rows[0][0] is not None and user.role in BUREAU_ROLES:
        own = {row[0].id: row[_SETTINGS_AT] or {} for row in rows}
        for row in rows:
            own.update((b[0], b[7] or {}) for b in row[_BELOW_AT] or ())
        settings.hold_bureaus(own)
        _hold_tree(rows, _BELOW_AT, user.bureau_id)


def _expire_held(*models: type, key: Any = None) -> None:
    """Expire the objects of ``models`` this session already holds (all of them, or the one with primary key
    ``key``), so the next statement fills them from their rows as they are now — rather than
    ``populate_existing``, which would also fill every bureau of the tree again. (A request's session holds none
    yet; a test's may.)"""
    identity_map = db.session.identity_map
    if key is not None:
        held = [identity_map.get(db.session.identity_key(model, key)) for model in models]
    else:
        held = [obj for ident, obj in identity_map.items() if ident[0] in models] if len(identity_map) else []
    for obj in held:
        if obj is not None:
            db.session.expire(obj)


def load_user(user_id: int) -> User | None:
    """The account re-read from the database (a deactivation or a new session generation counts at once)
    and, for a bureau user, what ``load_tree`` reads and its bureaus' own settings, and the unread count
    (``unread_notifications``), in the same statement: a page then reads none of them again."""
    _expire_held(User, key=user_id)
    rows = db.session.execute(_user_tree_statement(db.engine.dialect.name), {"tree_user_id": user_id}).all()
    if not rows:
        return None
    user, unread = _account_row(rows)[_ACCOUNT_AT:_EXTRA_AT + 1]
    db.session.info[_UNREAD] = {user_id: (unread, _writes[0])}
    _hold_account(user, rows)
    return user


def load_token(token_hash: str) -> ApiToken | None:
    """An API token by its digest, with its account (re-read, like ``load_user``'s) and the account's tree and
    settings, in one statement. The token and account are checked against their rows as they are now (a
    revocation, expiry or deactivation counts at once, even in a session that held them)."""
    _expire_held(ApiToken, User)  # its account unknown until read
    rows = db.session.execute(_token_tree_statement(db.engine.dialect.name), {"tree_token_hash": token_hash}).all()
    if not rows:
        return None
    user, token = _account_row(rows)[_ACCOUNT_AT:_EXTRA_AT + 1]
    set_committed_value(token, "user", user)  # ``token.user`` without a lookup (the session holds it weakly)
    _hold_account(user, rows)
    return token


def unread_notifications(user: User) -> int:
    """The user's unread notifications: as ``load_user`` read them with the account in this transaction, unless
    anything was written since (a commit or rollback forgets the copy; objects added but not yet flushed are
    counted by reading, which flushes them first)."""
    held = db.session.info.get(_UNREAD, {}).get(user.id)
    if held is not None and held[1] == _writes[0] and not (db.session.new or db.session.dirty or db.session.deleted):
        return held[0]
    return db.session.execute(sa.select(sa.func.count(Notification.id)).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))).scalar_one()


def preload(user: User) -> None:
    """Before a page: a bureau user's bureau, its ancestors and its subtree in one statement (``load_tree``)
    instead of one each, read lazily by the navigation, the account gate and the first scoped query."""
    if user.role in BUREAU_ROLES and user.bureau_id is not None \
            and not any(key[0] == user.bureau_id for key in db.session.info.get(_SUBTREES, {})):
        load_tree(user.bureau_id)


def ancestor_ids(bureau: Bureau) -> set[int]:
    return set(bureau_tree.chain_ids(bureau)[1:])


def visible_bureau_ids(user: User) -> set[int] | None:
    """Bureaus whose data the user may read; None means all."""
    if user.role == Role.SYSTEM_ADMIN:
        return None
    if user.role in BUREAU_ROLES and user.bureau is not None:
        return subtree_ids(user.bureau)
    return set()


def visible_bureaus(user: User) -> list[Bureau | bureau_tree.TreeBureau]:
    """The bureaus the user may read, in tree order (a filter's choices; each with the columns of a
    ``TreeBureau``): for a bureau user the rows ``load_tree`` already read for this request, so no statement;
    otherwise read."""
    ids = visible_bureau_ids(user)
    if ids is not None:
        tree = bureau_tree.held()
        held = [tree[i] for i in ids if i in tree]
        if len(held) == len(ids):
            return sorted(held, key=lambda b: b.path)
    return list(db.session.execute(scope(user, sa.select(Bureau), Bureau).order_by(Bureau.path)).scalars())


def in_subtree(user: User, bureau_id: int | None) -> bool:
    visible = visible_bureau_ids(user)
    return visible is None or (bureau_id is not None and bureau_id in visible)


def own_bureau(user: User, bureau_id: int | None) -> bool:
    return user.role == Role.SYSTEM_ADMIN or (user.role in BUREAU_ROLES and user.bureau_id == bureau_id)


def scope_key(user: User) -> tuple | None:
    """Everything the row scopes read of a bureau user — the account, its role, its bureau and that bureau's tree
    (``subtree_ids``, ``ancestor_ids``) — as a key: a statement scoped for the user stands for any later
    request with the same key, so a page may keep what it built by it (the dashboard builds some fifteen
    scoped statements, which cost more than running them: ``kept``). None for any other user: not to be kept. A
    row scope that comes to read anything else of a bureau user must add it here."""
    if user.role not in BUREAU_ROLES or user.bureau is None:
        return None
    return (user.id, user.role, user.bureau_id, tuple(sorted(subtree_ids(user.bureau))),
            tuple(sorted(ancestor_ids(user.bureau))))


def kept(user: User, name: Hashable, build: Callable[[], Any], *key: Hashable) -> Any:
    """What ``build()`` returns — statements scoped for ``user`` — built once per process for the same scope
    (``scope_key``), dialect (``in_bureaus`` differs), ``name`` and ``key`` (everything else the build reads: a
    day, a year, a page), and the same objects on later requests: building a page's scoped statements can cost
    more than running them, and a statement run again also skips SQLAlchemy's cache key. A value that changes
    between requests of the same key (the present time) goes in as a bound parameter, not into the build; what
    the statements read is read when they run. Built each time for a user without a scope key."""
    scope = scope_key(user)
    if scope is None:
        return build()
    full = (db.engine.dialect.name, scope, name, *key)
    found = _KEPT.get(full)
    if found is None:
        if len(_KEPT) >= _KEEP:
            _KEPT.clear()
        found = _KEPT[full] = build()
    return found


def library_bureau_ids_for(user: User) -> tuple[set[int], set[int]] | None:
    """(bureaus whose whole library the user sees, bureaus whose admitted library the user may use)."""
    if user.role == Role.SYSTEM_ADMIN:
        return None
    if user.role in BUREAU_ROLES and user.bureau is not None:
        return subtree_ids(user.bureau), ancestor_ids(user.bureau)
    return set(), set()


# --- row scope -------------------------------------------------------------------------------------
# Core declares the rows of its own models; each domain declares its rows and actions in its own
# ``permissions.py`` with ``row_scope`` and ``rules`` below, so this engine knows no domain (core sits under
# every module). An action or a model declared twice is a programming error and fails at import.

ScopeFn = Callable[[User, Select, type], Select]
_SCOPES: dict[type, ScopeFn] = {}
_RESTRICTIONS: dict[type, list[Callable[[Select], Select]]] = {}
# Statements built for a scope (``kept``), by dialect, scope key, name and key; emptied when a rule above changes
_KEPT: dict[tuple, Any] = {}
# Entries kept per process, all dropped when it fills: ~50 KB an entry (measured on the bench's pages: a user who
# opens the dashboard, the queue, the credit page and three lists fills 14 entries, ~0.75 MB), so ≤ ~50 MB a worker
_KEEP = 1024


def row_scope(*models: type) -> Callable[[ScopeFn], ScopeFn]:
    """Declare which rows of ``models`` a user may see: ``fn(user, stmt, model) -> stmt``."""
    def register(fn: ScopeFn) -> ScopeFn:
        for model in models:
            if model in _SCOPES:
                raise RuntimeError(f"row scope for {model.__name__} declared twice")
            _SCOPES[model] = fn
        _KEPT.clear()  # statements kept under the rules before (``kept``)
        return fn

    return register


def restrict(model: type, fn: Callable[[Select], Select]) -> None:
    """A higher module hides some rows of a lower module's model from everyone (e.g. procurement hides the
    audit events of sealed bids); applied after the row scope, for every user."""
    _RESTRICTIONS.setdefault(model, []).append(fn)
    _KEPT.clear()


def unrestrict(model: type, fn: Callable[[Select], Select]) -> None:
    """Take back ``restrict(model, fn)`` (a test's passing restriction)."""
    _RESTRICTIONS[model].remove(fn)
    if not _RESTRICTIONS[model]:
        del _RESTRICTIONS[model]
    _KEPT.clear()


def restricted(model: type) -> bool:
    """Whether a higher module hides some rows of ``model`` from everyone (``restrict``): a count kept per bureau
    then no longer stands for the rows a user may see."""
    return model in _RESTRICTIONS


def scope(user: User, stmt: Select, model: type) -> Select:
    """Narrow a SELECT over ``model`` to the rows ``user`` may see."""
    fn = _SCOPES.get(model)
    if fn is None:
        raise NotImplementedError(f"no row scope declared for {model.__name__}")
    stmt = fn(user, stmt, model)
    for extra in _RESTRICTIONS.get(model, ()):
        stmt = extra(stmt)
    return stmt


def bureau_rows(user: User, stmt: Select, model: type, *, firm_column: Any = None,
                bureaus_only: bool = False) -> Select:
    """The common scope: the system admin sees all; bureau users see their subtree's rows (``model.bureau_id``);
    with ``firm_column`` a firm user sees its own firm's rows; everybody else nothing."""
    if user.role == Role.SYSTEM_ADMIN and not bureaus_only:
        return stmt
    if firm_column is not None and user.role == Role.FIRM_USER:
        return stmt.where(firm_column == user.firm_id)
    if user.role not in BUREAU_ROLES:
        return stmt.where(sa.false())
    ids = visible_bureau_ids(user)
    scoped = stmt.where(in_bureaus(model.bureau_id, ids))
    # for ``visible``: this rule alone, on that statement (weak references: a statement derived from this one
    # copies the attribute, but is neither of them)
    scoped._tree_rule = (weakref.ref(stmt), weakref.ref(scoped), model, ids)
    return scoped


def in_bureaus(column: Any, bureau_ids: set[int] | frozenset[int]) -> sa.ColumnElement[bool]:
    """``column IN bureau_ids`` (none: no row). On PostgreSQL as ``column = ANY(array)``, one parameter: bound as
    a list, the region's 99 bureaus cost 0.4 ms of Python per statement (0.1 ms as one array), and the planner
    reads both the same."""
    ids = sorted(bureau_ids) or [-1]
    if db.engine.dialect.name == "postgresql":
        return column == _any_of(tuple(ids))
    return column.in_(ids)


@functools.lru_cache(maxsize=4096)
def _any_of(ids: tuple[int, ...]) -> sa.ColumnElement:
    """``ANY(:ids)`` for a tree, built once per tree and process: the region's dashboard scopes 15 statements,
    and building the element each time cost ~50 µs of SQLAlchemy. An element is immutable, so the same one may
    stand in any number of statements."""
    return sa.any_(sa.bindparam(None, _IdArray.of(ids), type_=_IdArrayType()))


class _IdArray:
    """A tree's ids bound as one ``integer[]`` parameter already in PostgreSQL's text form: psycopg otherwise
    works out the type of a list of 99 integers each time it binds one (~50 µs; the region's dashboard binds its
    tree 15 times), and SQLAlchemy copies the list first. The parameter keeps its type (``int4[]``), so the
    statement and its plan are those of a bound list. One per tree and process (``of``)."""

    __slots__ = ("ids", "text")

    def __init__(self, ids: tuple[int, ...]) -> None:
        self.ids = ids
        self.text = ("{" + ",".join(str(int(i)) for i in ids) + "}").encode()

    def __repr__(self) -> str:  # shown in logged parameters and SQL errors as the list it stands for
        return repr(list(self.ids))

    of = staticmethod(functools.lru_cache(maxsize=4096)(lambda ids: _IdArray(ids)))


class _IdArrayType(sa.types.TypeDecorator):
    """``ARRAY(Integer)`` whose value is an ``_IdArray``: passed to the driver as it is (no per-item copy)."""

    impl = sa.ARRAY(sa.Integer)
    cache_ok = True

    def bind_processor(self, dialect):
        return None


class _IdArrayDumper(psycopg.adapt.Dumper):
    oid = psycopg.postgres.types["int4"].array_oid

    def dump(self, obj: _IdArray) -> bytes:
        return obj.text


@sa.event.listens_for(sa.engine.Engine, "connect")
def _adapt_id_arrays(dbapi_connection, record) -> None:
    # on each connection: SQLAlchemy's psycopg dialect gives its connections its own copy of psycopg's adapters
    if isinstance(dbapi_connection, psycopg.Connection):
        dbapi_connection.adapters.register_dumper(_IdArray, _IdArrayDumper)


@row_scope(Bureau)
def _bureaus(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    return stmt.where(in_bureaus(Bureau.id, visible_bureau_ids(user)))


@row_scope(BudgetUnit)
def _budget_units(user: User, stmt: Select, model: type) -> Select:
    # Budget unit names are public information; firms need them to declare recusal relations.
    return stmt


@row_scope(AuditEvent, Draw)
def _bureau_records(user: User, stmt: Select, model: type) -> Select:
    return bureau_rows(user, stmt, model)


@row_scope(Job)
def _jobs(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    if user.role == Role.BUREAU_ADMIN:
        return stmt.where(sa.or_(Job.created_by_id == user.id, in_bureaus(Job.bureau_id, visible_bureau_ids(user))))
    return stmt.where(Job.created_by_id == user.id)


@row_scope(User)
def _users(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        return stmt
    if user.role == Role.BUREAU_ADMIN:
        bureaus = visible_bureau_ids(user)
        # the bureau's own staff, and the accounts of the budget units under its bureaus (it opened them)
        return stmt.where(sa.or_(in_bureaus(User.bureau_id, bureaus), User.budget_unit_id.in_(
            sa.select(BudgetUnit.id).where(in_bureaus(BudgetUnit.bureau_id, bureaus)))))
    return stmt.where(User.id == user.id)


def visible(user: User, obj: Any) -> bool:
    """Whether ``user`` may see the row ``obj`` (its model's row scope). Decided without a statement when the
    scope adds nothing (every row) or only ``bureau_rows``' "bureau in the user's tree" — the row is loaded, its
    ``bureau_id`` known and the tree held; any other rule (a firm's, an expert's, a unit's, a restriction) asks
    the database. The scope's shape is kept per scope and model (``kept``): a page asks about several rows, and
    building the scoped probe cost more than the answer. The database's answer is kept for the transaction while
    nothing is written (a firm's page asks it once per action it offers: ten probes of the same row)."""
    model = type(obj)
    held = None
    if _stored_as_is(obj):
        kind, ids = kept(user, "visible.shape", lambda: tree_scope(user, model), model)
        if kind == "all":  # the scope adds nothing: every stored row
            return True
        if kind == "tree":
            return obj.bureau_id in ids
        held = db.session.info.setdefault(_VISIBLE, {})
        answer = held.get((user.id, model, obj.id))
        if answer is not None and answer[1] == _writes[0]:
            return answer[0]
    probe = sa.select(model.id).where(model.id == obj.id)
    seen = db.session.execute(scope(user, probe, model)).first() is not None
    if held is not None:
        held[(user.id, model, obj.id)] = (seen, _writes[0])
    return seen


def _stored_as_is(obj: Any) -> bool:
    """Whether ``obj`` is a row of this session as stored: nothing of the session is waiting to be flushed (a
    statement would flush it first, and could see it differently), so ``visible`` may answer from the row."""
    session = db.session
    if session.new or session.dirty or session.deleted:
        return False
    state = sa.inspect(obj)
    return state.persistent and state.session_id == session().hash_key


def _scope_shape(probe: Select, stmt: Select, model: type) -> tuple[str, Any]:
    """What ``scope`` made of ``probe``: ("all", None) when it added nothing, ("tree", ids) when it added
    exactly ``bureau_rows``' "bureau in the user's tree" (weak references on the statement tell), else
    ("other", None)."""
    if stmt is probe:
        return "all", None
    rule = getattr(stmt, "_tree_rule", None)
    if rule is not None and rule[0]() is probe and rule[1]() is stmt and rule[2] is model:
        return "tree", rule[3]
    return "other", None


def tree_scope(user: User, model: type) -> tuple[str, Any]:
    """Whether the user's row scope of ``model`` is every row ("all", None), exactly the bureaus of the user's
    tree ("tree", ids) or anything else ("other", None): a count kept per bureau can stand for a count of the
    scoped rows in the first two cases only."""
    probe = sa.select(model.id)
    return _scope_shape(probe, scope(user, probe, model), model)


# --- actions ---------------------------------------------------------------------------------------

def can(user: User | None, action: str, obj: Any = None) -> bool:
    # A disabled account has no rights, on any path: a job it queued, a service called with it as the actor.
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_enabled", True):
        return False
    rule = _RULES.get(action)
    if rule is None:
        raise KeyError(f"undeclared permission action {action!r}")
    allowed = limited_to(user)
    if allowed is not None and action not in allowed:
        return False
    return bool(rule(user, obj)) or any(fn(user, obj) for fn in _GRANTS.get(action, ()))


# --- accounts confined to a few actions ---------------------------------------------------------------
# A higher module may confine some accounts to a handful of actions (registry: the contact of a firm that is
# not yet admitted may only see and complete its application). ``can`` refuses every other action to them, on
# every path (pages, API, services); ``limited_to`` lets a page gate refuse the routes that check no action.

_LIMITS: list[Callable[[User], Optional[frozenset[str]]]] = []


def account_limit(fn: Callable[[User], Optional[frozenset[str]]]) -> Callable[[User], Optional[frozenset[str]]]:
    """Register ``fn(user) -> the only actions still allowed to user, or None (not confined)``."""
    _LIMITS.append(fn)
    return fn


def limited_to(user: User) -> Optional[frozenset[str]]:
    for fn in _LIMITS:
        allowed = fn(user)
        if allowed is not None:
            return allowed
    return None


def require(user: User | None, action: str, obj: Any = None) -> None:
    if not can(user, action, obj):
        raise PermissionDenied()


def is_bureau_user(user: User) -> bool:
    return user.role in BUREAU_ROLES


def is_admin(user: User) -> bool:
    return user.role in (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN)


_RULES: dict[str, Callable[[User, Any], bool]] = {}


# A higher module lets more people do a lower module's action, by a rule of its own the lower one cannot import
# (supervision: a case's inspector reads the engagement it inspects). Asked only when the action's rule refuses.
_GRANTS: dict[str, list[Callable[[User, Any], bool]]] = {}


def grant(action: str, fn: Callable[[User, Any], bool]) -> None:
    """Allow ``action`` also to whom ``fn(user, obj)`` says (the action is declared by ``rules``, below or above)."""
    _GRANTS.setdefault(action, []).append(fn)


def rules(declared: dict[str, Callable[[User, Any], bool]]) -> None:
    """Declare actions: ``{"firm.edit": lambda user, firm: ...}``; each name once in the whole system."""
    for action, rule in declared.items():
        if action in _RULES:
            raise RuntimeError(f"permission action {action!r} declared twice")
        _RULES[action] = rule


rules({
    # organisation and system
    "dashboard.bureau": lambda u, o: is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "bureau.view": lambda u, b: in_subtree(u, b.id),
    "bureau.settings": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and u.bureau_id == b.id),
    "budget_unit.manage": lambda u, b: own_bureau(u, b.id),
    # Bureaus are created and renamed by the system admin, or by a bureau's admin for the bureaus below it: it
    # creates under its own bureau or one below ("bureau.manage" of the parent), renames only those strictly below.
    "bureau.manage": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and in_subtree(u, b.id)),
    "bureau.rename": lambda u, b: u.role == Role.SYSTEM_ADMIN or (
        u.role == Role.BUREAU_ADMIN and b.id != u.bureau_id and in_subtree(u, b.id)),
    "organisations.import": lambda u, o: u.role in (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN),
    "user.manage": lambda u, b: u.role == Role.SYSTEM_ADMIN or (u.role == Role.BUREAU_ADMIN and b is not None and u.bureau_id == b.id),
    "audit.view": lambda u, o: is_admin(u),
    # Who hears what (core/notifications.py MATRIX): for the people who configure and answer for a bureau.
    "notifications.matrix": lambda u, o: is_admin(u),
    "audit.verify": lambda u, o: u.role == Role.SYSTEM_ADMIN,
    # The chain's checkpoints are for the upper bureaus (region, prefecture) and the platform to keep.
    "audit.checkpoints": lambda u, o: u.role == Role.SYSTEM_ADMIN or (
        u.role == Role.BUREAU_ADMIN and u.bureau is not None and u.bureau.level != BureauLevel.COUNTY),
    "draw.view": lambda u, d: (is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN) and (d is None or visible(u, d)),
    "job.view": lambda u, j: visible(u, j),
})


# --- accounts (core/accounts.py) -------------------------------------------------------------------
# Who creates whom: the system administrator creates any bureau's administrators and staff (and other system
# administrators); a bureau administrator creates its own bureau's staff, and the administrators of the
# bureaus below it — never another administrator of its own bureau, nor anyone of a bureau above or beside.
# Changing a role between staff and administrator is the same right as creating that bureau's administrator.
# Nor does an administrator look after a fellow administrator (a reset link, the second factor, 停用/启用,
# 退出所有登录, the role): with a reset link one signs in as the other, under their name in the audit log. The
# bureau above, or the system administrator, does it; for a system administrator, the server's operator
# (`flask evalhub users reset-link` / `reset-totp`).

def _strictly_below(user: User, bureau: Bureau | None) -> bool:
    return (bureau is not None and user.role == Role.BUREAU_ADMIN and user.bureau is not None
            and bureau.id != user.bureau_id and bureau.path.startswith(user.bureau.path))


def may_create_staff(user: User, bureau: Bureau | None) -> bool:
    return bureau is not None and (user.role == Role.SYSTEM_ADMIN
                                   or (user.role == Role.BUREAU_ADMIN and user.bureau_id == bureau.id))


def may_create_admin(user: User, bureau: Bureau | None) -> bool:
    return bureau is not None and (user.role == Role.SYSTEM_ADMIN or _strictly_below(user, bureau))


def peer_administrator(user: User, target: User | None) -> bool:
    """``target`` is another administrator at ``user``'s own level: a bureau administrator of the same bureau,
    or another system administrator."""
    if target is None or target.id == user.id:
        return False
    if user.role == Role.SYSTEM_ADMIN:
        return target.role == Role.SYSTEM_ADMIN
    return user.role == Role.BUREAU_ADMIN and target.role == Role.BUREAU_ADMIN and target.bureau_id == user.bureau_id


def _unit_account_of_own_bureau(user: User, target: User) -> bool:
    """``target`` is a budget unit's account and ``user`` manages the accounts of the unit's bureau (the bureau
    that opened it, results/permissions.py "unit_account.create")."""
    return (target.role == Role.BUDGET_UNIT and target.budget_unit is not None
            and can(user, "user.manage", target.budget_unit.bureau))


def administers(user: User, target: User | None) -> bool:
    """``user`` may look after ``target``'s account (a password-reset link, resetting the second factor): the
    system administrator any account but their own and other system administrators'; a bureau administrator its
    own bureau's staff and the administrators of the bureaus below it, and the accounts of its own bureau's
    budget units (it opened them: a lost activation link is given again by the bureau, as for experts and firms)."""
    if target is None or target.id == user.id or peer_administrator(user, target):
        return False
    if user.role == Role.SYSTEM_ADMIN:
        return True
    if user.role != Role.BUREAU_ADMIN:
        return False
    if _unit_account_of_own_bureau(user, target):
        return True
    if target.role not in BUREAU_ROLES:
        return False
    return target.bureau_id == user.bureau_id or (target.role == Role.BUREAU_ADMIN and _strictly_below(user, target.bureau))


rules({
    "user.directory": lambda u, o: is_admin(u),
    "user.create_staff": may_create_staff,
    "user.create_admin": may_create_admin,
    "user.create_system_admin": lambda u, o: u.role == Role.SYSTEM_ADMIN,
    "user.administer": administers,
    "user.change_role": lambda u, t: (t is not None and t.id != u.id and t.role in BUREAU_ROLES
                                      and may_create_admin(u, t.bureau)),
    # A bureau's accounts page: whoever manages its accounts or may create any of them.
    "bureau.users": lambda u, b: b is not None and (
        (u.role == Role.SYSTEM_ADMIN) or (u.role == Role.BUREAU_ADMIN and u.bureau_id == b.id) or _strictly_below(u, b)),
})


@settings.guard
def _may_change_settings(user: User, bureau: Bureau) -> None:
    """Who may set or clear a bureau's settings, asked by ``core.settings`` at every change (it cannot import this)."""
    require(user, "bureau.settings", bureau)


def manages_account(user: User, target: User | None) -> bool:
    """``user`` may disable, re-enable or sign out ``target``'s account ("user.account"): whoever manages the
    accounts of the target's bureau ("user.manage"; the system administrator any) or looks after the account
    ("user.administer": the administrators of the bureaus below; for a budget unit's account, of the unit's
    bureau) — never a fellow administrator; for a firm's account,
    also that firm's own administrator (a firm user with ``is_firm_admin``) — never their own account."""
    if target is None or peer_administrator(user, target):
        return False
    if can(user, "user.manage", target.bureau) or administers(user, target):
        return True
    return (user.role == Role.FIRM_USER and user.is_firm_admin and target.role == Role.FIRM_USER
            and target.firm_id is not None and target.firm_id == user.firm_id and target.id != user.id)


def authority(user: User) -> Authority | None:
    """The authority with which ``user`` disables an account (None: they manage no account)."""
    if user.role == Role.SYSTEM_ADMIN:
        return Authority.SYSTEM
    if user.role == Role.BUREAU_ADMIN and user.bureau is not None:
        return Authority(user.bureau.level.value)
    if user.role == Role.FIRM_USER and user.is_firm_admin:
        return Authority.FIRM
    return None


def lifts_deactivation(user: User, target: User | None) -> bool:
    """``user`` may enable ``target`` again ("user.enable"): they manage the account, and their authority is at
    least the one that disabled it — a firm's administrator never lifts the bureau's or the platform's
    deactivation, a bureau's administrator never the system administrator's nor a bureau's above its own. An
    account disabled before the authority was recorded (and not found in the audit log by the migration) counts
    as disabled by the bureau side."""
    if target is None or not manages_account(user, target):
        return False
    mine = authority(user)
    decided = target.disabled_authority or Authority.COUNTY
    return mine is not None and mine.rank >= decided.rank


rules({"user.account": manages_account, "user.enable": lifts_deactivation})


def declared_actions() -> list[str]:
    return sorted(_RULES)
