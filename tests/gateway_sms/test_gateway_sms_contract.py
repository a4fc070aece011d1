"""The gateway-sms channel passes the channel contract suite against simulated SMPP and CMPP
gateways on loopback TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from broadcaster.channel import Channel, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.testing.contract import ChannelContract, channel_context
from channels.gateway_sms import GatewaySmsChannel, GatewaySmsChannelConfig
from drivers.mqtt.testing import free_port
from drivers.smsgw.simulator import SmscSimulator

from .conftest import GatewayFactory, gateway_table

NUMBER = "+8613900471001"


def build(tmp_path: Path, protocol: str, port: int) -> GatewaySmsChannel:
    table = gateway_table(protocol, port, request_timeout_seconds=0.5)
    config = GatewaySmsChannelConfig.model_validate(table)
    return GatewaySmsChannel("gateway", config, channel_context(tmp_path))


class GatewaySink:
    """The simulated gateway: a delivery is seen once a segment to its number was accepted."""

    def __init__(self, gateway: SmscSimulator[Any]) -> None:
        self.gateway = gateway

    async def received(self, delivery: OutgoingDelivery) -> bool:
        wanted = delivery.target.address.removeprefix("+")
        return any(r.segment.destination.removeprefix("+") == wanted for r in self.gateway.records)


def target(address: str) -> Target:
    return Target(id="officials", channel="gateway", name="县级干部", address=address)


class TestGatewaySmsChannelContract(ChannelContract):
    @pytest_asyncio.fixture
    async def gateway(self, make_gateway: GatewayFactory) -> SmscSimulator[Any]:
        return await make_gateway()

    @pytest.fixture
    def channel(self, tmp_path: Path, protocol: str, gateway: SmscSimulator[Any]) -> Channel:
        return build(tmp_path, protocol, gateway.port)

    @pytest.fixture
    def reachable_target(self) -> Target:
        return target(NUMBER)

    @pytest.fixture
    def delivery_sink(self, gateway: SmscSimulator[Any]) -> GatewaySink:
        return GatewaySink(gateway)

    @pytest_asyncio.fixture
    async def permanent_failure(
        self, tmp_path: Path, protocol: str, gateway: SmscSimulator[Any]
    ) -> AsyncIterator[tuple[Channel, Target]]:
        channel = build(tmp_path / "permanent", protocol, gateway.port)
        await channel.start()
        yield channel, target("")
        await channel.stop()

    @pytest_asyncio.fixture
    async def transient_failure(
        self, tmp_path: Path, protocol: str
    ) -> AsyncIterator[tuple[Channel, Target]]:
        channel = build(tmp_path / "transient", protocol, free_port())
        await channel.start()
        yield channel, target(NUMBER)
        await channel.stop()
