"""Long id lists cut into bounded pieces, for ``IN (...)`` lists and bulk inserts.

A statement with thousands of bound values is slow to plan on PostgreSQL and can pass SQLite's limit on host
parameters (32,766 since 3.32, 999 before); a region's pool or export runs to thousands, so every such read or
write goes through here, a few hundred values a statement.
"""
from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

IN_LIST = 500  # values a statement, unless the caller knows better


def batches(values: Iterable[T], size: int = IN_LIST) -> Iterator[list[T]]:
    """``values`` in lists of at most ``size``, in order (none for no values)."""
    if size < 1:
        raise ValueError("size must be positive")
    values = values if isinstance(values, list) else list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]
