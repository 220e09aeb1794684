"""Long id lists cut into bounded pieces, for ``IN (...)`` lists and bulk inserts; and what a batch keeps in memory
while it runs (``BatchMemory``).

A statement with thousands of bound values is slow to plan on PostgreSQL and can pass SQLite's limit on host
parameters (32,766 since 3.32, 999 before); a region's pool or export runs to thousands, so every such read or
write goes through here, a few hundred values a statement.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

IN_LIST = 500  # values a statement, unless the caller knows better


def batches(values: Iterable[T], size: int = IN_LIST) -> Iterator[list[T]]:
    """``values`` in lists of at most ``size``, in order (none for no values)."""
    if size < 1:
        raise ValueError("size must be positive")
    values = values if isinstance(values, list) else list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


class BatchMemory(Generic[K, V]):
    """What a batch (a year's rescreen, the demo's archive) keeps in memory while it runs and nobody keeps after:
    ``memory`` is None outside ``kept()``, a dict inside (one thread; a block inside another shares the outer's)."""

    def __init__(self) -> None:
        self.memory: dict[K, V] | None = None

    @contextmanager
    def kept(self) -> Iterator[None]:
        outer = self.memory
        self.memory = {} if outer is None else outer
        try:
            yield
        finally:
            self.memory = outer
