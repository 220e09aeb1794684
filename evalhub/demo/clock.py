"""The demo's calendar: its history happens on the days it would have (2023–2025), the open work of the
current cycle relative to the day the demo is loaded.

The services read the time from ``core.timeutil``; inside ``core.timeutil.simulated_clock`` (opened by
``load_demo``) the demo moves that clock with ``at`` before each step, so every timestamp, timeline row and
audit event is written by the service itself, on its day. ``run_stories`` interleaves many stories
(generators that yield the Beijing time of their next step) in time order, so the clock only moves forward
while they run and each engagement's events follow their causes.
"""
from __future__ import annotations

import heapq
import random
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator

from evalhub.core import draws, timeutil
from evalhub.core.timeutil import BEIJING

Story = Iterator[datetime]


def beijing(day: date | datetime, hour: int = 10, minute: int = 0) -> datetime:
    """A naive Beijing wall-clock time: a date at ``hour:minute``, or a datetime unchanged."""
    if isinstance(day, datetime):
        return day
    return datetime.combine(day, time(hour, minute))


def to_utc(local: datetime) -> datetime:
    return local.replace(tzinfo=BEIJING).astimezone(timezone.utc).replace(tzinfo=None)


def now_local() -> datetime:
    """The (simulated) time in Beijing, naive."""
    return timeutil.to_beijing(timeutil.utcnow()).replace(tzinfo=None)


def at(when: date | datetime, hour: int | None = None, minute: int | None = None, *,
       forward_only: bool = False) -> datetime:
    """Set the simulated clock to ``when`` (Beijing): a datetime as it is, or a date at ``hour:minute`` (10:00 by
    default). ``forward_only``: never move it back (a story step scheduled for a moment the previous steps have
    already run past happens right after them)."""
    if isinstance(when, datetime) and (hour is not None or minute is not None):
        # a datetime keeps its own time: an hour given with it would be silently ignored (the integrity story
        # opened its bids before their deadline whenever the demo was loaded before 17:00)
        raise TypeError("clock.at: give a date with an hour, or a datetime alone")
    local = beijing(when, 10 if hour is None else hour, minute or 0)
    if forward_only and local <= now_local():
        return now_local()
    timeutil.set_simulated_now(to_utc(local))
    return local


def run_stories(stories: list[Story]) -> None:
    """Run the stories' steps in time order (ties: in the order the stories were given). A story may add
    more stories while it runs through ``spawn``."""
    queue: list[tuple[datetime, int, Story]] = []
    counter = [0]

    def push(story: Story) -> None:
        try:
            when = next(story)
        except StopIteration:
            return
        heapq.heappush(queue, (when, counter[0], story))
        counter[0] += 1

    global _spawn
    saved, _spawn = _spawn, push
    try:
        for story in stories:
            push(story)
        while queue:
            when, _, story = heapq.heappop(queue)
            at(when, forward_only=True)
            push(story)
    finally:
        _spawn = saved


_spawn = None


def spawn(story: Story) -> None:
    """Add a story to the running ``run_stories`` (e.g. an approved plan's engagements)."""
    if _spawn is None:
        raise RuntimeError("spawn() only inside run_stories()")
    _spawn(story)


def workdays_after(day: date, n: int) -> date:
    """``n`` Monday–Friday days after ``day`` (the demo's own steps; deadlines come from the services)."""
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


@contextmanager
def seeded_draw_secrets(seed: int) -> Iterator[None]:
    """The demo is the same on every load: draw secrets (and the witnesses' default numbers) come from a fixed
    generator instead of the secrets module. They are recorded as usual, so every demo draw still verifies."""
    stream = random.Random(seed)
    original = draws.secrets.token_hex
    draws.secrets.token_hex = lambda n=16: "%0*x" % (2 * n, stream.getrandbits(8 * n))
    try:
        yield
    finally:
        draws.secrets.token_hex = original
