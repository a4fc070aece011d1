"""The shipped channels pass the channel contract suite (as an integrator's channel would)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from broadcaster.channel import Channel
from broadcaster.delivery import Target
from broadcaster.testing.contract import ChannelContract, channel_context
from channels.log import LogChannel, LogChannelConfig
from channels.webhook import WebhookChannel, WebhookChannelConfig
from tests.core.receiver import SECRET, WebhookReceiver


class TestLogChannelContract(ChannelContract):
    @pytest.fixture
    def channel(self, tmp_path: Path) -> Channel:
        return LogChannel("log", LogChannelConfig(type="log"), channel_context(tmp_path))

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="v1", channel="log", name="村1")

    @pytest.fixture
    async def failing(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        config = LogChannelConfig(type="log", path=Path("logs/out.jsonl"))
        channel = LogChannel("log", config, channel_context(tmp_path))
        await channel.start()
        (tmp_path / "logs").rmdir()
        (tmp_path / "logs").write_text("the log directory was replaced by a file")
        yield channel, Target(id="v1", channel="log", name="村1")
        await channel.stop()


class TestWebhookChannelContract(ChannelContract):
    @pytest.fixture
    async def base_url(self) -> AsyncIterator[str]:
        receiver = WebhookReceiver(script={"gone": [404]})
        server = TestServer(receiver.app())
        await server.start_server()
        yield str(server.make_url("")).rstrip("/")
        await server.close()

    @pytest.fixture
    def channel(self, tmp_path: Path, base_url: str) -> Channel:
        config = WebhookChannelConfig.model_validate(
            {"type": "webhook", "url": f"{base_url}/ok", "secret": SECRET.decode()}
        )
        return WebhookChannel("hook", config, channel_context(tmp_path))

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="county", channel="hook", name="county node")

    @pytest.fixture
    async def failing(
        self, channel: Channel, base_url: str
    ) -> AsyncIterator[tuple[Channel, Target]]:
        await channel.start()
        yield channel, Target(id="gone", channel="hook", name="gone", address=f"{base_url}/gone")
        await channel.stop()
