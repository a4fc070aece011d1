"""Server side of the TCP transport (docs/protocols/speaker.md, section 4.1).

Boxes connect out to this listener (optionally TLS) and keep the connection. The first line must
be a signed ``hello`` within ``hello_timeout_s``; afterwards each line is one signed JSON
message. A newer connection from the same box replaces the older one, so a hello is good for
one connection: ``HelloReplayGuard`` refuses a nonce used before and a hello older than the
box's last accepted one. Built on ``asyncio.Protocol`` so ten thousand idle boxes cost one
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
from datetime import datetime, timedelta

from drivers.speaker.errors import (
    BoxOfflineError,
    SpeakerConfigError,
    SpeakerConnectionError,
    SpeakerProtocolError,
)
from drivers.speaker.hub_link import HubLink, LinkSink
from drivers.speaker.messages import BoxHello
from drivers.speaker.tcp_options import enable_keepalive

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
TRANSPORT = "tcp"
REFUSAL_LOG_INTERVAL_S = 60.0
"""Connections refused for want of room are logged at most this often, as one count."""


class HelloReplayGuard:
    """The hellos each box connected with lately, so that a captured one cannot be replayed
    within the clock skew window to take the box's connection over (section 4.1).

    Per box it keeps the time of the last accepted hello and the nonces of those still inside
    ``window`` (older ones fail the time check anyway), so it stays small.
    """

    def __init__(self, window: timedelta) -> None:
        self._window = window
        self._latest: dict[str, datetime] = {}
        self._nonces: dict[str, dict[str, datetime]] = {}

    def admit(self, hello: BoxHello, now: datetime) -> None:
        """Accept a verified, fresh ``hello`` once; raises SpeakerProtocolError when its
        nonce was used before or it is older than the box's last accepted hello."""
        box_id = hello.box_id
        latest = self._latest.get(box_id)
        if latest is not None and hello.at < latest:
            raise SpeakerProtocolError(f"box {box_id}: hello older than its last accepted one")
        horizon = now - self._window
        nonces = {n: at for n, at in self._nonces.get(box_id, {}).items() if at >= horizon}
        if hello.nonce in nonces:
            raise SpeakerProtocolError(f"box {box_id}: hello nonce used before")
        nonces[hello.nonce] = hello.at
        self._nonces[box_id] = nonces
        self._latest[box_id] = hello.at


class _BoxConnection(asyncio.Protocol):
    def __init__(self, link: TcpHubLink) -> None:
        self._link = link
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._hello_timer: asyncio.TimerHandle | None = None
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
            self.close("no hello in time")

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
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._line(line)
            if self._transport is None or self._transport.is_closing():
                return
        if len(self._buffer) > MAX_LINE:
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
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self.box_id = box_id
        self._link.awaiting_hello.discard(self)
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
    ) -> None:
        if max_pending_hellos < 1:
            raise SpeakerConfigError("max_pending_hellos must be at least 1")
        self.sink = sink
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
        try:
            self._server = await loop.create_server(
                lambda: _BoxConnection(self), self._host, self._port, ssl=self._ssl, backlog=4096
            )
        except OSError as exc:
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
