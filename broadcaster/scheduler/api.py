"""HTTP API of scheduled tests, their reports, link checks and notices (for admins and the console).

All under the API's bearer authentication; the acting client's name is recorded as the author
of each change, and every change and run, done or refused, goes to the audit log. A scheduled
run broadcasts without a second party, so a client whose token ``requires_approval`` may read
schedules but not create, change, delete or run them, nor acknowledge notices (403).

====================================  =======================================================
``GET /api/v1/schedules``             every schedule: definition, source, next run, running run
``POST /api/v1/schedules``            create (JSON schedule); 400 lists every problem with its key
``GET /api/v1/schedules/{name}``      one schedule
``PATCH /api/v1/schedules/{name}``    change some fields (``enabled``, ``cron``, ...)
``DELETE /api/v1/schedules/{name}``   remove one made here (those of the configuration: 409)
``POST /api/v1/schedules/{name}/run`` run it now: 202 ``{"run_id"}``; 409 while a run is going
``GET /api/v1/schedule-runs``         latest runs (``?schedule=``, ``?limit=``)
``GET /api/v1/schedule-runs/{id}``    a run with its report per target
``GET /api/v1/notices``               notices, newest first (``?open=1`` for unresolved only)
``POST /api/v1/notices/{id}/ack``     acknowledge a notice
``GET /api/v1/links``                 latest link check per channel and target (``?failing=1``)
====================================  =======================================================
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from broadcaster.api.auth import audit_client, refuse_first_party
from broadcaster.api.keys import CLIENT, SERVICE
from broadcaster.errors import StoreError
from broadcaster.jsonbody import read_json_object
from broadcaster.scheduler.config import (
    ScheduleConflictError,
    ScheduleError,
    ScheduleNotFoundError,
)
from broadcaster.scheduler.scheduler import ScheduledOperations

routes = web.RouteTableDef()
_ID_LIMIT = 10**18
"""Store ids are 64-bit integers: a number this large or larger names nothing."""


def _operations(request: web.Request) -> ScheduledOperations:
    service = request.app[SERVICE]
    operations: ScheduledOperations = service.operations
    return operations


def _error(status: int, message: str, problems: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if problems is not None:
        body["problems"] = problems
    return web.json_response(body, status=status)


async def _refused(request: web.Request, action: str, subject: str, exc: Exception) -> None:
    await audit_client(request, f"{action}.refused", subject, {"error": str(exc)})


def _schedule_error(exc: ScheduleError) -> web.Response:
    if isinstance(exc, ScheduleNotFoundError):
        return _error(404, str(exc))
    if isinstance(exc, ScheduleConflictError):
        return _error(409, str(exc))
    return _error(400, str(exc), exc.problems)


def _int_query(request: web.Request, name: str, default: int, upper: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 1 <= value <= upper:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name} must be a whole number from 1 to {upper}"}),
            content_type="application/json",
        )
    return value


@routes.get("/api/v1/schedules")
async def list_schedules(request: web.Request) -> web.Response:
    schedules = await _operations(request).scheduler.schedules()
    return web.json_response({"schedules": schedules})


@routes.post("/api/v1/schedules")
async def create_schedule(request: web.Request) -> web.Response:
    await refuse_first_party(request, "schedule.create", "")
    body = await read_json_object(request)
    scheduler = _operations(request).scheduler
    name = str(body.get("name", ""))
    try:
        schedule = await scheduler.create(body, by=request[CLIENT])
    except ScheduleError as exc:
        await _refused(request, "schedule.create", name, exc)
        return _schedule_error(exc)
    except StoreError as exc:
        await _refused(request, "schedule.create", name, exc)
        return _error(409, str(exc))
    definition = schedule.model_dump(mode="json")
    await audit_client(request, "schedule.create", schedule.name, {"schedule": definition})
    return web.json_response(await scheduler.schedule(schedule.name), status=201)


@routes.get("/api/v1/schedules/{name}")
async def get_schedule(request: web.Request) -> web.Response:
    try:
        row = await _operations(request).scheduler.schedule(request.match_info["name"])
    except ScheduleError as exc:
        return _schedule_error(exc)
    return web.json_response(row)


@routes.patch("/api/v1/schedules/{name}")
async def update_schedule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await refuse_first_party(request, "schedule.update", name)
    body = await read_json_object(request)
    scheduler = _operations(request).scheduler
    try:
        schedule = await scheduler.update(name, body, by=request[CLIENT])
    except ScheduleError as exc:
        await _refused(request, "schedule.update", name, exc)
        return _schedule_error(exc)
    definition = schedule.model_dump(mode="json")
    await audit_client(
        request, "schedule.update", name, {"changed": sorted(body), "schedule": definition}
    )
    return web.json_response(await scheduler.schedule(name))


@routes.delete("/api/v1/schedules/{name}")
async def delete_schedule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await refuse_first_party(request, "schedule.delete", name)
    try:
        await _operations(request).scheduler.delete(name)
    except ScheduleError as exc:
        await _refused(request, "schedule.delete", name, exc)
        return _schedule_error(exc)
    await audit_client(request, "schedule.delete", name)
    return web.json_response({"deleted": name})


@routes.post("/api/v1/schedules/{name}/run")
async def run_schedule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await refuse_first_party(request, "schedule.run", name)
    try:
        run_id = await _operations(request).scheduler.run_now(name)
    except ScheduleError as exc:
        await _refused(request, "schedule.run", name, exc)
        return _schedule_error(exc)
    await audit_client(request, "schedule.run", name, {"run_id": run_id})
    return web.json_response({"run_id": run_id}, status=202)


@routes.get("/api/v1/schedule-runs")
async def list_runs(request: web.Request) -> web.Response:
    limit = _int_query(request, "limit", 50, 1000)
    runs = await _operations(request).store.runs(request.query.get("schedule"), limit)
    return web.json_response({"runs": runs})


@routes.get("/api/v1/schedule-runs/{id}")
async def get_run(request: web.Request) -> web.Response:
    try:
        run_id = int(request.match_info["id"])
    except ValueError:
        return _error(404, "no such run")
    run = await _operations(request).store.run(run_id) if 0 <= run_id < _ID_LIMIT else None
    if run is None:
        return _error(404, f"no run {run_id}")
    return web.json_response(run)


@routes.get("/api/v1/notices")
async def list_notices(request: web.Request) -> web.Response:
    open_only = request.query.get("open") in ("1", "true", "yes")
    limit = _int_query(request, "limit", 100, 1000)
    notices = await _operations(request).store.notices(open_only=open_only, limit=limit)
    return web.json_response({"notices": notices})


@routes.post("/api/v1/notices/{id}/ack")
async def acknowledge_notice(request: web.Request) -> web.Response:
    subject = request.match_info["id"]
    # A notice tells the officers that a device or a scheduled test failed; acknowledging it
    # takes it off their open list. A token that needs approval is an outside party (an
    # upstream feed) that must not be able to quieten those warnings alone, so it is refused.
    await refuse_first_party(request, "notice.ack", subject)
    try:
        notice_id = int(subject)
    except ValueError:
        notice_id = -1
    if not 0 <= notice_id < _ID_LIMIT:
        await audit_client(request, "notice.ack.refused", subject, {"error": "no such notice"})
        return _error(404, "no such notice")
    service = request.app[SERVICE]
    done = await _operations(request).store.acknowledge(
        notice_id, by=request[CLIENT], now=service.clock()
    )
    if not done:
        error = f"no unacknowledged notice {notice_id}"
        await audit_client(request, "notice.ack.refused", subject, {"error": error})
        return _error(404, error)
    await audit_client(request, "notice.ack", subject)
    return web.json_response({"acknowledged": notice_id})


@routes.get("/api/v1/links")
async def list_links(request: web.Request) -> web.Response:
    failing = request.query.get("failing") in ("1", "true", "yes")
    links = await _operations(request).store.links(request.query.get("channel"), failing=failing)
    return web.json_response({"links": links})
