"""Cron expressions, their times read against the service's clock, and the times between two
instants.

APScheduler reads the machine's clock. :class:`ClockTrigger` wraps a cron trigger so that its
times are computed on the service's clock (a callable returning UNIX seconds) and handed to
APScheduler as the matching machine times: with the machine's own clock it changes nothing, and
tests set a clock just before a cron time to see the schedule fire without waiting for it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

Clock = Callable[[], float]

_CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")

_MAX_STEPS = 100_000
"""Cron times walked at most when looking for missed runs (a minutely cron over ~10 weeks)."""


def cron_trigger(expression: str, timezone: tzinfo) -> CronTrigger:
    """A trigger for a five-field crontab expression, weekdays numbered as cron does.

    APScheduler numbers weekdays from Monday (0); crontab from Sunday (0 and 7). Numbers in
    the weekday field are turned into names so ``0 10 * * 1`` means Monday, as in crontab.
    Raises ValueError with the reason for an invalid expression.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; a cron expression has 5:"
            " minute hour day month weekday"
        )

    def weekday(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if number > 7:
            raise ValueError(f"weekday {number} is out of range 0-7")
        return _CRON_WEEKDAYS[number]

    fields[4] = re.sub(r"(?<![/\d])\d+", weekday, fields[4])
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=day_of_week,
        timezone=timezone,
    )


def _whole_second(moment: datetime) -> datetime:
    """Cron times fall on whole seconds; rounding removes the jitter of the clock offset."""
    return (moment + timedelta(microseconds=500_000)).replace(microsecond=0)


class ClockTrigger(BaseTrigger):  # type: ignore[misc]
    """A cron trigger whose times are those of ``clock``, mapped onto the machine's clock."""

    def __init__(self, inner: CronTrigger, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock

    def _offset(self) -> timedelta:
        return timedelta(seconds=self.clock() - time.time())

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        offset = self._offset()
        previous = _whole_second(previous_fire_time + offset) if previous_fire_time else None
        found: datetime | None = self.inner.get_next_fire_time(previous, now + offset)
        return None if found is None else found - offset

    def __str__(self) -> str:
        return f"clock[{self.inner}]"


def instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def latest_fire_time(trigger: CronTrigger, after: float, until: float) -> tuple[float | None, int]:
    """The latest cron time ``t`` with ``after < t <= until`` (UNIX seconds) and how many there
    are (counted up to ``_MAX_STEPS``; walking them can take a while: call it in a thread)."""
    latest: float | None = None
    count = 0
    moment: datetime | None = trigger.get_next_fire_time(
        None, instant(after) + timedelta(microseconds=1)
    )
    while moment is not None and moment.timestamp() <= until and count < _MAX_STEPS:
        latest = moment.timestamp()
        count += 1
        moment = trigger.get_next_fire_time(moment, moment)
    return latest, count


def next_fire_time(trigger: CronTrigger, now: float) -> float | None:
    """The first cron time after ``now``."""
    moment: datetime | None = trigger.get_next_fire_time(
        None, instant(now) + timedelta(microseconds=1)
    )
    return None if moment is None else moment.timestamp()
