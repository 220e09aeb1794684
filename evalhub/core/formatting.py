"""Numbers as the bureaus write them: one definition for pages (the ``num`` and ``wan`` filters), exports and
messages."""
from __future__ import annotations

from decimal import Decimal
from typing import Any


def points_text(value: Any) -> str:
    """Points, weights and percentages as people write them: 90, 87.5 (not a Numeric column's 90.00, nor
    an exponent); nothing for no value."""
    if value is None:
        return ""
    # str() first: a float's binary expansion is not what anyone typed.
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return f"{number.normalize():f}"


def wan(value: Any) -> str:
    """Yuan → 万元 with thousands separators, as the bureaus' tables show money."""
    if value is None:
        return ""
    return f"{value / 10000:,.2f}"
