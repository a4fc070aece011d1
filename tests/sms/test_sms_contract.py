"""The SMS channel passes the channel contract suite, against a simulated modem on a pty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from broadcaster.channel import Channel, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.testing.contract import ChannelContract, channel_context
from channels.sms import SmsChannel, SmsChannelConfig
from drivers.gsm.simulator_network import SimulatedNetwork

from .conftest import SimulatorFactory, modem_table, sms_channel_table


def build(tmp_path: Path, port: str) -> SmsChannel:
    config = SmsChannelConfig.model_validate(sms_channel_table([modem_table("m0", port)]))
    return SmsChannel("sms", config, channel_context(tmp_path))


class NetworkSink:
    """The simulated operator network: a delivery is seen once a segment reached its number."""

    def __init__(self, network: SimulatedNetwork) -> None:
        self.network = network

    async def received(self, delivery: OutgoingDelivery) -> bool:
        wanted = delivery.target.address.removeprefix("+86")
        return any(r.number.removeprefix("+86") == wanted for r in self.network.records)


NUMBER = "+8613800471001"


class TestSmsChannelContract(ChannelContract):
    @pytest.fixture
    def channel(self, tmp_path: Path, make_simulator: SimulatorFactory) -> Channel:
        return build(tmp_path, make_simulator("sim0").device_path)

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="officials", channel="sms", name="县级干部", address=NUMBER)

    @pytest.fixture
    def delivery_sink(self, network: SimulatedNetwork) -> NetworkSink:
        return NetworkSink(network)

    @pytest_asyncio.fixture
    async def permanent_failure(
        self, tmp_path: Path, make_simulator: SimulatorFactory
    ) -> AsyncIterator[tuple[Channel, Target]]:
        channel = build(tmp_path / "permanent", make_simulator("sim1").device_path)
        await channel.start()
        yield channel, Target(id="empty", channel="sms", name="无号码组", address="")
        await channel.stop()

    @pytest_asyncio.fixture
    async def transient_failure(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        channel = build(tmp_path / "transient", str(tmp_path / "no-such-modem"))
        await channel.start()
        yield channel, Target(id="officials", channel="sms", name="县级干部", address=NUMBER)
        await channel.stop()
