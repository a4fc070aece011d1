"""Per-client rate limits for public and login endpoints, and who the client is.

:class:`RateLimiter` allows at most ``per_minute`` requests per key (a client address) in any 60
s window and says how long to wait past that. :func:`forwarded_client` is the root application's
middleware that, for requests that come through a trusted reverse proxy (``[server]
trusted_proxies``), takes the client's address from the proxy's de facto ``X-Forwarded-For``
header (RFC 7239 standardises its successor, ``Forwarded``): the right-most entry that is not
itself a trusted proxy. From any other peer the header is ignored, so a client cannot choose its
own address to dodge a limit. :class:`TurnedAway` counts the connections the listener turned away
for ``connections_per_client`` and says, at most once a minute per address, whom and how many:
boxes behind one NAT that nobody listed in ``[server] shared_addresses`` are turned away at
every alert and play their fallback clip instead of the warning, so the log must say so.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
_MAX_KEYS = 10_000
REPORT_EVERY_S = 60.0
"""How often one address's turned-away connections are reported in the log, at most."""


class RateLimiter:
    """At most ``per_minute`` events per key in any 60 s window."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def wait_needed(self, key: str) -> float:
        """Count one event for ``key``; 0 if allowed, else the seconds until one would be
        (the event is then not counted)."""
        now = self.clock()
        window = self._events.setdefault(key, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return max(1.0, 60 - (now - window[0]))
        window.append(now)
        if len(self._events) > _MAX_KEYS:
            for stale in [k for k, w in self._events.items() if not w or w[-1] <= now - 60]:
                del self._events[stale]
        return 0.0


class TurnedAway:
    """Connections turned away for having too many open from one address: in all since
    start (``total``, for ``/metrics``), and per address since its last report."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.total = 0
        self._since_report: dict[str, int] = {}
        self._reported_at: dict[str, float] = {}

    def count(self, address: str) -> int | None:
        """Count one connection from ``address`` turned away; the number to report for it
        now (this one and those since its last report), or None within a minute of that."""
        self.total += 1
        now = self.clock()
        waiting = self._since_report.get(address, 0) + 1
        if now - self._reported_at.get(address, now - REPORT_EVERY_S) < REPORT_EVERY_S:
            self._since_report[address] = waiting
            return None
        self._since_report.pop(address, None)
        self._reported_at[address] = now
        if len(self._reported_at) > _MAX_KEYS:
            for stale in [a for a, at in self._reported_at.items() if at <= now - REPORT_EVERY_S]:
                del self._reported_at[stale]
                self._since_report.pop(stale, None)
        return waiting


def address_matcher(networks: Iterable[str]) -> Callable[[str | None], bool]:
    """Whether an address is in one of ``networks`` (addresses or networks)."""
    listed = [ipaddress.ip_network(n, strict=False) for n in networks]

    def is_listed(address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in listed)

    return is_listed


def forwarded_client(
    trusted_proxies: Iterable[str],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware that makes ``request.remote`` the client behind trusted proxies."""
    trusted = list(trusted_proxies)
    is_trusted = address_matcher(trusted)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if trusted and is_trusted(request.remote):
            hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
            client = next((h for h in reversed(hops) if h and not is_trusted(h)), None)
            if client is not None:
                request = request.clone(remote=client)
        return await handler(request)

    return middleware
