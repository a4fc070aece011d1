"""The channel's public endpoints over a real socket: the page, the service worker, subscribe,
change of area, unsubscribe, acks, clear 400s for bad requests that store nothing, and a limit
on subscription changes per client (behind a trusted proxy, per resident; an IPv6 client by
its /64) and on the number of subscriptions."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broadcaster.client_limits import forwarded_client
from broadcaster.testing.targets import MemoryTargets
from channels.webpush import WebPushChannel
from channels.webpush.channel import SubscriptionsFullError
from tests.webpush.conftest import HUADE, ZHUOZI, ZHUOZI_TOWNSHIP, ChannelFactory
from tests.webpush.pushservice import SubscriberKeys

ENDPOINT = "https://push.example.com/wp/abc123"


@pytest.fixture
async def site(
    make_channel: ChannelFactory,
) -> AsyncIterator[tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets]]:
    targets = MemoryTargets()
    channel = make_channel(targets, allow_http_endpoints=False)
    server = TestServer(channel.web_app())
    await server.start_server()
    await channel.start()
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
        yield session, channel, targets
    await channel.stop()
    await server.close()


def request(division: str, endpoint: str = ENDPOINT, **extra: Any) -> dict[str, Any]:
    return {"subscription": SubscriberKeys().subscription(endpoint), "division": division} | extra


async def test_page_offers_counties_townships_and_languages(
    site: tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets],
) -> None:
    session, channel, _ = site
    async with session.get("/") as response:
        assert response.status == 200
        html = await response.text()
    match = re.search(r'<script id="config" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    config = json.loads(match.group(1))
    assert config["publicKey"] == channel.public_key
    counties = {a["code"]: a for a in config["areas"]}
    assert len(counties) == 11
    assert counties[ZHUOZI]["name"] == "卓资县"
    assert {"code": ZHUOZI_TOWNSHIP, "name": "黄沟镇"} in counties[ZHUOZI]["townships"]
    assert [lang["code"] for lang in config["languages"]] == ["zh-CN", "mn", "en"]
    assert "乌兰察布市应急管理局" in html and "Warning notifications" in html
    assert 'href="https://alerts.example.cn/alerts"' in html
    assert not re.search(r"(src|href)=\"https?:(?!//alerts.example.cn/alerts\")", html)
    for path, kind in [("/sw.js", "javascript"), ("/static/subscribe.js", "javascript")]:
        async with session.get(path) as response:
            assert response.status == 200 and kind in response.content_type
            assert "showNotification" in await response.text() or path != "/sw.js"
    async with session.get("/key") as response:
        assert (await response.json())["publicKey"] == channel.public_key


async def test_subscribe_change_area_and_unsubscribe(
    site: tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets],
) -> None:
    session, _, targets = site
    body = request(ZHUOZI_TOWNSHIP, languages=["zh-CN", "en"])
    async with session.post("/subscribe", json=body) as response:
        assert response.status == 201
        answer = await response.json()
    assert answer["area"] == "乌兰察布市 / 卓资县 / 黄沟镇"
    target = targets.targets[answer["id"]]
    assert target.division == ZHUOZI_TOWNSHIP and target.address == ENDPOINT
    assert (target.lat, target.lon) == (40.893, 112.571)
    assert target.languages == ("zh-CN", "en")
    assert target.params["p256dh"] == body["subscription"]["keys"]["p256dh"]
    secret = target.params["secret"]
    assert len(secret) >= 24

    async with session.post("/subscribe", json=request(HUADE)) as response:
        assert response.status == 201
        moved = await response.json()
    assert moved["id"] == answer["id"] and list(targets.targets) == [answer["id"]]
    assert targets.targets[answer["id"]].division == HUADE
    assert targets.targets[answer["id"]].params["secret"] == secret

    async with session.post("/unsubscribe", json={"endpoint": ENDPOINT}) as response:
        assert (await response.json()) == {"removed": True}
    assert targets.targets == {}
    async with session.post("/unsubscribe", json={"endpoint": ENDPOINT}) as response:
        assert (await response.json()) == {"removed": False}


async def test_a_renewed_subscription_keeps_its_area_and_secret(
    site: tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets],
) -> None:
    session, _, targets = site
    async with session.post("/subscribe", json=request(ZHUOZI_TOWNSHIP)) as response:
        old_id = (await response.json())["id"]
    secret = targets.targets[old_id].params["secret"]
    new_endpoint = "https://push.example.com/wp/renewed"
    renewed = SubscriberKeys().subscription(new_endpoint)
    body = {"old_endpoint": ENDPOINT, "subscription": renewed}
    async with session.post("/renew", json=body) as response:
        assert response.status == 200
        answer = await response.json()
    [target] = targets.targets.values()
    assert target.id == answer["id"] != old_id
    assert target.address == new_endpoint and target.division == ZHUOZI_TOWNSHIP
    assert target.params["secret"] == secret
    assert target.params["p256dh"] == renewed["keys"]["p256dh"]
    async with session.post("/renew", json=body) as response:
        assert response.status == 404
    async with session.post("/renew", json={"subscription": renewed}) as response:
        assert response.status == 400
        assert "old_endpoint" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not JSON"),
        ([1, 2], "JSON object"),
        ({"division": ZHUOZI}, "subscription"),
        (request(ZHUOZI, endpoint="http://push.example.com/x"), "https URL"),
        (request(ZHUOZI, endpoint="ftp://push.example.com/x"), "https URL"),
        ({"subscription": {"endpoint": ENDPOINT}, "division": ZHUOZI}, "keys"),
        (
            {"subscription": {"endpoint": ENDPOINT, "keys": {"p256dh": "AAAA", "auth": "x"}}},
            "65-byte",
        ),
        (request("150921001001"), "no county or township"),
        (request("159999000000"), "no county or township"),
        (request("12345"), "division"),
        ({**request(ZHUOZI), "division": 150921}, "12-digit"),
        (request(ZHUOZI, languages=["fr"]), "languages"),
    ],
)
async def test_bad_requests_are_refused_and_store_nothing(
    site: tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets], body: Any, message: str
) -> None:
    session, _, targets = site
    data = body if isinstance(body, str) else json.dumps(body)
    async with session.post("/subscribe", data=data) as response:
        assert response.status == 400
        assert message in (await response.json())["error"]
    assert targets.targets == {}


async def test_oversized_body_and_bad_acks(
    site: tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets],
) -> None:
    session, channel, targets = site
    async with session.post("/subscribe", data=b"{" + b" " * 20000 + b"}") as response:
        assert response.status == 413
    zero = {"alert": "a", "delivery": 0, "sub": "s", "ack": "t"}
    async with session.post("/ack", json=zero) as response:
        assert response.status == 400
        assert "positive integer" in (await response.json())["error"]
    async with session.post("/ack", json={"alert": "a", "delivery": 1}) as response:
        assert response.status == 400
    forged = {"alert": "a", "delivery": 1, "sub": "abc", "ack": "t"}
    async with session.post("/ack", json=forged) as response:
        assert response.status == 403
    assert channel._confirmations.empty()
    assert targets.targets == {}


async def test_endpoints_answer_503_until_started(make_channel: ChannelFactory) -> None:
    channel = make_channel()
    server = TestServer(channel.web_app())
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
            for method, path in [("GET", "/"), ("GET", "/key"), ("POST", "/subscribe")]:
                async with session.request(method, path, json=request(ZHUOZI)) as response:
                    assert response.status == 503, path
    finally:
        await server.close()


@asynccontextmanager
async def proxied(
    channel: WebPushChannel, trusted: list[str]
) -> AsyncIterator[aiohttp.ClientSession]:
    """``channel`` mounted as the server mounts it, behind the server's client-address
    middleware trusting ``trusted`` proxies, started; a session to it."""
    root = web.Application(middlewares=[forwarded_client(trusted)])
    root.add_subapp("/channels/push/", channel.web_app())
    server = TestServer(root)
    await server.start_server()
    await channel.start()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
            yield session
    finally:
        await channel.stop()
        await server.close()


async def _changes(
    session: aiohttp.ClientSession, prefix: str, count: int, forwarded_for: str | None = None
) -> list[int]:
    statuses = []
    for n in range(count):
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        body = request(ZHUOZI_TOWNSHIP, endpoint=f"{ENDPOINT}-{forwarded_for}-{n}")
        async with session.post(f"{prefix}subscribe", json=body, headers=headers) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert 1 <= int(response.headers["Retry-After"]) <= 60
                assert "too many requests" in (await response.json())["error"]
    return statuses


@pytest.mark.parametrize("trusted", [[], ["127.0.0.0/8"]])
async def test_subscription_changes_are_limited_per_client(
    make_channel: ChannelFactory, trusted: list[str]
) -> None:
    targets = MemoryTargets()
    async with proxied(make_channel(targets, changes_per_minute=3), trusted) as session:
        prefix = "/channels/push/"
        assert await _changes(session, prefix, 4, "203.0.113.5") == [201, 201, 201, 429]
        # Another resident behind the proxy; without a trusted proxy the header is the
        # client's own claim, so it is ignored and the same address is still limited.
        others = await _changes(session, prefix, 1, "198.51.100.7, 203.0.113.9")
        assert others == ([201] if trusted else [429])
    assert len(targets.targets) == (4 if trusted else 3)


async def test_an_ipv6_client_is_limited_by_its_64(make_channel: ChannelFactory) -> None:
    targets = MemoryTargets()
    channel = make_channel(targets, changes_per_minute=3)
    async with proxied(channel, ["127.0.0.0/8"]) as session:
        prefix = "/channels/push/"
        hopping = [f"2001:db8:1:2:{n:x}::1" for n in range(1, 5)]
        statuses = [(await _changes(session, prefix, 1, ip))[0] for ip in hopping]
        assert statuses == [201, 201, 201, 429]
        assert await _changes(session, prefix, 1, "2001:db8:1:3::1") == [201]
        # IPv4 clients keep their own address each.
        assert await _changes(session, prefix, 1, "203.0.113.5") == [201]
        assert await _changes(session, prefix, 1, "203.0.113.6") == [201]
    assert len(targets.targets) == 6


async def test_new_subscriptions_beyond_the_maximum_get_503(
    make_channel: ChannelFactory,
) -> None:
    targets = MemoryTargets()
    channel = make_channel(targets, allow_http_endpoints=False, max_subscriptions=2)
    server = TestServer(channel.web_app())
    await server.start_server()
    await channel.start()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:

            async def subscribe(endpoint: str, division: str = ZHUOZI) -> int:
                body = request(division, endpoint=endpoint)
                async with session.post("/subscribe", json=body) as response:
                    if response.status == 503:
                        error = (await response.json())["error"]
                        assert "limit of 2 subscriptions" in error
                    return response.status

            assert [await subscribe(f"{ENDPOINT}-{n}") for n in range(3)] == [201, 201, 503]
            assert await subscribe(f"{ENDPOINT}-0", HUADE) == 201, "an existing one may move"
            gone = {"endpoint": f"{ENDPOINT}-1"}
            async with session.post("/unsubscribe", json=gone) as response:
                assert (await response.json()) == {"removed": True}
            assert await subscribe(f"{ENDPOINT}-2") == 201
            assert await subscribe(f"{ENDPOINT}-3") == 503
    finally:
        await channel.stop()
        await server.close()
    assert sorted(t.address for t in targets.targets.values()) == [
        f"{ENDPOINT}-0",
        f"{ENDPOINT}-2",
    ]


async def test_the_maximum_counts_subscriptions_kept_from_before(
    make_channel: ChannelFactory,
) -> None:
    targets = MemoryTargets()
    first = make_channel(targets, max_subscriptions=1)
    await first.start()
    await first.enrol(request(ZHUOZI, endpoint=f"{ENDPOINT}-kept"))
    await first.stop()
    second = make_channel(targets, max_subscriptions=1)
    await second.start()
    try:
        with pytest.raises(SubscriptionsFullError, match="limit of 1 subscriptions"):
            await second.enrol(request(ZHUOZI, endpoint=f"{ENDPOINT}-new"))
    finally:
        await second.stop()
