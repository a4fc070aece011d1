"""A running server with the console for console tests: real service, real socket, officers,
and channels that behave like devices (accept, then acknowledge later); or the demo
configuration's real loudspeaker channel with its simulated boxes (``demo_server``).

``ConsoleClient`` logs in through the real login form (its double-submit token included) and
posts forms with the session's CSRF token taken from the page, as a browser does.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.auth import OfficerStore, Role
from broadcaster.channel import (
    Channel,
    ChannelCapabilities,
    ChannelHealth,
    Confirmation,
    ConfirmationOutcome,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.config import Config, parse_config
from broadcaster.service import BroadcasterService
from tests.conftest import REPO

DEMO_DIVISIONS = REPO / "config" / "demo" / "divisions.json"
COUNTY = "150921000000"  # 卓资县
PASSWORDS = {
    "admin": "admin password 0001",
    "drafter": "drafter password 0002",
    "approver": "approver password 0003",
    "viewer": "viewer password 0004",
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class BoxChannel(Channel):
    """Loudspeaker-like: accepts each command, then the box acknowledges it 50 ms later (a
    device's confirmation arriving on the channel's confirmation stream)."""

    capabilities: ClassVar[ChannelCapabilities] = ChannelCapabilities(
        confirms=True, can_stop=True, description="simulated loudspeaker boxes"
    )

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        asyncio.get_running_loop().call_later(
            0.05,
            self.confirm,
            Confirmation(delivery.id, ConfirmationOutcome.CONFIRMED, "box finished playing"),
        )
        return SendResult(SendOutcome.ACCEPTED, provider_ref=f"box-{delivery.target.id}")


class DeviceReportingChannel(BoxChannel):
    """A channel whose health lists devices as loudspeaker hubs and modem pools report them."""

    async def health(self) -> ChannelHealth:
        return ChannelHealth(
            ok=False,
            detail="1 of 2 boxes offline",
            devices={
                "box-150921001001": {"online": True, "last_heartbeat": time.time() - 5},
                "box-150921001002": {"online": False, "last_heartbeat": time.time() - 900},
                "modem-1": {"state": "ready", "rssi": 21, "queue": 3, "imei": "8600000001"},
                "tx-150921": {"connected": False, "last_error": "encoder did not answer"},
            },
        )


def demo_targets(
    channel: str, county: str = COUNTY, suffix: str = "大喇叭"
) -> list[dict[str, Any]]:
    """One target per demo village of ``county``, at the village's place."""
    doc = json.loads(DEMO_DIVISIONS.read_text(encoding="utf-8"))
    return [
        {
            "id": f"{channel}-{d['code']}",
            "channel": channel,
            "name": f"{d['name']}{suffix}",
            "division": d["code"],
            "lat": d["lat"],
            "lon": d["lon"],
        }
        for d in doc["divisions"]
        if d["level"] == "village" and d["code"].startswith(county[:6])
    ]


def console_config(
    tmp_path: Path,
    channels: dict[str, dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    **console: Any,
) -> Config:
    registry = tmp_path / "targets.json"
    registry.write_text(json.dumps(list(targets), ensure_ascii=False), encoding="utf-8")
    data = {
        "server": {
            "data_dir": str(tmp_path / "data"),
            "sender": "ulanqab.emergency@example.cn",
            "sender_name": "乌兰察布市应急管理局",
        },
        "registry": {"targets": str(registry), "divisions": str(DEMO_DIVISIONS)},
        "dispatcher": {
            "idle_poll_seconds": 0.05,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
        },
        "audio": {"engine_order": ["espeak-ng"]},
        "console": {"cookie_secure": False} | console,
        "channels": channels,
    }
    return parse_config(data, base_dir=tmp_path, source=None)


@dataclass
class ConsoleServer:
    service: BroadcasterService
    server: TestServer

    @property
    def url(self) -> str:
        return str(self.server.make_url("/console/"))


@asynccontextmanager
async def console_server(config: Config) -> AsyncIterator[ConsoleServer]:
    """A started server with one officer per role (usernames = roles)."""
    service = BroadcasterService(config)
    server = TestServer(make_app(service))
    await server.start_server()
    try:
        officers = OfficerStore(service.database, config.console)
        for role in Role:
            await officers.create(role.value, PASSWORDS[role.value], role, role.value.title())
        yield ConsoleServer(service, server)
    finally:
        await server.close()


class ConsoleClient:
    """An officer's browser session without the browser: cookies, forms, CSRF tokens."""

    def __init__(self, server: ConsoleServer) -> None:
        self.server = server
        self.session = aiohttp.ClientSession(
            base_url=str(server.server.make_url("/")),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )
        self.csrf = ""
        self.last_path = ""

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.session.get(path, **kwargs) as response:
            return response.status, self._seen(response, await response.text())

    def _seen(self, response: aiohttp.ClientResponse, text: str) -> str:
        """Keep the session's CSRF token from any page past the login."""
        self.last_path = response.url.path
        found = _CSRF.search(text)
        if found and response.url.path != "/console/login":
            self.csrf = found.group(1)
        return text

    async def post(
        self, path: str, data: Any, *, csrf: bool = True, **kwargs: Any
    ) -> tuple[int, str]:
        form = aiohttp.FormData(data if isinstance(data, list) else list(data.items()))
        if csrf:
            form.add_field("csrf_token", self.csrf)
        async with self.session.post(path, data=form, **kwargs) as response:
            return response.status, self._seen(response, await response.text())

    async def login(self, username: str, password: str | None = None) -> tuple[int, str]:
        _status, page = await self.get("/console/login")
        token = _CSRF.search(page)
        assert token is not None
        form = {
            "username": username,
            "password": password if password is not None else PASSWORDS[username],
            "csrf_token": token.group(1),
        }
        return await self.post("/console/login", form, csrf=False)


def compose_form(
    *,
    headline: str = "卓资县暴雪橙色预警",
    divisions: Sequence[str] = (COUNTY,),
    channels: Sequence[str] = ("speaker",),
    severity: str = "Severe",
    status: str = "Actual",
    expires: str = "2099-01-01T00:00",
    update_of: str = "",
) -> list[tuple[str, str]]:
    """The compose form as the page posts it (times in UTC: ``tz_offset`` 0)."""
    form = [
        ("hazard", "blizzard"),
        ("level", "orange"),
        ("status", status),
        ("category", "Met"),
        ("response", "Prepare"),
        ("severity", severity),
        ("urgency", "Expected"),
        ("certainty", "Likely"),
        ("zh-CN.event", "暴雪"),
        ("zh-CN.headline", headline),
        ("zh-CN.description", "6小时内降雪量将达10毫米以上，或者已达10毫米以上且降雪持续。"),
        ("zh-CN.instruction", "必要时关闭结冰道路交通；减少不必要的户外活动；加固棚圈。"),
        ("tz_offset", "0"),
        ("effective", ""),
        ("expires", expires),
        ("update_of", update_of),
    ]
    form += [("division", code) for code in divisions]
    form += [("channel", name) for name in channels]
    return form


@asynccontextmanager
async def demo_server(
    tmp_path: Path, areas: Sequence[str], boxes_per_area: int
) -> AsyncIterator[ConsoleServer]:
    """The demo configuration (its real loudspeaker channel and simulated boxes, the first
    ``boxes_per_area`` of each of ``areas``) on its own port, with a drafter and an approver,
    once every box is online."""
    from channels.loudspeaker import LoudspeakerChannel
    from tests.core.test_demo_bilingual import demo_config

    sink = tmp_path / "sink"
    sink.mkdir()
    config, targets = demo_config(tmp_path, sink, areas, boxes_per_area=boxes_per_area)
    boxes = [t["address"] for t in targets if t["channel"] == "loudspeaker"]
    assert len(boxes) == boxes_per_area * len(areas)
    service = BroadcasterService(config)
    server = TestServer(make_app(service), host="127.0.0.1", port=config.server.port)
    await server.start_server()
    try:
        officers = OfficerStore(service.database, config.console)
        for role in (Role.DRAFTER, Role.APPROVER):
            await officers.create(role.value, PASSWORDS[role.value], role, role.value.title())
        channel = service.channels["loudspeaker"]
        assert isinstance(channel, LoudspeakerChannel)
        await channel.wait_online(boxes, 60)
        yield ConsoleServer(service, server)
    finally:
        await server.close()
