"""The wait an HTTP ``Retry-After`` header asks for (RFC 9110 section 10.2.3): a number of
seconds, or an HTTP date. Shared by the drivers and channels that honour it (a box's audio
download, a web push service's answer)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """The seconds ``value`` asks for (never below 0) at ``now`` (POSIX seconds; by default
    the time of the call), or None when it gives none that can be read."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # not "²", which isdigit() takes and float() not
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
