"""The entries of an upstream feed: a CAP Atom feed or a plain index of CAP URLs.

Atom (RFC 4287) as this server's ``/feed.atom`` and the common public CAP feeds write it: each
``<entry>`` has an ``<id>``, an ``<updated>`` time and a ``<link>`` to its CAP document (the
first link of type ``application/cap+xml``, else the ``alternate`` one, else the first). A plain
index is one URL per line (blank lines and lines starting with ``#`` skipped); each URL is its
own entry id. Relative links are resolved against the feed's URL. The XML is read without
DTDs, entities or network access, so a hostile feed cannot expand or fetch anything; a document
that is neither form is a :class:`~broadcaster.upstream.fetch.FetchError`, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

from lxml import etree

from broadcaster.upstream.fetch import FetchError

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
