"""The dispatcher: per-channel workers that send due deliveries, retry, and record the outcome.

For each channel instance one worker claims due deliveries (most urgent first) as long as the
channel has free slots (its ``concurrency``), waits for the channel's rate limit, and calls
``send``. Outcomes become :class:`~broadcaster.delivery.Transition` s, written in batches
together with the channel's confirmations by :mod:`broadcaster.recorder`.

Retry: a :class:`~broadcaster.errors.RetryableError` (or a timeout, or an unexpected exception
or answer, recorded as a channel fault by :mod:`broadcaster.faults`) queues the delivery again
after an exponential backoff with jitter, ``retry_base * 2^(attempt-1)`` capped at
``retry_max`` and drawn uniformly from its upper half, or after the error's ``retry_after``. A
retry that would fall after the alert's expiry marks the delivery ``expired`` instead. A
:class:`~broadcaster.errors.PermanentError` fails it.

On a shared store a delivery whose device another node holds is handed to that node, and a
channel whose one device is elsewhere is not claimed for (:mod:`broadcaster.routing`).

A sweeper expires what is past its deadline, requeues accepted deliveries that were never
confirmed in time, and cancels queued deliveries of cancelled or superseded alerts. On start,
deliveries a crash left in ``sending`` are queued again with the same idempotency key. When a
channel reports a device back, its queued retries are brought forward to now, in batches
(:mod:`broadcaster.availability`). While the disk is full, claims, records and sweeps pause and
try again (outcomes wait in memory), so dispatching goes on by itself once space returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.availability import RetryForwarder
from broadcaster.cap import Alert
from broadcaster.cap.serialize import from_json
from broadcaster.channel import (
    AlertMessage,
    Channel,
    Confirmation,
    ConfirmationOutcome,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.config import DispatcherConfig
from broadcaster.delivery import DeliveryState, Transition
from broadcaster.errors import (
    ChannelError,
    DiskFullError,
    PermanentError,
    RetryableError,
    StoreUnavailableError,
)
from broadcaster.faults import ChannelFaults
from broadcaster.ratelimit import TokenBucket
from broadcaster.recorder import DISK_FULL_PAUSE_SECONDS, Recorder
from broadcaster.rendition import Rendition, render
from broadcaster.routing import DeviceRouting
from broadcaster.store.alerts import AlertTable, InFlight
from broadcaster.store.db import Database
from broadcaster.store.outbox import ClaimedDelivery, Outbox
from broadcaster.tasks import TaskSet

log = logging.getLogger(__name__)

Clock = Callable[[], float]

_VERDICTS = (RetryableError, PermanentError, TimeoutError)
"""Send errors that are an answer about the delivery, not a bug of the channel."""


@dataclass(frozen=True, slots=True)
class ChannelSlot:
    """A running channel instance with its dispatch settings."""

    name: str
    channel: Channel
    concurrency: int
    rate_per_second: float
    confirm_timeout: float | None


class Dispatcher:
    def __init__(
        self,
        database: Database,
        channels: Sequence[ChannelSlot],
        config: DispatcherConfig,
        *,
        sender_name: str = "",
        clock: Clock = time.time,
        on_change: Callable[[], None] | None = None,
        faults: ChannelFaults | None = None,
    ) -> None:
        self.database = database
        self.faults = faults or ChannelFaults(clock)
        self.outbox = Outbox(database)
        self.alerts = AlertTable(database)
        self.channels = {slot.name: slot for slot in channels}
        self.config = config
        self.sender_name = sender_name
        self.clock = clock
        self.on_change = on_change
        self._routing = DeviceRouting(database, self.faults)
        self._tasks = TaskSet("dispatcher")
        self._forwarder = RetryForwarder(
            database, self.outbox, clock, lambda name: self.wake([name]), self._tasks
        )
        self._wake = {name: asyncio.Event() for name in self.channels}
        self._slot_free = {name: asyncio.Event() for name in self.channels}
        self._in_flight = dict.fromkeys(self.channels, 0)
        self._limits = {n: TokenBucket(s.rate_per_second) for n, s in self.channels.items()}
        self._recorder = Recorder(
            database,
            self.outbox,
            clock,
            self.faults,
            first_backoff=config.retry_base_seconds,
            on_written=self._written,
        )
        self._messages: OrderedDict[str, AlertMessage] = OrderedDict()
        self._loading: dict[str, asyncio.Future[AlertMessage]] = {}
        self._stopped_alerts: set[str] = set()
        self.sent_total = dict.fromkeys(self.channels, 0)
        self.failed_total: Counter[tuple[str, str]] = Counter()
        """Failed send attempts since start by (channel, ``retryable`` or ``permanent``)."""

    async def start(self) -> None:
        recovered = await self.database.run(self.outbox.recover_in_flight, self.clock())
        if recovered:
            log.info("resumed %d deliveries that were in flight at the last stop", recovered)
        for name, slot in self.channels.items():
            await self._resume_awaiting(name, slot)
        self._tasks.spawn(self._recorder.run(), name="recorder")
        self._tasks.spawn(self._sweeper(), name="sweeper")
        for name, slot in self.channels.items():
            self._tasks.spawn(self._worker(slot), name=f"worker:{name}")
            if type(slot.channel).confirmations is Channel.confirmations:
                slot.channel.confirm_into(self._recorder.sink(name))
            else:
                reading = self._recorder.read(name, slot.channel)
                self._tasks.spawn(reading, name=f"confirmations:{name}")

    async def _resume_awaiting(self, name: str, slot: ChannelSlot) -> None:
        """Hand the channel the deliveries it accepted before the restart and not confirmed."""
        rows = await self.database.run(self.outbox.awaiting_confirmation, name)
        try:
            await slot.channel.resume([await self._outgoing(row) for row in rows])
        except Exception as exc:
            self.faults.record(name, "resume", exc)
        else:
            if rows:
                log.info("channel %s: %d accepted deliveries tracked again", name, len(rows))

    async def stop(self) -> None:
        """Stop sending and every task of the dispatcher. What devices say is still taken: a
        channel reports acks until it has stopped, and :meth:`close` records them then. Only
        a device's word is: a failure or a request to send again, reported while channels
        stop, may be the stop's own doing (a transmitter's sequence cut off), so it is left
        out and the delivery resumed at the next start, as one in flight."""
        await self._tasks.close()
        for name, slot in self.channels.items():
            if type(slot.channel).confirmations is Channel.confirmations:
                slot.channel.confirm_into(_devices_word(self._recorder.sink(name)))

    async def close(self) -> None:
        """After the channels stopped: record what they reported, release this node's leases."""
        await self._tasks.close()
        for slot in self.channels.values():
            slot.channel.confirm_into(None)  # what is reported from now on waits in its queue
        await self._recorder.drain()
        if self.database.shared:
            try:
                released = await self.database.run(self.outbox.release_leases, self.clock())
            except (DiskFullError, StoreUnavailableError) as exc:
                log.warning("leases not released (they run out on their own): %s", exc)
            else:
                if released:
                    log.info("released %d deliveries in flight to the other nodes", released)

    def wake(self, channels: Sequence[str] | None = None) -> None:
        """Tell workers that new deliveries may be due."""
        for name in channels if channels is not None else list(self._wake):
            if name in self._wake:
                self._wake[name].set()

    async def targets_available(
        self, channel: str, target_ids: Sequence[str], *, reconnected: bool = True
    ) -> int:
        """A channel's devices came back: retry what waits for them now (and, when they
        ``reconnected``, what they did not confirm); returns how many."""
        return await self._forwarder.targets_available(channel, target_ids, reconnected)

    async def forward(self, source: str, delivery_id: int, channel: str, reason: str) -> int:
        """Queue ``source``'s delivery ``delivery_id`` for ``channel`` too (a fallback path)."""
        if channel not in self.channels or channel == source:
            raise ChannelError(f"channel {channel!r} is not running here")
        found = await self.database.run(
            self.outbox.forward, delivery_id, source, channel, reason, self.clock()
        )
        if found is None:
            raise ChannelError(f"delivery {delivery_id} of {source} is not of an active alert")
        self.wake([channel])
        return found

    async def stop_alerts(self, in_flight: Sequence[InFlight], alert_ids: Sequence[str]) -> None:
        """A Cancel or Update arrived: send nothing more for ``alert_ids``; stop what runs."""
        self._stopped_alerts.update(alert_ids)
        for item in in_flight:
            slot = self.channels.get(item.channel)
            if slot is None or not slot.channel.capabilities.can_stop:
                continue
            row = await self.database.run(self.outbox.get, item.delivery_id)
            if row is None:
                continue
            try:
                await slot.channel.cancel(await self._outgoing(row))
            except ChannelError as exc:
                log.warning("channel %s could not stop delivery %d: %s", slot.name, row.id, exc)
            except Exception as exc:
                self.faults.record(slot.name, "cancel", exc)

    async def _outgoing(self, row: ClaimedDelivery) -> OutgoingDelivery:
        return _outgoing(row, await self.message(row.alert_id))

    async def message(self, alert_id: str) -> AlertMessage:
        """The alert as channels see it, rendered once and cached.

        Concurrent first requests for one alert (thousands of sends starting together) share a
        single load instead of each reading and rendering the alert.
        """
        cached = self._messages.get(alert_id)
        if cached is not None:
            self._messages.move_to_end(alert_id)
            return cached
        loading = self._loading.get(alert_id)
        if loading is None:
            loading = self._tasks.spawn(self._load_message(alert_id), name=f"load:{alert_id}")
            self._loading[alert_id] = loading
            loading.add_done_callback(lambda _f: self._loading.pop(alert_id, None))
        return await asyncio.shield(loading)

    def _read_and_render(self, document: dict[str, Any]) -> tuple[Alert, Rendition]:
        """The stored alert and its texts: in a worker thread, as a big alert takes a while."""
        alert = from_json(document)
        return alert, render(alert, sender_name=self.sender_name)

    async def _load_message(self, alert_id: str) -> AlertMessage:
        document = await self.database.run(self.alerts.document, alert_id)
        record = await self.database.run(self.alerts.get, alert_id)
        if document is None or record is None:
            raise LookupError(f"alert {alert_id} is not in the store")
        alert, rendition = await asyncio.to_thread(self._read_and_render, document)
        message = AlertMessage(
            id=alert_id,
            alert=alert,
            rendition=rendition,
            expires_at=float(record["expires_at"]),
        )
        self._messages[alert_id] = message
        while len(self._messages) > 256:
            self._messages.popitem(last=False)
        return message

    async def _worker(self, slot: ChannelSlot) -> None:
        name = slot.name
        while True:
            if self._routing.elsewhere(name, slot.channel) is not None:
                await self._idle(name, look=False)
                continue
            free = slot.concurrency - self._in_flight[name]
            if free <= 0:
                self._slot_free[name].clear()
                await self._slot_free[name].wait()
                continue
            limit = min(free, self.config.batch_size)
            if slot.channel.sends_in_batches:
                # a batch holds its slots until its last delivery ends: with at most half of
                # them in one batch, the next is under way while one finishes
                limit = min(limit, max(1, slot.concurrency // 2))
            now = self.clock()
            try:
                claimed = await self.database.run(self.outbox.claim_due, name, now, limit)
            except (DiskFullError, StoreUnavailableError):
                await asyncio.sleep(DISK_FULL_PAUSE_SECONDS)
                continue
            if not claimed:
                await self._idle(name)
                continue
            self._changed()
            if slot.channel.sends_in_batches:
                self._in_flight[name] += len(claimed)
                task_name = f"send:{name}:{claimed[0].id}+{len(claimed)}"
                self._tasks.spawn(self._send_batch(slot, claimed), name=task_name)
                continue
            for row in claimed:
                self._in_flight[name] += 1
                self._tasks.spawn(self._send(slot, row), name=f"send:{name}:{row.id}")

    async def _idle(self, name: str, *, look: bool = True) -> None:
        """Wait until woken, for a poll at most, or (``look``) until the next delivery due."""
        next_due = None
        if look:
            with contextlib.suppress(DiskFullError, StoreUnavailableError):
                # the next claim says when the store is back
                next_due = await self.database.run(self.outbox.next_due_at, name, self.clock())
        wait = self.config.idle_poll_seconds
        if next_due is not None:
            wait = min(wait, max(0.005, next_due - self.clock()))
        self._wake[name].clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake[name].wait()

    async def _send(self, slot: ChannelSlot, row: ClaimedDelivery) -> None:
        try:
            self._record(slot, await self._attempt(slot, row))
        finally:
            self._in_flight[slot.name] -= 1
            self._slot_free[slot.name].set()

    async def _send_batch(self, slot: ChannelSlot, rows: list[ClaimedDelivery]) -> None:
        """Send a claimed batch with one call of the channel's ``send_many``."""
        try:
            for transition in await self._attempt_batch(slot, rows):
                self._record(slot, transition)
        finally:
            self._in_flight[slot.name] -= len(rows)
            self._slot_free[slot.name].set()

    def _record(self, slot: ChannelSlot, transition: Transition) -> None:
        if transition.to_state is DeliveryState.FAILED:
            self.failed_total[slot.name, "permanent"] += 1
        elif transition.last_error is not None and transition.for_node is None:
            # queued again, or expired waiting for it; not handed to the node of its device
            self.failed_total[slot.name, "retryable"] += 1
        self._recorder.add(transition)

    async def _attempt(self, slot: ChannelSlot, row: ClaimedDelivery) -> Transition:
        if row.alert_id in self._stopped_alerts:
            return Transition(row.id, DeliveryState.CANCELLED, detail="alert cancelled")
        try:
            delivery = await self._outgoing(row)
            await self._limits[slot.name].acquire()
            async with asyncio.timeout(self.config.send_timeout_seconds):
                result = await slot.channel.send(delivery)
            return self._sent(slot, row, result)
        except Exception as exc:
            return self._unsent(slot, row, exc)

    async def _attempt_batch(
        self, slot: ChannelSlot, rows: list[ClaimedDelivery]
    ) -> list[Transition]:
        """What :meth:`_attempt` does for each row, with one ``send_many`` call for the batch
        (under one send timeout); an error of the whole call is every row's error."""
        transitions: list[Transition] = []
        live: list[ClaimedDelivery] = []
        deliveries: list[OutgoingDelivery] = []
        messages: dict[str, AlertMessage] = {}  # a batch is mostly one alert's
        for row in rows:
            if row.alert_id in self._stopped_alerts:
                transitions.append(
                    Transition(row.id, DeliveryState.CANCELLED, detail="alert cancelled")
                )
                continue
            try:
                message = messages.get(row.alert_id)
                if message is None:
                    message = messages[row.alert_id] = await self.message(row.alert_id)
                deliveries.append(_outgoing(row, message))
            except Exception as exc:
                transitions.append(self._unsent(slot, row, exc))
                continue
            live.append(row)
        if not live:
            return transitions
        try:
            limit = self._limits[slot.name]
            for _ in live if limit.limited else ():
                await limit.acquire()
            async with asyncio.timeout(self.config.send_timeout_seconds):
                results = await slot.channel.send_many(deliveries)
            if len(results) != len(live):
                raise TypeError(f"send_many gave {len(results)} results for {len(live)} deliveries")
        except Exception as exc:
            bug = None if isinstance(exc, _VERDICTS) else self.faults.record(slot.name, "send", exc)
            return transitions + [self._unsent(slot, row, exc, bug) for row in live]
        for row, result in zip(live, results, strict=True):
            try:
                if isinstance(result, Exception):
                    raise result
                transitions.append(self._sent(slot, row, result))
            except Exception as exc:
                transitions.append(self._unsent(slot, row, exc))
        return transitions

    def _unsent(
        self, slot: ChannelSlot, row: ClaimedDelivery, exc: Exception, bug: str | None = None
    ) -> Transition:
        """The transition for a send that raised ``exc`` (``bug``: the channel fault it was
        already recorded as, when one error hit a whole batch)."""
        handed = self._routing.hand_over(row, exc, self.clock())
        if handed is not None:
            return handed
        if isinstance(exc, RetryableError):
            return self._retry(row, str(exc), exc.retry_after)
        if isinstance(exc, PermanentError):
            return Transition(row.id, DeliveryState.FAILED, last_error=str(exc) or "failed")
        if isinstance(exc, TimeoutError):
            return self._retry(row, f"no answer within {self.config.send_timeout_seconds:g} s")
        # A bug in the channel, not a verdict on the target: retried with the same backoff
        # as a retryable error until the alert expires (a fixed and restarted channel still
        # delivers), never hot, and recorded as the channel's fault.
        return self._retry(row, f"channel bug: {bug or self.faults.record(slot.name, 'send', exc)}")

    def _sent(self, slot: ChannelSlot, row: ClaimedDelivery, result: object) -> Transition:
        """The transition for a send that answered ``result``."""
        if not isinstance(result, SendResult):
            raise TypeError(f"send returned {type(result).__name__}, not a SendResult")
        self.sent_total[slot.name] += 1
        confirmed = result.outcome is SendOutcome.CONFIRMED
        detail = result.detail or ("confirmed" if confirmed else "accepted")
        warning = "; ".join(result.warnings) or None
        return Transition(
            row.id,
            DeliveryState.CONFIRMED if confirmed else DeliveryState.ACCEPTED,
            detail=f"{detail}; warning: {warning}" if warning else detail,
            provider_ref=result.provider_ref,
            content=result.content,
            warning=warning,
        )

    def _retry(
        self, row: ClaimedDelivery, error: str, retry_after: float | None = None
    ) -> Transition:
        now = self.clock()
        if retry_after is not None:
            delay = retry_after
        else:
            ceiling = min(
                self.config.retry_max_seconds,
                self.config.retry_base_seconds * 2 ** max(0, row.attempts - 1),
            )
            delay = random.uniform(ceiling / 2, ceiling)
        if now + delay >= row.expires_at:
            return Transition(
                row.id,
                DeliveryState.EXPIRED,
                last_error=error,
                detail=f"{error}; no retry before the alert expires",
            )
        return Transition(
            row.id,
            DeliveryState.QUEUED,
            last_error=error,
            next_attempt_at=now + delay,
            detail=f"{error}; retry in {delay:.1f} s",
        )

    def _written(self, batch: Sequence[Transition]) -> None:
        self._changed()
        if any(t.to_state is DeliveryState.QUEUED for t in batch):
            self.wake()

    async def _sweeper(self) -> None:
        timeouts = {
            name: slot.confirm_timeout or self.config.confirm_timeout_seconds
            for name, slot in self.channels.items()
            if slot.channel.capabilities.confirms
        }
        while True:
            now = self.clock()
            try:
                await self.database.run(self.outbox.renew_leases, now)
                await self.database.run(self.alerts.expire_due, now)
                overdue = await self.database.run(self.outbox.overdue, now, timeouts)
            except (DiskFullError, StoreUnavailableError):
                await asyncio.sleep(DISK_FULL_PAUSE_SECONDS)
                continue
            for transition in overdue:
                self._recorder.add(transition)
            await asyncio.sleep(self.config.idle_poll_seconds)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def _outgoing(row: ClaimedDelivery, message: AlertMessage) -> OutgoingDelivery:
    return OutgoingDelivery(
        id=row.id,
        message=message,
        target=row.target,
        part=row.part,
        attempt=row.attempts,
        idempotency_key=row.idempotency_key,
        expires_at=row.expires_at,
    )


_DEVICES_WORD = frozenset({ConfirmationOutcome.CONFIRMED, ConfirmationOutcome.PROGRESS})


def _devices_word(sink: Callable[[Confirmation], None]) -> Callable[[Confirmation], None]:
    """``sink`` for the confirmations that report what a device did (see ``stop``)."""

    def take(confirmation: Confirmation) -> None:
        if isinstance(confirmation, Confirmation) and confirmation.outcome in _DEVICES_WORD:
            sink(confirmation)

    return take
