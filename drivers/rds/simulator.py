"""An RDS encoder simulator reachable over TCP and over a pty, speaking UECP or ASCII.

It serves the device side of :mod:`drivers.rds.simulator_device` on real transports, so a
driver under test opens it exactly like hardware: ``socket://127.0.0.1:<port>`` or the pty
path with pyserial. Each connection gets its own decoder; all share one encoder state.

::

    async with RdsEncoderSimulator() as sim:
        url = await sim.start_tcp()
        ...
        await sim.wait_for(lambda s: s.ta is False, within=1.0)

``drop_connections`` cuts every TCP client (a broken link); ``stop_tcp`` closes the
listening port too (an unreachable encoder) and ``start_tcp(port=...)`` brings it back.
The pty is read with ``loop.add_reader`` on a non-blocking master descriptor, so nothing
blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from drivers.rds.config import Dialect
from drivers.rds.simulator_device import (
    DEFAULT_STATION,
    AsciiDeviceProtocol,
    RdsSimulatorFaults,
    SimulatedEncoder,
    UecpDeviceProtocol,
)
from drivers.rds.state import EncoderState
from drivers.rds.uecp_elements import EwsPayload

_READ_CHUNK = 4096


class DeviceProtocol(Protocol):
    """Bytes from the controller in, answers out."""

    def feed(self, data: bytes) -> list[bytes]: ...


class RdsEncoderSimulator:
    """A simulated RDS encoder; see the module docstring."""

    def __init__(
        self,
        *,
        dialect: Dialect = "uecp",
        site_address: int = 0,
        encoder_address: int = 0,
        initial: EncoderState = DEFAULT_STATION,
        on_change: Callable[[EncoderState], None] | None = None,
    ) -> None:
        self.dialect = dialect
        self.encoder = SimulatedEncoder(
            state=initial,
            site_address=site_address,
            encoder_address=encoder_address,
            on_change=on_change,
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._delayed: set[asyncio.TimerHandle] = set()
        self._pty_fds: tuple[int, int] | None = None
        self.tcp_address: tuple[str, int] | None = None
        self.pty_path: str | None = None

    # -- what listeners would see ----------------------------------------------------

    @property
    def state(self) -> EncoderState:
        """The current on-air state."""
        return self.encoder.state

    @property
    def faults(self) -> RdsSimulatorFaults:
        """The fault hooks; change them at any time."""
        return self.encoder.faults

    @property
    def history(self) -> list[EncoderState]:
        """Every state after every change, oldest first."""
        return self.encoder.history

    @property
    def ews_received(self) -> list[EwsPayload]:
        """EWS payloads received, oldest first."""
        return self.encoder.ews_received

    async def wait_for(
        self, predicate: Callable[[EncoderState], bool], within: float = 2.0
    ) -> EncoderState:
        """The state once ``predicate`` holds on it; TimeoutError after ``within`` seconds."""
        return await self.encoder.wait_for(predicate, within)

    # -- transports ------------------------------------------------------------------

    def _protocol(self) -> DeviceProtocol:
        if self.dialect == "ascii":
            return AsciiDeviceProtocol(self.encoder)
        return UecpDeviceProtocol(self.encoder)

    def _send(self, write: Callable[[bytes], object], answer: bytes) -> None:
        delay = self.encoder.faults.answer_delay
        if delay <= 0:
            write(answer)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._delayed.discard(handle)
            write(answer)

        handle = loop.call_later(delay, fire)
        self._delayed.add(handle)

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); return the ``socket://`` URL."""
        if self._server is None or self.tcp_address is None:
            self._server = await asyncio.start_server(self._serve_tcp, host, port)
            bound = self._server.sockets[0].getsockname()
            self.tcp_address = (str(bound[0]), int(bound[1]))
        bound_host, bound_port = self.tcp_address
        return f"socket://{bound_host}:{bound_port}"

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        protocol = self._protocol()

        def write(answer: bytes) -> None:
            if not writer.is_closing():
                writer.write(answer)

        try:
            while data := await reader.read(_READ_CHUNK):
                for answer in protocol.feed(data):
                    self._send(write, answer)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.close()

    async def drop_connections(self) -> None:
        """Cut every connected TCP client, as a broken link would."""
        for writer in list(self._writers):
            writer.transport.abort()
        await self._await_handlers()

    async def _await_handlers(self) -> None:
        handlers = list(self._handlers)
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)

    async def stop_tcp(self) -> None:
        """Stop listening and cut every client: the encoder becomes unreachable."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.drop_connections()
        if server is not None:
            await server.wait_closed()

    def start_pty(self) -> str:
        """Open a pseudo-terminal and serve it; return the path a serial client opens."""
        if self.pty_path is not None:
            return self.pty_path
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._pty_fds = (master, slave)
        self.pty_path = os.ttyname(slave)
        protocol = self._protocol()

        def write(answer: bytes) -> None:
            with contextlib.suppress(OSError):
                os.write(master, answer)

        def readable() -> None:
            try:
                data = os.read(master, _READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            for answer in protocol.feed(data):
                self._send(write, answer)

        asyncio.get_running_loop().add_reader(master, readable)
        return self.pty_path

    def stop_pty(self) -> None:
        """Close the pty."""
        fds, self._pty_fds = self._pty_fds, None
        self.pty_path = None
        if fds is None:
            return
        asyncio.get_running_loop().remove_reader(fds[0])
        for fd in fds:
            os.close(fd)

    async def stop(self) -> None:
        """Stop every transport and cancel pending delayed answers."""
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()
        await self.stop_tcp()
        self.stop_pty()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
