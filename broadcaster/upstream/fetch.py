"""Bounded HTTP fetches for upstream feeds and the CAP documents their entries link to.

A feed URL is configured by an administrator; what the feed names is not. Every fetch is
limited in size (``max_bytes``: a larger ``Content-Length`` is refused before reading, a body
that grows past it is cut and refused) and in time (``timeout_seconds`` for the whole fetch,
redirects included); redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and only to
an allowed host (:func:`allowed`: the feed's own host and port, or ``allowed_hosts``), so a
feed cannot point this server at another machine. Only ``http`` and ``https`` are fetched.
Conditional GET (RFC 9110 §13.1): ``If-None-Match`` and ``If-Modified-Since`` are sent from
what the feed answered last; 304 is "nothing new".
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

from broadcaster.errors import BroadcasterError
from broadcaster.upstream.state import Validators

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchError(BroadcasterError):
    """A fetch failed or was refused; the message says why (no secret, no body)."""


class RefusedUrlError(FetchError):
    """The URL (or a redirect) leaves the allowed hosts, or is not http(s): never fetched."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched body (empty when ``not_modified``) and the validators to send next time."""

    url: str
    body: bytes
    validators: Validators
    not_modified: bool = False


def origin_of(url: str) -> str:
    """``host:port`` of an http(s) URL (the default port filled in)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


def allowed(url: str, origins: Collection[str], hosts: Collection[str]) -> bool:
    """Whether ``url`` is http(s) and on one of ``origins`` (``host:port``) or ``hosts``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return False
    return origin_of(url) in origins or parts.hostname.lower() in hosts


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    time_limit: float,
    origins: Collection[str],
    hosts: Collection[str] = (),
    validators: Validators | None = None,
    bearer: str | None = None,
) -> Fetched:
    """GET ``url`` within the limits; raises FetchError for anything but a usable answer.

    ``bearer`` is sent as ``Authorization: Bearer`` to ``origins`` only, never to another
    allowed host a link or a redirect leads to.
    """
    headers = {"Accept": "application/atom+xml, application/cap+xml, application/xml, */*"}
    if validators is not None and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators is not None and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        async with asyncio.timeout(time_limit):
            return await _follow(session, url, headers, max_bytes, origins, hosts, bearer)
    except TimeoutError:
        raise FetchError(f"no complete answer from {origin_of(url)} in {time_limit:g} s") from None
    except aiohttp.ClientError as exc:
        raise FetchError(f"cannot fetch from {origin_of(url)}: {type(exc).__name__}") from None


async def _follow(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    max_bytes: int,
    origins: Collection[str],
    hosts: Collection[str],
    bearer: str | None,
) -> Fetched:
    for _ in range(MAX_REDIRECTS + 1):
        if not allowed(url, origins, hosts):
            raise RefusedUrlError(f"refused to fetch {url!r}: not on the configured host")
        sent = dict(headers)
        if bearer is not None and origin_of(url) in origins:
            sent["Authorization"] = f"Bearer {bearer}"
        async with session.get(url, headers=sent, allow_redirects=False) as response:
            if response.status in _REDIRECTS:
                url = urljoin(url, response.headers.get("Location", ""))
                continue
            if response.status == 304:
                return Fetched(url, b"", _validators_of(response), not_modified=True)
            if response.status != 200:
                raise FetchError(f"{origin_of(url)} answered HTTP {response.status}")
            if (response.content_length or 0) > max_bytes:
                raise FetchError(f"answer of {response.content_length} bytes; limit {max_bytes}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"answer longer than the limit of {max_bytes} bytes")
            return Fetched(url, bytes(body), _validators_of(response))
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _validators_of(response: aiohttp.ClientResponse) -> Validators:
    return Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
