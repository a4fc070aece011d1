"""Web push end to end through the real service: browsers subscribe over HTTP, an alert for one
county is planned to the subscriptions inside it, the stand-in decrypts each push, the "phone"
acks it and the deliveries become confirmed; a 410 fails the delivery and drops the target."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap import MsgType, Status
from broadcaster.config import Config, parse_config
from broadcaster.service import BroadcasterService
from channels.webpush import WebPushChannel
from channels.webpush.ece import MAX_PLAINTEXT
from tests.core.previewing import assert_sent_as_previewed, preview_and_send
from tests.core.support import make_alert, running, wait_until_complete
from tests.webpush.conftest import DEMO_DIVISIONS, HUADE, ZHUOZI, ZHUOZI_TOWNSHIP
from tests.webpush.pushservice import PushServiceStandIn, ReceivedPush


@pytest.fixture
async def system(
    tmp_path: Path, push_service: PushServiceStandIn
) -> AsyncIterator[tuple[aiohttp.ClientSession, BroadcasterService]]:
    service = BroadcasterService(service_config(tmp_path))
    server = TestServer(make_app(service))
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:

        async def phone(push: ReceivedPush) -> None:
            fields = {k: push.payload[k] for k in ("alert", "delivery", "sub", "ack")}
            async with session.post("/channels/webpush/ack", json=fields) as response:
                assert response.status == 204

        push_service.on_push = phone
        yield session, service
    await server.close()


def service_config(tmp_path: Path, **settings: Any) -> Config:
    """The service with one ``webpush`` channel; ``settings`` go to its table."""
    registry = tmp_path / "targets.json"
    registry.write_text("[]")
    data: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path / "data"), "public_url": "https://alerts.example.cn"},
        "registry": {"divisions": str(DEMO_DIVISIONS), "targets": str(registry)},
        "dispatcher": {"idle_poll_seconds": 0.05, "retry_base_seconds": 0.05},
        "channels": {
            "webpush": {
                "type": "webpush",
                "vapid_subject": "mailto:duty@example.cn",
                "allow_http_endpoints": True,
                "allow_private_endpoints": True,
            }
            | settings
        },
    }
    return parse_config(data, base_dir=tmp_path, source=None)


async def subscribe(
    session: aiohttp.ClientSession, push_service: PushServiceStandIn, name: str, division: str
) -> str:
    body = {"subscription": push_service.subscriber(name), "division": division}
    async with session.post("/channels/webpush/subscribe", json=body) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])


async def test_alert_reaches_the_subscribers_in_its_area_and_is_confirmed(
    system: tuple[aiohttp.ClientSession, BroadcasterService], push_service: PushServiceStandIn
) -> None:
    session, service = system
    township = await subscribe(session, push_service, "township", ZHUOZI_TOWNSHIP)
    county = await subscribe(session, push_service, "county", ZHUOZI)
    await subscribe(session, push_service, "elsewhere", HUADE)
    gone = await subscribe(session, push_service, "gone", ZHUOZI)
    push_service.script["gone"] = [410, 410]

    result = await service.submit(make_alert("push-1"), origin="test")
    summary = await wait_until_complete(service, result.alert_id)
    assert summary == {"webpush": {"confirmed": 2, "failed": 1}}
    assert sorted(p.subscription for p in push_service.received) == ["county", "township"]
    payload = push_service.received[0].payload
    assert payload["url"] == f"https://alerts.example.cn/alerts/{result.alert_id}"
    assert payload["texts"][0]["title"] == "卓资县暴雪橙色预警"
    assert payload["level"] == "orange"

    rows = await service.database.run(
        service.database.query,
        "SELECT target_id, state, last_error FROM deliveries WHERE alert_id = ?",
        (result.alert_id,),
    )
    states = {r["target_id"]: r["state"] for r in rows}
    assert states == {township: "confirmed", county: "confirmed", gone: "failed"}
    failed = next(r for r in rows if r["target_id"] == gone)
    assert "410" in failed["last_error"]
    registered = await service.database.run(service.targets.for_channel, "webpush")
    assert gone not in {t.id for t in registered} and len(registered) == 3

    cancel = await service.cancel(result.alert_id, reason="解除", origin="test")
    assert await wait_until_complete(service, cancel.alert_id) == {
        "webpush": {"confirmed": 2, "failed": 1}
    }
    cancels = [p for p in push_service.received if p.payload["type"] == str(MsgType.CANCEL)]
    assert len(cancels) == 2
    first = push_service.received[0]
    assert cancels[0].headers["Topic"] == first.headers["Topic"]


async def test_subscriptions_and_key_survive_a_restart(
    tmp_path: Path, push_service: PushServiceStandIn
) -> None:
    config = service_config(tmp_path)
    body = {"subscription": push_service.subscriber("p"), "division": ZHUOZI_TOWNSHIP}
    async with running(config) as service:
        channel = service.channels["webpush"]
        assert isinstance(channel, WebPushChannel)
        target = await channel.enrol(body)
        public_key = channel.public_key
    async with running(config) as service:
        channel = service.channels["webpush"]
        assert isinstance(channel, WebPushChannel)
        assert channel.public_key == public_key
        kept = await service.database.run(service.targets.for_channel, "webpush")
        assert kept == [target]


async def test_preview_equals_what_each_phone_decrypts(
    system: tuple[aiohttp.ClientSession, BroadcasterService], push_service: PushServiceStandIn
) -> None:
    session, service = system
    for name in ("first", "second", "third"):
        await subscribe(session, push_service, name, ZHUOZI)
    await subscribe(session, push_service, "elsewhere", HUADE)
    alert = make_alert("push-preview")
    # Long enough to be shortened: the preview must show the body exactly as shortened.
    alert.infos[0] = replace(alert.infos[0], description="暴雪" * 2000)
    outcome = await preview_and_send(service, alert, "webpush")
    assert outcome.summary == {"webpush": {"confirmed": 3}}
    assert_sent_as_previewed(outcome)
    assert (outcome.preview.unit, outcome.preview.targets) == ("subscriptions", 3)
    (content,) = outcome.preview.contents
    assert content["texts"][0]["body"].endswith("…")
    decrypted = [p.payload["texts"] for p in push_service.received]
    assert len(decrypted) == 3 and all(texts == content["texts"] for texts in decrypted)


async def test_a_long_headline_reaches_every_phone_as_previewed(
    system: tuple[aiohttp.ClientSession, BroadcasterService], push_service: PushServiceStandIn
) -> None:
    session, service = system
    for name in ("first", "second"):
        await subscribe(session, push_service, name, ZHUOZI)
    headline = "乌兰察布市气象台发布暴雪橙色预警信号，" * 70  # CAP sets no bound
    alert = make_alert("push-long-headline", status=Status.EXERCISE, headline=headline)
    outcome = await preview_and_send(service, alert, "webpush")
    assert outcome.summary == {"webpush": {"confirmed": 2}}
    assert_sent_as_previewed(outcome)
    (content,) = outcome.preview.contents
    title = content["texts"][0]["title"]
    assert title.startswith("【演练】乌兰察布市气象台") and title.endswith("…")
    assert [len(p.data) <= MAX_PLAINTEXT for p in push_service.received] == [True, True]
    assert all(p.payload["texts"] == content["texts"] for p in push_service.received)


async def test_concurrent_subscribes_never_pass_the_maximum(
    tmp_path: Path, push_service: PushServiceStandIn
) -> None:
    # A burst right after the start, when the channel counts the registry first: each request
    # reads the count and writes its row on the store's thread, and none may pass another.
    config = service_config(tmp_path, max_subscriptions=5, changes_per_minute=1000)
    service = BroadcasterService(config)
    server = TestServer(make_app(service))
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:

            async def subscribe(n: int) -> int:
                body = {"subscription": push_service.subscriber(f"s{n}"), "division": ZHUOZI}
                async with session.post("/channels/webpush/subscribe", json=body) as response:
                    return response.status

            statuses = await asyncio.gather(*(subscribe(n) for n in range(40)))
        rows = await service.database.run(service.targets.for_channel, "webpush")
    finally:
        await server.close()
    assert Counter(statuses) == {201: 5, 503: 35}
    assert len(rows) == 5
