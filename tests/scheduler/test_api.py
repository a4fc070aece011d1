"""The scheduler's HTTP API over a real socket: create with every problem reported, edit,
run now, reports per target, notices and acknowledgement, links."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.service import BroadcasterService
from tests.scheduler.support import (
    BoxChannel,
    OfficerChannel,
    OffsetClock,
    at,
    box_targets,
    finished_runs,
    scheduler_config,
)

TOKEN = "test-token-0123456789"
Api = tuple[aiohttp.ClientSession, BroadcasterService]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    BoxChannel.reset()
    OfficerChannel.notices.clear()
    config = scheduler_config(
        tmp_path,
        [{"name": "daily", "kind": "silent", "cron": "0 9 * * *"}],
        box_targets(3, t0={"dead": True}),
    )
    config = config.model_copy(
        update={"api": config.api.model_validate({"tokens": [{"name": "admin", "token": TOKEN}]})}
    )
    service = BroadcasterService(config, clock=OffsetClock(at("2026-06-01 12:00:00")))
    server = TestServer(make_app(service))
    await server.start_server()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(base_url=str(server.make_url("/")), headers=headers) as s:
        yield s, service
    await server.close()


async def test_create_reports_every_problem_and_stores_nothing(api: Api) -> None:
    session, _ = api
    bad = {
        "name": "Bad Name",
        "kind": "loud",
        "cron": "0 9 * *",
        "volume": 300,
        "colour": "red",
    }
    async with session.post("/api/v1/schedules", json=bad) as r:
        assert r.status == 400
        body = await r.json()
    keys = {p.split(":")[0] for p in body["problems"]}
    assert {"name", "kind", "volume", "colour"} <= keys
    second = {"name": "x", "kind": "silent", "cron": "61 9 * * *", "channels": ["nope"]}
    async with session.post("/api/v1/schedules", json=second) as r:
        body = await r.json()
    assert r.status == 400
    assert [p.split(":")[0] for p in body["problems"]] == ["cron", "channels.0"]
    async with session.get("/api/v1/schedules") as r:
        assert [s["name"] for s in (await r.json())["schedules"]] == ["daily"]
    async with session.post("/api/v1/schedules", data=b"not json") as r:
        assert r.status == 400


async def test_edit_run_now_and_read_the_report(api: Api) -> None:
    session, service = api
    new = {"name": "monthly", "kind": "audible-test", "cron": "0 10 1 * *", "channels": ["boxes"]}
    new["geocodes"] = ["150921"]
    async with session.post("/api/v1/schedules", json=new) as r:
        assert r.status == 201, await r.text()
        created = await r.json()
    assert created["source"] == "api" and created["updated_by"] == "admin"
    assert created["next_run_at"] == at("2026-07-01 10:00:00").timestamp()
    async with session.post("/api/v1/schedules", json=new) as r:
        assert r.status == 409
    async with session.patch("/api/v1/schedules/monthly", json={"cron": "0 10 2 * *"}) as r:
        assert r.status == 200
        assert (await r.json())["next_run_at"] == at("2026-06-02 10:00:00").timestamp()
    async with session.patch("/api/v1/schedules/monthly", json={"name": "other"}) as r:
        assert r.status == 400
    async with session.delete("/api/v1/schedules/daily") as r:
        assert r.status == 409  # defined in the configuration

    async with session.post("/api/v1/schedules/daily/run") as r:
        assert r.status == 202
        run_id = (await r.json())["run_id"]
    await finished_runs(service, 1)
    async with session.get(f"/api/v1/schedule-runs/{run_id}") as r:
        report = await r.json()
    assert (report["state"], report["trigger"], report["failed"]) == ("failed", "manual", 1)
    failed = [t for t in report["targets"] if t["outcome"] == "failed"]
    assert [t["detail"] for t in failed] == ["no heartbeat for 900 s"]
    async with session.get("/api/v1/schedule-runs?schedule=daily") as r:
        assert [run["id"] for run in (await r.json())["runs"]] == [run_id]

    async with session.get("/api/v1/notices?open=1") as r:
        (notice,) = (await r.json())["notices"]
    async with session.post(f"/api/v1/notices/{notice['id']}/ack") as r:
        assert r.status == 200
    async with session.post(f"/api/v1/notices/{notice['id']}/ack") as r:
        assert r.status == 404
    async with session.get("/api/v1/notices") as r:
        assert (await r.json())["notices"][0]["acknowledged_by"] == "admin"

    await service.operations.linkcheck.check_channel("boxes")
    async with session.get("/api/v1/links?failing=1") as r:
        links = (await r.json())["links"]
    assert [link["target_id"] for link in links] == [box_targets(1)[0]["id"]]

    async with session.delete("/api/v1/schedules/monthly") as r:
        assert r.status == 200
    async with session.get("/api/v1/schedules/monthly") as r:
        assert r.status == 404
    async with session.get("/api/v1/schedule-runs?limit=0") as r:
        assert r.status == 400


async def test_scheduler_api_needs_a_token(api: Api) -> None:
    session, _ = api
    async with session.get("/api/v1/schedules", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
