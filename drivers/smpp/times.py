"""SMPP 3.4 time fields (§7.1.1): ``YYMMDDhhmmsstnnp``, absolute or relative.

Absolute: the local time, ``t`` tenths of a second, ``nn`` the offset from UTC in quarter hours
and ``p`` ``+`` (ahead of UTC) or ``-``. Relative (``p`` = ``R``): years, months, days, hours,
minutes and seconds from the SMSC's current time, ``tnn`` = ``000``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from drivers.smsgw.errors import GatewayConfigError

MAX_RELATIVE = 99 * 86_400 + 86_399
"""The longest relative time written here: 99 days (months and years are left at 0, as an
SMSC reads their length as it likes)."""

_YEAR = 365 * 86_400
_MONTH = 30 * 86_400


def relative_time(seconds: float) -> str:
    """``seconds`` (rounded up, at most ``MAX_RELATIVE``) as a relative time."""
    total = min(MAX_RELATIVE, max(0, math.ceil(seconds)))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def seconds_until(value: str, now: float) -> float:
    """Seconds from ``now`` (a ``time.time()`` value) until the time ``value`` names (years of
    a relative time count 365 days, months 30); GatewayConfigError if it is none."""
    fields = value[:12]
    if len(value) != 16 or not (fields + value[12:15]).isdigit() or value[15] not in "R+-":
        raise GatewayConfigError(f"{value!r} is not an SMPP time (YYMMDDhhmmsstnnp)")
    years, months, days, hours, minutes, secs = (int(fields[i : i + 2]) for i in range(0, 12, 2))
    if value[15] == "R":
        return float(
            years * _YEAR + months * _MONTH + days * 86_400 + hours * 3_600 + minutes * 60 + secs
        )
    try:
        local = datetime(2000 + years, months, days, hours, minutes, secs, tzinfo=UTC)
    except ValueError as exc:
        raise GatewayConfigError(f"{value!r} is not an SMPP time: {exc}") from None
    offset = timedelta(minutes=15 * int(value[13:15]))
    moment = local - offset if value[15] == "+" else local + offset
    return moment.timestamp() + int(value[12]) / 10 - now
