"""The working-day calendar: Monday–Friday, less national holidays, plus make-up working days (调休), with a
bureau's own corrections inherited down the bureau tree. Legal periods count working days (政府采购法 第五十二、
五十三条; objections to credit ratings), and a period counted in calendar days ends on a working day (民法典
第二百零三条: ``add_days``), so every level uses this one calendar."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable, NamedTuple, Optional

import sqlalchemy as sa

from evalhub.core import audit, bureau_tree, notifications
from evalhub.core.models import Bureau, CalendarDay, User
from evalhub.core.timeutil import beijing_date, beijing_day_start, beijing_today
from evalhub.extensions import db

__all__ = ["is_workday", "add_working_days", "add_working_days_each", "working_days_between", "roll_to_workday",
           "working_days_between_each", "add_days", "days_deadline", "day_end", "last_workday_before",
           "last_workday_before_each", "ensure_national_calendar", "is_provisional", "NATIONAL_CALENDAR",
           "late_workdays_each", "on_change", "correct", "Correction", "CalendarChange", "Period", "Moved",
           "recompute", "move", "keep_counts"]


def _calendar(bureau: Bureau, start: date, end: date) -> dict[date, bool]:
    """Exceptions to Monday–Friday in [start, end]: the bureau's own rows win over upper bureaus' over national
    rows; the national calendar written below holds wherever no row says otherwise, so a legal period counts
    the holidays whether or not anything has copied them into the table yet."""
    return _calendars([bureau], start, end)[bureau.id]


def _calendars(bureaus: Iterable[Bureau], start: date, end: date) -> dict[int, dict[date, bool]]:
    """``_calendar`` of several bureaus from one read of the table: {bureau id: exceptions}."""
    national = _national_days(start, end)
    chains = {b.id: bureau_tree.chain_ids(b) for b in bureaus}
    if not chains:
        return {}
    ids = sorted({i for chain in chains.values() for i in chain})
    rows = db.session.execute(sa.select(CalendarDay.bureau_id, CalendarDay.day, CalendarDay.is_workday).where(
        CalendarDay.day.between(start, end),
        sa.or_(CalendarDay.bureau_id.is_(None), CalendarDay.bureau_id.in_(ids)))).all()
    out = {}
    for bureau_id, chain in chains.items():
        rank = {b: i for i, b in enumerate(chain)}
        best: dict[date, tuple[int, bool]] = {}
        for row in rows:
            if row.bureau_id is not None and row.bureau_id not in rank:
                continue
            priority = rank.get(row.bureau_id, len(chain))
            if row.day not in best or priority < best[row.day][0]:
                best[row.day] = (priority, row.is_workday)
        out[bureau_id] = national | {d: w for d, (_, w) in best.items()}
    return out


def is_workday(bureau: Bureau, day: date) -> bool:
    return _open(_calendar(bureau, day, day), day)


def _open(exceptions: dict[date, bool], day: date) -> bool:
    return exceptions.get(day, day.weekday() < 5)


def _nth_workday_after(exceptions: dict[date, bool], start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` on a calendar read (``_calendar``'s exceptions)."""
    day, left = start, days
    while left > 0:
        day += timedelta(days=1)
        if _open(exceptions, day):
            left -= 1
    return day


def _workdays_in(exceptions: dict[date, bool], start: date, end: date) -> int:
    """The working days after ``start`` up to and including ``end`` on a calendar read."""
    day, count = start, 0
    while day < end:
        day += timedelta(days=1)
        if _open(exceptions, day):
            count += 1
    return count


def add_working_days(bureau: Bureau, start: date, days: int) -> date:
    """The date ``days`` working days after ``start`` (start itself not counted)."""
    return add_working_days_each(bureau, [start], days)[start]


def add_working_days_each(bureau: Bureau, starts: Iterable[date], days: int) -> dict[date, date]:
    """``add_working_days`` for several starts of one bureau, from one read of its calendar over the whole span
    (a page listing rows whose periods each run from a date of their own): {start: the date}."""
    starts = set(starts)
    if not starts:
        return {}
    exceptions = _calendar(bureau, min(starts), max(starts) + timedelta(days=days * 3 + 30))
    return {start: _nth_workday_after(exceptions, start, days) for start in starts}


def roll_to_workday(bureau: Bureau, day: date) -> date:
    """``day`` when it is a working day, else the first working day after it: the last day of a period that
    falls on a holiday (a weekend included) moves to the day after the holiday (民法典 第二百零三条)."""
    first, end = day, day + timedelta(days=30)  # a holiday run is shorter: one read of the calendar
    exceptions = _calendar(bureau, day, end)
    while not _open(exceptions, day):
        day += timedelta(days=1)
        if day > end:  # a bureau's own closure longer than that
            if day > first + timedelta(days=366):  # closed for a year: a mistake, not a holiday
                return first
            end = day + timedelta(days=30)
            exceptions = _calendar(bureau, day, end)
    return day


def add_days(bureau: Bureau, start: date, days: int) -> date:
    """The last day of a period of ``days`` calendar days from ``start``: the day of ``start`` not counted
    (民法典 第二百零一条), the ``days``-th day moved to the next working day when it is a holiday (第二百零三条).
    Every period the law or a bureau counts in calendar days ends here; working-day periods use
    ``add_working_days``, which never ends on a holiday."""
    return roll_to_workday(bureau, start + timedelta(days=days))


def days_deadline(bureau: Bureau, start: datetime, days: int) -> datetime:
    """``add_days`` from a stored (naive UTC) instant, as the stored instant the period ends: the end of its last
    day in Beijing (第二百零三条: "期间的最后一日的截止时间为二十四时") — 23:59:59, within that day so that its Beijing
    date is the last day itself (a fraction of a second would be rounded into the next day by SQLite's date())."""
    return day_end(add_days(bureau, beijing_date(start), days))


def day_end(last: date) -> datetime:
    """The stored (naive UTC) instant a period whose last day is ``last`` ends: 23:59:59 Beijing of that day
    (``days_deadline``; a hook moving such a deadline stores its new day the same way)."""
    return beijing_day_start(last + timedelta(days=1)) - timedelta(seconds=1)


def last_workday_before(bureau: Bureau, day: date) -> date:
    """The latest working day strictly before ``day``. A period whose ``days``-th day is ``x`` has ended by
    ``day`` (``add_days`` < ``day``) exactly when ``x`` is on or before it, so a query finds the periods ended by
    ``day`` by their start (``start + days <= last_workday_before(day)``)."""
    return last_workday_before_each([bureau], day)[bureau.id]


def last_workday_before_each(bureaus: Iterable[Bureau], day: date) -> dict[int, date]:
    """``last_workday_before`` for several bureaus, from one read of the calendar: {bureau id: the date} (a list
    over a tree of bureaus whose corrections may differ)."""
    bureaus = list(bureaus)
    span = 31  # a holiday run is shorter; a bureau's own longer closure is read on
    while True:
        calendars = _calendars(bureaus, day - timedelta(days=span), day)
        out = {}
        for bureau_id, exceptions in calendars.items():
            for back in range(1, span + 1):
                candidate = day - timedelta(days=back)
                if _open(exceptions, candidate):
                    out[bureau_id] = candidate
                    break
        if len(out) == len(calendars) or span > 366:  # a bureau closed for a year is a mistake, not a holiday
            return {bureau_id: out.get(bureau_id, day - timedelta(days=1)) for bureau_id in calendars}
        span *= 4


def late_workdays_each(items: Iterable[tuple[Bureau, date]], day: date) -> list[int]:
    """For each (bureau, due date): how many working days ``day`` is after it, ``day`` counted as the working day it
    rolls to (0 when ``day`` is not after it) — from one read of the calendar for them all (a batch over every
    overdue item of a province)."""
    items = list(items)
    late = [(bureau, due) for bureau, due in items if day > due]
    if not late:
        return [0] * len(items)
    calendars = _calendars({b.id: b for b, _due in late}.values(), min(due for _b, due in late),
                           day + timedelta(days=31))
    out = []
    for bureau, due in items:
        if day <= due:
            out.append(0)
            continue
        exceptions, rolled = calendars[bureau.id], day
        while not _open(exceptions, rolled) and rolled < day + timedelta(days=31):
            rolled += timedelta(days=1)
        out.append(_workdays_in(exceptions, due, rolled))
    return out


def working_days_between(bureau: Bureau, start: date, end: date) -> int:
    """How many working days fall after ``start`` up to and including ``end`` (0 when end <= start)."""
    return working_days_between_each([(bureau, start, end)])[0]


def working_days_between_each(spans: Iterable[tuple[Bureau, date, date]]) -> list[int]:
    """``working_days_between`` for each (bureau, start, end), from one read of the calendar for them all (a job
    over every overdue row of a province)."""
    spans = list(spans)
    counted = [(bureau, start, end) for bureau, start, end in spans if end > start]
    if not counted:
        return [0] * len(spans)
    calendars = _calendars({b.id: b for b, _start, _end in counted}.values(), min(start for _b, start, _end in counted),
                           max(end for _b, _start, end in counted))
    return [_workdays_in(calendars[bureau.id], start, end) if end > start else 0 for bureau, start, end in spans]


# National holidays and make-up working days (国务院办公厅 notices) for 2023–2026; bureaus correct them.
# 2026: 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04).
NATIONAL_CALENDAR: list[tuple[str, bool, str]] = (
    [("2023-01-01", False, "元旦"), ("2023-01-02", False, "元旦")]
    + [(f"2023-01-{d}", False, "春节") for d in range(21, 28)] + [("2023-01-28", True, "春节调休"), ("2023-01-29", True, "春节调休")]
    + [("2023-04-05", False, "清明节")]
    + [("2023-04-29", False, "劳动节"), ("2023-04-30", False, "劳动节")] + [(f"2023-05-0{d}", False, "劳动节") for d in (1, 2, 3)]
    + [("2023-04-23", True, "劳动节调休"), ("2023-05-06", True, "劳动节调休")]
    + [(f"2023-06-{d}", False, "端午节") for d in (22, 23, 24)] + [("2023-06-25", True, "端午节调休")]
    + [("2023-09-29", False, "中秋节、国庆节"), ("2023-09-30", False, "中秋节、国庆节")]
    + [(f"2023-10-0{d}", False, "中秋节、国庆节") for d in range(1, 7)]
    + [("2023-10-07", True, "国庆节调休"), ("2023-10-08", True, "国庆节调休")]
    + [("2024-01-01", False, "元旦")]
    + [(f"2024-02-{d}", False, "春节") for d in range(10, 18)] + [("2024-02-04", True, "春节调休"), ("2024-02-18", True, "春节调休")]
    + [(f"2024-04-0{d}", False, "清明节") for d in (4, 5, 6)] + [("2024-04-07", True, "清明节调休")]
    + [(f"2024-05-0{d}", False, "劳动节") for d in range(1, 6)] + [("2024-04-28", True, "劳动节调休"), ("2024-05-11", True, "劳动节调休")]
    + [("2024-06-10", False, "端午节")]
    + [(f"2024-09-{d}", False, "中秋节") for d in (15, 16, 17)] + [("2024-09-14", True, "中秋节调休")]
    + [(f"2024-10-0{d}", False, "国庆节") for d in range(1, 8)] + [("2024-09-29", True, "国庆节调休"), ("2024-10-12", True, "国庆节调休")]
    +     [("2025-01-01", False, "元旦")]
    + [(f"2025-01-{d}", False, "春节") for d in (28, 29, 30, 31)] + [(f"2025-02-0{d}", False, "春节") for d in (1, 2, 3, 4)]
    + [("2025-01-26", True, "春节调休"), ("2025-02-08", True, "春节调休")]
    + [("2025-04-04", False, "清明节"), ("2025-04-05", False, "清明节"), ("2025-04-06", False, "清明节")]
    + [(f"2025-05-0{d}", False, "劳动节") for d in range(1, 6)] + [("2025-04-27", True, "劳动节调休")]
    + [("2025-05-31", False, "端午节"), ("2025-06-01", False, "端午节"), ("2025-06-02", False, "端午节")]
    + [(f"2025-10-0{d}", False, "国庆节、中秋节") for d in range(1, 9)]
    + [("2025-09-28", True, "国庆节调休"), ("2025-10-11", True, "国庆节调休")]
    # 2026: 国务院办公厅关于2026年部分节假日安排的通知 (4 November 2025)
    + [("2026-01-01", False, "元旦"), ("2026-01-02", False, "元旦"), ("2026-01-03", False, "元旦")]
    + [("2026-01-04", True, "元旦调休")]
    + [(f"2026-02-{d}", False, "春节") for d in range(15, 24)]
    + [("2026-02-14", True, "春节调休"), ("2026-02-28", True, "春节调休")]
    + [("2026-04-04", False, "清明节"), ("2026-04-05", False, "清明节"), ("2026-04-06", False, "清明节")]
    + [(f"2026-05-0{d}", False, "劳动节") for d in range(1, 6)] + [("2026-05-09", True, "劳动节调休")]
    + [("2026-06-19", False, "端午节"), ("2026-06-20", False, "端午节"), ("2026-06-21", False, "端午节")]
    + [("2026-09-25", False, "中秋节"), ("2026-09-26", False, "中秋节"), ("2026-09-27", False, "中秋节")]
    + [(f"2026-10-0{d}", False, "国庆节") for d in range(1, 8)]
    + [("2026-09-20", True, "国庆节调休"), ("2026-10-10", True, "国庆节调休")]
)


# The years written out above from their notice. A later year counts the statutory holidays of
# 《全国年节及纪念日放假办法》 (国务院令第798号, 2025: 元旦 1 day, 春节 4, 清明 1, 劳动节 2, 端午 1, 中秋 1, 国庆 3;
# 第六条: one on a weekend is made up on a working day) until its notice is entered: the law fixes those days a year
# ahead, the notice only adds the 调休 around them.
NOTICE_YEARS = range(2023, 2027)
_PROVISIONAL_NOTE = "（法定节假日，当年放假安排未录入，暂不含调休）"


@functools.cache
def _listed_days() -> dict[int, dict[date, tuple[bool, str]]]:
    years: dict[int, dict[date, tuple[bool, str]]] = {}
    for text, workday, note in NATIONAL_CALENDAR:
        day = date.fromisoformat(text)
        years.setdefault(day.year, {})[day] = (workday, note)
    return years


@functools.cache
def _year_days(year: int) -> dict[date, tuple[bool, str]]:
    """A year's national exceptions to Monday–Friday, with their notes: the notice as written above, else the
    statutory holidays (the lunar dates from the ``holidays`` package) and the make-up days that package carries
    once it has the year's notice."""
    if year in NOTICE_YEARS:
        return _listed_days().get(year, {})
    import holidays  # imported here: only years after the written notices need it

    # observed: a statutory holiday on a weekend is made up on the next working day (国务院令第798号 第六条)
    named = holidays.China(years=year, language="zh_CN")
    notice = sorted(d for d in holidays.China(years=year).weekend_workdays if d.year == year)
    note = "" if notice else _PROVISIONAL_NOTE
    days = {day: (False, f"{name}{note}") for day, name in named.items()}
    return days | {day: (True, "调休上班") for day in notice}


def is_provisional(year: int) -> bool:
    """Whether the year's working days count the statutory holidays only (its 调休 notice is not entered)."""
    return year not in NOTICE_YEARS and not any(workday for workday, _note in _year_days(year).values())


def _national_days(start: date, end: date) -> dict[date, bool]:
    days: dict[date, bool] = {}
    for year in range(start.year, end.year + 1):
        days |= {day: workday for day, (workday, _note) in _year_days(year).items() if start <= day <= end}
    return days


def ensure_national_calendar(through_year: int | None = None) -> int:
    """Copy the national calendar into the table, for the calendar page that lists it beside the bureaus'
    corrections: the noticed years, and the statutory holidays of the years after them up to ``through_year``
    (next year by default). The working-day rules do not depend on it (``_calendar`` reads the list itself)."""
    last = through_year or beijing_today().year + 1
    existing = set(db.session.execute(sa.select(CalendarDay.day).where(CalendarDay.bureau_id.is_(None))).scalars())
    added = 0
    for year in range(NOTICE_YEARS.start, last + 1):
        for day, (workday, note) in sorted(_year_days(year).items()):
            if day not in existing:
                db.session.add(CalendarDay(bureau_id=None, day=day, is_workday=workday, note=note))
                added += 1
    db.session.flush()
    return added


# === corrections: stored deadlines follow them ========================================================
#
# Many deadlines are computed from this calendar once and stored (a challenge period, the answer owed to an
# objection, a contract's announcement…). A bureau that corrects its calendar afterwards (the State Council's next
# year arrives in November and the region enters it before a release carries it; a county enters a local holiday
# late) would leave them counted on the wrong calendar. Only a bureau's correction recounts: national days added to
# ``NATIONAL_CALENDAR`` by a release do not (a year is provisional until then, ``is_provisional``).
# ``correct`` writes the correction and asks every registered hook (``on_change``: the domains above, which own
# the deadlines) to recompute what is still open and affected, in the correcting bureau and every bureau below
# that inherits the day. The rule of each period is ``recompute``'s, the same for every kind:
#
# - a period GRANTED to someone else (a supplier's challenge period, a firm's objection period, an evaluated
#   unit's fact-confirmation period) is never shortened once announced — it may only lengthen: they relied on the
#   date announced, and the law sets a minimum;
# - a DUTY of the bureau itself (answering a challenge or an objection, announcing or signing a contract) follows
#   the corrected calendar both ways, because the law fixes it — but never to before today (a duty cannot have
#   been done yesterday because of a correction made today);
# - a period already ended (or whose awaited act has happened) is history and never changes.


@dataclass(frozen=True)
class CalendarChange:
    """One correction as the hooks see it: ``bureaus`` are those whose working day ``day`` actually changed (the
    correcting bureau and those below without a row of their own for the day), now ``is_workday``."""

    day: date
    is_workday: bool
    bureaus: dict[int, Bureau]
    today: date


@dataclass
class Period:
    """A stored deadline to recompute: ``end`` stored, counted from ``start`` for ``days`` (working days, or
    calendar days rolled to a working day when ``calendar_days``). ``days`` None: stored before evalhub kept the
    count — derived from ``start`` and ``end`` on the calendar as it stood before the change, which is the calendar
    it was computed on. ``key`` is the hook's own (the row)."""

    key: Any
    bureau: Bureau
    start: date
    days: Optional[int]
    end: date
    granted: bool
    calendar_days: bool = False


class Moved(NamedTuple):
    """A stored deadline that moved: for the audit event, the bureau's notice and the parties'."""

    kind: str  # e.g. "procurement.challenge_until"
    row_id: int
    bureau_id: int  # the bureau whose deadline it is (its calendar)
    what: str  # 质疑期 / 质疑答复期限 …
    subject: str  # the project or rating named
    old: date
    new: date
    link: str
    firm_ids: tuple[int, ...] = ()  # firms told (each once, with all its deadlines that moved)
    users: tuple[User, ...] = ()  # people named (an evaluated unit's users)
    # experts told through their accounts (an expert is neither a bureau's user nor a firm's): each once, with
    # their own deadlines that moved; an expert without an account is not named (the bureau is told)
    experts: tuple[User, ...] = ()


_HOOKS: list[Callable[[CalendarChange], list[Moved]]] = []


def on_change(fn: Callable[[CalendarChange], list[Moved]]) -> Callable[[CalendarChange], list[Moved]]:
    """Register a domain's recomputation of its stored deadlines (called by ``correct``): it reads its open rows
    whose period the change affects, writes the new dates (``recompute``) and returns what moved."""
    _HOOKS.append(fn)
    return fn


def _ends(periods: list[Period]) -> dict[int, date]:
    """The end of each period (by index) on the calendar now, from one read of the table for every bureau."""
    if not periods:
        return {}
    bureaus = {p.bureau.id: p.bureau for p in periods}
    first = min(p.start for p in periods)
    last = max(p.start + timedelta(days=p.days * 3 + 60) for p in periods)
    calendars = _calendars(bureaus.values(), first, last)
    out: dict[int, date] = {}
    for i, p in enumerate(periods):
        exceptions = calendars[p.bureau.id]
        if p.calendar_days:
            day = p.start + timedelta(days=p.days)
            while not _open(exceptions, day) and day < last:
                day += timedelta(days=1)
            # a closure longer than the span read: the one-by-one rule (rare; a mistake more likely than a holiday)
            out[i] = day if day < last else add_days(p.bureau, p.start, p.days)
        else:
            out[i] = _nth_workday_after(exceptions, p.start, p.days)
    return out


def _derive_days(change: CalendarChange, periods: list[Period]) -> None:
    """``days`` of the working-day periods stored without it: the working days from start to the stored end on the
    calendar before the change — the one now, less the changed day where it falls inside (start, end]."""
    missing = [p for p in periods if p.days is None]
    if not missing:
        return
    bureaus = {p.bureau.id: p.bureau for p in missing}
    calendars = _calendars(bureaus.values(), min(p.start for p in missing), max(p.end for p in missing))
    for p in missing:
        count = _workdays_in(calendars[p.bureau.id], p.start, p.end)
        if p.start < change.day <= p.end:
            count += -1 if change.is_workday else 1
        p.days = max(count, 1)


def recompute(change: CalendarChange, periods: Iterable[Period]) -> list[tuple[Period, date]]:
    """The new end of each period the change affects, by the rule above: [(period, new end)] for those that move.
    ``days`` derived here (None before) is left on the period for the hook to store. A handful of statements
    whatever the number of periods: the calendar is read once for them all."""
    periods = [p for p in periods if p.bureau.id in change.bureaus and p.end >= change.today]
    _derive_days(change, periods)
    # affected: a working day inside (start, end] counts, a last day on the changed day rolls; a calendar-day
    # period only by the roll of its last day, from start + days to the stored end
    periods = [p for p in periods
               if (p.start + timedelta(days=p.days) <= change.day <= p.end if p.calendar_days
                   else p.start < change.day <= p.end)]
    ends = _ends(periods)
    out = []
    for i, p in enumerate(periods):
        new = max(ends[i], p.end) if p.granted else max(ends[i], change.today)
        if new != p.end:
            out.append((p, new))
    return out


def move(change: CalendarChange, periods: list[Period], attribute: str, describe: Callable[[Any, date, date], Moved],
         count: Optional[str] = None) -> list[Moved]:
    """What a hook does with its periods: recompute them, store each new end on its row's ``attribute`` and say
    what moved (``describe(row, old, new)``); ``count``: the row's attribute keeping the day count (keep_counts)."""
    moved = []
    for period, new in recompute(change, periods):
        row = period.key
        moved.append(describe(row, getattr(row, attribute), new))
        setattr(row, attribute, new)
    if count:
        keep_counts(periods, count)
    return moved


def keep_counts(periods: Iterable[Period], attribute: str) -> None:
    """A count ``recompute`` derived for a row stored before it was kept (``days`` None on the row) is kept on the
    row now, in its ``attribute``: the next correction counts with it."""
    for p in periods:
        if getattr(p.key, attribute) is None and p.days is not None:
            setattr(p.key, attribute, p.days)


class Correction(NamedTuple):
    row: CalendarDay
    moved: list[Moved]


def correct(bureau: Bureau, day: date, workday: bool, note: str, *, actor: User | None = None,
            today: date | None = None) -> Correction:
    """The one way a bureau's calendar is corrected: write its row for ``day``, recompute every open stored
    deadline the change affects in its tree (the registered hooks), record one audit event listing what moved and
    tell each bureau and party whose deadline moved (the notification matrix)."""
    today = today or beijing_today()
    tree = list(db.session.execute(sa.select(Bureau).where(Bureau.path.startswith(bureau.path, autoescape=True))
                                   .order_by(Bureau.path)).scalars())
    bureau_tree.hold_chains(tree)  # the walks up for every bureau below, in one statement
    before = {i: c.get(day, day.weekday() < 5) for i, c in _calendars(tree, day, day).items()}
    row = db.session.execute(sa.select(CalendarDay).where(CalendarDay.bureau_id == bureau.id,
                                                          CalendarDay.day == day)).scalar_one_or_none()
    if row is None:
        row = CalendarDay(bureau_id=bureau.id, day=day, is_workday=workday, note=note)
        db.session.add(row)
    row.is_workday, row.note = workday, note
    db.session.flush()
    after = {i: c.get(day, day.weekday() < 5) for i, c in _calendars(tree, day, day).items()}
    changed = {b.id: b for b in tree if before[b.id] != after[b.id]}
    moved: list[Moved] = []
    if changed:
        change = CalendarChange(day=day, is_workday=workday, bureaus=changed, today=today)
        for hook in _HOOKS:
            moved.extend(hook(change))
    kind = "工作日" if workday else "休息日"
    audit.record("calendar.changed", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name}工作日历：{day:%Y-%m-%d} 设为{kind}（{note}）"
                         + (f"，{len(moved)} 项未届满期限随之调整" if moved else ""),
                 payload={"day": day, "is_workday": workday, "note": note, "bureaus": sorted(changed),
                          "moved": [{"kind": m.kind, "id": m.row_id, "bureau_id": m.bureau_id, "old": m.old,
                                     "new": m.new} for m in moved]})
    _tell(bureau, day, kind, note, moved)
    return Correction(row, moved)


def _lines(moved: Iterable[Moved]) -> str:
    return "\n".join(f"{m.subject}：{m.what}由 {m.old:%Y-%m-%d} 调整为 {m.new:%Y-%m-%d}" for m in moved)


def _tell(bureau: Bureau, day: date, kind: str, note: str, moved: list[Moved]) -> None:
    """One message per bureau whose deadlines moved, per firm, per set of people named, per expert: each lists its
    own."""
    cause = f"{bureau.short_name}将 {day:%Y-%m-%d} 调整为{kind}（{note}）"
    groups: dict[tuple[str, Any], list[Moved]] = {}
    for m in moved:
        groups.setdefault(("bureau", m.bureau_id), []).append(m)
        for firm_id in m.firm_ids:
            groups.setdefault(("firm", firm_id), []).append(m)
        if m.users:
            groups.setdefault(("users", tuple(sorted(u.id for u in m.users))), []).append(m)
        for expert in m.experts:
            groups.setdefault(("expert", expert.id), []).append(m)
    people = {u.id: u for m in moved for u in m.users + m.experts}
    # every bureau's staff and every firm's users read at once, not a read a bureau or firm told
    with notifications.one_reading(bureau_ids=[key for audience, key in groups if audience == "bureau"],
                                   firm_ids=[key for audience, key in groups if audience == "firm"]):
        for (audience, key), listed in groups.items():
            fields = {"cause": cause, "count": len(listed), "items": _lines(listed)}
            link = listed[0].link if len(listed) == 1 else None
            if audience == "bureau":
                notifications.emit("deadlines_moved_bureau", link=link or "/credit/calendar", bureau_id=key, **fields)
            elif audience == "firm":
                notifications.emit("deadlines_moved_firm", link=link, firm_id=key, **fields)
            elif audience == "expert":
                notifications.emit("deadlines_moved_expert", link=link, users=[people[key]], **fields)
            else:
                notifications.emit("deadlines_moved_named", link=link, users=[people[i] for i in key], **fields)
