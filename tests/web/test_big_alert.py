"""A 1 MB alert of 7,500 village polygons is parsed, rendered and planned off the event loop:
while it is being submitted, ``/healthz`` keeps being answered and a 10 ms timer keeps firing.

When planning ran on the loop, both stalled for seconds (1.4 s to 3 s here). The bound is a
fifth of a second, or an eighth of the submission's time when the machine is so loaded (other
processes on its two cores) that the submission itself takes long. The garbage collector is
set up as ``broadcaster serve`` sets it up: without that, its full rounds over the test
session's objects alone stall every thread for up to 0.3 s."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from broadcaster.cap import Alert, Area, Polygon
from broadcaster.cap.serialize import to_xml
from broadcaster.deploy.server import freeze_startup_objects
from tests.core.support import COUNTY_SEAT, make_alert
from tests.web.conftest import Site

AREAS = 7500


def big_alert() -> Alert:
    """One alert with a small polygon around each of 7,500 points near the county seat."""
    alert = make_alert("big-1")
    lat0, lon0 = COUNTY_SEAT
    areas = []
    for n in range(AREAS):
        lat, lon = lat0 + (n % 100) * 0.001, lon0 + (n // 100) * 0.001
        points = ((lat, lon), (lat + 0.0008, lon), (lat, lon + 0.0008), (lat, lon))
        areas.append(Area(area_desc=f"村{n}", polygons=[Polygon(points)]))
    return replace(alert, infos=[replace(alert.infos[0], areas=areas)])


@pytest.fixture
def frozen_startup() -> Iterator[None]:
    """What ``broadcaster serve`` does once started: objects built so far are left out of the
    garbage collector's full rounds (in this test process, that is the whole test session)."""
    freeze_startup_objects()
    yield
    gc.unfreeze()


async def test_the_loop_answers_while_a_big_alert_is_planned(
    site: Site, frozen_startup: None
) -> None:
    document = to_xml(big_alert())
    assert 900_000 < len(document) < 1_048_576
    gaps: list[float] = []
    latencies: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def probe() -> None:
        while True:
            started = time.monotonic()
            async with site.public.get("/healthz") as response:
                assert response.status == 200
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.05)

    background = [asyncio.create_task(tick()), asyncio.create_task(probe())]
    started = time.monotonic()
    headers = {"Content-Type": "application/cap+xml"}
    async with site.api.post("/api/v1/alerts", data=document, headers=headers) as response:
        assert response.status == 201, await response.text()
        result = await response.json()
    took = time.monotonic() - started
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    assert result["planned"] == {"log": 20}
    print(
        f"submit {took:.2f} s; longest timer gap {max(gaps) * 1000:.0f} ms; "
        f"/healthz answered {len(latencies)} times, slowest {max(latencies) * 1000:.0f} ms"
    )
    assert len(latencies) >= 3, "the submission was over before it could be probed"
    bound = max(0.2, took / 8)
    assert max(latencies) < bound, (bound, latencies)
    assert max(gaps) < bound, (bound, max(gaps))
