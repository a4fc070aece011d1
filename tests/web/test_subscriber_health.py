"""One subscriber cannot degrade public health: a resident (or anyone) who subscribes an
endpoint whose push service refuses every push fails only their own delivery. Public
``/healthz`` stays "ok"; the failure shows on the delivery, per push service in the console's
devices page and the API clients' health details, and in the metrics. A fault of the channel
itself still makes it unhealthy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.auth import OfficerStore, Role
from broadcaster.destinations import DestinationStats
from broadcaster.errors import DeviceUnavailableError
from broadcaster.testing.contract import contract_delivery
from channels.webpush import WebPushChannel
from tests.core.support import make_alert, wait_until_complete
from tests.web.conftest import Site, serving, site_config
from tests.webpush.conftest import ZHUOZI_TOWNSHIP
from tests.webpush.pushservice import PushServiceStandIn, ReceivedPush

VIEWER_PASSWORD = "viewer password 0004"


@pytest.fixture
async def two_push_services() -> AsyncIterator[tuple[PushServiceStandIn, PushServiceStandIn]]:
    """A working push service and one an outsider runs, on two loopback ports."""
    services = (PushServiceStandIn(), PushServiceStandIn())
    servers = [TestServer(s.app(), host="127.0.0.1") for s in services]
    for service, server in zip(services, servers, strict=True):
        await server.start_server()
        service.base_url = str(server.make_url("")).rstrip("/")
    yield services
    for server in servers:
        await server.close()


@pytest.fixture
async def lab_site(tmp_path: Path) -> AsyncIterator[Site]:
    """The server, with the push channel allowed to reach the loopback stand-ins."""
    data = site_config(tmp_path, allow_http_endpoints=True, allow_private_endpoints=True)
    async with serving(data, tmp_path) as site:
        yield site


async def _subscribe(site: Site, service: PushServiceStandIn, name: str) -> str:
    body = {"subscription": service.subscriber(name), "division": ZHUOZI_TOWNSHIP}
    async with site.public.post("/channels/webpush/subscribe", json=body) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])


async def _console_page(site: Site, path: str) -> str:
    officers = OfficerStore(site.service.database, site.service.config.console)
    await officers.create("viewer", VIEWER_PASSWORD, Role.VIEWER, "Viewer")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=site.base, cookie_jar=jar) as browser:
        async with browser.get("/console/login") as response:
            page = await response.text()
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        form = {"username": "viewer", "password": VIEWER_PASSWORD, "csrf_token": token}
        async with browser.post("/console/login", data=form) as response:
            assert response.status == 200 and "/console/login" not in str(response.url)
        async with browser.get(path) as response:
            assert response.status == 200
            return await response.text()


async def test_a_refusing_push_service_fails_its_delivery_not_the_channel(
    lab_site: Site, two_push_services: tuple[PushServiceStandIn, PushServiceStandIn]
) -> None:
    good, hostile = two_push_services
    site = lab_site
    await _subscribe(site, good, "resident")
    outsider = await _subscribe(site, hostile, "outsider")
    hostile.script["outsider"] = [403]

    async def phone(push: ReceivedPush) -> None:
        fields = {k: push.payload[k] for k in ("alert", "delivery", "sub", "ack")}
        async with site.public.post("/channels/webpush/ack", json=fields) as response:
            assert response.status == 204

    good.on_push = phone
    result = await site.service.submit(make_alert("one-bad-subscriber"), origin="test")
    summary = await wait_until_complete(site.service, result.alert_id)
    assert summary["webpush"] == {"confirmed": 1, "failed": 1}

    async with site.public.get("/healthz") as response:
        public = await response.json()
    assert public["status"] == "ok" and public["channels"]["webpush"] == {"ok": True}

    path = f"/api/v1/alerts/{result.alert_id}/deliveries"
    async with site.api.get(path, params={"state": "failed"}) as response:
        (failed,) = (await response.json())["deliveries"]
    assert failed["target_id"] == outsider and "HTTP 403" in failed["last_error"]

    async with site.api.get("/healthz") as response:
        webpush = (await response.json())["channels"]["webpush"]
    good_host = good.base_url.removeprefix("http://")
    hostile_host = hostile.base_url.removeprefix("http://")
    assert webpush["ok"] is True
    assert webpush["devices"][good_host]["sent"] == 1
    assert webpush["devices"][good_host]["last_error"] == ""
    assert webpush["devices"][hostile_host]["failed"] == 1
    assert "HTTP 403" in webpush["devices"][hostile_host]["last_error"]
    assert "1 of 2 push services failing" in webpush["detail"]

    async with site.api.get("/metrics") as response:
        metrics = await response.text()
    assert 'broadcaster_send_failures_total{channel="webpush",kind="permanent"} 1' in metrics
    assert 'broadcaster_sends_total{channel="webpush"} 1' in metrics

    devices = await _console_page(site, "/console/devices")
    section = devices.split('id="channel-webpush"', 1)[1].split("</article>", 1)[0]
    assert "故障 FAULT" not in section
    assert hostile_host in section and "HTTP 403" in section and good_host in section


async def test_a_fault_of_the_channel_itself_still_shows(lab_site: Site) -> None:
    """The control: when the channel's own HTTP client is gone, every send fails whatever the
    endpoint, and that is the channel's health."""
    site = lab_site
    channel = site.service.built["webpush"]
    assert isinstance(channel, WebPushChannel)
    target = await channel.enrol(
        {
            "subscription": PushServiceStandIn().subscriber("x")
            | {"endpoint": "http://127.0.0.1:9/push/x"},
            "division": ZHUOZI_TOWNSHIP,
        }
    )
    client = channel._client
    assert client is not None
    await client.close()
    with pytest.raises(DeviceUnavailableError, match="not open"):
        await channel.send(contract_delivery(target))
    async with site.public.get("/healthz") as response:
        public = await response.json()
    assert public["status"] == "degraded" and public["channels"]["webpush"] == {"ok": False}


def test_destinations_are_bounded_and_a_success_clears_the_last_error() -> None:
    stats = DestinationStats(capacity=3)
    for n in range(10):
        stats.failed(f"host-{n}:443", f"HTTP 5{n:02d}", now=float(n))
    stats.sent("host-8:443", now=20.0)
    assert list(stats.devices()) == ["host-7:443", "host-9:443", "host-8:443"]
    assert stats.devices()["host-8:443"] == {
        "sent": 1,
        "failed": 1,
        "last_error": "",
        "updated_at": 20.0,
    }
    assert stats.summary("receivers") == "1 sent, 10 failed; 2 of 3 receivers failing"


async def test_many_made_up_push_services_keep_health_small(
    lab_site: Site, two_push_services: tuple[PushServiceStandIn, PushServiceStandIn]
) -> None:
    _good, hostile = two_push_services
    channel = lab_site.service.built["webpush"]
    assert isinstance(channel, WebPushChannel)
    port = hostile.base_url.rsplit(":", 1)[1]
    sends = []
    for n in range(80):
        keys = hostile.subscriber(f"s{n}")
        keys["endpoint"] = f"http://127.0.0.{n + 1}:{port}/push/s{n}"
        target = await channel.enrol({"subscription": keys, "division": ZHUOZI_TOWNSHIP})
        hostile.script[f"s{n}"] = [500]
        sends.append(channel.send(contract_delivery(target, delivery_id=n + 1)))
    await asyncio.gather(*sends, return_exceptions=True)
    health = await channel.health()
    assert health.ok and len(health.devices) == 50
    assert "0 sent, 80 failed" in health.detail
