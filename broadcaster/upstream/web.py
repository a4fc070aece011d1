"""The HTTP side of federation: push sources on the API, and the feeds of the neighbours.

Push sources: ``POST /api/v1/alerts`` with a source's own token. The token names the source
(client ``upstream:<name>``); what it submits passes the source's gate instead of plain intake
and is answered with the gate's outcome: 201 for an alert taken (``created``, or ``pending``
under the ``review`` policy), 200 for one already here (``duplicate``) or not for our area
(``outside-area``), 400 with the problems for one refused (bad CAP, or a signature the source's
trust refuses). A source's token does nothing else: every other API path answers 403, so a
source can neither read alerts nor approve its own.

Neighbour feeds: ``GET /feeds/{name}.atom``. Each ``[[neighbour]]`` has its own token
(``Authorization: Bearer <token>``; a wrong or missing token, or an unknown name, is 401 alike)
and rules (:func:`broadcaster.upstream.rules.allows`: area, events, scopes, ``Public`` only by
default). The feed lists the alerts in force that the rules allow as Atom (RFC 4287) in the
form of ``/feed.atom``; with ``[cap] signing_key`` it carries an enveloped XML signature (W3C
XML-DSig, as on the alerts this server writes). Each entry links to
``/feeds/{name}/alerts/{id}.xml``, the CAP document exactly as received, its own signature
intact, served under the same token and rules. A neighbour reads it as one of its
``[[upstream]]`` sources.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from aiohttp import web
from lxml import etree

from broadcaster.api.feed import atom_document
from broadcaster.api.keys import CLIENT, SERVICE
from broadcaster.errors import DiskFullError
from broadcaster.federationconfig import NeighbourConfig
from broadcaster.upstream.rules import shared_records
from broadcaster.upstream.sources import CLIENT_PREFIX
from broadcaster.web.headers import document_download

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
SUBMIT_PATH = "/api/v1/alerts"
_STATUS = {"created": 201, "pending": 201, "duplicate": 200, "outside-area": 200, "refused": 400}


@web.middleware
async def sources_only_submit(request: web.Request, handler: Any) -> web.StreamResponse:
    """403 for a push source's token anywhere but ``POST /api/v1/alerts``."""
    client = request.get(CLIENT)
    submitting = request.method == "POST" and request.path == SUBMIT_PATH
    if client is not None and client.startswith(CLIENT_PREFIX) and not submitting:
        error = {"error": "an upstream source's token may only submit alerts"}
        raise web.HTTPForbidden(text=json.dumps(error), content_type="application/json")
    response: web.StreamResponse = await handler(request)
    return response


async def pushed(request: web.Request, data: bytes | dict[str, Any]) -> web.Response | None:
    """The answer to a push source's submission, or None if the client is no push source."""
    service = request.app[SERVICE]
    gate = service.upstream.pushed_by(request[CLIENT])
    if gate is None:
        return None
    outcome = await gate.ingest(data, service.clock())
    try:
        await service.store.audit.append(
            gate.origin,
            f"upstream.{outcome.outcome}",
            outcome.alert_id or "",
            {"error": outcome.error} if outcome.error else None,
        )
    except DiskFullError:
        # The document was taken (or refused) already: the answer must say so.
        log.error("audit entry upstream.%s by %s lost: disk full", outcome.outcome, gate.origin)
    return web.json_response(outcome.to_json(), status=_STATUS[outcome.outcome])


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


@routes.get("/feeds/{name}.atom")
async def neighbour_feed(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    neighbour = _neighbour(request)
    base = service.public_url.rstrip("/")
    feed = atom_document(
        service,
        await shared_records(service.store, neighbour, service.divisions, service.clock()),
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
    if alert_id not in {
        r["id"]
        for r in await shared_records(service.store, neighbour, service.divisions, service.clock())
    }:
        raise web.HTTPNotFound()
    raw = await service.store.alerts.raw_xml(alert_id)
    return document_download(
        raw or b"", content_type="application/cap+xml", filename=f"{alert_id}.xml"
    )
