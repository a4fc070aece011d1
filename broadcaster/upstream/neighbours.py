"""Feeds for neighbouring nodes: ``GET /feeds/{name}.atom``, filtered by the neighbour's rules.

Each ``[[neighbour]]`` has its own token (``Authorization: Bearer <token>``; a wrong or missing
token, or an unknown name, is 401 alike) and rules: the division codes of the area it wants
(:mod:`broadcaster.upstream.area`; any area by default), the CAP events (any by default) and
the scopes (``Public`` only by default). The feed lists the alerts in force that the rules
allow, released here (approved if they waited for approval; not held), as Atom (RFC 4287) in
the form of ``/feed.atom``; with ``[cap] signing_key`` the feed carries an enveloped XML
signature (W3C XML-DSig, as on the alerts this server writes). Each entry links to
``/feeds/{name}/alerts/{id}.xml``, the CAP document exactly as received, its own signature
intact, served under the same token and rules. A neighbour reads it as one of its
``[[upstream]]`` sources.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from aiohttp import web
from lxml import etree

from broadcaster.api.feed import atom_document
from broadcaster.api.keys import SERVICE
from broadcaster.cap import Alert, MsgType, Status
from broadcaster.cap.serialize import from_json
from broadcaster.config import NeighbourConfig
from broadcaster.intake import broadcasts
from broadcaster.service import BroadcasterService
from broadcaster.upstream.area import AreaFilter
from broadcaster.web.headers import document_download

routes = web.RouteTableDef()


def _neighbour(request: web.Request) -> NeighbourConfig:
    """The neighbour the path names, if the request carries its token; else 401."""
    service = request.app[SERVICE]
    name = request.match_info["name"]
    header = request.headers.get("Authorization", "")
    offered = header[len("Bearer ") :].strip().encode() if header.startswith("Bearer ") else b""
    for neighbour in service.config.neighbour:
        if neighbour.name == name and hmac.compare_digest(
            offered, neighbour.token.reveal().encode()
        ):
            return neighbour
    raise web.HTTPUnauthorized(
        text='{"error": "missing or invalid token for this feed"}',
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="broadcaster"'},
    )


def allows(
    neighbour: NeighbourConfig, area: AreaFilter, record: dict[str, Any], alert: Alert
) -> bool:
    """Whether the neighbour's rules let it see ``alert`` (with its stored ``record``)."""
    approval = record.get("approval")
    if record["state"] != "active" or (approval is not None and approval["state"] != "approved"):
        return False
    if not broadcasts(Status(record["status"]), MsgType(record["msg_type"])):
        return False
    if record["scope"] not in neighbour.scopes:
        return False
    if neighbour.events and not any(info.event in neighbour.events for info in alert.infos):
        return False
    return area.touches(alert)


async def _shared(service: BroadcasterService, neighbour: NeighbourConfig) -> list[dict[str, Any]]:
    """The records of the alerts in force that ``neighbour`` may see, newest first."""
    area = AreaFilter(neighbour.areas, service.divisions)
    shared = []
    for row in await service.store.alerts.active(service.clock()):
        record = await service.store.alerts.get(row["id"])
        document = await service.store.alerts.document(row["id"])
        if record is None or document is None:
            continue
        alert = await asyncio.to_thread(from_json, document)
        if allows(neighbour, area, record, alert):
            shared.append(record)
    return shared


@routes.get("/feeds/{name}.atom")
async def neighbour_feed(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    neighbour = _neighbour(request)
    base = service.public_url.rstrip("/")
    feed = atom_document(
        service,
        await _shared(service, neighbour),
        feed_url=f"{base}/feeds/{neighbour.name}.atom",
        title=f"{service.config.server.sender_name}: alerts for {neighbour.name}",
        href=lambda alert_id: f"{base}/feeds/{neighbour.name}/alerts/{alert_id}.xml",
    )
    signer = service.signatures.signer
    if signer is not None:
        feed = await asyncio.to_thread(signer.sign, feed)
    body = etree.tostring(feed, xml_declaration=True, encoding="UTF-8")
    return web.Response(body=body, content_type="application/atom+xml")


@routes.get("/feeds/{name}/alerts/{alert_id}.xml")
async def neighbour_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    neighbour = _neighbour(request)
    alert_id = request.match_info["alert_id"]
    if alert_id not in {r["id"] for r in await _shared(service, neighbour)}:
        raise web.HTTPNotFound()
    raw = await service.store.alerts.raw_xml(alert_id)
    return document_download(
        raw or b"", content_type="application/cap+xml", filename=f"{alert_id}.xml"
    )
