"""Stops that could not reach their box: a box offline when its alert was cancelled or updated
(a TCP box whose link was down, a hub cut off from its broker) may still hold the play
command, and resumes it when it restarts (docs/protocols/speaker.md section 3.4). Its ``stop``
is kept here and sent the moment the box is back online, unless it has expired by then.
Kept in memory: a server restart forgets them (the box then plays the alert out).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from drivers.speaker import Stop

BOXES_KEPT = 100_000
"""Boxes whose stops are kept (the oldest are forgotten)."""


class UnsentStops:
    """Each box's stops that wait for it to come back."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._waiting: OrderedDict[str, list[Stop]] = OrderedDict()

    def __len__(self) -> int:
        return sum(map(len, self._waiting.values()))

    def keep(self, box_id: str, stop: Stop) -> None:
        """``stop`` did not reach ``box_id``: send it when the box is back."""
        self._waiting.setdefault(box_id, []).append(stop)
        self._waiting.move_to_end(box_id)
        while len(self._waiting) > BOXES_KEPT:
            self._waiting.popitem(last=False)

    def take(self, box_id: str) -> list[Stop]:
        """The stops waiting for ``box_id`` that have not expired, forgotten here."""
        now = self._clock()
        return [s for s in self._waiting.pop(box_id, ()) if s.expires_at > now]
