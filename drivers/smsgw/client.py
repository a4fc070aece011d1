"""A gateway client: several binds kept up with backoff, texts split into segments and
submitted over whichever bind has the most room, receipts matched to their segments.

This is the API the ``gateway-sms`` channel builds on::

    client = SmppClient(SmppClientConfig(...))        # or CmppClient(CmppClientConfig(...))
    await client.start()
    submission = await client.submit("+8613800000000", "暴雨红色预警……")
    submission.message_ids                             # one per segment
    async for receipt in client.receipts():           # or on_receipt=callback
        receipt.segment, receipt.state
    await client.close()
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from drivers.smsgw.bind import BindSettings, GatewayBind, cancel_and_wait
from drivers.smsgw.errors import (
    GatewayBindError,
    GatewayConfigError,
    GatewayConnectionError,
    GatewayError,
)
from drivers.smsgw.flow import Backoff
from drivers.smsgw.results import EncodedSegment, Receipt, SegmentResult, Submission
from drivers.smsgw.segments import TextCoding, split_message

log = logging.getLogger(__name__)

EARLY_RECEIPTS = 10_000
TRACKED_SEGMENTS = 500_000


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where the gateway is and how many binds to keep to it."""

    host: str
    port: int
    binds: int = 1
    bind: BindSettings = field(default_factory=BindSettings)
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    max_segments: int = 10

    def check(self) -> None:
        """Raise GatewayConfigError naming the first invalid setting."""
        if not 1 <= self.port <= 65535:
            raise GatewayConfigError(f"port: {self.port} is not a TCP port")
        if self.binds < 1:
            raise GatewayConfigError("binds: at least one bind is needed")
        if self.bind.window < 1:
            raise GatewayConfigError("window: at least one outstanding submit is needed")
        if self.bind.rate_per_second < 0:
            raise GatewayConfigError("rate_per_second: must be 0 (no limit) or more")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise GatewayConfigError("reconnect_min/reconnect_max: need 0 < min <= max")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayTuning:
    """Settings every gateway config has; the protocol configs add their own in front."""

    binds: int = 1
    window: int = 16
    rate_per_second: float = 0.0
    request_timeout: float = 10.0
    throttle_pause: float = 0.5
    throttle_pause_max: float = 10.0
    keepalive_interval: float = 30.0
    connect_timeout: float = 10.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    max_segments: int = 10

    def tuned(self, host: str, port: int) -> ClientSettings:
        """ClientSettings for ``host:port`` with these values."""
        return ClientSettings(
            host=host,
            port=port,
            binds=self.binds,
            bind=BindSettings(
                window=self.window,
                rate_per_second=self.rate_per_second,
                request_timeout=self.request_timeout,
                throttle_pause=self.throttle_pause,
                throttle_pause_max=self.throttle_pause_max,
                keepalive_interval=self.keepalive_interval,
                connect_timeout=self.connect_timeout,
            ),
            reconnect_min=self.reconnect_min,
            reconnect_max=self.reconnect_max,
            max_segments=self.max_segments,
        )


def receipt_key(message_id: str) -> str:
    """A message id as receipts are matched: case and leading zeros do not count."""
    return message_id.strip().lower().lstrip("0") or "0"


class GatewayClient:
    """Keeps ``binds`` connections to one gateway and submits texts over them."""

    coding = TextCoding.UCS2

    def __init__(
        self,
        settings: ClientSettings,
        make_bind: Callable[[str, Callable[[Receipt], None]], GatewayBind[Any]],
        on_receipt: Callable[[Receipt], None] | None = None,
    ) -> None:
        settings.check()
        self.settings = settings
        self._make_bind = make_bind
        self._on_receipt = on_receipt
        self._queue: asyncio.Queue[Receipt] = asyncio.Queue()
        self._binds: dict[str, GatewayBind[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Condition()
        self._sent: OrderedDict[str, tuple[SegmentResult, str]] = OrderedDict()
        self.tracked_limit = TRACKED_SEGMENTS
        self._early: OrderedDict[str, Receipt] = OrderedDict()
        self.bind_count = 0
        self.last_bind_error: GatewayError | None = None

    @property
    def binds_up(self) -> int:
        """How many binds are open now."""
        return sum(1 for bind in self._binds.values() if bind.is_open)

    async def start(self, wait: float | None = None) -> None:
        """Start the binds; wait (default: the connect timeout) until one is up.

        Raises the gateway's refusal (GatewayBindError: wrong account, password or version)
        if that is why no bind came up, else GatewayConnectionError. ``wait=0`` returns at
        once: the binds come up in the background (``binds_up``, ``last_bind_error``).
        """
        for index in range(self.settings.binds):
            name = f"bind{index + 1}"
            self._tasks.append(asyncio.create_task(self._keep(name), name=f"gateway-{name}"))
        if wait == 0:
            return
        try:
            await self._wait_for_bind(
                wait if wait is not None else self.settings.bind.connect_timeout
            )
        except GatewayError as exc:
            await self.close()
            if isinstance(self.last_bind_error, GatewayBindError):
                raise self.last_bind_error from exc
            raise

    async def close(self) -> None:
        """Unbind every bind and stop reconnecting."""
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await asyncio.gather(*(bind.close() for bind in self._binds.values()))
        self._binds.clear()

    async def _keep(self, name: str) -> None:
        backoff = Backoff(self.settings.reconnect_min, self.settings.reconnect_max)
        while True:
            bind = self._make_bind(name, self._receipt_arrived)
            try:
                await bind.open(self.settings.host, self.settings.port)
            except GatewayError as exc:
                self.last_bind_error = exc
                log.warning("%s: bind failed: %s", name, exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            except asyncio.CancelledError:
                await bind.abort()
                raise
            backoff.reset()
            self.bind_count += 1
            self._binds[name] = bind
            await self._notify()
            try:
                await bind.wait_closed()
            except asyncio.CancelledError:
                await bind.close()
                raise
            log.warning("%s: connection ended; binding again", name)
            await bind.abort()
            await asyncio.sleep(backoff.next_delay())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _best_bind(self) -> GatewayBind[Any] | None:
        """The open bind with the fewest outstanding submits, one not resting first."""
        chosen: GatewayBind[Any] | None = None
        chosen_key = (True, 0)
        for bind in self._binds.values():
            if bind.is_open:
                key = (bind.resting > 0, bind.outstanding)
                if chosen is None or key < chosen_key:
                    chosen, chosen_key = bind, key
        return chosen

    async def _wait_for_bind(self, within: float) -> GatewayBind[Any]:
        best = self._best_bind
        chosen = best()
        if chosen is not None:
            return chosen
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: best() is not None)
        except TimeoutError:
            raise GatewayConnectionError(f"no bind to the gateway is up after {within} s") from None
        found = best()
        assert found is not None
        return found

    async def wait_binds_up(self, count: int, within: float) -> None:
        """Wait until ``count`` binds are open; GatewayConnectionError after ``within`` s."""
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: self.binds_up >= count)
        except TimeoutError:
            raise GatewayConnectionError(
                f"{self.binds_up} of {count} binds up after {within} s"
            ) from None

    def split(self, text: str) -> list[EncodedSegment]:
        """The segments ``submit`` would send for ``text`` (GatewayMessageError if it can't)."""
        return split_message(text, self.coding, self.settings.max_segments)

    async def submit_segment(
        self,
        destination: str,
        segment: EncodedSegment,
        deadline: float | None = None,
        valid_until: float | None = None,
    ) -> SegmentResult:
        """Submit one segment on the least busy bind; its receipt will be matched to it.
        GatewayBusyError if it is still waiting for room at ``deadline`` (event-loop time).
        The gateway keeps it for a phone it cannot reach until ``valid_until`` (a
        ``time.time()`` value, e.g. the alert's expiry; ``drivers.smsgw.validity``)."""
        bind = await self._wait_for_bind(self.settings.bind.request_timeout)
        result = await bind.submit(destination, segment, deadline, valid_until)
        self.expect(result, destination)
        return result

    async def submit(
        self, destination: str, text: str, valid_until: float | None = None
    ) -> Submission:
        """Submit ``text`` to ``destination``, valid until ``valid_until``; one message id per
        segment.

        If a segment fails, the error is raised with ``accepted`` set to the segments the
        gateway took before it (their receipts still arrive).
        """
        results: list[SegmentResult] = []
        for segment in self.split(text):
            try:
                results.append(
                    await self.submit_segment(destination, segment, valid_until=valid_until)
                )
            except GatewayError as exc:
                exc.accepted = tuple(results)
                raise
        return Submission(destination, tuple(results))

    def expect(self, result: SegmentResult, destination: str) -> None:
        """Match receipts for ``result.message_id`` to it: done by ``submit_segment``; a caller
        that recorded its submissions calls it after a restart for segments still awaiting a
        receipt, which would otherwise be held as unmatched."""
        key = receipt_key(result.message_id)
        self._sent[key] = (result, destination)
        while len(self._sent) > self.tracked_limit:
            # the oldest segment's receipt is long overdue (lost by the gateway); forget it
            self._sent.popitem(last=False)
        early = self._early.pop(key, None)
        if early is not None:
            self._receipt_arrived(early)

    def _receipt_arrived(self, receipt: Receipt) -> None:
        key = receipt_key(receipt.message_id)
        known = self._sent.get(key)
        if known is None:
            self._early[key] = receipt
            while len(self._early) > EARLY_RECEIPTS:
                _, stale = self._early.popitem(last=False)
                self._hand_out(stale)
            return
        if receipt.state.final:
            del self._sent[key]
        self._hand_out(replace(receipt, segment=known[0], destination=known[1]))

    def _hand_out(self, receipt: Receipt) -> None:
        if self._on_receipt is not None:
            self._on_receipt(receipt)
        else:
            self._queue.put_nowait(receipt)

    async def receipts(self) -> AsyncIterator[Receipt]:
        """Receipts as they arrive (when no ``on_receipt`` callback was given)."""
        while True:
            yield await self._queue.get()

    @property
    def tracked_segments(self) -> int:
        """Accepted segments still waiting for a final receipt (at most ``tracked_limit``)."""
        return len(self._sent)

    @property
    def unmatched_receipts(self) -> int:
        """Receipts held because no submission of this client carries their id (yet)."""
        return len(self._early)
