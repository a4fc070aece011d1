"""The HTTP API over a real socket: auth, submit (XML and JSON), idempotency, errors, cancel,
delivery state, the Atom feed, health and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import xmlschema
from aiohttp.test_utils import TestServer
from lxml import etree

from broadcaster.api.app import make_app
from broadcaster.cap.serialize import to_json, to_xml
from broadcaster.service import BroadcasterService
from tests.conftest import CAP_SAMPLES, CAP_XSD
from tests.core.support import make_alert, make_config, village_targets

TOKEN = "test-token-0123456789"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[aiohttp.ClientSession, BroadcasterService]]:
    channels = {
        "log": {"type": "log"},
        "broken": {"type": "no-such-plugin"},
    }
    config = make_config(tmp_path, channels, village_targets("log", 20))
    config = config.model_copy(
        update={"api": config.api.model_validate({"tokens": [{"name": "ci", "token": TOKEN}]})}
    )
    service = BroadcasterService(config)
    server = TestServer(make_app(service))
    await server.start_server()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(base_url=str(server.make_url("/")), headers=headers) as s:
        yield s, service
    await server.close()


async def _wait_complete(session: aiohttp.ClientSession, alert_id: str) -> dict:  # type: ignore[type-arg]
    for _ in range(200):
        async with session.get(f"/api/v1/alerts/{alert_id}/deliveries") as r:
            body = await r.json()
        if body["complete"]:
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(body)


async def test_requests_without_a_valid_token_are_refused(api) -> None:  # type: ignore[no-untyped-def]
    session, _ = api
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        async with session.post("/api/v1/alerts", data=to_xml(make_alert()), headers=headers) as r:
            assert r.status == 401
    async with session.get("/api/v1/alerts/x", headers={"Authorization": "Basic x"}) as r:
        assert r.status == 401


async def test_submit_xml_then_same_again_then_deliveries(api) -> None:  # type: ignore[no-untyped-def]
    session, _ = api
    xml = to_xml(make_alert())
    headers = {"Content-Type": "application/cap+xml"}
    async with session.post("/api/v1/alerts", data=xml, headers=headers) as r:
        assert r.status == 201
        first = await r.json()
    async with session.post("/api/v1/alerts", data=xml, headers=headers) as r:
        assert r.status == 200
        assert (await r.json())["id"] == first["id"]
    body = await _wait_complete(session, first["id"])
    assert body["summary"] == {"log": {"confirmed": 20}}
    assert len(body["deliveries"]) == 20
    assert {d["state"] for d in body["deliveries"]} == {"confirmed"}
    async with session.get(f"/api/v1/alerts/{first['id']}") as r:
        record = await r.json()
        assert record["identifier"] == "test-1" and record["state"] == "active"
    async with session.get(f"/api/v1/alerts/{first['id']}/cap") as r:
        assert await r.read() == xml
    delivery_id = body["deliveries"][0]["id"]
    async with session.get(f"/api/v1/deliveries/{delivery_id}/events") as r:
        states = [e["to_state"] for e in (await r.json())["events"]]
        assert states == ["queued", "sending", "confirmed"]


async def test_submit_json_form(api) -> None:  # type: ignore[no-untyped-def]
    session, _ = api
    async with session.post("/api/v1/alerts", json=to_json(make_alert("json-1"))) as r:
        assert r.status == 201, await r.text()
        assert (await r.json())["planned"] == {"log": 20}


@pytest.mark.parametrize("sample", sorted((CAP_SAMPLES / "invalid").glob("*.xml")), ids=str)
async def test_invalid_alert_gets_400_with_problems_and_is_not_stored(api, sample: Path) -> None:  # type: ignore[no-untyped-def]
    session, service = api
    headers = {"Content-Type": "application/xml"}
    async with session.post("/api/v1/alerts", data=sample.read_bytes(), headers=headers) as r:
        assert r.status == 400
        body = await r.json()
    assert body["problems"], body
    assert all(p["path"].startswith("/") and p["rule"] for p in body["problems"])
    count = await service.database.run(
        lambda: service.database.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    )
    assert count == 0


async def test_garbage_bodies_get_clear_errors(api) -> None:  # type: ignore[no-untyped-def]
    session, _ = api
    async with session.post(
        "/api/v1/alerts", data=b"{not json", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400 and "JSON" in (await r.json())["error"]
    async with session.post(
        "/api/v1/alerts", data=b"hello", headers={"Content-Type": "text/plain"}
    ) as r:
        assert r.status == 415
    async with session.post(
        "/api/v1/alerts", data=b"<alert", headers={"Content-Type": "application/xml"}
    ) as r:
        assert r.status == 400
    async with session.get("/api/v1/alerts/nope") as r:
        assert r.status == 404


async def test_cancel_endpoint_issues_a_cap_cancel(api) -> None:  # type: ignore[no-untyped-def]
    session, _ = api
    alert = make_alert("to-cancel", effective_in=600)  # deferred: nothing sent yet
    async with session.post(
        "/api/v1/alerts", data=to_xml(alert), headers={"Content-Type": "application/cap+xml"}
    ) as r:
        alert_id = (await r.json())["id"]
    async with session.post(f"/api/v1/alerts/{alert_id}/cancel", json={"reason": "误报"}) as r:
        assert r.status == 201, await r.text()
        cancel_id = (await r.json())["id"]
    async with session.get(f"/api/v1/alerts/{alert_id}/deliveries") as r:
        body = await r.json()
    assert body["alert_state"] == "cancelled"
    assert body["summary"] == {"log": {"cancelled": 20}}
    async with session.get(f"/api/v1/alerts/{cancel_id}") as r:
        cancel = await r.json()
    assert cancel["msg_type"] == "Cancel"
    assert cancel["references"][0]["alert_id"] == alert_id
    async with session.post(f"/api/v1/alerts/{alert_id}/cancel", json={}) as r:
        assert r.status == 409
    async with session.get(f"/api/v1/alerts/{cancel_id}/cap") as r:
        written = await r.read()
    # what the server writes validates against the official schema (independent validator)
    xmlschema.XMLSchema(str(CAP_XSD)).validate(written.decode())


async def test_feed_health_and_metrics(api) -> None:  # type: ignore[no-untyped-def]
    session, _ = api
    async with session.post(
        "/api/v1/alerts",
        data=to_xml(make_alert("feed-1")),
        headers={"Content-Type": "application/cap+xml"},
    ) as r:
        alert_id = (await r.json())["id"]
    await _wait_complete(session, alert_id)
    async with session.get("/feed.atom", headers={"Authorization": ""}) as r:
        assert r.status == 200
        feed = etree.fromstring(await r.read())
    ns = {"a": "http://www.w3.org/2005/Atom"}
    links = feed.xpath("//a:entry/a:link/@href", namespaces=ns)
    assert any(alert_id in link for link in links)
    cap_path = "/" + links[0].split("/", 3)[3]
    async with session.get(cap_path, headers={"Authorization": ""}) as r:
        assert r.status == 200 and b"feed-1" in await r.read()
    async with session.get("/healthz") as r:
        health = await r.json()
    assert health["status"] == "degraded"
    assert health["channels"]["log"]["ok"] is True
    assert health["failed_channels"][0]["channel"] == "broken"
    assert "no-such-plugin" in health["failed_channels"][0]["error"]
    async with session.get("/metrics") as r:
        text = await r.text()
    assert 'broadcaster_deliveries{channel="log",state="confirmed"} 20' in text
    assert 'broadcaster_channel_up{channel="broken"} 0' in text
    assert TOKEN not in text
