"""Alert pages: history with search, compose from a hazard template, preview, submit, approval.

- ``GET /console/``: every alert, newest first, searchable (headline, event, identifier, id)
  and filterable by state;
- ``GET /console/compose``: the form (templates, area tree, map, channels, times);
- ``POST /console/compose/preview`` and ``/compose/audio``: JSON for the preview panel (the
  audio: each sound the chosen channels will play, from their previews, played from
  ``GET /console/audio/{key}``); ``/compose/area``: the name of the drawn area
  (:mod:`broadcaster.areanames`);
- recordings of the languages no synthesiser speaks: :mod:`broadcaster.console.recordings`;
- ``POST /console/compose``: submit; the alert waits for a second officer (two-person rule);
- ``GET /console/approvals``; ``POST /console/alerts/{id}/approve`` and ``/reject`` with a
  reason. The service enforces who may approve; the console adds the role check;
- ``POST /console/alerts/{id}/withdraw``: the author takes back their own pending alert.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from aiohttp import web

from broadcaster.areanames import drawn_area_name
from broadcaster.auth import Permission
from broadcaster.cap import Alert, from_json
from broadcaster.console import catalogue, compose, preview, recordings
from broadcaster.console.hazards import LEVEL_NAMES, LEVELS
from broadcaster.console.mapping import division_map, division_tree
from broadcaster.console.web import PREFIX, actor_of, page, require, state_of
from broadcaster.errors import ApprovalError, CapError

routes = web.RouteTableDef()
_AUDIO_KEEP = 50
_PAGE = 100
_MAX_OFFSET = 10**9


def _now(request: web.Request) -> datetime:
    return datetime.fromtimestamp(state_of(request).service.clock(), UTC).replace(microsecond=0)


@routes.get("/")
async def history(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    service = state_of(request).service
    q = request.query.get("q", "").strip()
    wanted_state = request.query.get("state", "")
    try:
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        offset = 0
    if offset > _MAX_OFFSET:
        raise web.HTTPBadRequest(text=f"offset is at most {_MAX_OFFSET}")
    like = f"%{q}%"
    rows = await service.database.run(
        service.database.query,
        "SELECT a.id, a.identifier, a.msg_type, a.status, a.event, a.headline, a.severity,"
        " a.state, a.origin, a.received_at, a.expires_at, p.state AS approval"
        " FROM alerts a LEFT JOIN approvals p ON p.alert_id = a.id"
        " WHERE (? = '' OR a.headline LIKE ? OR a.event LIKE ? OR a.identifier LIKE ?"
        " OR a.id = ?) AND (? = '' OR a.state = ? OR p.state = ?)"
        " ORDER BY a.received_at DESC LIMIT ? OFFSET ?",
        (q, like, like, like, q, wanted_state, wanted_state, wanted_state, _PAGE, offset),
    )
    context = {"alerts": rows, "q": q, "state": wanted_state, "offset": offset, "page": _PAGE}
    return page(request, "history.html", context)


def zone_fields(zone: tzinfo, now: float) -> dict[str, Any]:
    """The deployment's offset now (minutes east of UTC), in which the form's times are
    entered, and its name as shown ("UTC+08:00")."""
    offset = datetime.fromtimestamp(now, zone).utcoffset() or timedelta()
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return {"tz_offset": minutes, "zone_name": f"UTC{sign}{hours:02d}:{rest:02d}"}


def compose_context(request: web.Request, initial: dict[str, Any]) -> dict[str, Any]:
    state = state_of(request)
    service = state.service
    return {
        "hazards": [
            {"code": t.code, "event": dict(t.event), "levels": t.to_json()["levels"]}
            for t in state.hazards.values()
        ],
        "levels": [(name, LEVEL_NAMES["zh-CN"][name], LEVEL_NAMES["en"][name]) for name in LEVELS],
        "channels": sorted(service.channels),
        "tree": division_tree(service.divisions),
        "map": division_map(service.divisions, state.frame),
        "initial": initial,
        "voiceless": [
            lang
            for lang in ("zh-CN", *compose.OPTIONAL_LANGUAGES)
            if not service.audio.has_voice(lang)
        ],
        "problems": [],
        **zone_fields(service.config.server.zone, service.clock()),
    }


@routes.get("/compose")
async def compose_form(request: web.Request) -> web.Response:
    require(request, Permission.DRAFT)
    initial = {"hazard": request.query.get("hazard", ""), "level": request.query.get("level", "")}
    return page(request, "compose.html", compose_context(request, initial))


async def _draft_alert(
    request: web.Request, form: Any
) -> tuple[compose.Draft, Alert, list[dict[str, str]]]:
    """The draft, its CAP alert and every problem (form and core validation), for a form."""
    state = state_of(request)
    service = state.service
    now = _now(request)
    draft = compose.parse_form(form, now=now, divisions=service.divisions)
    updates = None
    if draft.update_of:
        document = await service.store.alerts.document(draft.update_of)
        if document is None:
            draft.problem("update_of", "reference", "update.missing")
        else:
            updates = from_json(document)
    store = service.audio.uploads
    for language, uri in draft.recordings.items():
        found = await asyncio.to_thread(recordings.resource_of, store, uri) if store else None
        if found is None:
            draft.problem(f"{language}.recording", "recording", "recording.missing")
        else:
            draft.resources[language] = found
    # Naming a drawn area tests places against the polygon's corners: CPU work, off the loop.
    alert = await asyncio.to_thread(
        compose.build_alert,
        draft,
        sender=service.config.server.sender,
        sender_name=service.config.server.sender_name,
        divisions=service.divisions,
        now=now,
        identifier=compose.new_identifier(now),
        updates=updates,
    )
    unknown = [c for c in draft.channels if c not in service.channels]
    if unknown:
        draft.problem("channel", "channel", "channel.unknown", channels=", ".join(unknown))
    problems = [*draft.problems, *compose.field_problems(alert, draft)]
    return draft, alert, compose.sorted_problems(problems, draft)


def _has_errors(problems: list[dict[str, str]]) -> bool:
    return any(p["severity"] == "error" for p in problems)


@routes.post("/compose/preview")
async def compose_preview(request: web.Request) -> web.Response:
    require(request, Permission.DRAFT)
    draft, alert, problems = await _draft_alert(request, await request.post())
    service = state_of(request).service
    body = await preview.build_preview(
        service, alert, [c for c in draft.channels if c in service.channels]
    )
    return web.json_response(body | {"problems": problems, "ok": not _has_errors(problems)})


@routes.post("/compose/area")
async def compose_area(request: web.Request) -> web.Response:
    """The name residents read for the drawn polygon ("" when it covers no county)."""
    require(request, Permission.DRAFT)
    draft = compose.Draft()
    polygon = compose.polygon_of(draft, compose.FormValues(await request.post()).get("polygon"))
    divisions = state_of(request).service.divisions
    if draft.problems or divisions is None:
        problems = compose.sorted_problems(draft.problems, draft)
        return web.json_response({"name": "", "problems": problems})
    name = await asyncio.to_thread(drawn_area_name, divisions, polygon)
    return web.json_response({"name": name, "problems": []})


@routes.post("/compose/audio")
async def compose_audio(request: web.Request) -> web.Response:
    require(request, Permission.DRAFT)
    state = state_of(request)
    if not state.service.config.console.audio_preview:
        return web.json_response(
            {"error": "audio preview is off", "error_zh": "语音预览未开启"}, status=404
        )
    draft, alert, problems = await _draft_alert(request, await request.post())
    if not alert.infos or not alert.infos[0].headline:
        return web.json_response(
            {"error": "write a headline first", "error_zh": "请先填写标题", "problems": problems},
            status=400,
        )
    chosen = [c for c in draft.channels if c in state.service.channels]
    try:
        sounds = await preview.channel_audio(state.service, alert, chosen)
    except CapError:
        sounds = []  # the form's problems, listed beside the preview, say why
    programmes = []
    for sound in sounds:
        key = secrets.token_urlsafe(12)
        state.audio[key] = sound.audio
        programmes.append(preview.audio_json(sound, f"{PREFIX}/audio/{key}"))
    while len(state.audio) > _AUDIO_KEEP:
        state.audio.pop(next(iter(state.audio)))
    return web.json_response({"programmes": programmes, "problems": problems})


@routes.get("/audio/{key}")
async def audio_file(request: web.Request) -> web.FileResponse:
    require(request, Permission.VIEW)
    sound = state_of(request).audio.get(request.match_info["key"])
    if sound is None:
        raise web.HTTPNotFound(text="no such audio preview")
    return web.FileResponse(sound.path, headers={"Content-Type": sound.content_type})


def _draft_values(draft: compose.Draft, form: Any) -> dict[str, Any]:
    values = compose.FormValues(form)
    return {
        "hazard": values.get("hazard"),
        "level": draft.level,
        "status": str(draft.status),
        "category": str(draft.category),
        "response": str(draft.response),
        "severity": str(draft.severity),
        "urgency": str(draft.urgency),
        "certainty": str(draft.certainty),
        "texts": draft.texts,
        "recordings": draft.recordings,
        "divisions": draft.divisions,
        "polygon": values.get("polygon"),
        "channels": draft.channels,
        "effective": values.get("effective"),
        "expires": values.get("expires"),
        "update_of": draft.update_of,
    }


@routes.post("/compose")
async def submit(request: web.Request) -> web.Response:
    officer = require(request, Permission.DRAFT)
    state = state_of(request)
    form = await request.post()
    draft, alert, problems = await _draft_alert(request, form)
    if not _has_errors(problems):
        actor = actor_of(request)
        try:
            result = await state.service.submit(
                alert,
                origin=actor,
                channels=draft.channels,
                requested_by=actor,
                within_division=True,
            )
        except CapError as exc:
            problems = compose.sorted_problems(exc.problems) or [
                {
                    "path": "",
                    "rule": "intake",
                    "message": str(exc),
                    "message_zh": catalogue.message("cap.rule", message=str(exc))[0],
                    "severity": "error",
                }
            ]
        else:
            await state.audit(
                actor,
                "alert.update" if draft.update_of else "alert.draft",
                result.alert_id,
                {
                    "identifier": alert.identifier,
                    "headline": alert.infos[0].headline,
                    "status": str(alert.status),
                    "severity": str(draft.severity),
                    "channels": draft.channels,
                    "updates": draft.update_of or None,
                    "by": officer.username,
                },
            )
            raise web.HTTPSeeOther(f"{PREFIX}/alerts/{result.alert_id}")
    context = compose_context(request, _draft_values(draft, form))
    context["problems"] = problems
    return page(request, "compose.html", context, status=400)


@routes.get("/approvals")
async def approvals(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    service = state_of(request).service
    pending = await service.store.alerts.pending_approvals()
    return page(
        request,
        "approvals.html",
        {
            "pending": pending,
            "single_officer": service.config.approval.single_officer_severities,
        },
    )


async def _decide(request: web.Request, decision: str) -> web.Response:
    require(request, Permission.APPROVE)
    state = state_of(request)
    alert_id = request.match_info["alert_id"]
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    actor = actor_of(request)
    try:
        if decision == "approve":
            result = await state.service.approve(alert_id, by=actor, reason=reason)
            detail: dict[str, Any] = {"reason": reason, "planned": result.planned}
        else:
            await state.service.reject(alert_id, by=actor, reason=reason)
            detail = {"reason": reason}
    except ApprovalError as exc:
        await state.audit(actor, f"alert.{decision}.refused", alert_id, {"error": str(exc)})
        raise web.HTTPForbidden(text=str(exc)) from None
    await state.audit(actor, f"alert.{decision}", alert_id, detail)
    if decision == "approve":
        await state.audit(actor, "alert.send", alert_id, {"planned": result.planned})
    raise web.HTTPSeeOther(f"{PREFIX}/alerts/{alert_id}")


@routes.post("/alerts/{alert_id}/approve")
async def approve(request: web.Request) -> web.Response:
    return await _decide(request, "approve")


@routes.post("/alerts/{alert_id}/reject")
async def reject(request: web.Request) -> web.Response:
    return await _decide(request, "reject")


@routes.post("/alerts/{alert_id}/withdraw")
async def withdraw(request: web.Request) -> web.Response:
    require(request, Permission.DRAFT)
    state = state_of(request)
    service = state.service
    alert_id = request.match_info["alert_id"]
    actor = actor_of(request)
    approval = await service.store.alerts.approval(alert_id)
    if approval is None or approval["requested_by"] != actor:
        raise web.HTTPForbidden(text="only the officer who wrote an alert can withdraw it")
    form = await request.post()
    reason = str(form.get("reason", "")).strip() or "withdrawn by its author"
    try:
        await service.reject(alert_id, by=actor, reason=reason)
    except ApprovalError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    await state.audit(actor, "alert.withdraw", alert_id, {"reason": reason})
    raise web.HTTPSeeOther(f"{PREFIX}/alerts/{alert_id}")
