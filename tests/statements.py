"""The SQL statements a block of a test sends, to count them (a page or a hook must not read once per row)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa

from evalhub.extensions import db


@contextmanager
def recorded() -> Iterator[list[str]]:
    """``with recorded() as seen:`` — every statement sent on the app's engine inside the block, in order."""
    seen: list[str] = []

    def listen(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listen)
