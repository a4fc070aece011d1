"""CAP date-time values: parsing and formatting (CAP 1.2 §3.3.2, "Date/Time Data").

CAP times are ``YYYY-MM-DDThh:mm:ss±hh:mm``: always with an offset, never ``Z``, never fractions
of a second, and UTC written ``-00:00``. Python's :meth:`datetime.isoformat` writes ``+00:00`` and
microseconds, so it is never used for output. ``Z`` and fractions of a second break the rule
but are found in real feeds; both have one meaning only (UTC; the same whole second), so
:func:`read_cap_time` reads them and says how the value was repaired, for the validator to report
as a repairable error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

_CAP_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<clock>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d+)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def parse_cap_time(text: str, *, strict: bool = False) -> datetime:
    """Read a CAP time into a timezone-aware datetime that keeps the written offset.

    ``+00:00`` and ``-00:00`` both mean UTC. In strict mode ``Z`` and fractions of a second
    raise :class:`ValueError`; otherwise they are accepted and the fraction is dropped.
    A time without an offset is always rejected.
    """
    value = text.strip()
    match = _CAP_TIME.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not a CAP time (YYYY-MM-DDThh:mm:ss±hh:mm, offset required)"
        )
    zone = match["zone"]
    if strict and zone == "Z":
        raise ValueError(f"{value!r} uses 'Z'; CAP writes UTC as -00:00")
    if strict and match["fraction"]:
        raise ValueError(f"{value!r} has fractions of a second, which CAP does not allow")
    try:
        naive = datetime.fromisoformat(f"{match['date']}T{match['clock']}")
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a real date and time: {exc}") from None
    if not 1 < naive.year < 9999:  # not to be shown in every zone, nor compared
        raise ValueError(f"{value!r} is out of the range of years 2 to 9998")
    return naive.replace(tzinfo=_zone_of(zone, value))


class TimeFault(NamedTuple):
    """How a CAP time breaks §3.3.2 and how it was repaired on reading."""

    message: str
    repair: str


def read_cap_time(text: str) -> tuple[datetime, TimeFault | None]:
    """Read a CAP time; a ``Z`` or a fraction of a second comes back repaired with its fault.

    Raises :class:`ValueError` for a value that cannot be repaired (no offset, not a date).
    """
    try:
        return parse_cap_time(text, strict=True), None
    except ValueError as strict_error:
        value = parse_cap_time(text)
        fixes = []
        match = _CAP_TIME.fullmatch(text.strip())
        if match is not None and match["zone"] == "Z":
            fixes.append("'Z' read as -00:00")
        if match is not None and match["fraction"]:
            fixes.append("the fraction of a second dropped")
        repair = f"{' and '.join(fixes)}: {format_cap_time(value)}"
        return value, TimeFault(str(strict_error), repair)


def _zone_of(zone: str, value: str) -> timezone:
    if zone == "Z":
        return UTC
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 14 or minutes > 59 or (hours == 14 and minutes):  # XML Schema's limit
        raise ValueError(f"{value!r} has an impossible UTC offset {zone} (at most 14:00)")
    offset = timedelta(hours=hours, minutes=minutes)
    if offset == timedelta(0):
        return UTC
    return timezone(-offset if zone[0] == "-" else offset)


def format_cap_time(dt: datetime) -> str:
    """Write ``dt`` as a CAP time: whole seconds, explicit offset, UTC as ``-00:00``.

    Naive datetimes are rejected with :class:`ValueError`: a warning time without a zone is
    ambiguous by up to a day.
    """
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError(f"{dt!r} has no timezone; CAP times need an explicit UTC offset")
    if offset % timedelta(minutes=1):
        raise ValueError(f"{dt!r} has a UTC offset with seconds, which CAP cannot write")
    minutes_total = int(offset.total_seconds()) // 60
    sign = "+" if minutes_total > 0 else "-"
    hours, minutes = divmod(abs(minutes_total), 60)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
        f"{sign}{hours:02d}:{minutes:02d}"
    )


def is_strict_cap_time(text: str) -> bool:
    """True when ``text`` is a CAP time exactly as the standard writes it."""
    try:
        parse_cap_time(text, strict=True)
    except ValueError:
        return False
    return True
