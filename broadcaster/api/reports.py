"""API route for state reported upward: a county node's delivery summary of an alert relayed to it.

``POST /api/v1/alerts/{id}/reports`` with ``{"node": "150921", "summary": {channel: {state:
n}}, "complete": bool}`` (states ``confirmed``, ``failed``, ``retrying``, ``expired``,
``cancelled``). Only a token whose ``[[api.tokens]]`` entry names a ``node`` may call it, and
only for an alert relayed to that node (a delivery of a relaying channel to the node's
division, found among all of the alert's deliveries): anyone else gets 403. The body, read
whole however it arrives (in several segments, chunked), is at most 64 KiB (413) and must be
valid (400). The report is kept under the relay delivery (``GET .../deliveries`` shows it as
``report``); an unfinished one records progress, a complete one ends the delivery as
:func:`~broadcaster.federation.reports.report_outcome` says (confirmed only when the county
confirmed at least one delivery, failed when none was) and is written to the audit log
(``node.report.final``, with that outcome). The same report again changes nothing, and a late
unfinished report never replaces a final one: 200 either way.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from broadcaster.api.auth import audit_client
from broadcaster.api.keys import CLIENT, SERVICE
from broadcaster.channel import Confirmation
from broadcaster.divisions import normalize_code
from broadcaster.federation.reports import report_outcome, summary_problem
from broadcaster.jsonbody import JsonBodyError, parse_json_object
from broadcaster.service import BroadcasterService
from broadcaster.store.interface import Row

routes = web.RouteTableDef()

MAX_REPORT_BYTES = 65_536
MAX_RELAYED = 100_000
"""More relay deliveries than one alert can have (one per county node and part)."""


def _refuse(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


async def _report_body(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_length is not None and request.content_length > MAX_REPORT_BYTES:
        return _refuse(413, f"a report is at most {MAX_REPORT_BYTES} bytes")
    try:
        raw = await request.content.readexactly(MAX_REPORT_BYTES + 1)
    except asyncio.IncompleteReadError as short:
        raw = short.partial  # the whole body, in as many segments as it came
    if len(raw) > MAX_REPORT_BYTES:
        return _refuse(413, f"a report is at most {MAX_REPORT_BYTES} bytes")
    try:
        body = parse_json_object(raw)
    except JsonBodyError as exc:
        return _refuse(400, f"the report: {exc}")
    problem = summary_problem(body.get("summary"))
    if problem is None and not isinstance(body.get("complete"), bool):
        problem = "complete must be true or false"
    if problem is not None:
        return _refuse(400, f"the report: {problem}")
    return body


async def _relayed_to(service: BroadcasterService, alert_id: str, division: str) -> list[Row]:
    """The deliveries of ``alert_id`` by a relaying channel to ``division``: the relaying
    channels' alone are read (a city alert may also go to many thousands of its own targets),
    a delivery per county node."""
    relaying = sorted(n for n, c in service.channels.items() if c.capabilities.relays)
    if not relaying:
        return []
    rows = await service.store.deliveries.deliveries(alert_id, channels=relaying, limit=MAX_RELAYED)
    return [r for r in rows if r["division"] == division]


@routes.post("/api/v1/alerts/{alert_id}/reports")
async def node_report(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    client = request[CLIENT]
    alert_id = request.match_info["alert_id"]
    node = next((t.node for t in service.config.api.tokens if t.name == client), None)
    if node is None:
        error = "only a county node's token may report delivery state"
        await audit_client(request, "node.report.refused", alert_id, {"error": error})
        return _refuse(403, error)
    body = await _report_body(request)
    if isinstance(body, web.Response):
        return body
    if body.get("node", node) != node:
        return _refuse(
            403, f"this token belongs to county node {node}, not {str(body['node'])[:20]}"
        )
    if await service.store.alerts.get(alert_id) is None:
        return _refuse(404, "no such alert")
    mine = await _relayed_to(service, alert_id, normalize_code(node))
    if not mine:
        error = f"alert {alert_id} was not relayed to county node {node}"
        await audit_client(request, "node.report.refused", alert_id, {"error": error})
        return _refuse(403, error)
    summary, complete = body["summary"], body["complete"]
    outcome, detail = report_outcome(f"county node {node}", summary, complete)
    for row in mine:
        await service.store.reports.record(row["id"], node, summary, complete, service.clock())
        if row["state"] not in ("confirmed", "failed", "expired", "cancelled"):
            service.channels[row["channel"]].confirm(Confirmation(row["id"], outcome, detail))
    if complete:
        await audit_client(
            request,
            "node.report.final",
            alert_id,
            {"node": node, "summary": summary, "outcome": str(outcome)},
        )
    return web.json_response(
        {"alert_id": alert_id, "deliveries": [r["id"] for r in mine], "complete": complete},
        dumps=lambda value: json.dumps(value, ensure_ascii=False),
    )
