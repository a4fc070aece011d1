"""What a box remembers of the stops it carried out (docs/protocols/speaker.md, section 3.3).

A ``stop`` cancels an alert for good, not only what plays or waits when it arrives: a play
command for that alert (for every alert, after a stop of ``"*"``) issued no later than the
stop is refused with ``failed``/``stopped`` whenever it arrives, be it a replay within its
validity, a resend, or a copy that came the other way (the area topic and the box's own).
A record lasts until its stop expires, the latest a play command it stops may run (servers
give a stop an ``expires_at`` no earlier than the play commands it cancels). The journal
keeps the stop's signed command at least that long, so the agent recalls the record from it
after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drivers.speaker.messages import ALL_ALERTS, PlayCommand, Stop


@dataclass(frozen=True, slots=True)
class StopRecord:
    """One stop carried out: the alert it stopped (``"*"``: every one), when the server
    issued it, and until when it stands."""

    alert_id: str
    issued_at: datetime
    expires_at: datetime


class StopMemory:
    """The stops a box carried out that have not expired."""

    def __init__(self) -> None:
        self._records: list[StopRecord] = []

    def remember(self, stop: Stop) -> None:
        """Record a stop the box carried out (or recalled from its journal)."""
        self._records.append(StopRecord(stop.alert_id, stop.issued_at, stop.expires_at))

    def stops(self, command: PlayCommand, now: datetime) -> bool:
        """Whether a stop already carried out cancels ``command``: one for its alert (or for
        every alert) issued no earlier than the command. Drops the records that expired."""
        self._records = [r for r in self._records if r.expires_at > now]
        return any(
            r.alert_id in (ALL_ALERTS, command.alert_id) and command.issued_at <= r.issued_at
            for r in self._records
        )
