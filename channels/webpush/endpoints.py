"""Which push endpoints the server connects to: public addresses of push services, nothing else.

Anyone may post a subscription, and its endpoint is a URL the server then posts to. Unchecked,
that makes the server connect wherever a stranger points it: to itself, to the local network,
to a cloud metadata address (server-side request forgery). So an endpoint must be

- ``https`` (``http`` only with ``allow_http_endpoints``), with no user name or password, on
  port 443 (the default), and a host that is a DNS name or an IP address;
- and every address its host stands for must be public: not loopback, private, shared
  (100.64/10), link-local, multicast, unspecified, reserved, benchmarking or documentation,
  also when an IPv6 address carries an IPv4 one (IPv4-mapped ``::ffff:…``, 6to4 ``2002::/16``,
  NAT64 ``64:ff9b::/96``). Odd numeric forms (``0x7f000001``, ``2130706433``, ``127.1``) are
  read as the address they stand for.

:func:`check_endpoint` applies the rules that need no lookup; :func:`check_resolved` resolves
a name and checks every address (when a browser subscribes). :class:`PublicAddressResolver`
is the resolver the push client connects through: it resolves once, checks every address and
hands aiohttp only checked ones, so the connection goes to the address that was checked and a
DNS answer that changes between subscription and send (rebinding) cannot slip through.

``allow_private_endpoints`` lifts the address and port rules (never the others) for a
push-service stand-in on a lab network or on loopback in tests.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HTTPS_PORT = 443
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_NAME = re.compile(r"^(?=.{1,253}\.?$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """Which endpoints a channel accepts: ``http`` ones, and private addresses and ports."""

    allow_http: bool = False
    allow_private: bool = False


class EndpointError(ValueError):
    """A push endpoint the server will not connect to; the message says why."""


class BlockedAddressError(OSError):
    """A push endpoint's name resolves to an address that is not public."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    inner = [address.ipv4_mapped, address.sixtofour]
    if address in _NAT64:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.teredo is not None:
        inner.extend(address.teredo)
    return [a for a in inner if a is not None]


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (e.g. ``"a loopback address"``), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (link-local) address"
        for inner in _embedded_ipv4(address):
            problem = address_problem(inner)
            if problem is not None:
                return f"{problem} inside an IPv6 address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private or special-purpose address"),
        (address.is_reserved, "a reserved address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "a shared address"),
        (not address.is_global, "not a public address"),
    )
    return next((why for failed, why in checks if failed), None)


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` stands for, in any form a resolver accepts; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        raise EndpointError(f"the host {host!r} is not a valid IPv6 address")
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_endpoint(endpoint: str, policy: EndpointPolicy) -> tuple[SplitResult, str]:
    """The parsed endpoint and its host; raises :class:`EndpointError` if it breaks a rule that
    needs no lookup."""
    parts = urlsplit(endpoint)
    schemes = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in schemes:
        raise EndpointError(f"must be an {' or '.join(schemes)} URL of a push service")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise EndpointError("must not carry a user name or password")
    try:
        port = parts.port
    except ValueError:
        raise EndpointError("the port is not a number from 1 to 65535") from None
    host = parts.hostname
    if not host:
        raise EndpointError("names no host")
    address = literal_address(host)
    if address is None and not _NAME.match(host):
        raise EndpointError(f"the host {host!r} is not a valid DNS name")
    if policy.allow_private:
        return parts, host
    if host.rstrip(".").lower().split(".")[-1] == "localhost":
        raise EndpointError(f"the host {host} is a loopback name (RFC 6761)")
    if port not in (None, HTTPS_PORT):
        raise EndpointError(f"must use the https port {HTTPS_PORT}, not {port}")
    if address is not None:
        problem = address_problem(address)
        if problem is not None:
            raise EndpointError(f"the host {host} is {problem}")
    return parts, host


def _check_results(host: str, results: list[ResolveResult]) -> list[ResolveResult]:
    for result in results:
        problem = address_problem(ipaddress.ip_address(result["host"]))
        if problem is not None:
            raise BlockedAddressError(f"{host} resolves to {result['host']}, {problem}")
    return results


class PublicAddressResolver(AbstractResolver):
    """Resolves through ``inner`` (the system's resolver by default) and refuses a name any of
    whose addresses is not public, with :class:`BlockedAddressError`."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner

    def _resolver(self) -> AbstractResolver:
        if self._inner is None:
            self._inner = ThreadedResolver()
        return self._inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return _check_results(host, await self._resolver().resolve(host, port, family))

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


async def check_resolved(host: str, resolver: AbstractResolver) -> None:
    """Raise :class:`EndpointError` if ``host`` (a name) resolves to an address that is not
    public. A name that cannot be resolved now passes: every send checks it again."""
    try:
        _check_results(host, await resolver.resolve(host, HTTPS_PORT, socket.AF_UNSPEC))
    except BlockedAddressError as exc:
        raise EndpointError(str(exc)) from None
    except OSError:
        return
