"""The relay channel passes the channel contract suite: it delivers to a county node that
delivers the alert, refuses as a real county node (a running service with its API on a real
socket) does, and retries when the node cannot be reached.

The contract's alert names no area a county could plan on: a real county node keeps it as
reaching no one and the city then fails the delivery (no village heard it). The node the
suite delivers to is therefore a stand-in that speaks the county's API (the document read
with the production CAP parser) and reports one delivery of its own confirmed."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap import Alert, format_cap_time, parse_cap
from broadcaster.channel import Channel, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.intake import alert_id_for
from broadcaster.service import BroadcasterService
from broadcaster.testing.contract import ChannelContract, channel_context
from channels.relay import RelayChannel, RelayChannelConfig
from tests.core.support import make_config, village_targets

COUNTY_TOKEN = "county-token-0123456789"


def relay_table(url: str, token: str = COUNTY_TOKEN, **extra: Any) -> dict[str, Any]:
    node = {"division": "150921", "url": url, "token": token}
    return {"type": "relay", "poll_seconds": 0.2, "nodes": [node]} | extra


def _relay(tmp_path: Path, table: dict[str, Any]) -> RelayChannel:
    config = RelayChannelConfig.model_validate(table)
    return RelayChannel("relay", config, channel_context(tmp_path))


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def county(tmp_path: Path) -> AsyncIterator[tuple[str, BroadcasterService]]:
    """A county node: a real service with a log channel and its API on a loopback socket."""
    folder = tmp_path / "county"
    folder.mkdir()
    config = make_config(folder, {"log": {"type": "log"}}, village_targets("log", 3))
    tokens = [{"name": "city", "token": COUNTY_TOKEN}]
    config = config.model_copy(update={"api": config.api.model_validate({"tokens": tokens})})
    service = BroadcasterService(config)
    server = TestServer(make_app(service), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), service
    await server.close()


def _alert_id(alert: Alert) -> str:
    return alert_id_for(alert.sender, alert.identifier, format_cap_time(alert.sent))


class DeliveringCounty:
    """A county node's API as the relay uses it (alerts in, their delivery state out) that
    delivers every alert it takes on one device of its own, whatever the alert's area."""

    def __init__(self) -> None:
        self.held: set[str] = set()

    def _trusted(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {COUNTY_TOKEN}"

    async def take(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return web.json_response({"error": "unknown token"}, status=401)
        alert_id = _alert_id(parse_cap(await request.read()).alert)
        created = alert_id not in self.held
        self.held.add(alert_id)
        status = 201 if created else 200
        return web.json_response({"id": alert_id, "created": created}, status=status)

    async def deliveries(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return web.json_response({"error": "unknown token"}, status=401)
        if request.match_info["alert_id"] not in self.held:
            return web.json_response({"error": "no such alert"}, status=404)
        return web.json_response({"complete": True, "summary": {"log": {"confirmed": 1}}})

    async def received(self, delivery: OutgoingDelivery) -> bool:
        """The sink's question: whether the node holds the delivery's alert."""
        return _alert_id(delivery.message.alert) in self.held


@pytest_asyncio.fixture
async def delivering_county() -> AsyncIterator[tuple[str, DeliveringCounty]]:
    """A :class:`DeliveringCounty` on a loopback socket: its URL and itself."""
    county = DeliveringCounty()
    app = web.Application()
    app.router.add_post("/api/v1/alerts", county.take)
    app.router.add_get("/api/v1/alerts/{alert_id}/deliveries", county.deliveries)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), county
    await server.close()


class TestRelayChannelContract(ChannelContract):
    @pytest.fixture
    def channel(self, tmp_path: Path, delivering_county: tuple[str, DeliveringCounty]) -> Channel:
        return _relay(tmp_path, relay_table(delivering_county[0]))

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="node-150921", channel="relay", name="卓资县 county node")

    @pytest.fixture
    def delivery_sink(self, delivering_county: tuple[str, DeliveringCounty]) -> DeliveringCounty:
        return delivering_county[1]

    @pytest_asyncio.fixture
    async def permanent_failure(
        self, tmp_path: Path, county: tuple[str, BroadcasterService]
    ) -> AsyncIterator[tuple[Channel, Target]]:
        channel = _relay(tmp_path, relay_table(county[0], token="not-the-county-token"))
        await channel.start()
        yield channel, Target(id="node-150921", channel="relay", name="卓资县 county node")
        await channel.stop()

    @pytest_asyncio.fixture
    async def transient_failure(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        channel = _relay(tmp_path, relay_table(f"http://127.0.0.1:{closed_port()}"))
        await channel.start()
        yield channel, Target(id="node-150921", channel="relay", name="卓资县 county node")
        await channel.stop()
