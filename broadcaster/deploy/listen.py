"""Listening for HTTP clients so that slow or greedy ones cannot tie the server up.

Two limits from ``[server]``:

- ``header_timeout_seconds``: a connection must deliver a request's complete header within this
  time of opening, or of its previous answer; a silent client, or one that trickles a header
  line now and then (slowloris), is cut off then. aiohttp closes a connection that has waited
  this long for a complete request (its keep-alive timeout), so the runner gets it as that.
- ``connections_per_client``: at most this many open connections from one address; a further one
  is answered ``503`` with ``Retry-After`` and closed. Trusted reverse proxies
  (``trusted_proxies``) carry many residents and are not limited, nor are ``shared_addresses``:
  the boxes' network or a mobile operator's NAT, behind which many boxes fetch their audio at
  the same moment of every alert. Each address turned away is named in the log (at most once a
  minute, with how many), and ``/metrics`` counts them all
  (``broadcaster_connections_turned_away_total``).

Every box downloads its audio at each alert, all within a second or two: the listening socket
queues up to :data:`BACKLOG` connections the server has not accepted yet (the kernel caps it at
``net.core.somaxconn``, 4,096 on current Linux). With asyncio's default of 100, a burst beyond
it had its handshakes dropped, and each of those boxes tried again only after a second or more
(TCP's retransmission timeout, RFC 6298).

Request bodies (their size, and ``body_timeout_seconds`` for their arrival) are held by the
application itself (:mod:`broadcaster.web.bodies`), so they apply behind any listener.

:func:`make_runner` builds the application runner with the first, :func:`open_listener` opens the
listening socket with the second (:class:`ConnectionsPerClient` wraps aiohttp's protocol factory
and counts connections per peer address).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from aiohttp import web

from broadcaster.client_limits import TurnedAway, address_matcher
from broadcaster.config import ServerConfig

log = logging.getLogger(__name__)

BACKLOG = 4096
"""Connections the kernel holds for the server before it accepts them (``listen(2)``)."""
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 35\r\nConnection: close\r\n\r\ntoo many connections from your side\n"
)


class ConnectionsPerClient:
    """A protocol factory: aiohttp's, with at most ``limit`` connections per peer address."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        limit: int,
        exempt: Callable[[str], bool],
        turned_away: TurnedAway,
    ) -> None:
        self.factory = factory
        self.limit = limit
        self.exempt = exempt
        self.turned_away = turned_away
        self.open: Counter[str] = Counter()

    def __call__(self) -> asyncio.Protocol:
        return _CountedConnection(self)


class _CountedConnection(asyncio.Protocol):
    """Counts its connection for its peer and hands everything to aiohttp's protocol, or turns
    the connection away when the peer has too many."""

    def __init__(self, limits: ConnectionsPerClient) -> None:
        self.limits = limits
        self.peer: str | None = None
        self.inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if peername else ""
        limits = self.limits
        if limits.open[peer] >= limits.limit and not limits.exempt(peer):
            assert isinstance(transport, asyncio.Transport)
            transport.write(BUSY)
            transport.close()
            report = limits.turned_away.count(peer)
            if report is not None:
                log.warning(
                    "turned away %d connection(s) from %s: it had %d open"
                    " ([server] connections_per_client); if many boxes or people reach this"
                    " server from that one address (a NAT), list it in [server] shared_addresses",
                    report,
                    peer,
                    limits.limit,
                )
            return
        limits.open[peer] += 1
        self.peer = peer
        self.inner = limits.factory()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            open_ = self.limits.open
            open_[self.peer] -= 1
            if open_[self.peer] <= 0:
                del open_[self.peer]
            self.peer = None
        if self.inner is not None:
            self.inner.connection_lost(exc)


def make_runner(app: web.Application, server: ServerConfig) -> web.AppRunner:
    """The runner for ``app``; a request header must arrive within the configured time."""
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=server.header_timeout_seconds,
    )


async def open_listener(
    runner: web.AppRunner,
    host: str,
    port: int,
    server: ServerConfig,
    turned_away: TurnedAway | None = None,
) -> asyncio.Server:
    """Listen on ``host:port`` for ``runner`` (set up) with the per-client connection limit,
    counting in ``turned_away`` (the service's: ``/metrics`` shows it) what it turns away."""
    assert runner.server is not None, "set the runner up first"
    exempt = address_matcher([*server.trusted_proxies, *server.shared_addresses])
    factory = ConnectionsPerClient(
        runner.server, server.connections_per_client, exempt, turned_away or TurnedAway()
    )
    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host, port, reuse_address=True, backlog=BACKLOG)
