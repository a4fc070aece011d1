"""The shipped channels pass the channel contract suite (as an integrator's channel would)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from broadcaster.channel import Channel, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.testing.contract import ChannelContract, JsonLinesSink, channel_context
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
    def delivery_sink(self, tmp_path: Path) -> JsonLinesSink:
        return JsonLinesSink(tmp_path / "deliveries.jsonl")

    @pytest.fixture
    def permanent_failure(self) -> None:
        return None  # a log file takes every target

    @pytest_asyncio.fixture
    async def transient_failure(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        config = LogChannelConfig(type="log", path=Path("logs/out.jsonl"))
        channel = LogChannel("log", config, channel_context(tmp_path))
        await channel.start()
        (tmp_path / "logs").rmdir()
        (tmp_path / "logs").write_text("the log directory was replaced by a file")
        yield channel, Target(id="v1", channel="log", name="村1")
        await channel.stop()


class ReceiverSink:
    """The county node stand-in: a delivery is seen once a request carried its key."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver

    async def received(self, delivery: OutgoingDelivery) -> bool:
        return any(
            r["key"] == delivery.idempotency_key and r["status"] == 200
            for r in self.receiver.received
        )


class TestWebhookChannelContract(ChannelContract):
    @pytest.fixture
    def receiver(self) -> WebhookReceiver:
        return WebhookReceiver(script={"gone": [404], "busy": [503]})

    @pytest_asyncio.fixture
    async def base_url(self, receiver: WebhookReceiver) -> AsyncIterator[str]:
        server = TestServer(receiver.app())
        await server.start_server()
        yield str(server.make_url("")).rstrip("/")
        await server.close()

    @pytest.fixture(name="channel")
    def channel_fixture(self, tmp_path: Path, base_url: str) -> Channel:
        return self.channel(tmp_path, base_url)

    @staticmethod
    def channel(tmp_path: Path, base_url: str) -> Channel:
        config = WebhookChannelConfig.model_validate(
            {"type": "webhook", "url": f"{base_url}/ok", "secret": SECRET.decode()}
        )
        return WebhookChannel("hook", config, channel_context(tmp_path))

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="county", channel="hook", name="county node")

    @pytest.fixture
    def delivery_sink(self, receiver: WebhookReceiver) -> ReceiverSink:
        return ReceiverSink(receiver)

    @pytest_asyncio.fixture
    async def permanent_failure(
        self, tmp_path: Path, base_url: str
    ) -> AsyncIterator[tuple[Channel, Target]]:
        channel = self.channel(tmp_path, base_url)
        await channel.start()
        yield channel, Target(id="gone", channel="hook", name="gone", address=f"{base_url}/gone")
        await channel.stop()

    @pytest_asyncio.fixture
    async def transient_failure(
        self, tmp_path: Path, base_url: str
    ) -> AsyncIterator[tuple[Channel, Target]]:
        channel = self.channel(tmp_path, base_url)
        await channel.start()
        yield channel, Target(id="busy", channel="hook", name="busy", address=f"{base_url}/busy")
        await channel.stop()
