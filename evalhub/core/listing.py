"""One list, one way: a permission-scoped SELECT, the filters the query string asks for, ordering,
pagination and the Excel export — for the HTML list pages and the JSON list endpoints alike.

A list declares its filters once (``enum_filter``, ``int_filter``, ``year_filter``, ``text_filter``,
``choice_filter`` or a plain ``Filter``); ``Listing`` reads them from ``request.args`` and narrows the
statement. Query strings are typed by people and by robots, so nothing a URL carries may raise a 500:

- on an HTML page (``strict=False``) a value that is not one (``?year=abc``, ``?status=nope``, an integer
  out of range such as ``?bureau=963728318727131540488192``) is ignored, and the page number is clamped;
- on the API (``strict=True``) it is refused with 422 naming the argument (``ValidationFailed``).

Integers are bounded to what every database's INTEGER holds, so a huge one never reaches the driver.
"""
from __future__ import annotations

import io
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Mapping, Optional

import sqlalchemy as sa
from flask import current_app, request, send_file
from flask_login import current_user
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy.orm import lazyload
from sqlalchemy.sql import Select

from evalhub.core import permissions
from evalhub.core.enums import LabeledEnum
from evalhub.core.errors import ValidationFailed
from evalhub.core.exports import XLSX_MIMETYPE, to_xlsx
from evalhub.core.inputs import INT_MAX
from evalhub.core.models import Bureau
from evalhub.extensions import db

MAX_PAGE = 100_000  # beyond any list we hold; the offset stays far below INT_MAX rows
MAX_PER_PAGE = 200


# --- reading one value ------------------------------------------------------------------------------

def parse_int(raw: str, lo: int = 1, hi: int = INT_MAX) -> int:
    """ASCII digits (an optional leading minus) between ``lo`` and ``hi``; ValueError otherwise
    (full-width digits, "2025.0", "1e3" and numbers too large for the database are not integers here)."""
    raw = (raw or "").strip()
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 12:
        raise ValueError(raw)
    value = int(raw)
    if not lo <= value <= hi:
        raise ValueError(raw)
    return value


def as_int(raw: str | None, lo: int = 1, hi: int = INT_MAX) -> Optional[int]:
    """``parse_int``, or None for anything that is not an integer in range (an id typed into a form, say)."""
    try:
        return parse_int(raw or "", lo, hi)
    except ValueError:
        return None


def int_arg(name: str, lo: int = 1, hi: int = INT_MAX) -> Optional[int]:
    """The query argument ``name`` as an integer in range; absent or anything else → None."""
    return as_int(request.args.get(name), lo, hi)


def enum_value(enum_cls: type[LabeledEnum], raw: str | None, default: Any = None) -> Any:
    """The member of ``enum_cls`` named by ``raw`` (value or Chinese label); ``default`` when it names none."""
    try:
        return enum_cls.from_label(raw or "")
    except ValueError:
        return default


def page_number(args: Mapping[str, str] | None = None) -> int:
    """``?page=``: garbage → 1, below 1 → 1, past ``MAX_PAGE`` → ``MAX_PAGE`` (an empty page, not a 500)."""
    raw = ((request.args if args is None else args).get("page") or "").strip()
    if raw.isascii() and raw.isdigit():
        return max(1, min(int(raw) if len(raw) <= 12 else MAX_PAGE, MAX_PAGE))
    return 1


def wants_export() -> bool:
    return request.args.get("export") == "xlsx"


def xlsx_response(data: bytes, filename: str):
    return send_file(io.BytesIO(data), mimetype=XLSX_MIMETYPE, as_attachment=True, download_name=filename)


def page_rows(stmt: Select, page: int, per_page: int, extra: Iterable[Any] = (),
              late: Any = None, total: Any = None, rows: bool = False) -> tuple[list[Any], int, list[Any]]:
    """One page of ``stmt`` (the first column of each row, as ``scalars``; with ``rows``, each whole row, for a
    page that selects the columns it shows), how many rows it has in all, and
    for each item the values of the ``extra`` labelled columns (a dict by label; e.g. a correlated
    subquery for what each row shows, instead of a statement of its own).

    One round trip: the count rides on the page's rows as an uncorrelated scalar subquery, which the
    database runs once on its own plan (PostgreSQL: an InitPlan, an index-only count), while the page still
    stops after its rows. Not ``count(*) OVER ()``: the window makes the database join and read every row in
    scope before LIMIT (the region's engagement list: 55 ms instead of 3 ms). A page past the end has no row
    to carry the count, so only then is it read apart; an empty first page is 0.

    ``late`` (the listed model's key column): the page is chosen first over the key alone, in order, and only
    its rows are then joined, loaded and given their ``extra`` columns — for a list whose order no index
    gives (so the database sorts every row in scope): it then sorts narrow rows, not every row's joins and
    correlated subqueries.

    ``total``: how many rows ``stmt`` has, when the caller knows it better than by counting them (e.g. from counts
    kept on write) — a number, or a scalar subquery that rides on the page's rows instead of the count.
    """
    extra = list(extra)
    known = isinstance(total, int)  # else counted: by the rows' own count, or by ``total``'s statement
    # a statement kept by ``Listing(keep=...)`` is cut the same way for the same page, extra columns and total
    # statement (the same objects when the caller keeps them too): the cut statement is kept with it, a few
    # dozen per statement at most (a caller that builds its extra columns anew only fills its own)
    cut = _CUT.setdefault(stmt, {})
    key = (page, per_page, late, "known" if known else total, *extra)
    counted = cut.get(key)
    if counted is None:
        if len(cut) >= 64:
            cut.clear()
        count = None if known else _count_of(stmt).scalar_subquery() if total is None else total
        counted = cut[key] = _cut(stmt, page, per_page, extra, late, count)
    found = db.session.execute(counted).unique().all()
    if not found:
        if known:
            return [], total, []
        if total is not None:
            return [], db.session.execute(sa.select(total)).scalar_one(), []
        return [], 0 if page == 1 else db.session.execute(_count_of(stmt)).scalar_one(), []
    names = [column.name for column in extra]
    start = len(stmt.column_descriptions)  # an entity is one column of the row
    return found if rows else [row[0] for row in found], total if known else found[0][-1], \
        [dict(zip(names, row[start:start + len(extra)])) for row in found] if extra else []


_CUT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # statement → {(page, per page, …): page_rows's}


def _cut(stmt: Select, page: int, per_page: int, extra: list[Any], late: Any, count: Any) -> Select:
    """``page_rows``'s statement: ``stmt``'s page, with the ``extra`` columns and the ``count`` (a scalar subquery;
    None: not counted) riding along."""
    counted = stmt.add_columns(*extra, *([] if count is None else [count.label("rows_in_all")]))
    # The page's limit and offset are written into the SQL, not bound: bound, PostgreSQL mostly never trusts a
    # generic plan for a list and plans it at every request (the credit page: 0.45 ms of planning for 0.35 ms of
    # running, in psql at province scale). The compiled statement is still cached; each page is its own text.
    limit = sa.literal(per_page, literal_execute=True)
    offset = sa.literal((page - 1) * per_page, literal_execute=True)
    if late is not None:
        chosen = stmt.options(lazyload("*")).with_only_columns(late).limit(limit).offset(offset)
        return counted.where(late.in_(chosen.scalar_subquery()))
    return counted.limit(limit).offset(offset)


def looked_up(column: Any, key: Any) -> Any:
    """``column`` of the row whose id is ``key`` (a firm's name by ``engagement.firm_id``), as a scalar subquery
    for a list's columns: a list that joins the tables it names things from makes PostgreSQL plan the page at
    every request for longer than it runs it (each join ~0.2 ms), where a subquery is run for the rows shown
    only and left out of the count."""
    return sa.select(column).where(column.table.c.id == key).scalar_subquery()


def _count_of(stmt: Select) -> Select:
    """SELECT count(*) over ``stmt`` without its ordering or eager loads (as flask-sqlalchemy counts)."""
    return sa.select(sa.func.count()).select_from(stmt.options(lazyload("*")).order_by(None).subquery())


def distinct_values(column: Any, scope: Callable[[Select], Select], name: str = "distinct_values") -> sa.CTE:
    """The distinct values of an indexed ``column`` among the rows ``scope`` keeps (a year filter's choices), as
    a recursive CTE with one column ``value`` (a last row of NULL ends it): a skip scan — each step asks the
    index for the next value above the last — so about one probe per value instead of reading every row in
    scope, however long the history."""
    values = scope(sa.select(sa.func.min(column).label("value"))).cte(name, recursive=True)
    following = scope(sa.select(sa.func.min(column)).where(column > values.c.value)).scalar_subquery()
    return values.union_all(sa.select(following).where(values.c.value.is_not(None)))


def read_distinct(column: Any, scope: Callable[[Select], Select], keep: Hashable | None = None) -> list[Any]:
    """``distinct_values`` read in ascending order. The WITH sits inside a subquery, so the statement begins
    with SELECT and a page that only read still ends its transaction with COMMIT (``evalhub/__init__.py``).
    ``keep``: a name under which the statement is built once per process for the signed-in user's scope
    (``permissions.kept``; ``scope`` must then read nothing else)."""
    def build() -> Select:
        values = distinct_values(column, scope)
        inner = sa.select(values.c.value).where(values.c.value.is_not(None)).add_cte(values, nest_here=True).subquery()
        return sa.select(inner.c.value).order_by(inner.c.value)

    stmt = build() if keep is None else permissions.kept(current_user, keep, build)
    return list(db.session.execute(stmt).scalars())


def text_list(column: Any) -> sa.ColumnElement[str]:
    """The aggregate joining ``column``'s values with commas (order unspecified; NULL when there are none):
    string_agg on PostgreSQL, group_concat on SQLite."""
    if db.engine.dialect.name == "postgresql":
        return sa.func.string_agg(column, sa.literal_column("','"), type_=sa.String)
    return sa.func.group_concat(column, ",", type_=sa.String)


class SelectPage(Pagination):
    """``paginate``'s page object: items, count and ``extra`` values from ``page_rows`` (one statement).
    ``page.extra`` lines up with ``page.items``."""

    def _query_items(self) -> list[Any]:
        items, self._total, self.extra = page_rows(self._query_args["select"], self.page, self.per_page,
                                                   self._query_args["extra"], self._query_args.get("late"),
                                                   self._query_args.get("total"), self._query_args.get("rows", False))
        return items

    def _query_count(self) -> int:
        return self._total


def paginate(stmt: Select, per_page: int | None = None, extra: Iterable[Any] = (), late: Any = None,
             total: Any = None, rows: bool = False) -> SelectPage:
    """One page of ``stmt`` for an HTML list (``?page=``, clamped); ``extra``, ``late``, ``total``, ``rows``: see
    ``page_rows``."""
    return SelectPage(page=page_number(), per_page=per_page or current_app.config["PAGE_SIZE"],
                      error_out=False, max_per_page=MAX_PER_PAGE, select=stmt, extra=extra, late=late, total=total,
                      rows=rows)


class ListPage(Pagination):
    """A page object like ``paginate``'s over a list already in memory (e.g. a queue a service ranked)."""

    def _query_items(self) -> list[Any]:
        start = (self.page - 1) * self.per_page
        return self._query_args["items"][start:start + self.per_page]

    def _query_count(self) -> int:
        return len(self._query_args["items"])


def paginate_list(items: list[Any], per_page: int | None = None) -> ListPage:
    return ListPage(page=page_number(), per_page=per_page or current_app.config["PAGE_SIZE"],
                    max_per_page=MAX_PER_PAGE, error_out=False, items=items)


def page_request(per_page: int | None = None) -> tuple[int, int]:
    """(page, per page) the request asks for, clamped as ``paginate`` clamps them: for a service that reads
    one page itself (``counted_page``)."""
    return page_number(), max(1, min(per_page or current_app.config["PAGE_SIZE"], MAX_PER_PAGE))


class CountedPage(Pagination):
    """A page object like ``paginate``'s over one page of rows and a count a service already read (e.g. a
    queue ranked and counted by the database)."""

    def _query_items(self) -> list[Any]:
        return list(self._query_args["items"])

    def _query_count(self) -> int:
        return self._query_args["total"]


def counted_page(items: list[Any], total: int, page: int, per_page: int) -> CountedPage:
    return CountedPage(page=page, per_page=per_page, max_per_page=MAX_PER_PAGE, error_out=False,
                       items=items, total=total)


def scoped(model: type, stmt: Select | None = None, user: Any = None) -> Select:
    """``stmt`` (default ``select(model)``) narrowed to the rows the user (default: signed in) may see."""
    return permissions.scope(current_user if user is None else user,
                             sa.select(model) if stmt is None else stmt, model)


# --- filters ---------------------------------------------------------------------------------------

Apply = Callable[[Select, Any], Select]


@dataclass(frozen=True)
class Filter:
    """One query argument that narrows a list.

    ``parse`` turns the stripped, non-empty text into a value or raises ValueError (or LookupError);
    ``apply`` narrows the statement with that value; ``hint`` is said beside the argument when a strict
    list (the API) refuses it.
    """

    name: str
    parse: Callable[[str], Any]
    apply: Optional[Apply] = None
    hint: str = "无效"


def _equals(target: Any) -> Optional[Apply]:
    """A column compares for equality; a function is used as it is; None only parses."""
    if target is None or not hasattr(target, "__clause_element__") and not isinstance(target, sa.ColumnElement):
        return target
    return lambda stmt, value: stmt.where(target == value)


def enum_options(enum_cls: type[LabeledEnum]) -> str:
    return "可选值：" + "、".join(f"{m.value}（{m.label}）" for m in enum_cls)


def enum_filter(name: str, enum_cls: type[LabeledEnum], target: Any = None, *, hint: str | None = None) -> Filter:
    """A member of ``enum_cls`` by value or Chinese label; ``target`` a column (``==``) or ``fn(stmt, member)``."""
    return Filter(name, enum_cls.from_label, _equals(target), hint or enum_options(enum_cls))


def int_filter(name: str, target: Any = None, *, lo: int = 1, hi: int = INT_MAX, hint: str = "必须是整数") -> Filter:
    """An integer (an id, by default) in ``lo``–``hi``."""
    return Filter(name, lambda raw: parse_int(raw, lo, hi), _equals(target), hint)


def parse_year(raw: str, lo: int = 1000, hi: int = 9999) -> int:
    """Four ASCII digits, ``lo``–``hi``."""
    if len(raw) != 4:
        raise ValueError(raw)
    return parse_int(raw, lo, hi)


def year_filter(target: Any = None, name: str = "year", *, lo: int = 1000, hi: int = 9999,
                hint: str = "应为四位年份") -> Filter:
    return Filter(name, lambda raw: parse_year(raw, lo, hi), _equals(target), hint)


def text_filter(name: str, *columns: Any, ignore_case: bool = False) -> Filter:
    """Any of ``columns`` contains the text (LIKE wildcards in it are taken literally)."""
    def apply(stmt: Select, text: str) -> Select:
        matches = [(c.icontains if ignore_case else c.contains)(text, autoescape=True) for c in columns]
        return stmt.where(sa.or_(*matches))
    return Filter(name, str, apply)


def choice_filter(name: str, conditions: Mapping[str, Any]) -> Filter:
    """One of a few fixed words, each a WHERE condition (e.g. ``kind=random`` / ``kind=targeted``)."""
    return Filter(name, lambda raw: conditions[raw], lambda stmt, condition: stmt.where(condition),
                  "可选值：" + "、".join(conditions))


def bureau_filter(target: Any, name: str = "bureau") -> Filter:
    """A bureau by its region code (the API's way of naming one); ``target`` its id column."""
    def parse(code: str) -> int:
        bureau_id = db.session.execute(sa.select(Bureau.id).where(Bureau.code == code)).scalar_one_or_none()
        if bureau_id is None:
            raise LookupError(code)
        return bureau_id
    return Filter(name, parse, _equals(target), "没有这个区划代码的财政局")


def read_args(filters: Iterable[Filter], *, strict: bool = False,
              args: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """(the stripped text of each filter, its parsed value or None). A value that does not parse is
    ignored, or with ``strict`` refused: ``ValidationFailed`` naming every such argument."""
    args = request.args if args is None else args
    raw: dict[str, str] = {}
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    messages: list[str] = []
    for f in filters:
        text = raw[f.name] = (args.get(f.name) or "").strip()
        values[f.name] = None
        if not text:
            continue
        try:
            values[f.name] = f.parse(text)
        except (ValueError, LookupError):
            errors[f.name] = f.hint
            messages.append(f"参数 {f.name} 无效：{text}。")
    if strict and errors:
        raise ValidationFailed("".join(messages), errors)
    return raw, values


# --- the list --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Export:
    """How a list reads in Excel: the sheet, its columns, and ``rows(items) -> [{column: value}]``."""

    sheet: str
    columns: list[str]
    rows: Callable[[list], Iterable[Mapping[str, Any]]]
    filename: str | None = None


class Listing:
    """A SELECT narrowed by the request's filters, then ordered: one page of it, all of it, or its Excel.

    ``filters`` is what the template echoes back into the filter form (the text as typed); ``values`` what
    was understood (``listing["year"]``). ``where`` is the narrowed statement before ordering (for
    ``with_only_columns`` subqueries); ``stmt`` the ordered one.
    """

    def __init__(self, stmt: Select | Callable[[], Select], *filters: Filter, order_by: Iterable[Any] = (),
                 options: Iterable[Any] = (), strict: bool = False, args: Mapping[str, str] | None = None,
                 keep: Hashable | None = None, user: Any = None):
        """``keep``: the list's name, under which its narrowed and ordered statements are built once per process
        for the scope of ``user`` (the signed-in user if None) and the filters' values (``permissions.kept``), and
        ``stmt`` a function building the statement before the filters (called only then): a list page's scoped,
        filtered, counted and cut statement cost a fifth of the page to build, more than the database took to
        run it."""
        self.filters, self.values = read_args(filters, strict=strict, args=args)

        def build() -> tuple[Select, Select]:
            where = stmt() if callable(stmt) else stmt
            for f in filters:
                if f.apply is not None and self.values[f.name] is not None:
                    where = f.apply(where, self.values[f.name])
            return where, where.options(*options).order_by(*order_by)

        understood = ((name, value) for name, value in self.values.items() if value is not None)
        self.where, self.stmt = build() if keep is None else permissions.kept(
            current_user if user is None else user, keep, build, *understood)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)

    def narrowed(self, *besides: str) -> bool:
        """Whether a filter other than ``besides`` narrowed the list (a total kept on write stands only for a
        list no filter narrowed)."""
        return any(value is not None for name, value in self.values.items() if name not in besides)

    def all(self) -> list:
        return list(db.session.execute(self.stmt).scalars())

    def page(self, per_page: int | None = None, extra: Iterable[Any] = (), late: Any = None,
             total: Any = None, rows: bool = False) -> SelectPage:
        return paginate(self.stmt, per_page, extra, late, total, rows)

    def export(self, spec: Export):
        """The whole list (every page) as an .xlsx download."""
        return export(spec, self.all())


def export(spec: Export, items: list):
    """``items`` as an .xlsx download, as ``spec`` says (for a list already in memory)."""
    rows = list(spec.rows(items))
    return xlsx_response(to_xlsx(rows, spec.sheet, columns=spec.columns), spec.filename or f"{spec.sheet}.xlsx")
