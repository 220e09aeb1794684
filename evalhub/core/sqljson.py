"""A statement's rows carried as one JSON value in another statement, and read back as that statement's rows.

A page that shows a few short lists beside its main object (the engagement page: the team, the submissions) read
each with a statement of its own, and each cost about half a millisecond of ORM setup and a round trip, more
than reading its rows. Here the list's statement becomes one column of the main statement (``rows_value``),
and ``read_rows`` gives back what executing it would have given: rows with its columns' names and values of
their Python types. The list's statement stays the one source of its rows; a page that did not read it along
runs it as it is (``procurement.page.rows_of``).
"""
from __future__ import annotations

import functools
import json
from collections import namedtuple
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

import sqlalchemy as sa


def rows_value(stmt: sa.Select, dialect: str) -> sa.ColumnElement:
    """``stmt``'s rows as one JSON text, a list of [column values…, position], for another statement's columns.
    Each row carries its place in ``stmt``'s order (``row_number``): the aggregate itself keeps no order. NULL
    when there is no row. Uncorrelated (its parameters bound), PostgreSQL runs it once per statement, however
    many rows the outer statement has."""
    # Select keeps its ORDER BY here (SQLAlchemy has no public accessor); the window sorts by it instead
    position = sa.func.row_number().over(order_by=list(stmt._order_by_clauses)).label("position")
    inner = stmt.add_columns(position).order_by(None).subquery()
    return sa.cast(sa.select(array_of_rows(dialect, *inner.c)).select_from(inner).scalar_subquery(), sa.Text)


def array_of_rows(dialect: str, *columns: Any) -> sa.ColumnElement:
    """The aggregate that makes the rows' ``columns`` one JSON list of lists, in the dialect's words."""
    if dialect == "postgresql":
        return sa.func.json_agg(sa.func.json_build_array(*columns))
    return sa.func.json_group_array(sa.func.json_array(*columns))


def read_rows(stmt: sa.Select, text: str | None) -> list[Any]:
    """``rows_value``'s text read back as ``stmt``'s rows: in its order, each a named tuple of its columns'
    keys, each value of the column's Python type (an enum member, a ``datetime``, a ``Decimal`` to the column's
    scale, a ``bool``), as executing ``stmt`` gives them."""
    if not text:
        return []
    row_type, converters = _reader(stmt)
    found = sorted(json.loads(text, parse_float=Decimal), key=lambda values: values[-1])
    return [row_type(*(convert(value) for convert, value in zip(converters, values))) for values in found]


@functools.cache
def _reader(stmt: sa.Select) -> tuple[type, list[Callable[[Any], Any]]]:
    columns = list(stmt.selected_columns)
    return namedtuple("Row", [column.key for column in columns]), [_converter(column.type) for column in columns]


def _converter(type_: sa.types.TypeEngine) -> Callable[[Any], Any]:
    """What turns a column's JSON value into the value its own rows hold."""
    if isinstance(type_, sa.Enum) and type_.enum_class is not None:
        cls = type_.enum_class
        return lambda value: None if value is None else cls(value)
    if isinstance(type_, sa.DateTime):  # PostgreSQL writes "…T…", SQLite stores "… …": both ISO 8601
        return lambda value: None if value is None else datetime.fromisoformat(value)
    if isinstance(type_, sa.Date):
        return lambda value: None if value is None else date.fromisoformat(value)
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        exponent = Decimal(1).scaleb(-type_.scale) if type_.scale is not None else None
        return lambda value: None if value is None else \
            (Decimal(str(value)).quantize(exponent) if exponent is not None else Decimal(str(value)))
    if isinstance(type_, sa.Boolean):  # SQLite writes 0 and 1
        return lambda value: None if value is None else bool(value)
    if isinstance(type_, (sa.Integer, sa.String, sa.Float, sa.types.NullType)):
        return lambda value: value
    raise TypeError(f"sqljson: no reading for a column of type {type_!r}")
