"""Helpers shared by the domain APIs (``registry``, ``procurement``, ``review``): serialising values, paging,
reading request arguments and bodies, and the OpenAPI fragments they all use.

Only what is the same in every domain lives here; a helper with one domain's rules stays in that domain's
``api.py``.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from flask import jsonify

from evalhub.core import bureau_tree, permissions
from evalhub.core.api import api_user, json_body, page_args, schema
from evalhub.core.enums import LabeledEnum
from evalhub.core.errors import NotFound, ValidationFailed
from evalhub.core.inputs import NAME_PATTERN, money_schema
from evalhub.core.listing import INT_MAX, MAX_PAGE, MAX_PER_PAGE, Filter, Listing, page_rows
from evalhub.core.models import Bureau
from evalhub.extensions import db

# --- serialisation ---------------------------------------------------------------------------------


def labeled(value: LabeledEnum | None) -> dict | None:
    """An enum member as {"value": …, "label": …}; None stays None."""
    return {"value": value.value, "label": value.label} if value is not None else None


def date_str(value: date | None) -> str | None:
    """A date as YYYY-MM-DD; None stays None."""
    return value.isoformat() if value is not None else None


def datetime_str(value: datetime | None) -> str | None:
    """Stored naive UTC → ISO 8601 with an explicit UTC offset."""
    return value.replace(tzinfo=timezone.utc).isoformat() if value is not None else None


def number(value: Decimal | None) -> float | None:
    """A decimal as a JSON number; None stays None."""
    return float(value) if value is not None else None


def bureau_ref(bureau: Bureau) -> dict:
    """A bureau as the short reference described by ``BUREAU_REF``."""
    return {"id": bureau.id, "code": bureau.code, "name": bureau.name, "short_name": bureau.short_name}


def visible(model: type, object_id: int, action: str, missing: str) -> Any:
    """The row the token's user may ``action``; ``NotFound(missing)`` (404) when it does not exist *or* the
    user may not see it — the API does not reveal what exists elsewhere."""
    obj = db.session.get(model, object_id, options=bureau_tree.with_bureau(model))
    if obj is None or not permissions.can(api_user(), action, obj):
        raise NotFound(missing)
    return obj


def listing(items: list[dict], total: int, page: int, per_page: int):
    """The JSON response for one page of a list (the shape of ``list_schema``)."""
    return jsonify({"items": items, "total": total, "page": page, "per_page": per_page})


def list_response(stmt: sa.Select | Callable[[], sa.Select], *filters: Filter,
                  item: Callable[[Any], dict] | None = None, items: Callable[..., list[dict]] | None = None,
                  order_by: Iterable[Any] = (), options: Iterable[Any] = (), extra: Iterable[Any] = (),
                  total: Callable[[Listing], Any] | None = None, keep: str | None = None, rows: bool = False):
    """A list endpoint's whole answer: ``page_args`` (400 when not integers), the filters read strictly
    (422 naming each bad argument), one page of ``stmt`` ordered, each row as ``item(row)`` (or the page at
    once as ``items(rows)``, to batch look-ups; with ``extra`` columns read along, ``items(rows, extras)``,
    see ``listing.page_rows``). ``total(listing)``: the list's total when the caller knows it without counting
    (``page_rows(total=…)``), or None. ``keep``: the list's statements built once per scope (``Listing``'s).
    ``rows``: ``stmt`` selects columns, and each item is built from the whole row (``page_rows``'s)."""
    page, per_page = page_args()
    listed = Listing(stmt, *filters, order_by=order_by, options=options, strict=True, keep=keep,
                     user=api_user() if keep else None)
    found, count, extras = page_rows(listed.stmt, page, per_page, extra,
                                     total=total(listed) if total is not None else None, rows=rows)
    if extra:
        return listing(items(found, extras), count, page, per_page)
    return listing(items(found) if items is not None else [item(r) for r in found], count, page, per_page)


# --- request bodies and query arguments ------------------------------------------------------------


def raise_if(errors: dict[str, str]) -> None:
    """Raise ``ValidationFailed`` with every collected field error, if there are any."""
    if errors:
        raise ValidationFailed("；".join(errors.values()) + "。", errors)


def text_field(data: dict, name: str, errors: dict[str, str]) -> str | None:
    """A string (or missing/null) body field; anything else records an error and gives None."""
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    errors[name] = "必须是字符串"
    return None


def int_field(data: dict, name: str, errors: dict[str, str]) -> int | None:
    """An integer (or missing/null) body field, an id for the service to look up; anything else (a boolean too)
    records an error and gives None."""
    value = data.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    errors[name] = "必须是整数"
    return None


def utc_datetime(data: dict, name: str, errors: dict[str, str], message: str) -> datetime | None:
    """A body field holding an ISO 8601 time with its offset → naive UTC, as stored (missing or null → None); anything
    else records ``message`` beside ``name`` and gives None."""
    value = data.get(name)
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        errors[name] = message
        return None
    return at.astimezone(timezone.utc).replace(tzinfo=None)


def read_body(*texts: str) -> tuple[dict, dict[str, str], dict[str, str | None]]:
    """The request's JSON object (400 if it is not one), the field errors found so far, and its string
    fields ``texts`` (``text_field``): read every field, then ``raise_if(errors)`` once."""
    data, errors = json_body(), {}
    return data, errors, {name: text_field(data, name, errors) for name in texts}


# --- OpenAPI fragments -----------------------------------------------------------------------------


def labeled_definition(enum_cls: type[LabeledEnum]) -> dict:
    """The schema of ``labeled(member)`` for an enum, inline (not registered)."""
    return {
        "type": "object", "required": ["value", "label"],
        "description": "；".join(f"{m.value} = {m.label}" for m in enum_cls),
        "properties": {"value": {"type": "string", "enum": [m.value for m in enum_cls]},
                       "label": {"type": "string", "enum": [m.label for m in enum_cls]}}}


def labeled_schema(enum_cls: type[LabeledEnum], name: str | None = None) -> dict:
    """Register ``labeled_definition(enum_cls)`` as a component (named after the enum); returns a $ref."""
    return schema(name or enum_cls.__name__, labeled_definition(enum_cls))


def nullable(ref: dict) -> dict:
    """A $ref that may also be null."""
    return {"allOf": [ref], "nullable": True}


def choice_description(enum_cls: type[LabeledEnum]) -> str:
    """Describes a request field that takes an enum member by value or Chinese label."""
    return "值或中文名称：" + "、".join(f"{m.value}（{m.label}）" for m in enum_cls)


def query(name: str, description: str, type_: str = "string", **bounds: Any) -> dict:
    """An optional query parameter; ``bounds`` (minimum, maximum, enum, maxLength …) go into its schema."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": type_, **bounds}}


# --- bounded request fields: what the API accepts, in the document; core.api.check_body enforces them ---------

def max_length(column: Any) -> int:
    """The length of a String column (``Firm.name`` → 120): a field's maxLength is its column's."""
    return column.property.columns[0].type.length


def text(limit: Any, description: str | None = None, *, name: bool = False, nullable: bool = False) -> dict:
    """A string request field of at most ``limit`` characters (a number, or a String column whose length it
    takes). ``name``: a name or identifier, which also refuses invisible formatting characters
    (``core.inputs.NAME_PATTERN``: direction overrides, zero-width characters, line breaks)."""
    out: dict[str, Any] = {"type": "string", "maxLength": limit if isinstance(limit, int) else max_length(limit)}
    if name:
        out["pattern"] = NAME_PATTERN
    if nullable:
        out["nullable"] = True
    if description:
        out["description"] = description
    return out


def choice(enum_cls: type[LabeledEnum], description: str | None = None, *, nullable: bool = False) -> dict:
    """A request field naming an enum member by value or Chinese label: both are listed in ``enum``."""
    values = [m.value for m in enum_cls] + [m.label for m in enum_cls if m.label != m.value]
    if nullable:
        values.append(None)
    return {"type": "string", "enum": values, **({"nullable": True} if nullable else {}),
            "description": (description + "；" if description else "") + choice_description(enum_cls)}


def integer(minimum: int, maximum: int, description: str | None = None, *, nullable: bool = False) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **({"nullable": True} if nullable else {}),
            **({"description": description} if description else {})}


def id_field(description: str | None = None, *, nullable: bool = False) -> dict:
    """An id in a request body: 1–2147483647 (PostgreSQL INTEGER)."""
    return integer(1, INT_MAX, description, nullable=nullable)


def money(description: str, *, allow_zero: bool = False) -> dict:
    """An amount in 万元 (number or string such as "1,234.56"): one fen to 1e12 元 (``core.inputs``)."""
    return money_schema(description, allow_zero=allow_zero)


def choice_query(name: str, enum_cls: type[LabeledEnum]) -> dict:
    """An optional query parameter naming an enum member by value or Chinese label (both in ``enum``)."""
    return query(name, choice_description(enum_cls), enum=choice(enum_cls)["enum"])


YEAR_QUERY = query("year", "年度（四位年份）", "integer", minimum=1000, maximum=9999)


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}
DATE = {"type": "string", "format": "date"}
DATETIME = {"type": "string", "format": "date-time"}
NULLABLE_STRING = {"type": "string", "nullable": True}
NULLABLE_NUMBER = {"type": "number", "nullable": True}
NULLABLE_BOOLEAN = {"type": "boolean", "nullable": True}
NULLABLE_DATE = {"type": "string", "format": "date", "nullable": True}
NULLABLE_DATETIME = {"type": "string", "format": "date-time", "nullable": True}
PAGE_PARAMS = [query("page", f"页码，从 1 开始（超出 1–{MAX_PAGE} 按边界处理）", "integer", minimum=1, maximum=MAX_PAGE),
               query("per_page", f"每页条数（1–{MAX_PER_PAGE}，默认 20；超出按边界处理）", "integer",
                     minimum=1, maximum=MAX_PER_PAGE)]

BUREAU_REF = schema("BureauRef", {"type": "object", "required": ["id", "code", "name"], "properties": {
    "id": INTEGER, "code": {"type": "string", "description": "行政区划代码"},
    "name": STRING, "short_name": STRING}})
