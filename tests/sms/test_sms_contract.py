"""The SMS channel passes the channel contract suite, against a simulated modem on a pty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.channel import Channel
from broadcaster.delivery import Target
from broadcaster.testing.contract import ChannelContract, channel_context
from channels.sms import SmsChannel, SmsChannelConfig

from .conftest import SimulatorFactory, modem_table, sms_channel_table


def build(tmp_path: Path, port: str) -> SmsChannel:
    config = SmsChannelConfig.model_validate(sms_channel_table([modem_table("m0", port)]))
    return SmsChannel("sms", config, channel_context(tmp_path))


class TestSmsChannelContract(ChannelContract):
    @pytest.fixture
    def channel(self, tmp_path: Path, make_simulator: SimulatorFactory) -> Channel:
        return build(tmp_path, make_simulator("sim0").device_path)

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="officials", channel="sms", name="县级干部", address="+8613800471001")

    @pytest.fixture
    async def failing(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        channel = build(tmp_path, str(tmp_path / "no-such-modem"))
        await channel.start()
        yield (
            channel,
            Target(id="officials", channel="sms", name="县级干部", address="+8613800471001"),
        )
        await channel.stop()
