"""The RDS encoder client contract and the session machinery every encoder family shares.

:class:`RdsEncoderClient` is what a channel talks to: connect, set PS/RT/TA+TP/PTY/PI,
send EWS, and ``snapshot``/``restore`` the station's state. Every setter validates first
(:class:`~drivers.rds.errors.RdsValueError`, nothing sent), then sends, then waits for the
encoder's acknowledgement, retransmitting the same bytes when none comes within
``ack_timeout``, at most ``max_attempts`` times in all (then
:class:`~drivers.rds.errors.RdsTimeoutError`). A negative acknowledgement raises
:class:`~drivers.rds.errors.RdsRejectedError`; a lost link raises
:class:`~drivers.rds.errors.RdsLinkError`. One command is in flight at a time and the reply
listener is registered before the bytes are written.

A family (UECP, the ASCII dialect, ...) subclasses it and implements a few small hooks:
``_encode_update`` (bytes for a state change), ``_split_update`` (when the family needs one
command per field), ``_encode_ews``, ``_feed`` (bytes from the encoder, resolving the waiting
reply through ``_resolve``), ``_judge_reply`` and ``_on_connected``.

``pending_restore`` holds the state to put back after an alert: while it is set, every
(re)connection applies it before anything else, so a link lost mid-alert never leaves TA up
once the encoder is reachable again.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import ClassVar, Self

from drivers.rds.config import RdsEncoderConfig
from drivers.rds.errors import RdsLinkError, RdsTimeoutError, RdsUnsupportedError
from drivers.rds.state import EncoderState
from drivers.rds.transport import RdsTransport, open_transport
from drivers.rds.uecp_elements import EwsPayload

_log = logging.getLogger(__name__)


class RdsEncoderClient(abc.ABC):
    """One link to one RDS encoder; see the module docstring for the error contract."""

    supports_ews: ClassVar[bool] = False
    #: Enhanced RadioText (UCS-2/UTF-8 text, e.g. Chinese) is not produced by any family
    #: here yet; a channel falls back to a Latin RT in the RDS character set.
    supports_enhanced_rt: ClassVar[bool] = False

    def __init__(self, config: RdsEncoderConfig) -> None:
        self.config = config
        self._known = config.normal_state.validate()
        self._pending_restore: EncoderState | None = None
        self._transport: RdsTransport | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reply: asyncio.Future[object] | None = None
        self._command_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the link is open."""
        return self._transport is not None

    async def connect(self) -> None:
        """Open the link; apply ``pending_restore`` first if one is waiting."""
        async with self._connect_lock:
            if self._transport is not None:
                return
            self._transport = await open_transport(
                self.config.url,
                baudrate=self.config.baudrate,
                connect_timeout=self.config.connect_timeout,
            )
            self._on_connected()
            self._reader_task = asyncio.create_task(
                self._read_loop(self._transport), name=f"rds-reader {self.config.url}"
            )
            try:
                await self._handshake()
                if self._pending_restore is not None:
                    await self.restore(self._pending_restore)
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Close the link; a waiting command fails with RdsLinkError."""
        transport, self._transport = self._transport, None
        reader, self._reader_task = self._reader_task, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if transport is not None:
            await transport.close()
        self._fail_waiting(RdsLinkError(f"link to {self.config.url} closed"))

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the RDS settings ------------------------------------------------------------

    async def set_ps(self, ps: str) -> None:
        """Set the programme service name (at most 8 characters of the RDS set)."""
        await self.apply(EncoderState(ps=ps))

    async def set_rt(self, rt: str) -> None:
        """Set the RadioText (at most 64 characters of the RDS set)."""
        await self.apply(EncoderState(rt=rt))

    async def set_ta_tp(self, ta: bool, tp: bool) -> None:
        """Set the traffic announcement and traffic programme flags together."""
        await self.apply(EncoderState(ta=ta, tp=tp))

    async def set_pty(self, pty: int) -> None:
        """Set the programme type (31 alarm, 30 alarm test)."""
        await self.apply(EncoderState(pty=pty))

    async def set_pi(self, pi: int) -> None:
        """Set the programme identification code."""
        await self.apply(EncoderState(pi=pi))

    async def send_ews(self, payload: EwsPayload) -> None:
        """Send one emergency warning (group 9A) payload; its meaning is nationally defined."""
        await self._transact(functools.partial(self._encode_ews, payload), "EWS")

    async def ping(self) -> None:
        """Check that the encoder answers, changing nothing on air."""
        await self._transact(self._encode_ping, "ping")

    async def read_state(self) -> EncoderState:
        """Read the on-air fields back from the encoder and refresh :meth:`snapshot` with
        them. Families without a read-back command raise RdsUnsupportedError; encoders
        that ignore the request time out like any command, so call it at start-up or in a
        health check rather than in front of an alert."""
        raise RdsUnsupportedError(f"{type(self).__name__} cannot read the encoder state back")

    async def apply(self, update: EncoderState) -> None:
        """Set every field ``update`` sets, dropping TA before or raising it after the rest."""
        update = update.validate()
        for part in self._split_update(update):
            await self._transact(functools.partial(self._encode_update, part), part.describe())
            self._known = self._known.merged(part)

    def snapshot(self) -> EncoderState:
        """The encoder state as this client knows it: the configured normal state plus
        every change since acknowledged. Fields never known are ``None``."""
        return self._known

    async def restore(self, state: EncoderState) -> None:
        """Put ``state`` back (TA down first) and clear ``pending_restore``."""
        await self.apply(state)
        self._pending_restore = None

    @property
    def pending_restore(self) -> EncoderState | None:
        """The state to apply on the next (re)connection, or None."""
        return self._pending_restore

    def expect_restore(self, state: EncoderState) -> None:
        """Remember ``state`` (with TA down) to apply on reconnection until restored."""
        self._pending_restore = replace(state.validate(), ta=False)

    # -- family hooks ----------------------------------------------------------------

    def _split_update(self, update: EncoderState) -> list[EncoderState]:
        """The parts of ``update`` sent as separate commands; one part unless overridden."""
        return [] if update.is_empty() else [update]

    @abc.abstractmethod
    def _encode_update(self, update: EncoderState) -> bytes:
        """The bytes that apply ``update`` (validated, not empty) with one acknowledgement.

        Called once per command, under the command lock, before the first transmission."""

    def _encode_ping(self) -> bytes:
        """The bytes of a command that changes nothing but is answered."""
        raise RdsUnsupportedError(f"{type(self).__name__} has no command to check the link with")

    def _encode_ews(self, payload: EwsPayload) -> bytes:
        """The bytes of an EWS command; only families with ``supports_ews`` override it."""
        raise RdsUnsupportedError(f"{type(self).__name__} cannot send EWS (group 9A)")

    @abc.abstractmethod
    def _feed(self, data: bytes) -> None:
        """Consume bytes from the encoder; call ``_resolve`` with a reply to the command."""

    @abc.abstractmethod
    def _judge_reply(self, reply: object, what: str) -> bool:
        """True for a positive acknowledgement, False to retransmit; raise to refuse."""

    @abc.abstractmethod
    def _on_connected(self) -> None:
        """Reset per-link decoder state after a (re)connection."""

    async def _handshake(self) -> None:
        """Set the link up after each connection, before anything else is sent."""
        return None

    # -- session ---------------------------------------------------------------------

    def _resolve(self, reply: object) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(reply)

    def _fail_waiting(self, error: RdsLinkError) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(error)

    async def _read_loop(self, transport: RdsTransport) -> None:
        try:
            while True:
                self._feed(await transport.read())
        except RdsLinkError as error:
            _log.warning("RDS encoder link %s lost: %s", self.config.url, error)
            self._fail_waiting(error)
            if self._transport is transport:
                self._transport = None
                self._reader_task = None
                await transport.close()

    async def _transact(self, build: Callable[[], bytes], what: str) -> object:
        """Send the bytes ``build`` makes (under the command lock) until acknowledged;
        return the accepted answer."""
        async with self._command_lock:
            wire = build()
            attempts = self.config.max_attempts
            for attempt in range(1, attempts + 1):
                transport = self._transport
                if transport is None:
                    raise RdsLinkError(f"{what}: not connected to encoder at {self.config.url}")
                self._reply = asyncio.get_running_loop().create_future()
                try:
                    await transport.write(wire)
                    reply = await asyncio.wait_for(self._reply, self.config.ack_timeout)
                except TimeoutError:
                    _log.info("%s: no acknowledgement (attempt %d/%d)", what, attempt, attempts)
                    continue
                finally:
                    self._reply = None
                if self._judge_reply(reply, what):
                    return reply
                _log.info("%s: encoder asks for retransmission (%d/%d)", what, attempt, attempts)
            raise RdsTimeoutError(
                f"{what}: no acknowledgement from encoder at {self.config.url} "
                f"after {attempts} attempts"
            )
