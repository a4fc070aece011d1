"""A county's reporter against a city that answers otherwise than 2xx, on a real socket: a
redirect is never followed, a refusal that a fix at the city may turn is asked again with
backoff until the alert expires, "no such alert" ends the reporting of that alert, and of a
long answer only the start is read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web

from broadcaster.cap.serialize import to_xml
from broadcaster.federation.reports import ReportTables
from broadcaster.service import BroadcasterService
from tests.core.support import make_alert, make_config, running, village_targets
from tests.relay.test_relay_contract import closed_port
from tests.relay.test_reports import REPORT, _with


@dataclass
class City:
    """A city's report route answering ``answers`` in turn (then 200), and whatever the
    reporter reaches elsewhere on the same server."""

    port: int
    answers: list[int] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    long_answer_written: bool = False

    async def report(self, request: web.Request) -> web.StreamResponse:
        self.reports.append(request.match_info["alert_id"])
        await request.read()
        status = self.answers.pop(0) if self.answers else 200
        if status in (301, 302, 307, 308):
            raise web.HTTPTemporaryRedirect("/elsewhere")
        if status == 401:
            # A long error page: the reporter reads only its start.
            response = web.StreamResponse(status=401)
            await response.prepare(request)
            for _ in range(64):
                await response.write(b"x" * 1_048_576)
            await response.write_eof()
            self.long_answer_written = True
            return response
        return web.json_response({"complete": True}, status=status)

    async def other(self, request: web.Request) -> web.Response:
        self.elsewhere.append(f"{request.method} {request.path}")
        return web.json_response({})


@pytest_asyncio.fixture
async def city() -> AsyncIterator[City]:
    city = City(closed_port())
    app = web.Application()
    app.router.add_post("/api/v1/alerts/{alert_id}/reports", city.report)
    app.router.add_route("*", "/elsewhere", city.other)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", city.port).start()
    try:
        yield city
    finally:
        await runner.cleanup()


def _county(tmp_path: Path, city: City) -> Any:
    config = make_config(tmp_path, {"log": {"type": "log"}}, village_targets("log", 3))
    report_to = {"client": "city", "url": f"http://127.0.0.1:{city.port}", "token": REPORT}
    node = {"role": "county", "division": "150921", "report_to": [report_to]}
    return _with(
        config, [{"name": "city", "token": "c" * 20}], node | {"report_interval_seconds": 0.1}
    )


async def _acknowledged(county: BroadcasterService, alert_id: str) -> dict[str, Any] | None:
    acknowledged: dict[str, Any] | None
    acknowledged = await county.database.run(ReportTables(county.database).acknowledged, alert_id)
    return acknowledged


async def _until_acknowledged(county: BroadcasterService, alert_id: str) -> dict[str, Any]:
    for _ in range(200):
        acknowledged = await _acknowledged(county, alert_id)
        if acknowledged is not None and acknowledged["complete"]:
            return acknowledged
        await asyncio.sleep(0.05)
    raise AssertionError(acknowledged)


async def test_a_redirect_and_a_refusal_are_asked_again(tmp_path: Path, city: City) -> None:
    city.answers = [307, 401, 403]
    async with running(_county(tmp_path, city)) as county:
        taken = await county.submit(to_xml(make_alert("again-1")), origin="api:city")
        acknowledged = await _until_acknowledged(county, taken.alert_id)
    assert acknowledged == {"summary": {"log": {"confirmed": 3}}, "complete": True}
    assert city.elsewhere == []
    assert len(city.reports) >= 4 and not city.answers
    assert not city.long_answer_written


async def test_an_alert_unknown_to_the_city_is_no_longer_reported(
    tmp_path: Path, city: City
) -> None:
    city.answers = [404] * 10
    async with running(_county(tmp_path, city)) as county:
        taken = await county.submit(to_xml(make_alert("unknown-1")), origin="api:city")
        acknowledged = await _until_acknowledged(county, taken.alert_id)
        await asyncio.sleep(1)
    assert acknowledged == {"summary": {"refused": 404}, "complete": True}
    assert city.reports == [taken.alert_id]


async def test_a_refused_report_is_given_up_once_the_alert_expired(
    tmp_path: Path, city: City
) -> None:
    city.answers = [403] * 100
    async with running(_county(tmp_path, city)) as county:
        taken = await county.submit(
            to_xml(make_alert("expiring-1", expires_in=2)), origin="api:city"
        )
        acknowledged = await _until_acknowledged(county, taken.alert_id)
        asked = len(city.reports)
        await asyncio.sleep(1)
    assert acknowledged == {"summary": {"refused": 403}, "complete": True}
    assert asked >= 3 and len(city.reports) == asked
