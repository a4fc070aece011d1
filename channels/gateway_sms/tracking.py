"""Receipts matched to deliveries through persisted records; progress of a large send.

Each delivery the gateway accepted has an ``OpenSms``: its number, the text's digest, the
concatenation reference of its segments (kept for a part sent again) and one gateway message
id per segment. It is written to the channel's records (``d:<delivery id>``)
before ``send`` answers ACCEPTED, and again whenever a segment of a longer text gets its final
receipt, so a receipt arriving after a restart (even after SIGKILL) still finds its delivery:
``restore`` reads the open records back and tells the new gateway client of their ids.

A delivery is confirmed when every segment's receipt says delivered, and fails when one says
undeliverable, rejected, expired, deleted or unknown (the detail names the segment, the state
and the gateway's stat and error). Its outcome is kept (``s:<delivery id>``) until housekeeping,
so a confirmation the core missed in a crash is given again on ``resume``.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from broadcaster.channel import Confirmation, ConfirmationOutcome
from channels.gateway_sms.records import GatewayRecords
from drivers.smsgw.client import GatewayClient, receipt_key
from drivers.smsgw.results import Receipt, ReceiptState, SegmentResult

OPEN = "d:"
SETTLED = "s:"
EARLY_RECEIPTS = 10_000
RECENT_OUTCOMES = 100_000
"""Outcomes of this run kept in memory, so a send racing its delivery's last receipt sees it."""
PERMANENT_STATES = frozenset({ReceiptState.UNDELIVERABLE, ReceiptState.REJECTED})
"""Receipt states that say the number cannot get the message; the others (expired, deleted,
unknown) are passing causes a fallback channel may try to beat."""


@dataclass(slots=True)
class OpenSms:
    """One delivery the gateway accepted (in part or whole), awaiting receipts."""

    delivery_id: int
    number: str
    digest: str
    total: int
    attempt: int
    submitted_at: float
    reference: int | None = None
    ids: dict[int, str] = field(default_factory=dict)
    finals: dict[int, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every segment has a message id."""
        return len(self.ids) == self.total

    def to_record(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "digest": self.digest,
            "total": self.total,
            "attempt": self.attempt,
            "submitted_at": self.submitted_at,
            "reference": self.reference,
            "ids": {str(k): v for k, v in self.ids.items()},
            "finals": {str(k): v for k, v in self.finals.items()},
        }

    @classmethod
    def from_record(cls, delivery_id: int, record: dict[str, Any]) -> OpenSms:
        return cls(
            delivery_id=delivery_id,
            number=str(record["number"]),
            digest=str(record["digest"]),
            total=int(record["total"]),
            attempt=int(record["attempt"]),
            submitted_at=float(record["submitted_at"]),
            reference=record.get("reference"),
            ids={int(k): str(v) for k, v in record["ids"].items()},
            finals={int(k): str(v) for k, v in record["finals"].items()},
        )


class RateMeter:
    """Events per second over the last ``span`` whole seconds."""

    def __init__(self, clock: Callable[[], float], span: int = 5) -> None:
        self.clock = clock
        self.span = span
        self._buckets: deque[list[int]] = deque()

    def add(self, count: int = 1) -> None:
        second = int(self.clock())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
            while len(self._buckets) > self.span + 1:
                self._buckets.popleft()

    @property
    def rate(self) -> float:
        now = int(self.clock())
        counted = sum(n for second, n in self._buckets if now - self.span <= second < now)
        return counted / self.span


@dataclass(slots=True)
class Progress:
    """Counters of this run, for health and the console."""

    submitted: int = 0
    receipted: int = 0
    delivered: int = 0
    failed: int = 0
    unmatched: int = 0
    restored: int = 0


class ReceiptTracker:
    """Matches receipts to open deliveries and settles them (see the module docstring).

    ``emit(confirmation, passing)`` is called once per settled delivery; ``passing`` is True
    when a failure had a passing cause (a fallback channel may take it).
    """

    def __init__(
        self,
        records: GatewayRecords,
        emit: Callable[[Confirmation, bool], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records = records
        self.emit = emit
        self.clock = clock
        self._open: dict[int, OpenSms] = {}
        self._by_id: dict[str, tuple[int, int]] = {}
        self._early: OrderedDict[str, Receipt] = OrderedDict()
        self._recent: OrderedDict[int, Confirmation] = OrderedDict()
        self.progress = Progress()
        self.submit_rate = RateMeter(clock)
        self.receipt_rate = RateMeter(clock)

    @property
    def awaiting(self) -> int:
        """Deliveries accepted by the gateway still waiting for receipts."""
        return len(self._open)

    async def restore(self, client: GatewayClient) -> int:
        """Read open and settled records back; the client matches their receipts again."""
        for key, record in (await self.records.scan(OPEN)).items():
            sms = OpenSms.from_record(int(key.removeprefix(OPEN)), record)
            self._track(sms)
            for sequence, message_id in sms.ids.items():
                if sequence not in sms.finals:
                    result = SegmentResult(message_id, sequence, sms.total, "restored")
                    client.expect(result, sms.number)
        self.progress.restored = len(self._open)
        return len(self._open)

    async def settled(self, delivery_id: int) -> Confirmation | None:
        """The recorded outcome of a delivery already settled, None if it is not (one its
        receipts settle while the record is read counts as settled)."""
        recent = self._recent.get(delivery_id)
        if recent is not None:
            return recent
        record = await self.records.get(f"{SETTLED}{delivery_id}")
        if record is None:
            return self._recent.get(delivery_id)
        outcome = ConfirmationOutcome(record["outcome"])
        return Confirmation(delivery_id, outcome, str(record["detail"]))

    async def resume(self, delivery_ids: Iterable[int]) -> int:
        """Give again the recorded outcomes of ``delivery_ids`` the core has not recorded."""
        given = 0
        for delivery_id in delivery_ids:
            confirmation = await self.settled(delivery_id)
            if confirmation is not None:
                self.emit(confirmation, False)
                given += 1
        return given

    def begin(
        self,
        delivery_id: int,
        number: str,
        digest: str,
        total: int,
        attempt: int,
        fresh_after: float,
    ) -> OpenSms:
        """The delivery's open record: the earlier attempt's when it is for the same text and
        younger than ``fresh_after`` seconds (its segments are not sent again), else a new one."""
        now = self.clock()
        found = self._open.get(delivery_id)
        if (
            found is not None
            and found.digest == digest
            and found.total == total
            and (not found.complete or now - found.submitted_at < fresh_after)
        ):
            return found
        if found is not None:
            self._untrack(found)
        sms = OpenSms(delivery_id, number, digest, total, attempt, now)
        self._open[delivery_id] = sms
        return sms

    def accepted(self, sms: OpenSms, result: SegmentResult) -> None:
        """The gateway took one segment: match its receipt from now on."""
        sms.ids[result.sequence] = result.message_id
        key = receipt_key(result.message_id)
        self._by_id[key] = (sms.delivery_id, result.sequence)
        self.progress.submitted += 1
        self.submit_rate.add()
        early = self._early.pop(key, None)
        if early is not None:
            self.on_receipt(early)

    async def save(self, sent: Iterable[OpenSms]) -> None:
        """Write the records of deliveries the gateway took (in part or whole), in one
        commit; returns once it is committed. A delivery its receipts settled meanwhile has
        its outcome recorded instead."""
        records = {
            f"{OPEN}{s.delivery_id}": s.to_record() for s in sent if s.delivery_id in self._open
        }
        await self.records.put_many(records)

    def on_receipt(self, receipt: Receipt) -> None:
        """A receipt from the gateway client (its callback)."""
        key = receipt_key(receipt.message_id)
        found = self._by_id.get(key)
        if found is None:
            # the submit's answer may still be on its way to ``accepted``
            self._early[key] = receipt
            while len(self._early) > EARLY_RECEIPTS:
                self._early.popitem(last=False)
                self.progress.unmatched += 1
            return
        if not receipt.state.final:
            return
        delivery_id, sequence = found
        del self._by_id[key]
        sms = self._open.get(delivery_id)
        if sms is None:
            return
        self.progress.receipted += 1
        self.receipt_rate.add()
        sms.finals[sequence] = _final_text(receipt)
        if receipt.state is not ReceiptState.DELIVERED:
            detail = f"segment {sequence}/{sms.total} to {sms.number}: {sms.finals[sequence]}"
            self._settle(sms, ConfirmationOutcome.FAILED, detail, receipt.state)
        elif len(sms.finals) == sms.total and sms.complete:
            detail = f"{sms.total} of {sms.total} segments delivered to {sms.number}"
            self._settle(sms, ConfirmationOutcome.CONFIRMED, detail, receipt.state)
        else:
            self.records.put_later(f"{OPEN}{delivery_id}", sms.to_record())

    def _settle(
        self, sms: OpenSms, outcome: ConfirmationOutcome, detail: str, state: ReceiptState
    ) -> None:
        self._untrack(sms)
        if outcome is ConfirmationOutcome.CONFIRMED:
            self.progress.delivered += 1
        else:
            self.progress.failed += 1
        confirmation = Confirmation(sms.delivery_id, outcome, detail)
        self._recent[sms.delivery_id] = confirmation
        while len(self._recent) > RECENT_OUTCOMES:
            self._recent.popitem(last=False)
        self.records.put_later(f"{OPEN}{sms.delivery_id}", None)
        self.records.put_later(
            f"{SETTLED}{sms.delivery_id}", {"outcome": outcome.value, "detail": detail}
        )
        self.emit(confirmation, state not in PERMANENT_STATES)

    def forget(self, delivery_id: int) -> None:
        """Drop a delivery's open record (its send failed for good before acceptance)."""
        sms = self._open.get(delivery_id)
        if sms is not None:
            self._untrack(sms)
            self.records.put_later(f"{OPEN}{delivery_id}", None)

    def _track(self, sms: OpenSms) -> None:
        self._open[sms.delivery_id] = sms
        for sequence, message_id in sms.ids.items():
            if sequence not in sms.finals:
                self._by_id[receipt_key(message_id)] = (sms.delivery_id, sequence)

    def _untrack(self, sms: OpenSms) -> None:
        self._open.pop(sms.delivery_id, None)
        for message_id in sms.ids.values():
            self._by_id.pop(receipt_key(message_id), None)


def _final_text(receipt: Receipt) -> str:
    """``delivered``, or e.g. ``expired (EXPIRED, error 001)``."""
    state = str(receipt.state.value)
    if receipt.state is ReceiptState.DELIVERED:
        return state
    parts = [
        part for part in (receipt.stat, f"error {receipt.error}" if receipt.error else "") if part
    ]
    return f"{state} ({', '.join(parts)})" if parts else state
