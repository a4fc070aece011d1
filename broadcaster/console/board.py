"""The live delivery board of one alert: counts per channel and state, the target list with
filters, each target's history, the map coloured by state, and Update and Cancel.

- ``GET /console/alerts/{id}``: the page;
- ``GET /console/alerts/{id}/stream``: server-sent events (``event: state``) with the alert's
  state, per-channel counts, completeness and every delivery's state, sent on each change the
  service reports (at most every 0.2 s) and a keep-alive comment every 15 s;
- ``GET /console/alerts/{id}/deliveries?filter=failed|retrying|offline|pending|confirmed|
  cancelled|expired``: the target list (JSON), a relay delivery with its county node's latest
  report (``report_text``: the county's deliveries per channel and state, shown under it);
  ``GET /console/deliveries/{id}/events``: one target's history;
- ``POST /console/alerts/{id}/cancel`` (internal reason required, optional public note): a
  CAP Cancel referencing the alert, its public text naming the warning it lifts;
  ``GET /console/alerts/{id}/update``: the compose form prefilled for a CAP Update.

"Retrying" is a queued delivery that has been tried before; "offline" one whose last error says
the device could not be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from broadcaster.auth import Permission
from broadcaster.cap import Alert, from_json
from broadcaster.channel import channel_progress
from broadcaster.console import catalogue, compose
from broadcaster.console.alerts import compose_context
from broadcaster.console.mapping import frame_around, target_dots
from broadcaster.console.recordings import recordings_of
from broadcaster.console.web import PREFIX, actor_of, page, require, state_of
from broadcaster.errors import CapError, StoreError
from broadcaster.federation.reports import describe_summary
from broadcaster.service import BroadcasterService
from broadcaster.store.db import Database

routes = web.RouteTableDef()

_OPEN = ("queued", "sending")
_FILTERS = {
    "all": "1 = 1",
    "failed": "state = 'failed'",
    "retrying": "state = 'queued' AND attempts > 0",
    "offline": "state IN ('queued', 'sending') AND (lower(last_error) LIKE '%unavailable%'"
    " OR lower(last_error) LIKE '%offline%' OR lower(last_error) LIKE '%unreachable%'"
    " OR lower(last_error) LIKE '%timed out%' OR lower(last_error) LIKE '%timeout%')",
    "pending": "state IN ('queued', 'sending', 'accepted')",
    "confirmed": "state = 'confirmed'",
    "cancelled": "state = 'cancelled'",
    "expired": "state = 'expired'",
    "warning": "warning IS NOT NULL",
}
_MIN_INTERVAL = 0.2
_KEEPALIVE = 15.0


def deliveries_of(database: Database, alert_id: str, where: str = "1 = 1") -> list[dict[str, Any]]:
    """Deliveries of an alert with their target's name and place (database thread)."""
    # ``where`` is always one of the fixed _FILTERS clauses, never request text.
    columns = (
        "id, channel, target_id, part, target, state, attempts, last_error, warning, updated_at"
    )
    sql = f"SELECT {columns} FROM deliveries WHERE alert_id = ? AND {where} ORDER BY id"  # noqa: S608
    rows = database.query(sql, (alert_id,))
    for row in rows:
        target = json.loads(row.pop("target"))
        row["name"] = target.get("name") or row["target_id"]
        row["lat"] = target.get("lat")
        row["lon"] = target.get("lon")
        row["division"] = target.get("division")
        row["last_error_zh"] = catalogue.stopped_by(row["last_error"])
    return rows


def _snapshot(service: BroadcasterService, alert_id: str) -> dict[str, Any]:
    """The board's state of an alert (runs on the database thread)."""
    database = service.database
    record = service.alerts.get(alert_id) or {}
    summary = service.outbox.summary(alert_id)
    states = database.query(
        "SELECT id, state FROM deliveries WHERE alert_id = ? ORDER BY id", (alert_id,)
    )
    followers = database.query(
        "SELECT a.id, a.msg_type, a.state, a.headline FROM alert_references r"
        " JOIN alerts a ON a.id = r.alert_id WHERE r.ref_alert_id = ? ORDER BY a.received_at",
        (alert_id,),
    )
    open_count = sum(n for s in summary.values() for state, n in s.items() if state in _OPEN)
    unconfirmed = sum(
        s.get("accepted", 0)
        for channel, s in summary.items()
        if channel in service.channels and service.channels[channel].capabilities.confirms
    )
    totals: dict[str, int] = {}
    for channel_states in summary.values():
        for state, n in channel_states.items():
            totals[state] = totals.get(state, 0) + n
    return {
        "alert_state": record.get("shown_state"),
        "approval": (record.get("approval") or {}).get("state"),
        "summary": summary,
        "totals": totals,
        "complete": bool(states) and open_count == 0 and unconfirmed == 0,
        "states": {str(r["id"]): r["state"] for r in states},
        "followers": followers,
    }


async def _record_or_404(request: web.Request) -> dict[str, Any]:
    service = state_of(request).service
    record = await service.store.alerts.get(request.match_info["alert_id"])
    if record is None:
        raise web.HTTPNotFound(text="no such alert")
    return record


@routes.get("/alerts/{alert_id}")
async def board_page(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    state = state_of(request)
    service = state.service
    record = await _record_or_404(request)
    alert_id = record["id"]
    snapshot = await service.database.run(_snapshot, service, alert_id)
    snapshot["progress"] = channel_progress(service.channels, snapshot["summary"])
    deliveries = await service.database.run(deliveries_of, service.database, alert_id)
    document = await service.store.alerts.document(alert_id)
    planned: dict[str, int] = {}
    if not deliveries and document is not None and record["state"] == "held":
        # Awaiting approval: show the approver where it would go.
        deliveries, planned = await _planned(service, from_json(document), record["channels"])
    located = [(d["lat"], d["lon"]) for d in deliveries if d["lat"] is not None]
    frame = frame_around(located) if located else state.frame
    return page(
        request,
        "board.html",
        {
            "alert": record,
            "document": document or {},
            "recordings": recordings_of(document or {}, service.audio.uploads),
            "snapshot": snapshot,
            "frame": frame.to_json(),
            "dots": target_dots(frame, deliveries),
            "planned": planned,
            "single_officer": service.config.approval.single_officer_severities,
        },
    )


async def _planned(
    service: BroadcasterService, alert: Alert, channels: list[str]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The targets a held alert would be planned on per channel, as approval would plan it
    (:meth:`~broadcaster.intake.Intake.targets_of`), as board rows in state "planned"."""
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for name, chosen in (await service.intake.targets_of(alert, channels)).items():
        counts[name] = len(chosen)
        rows += [
            {"id": f"{name}-{t.id}", "lat": t.lat, "lon": t.lon, "state": "planned", "name": t.name}
            for t in chosen
        ]
    return rows, counts


@routes.get("/alerts/{alert_id}/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    require(request, Permission.VIEW)
    state = state_of(request)
    service = state.service
    alert_id = (await _record_or_404(request))["id"]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    changed = asyncio.Event()
    state.streams.add(changed)
    unsubscribe = service.subscribe(changed.set)
    loop = asyncio.get_running_loop()
    try:
        while not state.closing.is_set():
            changed.clear()
            snapshot = await service.database.run(_snapshot, service, alert_id)
            snapshot["progress"] = channel_progress(service.channels, snapshot["summary"])
            data = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":"))
            await response.write(f"event: state\ndata: {data}\n\n".encode())
            sent_at = loop.time()
            try:
                async with asyncio.timeout(_KEEPALIVE):
                    await changed.wait()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            # Coalesce bursts of changes into one update.
            await asyncio.sleep(max(0.0, sent_at + _MIN_INTERVAL - loop.time()))
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        unsubscribe()
        state.streams.discard(changed)
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


@routes.get("/alerts/{alert_id}/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    service = state_of(request).service
    alert_id = (await _record_or_404(request))["id"]
    chosen = request.query.get("filter", "all")
    if chosen not in _FILTERS:
        raise web.HTTPBadRequest(text=f"unknown filter {chosen!r}; use {', '.join(_FILTERS)}")
    rows = await service.database.run(deliveries_of, service.database, alert_id, _FILTERS[chosen])
    reports = await service.store.reports.for_alert(alert_id)
    for row in rows:
        report = reports.get(row["id"])
        if report is not None:
            row["report"] = report
            row["report_text"] = describe_summary(report["summary"])
    return web.json_response({"filter": chosen, "deliveries": rows})


@routes.get("/deliveries/{delivery_id:\\d{1,18}}/events")
async def delivery_events(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    service = state_of(request).service
    events = await service.store.deliveries.events(int(request.match_info["delivery_id"]))
    if not events:
        raise web.HTTPNotFound(text="no such delivery")
    zone = service.config.server.zone
    for event in events:
        event["at_text"] = catalogue.local_time(event["at"], zone)
    return web.json_response({"events": events})


@routes.post("/alerts/{alert_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    require(request, Permission.CANCEL)
    state = state_of(request)
    record = await _record_or_404(request)
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    public_note = str(form.get("public_note", "")).strip()
    if not reason:
        raise web.HTTPBadRequest(text="a Cancel needs a reason · 解除需要填写原因")
    if record["state"] != "active":
        raise web.HTTPConflict(
            text=f"the alert is {record['state']}; only an active alert can be cancelled"
            " (a pending one is rejected instead)"
        )
    actor = actor_of(request)
    try:
        result = await state.service.cancel(
            record["id"], reason=reason, origin=actor, public_note=public_note
        )
    except (CapError, StoreError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    await state.audit(
        actor,
        "alert.cancel",
        record["id"],
        {
            "reason": reason,
            "public_note": public_note,
            "cancel_id": result.alert_id,
            "planned": result.planned,
        },
    )
    raise web.HTTPSeeOther(f"{PREFIX}/alerts/{record['id']}")


@routes.get("/alerts/{alert_id}/update")
async def update_form(request: web.Request) -> web.Response:
    require(request, Permission.DRAFT)
    service = state_of(request).service
    record = await _record_or_404(request)
    document = await service.store.alerts.document(record["id"])
    if document is None or record["state"] != "active":
        raise web.HTTPConflict(text="only an active alert can be updated")
    initial = compose.prefill_from_alert(from_json(document), record)
    return page(request, "compose.html", compose_context(request, initial))
