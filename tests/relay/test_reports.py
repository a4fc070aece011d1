"""State reported upward, in process over real sockets: a city service relays to a county
service, the county reports, the city keeps the report under the relay delivery (API and console
board) and confirms it; the report route takes reports only from the county the alert was
relayed to, of bounded size and valid shape, and never lets a late report undo a final one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.api.keys import SERVICE
from broadcaster.auth import OfficerStore, Role
from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config
from broadcaster.federationconfig import NodeConfig
from broadcaster.service import BroadcasterService
from tests.console.support import PASSWORDS, ConsoleClient, ConsoleServer
from tests.core.support import make_alert, make_config, village_targets
from tests.relay.test_federation import free_ports

OFFICER, RELAY, REPORT, OTHER = (f"{name}-token-0123456789" for name in ("o", "r", "p", "x"))


def _with(config: Config, tokens: list[dict[str, Any]], node: dict[str, Any]) -> Config:
    return config.model_copy(
        update={
            "api": config.api.model_validate({"tokens": tokens}),
            "node": NodeConfig.model_validate(node),
        }
    )


@dataclass
class Pair:
    city: TestServer
    county: TestServer
    city_config: Config
    port: int


def _service(server: TestServer) -> BroadcasterService:
    return server.app[SERVICE]


@asynccontextmanager
async def federation(
    tmp_path: Path,
    channels: dict[str, dict[str, Any]],
    devices: list[dict[str, Any]],
    *,
    push: bool = True,
    poll_seconds: float | None = None,
) -> AsyncIterator[Pair]:
    """A city relaying to county node 150921 (real services on loopback sockets), whose
    ``channels`` reach ``devices``; the county reports to the city when ``push``, and the
    city's relay polls it every ``poll_seconds`` (the channel's default when None)."""
    base = free_ports(2)
    city_url, county_url = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
    (tmp_path / "county").mkdir()
    county = make_config(tmp_path / "county", channels, devices)
    county = _with(
        county,
        [{"name": "city", "token": RELAY}],
        {
            "role": "county",
            "division": "150921",
            "report_to": [{"client": "city", "url": city_url, "token": REPORT}] if push else [],
            "report_interval_seconds": 0.5,
        },
    )
    (tmp_path / "city").mkdir()
    relay: dict[str, Any] = {
        "type": "relay",
        "nodes": [{"division": "150921", "url": county_url, "token": RELAY}],
    }
    if poll_seconds is not None:
        relay["poll_seconds"] = poll_seconds
    city = make_config(tmp_path / "city", {"relay": relay}, [])
    city = _with(
        city,
        [
            {"name": "officer", "token": OFFICER},
            {"name": "county-150921", "token": REPORT, "node": "150921"},
            {"name": "county-150925", "token": OTHER, "node": "150925"},
        ],
        {"role": "city", "division": "150900"},
    )
    county_server = TestServer(make_app(BroadcasterService(county)), port=base + 1)
    city_server = TestServer(make_app(BroadcasterService(city)), port=base)
    await county_server.start_server()
    await city_server.start_server()
    pair = Pair(city_server, county_server, city, base)
    try:
        yield pair
    finally:
        await pair.city.close()  # a test may have started the city again
        await county_server.close()


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    # Two villages a second: a county that is still delivering for a few seconds.
    log = {"type": "log", "rate_per_second": 2}
    async with federation(tmp_path, {"log": log}, village_targets("log", 5)) as made:
        yield made


async def _call(
    server: TestServer, method: str, path: str, token: str, body: bytes, kind: str
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": kind}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.make_url(path), data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def _relay_row(pair: Pair, alert_id: str, state: str) -> dict[str, Any]:
    for _ in range(200):
        _, body = await _call(
            pair.city, "GET", f"/api/v1/alerts/{alert_id}/deliveries", OFFICER, b"", "text/plain"
        )
        row: dict[str, Any] = body["deliveries"][0]
        if row["state"] == state:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(body)


async def test_the_county_reports_and_the_city_shows_and_confirms(pair: Pair) -> None:
    status, body = await _call(
        pair.city, "POST", "/api/v1/alerts", OFFICER, to_xml(make_alert()), "application/cap+xml"
    )
    assert status == 201, body
    alert_id = body["id"]
    row = await _relay_row(pair, alert_id, "confirmed")
    assert row["report"]["summary"] == {"log": {"confirmed": 5}}
    assert row["report"]["complete"] is True and row["report"]["node"] == "150921"
    _, events = await _call(
        pair.city, "GET", f"/api/v1/deliveries/{row['id']}/events", OFFICER, b"", "text/plain"
    )
    assert any(
        "county node 150921: log: confirmed 5" in (e["detail"] or "") for e in events["events"]
    )

    city = _service(pair.city)
    await OfficerStore(city.database, city.config.console).create(
        "viewer", PASSWORDS["viewer"], Role.VIEWER, "Viewer"
    )
    viewer = ConsoleClient(ConsoleServer(city, pair.city))
    try:
        await viewer.login("viewer")
        status, page = await viewer.get(f"/console/alerts/{alert_id}/deliveries")
        shown = json.loads(page)["deliveries"][0]
        assert status == 200 and shown["report_text"] == "log: confirmed 5"
    finally:
        await viewer.close()

    # Only the county it was relayed to may report, within bounds, and never undo a final one.
    path = f"/api/v1/alerts/{alert_id}/reports"
    late = json.dumps({"node": "150921", "summary": {"log": {"retrying": 5}}, "complete": False})
    for token, body_bytes, expected, words in (
        (OTHER, late.encode(), 403, "belongs to county node 150925, not 150921"),
        (
            OTHER,
            late.replace("150921", "150925").encode(),
            403,
            "not relayed to county node 150925",
        ),
        (OFFICER, late.encode(), 403, "only a county node's token"),
        (REPORT, b"{" + b" " * 70_000 + b"}", 413, "at most 65536 bytes"),
        (REPORT, b'{"summary": {"log": {"sent": 1}}, "complete": true}', 400, "unknown state"),
        (REPORT, b'{"summary": {"log": {"confirmed": -1}}, "complete": true}', 400, "a count"),
        (REPORT, b'{"summary": {}, "complete": "yes"}', 400, "true or false"),
        (REPORT, b"[1]", 400, "JSON object"),
    ):
        status, answer = await _call(pair.city, "POST", path, token, body_bytes, "application/json")
        assert status == expected and words in answer["error"], (status, answer)
    status, _ = await _call(pair.city, "POST", path, REPORT, late.encode(), "application/json")
    assert status == 200
    row = await _relay_row(pair, alert_id, "confirmed")
    assert row["report"]["complete"] is True
    assert row["report"]["summary"] == {"log": {"confirmed": 5}}


async def test_reports_wait_for_a_city_that_is_down(pair: Pair) -> None:
    status, body = await _call(
        pair.city, "POST", "/api/v1/alerts", OFFICER, to_xml(make_alert()), "application/cap+xml"
    )
    assert status == 201, body
    alert_id = body["id"]
    await _relay_row(pair, alert_id, "accepted")
    await pair.city.close()
    county = _service(pair.county)
    for _ in range(200):
        counts = await county.store.deliveries.summary(alert_id)
        if counts == {"log": {"confirmed": 5}}:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # reports fail meanwhile and are kept for later
    pair.city = TestServer(make_app(BroadcasterService(pair.city_config)), port=pair.port)
    await pair.city.start_server()
    # Confirmed by the county's report, sent again once the city answers (its own poll of the
    # county comes only every 30 s and keeps no report).
    row = await _relay_row(pair, alert_id, "confirmed")
    assert row["report"]["complete"] is True
    assert row["report"]["summary"] == {"log": {"confirmed": 5}}


async def test_a_relay_of_what_the_county_already_took_from_the_region_is_reported(
    pair: Pair,
) -> None:
    """The county took the region's warning from its own feed first: the city's relay of it is
    a duplicate there, yet the county reports its state to the city as for any relayed alert."""
    warning = make_alert("nmg-1", sender="nmg.emergency@example.cn")
    county = _service(pair.county)
    taken = await county.submit(warning, origin="upstream:region")
    assert taken.created
    status, body = await _call(
        pair.city, "POST", "/api/v1/alerts", OFFICER, to_xml(warning), "application/cap+xml"
    )
    assert status == 201 and body["id"] == taken.alert_id, body
    row = await _relay_row(pair, taken.alert_id, "confirmed")
    assert row["report"]["summary"] == {"log": {"confirmed": 5}}
    assert row["report"]["complete"] is True and row["report"]["node"] == "150921"
    _, events = await _call(
        pair.city, "GET", f"/api/v1/deliveries/{row['id']}/events", OFFICER, b"", "text/plain"
    )
    assert any("already accepted" in (e["detail"] or "") for e in events["events"])
    record = await county.store.alerts.get(taken.alert_id)
    assert record is not None and record["origin"] == "upstream:region"


async def test_a_county_s_token_at_the_city_may_only_report(pair: Pair) -> None:
    # Whoever holds one county node must not broadcast nor approve for the city.
    alert = to_xml(make_alert("from-a-county", geocodes=["150921000000"]))
    status, body = await _call(
        pair.city, "POST", "/api/v1/alerts", REPORT, alert, "application/xml"
    )
    assert (status, body) == (403, {"error": "a node's token may only report delivery states"})
    for method, path in [
        ("GET", "/api/v1/alerts/a0"),
        ("POST", "/api/v1/alerts/a0/approve"),
        ("POST", "/api/v1/alerts/a0/cancel"),
    ]:
        status, _ = await _call(pair.city, method, path, REPORT, b"{}", "application/json")
        assert status == 403, (method, path)
    status, _ = await _call(pair.city, "GET", "/api/v1/alerts/a0", OFFICER, b"", "text/plain")
    assert status == 404  # the officer's token is let through
