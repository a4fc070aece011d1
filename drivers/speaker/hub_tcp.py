"""Server side of the TCP transport (docs/protocols/speaker.md, section 4.1).

Boxes connect out to this listener (optionally TLS) and keep the connection. The first line must
be a signed ``hello`` within ``hello_timeout_s``; afterwards each line is one signed JSON
message. A newer connection from the same box replaces the older one, so a hello is good for
one connection: ``HelloReplayGuard`` (:mod:`drivers.speaker.hello_replay`) refuses a nonce used
before and a hello older than the box's last accepted one, also after a restart when it keeps
a state file. With one, a hello takes the box's connection only once the guard has it on disk
(``HelloReplayGuard.written``, a second at most): meanwhile the connection reads nothing more
and the box does not count as connected. The link opens the guard before it listens and closes it
after its last connection. Built on ``asyncio.Protocol`` so ten thousand idle boxes cost one
small object each, not a task.

Connections that have not yet sent their hello are bounded (``max_pending_hellos``): each may
hold a line buffer until its hello timeout, so anyone who reaches the port could otherwise open
thousands and exhaust the server's memory. Past the bound a new connection is closed at once;
boxes already authenticated are never affected, and a refused box reconnects with its backoff.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time

from drivers.speaker.errors import (
    BoxOfflineError,
    SpeakerConfigError,
    SpeakerConnectionError,
    SpeakerProtocolError,
)
from drivers.speaker.hello_replay import HelloReplayGuard
from drivers.speaker.hub_link import HubLink, LinkSink
from drivers.speaker.tcp_options import enable_keepalive

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
TRANSPORT = "tcp"
REFUSAL_LOG_INTERVAL_S = 60.0
"""Connections refused for want of room are logged at most this often, as one count."""


class _BoxConnection(asyncio.Protocol):
    def __init__(self, link: TcpHubLink) -> None:
        self._link = link
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._hello_timer: asyncio.TimerHandle | None = None
        self._admitting: str | None = None
        """The box whose verified hello waits to be written by the replay guard."""
        self.box_id: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._link.admit(self):
            transport.close()
            return
        enable_keepalive(transport.get_extra_info("socket"))
        loop = asyncio.get_running_loop()
        self._hello_timer = loop.call_later(self._link.hello_timeout_s, self._hello_timeout)
        self._link.connections.add(self)

    def _hello_timeout(self) -> None:
        if self.box_id is None:
            self.close("hello not written in time" if self._admitting else "no hello in time")

    def close(self, why: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            log.info("closing box connection %s: %s", self.box_id or "(unauthenticated)", why)
            self._transport.close()

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise BoxOfflineError(f"box {self.box_id} connection is closing")
        self._transport.write(data + b"\n")

    def data_received(self, data: bytes) -> None:
        if not self._buffer and data.endswith(b"\n") and self.box_id is not None:
            for line in data[:-1].split(b"\n"):  # whole lines: the usual read
                self._link.sink.receive(self.box_id, line, TRANSPORT)
                if self._transport is None or self._transport.is_closing():
                    return
            return
        self._buffer += data
        self._take_lines()

    def _take_lines(self) -> None:
        while self._admitting is None and (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._line(line)
            if self._transport is None or self._transport.is_closing():
                return
        # While a hello is written, reading is paused: the buffer holds what one read brought.
        if self._admitting is None and len(self._buffer) > MAX_LINE:
            self.close("line too long")

    def _line(self, line: bytes) -> None:
        if self.box_id is not None:
            self._link.sink.receive(self.box_id, line, TRANSPORT)
            return
        try:
            box_id = self._link.sink.authenticate(line)
        except SpeakerProtocolError as exc:
            log.warning("refused box connection: %s", exc)
            self.close("bad hello")
            return
        self._link.awaiting_hello.discard(self)
        written = self._link.hellos.written()
        if written is None:
            self._attach(box_id)
            return
        assert self._transport is not None
        self._admitting = box_id
        self._transport.pause_reading()
        written.add_done_callback(lambda _: self._written(box_id))

    def _written(self, box_id: str) -> None:
        """The box's hello is on disk: its connection takes its place, and what the box sent
        meanwhile is read."""
        self._admitting = None
        if self._transport is None or self._transport.is_closing():
            return
        self._attach(box_id)
        self._transport.resume_reading()
        self._take_lines()

    def _attach(self, box_id: str) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self.box_id = box_id
        self._link.attach(box_id, self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self._link.connections.discard(self)
        self._link.awaiting_hello.discard(self)
        if self.box_id is not None:
            self._link.detach(self.box_id, self)


class TcpHubLink(HubLink):
    """The TCP listener boxes connect to."""

    name = TRANSPORT

    def __init__(
        self,
        sink: LinkSink,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        hello_timeout_s: float = 10.0,
        max_pending_hellos: int = 256,
        *,
        hellos: HelloReplayGuard,
    ) -> None:
        if max_pending_hellos < 1:
            raise SpeakerConfigError("max_pending_hellos must be at least 1")
        self.sink = sink
        self.hellos = hellos
        """The replay guard the sink admits hellos with; the link opens and closes it."""
        self.hello_timeout_s = hello_timeout_s
        self.max_pending_hellos = max_pending_hellos
        self.connections: set[_BoxConnection] = set()
        self.awaiting_hello: set[_BoxConnection] = set()
        """Connections that have not yet sent their hello."""
        self.refused_connections = 0
        """New connections closed at once because ``max_pending_hellos`` awaited their hello."""
        self._refusals_logged = 0
        self._refusals_logged_at = -math.inf
        self._host, self._port = host, port
        self._ssl = ssl_context
        self._boxes: dict[str, _BoxConnection] = {}
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None:
            raise SpeakerConnectionError("TCP listener is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def admit(self, connection: _BoxConnection) -> bool:
        """Let a new connection wait for its hello, unless ``max_pending_hellos`` already do;
        a refusal is counted, and logged at most once a minute."""
        if len(self.awaiting_hello) < self.max_pending_hellos:
            self.awaiting_hello.add(connection)
            return True
        self.refused_connections += 1
        now = time.monotonic()
        if now - self._refusals_logged_at >= REFUSAL_LOG_INTERVAL_S:
            log.warning(
                "closed %d new box connection(s) at once: %d connections await their hello",
                self.refused_connections - self._refusals_logged,
                len(self.awaiting_hello),
            )
            self._refusals_logged = self.refused_connections
            self._refusals_logged_at = now
        return False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.hellos.open()
        try:
            self._server = await loop.create_server(
                lambda: _BoxConnection(self), self._host, self._port, ssl=self._ssl, backlog=4096
            )
        except OSError as exc:
            await self.hellos.close()
            raise SpeakerConnectionError(
                f"cannot listen on {self._host}:{self._port}: {exc}"
            ) from exc

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self.connections):
            connection.close("hub stopping")
        await self._server.wait_closed()
        self._server = None
        await self.hellos.close()

    def attach(self, box_id: str, connection: _BoxConnection) -> None:
        old = self._boxes.get(box_id)
        self._boxes[box_id] = connection
        if old is not None and old is not connection:
            old.close("replaced by a newer connection")
        else:
            self.sink.presence(box_id, True, TRANSPORT)

    def detach(self, box_id: str, connection: _BoxConnection) -> None:
        if self._boxes.get(box_id) is connection:
            del self._boxes[box_id]
            self.sink.presence(box_id, False, TRANSPORT)

    async def send(self, box_id: str, data: bytes) -> None:
        self.write(box_id, data)

    def write(self, box_id: str, data: bytes) -> None:
        """Write one line to the box's connection now; raises BoxOfflineError."""
        connection = self._boxes.get(box_id)
        if connection is None:
            raise BoxOfflineError(f"box {box_id} is not connected over TCP")
        connection.write(data)

    def drop(self, box_id: str) -> None:
        connection = self._boxes.get(box_id)
        if connection is not None:
            connection.close("dropped by the hub")
