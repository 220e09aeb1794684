"""Timestamps are naive UTC in the database (portable across SQLite and PostgreSQL) and Beijing time on screen.

Every service reads the time here (``utcnow``, ``beijing_today``), so the demo can run its 2023–2025 history
on the days it happened through ``simulated_clock`` — off unless a caller opens it, refused in production."""
from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta, timezone
from typing import Iterator

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

# (simulated UTC instant, perf_counter() when it was set): the simulated clock runs on from there, so events
# recorded one after another stay in order. None: the real clock (always, outside ``simulated_clock``). A context
# variable, not a module global: each thread has its own (a thread starts on the real clock), so two threads opening
# and closing simulated clocks at once (a race test) cannot leave one set for whoever runs next.
_simulated: ContextVar[tuple[datetime, float] | None] = ContextVar("evalhub_simulated_clock", default=None)


def utcnow() -> datetime:
    simulated = _simulated.get()
    if simulated is not None:
        at, since = simulated
        return at + timedelta(seconds=time.perf_counter() - since)
    return datetime.now(timezone.utc).replace(tzinfo=None)


def set_simulated_now(at: datetime) -> None:
    """Move the simulated clock to ``at`` (naive UTC). Only inside ``simulated_clock``."""
    if _simulated.get() is None:
        raise RuntimeError("simulated time is only set inside timeutil.simulated_clock()")
    _simulated.set((at, time.perf_counter()))


@contextmanager
def simulated_clock(at: datetime) -> Iterator[None]:
    """Run the block as if it were ``at`` (naive UTC), the clock moving on from there; the real clock returns
    afterwards. For the demo loader only: refused when the application runs in production."""
    from flask import current_app, has_app_context

    if has_app_context() and current_app.config.get("ENV_NAME") == "production":
        raise RuntimeError("生产环境不能使用模拟时钟。")
    token = _simulated.set((at, time.perf_counter()))
    try:
        yield
    finally:
        _simulated.reset(token)


def to_beijing(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).astimezone(BEIJING)


def beijing_date(value: datetime) -> date:
    """The Beijing date of a stored (naive UTC) instant: what a deadline, a year or a page compares."""
    return value.replace(tzinfo=timezone.utc).astimezone(BEIJING).date()


def beijing_day_start(day: date) -> datetime:
    """The naive-UTC instant at which ``day`` begins in Beijing: a stored instant is on or after Beijing's ``day``
    when it is at least this (compared in SQL as it is stored)."""
    return datetime(day.year, day.month, day.day, tzinfo=BEIJING).astimezone(timezone.utc).replace(tzinfo=None)


def beijing_year_start(year: int) -> datetime:
    """The naive-UTC instant at which ``year`` begins in Beijing. A stored instant is of Beijing's ``year`` when
    ``beijing_year_start(year) <= t < beijing_year_start(year + 1)`` — a range, so SQL compares it on an index
    and both databases agree (extracting the year would take the UTC year)."""
    return beijing_day_start(date(year, 1, 1))


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier ("前3年内" looks back to it); 29 February gives 28 February."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def beijing_today() -> date:
    return utcnow().replace(tzinfo=timezone.utc).astimezone(BEIJING).date()


def format_beijing(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    local = to_beijing(value)
    return local.strftime(fmt) if local else ""
