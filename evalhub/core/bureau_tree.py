"""The bureau tree as this database transaction read it, kept as plain rows.

Every request of a bureau user reads its bureau's tree with the account (``permissions.load_user``): the
bureaus above its own, for the settings' inheritance, and every bureau below, for its row scope. Only its own
bureau and those above it become ORM objects. The rest (the region's admin: 98 of 99) are kept here as
``TreeBureau`` rows: an ORM object per bureau cost about 0.5 ms of every one of the region's pages at province
scale (``permissions._below``). What a page needs of a bureau below (its id, names, path and the walk up to
the root) is answered from here; a page that shows a bureau below reads it with its rows (``with_bureau``, or
a joined load).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from evalhub.core.enums import BureauLevel
from evalhub.core.models import Bureau
from evalhub.extensions import db

_HELD = "evalhub.bureau_tree"  # {bureau id: TreeBureau}


@dataclass(frozen=True, slots=True)
class TreeBureau:
    """A bureau's columns as read (not an ORM object: it has no ``parent``; see ``chain_ids``)."""

    id: int
    code: str
    name: str
    short_name: str
    level: BureauLevel
    parent_id: Optional[int]
    path: str


@sa.event.listens_for(Session, "after_commit")
@sa.event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_HELD, None)  # a bureau imported or moved by the transaction is read again


def hold(rows: Iterable[TreeBureau]) -> None:
    db.session.info.setdefault(_HELD, {}).update((row.id, row) for row in rows)


def held() -> dict[int, TreeBureau]:
    """The rows held in this transaction, by id (empty when none were read)."""
    return db.session.info.get(_HELD, {})


def chain_ids(bureau: Any) -> list[int]:
    """The bureau's id, then its parent's, up to the root: walked over the held rows when the bureau is among
    them (the tree is held whole up to the root, so its walk is too), otherwise over the ORM's ``parent``."""
    rows = held()
    if bureau.id in rows:
        out, node = [], rows.get(bureau.id)
        while node is not None:
            out.append(node.id)
            node = rows.get(node.parent_id) if node.parent_id is not None else None
        if rows[out[-1]].parent_id is None:
            return out
    if isinstance(bureau, TreeBureau):  # held before a commit that forgot it: read as it is now
        bureau = db.session.get(Bureau, bureau.id)
    return [bureau.id] + [b.id for b in bureau.ancestors()]


def hold_chains(bureaus: Iterable[Any]) -> None:
    """Read the walk up to the root of each bureau given (``Bureau`` objects, or held rows) in one statement and
    hold it, so that ``chain_ids`` (and so ``get_setting``) walks it without a statement per ancestor: for a page
    that states something of the bureaus of the rows it lists where no tree is held (a public page). The walk
    is read over the bureaus' paths (their division codes from the root down); one already held costs nothing."""
    rows = held()
    codes = {code for b in bureaus if b.id not in rows for code in b.path.split("/") if code}
    if codes:
        hold(TreeBureau(*row) for row in db.session.execute(
            sa.select(*(getattr(Bureau, column) for column in TreeBureau.__slots__)).where(Bureau.code.in_(sorted(codes)))))


@functools.cache
def with_bureau(model: type) -> tuple:
    """The loader options that read a row's bureau with the row, for a model with a ``bureau`` (many-to-one):
    a row's page names its bureau, and a bureau below the user's is not held as an ORM object, so it would
    otherwise cost a statement of its own."""
    relationship = sa.inspect(model).relationships.get("bureau")
    if relationship is None or relationship.mapper.class_ is not Bureau or relationship.uselist:
        return ()
    return (joinedload(relationship.class_attribute),)
