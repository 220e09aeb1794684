"""What the server accepts at its edge, decided once for the web pages and the API alike.

Robots and people send anything; nothing a request carries may reach the database as something it cannot
hold (a 500) or as something that would deceive the next reader. The bounds:

- **Integers.** Every ``<int:…>`` in a URL (web and API) goes through ``IdConverter``: at most ``INT_MAX``
  (PostgreSQL INTEGER, ``core.listing``), so ``/engagements/99999999999999999999`` is a 404, never a driver
  error. Query-string integers are read by ``core.listing`` (``parse_int``, ``year_filter``, ``page_number``;
  the API's ``page_args``), JSON integers are bounded by the operation's OpenAPI schema (``core.api.check_body``:
  ``minimum``/``maximum``), and an id typed into a web form becomes a row through ``core.listing.as_int``.
- **Text.** Control characters are REFUSED, never stripped: C0 controls other than TAB, LF and CR, DEL, the
  C1 controls, lone surrogates and the non-characters U+FFFE/U+FFFF (``CONTROL``). PostgreSQL cannot store
  NUL at all, XML 1.0 — every .docx and .xlsx we write — cannot hold the others (openpyxl raises on them),
  and a terminal or a log line can be steered by them. Stripping would change what a person signed (an
  opinion, a reason, a name on a contract) or what a client sent without telling either, and would hide the
  client's bug; a refusal names the field and says why. TAB/LF/CR stay: they are how multi-line text is typed.
  The query string of every request is checked by ``init_app``'s guard (web 400, API 422); the API's JSON
  bodies and form fields by its operation wrapper (``core.api.check_body``, 422 naming each field); web forms
  by the shared base form (``core.forms.BaseForm``), which shows the message beside the field.
- **Names and identifiers** (a firm's, an expert's, a person's, a plan item's, a username) additionally
  refuse the invisible formatting characters (``INVISIBLE``): bidirectional embeddings, overrides and
  isolates (U+202A–U+202E, U+2066–U+2069, LRM/RLM/ALM), zero-width space/joiners (U+200B–U+200D, U+2060),
  the BOM (U+FEFF) and the soft hyphen, and line breaks and tabs. A U+202E turns "评价咨询有限公司" into text that
  displays reversed, so a list, a contract or a public notice can show a name other than the one stored;
  a zero-width space makes two names that look the same different strings, defeating the duplicate and
  conflict-of-interest checks and search. Chinese names never need them. Free text (opinions, reports)
  keeps them: it may quote Uyghur or Mongolian, which use directional marks legitimately. The services that
  store a name call ``check_name`` (so web, API, imports and the CLI all refuse), and the OpenAPI document
  shows the rule as the field's ``pattern`` (``NAME_PATTERN``).
- **Money** in 万元: from 0.000001 万元 (one fen, 0.01 元) to 100,000,000 万元 (1e12 元), within the
  columns' Numeric(18, 2). Below the minimum a bid would round to 0.00 元 and could never be awarded; above
  the maximum PostgreSQL overflows. ``money_error`` is called by the services that read amounts.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Iterator, Optional

from flask import Flask, request
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from evalhub.core.errors import DomainError, ValidationFailed

INT_MAX = 2**31 - 1  # PostgreSQL INTEGER; SQLite refuses anything past 2**63 - 1

# --- integers -------------------------------------------------------------------------------------


def digits_at_most(limit: int) -> str:
    """A regex matching the ASCII decimal numbers from 0 to ``limit`` (``digits_at_most(255)`` matches "7",
    "099" and "255", not "256" or "1000")."""
    text = str(limit)
    size = len(text)
    choices = [f"[0-9]{{1,{size - 1}}}"] if size > 1 else []
    for i, char in enumerate(text):
        if char != "0":
            choices.append(text[:i] + f"[0-{int(char) - 1}]" + (f"[0-9]{{{size - i - 1}}}" if i < size - 1 else ""))
    choices.append(text)
    return "(?:" + "|".join(choices) + ")"


class IdConverter(IntegerConverter):
    """``<int:…>`` for every route: ASCII digits up to ``INT_MAX`` (PostgreSQL INTEGER), so a larger id is a
    404. The bound is in the regex, not only in ``to_python``: a rule whose conversion fails still counts as a
    path match for werkzeug, which would answer 405 when the same path has a rule for another method."""

    regex = digits_at_most(INT_MAX)

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None, max: int | None = INT_MAX,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


# --- text -----------------------------------------------------------------------------------------

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
INVISIBLE = re.compile("[\t\n\r\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")

CONTROL_MESSAGE = "不能包含控制字符（如 NUL、退格、转义符）"
NAME_MESSAGE = "不能包含换行、方向控制符或零宽字符等不可见字符（如 U+202E、U+200B）"

# The name rule as a JSON Schema pattern (ECMA and Python regex alike), for the OpenAPI document.
NAME_PATTERN = (r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064"
                r"\u2066-\u2069\ufeff\ufffe\uffff]*$")


def _codepoint(char: str) -> str:
    return f"U+{ord(char):04X}"


def control_error(text: str) -> Optional[str]:
    """The Chinese message for text that carries a control character, or None when it is clean."""
    found = CONTROL.search(text)
    return f"{CONTROL_MESSAGE}，发现 {_codepoint(found.group())}" if found else None


def name_error(text: str) -> Optional[str]:
    """``control_error``, and for names and identifiers the invisible formatting characters too."""
    found = CONTROL.search(text) or INVISIBLE.search(text)
    return f"{NAME_MESSAGE}，发现 {_codepoint(found.group())}" if found else None


def check_name(errors: dict[str, str], field: str, text: Optional[str], label: str = "名称") -> None:
    """Record ``field``'s name error (``label`` + message) in ``errors``; services call it for names."""
    message = name_error(text or "")
    if message and field not in errors:
        errors[field] = f"{label}{message}"


def check_text(errors: dict[str, str], field: str, text: Optional[str], *, short: str, label: str,
               minimum: int = 1, maximum: int = 5000) -> str:
    """A free text a service stores (grounds, an answer, a complaint): stripped; shorter than ``minimum`` →
    ``short`` (what to write, in the service's words), longer than ``maximum`` → "``label``不能超过 N 个字符";
    each beside ``field`` in ``errors``."""
    text = (text or "").strip()
    if len(text) < minimum:
        errors[field] = short
    elif len(text) > maximum:
        errors[field] = f"{label}不能超过 {maximum} 个字符"
    return text


def required_reason(text: Optional[str], *, missing: str, label: str, maximum: int,
                    missing_field: str = "必填") -> str:
    """The reason a service refuses to act without (withdrawing an invitation, removing an account):
    stripped; empty → ``missing`` (the field says ``missing_field``), longer than ``maximum`` →
    "``label``不能超过 N 个字符。"; each refused at once (422) beside the field ``reason``."""
    text = (text or "").strip()
    if not text:
        raise ValidationFailed(missing, {"reason": missing_field})
    if len(text) > maximum:
        raise ValidationFailed(f"{label}不能超过 {maximum} 个字符。", {"reason": f"不能超过 {maximum} 个字符"})
    return text


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) for every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            key_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield key_path, key
            yield from _strings(item, key_path)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, path)


def control_errors(value: Any, path: str = "") -> dict[str, str]:
    """{field: message} for every string in ``value`` (a JSON value or a form) that carries a control
    character; empty when all is clean."""
    errors: dict[str, str] = {}
    for where, text in _strings(value, path):
        message = control_error(text)
        if message and (where or "body") not in errors:
            errors[where or "body"] = message
    return errors


def refuse(errors: dict[str, str]) -> None:
    if errors:
        raise ValidationFailed("；".join(f"{k}：{v}" for k, v in errors.items()) + "。", errors)


# --- points -------------------------------------------------------------------------------------

def points_value(errors: dict[str, str], key: str, raw: Any, label: str, *, top: Decimal = Decimal("100")) -> Optional[Decimal]:
    """A point, weight or score as typed: a finite number within 0–``top`` with at most two decimal places. Every
    such column is Numeric(6, 2): a third place would be rounded on storing (39.995 → 40.00 on PostgreSQL, 39.99 on
    SQLite), so a check on what is typed would not hold for what is kept. None, with ``errors[key]``, otherwise."""
    try:
        value = Decimal(str(raw).replace(",", "").strip())
        if not value.is_finite():
            raise ArithmeticError
    except (ArithmeticError, AttributeError, TypeError):  # InvalidOperation is an ArithmeticError
        errors[key] = f"{label}必须是数字"
        return None
    if not Decimal("0") <= value <= top:
        errors[key] = f"{label}应在 0–{top.normalize():f} 之间"
        return None
    if value != value.quantize(Decimal("0.01")):
        errors[key] = f"{label}最多保留两位小数"
        return None
    return value


# --- money ----------------------------------------------------------------------------------------

WAN_MIN = Decimal("0.000001")  # one fen (0.01 元), in 万元
WAN_MAX = Decimal("100000000")  # 1e8 万元 = 1e12 元, far below Numeric(18, 2)


def money_error(amount_wan: Decimal, label: str, *, allow_zero: bool = False) -> Optional[str]:
    """The Chinese message for an amount in 万元 out of bounds, or None."""
    if not amount_wan.is_finite():
        return f"{label}必须是数字"
    if amount_wan <= 0:
        if allow_zero and amount_wan == 0:
            return None
        return f"{label}不能为负数" if allow_zero else f"{label}必须大于 0"
    if amount_wan < WAN_MIN:
        return f"{label}不能小于 0.000001 万元（0.01 元）"
    if amount_wan > WAN_MAX:
        return f"{label}不能超过 100,000,000 万元（1 万亿元），请核对单位（万元）"
    return None


def money_schema(description: str, *, allow_zero: bool = False) -> dict:
    """An amount in 万元 as the API takes it (a number, or a string such as "1,234.56"), with its bounds."""
    number = {"type": "number", "maximum": float(WAN_MAX)}
    number.update({"minimum": 0} if allow_zero else {"minimum": float(WAN_MIN)})
    return {"oneOf": [number, {"type": "string", "maxLength": 32, "example": "1,234.56"}],
            "description": f"{description}；{'0 或 ' if allow_zero else ''}0.000001–100000000 万元（0.01 元至 1 万亿元）"}


# --- the request guard ----------------------------------------------------------------------------

def _check_query_string() -> None:
    errors: dict[str, str] = {}
    for key, value in request.args.items(multi=True):
        message = control_error(key) or control_error(value)
        if message:
            errors.setdefault(key if not control_error(key) else "query", message)
    if not errors:
        return
    if request.path.startswith("/api/"):
        refuse(errors)
    raise DomainError("链接中含有不允许的控制字符（如 NUL），请检查链接。", errors)


def init_app(app: Flask) -> None:
    """Bounded ``<int:…>`` for every route (call before any blueprint is registered), and the query-string
    guard for every request (the API's bodies are checked in ``core.api.operation``)."""
    app.url_map.converters["int"] = IdConverter

    @app.before_request
    def refuse_control_characters():
        if control_error(request.path):
            raise NotFound()
        _check_query_string()
