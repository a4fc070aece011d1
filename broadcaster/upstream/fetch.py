"""Bounded HTTP fetches for upstream feeds and the CAP documents their entries link to.

A feed URL is configured by an administrator; what the feed names is not. Every fetch is
limited in size (``max_bytes``: a larger ``Content-Length`` is refused before reading, a body
that grows past it is cut and refused) and in time (``timeout_seconds`` for the whole fetch,
redirects included); redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and only to
an allowed host (:func:`allowed`: the feed's own host and port, or ``allowed_hosts``), so a
feed cannot point this server at another machine. Only ``http`` and ``https`` are fetched.
Conditional GET (RFC 9110 §13.1): ``If-None-Match`` and ``If-Modified-Since`` are sent from
what the feed answered last; 304 is "nothing new".

:func:`parse_entries` reads what a feed lists: Atom (RFC 4287) as this server's ``/feed.atom``
and the common public CAP feeds write it, each ``<entry>`` with an ``<id>``, an ``<updated>``
time and a ``<link>`` to its CAP document (the first link of type ``application/cap+xml``,
else the ``alternate`` one, else the first); or a plain index, one URL per line (blank lines
and lines starting with ``#`` skipped), each URL its own entry id. Relative links are resolved
against the feed's URL. The XML is read without DTDs, entities or network access, so a hostile
feed cannot expand or fetch anything; a document that is neither form is a
:class:`FetchError`, never a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from lxml import etree

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


ATOM = "{http://www.w3.org/2005/Atom}"
MAX_ENTRIES = 500
_CAP_TYPES = ("application/cap+xml", "application/common-alerting-protocol+xml")


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry: its id, its ``updated`` (empty in an index) and the CAP document's URL."""

    id: str
    updated: str
    url: str


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_entries(body: bytes, base_url: str, form: str) -> list[FeedEntry]:
    """The entries of a feed (``form`` ``atom`` or ``index``), at most :data:`MAX_ENTRIES`."""
    entries = _atom(body, base_url) if form == "atom" else _index(body, base_url)
    if len(entries) > MAX_ENTRIES:
        raise FetchError(f"the feed lists {len(entries)} entries; at most {MAX_ENTRIES} are read")
    return entries


def _atom(body: bytes, base_url: str) -> list[FeedEntry]:
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise FetchError(f"the feed is not XML: {exc.msg}") from None
    if root.tag != f"{ATOM}feed":
        raise FetchError(f"the feed is not an Atom feed (root element {root.tag!r})")
    entries = []
    for entry in root.iterfind(f"{ATOM}entry"):
        href = _cap_link(entry)
        entry_id = (entry.findtext(f"{ATOM}id") or "").strip() or href
        if not href:
            raise FetchError(f"feed entry {entry_id!r} links to no document")
        updated = (entry.findtext(f"{ATOM}updated") or "").strip()
        entries.append(FeedEntry(entry_id, updated, urljoin(base_url, href)))
    return entries


def _cap_link(entry: etree._Element) -> str:
    links = [link for link in entry.iterfind(f"{ATOM}link") if link.get("href")]
    ranked = sorted(
        links,
        key=lambda link: (
            link.get("type") not in _CAP_TYPES,
            link.get("rel", "alternate") != "alternate",
        ),
    )
    return (ranked[0].get("href") or "").strip() if ranked else ""


def _index(body: bytes, base_url: str) -> list[FeedEntry]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError("the index is not UTF-8 text") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if any(c.isspace() or ord(c) < 32 for c in line) or "<" in line:
            raise FetchError(f"index line {number} is not a URL")
        url = urljoin(base_url, line)
        entries.append(FeedEntry(url, "", url))
    return entries
