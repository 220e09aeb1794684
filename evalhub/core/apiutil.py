"""Helpers shared by the domain APIs (``registry``, ``procurement``, ``review``): serialising values, paging,
reading request arguments and bodies, and the OpenAPI fragments they all use.

Only what is the same in every domain lives here; a helper with one domain's rules stays in that domain's
``api.py``.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import sqlalchemy as sa
from flask import jsonify, request

from evalhub.core.api import schema
from evalhub.core.enums import LabeledEnum
from evalhub.core.errors import ValidationFailed
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


def paginate(stmt: sa.Select, page: int, per_page: int) -> tuple[list, int]:
    """One page of the statement's rows, and how many rows there are in all."""
    total = db.session.execute(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page)).scalars().all()
    return list(rows), total


def listing(items: list[dict], total: int, page: int, per_page: int):
    """The JSON response for one page of a list (the shape of ``list_schema``)."""
    return jsonify({"items": items, "total": total, "page": page, "per_page": per_page})


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


def enum_arg(name: str, enum_cls: type[LabeledEnum]) -> LabeledEnum | None:
    """A query argument naming an enum member by value or Chinese label; absent → None."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return enum_cls.from_label(raw)
    except ValueError:
        allowed = "、".join(f"{m.value}（{m.label}）" for m in enum_cls)
        raise ValidationFailed(f"参数 {name} 无效：{raw}。", {name: f"可选值：{allowed}"})


def bureau_arg() -> Bureau | None:
    """The bureau named by the ``bureau`` query argument (its region code); absent → None."""
    code = request.args.get("bureau", "").strip()
    if not code:
        return None
    bureau = db.session.execute(sa.select(Bureau).where(Bureau.code == code)).scalar_one_or_none()
    if bureau is None:
        raise ValidationFailed(f"参数 bureau 无效：{code}。", {"bureau": "没有这个区划代码的财政局"})
    return bureau


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


def query(name: str, description: str, type_: str = "string") -> dict:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": type_}}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_STRING = {"type": "string", "nullable": True}
NULLABLE_DATE = {"type": "string", "format": "date", "nullable": True}
NULLABLE_DATETIME = {"type": "string", "format": "date-time", "nullable": True}
PAGE_PARAMS = [query("page", "页码，从 1 开始", "integer"), query("per_page", "每页条数（1–200，默认 20）", "integer")]

BUREAU_REF = schema("BureauRef", {"type": "object", "required": ["id", "code", "name"], "properties": {
    "id": INTEGER, "code": {"type": "string", "description": "行政区划代码"},
    "name": STRING, "short_name": STRING}})
