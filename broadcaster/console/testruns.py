"""Scheduled test broadcasts in the console: the schedules, their latest runs, and each run's
report target by target, failures first.

- ``GET /console/tests``: schedules (cron, kind, channels) and the latest runs with what was
  reached and what failed;
- ``GET /console/tests/{run_id}``: one run's report per target, with a link to the delivery
  board of the alert it sent.

Runs are made by :mod:`broadcaster.scheduler`; this page only reads its store.
"""

from __future__ import annotations

from aiohttp import web

from broadcaster.auth import Permission
from broadcaster.console.web import page, require, state_of

routes = web.RouteTableDef()


@routes.get("/tests")
async def test_runs(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    service = state_of(request).service
    schedules = await service.store.schedules.schedules()
    runs = await service.store.schedules.runs(None, 100)
    return page(request, "testruns.html", {"schedules": schedules, "runs": runs})


# Store ids are 64-bit integers: a longer number names nothing (404), not a store error.
@routes.get("/tests/{run_id:\\d{1,18}}")
async def test_run(request: web.Request) -> web.Response:
    require(request, Permission.VIEW)
    service = state_of(request).service
    run = await service.store.schedules.run(int(request.match_info["run_id"]))
    if run is None:
        raise web.HTTPNotFound(text="no such test run")
    run["targets"].sort(key=lambda target: target["outcome"] != "failed")
    return page(request, "testrun.html", {"run": run})
