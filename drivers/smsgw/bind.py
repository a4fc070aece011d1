"""One connection to an SMS gateway: framing, a window of outstanding requests, a rate limit,
keep-alive, and the matching of responses to requests by sequence number.

SMPP 3.4 (§2.2, §3.2) and CMPP 2.0/3.0 (§6.3, §7.4) share this shape: every PDU starts with
its 4-octet big-endian total length, a response's command id is the request's with the top bit
set, and the sequence number pairs a response with its request. The protocol packages
subclass ``GatewayBind`` with their codec, handshake and submit PDU.

When the connection drops, every outstanding request fails with
``GatewayConnectionLostError``; every request that returned was answered. So a caller always
knows which segments the gateway took.

A request the codec does not know (SMPP alert_notification, data_sm; a CMPP command of another
version) is handed to ``answer`` like any other: SMPP answers it generic_nack (§4.3), CMPP has
no such answer and ignores it; the connection stays up either way. A response that answers no
outstanding request with its command id (or the protocol's generic nack) is logged and ignored.
When the gateway closes the connection (unbind, CMPP_TERMINATE), the answers queued so far go
out, within ``CLOSING_FLUSH_TIMEOUT``, before the connection closes.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from drivers.smsgw.errors import (
    GatewayBusyError,
    GatewayConnectionError,
    GatewayConnectionLostError,
    GatewayError,
    GatewayProtocolError,
    GatewayThrottledError,
    GatewayTimeoutError,
)
from drivers.smsgw.flow import Backoff, TokenBucket
from drivers.smsgw.results import EncodedSegment, Receipt, SegmentResult

log = logging.getLogger(__name__)

RESPONSE_BIT = 0x80000000
MAX_PDU_LENGTH = 64 * 1024
CLOSING_FLUSH_TIMEOUT = 2.0
"""Seconds the answer to the gateway's unbind / CMPP_TERMINATE may take to leave."""


class GatewayPdu(Protocol):
    """What the bind needs to know of any PDU."""

    @property
    def command_id(self) -> int: ...

    @property
    def sequence(self) -> int: ...


P = TypeVar("P", bound=GatewayPdu)


@dataclass(frozen=True, slots=True)
class BindSettings:
    """Per-connection behaviour; see ``drivers/README-sms-gateways.md`` for each setting."""

    window: int = 16
    rate_per_second: float = 0.0
    request_timeout: float = 10.0
    throttle_pause: float = 0.5
    throttle_pause_max: float = 10.0
    keepalive_interval: float = 30.0
    connect_timeout: float = 10.0


async def read_frame(reader: asyncio.StreamReader, header_length: int) -> bytes:
    """One whole PDU (length octets included); IncompleteReadError at a clean end of stream."""
    head = await reader.readexactly(4)
    length = int.from_bytes(head, "big")
    if not header_length <= length <= MAX_PDU_LENGTH:
        raise GatewayProtocolError(f"PDU length {length} outside {header_length}-{MAX_PDU_LENGTH}")
    return head + await reader.readexactly(length - 4)


async def cancel_and_wait(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them to end; a cancellation of the caller still counts."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


class GatewayBind(abc.ABC, Generic[P]):
    """One bind (SMPP) or connection (CMPP): open it, submit segments, close it."""

    protocol = "gateway"
    header_length = 12
    nack_command: int | None = None
    """The command id of a response that may answer any request (SMPP generic_nack)."""

    def __init__(
        self, name: str, settings: BindSettings, on_receipt: Callable[[Receipt], None]
    ) -> None:
        self.name = name
        self.settings = settings
        self._on_receipt = on_receipt
        self._window = asyncio.Semaphore(settings.window)
        self._bucket = TokenBucket(settings.rate_per_second)
        self._throttled = Backoff(settings.throttle_pause, settings.throttle_pause_max)
        self._rest_until = 0.0
        self._sequences = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[P], int]] = {}
        self._outgoing: list[bytes] = []
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._idle = asyncio.Event()
        self.outstanding = 0

    # protocol hooks -----------------------------------------------------------------------
    @abc.abstractmethod
    def decode(self, frame: bytes) -> P:
        """A PDU from one frame; GatewayProtocolError if it does not decode."""

    @abc.abstractmethod
    def encode(self, pdu: P) -> bytes:
        """The frame of one PDU."""

    @abc.abstractmethod
    def handshake_pdu(self, sequence: int) -> P:
        """bind_transceiver / CMPP_CONNECT."""

    @abc.abstractmethod
    def check_handshake(self, response: P) -> None:
        """Raise GatewayBindError unless the handshake response accepts the bind."""

    @abc.abstractmethod
    def submit_pdu(
        self, sequence: int, destination: str, segment: EncodedSegment, valid_until: float | None
    ) -> P:
        """submit_sm / CMPP_SUBMIT for one segment, which the gateway keeps for a phone it
        cannot reach until ``valid_until`` (a ``time.time()`` value, see
        ``drivers.smsgw.validity``; None: as long as the settings or the gateway say)."""

    @abc.abstractmethod
    def submit_message_id(self, response: P) -> str:
        """The message id of an accepting submit response; raises the mapped status error."""

    @abc.abstractmethod
    def keepalive_pdu(self, sequence: int) -> P:
        """enquire_link / CMPP_ACTIVE_TEST."""

    @abc.abstractmethod
    def goodbye_pdu(self, sequence: int) -> P:
        """unbind / CMPP_TERMINATE."""

    @abc.abstractmethod
    def answer(self, request: P) -> tuple[P | None, Receipt | None, bool]:
        """For a request from the gateway: the response to send, a receipt it carried, and
        whether the gateway is closing the connection."""

    # lifecycle ----------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True between a successful ``open`` and the end of the connection."""
        return self._writer is not None and not self._closed.is_set()

    async def open(self, host: str, port: int) -> None:
        """Connect and bind; GatewayConnectionError or GatewayBindError if that fails."""
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            raise GatewayConnectionError(
                f"{self.name}: cannot connect to {host}:{port}: {exc}"
            ) from exc
        self._writer = writer
        self._tasks.append(asyncio.create_task(self._read_loop(reader), name=f"{self.name}-read"))
        try:
            self.check_handshake(await self.request(self.handshake_pdu))
        except BaseException:
            await self.abort()
            raise
        self._tasks.append(asyncio.create_task(self._keepalive_loop(), name=f"{self.name}-keep"))

    async def wait_closed(self) -> None:
        """Return once the connection has ended, for whatever reason."""
        await self._closed.wait()

    async def close(self) -> None:
        """Unbind politely (bounded by the request timeout), then drop the connection."""
        if self.is_open:
            with contextlib.suppress(GatewayError):
                await self.request(self.goodbye_pdu)
        await self.abort()

    async def abort(self) -> None:
        """Drop the connection now; outstanding requests fail with GatewayConnectionLostError."""
        self._lost(GatewayConnectionLostError(f"{self.name}: connection closed"))
        current = asyncio.current_task()
        await cancel_and_wait([task for task in self._tasks if task is not current])
        if self._writer is not None:
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    def _lost(self, error: GatewayError) -> None:
        if self._writer is not None:
            self._writer.close()
        self._closed.set()
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)

    # requests -----------------------------------------------------------------------------
    def _next_sequence(self) -> int:
        return (next(self._sequences) - 1) % 0x7FFFFFFF + 1

    async def request(self, build: Callable[[int], P]) -> P:
        """Send the PDU ``build(sequence)`` and return its response."""
        if not self.is_open or self._writer is None:
            raise GatewayConnectionError(f"{self.name}: not connected")
        sequence = self._next_sequence()
        pdu = build(sequence)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[P] = loop.create_future()
        self._pending[sequence] = (future, pdu.command_id | RESPONSE_BIT)
        self._send(self.encode(pdu))
        timeout = self.settings.request_timeout
        timer = loop.call_at(loop.time() + timeout, self._expire, future, pdu.command_id)
        try:
            return await future
        finally:
            timer.cancel()
            self._pending.pop(sequence, None)

    def _expire(self, future: asyncio.Future[P], command_id: int) -> None:
        if not future.done():
            future.set_exception(
                GatewayTimeoutError(
                    f"{self.name}: no answer to command {command_id:#x} in"
                    f" {self.settings.request_timeout} s"
                )
            )

    def _send(self, frame: bytes) -> None:
        """Queue ``frame`` for the connection: the frames queued in one turn of the event loop
        (a window's worth of submits, the answers to a burst of receipts) go out in one write,
        one system call instead of one each."""
        self._outgoing.append(frame)
        if len(self._outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if frames and self._writer is not None and not self._closed.is_set():
            self._writer.write(b"".join(frames))

    async def _flush_before_closing(self) -> None:
        """Write the queued frames now and let them leave (bounded): the gateway closes the
        connection after our answer to its unbind, so that answer must not wait for a turn
        of the event loop that comes after the close."""
        self._flush()
        if self._writer is None:
            return
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(CLOSING_FLUSH_TIMEOUT):
                await self._writer.drain()

    @property
    def resting(self) -> float:
        """Seconds this bind still rests after the gateway throttled it (0: none)."""
        if not self._rest_until:
            return 0.0
        return max(0.0, self._rest_until - asyncio.get_running_loop().time())

    async def submit(
        self,
        destination: str,
        segment: EncodedSegment,
        deadline: float | None = None,
        valid_until: float | None = None,
    ) -> SegmentResult:
        """Submit one segment within the window and the rate; the gateway's message id.
        The gateway keeps it for a phone it cannot reach until ``valid_until`` (``submit_pdu``).

        A throttling answer makes the bind rest before its next submit, for a pause that
        doubles (with jitter) while the gateway keeps throttling and resets on an acceptance.
        A segment still waiting for its turn at ``deadline`` (event-loop time) is not sent:
        GatewayBusyError.
        """
        self.outstanding += 1
        try:
            async with self._window:
                if self.resting:
                    await asyncio.sleep(self.resting)
                await self._bucket.take()
                if deadline is not None and asyncio.get_running_loop().time() > deadline:
                    raise GatewayBusyError(f"{self.name}: no room in the window in time")
                response = await self.request(
                    lambda sequence: self.submit_pdu(sequence, destination, segment, valid_until)
                )
        finally:
            self.outstanding -= 1
        try:
            message_id = self.submit_message_id(response)
        except GatewayThrottledError:
            pause = self._throttled.next_delay()
            self._rest_until = max(self._rest_until, asyncio.get_running_loop().time() + pause)
            raise
        self._throttled.reset()
        return SegmentResult(message_id, segment.sequence, segment.total, self.name)

    # background loops ---------------------------------------------------------------------
    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        error: GatewayError = GatewayConnectionLostError(f"{self.name}: connection lost")
        try:
            while True:
                pdu = self.decode(await read_frame(reader, self.header_length))
                self._idle.set()
                if pdu.command_id & RESPONSE_BIT:
                    self._answered(pdu)
                    continue
                response, receipt, closing = self.answer(pdu)
                if response is not None:
                    self._send(self.encode(response))
                if receipt is not None:
                    self._on_receipt(receipt)
                if closing:
                    await self._flush_before_closing()
                    break
        except GatewayProtocolError as exc:
            log.warning("%s: %s; dropping the connection", self.name, exc)
            error = GatewayConnectionLostError(f"{self.name}: {exc}")
        except (asyncio.IncompleteReadError, OSError):
            pass
        self._lost(error)

    def _answered(self, response: P) -> None:
        """Hand ``response`` to the request it answers; one that answers none is ignored."""
        pending = self._pending.get(response.sequence)
        if pending is None:  # its request timed out, or the gateway made it up
            log.debug(
                "%s: response %#010x to request %d, which is not outstanding; ignored",
                self.name,
                response.command_id,
                response.sequence,
            )
            return
        future, expected = pending
        if response.command_id not in (expected, self.nack_command):
            log.warning(
                "%s: response %#010x to request %d, which expects %#010x; ignored",
                self.name,
                response.command_id,
                response.sequence,
                expected,
            )
            return
        if not future.done():
            future.set_result(response)

    async def _keepalive_loop(self) -> None:
        while True:
            self._idle.clear()
            try:
                async with asyncio.timeout(self.settings.keepalive_interval):
                    await self._idle.wait()
                continue
            except TimeoutError:
                pass
            if not self.is_open:
                return
            try:
                await self.request(self.keepalive_pdu)
            except GatewayError as exc:
                log.warning("%s: keep-alive failed (%s); dropping the connection", self.name, exc)
                self._lost(GatewayConnectionLostError(f"{self.name}: keep-alive failed"))
                return
