"""API routes for alerts: submit, read, cancel, and per-target delivery state.

- ``POST /api/v1/alerts``: CAP XML (``application/cap+xml``, ``application/xml``, ``text/xml``)
  or the CAP JSON form (``application/json``); ``?channels=a,b`` limits the channels.
  201 ``{"id": ...}`` for a new alert, 200 with the same id for one already stored, 400 with
  every problem (path, rule, message) for an invalid one, which is not stored.
- ``GET /api/v1/alerts/{id}``, ``GET /api/v1/alerts/{id}/cap`` (the document as received).
- ``POST /api/v1/alerts/{id}/cancel`` ``{"reason": "..."}``: issues a CAP Cancel; from a
  client whose token ``requires_approval`` the Cancel waits for approval like its alerts.
- ``POST /api/v1/alerts/{id}/approve`` / ``reject`` ``{"reason": "..."}``, ``GET
  /api/v1/approvals``: the two-person rule for clients whose token ``requires_approval``;
  such a client may not approve or reject (403), its own alerts or anyone else's; nor may a
  token whose issuing officer asked for the alert (403).
- ``GET /api/v1/alerts/{id}/deliveries``: ``{"summary": {channel: {state: n}}, "complete":
  bool, "deliveries": [...]}``, filterable by ``state``, paged by ``limit``/``offset``.
- ``GET /api/v1/deliveries/{id}/events``: one delivery's history.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from broadcaster.api.auth import audit_client, refuse_first_party, refuse_own_request
from broadcaster.api.keys import CLIENT, NEEDS_APPROVAL, SERVICE
from broadcaster.cap import Problem
from broadcaster.errors import ApprovalError, CapError, StoreError
from broadcaster.intake import IntakeResult

routes = web.RouteTableDef()

_XML_TYPES = {"application/cap+xml", "application/xml", "text/xml"}
_PENDING = ("queued", "sending")


def problem_json(problem: Problem) -> dict[str, str]:
    return {
        "severity": problem.severity,
        "path": problem.path,
        "rule": problem.rule,
        "message": problem.message,
    }


def _result_json(result: IntakeResult) -> dict[str, Any]:
    return {
        "id": result.alert_id,
        "created": result.created,
        "state": result.state,
        "planned": result.planned,
        "warnings": [problem_json(p) for p in result.warnings],
    }


def _bad_request(message: str, problems: list[Problem] | None = None) -> web.Response:
    body = {"error": message, "problems": [problem_json(p) for p in problems or []]}
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
            parsed = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _bad_request(f"body is not valid JSON: {exc}")
        if not isinstance(parsed, dict):
            return _bad_request("the JSON form of an alert is an object")
        data = parsed
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
    try:
        result = await service.submit(
            data, origin=f"api:{client}", channels=channels, requested_by=requested_by
        )
    except CapError as exc:
        await audit_client(request, "alert.submit.refused", "", {"error": str(exc)})
        return _bad_request(str(exc), exc.problems)
    if result.created:
        action = "alert.draft" if result.state == "pending" else "alert.send"
        await audit_client(request, action, result.alert_id, {"planned": result.planned})
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
    raw = await service.database.run(service.alerts.raw_xml, request.match_info["alert_id"])
    return web.Response(body=raw, content_type="application/cap+xml")


@routes.post("/api/v1/alerts/{alert_id}/cancel")
async def cancel_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    reason = "cancelled"
    if request.can_read_body:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _bad_request("body is not valid JSON")
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            reason = body["reason"].strip() or reason
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
    if not request.can_read_body:
        return ""
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not valid JSON"}), content_type="application/json"
        ) from None
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason.strip() if isinstance(reason, str) else ""


@routes.post("/api/v1/alerts/{alert_id}/approve")
async def approve_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    await refuse_first_party(request, "alert.approve", record["id"])
    await refuse_own_request(request, "alert.approve", record["id"])
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
    await refuse_own_request(request, "alert.reject", record["id"])
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
