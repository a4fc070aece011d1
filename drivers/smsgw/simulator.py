"""The SMSC core shared by the SMPP and CMPP gateway simulators.

Listens on TCP (loopback by default), binds clients after checking their credentials, keeps a
per-bind window and rate limit (answering over it with the protocol's throttling status),
answers each submit with a fresh message id, and sends a receipt after ``receipt_delay`` with
an outcome drawn from ``outcomes`` (held for the account's next bind when the connection is
gone by then). Fault hooks: refuse binds, answer slowly, drop the
connection after N answered submits, lose receipts, answer with garbage. The protocol
packages supply the PDU handling through ``SmscProtocol`` and reuse their production codec.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from drivers.smsgw.bind import RESPONSE_BIT, cancel_and_wait, read_frame
from drivers.smsgw.errors import GatewayError
from drivers.smsgw.flow import TokenBucket
from drivers.smsgw.results import ReceiptState

P = TypeVar("P")


@dataclass(slots=True)
class SmscFaults:
    """Misbehaviour on demand; all off by default."""

    refuse_binds: bool = False
    answer_delay: float = 0.0
    drop_after_answers: int | None = None
    lose_receipts: float = 0.0
    garbage_after_answers: int | None = None


@dataclass(slots=True)
class SmscSettings:
    """How the simulated gateway behaves."""

    host: str = "127.0.0.1"
    port: int = 0
    accounts: dict[str, str] = field(default_factory=dict)
    window: int = 16
    rate_per_second: float = 0.0
    receipt_delay: float = 0.2
    outcomes: dict[ReceiptState, float] = field(
        default_factory=lambda: {ReceiptState.DELIVERED: 1.0}
    )
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class SubmittedSegment:
    """What a client submitted, as the simulator saw it."""

    destination: str
    payload: bytes
    udhi: bool
    coding: int
    wants_receipt: bool
    validity: str = ""  # SMPP validity_period / CMPP ValId_Time as sent


@dataclass(frozen=True, slots=True)
class SmscRecord:
    """One submit the simulator accepted."""

    account: str
    message_id: str
    segment: SubmittedSegment


class SmscProtocol(abc.ABC, Generic[P]):
    """The protocol side of the simulator: decode, answer, build receipts."""

    header_length = 12

    @abc.abstractmethod
    def decode(self, frame: bytes) -> P:
        """A PDU from one frame (the production codec)."""

    @abc.abstractmethod
    def encode(self, message: P) -> bytes:
        """The frame of one PDU (the production codec)."""

    @abc.abstractmethod
    def command_id(self, message: P) -> int:
        """The PDU's command id."""

    @abc.abstractmethod
    def login(self, message: P, accounts: dict[str, str], refuse: bool) -> tuple[P, str | None]:
        """Answer a bind/connect: the response and the account name, None if refused."""

    @abc.abstractmethod
    def submitted(self, message: P) -> SubmittedSegment | None:
        """The segment of a submit PDU, None for other PDUs."""

    @abc.abstractmethod
    def new_message_id(self, serial: int) -> str:
        """A message id in the protocol's form for the ``serial``-th accepted segment."""

    @abc.abstractmethod
    def submit_response(self, message: P, message_id: str | None, throttled: bool) -> P:
        """Accepting (``message_id``) or throttling response to a submit."""

    @abc.abstractmethod
    def other_response(self, message: P) -> tuple[P | None, bool]:
        """Response to keep-alive, unbind and unknown commands; True to close afterwards."""

    @abc.abstractmethod
    def receipt(
        self, sequence: int, record: SmscRecord, state: ReceiptState, submitted: datetime
    ) -> P:
        """The receipt PDU for one accepted segment."""


class SmscSimulator(Generic[P]):
    """A simulated operator gateway on a TCP port; ``records`` lists accepted segments."""

    def __init__(
        self, protocol: SmscProtocol[P], settings: SmscSettings, faults: SmscFaults | None = None
    ) -> None:
        self.protocol = protocol
        self.settings = settings
        self.faults = faults or SmscFaults()
        self.records: list[SmscRecord] = []
        self.listeners: list[Callable[[SmscRecord], None]] = []
        self.receipts_sent: list[tuple[str, ReceiptState]] = []
        self.held: dict[str, list[tuple[SmscRecord, datetime]]] = {}
        """Receipts due while their account had no connection, sent on its next bind."""
        self.throttled = 0
        self.binds = 0
        self.serials = itertools.count(1)
        self.random = random.Random(settings.seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.answered = 0

    @property
    def port(self) -> int:
        """The TCP port the simulator listens on (after ``start``)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen on the configured address."""
        self._server = await asyncio.start_server(
            self._serve, self.settings.host, self.settings.port
        )

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        await cancel_and_wait(list(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def outcome(self) -> ReceiptState:
        states = list(self.settings.outcomes)
        weights = [self.settings.outcomes[state] for state in states]
        return self.random.choices(states, weights)[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = _Connection(self, writer)
        try:
            await connection.run(reader)
        except (GatewayError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            connection.close()
            self._tasks.discard(task)


class _Connection(Generic[P]):
    """One client connection: bind state, window, rate, receipts."""

    def __init__(self, simulator: SmscSimulator[P], writer: asyncio.StreamWriter) -> None:
        self.sim = simulator
        self.writer = writer
        self.account: str | None = None
        self.in_flight = 0
        self.bucket = TokenBucket(simulator.settings.rate_per_second)
        self.sequences = itertools.count(1)
        self.answering: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in self.answering:
            task.cancel()
        self.writer.close()

    def send(self, message: P) -> None:
        if not self.writer.is_closing():
            self.writer.write(self.sim.protocol.encode(message))

    async def run(self, reader: asyncio.StreamReader) -> None:
        protocol = self.sim.protocol
        while True:
            message = protocol.decode(await read_frame(reader, protocol.header_length))
            if protocol.command_id(message) & RESPONSE_BIT:
                continue  # receipt acknowledgements
            if self.account is None:
                response, self.account = protocol.login(
                    message, self.sim.settings.accounts, self.sim.faults.refuse_binds
                )
                self.send(response)
                if self.account is None:
                    return
                self.sim.binds += 1
                for record, submitted in self.sim.held.pop(self.account, []):
                    self.sim.spawn(self._receipt(record, submitted, delay=0.0))
                continue
            segment = protocol.submitted(message)
            if segment is None:
                response_or_none, closing = protocol.other_response(message)
                if response_or_none is not None:
                    self.send(response_or_none)
                if closing:
                    return
                continue
            if not self._admit():
                self.sim.throttled += 1
                self.send(protocol.submit_response(message, None, throttled=True))
                continue
            if self._fault_stops():
                await self._drain()
                return
            if self._fault_garbles():
                self.writer.write(b"\x00\x00\x00\x10garbage!garbage!")
                continue
            self.sim.answered += 1
            self.in_flight += 1
            task = asyncio.create_task(self._answer(message, segment))
            self.answering.add(task)
            task.add_done_callback(self.answering.discard)

    def _fault_stops(self) -> bool:
        limit = self.sim.faults.drop_after_answers
        return limit is not None and self.sim.answered >= limit

    def _fault_garbles(self) -> bool:
        limit = self.sim.faults.garbage_after_answers
        return limit is not None and self.sim.answered >= limit

    async def _drain(self) -> None:
        """Let every answer already due go out before the connection drops."""
        await asyncio.gather(*self.answering, return_exceptions=True)
        with contextlib.suppress(OSError):
            await self.writer.drain()

    def _admit(self) -> bool:
        return self.in_flight < self.sim.settings.window and self.bucket.try_take()

    async def _answer(self, message: P, segment: SubmittedSegment) -> None:
        sim = self.sim
        try:
            if sim.faults.answer_delay:
                await asyncio.sleep(sim.faults.answer_delay)
            message_id = sim.protocol.new_message_id(next(sim.serials))
            record = SmscRecord(self.account or "", message_id, segment)
            sim.records.append(record)
            for listener in sim.listeners:
                listener(record)
            self.send(sim.protocol.submit_response(message, message_id, throttled=False))
        finally:
            self.in_flight -= 1
        if segment.wants_receipt:
            sim.spawn(self._receipt(record, datetime.now()))

    async def _receipt(
        self, record: SmscRecord, submitted: datetime, delay: float | None = None
    ) -> None:
        sim = self.sim
        await asyncio.sleep(sim.settings.receipt_delay if delay is None else delay)
        if self.writer.is_closing():  # as an SMSC does: kept for the account's next bind
            sim.held.setdefault(record.account, []).append((record, submitted))
            return
        state = sim.outcome()
        if sim.random.random() < sim.faults.lose_receipts:
            return
        sequence = next(self.sequences)
        self.send(sim.protocol.receipt(sequence, record, state, submitted))
        sim.receipts_sent.append((record.message_id, state))
