"""Console requests at the edge of what the forms take, over a real socket: a drawn polygon of
as many corners as allowed is named without stalling the server (every alert, device and API
call shares its event loop), one of more is a form problem, and numbers too large for the
store (ids in paths, ``offset``, ``tz_offset``) are answered 400 or 404, never 500."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.console.compose import MAX_POLYGON_POINTS
from tests.console.support import (
    ConsoleClient,
    ConsoleServer,
    compose_form,
    console_config,
    console_server,
    demo_targets,
)

CHANNELS = {"speaker": {"type": "tests.console.support:BoxChannel"}}
JSON = {"Accept": "application/json"}
HUGE = "9" * 30


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    config = console_config(tmp_path, CHANNELS, demo_targets("speaker"), audio_preview=False)
    async with console_server(config) as running:
        yield running


async def _officer(server: ConsoleServer, role: str) -> ConsoleClient:
    client = ConsoleClient(server)
    await client.login(role)
    await client.get("/console/")
    return client


def _ring(points: int) -> str:
    """A ring around every place of the demo divisions (each is tested against the ring)."""
    return " ".join(
        f"{41.5 + 3.0 * math.sin(2 * math.pi * i / points):.5f},"
        f"{112.5 + 4.0 * math.cos(2 * math.pi * i / points):.5f}"
        for i in range(points)
    )


async def test_a_polygon_at_the_limit_is_named_without_stalling_the_server(
    server: ConsoleServer,
) -> None:
    drafter = await _officer(server, "drafter")
    longest = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest = max(longest, now - last - 0.01)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        form = [*compose_form(divisions=()), ("polygon", _ring(MAX_POLYGON_POINTS))]
        status, text = await drafter.post("/console/compose/preview", form, headers=JSON)
        status_area, area = await drafter.post(
            "/console/compose/area", [("polygon", _ring(MAX_POLYGON_POINTS))], headers=JSON
        )
    finally:
        done.set()
        await ticking
        await drafter.close()
    assert status == 200 and json.loads(text)["ok"], text
    assert status_area == 200 and json.loads(area)["name"] == "乌兰察布市"
    assert longest < 0.3, f"the event loop stalled {longest:.2f} s"


async def test_a_polygon_of_more_corners_than_allowed_is_a_form_problem(
    server: ConsoleServer,
) -> None:
    drafter = await _officer(server, "drafter")
    try:
        form = [*compose_form(divisions=()), ("polygon", _ring(MAX_POLYGON_POINTS + 1))]
        status, text = await drafter.post("/console/compose/preview", form, headers=JSON)
        status_area, area = await drafter.post(
            "/console/compose/area", [("polygon", _ring(MAX_POLYGON_POINTS + 1))], headers=JSON
        )
    finally:
        await drafter.close()
    body = json.loads(text)
    assert status == 200 and not body["ok"]
    (problem,) = [p for p in body["problems"] if p["path"] == "polygon"]
    assert problem["message"].startswith(f"a polygon has at most {MAX_POLYGON_POINTS} corners")
    assert problem["message_zh"].startswith(f"多边形最多 {MAX_POLYGON_POINTS} 个顶点")
    assert status_area == 200 and json.loads(area)["name"] == ""
    assert [p["path"] for p in json.loads(area)["problems"]] == ["polygon"]


async def test_numbers_too_large_for_the_store_are_refused_not_failed(
    server: ConsoleServer,
) -> None:
    expected = {
        ("GET", f"/console/?offset={HUGE}"): 400,
        ("GET", f"/console/audit?offset={HUGE}"): 400,
        ("GET", f"/console/tests/{HUGE}"): 404,
        ("POST", f"/console/tokens/{HUGE}/revoke"): 404,
        ("POST", f"/console/notices/{HUGE}/ack"): 404,
        ("GET", f"/console/deliveries/{HUGE}/events"): 404,
    }
    admin = await _officer(server, "admin")
    try:
        answers = {}
        for method, path in expected:
            call = admin.get(path) if method == "GET" else admin.post(path, {})
            answers[method, path] = (await call)[0]
        assert answers == expected
        assert (await admin.get("/console/?offset=1000000000"))[0] == 200
        assert (await admin.get("/console/tests/999999999999999999"))[0] == 404
    finally:
        await admin.close()


@pytest.mark.parametrize("tz_offset", [HUGE, f"-{HUGE}", "841", "-841", "east"])
async def test_a_utc_offset_beyond_14_hours_is_a_form_problem(
    server: ConsoleServer, tz_offset: str
) -> None:
    drafter = await _officer(server, "drafter")
    try:
        form = [(k, tz_offset if k == "tz_offset" else v) for k, v in compose_form()]
        status, text = await drafter.post("/console/compose/preview", form, headers=JSON)
        submitted, page = await drafter.post("/console/compose", form)
    finally:
        await drafter.close()
    assert status == 200
    (problem,) = [p for p in json.loads(text)["problems"] if p["path"] == "tz_offset"]
    assert "within 14 hours" in problem["message"]
    assert submitted == 400 and "within 14 hours" in page
