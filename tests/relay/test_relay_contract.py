"""The relay channel passes the channel contract suite against a real county node (a running
service with its API on a real socket), and refuses or retries as each answer says.

The suite's alert is given the county's area, so that the county plans and confirms deliveries
on its own devices: a county that reaches no one fails the relay delivery."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap import Area, NamedValue, format_cap_time
from broadcaster.channel import Channel, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.intake import alert_id_for
from broadcaster.service import BroadcasterService
from broadcaster.testing.contract import (
    ChannelContract,
    channel_context,
    contract_delivery,
    contract_message,
)
from channels.relay import RelayChannel, RelayChannelConfig
from tests.core.support import COUNTY, make_config, village_targets

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


class CountySink:
    """The county node: a delivery is seen once the county holds the alert."""

    def __init__(self, service: BroadcasterService) -> None:
        self.service = service

    async def received(self, delivery: OutgoingDelivery) -> bool:
        alert = delivery.message.alert
        alert_id = alert_id_for(alert.sender, alert.identifier, format_cap_time(alert.sent))
        return await self.service.store.alerts.get(alert_id) is not None


class TestRelayChannelContract(ChannelContract):
    @pytest.fixture
    def channel(self, tmp_path: Path, county: tuple[str, BroadcasterService]) -> Channel:
        return _relay(tmp_path, relay_table(county[0]))

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="node-150921", channel="relay", name="卓资县 county node")

    def delivery_to(self, target: Target, delivery_id: int = 1) -> OutgoingDelivery:
        county = Area(area_desc="卓资县", geocodes=[NamedValue("CPEAS Geographic Code", COUNTY)])
        return contract_delivery(target, delivery_id, contract_message(areas=[county]))

    @pytest.fixture
    def delivery_sink(self, county: tuple[str, BroadcasterService]) -> CountySink:
        return CountySink(county[1])

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
