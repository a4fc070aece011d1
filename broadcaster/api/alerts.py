"""API routes for alerts: submit, read, cancel, and per-target delivery state.

- ``POST /api/v1/alerts``: CAP XML (``application/cap+xml``, ``application/xml``, ``text/xml``)
  or the CAP JSON form (``application/json``); ``?channels=a,b`` limits the channels.
  201 ``{"id": ...}`` for a new alert, 200 with the same id for one already stored, both with
  the ``repairs`` made under the ``repair`` intake policy (``[cap] intake``, or the client's
  token's ``intake``); 400 with every problem (path, rule, message, whether repairable) for an
  invalid one, 422 naming the areas for one whose areas select no target on any channel
  (``?allow_empty=1`` accepts it, shown as reaching no one); neither is stored; 503
  ``{"error": "disk full: the alert was not stored"}`` when the data directory's disk is full;
  403 naming the areas for one that reaches beyond ``[node] division`` (except from the node
  this one reports to: its alerts are its own to scope).
- ``POST /api/v1/alerts/preview``: the same body and query; per channel what it would send
  (``contents``, exactly as its deliveries will report them) and how many receivers, counted
  in the channel's ``unit``; nothing is stored.
- ``GET /api/v1/alerts/{id}``, ``GET /api/v1/alerts/{id}/cap`` (the document as received).
- ``POST /api/v1/alerts/{id}/cancel`` ``{"reason": "...", "public_note": "..."}``: issues a
  CAP Cancel whose public text names the warning it lifts, with the optional public note; the
  reason is internal (the record and the audit log). From a client whose token
  ``requires_approval`` the Cancel waits for approval like its alerts.
- ``POST /api/v1/alerts/{id}/approve`` / ``reject`` ``{"reason": "..."}``, ``GET
  /api/v1/approvals``: the two-person rule for clients whose token ``requires_approval``;
  such a client may not approve or reject (403), its own alerts or anyone else's; nor may a
  token whose issuing officer asked for the alert (403).
- ``GET /api/v1/alerts/{id}/deliveries``: ``{"summary": {channel: {state: n}}, "complete":
  bool, "deliveries": [...]}`` (each with the ``content`` its channel sent, and a relay
  delivery with the ``report`` its county node sent: per-channel summary, ``complete``),
  filterable by ``state``, paged by ``limit`` (1 to 10,000) and ``offset`` (0 to 10⁹).
- ``GET /api/v1/deliveries/{id}/events``: one delivery's history.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from broadcaster.api.auth import audit_client, refuse_first_party, refuse_own_request
from broadcaster.api.diskfull import disk_full_response
from broadcaster.api.keys import CLIENT, NEEDS_APPROVAL, SERVICE
from broadcaster.cap import Problem
from broadcaster.cap.problems import IntakePolicy
from broadcaster.channel import channel_progress
from broadcaster.errors import (
    ApprovalError,
    CapError,
    DiskFullError,
    OutsideDivisionError,
    StoreError,
    UnreachableAreaError,
)
from broadcaster.intake import IntakeResult
from broadcaster.jsonbody import JsonBodyError, bad_request, parse_json_object, read_json_object
from broadcaster.store.alerts import REACHES_NO_ONE
from broadcaster.upstream.web import pushed
from broadcaster.web.headers import document_download

routes = web.RouteTableDef()

_XML_TYPES = {"application/cap+xml", "application/xml", "text/xml"}
_PENDING = ("queued", "sending")
_MAX_OFFSET = 10**9
_ID_LIMIT = 10**18
"""Store ids are 64-bit integers: a number this large or larger names nothing."""


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


async def _alert_body(request: web.Request) -> bytes | dict[str, Any] | web.Response:
    """The submitted alert (CAP XML bytes or the JSON form), or the error response."""
    content_type = request.content_type
    body = await request.read()
    if content_type in _XML_TYPES:
        return body
    if content_type == "application/json":
        try:
            return parse_json_object(body)
        except JsonBodyError as exc:
            return _bad_request(f"the JSON form of an alert: {exc}")
    return web.json_response(
        {
            "error": f"unsupported content type {content_type!r}; use application/cap+xml"
            " or application/json"
        },
        status=415,
    )


def _policy_of(request: web.Request) -> IntakePolicy | None:
    """The calling token's own ``intake`` policy, if it has one."""
    client = request[CLIENT]
    tokens = request.app[SERVICE].config.api.tokens
    return next((t.intake for t in tokens if t.name == client), None)


def _channels_of(request: web.Request) -> list[str] | None:
    channels_param = request.query.get("channels")
    return [c for c in channels_param.split(",") if c] if channels_param else None


_SUBMITTED = {"pending": "alert.draft", "held": "alert.store", "expired": "alert.store"}
"""The audit action of a stored submission by its state: only what goes out is ``alert.send``
(a Draft or System message is held, nothing is sent)."""


@routes.post("/api/v1/alerts")
async def submit_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    data = await _alert_body(request)
    if isinstance(data, web.Response):
        return data
    from_upstream = await pushed(request, data)
    if from_upstream is not None:
        return from_upstream
    channels = _channels_of(request)
    client = request[CLIENT]
    requested_by = f"api:{client}" if request[NEEDS_APPROVAL] else None
    policy = _policy_of(request)
    try:
        result = await service.submit(
            data,
            origin=f"api:{client}",
            channels=channels,
            requested_by=requested_by,
            policy=policy,
            allow_empty=request.query.get("allow_empty") in ("1", "true"),
            within_division=client not in service.config.node.parent_clients,
        )
    except OutsideDivisionError as exc:
        await audit_client(request, "alert.submit.refused", "", {"error": str(exc)})
        problems = [p.as_json() for p in exc.problems]
        return web.json_response({"error": str(exc), "problems": problems}, status=403)
    except UnreachableAreaError as exc:
        await audit_client(request, "alert.submit.refused", "", {"error": str(exc)})
        problems = [p.as_json() for p in exc.problems]
        return web.json_response({"error": str(exc), "problems": problems}, status=422)
    except CapError as exc:
        await audit_client(request, "alert.submit.refused", "", {"error": str(exc)})
        return _bad_request(str(exc), exc.problems)
    except DiskFullError:
        return disk_full_response("disk full: the alert was not stored")
    if not result.created and result.alert_id:
        await service.reporter.relayed(result.alert_id, client)
    if result.created:
        action = _SUBMITTED.get(result.state, "alert.send")
        detail: dict[str, Any] = {"planned": result.planned}
        if result.repairs:
            detail["repairs"] = [str(p) for p in result.repairs]
        if result.state == REACHES_NO_ONE:
            detail["state"] = result.state
        await audit_client(request, action, result.alert_id, detail)
    return web.json_response(_result_json(result), status=201 if result.created else 200)


@routes.post("/api/v1/alerts/preview")
async def preview_alert(request: web.Request) -> web.Response:
    """What each channel would send, and to how many receivers in its own unit; stores
    nothing."""
    service = request.app[SERVICE]
    data = await _alert_body(request)
    if isinstance(data, web.Response):
        return data
    policy = _policy_of(request)
    try:
        previews = await service.preview(data, channels=_channels_of(request), policy=policy)
    except CapError as exc:
        return _bad_request(str(exc), exc.problems)
    return web.json_response({"channels": {n: p.to_json() for n, p in previews.items()}})


async def _alert_or_404(request: web.Request) -> dict[str, Any]:
    service = request.app[SERVICE]
    record = await service.store.alerts.get(request.match_info["alert_id"])
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
    raw = await service.store.alerts.raw_xml(alert_id)
    return document_download(
        raw or b"", content_type="application/cap+xml", filename=f"{alert_id}.xml"
    )


@routes.post("/api/v1/alerts/{alert_id}/cancel")
async def cancel_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    body = await read_json_object(request, optional=True)
    reason = _text(body, "reason") or "cancelled"
    public_note = _text(body, "public_note")
    if record["state"] not in ("active", "held"):
        error = f"alert is {record['state']}; only active alerts can be cancelled"
        await audit_client(request, "alert.cancel.refused", record["id"], {"error": error})
        return web.json_response({"error": error}, status=409)
    client = f"api:{request[CLIENT]}"
    requested_by = client if request[NEEDS_APPROVAL] else None
    try:
        result = await service.cancel(
            record["id"],
            reason=reason,
            origin=client,
            public_note=public_note,
            requested_by=requested_by,
        )
    except (CapError, StoreError) as exc:
        await audit_client(request, "alert.cancel.refused", record["id"], {"error": str(exc)})
        return _bad_request(str(exc), getattr(exc, "problems", None))
    action = "alert.cancel.draft" if result.state == "pending" else "alert.cancel"
    await audit_client(request, action, record["id"], {"cancel": result.alert_id, "reason": reason})
    return web.json_response(_result_json(result), status=201)


def _text(body: dict[str, Any], key: str) -> str:
    """An optional text field (``reason``, ``public_note``) of a cancel, approve or reject."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{key}: a string is required")
    return value.strip() if value else ""


@routes.post("/api/v1/alerts/{alert_id}/approve")
async def approve_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    await refuse_first_party(request, "alert.approve", record["id"])
    await refuse_own_request(request, "alert.approve", record["id"])
    reason = _text(await read_json_object(request, optional=True), "reason")
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
    reason = _text(await read_json_object(request, optional=True), "reason")
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
    return web.json_response(await service.store.alerts.pending_approvals())


@routes.get("/api/v1/alerts/{alert_id}/deliveries")
async def get_deliveries(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = await _alert_or_404(request)
    try:
        limit = min(10_000, max(1, int(request.query.get("limit", "1000"))))
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        return _bad_request("limit and offset are integers")
    if offset > _MAX_OFFSET:
        return _bad_request(f"offset is at most {_MAX_OFFSET}")
    state = request.query.get("state") or None
    summary = await service.store.deliveries.summary(record["id"])
    rows = await service.store.deliveries.deliveries(
        record["id"], state=state, limit=limit, offset=offset
    )
    reports = await service.store.reports.for_alert(record["id"])
    for row in rows:
        if row["id"] in reports:
            row["report"] = reports[row["id"]]
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
            "complete": pending == 0 and unconfirmed == 0 and record["state"] != "held",
            "summary": summary,
            "progress": channel_progress(service.channels, summary),
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
    known = 0 <= delivery_id < _ID_LIMIT
    events = await service.store.deliveries.events(delivery_id) if known else []
    if not events:
        return web.json_response({"error": "no such delivery"}, status=404)
    return web.json_response({"delivery_id": delivery_id, "events": events})
