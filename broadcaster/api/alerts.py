"""API routes for alerts: submit, read, cancel, and per-target delivery state.

- ``POST /api/v1/alerts``: CAP XML (``application/cap+xml``, ``application/xml``, ``text/xml``)
  or the CAP JSON form (``application/json``); ``?channels=a,b`` limits the channels.
  201 ``{"id": ...}`` for a new alert, 200 with the same id for one already stored, both with
  the ``repairs`` made under the ``repair`` intake policy (``[cap] intake``, or the client's
  token's ``intake``); 400 with every problem (path, rule, message, whether repairable) for an
  invalid one, 422 naming the areas for one whose areas select no target on any channel
  (``?allow_empty=1`` accepts it, shown as reaching no one); neither is stored; 503
  ``{"error": "disk full: the alert was not stored"}`` when the data directory's disk is full.
- ``GET /api/v1/alerts/{id}``, ``GET /api/v1/alerts/{id}/cap`` (the document as received).
- ``POST /api/v1/alerts/{id}/cancel`` ``{"reason": "..."}``: issues a CAP Cancel; from a
  client whose token ``requires_approval`` the Cancel waits for approval like its alerts.
- ``POST /api/v1/alerts/{id}/approve`` / ``reject`` ``{"reason": "..."}``, ``GET
  /api/v1/approvals``: the two-person rule for clients whose token ``requires_approval``;
  such a client may not approve or reject (403), its own alerts or anyone else's.
- ``GET /api/v1/alerts/{id}/deliveries``: ``{"summary": {channel: {state: n}}, "complete":
  bool, "deliveries": [...]}``, filterable by ``state``, paged by ``limit``/``offset``.
- ``GET /api/v1/deliveries/{id}/events``: one delivery's history.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from broadcaster.api.auth import audit_client, refuse_first_party
from broadcaster.api.diskfull import disk_full_response
from broadcaster.api.keys import CLIENT, NEEDS_APPROVAL, SERVICE
from broadcaster.cap import Problem
from broadcaster.errors import (
    ApprovalError,
    CapError,
    DiskFullError,
    StoreError,
    UnreachableAreaError,
)
from broadcaster.intake import IntakeResult
from broadcaster.jsonbody import JsonBodyError, bad_request, parse_json_object, read_json_object
from broadcaster.store.alerts import REACHES_NO_ONE
from broadcaster.web.headers import document_download

routes = web.RouteTableDef()

_XML_TYPES = {"application/cap+xml", "application/xml", "text/xml"}
_PENDING = ("queued", "sending")


def _result_json(result: IntakeResult) -> dict[str, Any]:
    return {
        "id": result.alert_id,
        "created": result.created,
        "state": result.state,
        "planned": result.planned,
        "warnings": [p.as_json() for p in result.warnings],
        "repairs": [p.as_json() for p in result.repairs],
    }


def _bad_request(message: str, problems: list[Problem] | None = None) -> web.Response:
    body = {"error": message, "problems": [p.as_json() for p in problems or []]}
    return web.json_response(body, status=400)


@routes.post("/api/v1/alerts")
async def submit_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    content_type = request.content_type
    body = await request.read()
    data: bytes | dict[str, Any]
    if content_type in _XML_TYPES:
        data = body
    elif content_type == "application/json":
        try:
            data = parse_json_object(body)
        except JsonBodyError as exc:
            return _bad_request(f"the JSON form of an alert: {exc}")
    else:
        return web.json_response(
            {
                "error": f"unsupported content type {content_type!r}; use application/cap+xml"
                " or application/json"
            },
            status=415,
        )
    channels_param = request.query.get("channels")
    channels = [c for c in channels_param.split(",") if c] if channels_param else None
    client = request[CLIENT]
    requested_by = f"api:{client}" if request[NEEDS_APPROVAL] else None
    policy = next((t.intake for t in service.config.api.tokens if t.name == client), None)
    try:
        result = await service.submit(
            data,
            origin=f"api:{client}",
            channels=channels,
            requested_by=requested_by,
            policy=policy,
            allow_empty=request.query.get("allow_empty") in ("1", "true"),
        )
    except UnreachableAreaError as exc:
        await audit_client(request, "alert.submit.refused", "", {"error": str(exc)})
        problems = [p.as_json() for p in exc.problems]
        return web.json_response({"error": str(exc), "problems": problems}, status=422)
    except CapError as exc:
        await audit_client(request, "alert.submit.refused", "", {"error": str(exc)})
        return _bad_request(str(exc), exc.problems)
    except DiskFullError:
        return disk_full_response("disk full: the alert was not stored")
    if result.created:
        action = "alert.draft" if result.state == "pending" else "alert.send"
        detail: dict[str, Any] = {"planned": result.planned}
        if result.repairs:
            detail["repairs"] = [str(p) for p in result.repairs]
        if result.state == REACHES_NO_ONE:
            detail["state"] = result.state
        await audit_client(request, action, result.alert_id, detail)
    return web.json_response(_result_json(result), status=201 if result.created else 200)


async def _alert_or_404(request: web.Request) -> dict[str, Any]:
    service = request.app[SERVICE]
    record = await service.database.run(service.alerts.get, request.match_info["alert_id"])
    if record is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "no such alert"}), content_type="application/json"
        )
    return record


@routes.get("/api/v1/alerts/{alert_id}")
async def get_alert(request: web.Request) -> web.Response:
    return web.json_response(await _alert_or_404(request))


@routes.get("/api/v1/alerts/{alert_id}/cap")
async def get_alert_cap(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    await _alert_or_404(request)
    alert_id = request.match_info["alert_id"]
    raw = await service.database.run(service.alerts.raw_xml, alert_id)
    return document_download(
        raw or b"", content_type="application/cap+xml", filename=f"{alert_id}.xml"
    )


@routes.post("/api/v1/alerts/{alert_id}/cancel")
async def cancel_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    reason = (await _reason(request)) or "cancelled"
    if record["state"] not in ("active", "held"):
        error = f"alert is {record['state']}; only active alerts can be cancelled"
        await audit_client(request, "alert.cancel.refused", record["id"], {"error": error})
        return web.json_response({"error": error}, status=409)
    client = f"api:{request[CLIENT]}"
    requested_by = client if request[NEEDS_APPROVAL] else None
    try:
        result = await service.cancel(
            record["id"], reason=reason, origin=client, requested_by=requested_by
        )
    except (CapError, StoreError) as exc:
        await audit_client(request, "alert.cancel.refused", record["id"], {"error": str(exc)})
        return _bad_request(str(exc), getattr(exc, "problems", None))
    action = "alert.cancel.draft" if result.state == "pending" else "alert.cancel"
    await audit_client(request, action, record["id"], {"cancel": result.alert_id, "reason": reason})
    return web.json_response(_result_json(result), status=201)


async def _reason(request: web.Request) -> str:
    """The optional ``{"reason": …}`` of a cancel, approve or reject request."""
    reason = (await read_json_object(request, optional=True)).get("reason")
    if reason is not None and not isinstance(reason, str):
        raise bad_request("reason: a string is required")
    return reason.strip() if reason else ""


@routes.post("/api/v1/alerts/{alert_id}/approve")
async def approve_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    await refuse_first_party(request, "alert.approve", record["id"])
    reason = await _reason(request)
    try:
        result = await service.approve(record["id"], by=f"api:{request[CLIENT]}", reason=reason)
    except ApprovalError as exc:
        await audit_client(request, "alert.approve.refused", record["id"], {"error": str(exc)})
        return web.json_response({"error": str(exc)}, status=403)
    await audit_client(request, "alert.approve", record["id"], {"reason": reason})
    return web.json_response(_result_json(result))


@routes.post("/api/v1/alerts/{alert_id}/reject")
async def reject_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    await refuse_first_party(request, "alert.reject", record["id"])
    reason = await _reason(request)
    try:
        await service.reject(record["id"], by=f"api:{request[CLIENT]}", reason=reason)
    except ApprovalError as exc:
        await audit_client(request, "alert.reject.refused", record["id"], {"error": str(exc)})
        return web.json_response({"error": str(exc)}, status=403)
    await audit_client(request, "alert.reject", record["id"], {"reason": reason})
    return web.json_response({"id": record["id"], "state": "rejected"})


@routes.get("/api/v1/approvals")
async def pending_approvals(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.json_response(await service.database.run(service.alerts.pending_approvals))


@routes.get("/api/v1/alerts/{alert_id}/deliveries")
async def get_deliveries(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    try:
        limit = min(10_000, max(1, int(request.query.get("limit", "1000"))))
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        return _bad_request("limit and offset are integers")
    state = request.query.get("state") or None
    summary = await service.database.run(service.outbox.summary, record["id"])
    rows = await service.database.run(
        service.outbox.deliveries, record["id"], state=state, limit=limit, offset=offset
    )
    pending = sum(n for states in summary.values() for s, n in states.items() if s in _PENDING)
    unconfirmed = sum(
        states.get("accepted", 0)
        for channel, states in summary.items()
        if channel in service.channels and service.channels[channel].capabilities.confirms
    )
    return web.json_response(
        {
            "alert_id": record["id"],
            "alert_state": record["state"],
            "complete": pending == 0 and unconfirmed == 0,
            "summary": summary,
            "deliveries": rows,
        }
    )


@routes.get("/api/v1/deliveries/{delivery_id}/events")
async def get_delivery_events(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        delivery_id = int(request.match_info["delivery_id"])
    except ValueError:
        return _bad_request("delivery ids are integers")
    events = await service.database.run(service.outbox.events, delivery_id)
    if not events:
        return web.json_response({"error": "no such delivery"}, status=404)
    return web.json_response({"delivery_id": delivery_id, "events": events})
