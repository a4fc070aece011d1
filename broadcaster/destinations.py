"""How sends went per destination (a push service, a webhook receiver), for health pages.

A channel that sends to many destinations, some of them chosen by outsiders (the push service
of a resident's browser), must not let one destination's failures mark the whole channel
unhealthy: anyone could then turn the public ``/healthz`` to "degraded" by subscribing an
endpoint they control. The channel's ``health().ok`` says whether the channel itself can send;
:class:`DestinationStats` keeps, destination by destination, how many sends went through and
how many failed, and the last failure while it is the latest outcome. Channels report it as
their health's ``devices`` (the console's devices page, ``/healthz`` details for API clients).

Only the ``capacity`` destinations used most recently are kept, so destinations an outsider
makes up cannot grow the table without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_CAPACITY = 50


@dataclass(slots=True)
class DestinationRecord:
    """Counts of one destination since start; ``last_error`` is empty after a success."""

    sent: int = 0
    failed: int = 0
    last_error: str = ""
    updated_at: float = 0.0

    def fields(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "last_error": self.last_error,
            "updated_at": self.updated_at,
        }


class DestinationStats:
    """Send outcomes per destination, the ``capacity`` most recently used ones."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.sent_total = 0
        self.failed_total = 0
        self._records: OrderedDict[str, DestinationRecord] = OrderedDict()

    def _record(self, destination: str) -> DestinationRecord:
        record = self._records.pop(destination, None) or DestinationRecord()
        self._records[destination] = record
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)
        return record

    def sent(self, destination: str, now: float) -> None:
        record = self._record(destination)
        record.sent += 1
        record.last_error = ""
        record.updated_at = now
        self.sent_total += 1

    def failed(self, destination: str, error: str, now: float) -> None:
        record = self._record(destination)
        record.failed += 1
        record.last_error = error or "failed"
        record.updated_at = now
        self.failed_total += 1

    def devices(self) -> dict[str, dict[str, Any]]:
        """The records as a health's ``devices``: destination → fields."""
        return {name: record.fields() for name, record in self._records.items()}

    def summary(self, noun: str) -> str:
        """One line, e.g. ``120 sent, 4 failed; 1 of 3 push services failing``."""
        failing = sum(1 for record in self._records.values() if record.last_error)
        line = f"{self.sent_total} sent, {self.failed_total} failed"
        if self._records:
            line += f"; {failing} of {len(self._records)} {noun} failing"
        return line


def origin(url: str) -> str:
    """A URL's host and port, without any user name, password, path or query (which may
    carry secrets); the start of ``url`` when it has no host."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    return netloc.rpartition("@")[2] or url[:80]
