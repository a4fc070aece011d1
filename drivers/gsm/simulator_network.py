"""The simulated network behind an AT-modem simulator: recipient rules, records, status reports.

Decides, per recipient number, what the network does with a submitted segment (deliver, deliver
after temporary failures, fail for good, or never report) and schedules the matching
SMS-STATUS-REPORTs with TP-ST values from 3GPP TS 23.040 §9.2.3.15. Records every segment "the
network" received, decoded with the production codec, so tests can compare it with an
independent decoder.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.gsm.codec import SmsEncoding

STATUS_DELIVERED = 0x00
STATUS_CONGESTION = 0x20  # temporary error, SC still trying: congestion
STATUS_REMOTE_BUSY = 0x21  # temporary error, SC still trying: SME busy
STATUS_INCOMPATIBLE = 0x41  # permanent error: incompatible destination
STATUS_EXPIRED = 0x46  # permanent error: validity period expired


class RecipientBehaviour(enum.Enum):
    """What the simulated network does with messages to one number."""

    DELIVER = "deliver"
    TEMPORARY_THEN_DELIVER = "temporary"
    FAIL = "fail"
    SILENT = "silent"  # delivered or not, no report ever reaches the modem


@dataclass(frozen=True, slots=True)
class RecipientRule:
    """Behaviour for one number; ``temporary_reports`` pending reports precede delivery."""

    behaviour: RecipientBehaviour = RecipientBehaviour.DELIVER
    temporary_reports: int = 1
    temporary_status: int = STATUS_REMOTE_BUSY
    failure_status: int = STATUS_EXPIRED

    def statuses(self) -> list[int]:
        """The TP-ST values of the reports this rule produces, in order."""
        if self.behaviour is RecipientBehaviour.SILENT:
            return []
        if self.behaviour is RecipientBehaviour.FAIL:
            return [self.failure_status]
        if self.behaviour is RecipientBehaviour.TEMPORARY_THEN_DELIVER:
            return [self.temporary_status] * self.temporary_reports + [STATUS_DELIVERED]
        return [STATUS_DELIVERED]


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """One segment as the network received it."""

    modem: str
    message_reference: int
    number: str
    text: str
    encoding: SmsEncoding
    sequence: int
    total: int
    concat_reference: int | None
    status_report_requested: bool
    pdu_hex: str


@dataclass(slots=True)
class SimulatedNetwork:
    """Rules per number, the record of received segments, and a clock for delayed reports.

    One network can sit behind several simulated modems, as one operator sits behind a pool.
    ``report_delay`` is the time from ``+CMGS`` to the first report, ``report_gap`` the time
    between the reports of one segment.
    """

    report_delay: float = 0.0
    report_gap: float = 0.0
    default_rule: RecipientRule = field(default_factory=RecipientRule)
    rules: dict[str, RecipientRule] = field(default_factory=dict)
    listeners: list[Callable[[NetworkRecord], None]] = field(default_factory=list)
    _records: list[NetworkRecord] = field(default_factory=list, init=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, init=False)
    _timers: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list, init=False)
    _sequence: itertools.count[int] = field(default_factory=itertools.count, init=False)
    _clock: threading.Thread | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)

    def rule_for(self, number: str) -> RecipientRule:
        return self.rules.get(number, self.default_rule)

    def record(self, record: NetworkRecord) -> None:
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()
        for listener in self.listeners:
            listener(record)

    @property
    def records(self) -> list[NetworkRecord]:
        with self._changed:
            return list(self._records)

    def wait_for_records(self, count: int, timeout: float) -> list[NetworkRecord]:
        """Block until ``count`` segments were received; raises TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._records) >= count, timeout):
                raise TimeoutError(f"network received {len(self._records)} of {count} segments")
            return list(self._records)

    def schedule(self, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` on the network's clock thread after ``delay`` seconds."""
        with self._changed:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._sequence), action))
            if self._clock is None:
                self._stopping = False
                self._clock = threading.Thread(target=self._run_clock, name="gsm-sim-network")
                self._clock.daemon = True
                self._clock.start()
            self._changed.notify_all()

    def stop(self) -> None:
        """Drop pending reports and stop the clock thread."""
        with self._changed:
            self._stopping = True
            self._timers.clear()
            clock, self._clock = self._clock, None
            self._changed.notify_all()
        if clock is not None and clock is not threading.current_thread():
            clock.join()

    def _run_clock(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (
                    not self._timers or self._timers[0][0] > time.monotonic()
                ):
                    wait = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._changed.wait(wait)
                if self._stopping:
                    return
                _, _, action = heapq.heappop(self._timers)
            action()
