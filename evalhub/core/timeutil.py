"""Timestamps are naive UTC in the database (portable across SQLite and PostgreSQL) and Beijing time on screen."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_beijing(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).astimezone(BEIJING)


def beijing_today() -> date:
    return datetime.now(BEIJING).date()


def format_beijing(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    local = to_beijing(value)
    return local.strftime(fmt) if local else ""
