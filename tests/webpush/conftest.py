"""Fixtures for the web push tests: the demo division tree, an in-memory target directory, a
running push-service stand-in and channel builders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from broadcaster.channel import ChannelContext
from broadcaster.divisions import DivisionTree
from broadcaster.testing.targets import MemoryTargets
from channels.webpush import WebPushChannel, WebPushChannelConfig
from tests.conftest import REPO
from tests.webpush.pushservice import PushServiceStandIn

DEMO_DIVISIONS = REPO / "config" / "demo" / "divisions.json"
ZHUOZI = "150921000000"
ZHUOZI_TOWNSHIP = "150921001000"
HUADE = "150922000000"


@pytest.fixture(scope="session")
def divisions() -> DivisionTree:
    return DivisionTree.load(DEMO_DIVISIONS)


@pytest.fixture
async def push_service() -> AsyncIterator[PushServiceStandIn]:
    service = PushServiceStandIn()
    server = TestServer(service.app())
    await server.start_server()
    service.base_url = str(server.make_url("")).rstrip("/")
    yield service
    await server.close()


ChannelFactory = Callable[..., WebPushChannel]


@pytest.fixture
def make_channel(tmp_path: Path, divisions: DivisionTree) -> ChannelFactory:
    """Build a channel (not started) with an in-memory directory; keyword args go to config."""

    def build(targets: MemoryTargets | None = None, **settings: Any) -> WebPushChannel:
        config = WebPushChannelConfig.model_validate(
            {
                "type": "webpush",
                "vapid_subject": "mailto:duty@example.cn",
                "allow_http_endpoints": True,
                "allow_private_endpoints": True,
                **settings,
            }
        )
        context = ChannelContext(
            data_dir=tmp_path,
            sender_name="乌兰察布市应急管理局",
            public_url="https://alerts.example.cn",
            targets=targets if targets is not None else MemoryTargets(),
            divisions=divisions,
        )
        return WebPushChannel("push", config, context)

    return build
