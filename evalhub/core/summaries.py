"""Counts kept on write: a small table that holds how many rows of a large one there are per key, so a page
reads a few rows instead of counting the history (issue 18) — the engagement list's total per bureau, the
dashboard's credit grades per bureau and year, its firms, experts and inspections per bureau and status, the
screening queue's flagged reports per bureau and year.

One mechanism for every writer, so none can forget it. A domain declares its count once (``KeptCount``: the
source model, the key columns, optional further grouping columns and a condition on the counted rows, the
summary table); session events then note the keys of every source row a transaction writes in a way that can
change a count — ORM flushes (services, demo, tests) and Core/ORM INSERT, UPDATE or DELETE statements on the
source table run through the session (bulk loads) — and those keys are recounted from the source just before
the commit: not +1/−1, so a count cannot drift. Only SQL run on a bare connection (a migration) escapes; the
migration that makes a summary table fills it itself. Recounting at the commit, not at each flush, keeps a
batch (a compute of 500 ratings, a bulk load) at one recount; a reader in the same transaction calls
``recount`` first. Each count's recounts are serialised by a named lock held to the commit, so two
transactions recount the same key one after the other (READ COMMITTED: the second sees what the first
committed), never interleaved.

A list's total over the user's tree reads a count through ``KeptCount.scope_total`` (the engagement list, the
credit page): the one place that turns a user's scope into a sum of kept counts.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evalhub.core import concurrency, permissions
from evalhub.extensions import db

ALL = "all"  # every key: what was written cannot be told (a statement without WHERE, a key moved by UPDATE)
_PENDING = "evalhub.kept_counts"  # session.info: {count name: {key tuple} or ALL}
_UNKNOWN = object()
_COUNTS: list["KeptCount"] = []


class KeptCount:
    """``summary`` holds, for each ``key`` (+ ``by``) of the ``source`` rows meeting ``where``, their number
    ``n``; no row for a count of 0. ``watched``: the further columns whose change can move a row in or out of
    the count (those ``where`` reads, and ``by``); a write that changes none of them and no key costs nothing.
    ``counted(values)``, optional: whether a row with these column values (``_UNKNOWN`` where not loaded) is
    counted, so a write to a row that is counted neither before nor after (a draft recomputed) costs nothing.
    ``cascaded_from``: models whose deleted rows take source rows with them in the database (ON DELETE
    CASCADE), unseen by the session: deleting any recounts every key."""

    def __init__(self, name: str, source: type, key: tuple[str, ...], summary: sa.Table, *,
                 by: tuple[str, ...] = (), where: Optional[Callable[[], Any]] = None,
                 watched: tuple[str, ...] = (), counted: Optional[Callable[[dict[str, Any]], bool]] = None,
                 cascaded_from: tuple[type, ...] = ()):
        self.name, self.source, self.key, self.summary = name, source, key, summary
        self.by, self.where, self.counted, self.cascaded_from = by, where, counted, cascaded_from
        self.columns = (*key, *watched, *(c for c in by if c not in watched))
        _COUNTS.append(self)

    # --- what is waiting ------------------------------------------------------------------------------

    def pending(self, session: Session) -> set[tuple] | str | None:
        """The keys this transaction wrote and that wait to be recounted (ALL, or None when none)."""
        return session.info.get(_PENDING, {}).get(self.name)

    def note(self, session: Session | None, keys: Iterable[tuple] | str) -> None:
        if session is None:
            return
        waiting = session.info.setdefault(_PENDING, {})
        if waiting.get(self.name) == ALL:
            return
        if keys == ALL:
            waiting[self.name] = ALL
        else:
            keys = set(keys)
            if keys:
                waiting.setdefault(self.name, set()).update(keys)

    def _is_counted(self, values: dict[str, Any]) -> bool:
        return self.counted is None or any(v is _UNKNOWN for v in values.values()) or self.counted(values)

    def _note_flushed(self, session: Session) -> None:
        """The keys of source rows inserted, deleted, or changed in a key or watched column."""
        keys: set[tuple] = set()
        for obj in session.new:
            if isinstance(obj, self.source):
                values = {c: getattr(obj, c) for c in self.columns}
                if self._is_counted(values):
                    keys.add(tuple(values[c] for c in self.key))
        for obj in session.deleted:
            if self.cascaded_from and isinstance(obj, self.cascaded_from):
                return self.note(session, ALL)
            if isinstance(obj, self.source):
                held = sa.inspect(obj).dict  # the row is gone: read only what was loaded
                values = {c: held.get(c, _UNKNOWN) for c in self.columns}
                if not self._is_counted(values):
                    continue
                if any(values[c] is _UNKNOWN for c in self.key):
                    return self.note(session, ALL)
                keys.add(tuple(values[c] for c in self.key))
        for obj in session.dirty:
            if not isinstance(obj, self.source):
                continue
            state = sa.inspect(obj)
            histories = {c: state.attrs[c].history for c in self.columns}
            if not any(h.has_changes() for h in histories.values()):
                continue
            now = {c: state.attrs[c].value for c in self.columns}
            was = {c: (h.deleted[0] if h.deleted else _UNKNOWN if h.added else now[c]) for c, h in histories.items()}
            if self._is_counted(now):
                keys.add(tuple(now[c] for c in self.key))
            if self._is_counted(was):
                if any(was[c] is _UNKNOWN for c in self.key):
                    return self.note(session, ALL)
                keys.add(tuple(was[c] for c in self.key))
        self.note(session, keys)

    def _note_statement(self, state: Any) -> None:
        """An INSERT, UPDATE or DELETE statement on the source table run through the session: the keys of the
        rows inserted or matched; ALL when that cannot be told."""
        stmt, session = state.statement, state.session
        rows = state.parameters if isinstance(state.parameters, (list, tuple)) else \
            [state.parameters] if state.parameters else []
        if state.is_insert:
            if rows and stmt.select is None and not getattr(stmt, "_values", None) \
                    and all(all(c in r for c in self.key) for r in rows):
                self.note(session, {tuple(r[c] for c in self.key) for r in rows})
            else:
                self.note(session, ALL)
            return
        if state.is_update:
            # the columns set (``_values``: SQLAlchemy keeps .values() there; executemany rows name theirs)
            changed = {getattr(k, "key", k) for k in (getattr(stmt, "_values", None) or {})} | {k for r in rows for k in r}
            if not changed & set(self.columns):
                return  # e.g. a state change or a deadline: no count moves
            if changed & set(self.key) or rows:
                return self.note(session, ALL)
        if stmt.whereclause is None:
            return self.note(session, ALL)
        columns = [getattr(self.source, c) for c in self.key]
        self.note(session, {tuple(row) for row in session.execute(
            sa.select(*columns).where(stmt.whereclause).distinct())})

    # --- recounting -----------------------------------------------------------------------------------

    def recount(self, session: Session | None = None) -> None:
        """Recount the keys this transaction wrote (none: no statement)."""
        session = session or db.session()
        waiting = session.info.get(_PENDING, {})
        keys = waiting.pop(self.name, None)
        if not keys:
            return
        concurrency.serialise(self.name)
        table = self.summary
        grouping = [getattr(self.source, c) for c in (*self.key, *self.by)]
        counted = sa.select(*grouping, sa.func.count()).group_by(*grouping)
        if self.where is not None:
            counted = counted.where(self.where())
        gone = sa.delete(table)
        if keys != ALL:
            chosen = sorted(keys)
            if len(self.key) == 1:
                gone = gone.where(table.c[self.key[0]].in_([k[0] for k in chosen]))
                counted = counted.where(getattr(self.source, self.key[0]).in_([k[0] for k in chosen]))
            else:
                gone = gone.where(sa.tuple_(*(table.c[c] for c in self.key)).in_(chosen))
                counted = counted.where(sa.tuple_(*(getattr(self.source, c) for c in self.key)).in_(chosen))
        session.execute(gone)
        session.execute(sa.insert(table).from_select([*self.key, *self.by, "n"], counted))

    # --- reading --------------------------------------------------------------------------------------

    def scope_total(self, user: Any, model: type | None = None, **key_values: Any) -> Any:
        """How many rows of ``scope(user, select(model))`` (default: the source) have these key values
        (e.g. ``year=2025``) and meet ``where``, as a scalar subquery ``coalesce(sum(n), 0)`` over the summary
        rows of the user's tree (for ``page_rows(total=…)``); None when the user's scope of ``model`` is neither
        every row nor exactly the bureaus of the user's tree (a firm's rows, a restriction a higher module
        registers), which kept counts cannot say. The caller decides that its list asks for nothing else (no
        filter beyond ``key_values``). This transaction's own writes are flushed and recounted first, so the
        total counts them as a count of the rows would."""
        unknown = set(key_values) - {*self.key, *self.by}
        if unknown:
            raise ValueError(f"{self.name}: not a key of the count: {sorted(unknown)}")
        shape, bureaus = permissions.tree_scope(user, model or self.source)  # bureaus None: every bureau
        if shape == "other":
            return None
        table = self.summary
        session = db.session()
        session.flush()  # this transaction's own rows, counted before they are read
        self.recount(session)

        def build() -> Any:
            total = sa.select(sa.func.coalesce(sa.func.sum(table.c.n), 0)).where(
                *(table.c[name] == value for name, value in key_values.items()))
            if bureaus is not None:
                total = total.where(permissions.in_bureaus(table.c.bureau_id, bureaus))
            return total.scalar_subquery()

        # the same object for the same scope and keys (``permissions.kept``), so a list kept with it is cut once
        return permissions.kept(user, f"count.{self.name}", build, model or self.source, *sorted(key_values.items()))


    def scope_counts(self, user: Any, model: type | None = None) -> Any:
        """The rows of ``scope(user, select(model))`` (default: the source) that meet ``where``, counted by ``by``:
        a SELECT of (each ``by`` column, n) over the summary rows of the user's tree — what grouping the scoped
        rows by ``by`` would count — or None when the user's scope of ``model`` is neither every row nor exactly
        the bureaus of the user's tree (``scope_total``'s rule). A transaction that wrote source rows recounts
        (``recount``) before it reads."""
        shape, bureaus = permissions.tree_scope(user, model or self.source)
        if shape == "other":
            return None

        def build() -> Any:
            by = [self.summary.c[c] for c in self.by]
            counted = sa.select(*by, sa.func.sum(self.summary.c.n)).group_by(*by)
            if bureaus is not None:
                counted = counted.where(permissions.in_bureaus(self.summary.c.bureau_id, bureaus))
            return counted

        return permissions.kept(user, f"counts.{self.name}", build, model or self.source)


def discard(session: Session) -> None:
    """Forget what this transaction wrote without recounting: for a writer that writes the summary tables
    themselves as they were (a restore from a backup), whose recount would only rewrite the same counts."""
    session.info.pop(_PENDING, None)


def recount_all(session: Session) -> None:
    for count in _COUNTS:
        count.recount(session)


@sa.event.listens_for(Session, "after_flush")
def _note_flushed(session: Session, flush_context) -> None:
    for count in _COUNTS:
        count._note_flushed(session)


@sa.event.listens_for(Session, "do_orm_execute")
def _note_statements(state) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    name = getattr(getattr(state.statement, "table", None), "name", None)
    for count in _COUNTS:
        if count.source.__tablename__ == name:
            count._note_statement(state)
        elif state.is_delete and any(model.__tablename__ == name for model in count.cascaded_from):
            count.note(state.session, ALL)


@sa.event.listens_for(Session, "before_commit")
def _recount_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    # the sources' rows, and rows whose deletion cascades into them, waiting to be flushed: the commit would
    # flush them only after this hook
    sources = tuple({m for count in _COUNTS for m in (count.source, *count.cascaded_from)})
    if any(isinstance(o, sources) for o in (*session.new, *session.dirty, *session.deleted)):
        session.flush()
    recount_all(session)


@sa.event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended (committed, or rolled back: nothing to count)
        session.info.pop(_PENDING, None)
