"""A running server for the public-surface tests: the log channel with 20 villages, the web push
channel (subscription page and endpoints), the console, and one API token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.config import parse_config
from broadcaster.service import BroadcasterService
from tests.core.support import village_targets
from tests.webpush.conftest import DEMO_DIVISIONS

TOKEN = "web-test-token-0123456789"


@dataclass
class Site:
    """The server, an anonymous session and one carrying the API token."""

    service: BroadcasterService
    server: TestServer
    public: aiohttp.ClientSession
    api: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


def site_config(tmp_path: Path, **webpush: Any) -> dict[str, Any]:
    registry = tmp_path / "targets.json"
    registry.write_text(json.dumps(village_targets("log", 20)), encoding="utf-8")
    return {
        "server": {"data_dir": str(tmp_path / "data"), "sender": "city@example.cn"},
        "registry": {"divisions": str(DEMO_DIVISIONS), "targets": str(registry)},
        "dispatcher": {"idle_poll_seconds": 0.05, "retry_base_seconds": 0.05},
        "api": {"tokens": [{"name": "ci", "token": TOKEN}]},
        "channels": {
            "log": {"type": "log"},
            "webpush": {"type": "webpush", "vapid_subject": "mailto:duty@example.cn"} | webpush,
        },
    }


@asynccontextmanager
async def serving(data: dict[str, Any], base_dir: Path) -> AsyncIterator[Site]:
    """The server for configuration ``data`` on a loopback port, with its two sessions."""
    service = BroadcasterService(parse_config(data, base_dir=base_dir, source=None))
    server = TestServer(make_app(service), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("/"))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with (
            aiohttp.ClientSession(base_url=base) as public,
            aiohttp.ClientSession(base_url=base, headers=headers) as api,
        ):
            yield Site(service, server, public, api)
    finally:
        await server.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with serving(site_config(tmp_path), tmp_path) as running:
        yield running
