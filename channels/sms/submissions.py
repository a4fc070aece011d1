"""The record of what an SMS channel submitted, in the store, so a restart sends nothing twice.

The record lives in the channel's records (:class:`~broadcaster.channel.RecordStore`, the
``channel_records`` table of the store every node shares): one JSON record per delivery under
``submission:<idempotency key>``, and ``delivery:<id>`` naming the key of a delivery, which
status reports carry. A write is committed when it returns.

Per delivery, under its idempotency key: the delivery id and the attempt whose pool reference
(``<delivery id>/<attempt>``) the segments carry, the number, a digest of the text, the segment
count, the concatenation reference (TS 23.040 §9.2.3.24.1), when the validity period ends
(TP-VP, §9.2.3.12: the network gives up then) and when the alert expires, and the outcome once
settled. Per segment: the modem, its TP-MR, its state from the status reports and the last
TP-ST. A segment is written as soon as the network accepted it, before the next one is sent.
Records are pruned ``KEEP_AFTER_EXPIRY`` after their alert expired, or ``KEEP_SETTLED`` after
their outcome was written, whichever comes first.

Errors: SubmissionStoreError (a ChannelError) says what could not be read or written.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from broadcaster.channel import RecordStore
from broadcaster.errors import ChannelError
from channels.sms.tracking import pool_reference
from drivers.gsm import SegmentSubmission, SmsResume

log = logging.getLogger(__name__)

T = TypeVar("T")

KEEP_AFTER_EXPIRY = 86_400.0
"""Seconds a record is kept after its alert expired (the core sends nothing after expiry)."""

KEEP_SETTLED = 2 * 86_400.0
"""Seconds a settled record is kept: long enough for the core to have recorded its outcome."""

_SUBMISSION = "submission:"
_DELIVERY = "delivery:"


class SubmissionStoreError(ChannelError):
    """The record of submissions cannot be opened, read or written."""


def text_digest(text: str) -> str:
    """The digest that tells whether a re-rendered SMS is still the text that was sent."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """One submitted segment and what its reports said (``submitted`` until the first)."""

    sequence: int
    total: int
    modem: str
    message_reference: int
    concat_reference: int | None
    state: str
    status: int | None

    def submission(self) -> SegmentSubmission:
        return SegmentSubmission(
            self.sequence, self.total, self.modem, self.message_reference, self.concat_reference
        )


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    """What was submitted for one delivery."""

    key: str
    delivery_id: int
    attempt: int
    number: str
    digest: str
    total: int
    concat_reference: int | None
    valid_until: float
    expires_at: float
    outcome: str | None
    detail: str | None
    segments: tuple[SegmentRecord, ...]

    @property
    def reference(self) -> str:
        return pool_reference(self.delivery_id, self.attempt)

    @property
    def complete(self) -> bool:
        """Every segment was accepted by the network."""
        return [s.sequence for s in self.segments] == list(range(1, self.total + 1))

    @property
    def provider_ref(self) -> str:
        return ",".join(f"{s.modem}:{s.message_reference}" for s in self.segments)

    def submissions(self) -> tuple[SegmentSubmission, ...]:
        return tuple(segment.submission() for segment in self.segments)

    def resume(self) -> SmsResume:
        return SmsResume(self.concat_reference, self.submissions())


class SubmissionStore:
    """The record of one channel instance in its records; ``open`` before use, ``close`` after.

    Changes of one record are read, changed and written under one lock, so a report and a
    segment of one delivery never overwrite each other.
    """

    def __init__(self, records: RecordStore | None, name: str = "sms") -> None:
        self._records = records
        self._name = name
        self._open = False
        self._lock = asyncio.Lock()
        self._settling: set[asyncio.Task[None]] = set()

    def _label(self) -> str:
        return f"the SMS record of channel {self._name}"

    async def open(self) -> None:
        """Check the record can be read; SubmissionStoreError if it cannot."""
        if self._records is None:
            raise SubmissionStoreError(f"{self._label()} needs the store's channel records")
        self._open = True
        try:
            await self._read(lambda records: records.items(_SUBMISSION))
        except SubmissionStoreError:
            self._open = False
            raise

    async def close(self) -> None:
        """Finish the writes already started; later calls say the record is not open."""
        await self._settled()
        self._open = False

    def _store(self) -> RecordStore:
        if not self._open or self._records is None:
            raise SubmissionStoreError(f"{self._label()} is not open")
        return self._records

    async def _settled(self) -> None:
        """Let the outcomes already being written land first, as they were asked first."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def _read(self, read: Callable[[RecordStore], Awaitable[T]]) -> T:
        await self._settled()
        try:
            return await read(self._store())
        except SubmissionStoreError:
            raise
        except Exception as exc:
            raise SubmissionStoreError(f"{self._label()} cannot be read: {exc}") from exc

    async def _write(self, write: Callable[[RecordStore], Awaitable[T]]) -> T:
        await self._settled()
        async with self._lock:
            try:
                return await write(self._store())
            except SubmissionStoreError:
                raise
            except Exception as exc:
                raise SubmissionStoreError(f"{self._label()} cannot be written: {exc}") from exc

    async def load(self, key: str) -> SubmissionRecord | None:
        """The record of the delivery with idempotency key ``key``, if there is one."""
        found = await self._read(lambda records: records.get(_SUBMISSION + key))
        return None if found is None else _record(found)

    async def begin(
        self,
        key: str,
        *,
        delivery_id: int,
        attempt: int,
        number: str,
        digest: str,
        total: int,
        now: float,
        valid_until: float,
        expires_at: float,
    ) -> None:
        """Start the record of a new transmission of ``key``, replacing an older one."""

        async def write(records: RecordStore) -> None:
            earlier = await records.get(_DELIVERY + str(delivery_id))
            if earlier is not None and earlier != key:
                await records.delete(_SUBMISSION + str(earlier))
            await records.put(
                _SUBMISSION + key,
                {
                    "key": key,
                    "delivery_id": delivery_id,
                    "attempt": attempt,
                    "number": number,
                    "text_digest": digest,
                    "total": total,
                    "concat_reference": None,
                    "created_at": now,
                    "valid_until": valid_until,
                    "expires_at": expires_at,
                    "outcome": None,
                    "detail": None,
                    "settled_at": None,
                    "segments": [],
                },
            )
            await records.put(_DELIVERY + str(delivery_id), key)

        await self._write(write)

    async def segment(self, key: str, segment: SegmentSubmission, now: float) -> None:
        """Record one accepted segment. Segments of another modem go: the pool sends the whole
        message again when it moves to another modem."""

        async def write(records: RecordStore) -> None:
            found = await records.get(_SUBMISSION + key)
            if found is None:
                return
            kept = [
                s
                for s in found["segments"]
                if s["modem"] == segment.modem and s["sequence"] != segment.sequence
            ]
            kept.append(
                {
                    "sequence": segment.sequence,
                    "modem": segment.modem,
                    "message_reference": segment.message_reference,
                    "state": "submitted",
                    "status": None,
                    "submitted_at": now,
                }
            )
            found["segments"] = sorted(kept, key=lambda s: int(s["sequence"]))
            found["total"] = segment.total
            found["concat_reference"] = segment.concat_reference
            await records.put(_SUBMISSION + key, found)

        await self._write(write)

    async def report(
        self, delivery_id: int, sequence: int, modem: str, reference: int, state: str, status: int
    ) -> None:
        """Record a segment's report; stored when this returns (the modem deletes its copy
        only then)."""

        async def write(records: RecordStore) -> None:
            key = await records.get(_DELIVERY + str(delivery_id))
            found = None if key is None else await records.get(_SUBMISSION + str(key))
            if found is None:
                return
            for s in found["segments"]:
                if (s["sequence"], s["modem"], s["message_reference"]) == (
                    sequence,
                    modem,
                    reference,
                ):
                    s["state"], s["status"] = state, status
            await records.put(_SUBMISSION + str(key), found)

        await self._write(write)

    def settle(self, delivery_id: int, outcome: str, detail: str, now: float) -> None:
        """Record the delivery's final outcome (in the background: nothing waits for it)."""

        async def write(records: RecordStore) -> None:
            key = await records.get(_DELIVERY + str(delivery_id))
            found = None if key is None else await records.get(_SUBMISSION + str(key))
            if found is None:
                return
            found.update(outcome=outcome, detail=detail, settled_at=now)
            await records.put(_SUBMISSION + str(key), found)

        async def settling() -> None:
            try:
                async with self._lock:
                    await write(self._store())
            except Exception as exc:
                log.error("cannot record the outcome of delivery %d: %s", delivery_id, exc)

        if self._open:
            task = asyncio.get_running_loop().create_task(settling())
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def open_records(self, since: float) -> list[SubmissionRecord]:
        """Unsettled records whose validity ended after ``since``: reports may still come."""
        found = await self._read(lambda records: records.items(_SUBMISSION))
        records = [_record(v) for _, v in found if v["outcome"] is None]
        return sorted((r for r in records if r.valid_until > since), key=lambda r: r.delivery_id)

    async def prune(self, now: float) -> int:
        """Delete the records of long expired alerts and long settled deliveries; how many."""

        async def write(records: RecordStore) -> int:
            pruned = 0
            for key, value in await records.items(_SUBMISSION):
                settled_at = value["settled_at"]
                if value["expires_at"] < now - KEEP_AFTER_EXPIRY or (
                    settled_at is not None and settled_at < now - KEEP_SETTLED
                ):
                    await records.delete(key)
                    await records.delete(_DELIVERY + str(value["delivery_id"]))
                    pruned += 1
            return pruned

        return await self._write(write)


def _record(found: dict[str, Any]) -> SubmissionRecord:
    total = int(found["total"])
    concat = found["concat_reference"]
    return SubmissionRecord(
        key=found["key"],
        delivery_id=int(found["delivery_id"]),
        attempt=int(found["attempt"]),
        number=found["number"],
        digest=found["text_digest"],
        total=total,
        concat_reference=None if concat is None else int(concat),
        valid_until=float(found["valid_until"]),
        expires_at=float(found["expires_at"]),
        outcome=found["outcome"],
        detail=found["detail"],
        segments=tuple(
            SegmentRecord(
                sequence=int(s["sequence"]),
                total=total,
                modem=s["modem"],
                message_reference=int(s["message_reference"]),
                concat_reference=None if concat is None else int(concat),
                state=s["state"],
                status=s["status"],
            )
            for s in found["segments"]
        ),
    )
