"""The public CAP Atom feed of active alerts, for neighbouring cities and county nodes.

``GET /feed.atom`` lists active alerts of scope Public (RFC 4287 Atom, one entry per alert,
each linking to its CAP document at ``GET /feed/alerts/{id}.xml``, served verbatim as
received, as an attachment so that a browser saves it instead of rendering what it carries).
Only alerts released to the public are served (the rule of the public pages,
:func:`broadcaster.web.public.released`): Restricted and Private alerts, alerts awaiting
approval, rejected or withdrawn ones answer 404 like an unknown id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from lxml import etree

from broadcaster.api.keys import SERVICE
from broadcaster.service import BroadcasterService
from broadcaster.web.headers import document_download
from broadcaster.web.public import released

routes = web.RouteTableDef()

ATOM = "http://www.w3.org/2005/Atom"


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def atom_document(
    service: BroadcasterService,
    alerts: list[dict[str, Any]],
    *,
    feed_url: str,
    title: str,
    href: Callable[[str], str],
) -> etree._Element:
    """An Atom feed at ``feed_url`` with one entry per alert record, linking to ``href(id)``."""
    feed = etree.fromstring(f'<feed xmlns="{ATOM}"/>'.encode())
    _sub(feed, "id", feed_url)
    _sub(feed, "title", title)
    updated = max((a["received_at"] for a in alerts), default=service.clock())
    _sub(feed, "updated", _rfc3339(updated))
    _sub(feed, "link", rel="self", href=feed_url)
    author = _sub(feed, "author")
    _sub(author, "name", service.config.server.sender_name)
    for alert in alerts:
        entry = _sub(feed, "entry")
        _sub(entry, "id", href(alert["id"]))
        _sub(entry, "title", alert["headline"] or alert["event"] or alert["identifier"])
        _sub(entry, "updated", _rfc3339(alert["received_at"]))
        _sub(entry, "summary", f"{alert['status']} {alert['msg_type']}: {alert['event'] or ''}")
        _sub(entry, "link", rel="alternate", type="application/cap+xml", href=href(alert["id"]))
    return feed


@routes.get("/feed.atom")
async def atom_feed(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    base = service.public_url.rstrip("/")
    alerts = await service.store.alerts.active(service.clock())
    public = [a for a in alerts if a.get("scope", "Public") == "Public"]
    feed = atom_document(
        service,
        public,
        feed_url=f"{base}/feed.atom",
        title=f"{service.config.server.sender_name}: active alerts",
        href=lambda alert_id: f"{base}/feed/alerts/{alert_id}.xml",
    )
    body = etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return web.Response(body=body, content_type="application/atom+xml")


@routes.get("/feed/alerts/{alert_id}.xml")
async def feed_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    alert_id = request.match_info["alert_id"]
    record = await service.store.alerts.get(alert_id)
    if not released(record):
        raise web.HTTPNotFound()
    raw = await service.store.alerts.raw_xml(alert_id)
    return document_download(
        raw or b"", content_type="application/cap+xml", filename=f"{alert_id}.xml"
    )
