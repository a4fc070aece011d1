"""Server side of the serial transport: the master of an RS-485 style line
(docs/protocols/speaker.md, section 4.2).

The line is half duplex, so only the master speaks unprompted. It sends each queued command to
its box as a COMMAND frame and otherwise polls every address in turn; each frame is answered by
one reply echoing its sequence number. A reply not seen within ``reply_timeout_s`` makes the
master send the same frame again (same sequence number) up to ``retries`` times; after
``offline_after`` failed exchanges in a row the box is reported offline. Whenever a box comes
online (after the master starts, the line reopens or the box was offline) its first exchange
after that is a SYNC, which makes the box repeat the latest acknowledgement of each live
command: replies lost with a dead line or a restarted master are sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from dataclasses import dataclass

from drivers.speaker.errors import (
    BoxOfflineError,
    SpeakerConfigError,
    SpeakerConnectionError,
    SpeakerTimeoutError,
)
from drivers.speaker.hub_link import HubLink, LinkSink
from drivers.speaker.serial_frames import (
    MAX_ADDRESS,
    MIN_ADDRESS,
    FrameKind,
    SerialFrame,
    SerialFrameDecoder,
    encode_frame,
)
from drivers.speaker.serial_port import SerialPortStream

log = logging.getLogger(__name__)

TRANSPORT = "serial"
REOPEN_DELAY_S = 2.0


@dataclass(frozen=True, slots=True)
class SerialLineConfig:
    """One serial line and its timing."""

    name: str
    url: str
    baudrate: int = 115200
    reply_timeout_s: float = 0.25
    retries: int = 2
    poll_interval_s: float = 0.2
    offline_after: int = 3

    def __post_init__(self) -> None:
        if self.reply_timeout_s <= 0 or self.poll_interval_s <= 0:
            raise SpeakerConfigError(f"serial line {self.name}: timeouts must be positive")
        if self.retries < 0 or self.offline_after < 1:
            raise SpeakerConfigError(f"serial line {self.name}: invalid retries/offline_after")


class SerialBusMaster(HubLink):
    """Drives one serial line with any number of boxes, each at its own address."""

    name = TRANSPORT

    def __init__(self, sink: LinkSink, config: SerialLineConfig) -> None:
        self._sink = sink
        self._config = config
        self._addresses: dict[str, int] = {}
        self._boxes: dict[int, str] = {}
        self._online: set[int] = set()
        self._failures: dict[int, int] = {}
        self._pending: deque[tuple[int, bytes, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._decoder = SerialFrameDecoder()
        self._stream = SerialPortStream(config.url, config.baudrate, self._on_bytes, self._on_gap)
        self._expect: tuple[int, int, asyncio.Future[SerialFrame]] | None = None
        self._sequences: dict[int, int] = {}
        self._needs_sync: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def add_box(self, box_id: str, address: int) -> None:
        """Put ``box_id`` on this line at ``address``."""
        if not MIN_ADDRESS <= address <= MAX_ADDRESS:
            raise SpeakerConfigError(f"box {box_id}: serial address {address} out of range")
        other = self._boxes.get(address)
        if other is not None and other != box_id:
            raise SpeakerConfigError(f"line {self._config.name}: address {address} used by {other}")
        self._addresses[box_id] = address
        self._boxes[address] = box_id

    def drop(self, box_id: str) -> None:
        address = self._addresses.pop(box_id, None)
        if address is not None:
            del self._boxes[address]
            if address in self._online:
                self._online.discard(address)
                self._sink.presence(box_id, False, TRANSPORT)

    async def start(self) -> None:
        await self._stream.open()
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def _supervise(self) -> None:
        """Run the master loop; when the port fails, report its boxes offline and reopen it."""
        while True:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._master_loop())
                    await self._stream.failed.wait()
                    raise SpeakerConnectionError(f"serial line {self._config.name} failed")
            except* SpeakerConnectionError as group:
                log.error("%s; reopening in %.0f s", group.exceptions[0], REOPEN_DELAY_S)
            self._fail_pending(SpeakerConnectionError(f"line {self._config.name} is down"))
            for address in list(self._online):
                self._online.discard(address)
                self._sink.presence(self._boxes[address], False, TRANSPORT)
            await self._stream.close()
            await asyncio.sleep(REOPEN_DELAY_S)
            with contextlib.suppress(SpeakerConnectionError):
                await self._stream.open()

    def _fail_pending(self, error: Exception) -> None:
        for _, _, future in self._pending:
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fail_pending(SpeakerConnectionError(f"line {self._config.name} stopped"))
        await self._stream.close()

    async def send(self, box_id: str, data: bytes) -> None:
        """Queue a COMMAND frame and wait until the box has answered it."""
        address = self._addresses.get(box_id)
        if address is None:
            raise BoxOfflineError(f"box {box_id} is not on serial line {self._config.name}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((address, data, future))
        self._wake.set()
        await future

    def _on_gap(self) -> None:
        if self._decoder.pending:
            self._decoder.discard_partial()

    def _on_bytes(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            expect = self._expect
            if (
                expect is not None
                and frame.kind in (FrameKind.MESSAGE, FrameKind.MESSAGE_MORE, FrameKind.IDLE)
                and (frame.address, frame.sequence) == expect[:2]
                and not expect[2].done()
            ):
                expect[2].set_result(frame)

    async def _master_loop(self) -> None:
        while True:
            while self._pending:
                address, payload, future = self._pending.popleft()
                try:
                    await self._exchange(address, FrameKind.COMMAND, payload)
                except SpeakerTimeoutError as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(None)
            for address in list(self._boxes):
                if self._pending:
                    break
                kind = FrameKind.SYNC if address in self._needs_sync else FrameKind.POLL
                self._needs_sync.discard(address)
                with contextlib.suppress(SpeakerTimeoutError):
                    more = await self._exchange(address, kind, b"")
                    while more and not self._pending:
                        more = await self._exchange(address, FrameKind.POLL, b"")
            self._wake.clear()
            if not self._pending:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._config.poll_interval_s):
                        await self._wake.wait()

    async def _exchange(self, address: int, kind: FrameKind, payload: bytes) -> bool:
        """Send one frame (with retransmissions) and handle its reply.

        Returns True when the box says more messages are waiting.
        """
        # Per address, so consecutive frames to one box always differ: an equal number means
        # a retransmission to the box, never a new frame. A random start keeps a restarted
        # master from repeating the number a box answered last.
        sequence = (self._sequences.get(address, random.randrange(256)) + 1) & 0xFF
        self._sequences[address] = sequence
        data = encode_frame(SerialFrame(address, sequence, kind, payload))
        loop = asyncio.get_running_loop()
        for _ in range(1 + self._config.retries):
            reply_future: asyncio.Future[SerialFrame] = loop.create_future()
            self._expect = (address, sequence, reply_future)
            await self._stream.write(data)
            try:
                async with asyncio.timeout(self._config.reply_timeout_s):
                    reply = await reply_future
            except TimeoutError:
                continue
            finally:
                self._expect = None
            self._seen(address)
            if reply.kind is not FrameKind.IDLE and address in self._boxes:
                self._sink.receive(self._boxes[address], reply.payload, TRANSPORT)
            return reply.kind is FrameKind.MESSAGE_MORE
        self._missed(address)
        box = self._boxes.get(address, "?")
        raise SpeakerTimeoutError(f"box {box} at address {address} did not answer")

    def _seen(self, address: int) -> None:
        self._failures[address] = 0
        if address not in self._online and address in self._boxes:
            self._online.add(address)
            self._needs_sync.add(address)
            self._sink.presence(self._boxes[address], True, TRANSPORT)

    def _missed(self, address: int) -> None:
        self._failures[address] = self._failures.get(address, 0) + 1
        offline = self._failures[address] >= self._config.offline_after
        if offline and address in self._online and address in self._boxes:
            self._online.discard(address)
            self._sink.presence(self._boxes[address], False, TRANSPORT)
