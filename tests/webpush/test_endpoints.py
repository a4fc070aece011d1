"""Push endpoints that would make the server connect to itself or its network (server-side
request forgery) are refused when a browser subscribes and again when an alert is sent:
loopback, private, link-local, multicast, unspecified and reserved addresses in every spelling,
names that resolve there (also after subscribing: DNS rebinding), user names in the URL, odd
ports, and redirects. A loopback listener shows that no connection is ever made. The lab switch
``allow_private_endpoints`` lets a local push-service stand-in through, and only it."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.resolver import ThreadedResolver
from aiohttp.test_utils import TestServer

from broadcaster.delivery import Target
from broadcaster.errors import DeviceUnavailableError, TargetRejectedError
from broadcaster.testing.contract import contract_delivery
from broadcaster.testing.targets import MemoryTargets
from channels.webpush import WebPushChannel
from channels.webpush.client import EndpointRefusedError
from channels.webpush.endpoints import (
    EndpointError,
    EndpointPolicy,
    address_problem,
    check_endpoint,
    check_resolved,
)
from channels.webpush.enrolment import SubscriptionError
from tests.webpush.conftest import ZHUOZI_TOWNSHIP, ChannelFactory
from tests.webpush.hosts import HostsResolver
from tests.webpush.pushservice import PushServiceStandIn, SubscriberKeys

PUBLIC_IP = "93.184.215.14"
TRAP_IP = "127.83.61.7"
HOSTS = {
    "fcm.push.test": [PUBLIC_IP],
    "trap.evil.test": [TRAP_IP],
    "mixed.evil.test": [PUBLIC_IP, TRAP_IP],
    "mapped.evil.test": [f"::ffff:{TRAP_IP}"],
    "metadata.evil.test": ["169.254.169.254"],
    "rebind.evil.test": [PUBLIC_IP],
}
REFUSED = [
    "https://127.0.0.1:8443/wp/x",
    "https://127.0.0.1/wp/x",
    "https://[::1]/wp/x",
    "https://0x7f000001/wp/x",
    "https://2130706433/wp/x",
    "https://127.1/wp/x",
    "https://0177.0.0.1/wp/x",
    "https://[::ffff:127.0.0.1]/wp/x",
    "https://[::ffff:7f00:1]/wp/x",
    "https://[2002:7f00:1::1]/wp/x",
    "https://[64:ff9b::a00:1]/wp/x",
    "https://10.1.2.3/wp/x",
    "https://172.16.0.1/wp/x",
    "https://192.168.1.1/wp/x",
    "https://100.64.0.1/wp/x",
    "https://169.254.169.254/latest/meta-data",
    "https://[fe80::1]/wp/x",
    "https://[fc00::1]/wp/x",
    "https://224.0.0.1/wp/x",
    "https://[ff02::1]/wp/x",
    "https://0.0.0.0/wp/x",
    "https://[::]/wp/x",
    "https://240.0.0.1/wp/x",
    "https://255.255.255.255/wp/x",
    "https://192.0.2.1/wp/x",
    "https://localhost/wp/x",
    "https://trap.evil.test/wp/x",
    "https://mixed.evil.test/wp/x",
    "https://mapped.evil.test/wp/x",
    "https://metadata.evil.test/wp/x",
    "https://user:pw@fcm.push.test/wp/x",
    "https://user@fcm.push.test/wp/x",
    "https://fcm.push.test:8443/wp/x",
    "https://fcm.push.test:99999/wp/x",
    "http://fcm.push.test/wp/x",
    "https://bad_name!.test/wp/x",
    "ftp://fcm.push.test/wp/x",
]


@pytest.fixture
def listener() -> Iterator[list[tuple[str, int]]]:
    """A TCP listener on a loopback address at the https port: who connected to it."""
    import socket
    import threading

    accepted: list[tuple[str, int]] = []
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((TRAP_IP, 443))
    server.listen()
    server.settimeout(0.05)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, peer = server.accept()
            except TimeoutError:
                continue
            accepted.append(peer)
            connection.close()

    thread = threading.Thread(target=accept, name="trap-listener")
    thread.start()
    yield accepted
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
async def guarded(
    make_channel: ChannelFactory,
) -> AsyncIterator[tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets, HostsResolver]]:
    """The channel as deployed (no private endpoints, https only), behind its public app."""
    targets = MemoryTargets()
    channel = make_channel(
        targets,
        allow_http_endpoints=False,
        allow_private_endpoints=False,
        changes_per_minute=1000,
    )
    hosts = HostsResolver({name: list(addresses) for name, addresses in HOSTS.items()})
    channel.resolver = hosts
    server = TestServer(channel.web_app(), host="127.0.0.1")
    await server.start_server()
    await channel.start()
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
        yield session, channel, targets, hosts
    await channel.stop()
    await server.close()


def _stored(address: str, keys: dict[str, str]) -> Target:
    """A subscription as the registry holds it, whatever its endpoint."""
    return Target(
        id="push-t", channel="push", name="t", address=address, params=keys | {"secret": "s"}
    )


def _request(endpoint: str) -> dict[str, Any]:
    return {"subscription": SubscriberKeys().subscription(endpoint), "division": ZHUOZI_TOWNSHIP}


async def test_subscriptions_to_non_public_endpoints_are_refused(
    guarded: tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets, HostsResolver],
) -> None:
    session, _, targets, _ = guarded
    for endpoint in REFUSED:
        async with session.post("/subscribe", json=_request(endpoint)) as response:
            body = await response.json()
            assert response.status == 400, (endpoint, body)
            assert body["error"].startswith("subscription.endpoint: "), (endpoint, body)
    assert targets.targets == {}
    async with session.post("/subscribe", json=_request("https://fcm.push.test/wp/x")) as r:
        assert r.status == 201, await r.json()
    async with session.post("/subscribe", json=_request(f"https://{PUBLIC_IP}/wp/y")) as r:
        assert r.status == 201, await r.json()
    assert len(targets.targets) == 2
    for endpoint in ("https://trap.evil.test/wp/z", "https://[::1]/wp/z"):
        moved = {"old_endpoint": "https://fcm.push.test/wp/x"} | _request(endpoint)
        async with session.post("/renew", json=moved) as r:
            assert r.status == 400 and "endpoint" in (await r.json())["error"]
    assert {t.address for t in targets.targets.values()} == {
        "https://fcm.push.test/wp/x",
        f"https://{PUBLIC_IP}/wp/y",
    }


async def test_refusals_name_the_reason(
    guarded: tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets, HostsResolver],
) -> None:
    session, _, _, _ = guarded
    reasons = {
        "https://0x7f000001/": "is a loopback address",
        "https://[::ffff:127.0.0.1]/": "loopback address",
        "https://localhost/": "loopback name",
        "https://push.localhost./": "loopback name",
        "https://mixed.evil.test/": f"resolves to {TRAP_IP}, a loopback address",
        "https://user:pw@fcm.push.test/": "must not carry a user name or password",
        "https://fcm.push.test:8443/": "must use the https port 443",
        "https://169.254.169.254/": "a link-local address",
    }
    for endpoint, reason in reasons.items():
        async with session.post("/subscribe", json=_request(endpoint)) as response:
            assert reason in (await response.json())["error"], endpoint


async def test_names_are_checked_with_the_system_resolver() -> None:
    with pytest.raises(EndpointError, match=r"localhost resolves to (127\.0\.0\.1|::1)"):
        await check_resolved("localhost", ThreadedResolver())
    await check_resolved("no-such-name.invalid", ThreadedResolver())


def test_address_classes() -> None:
    for public in (PUBLIC_IP, "2606:4700::1111", "1.1.1.1"):
        assert address_problem(ipaddress.ip_address(public)) is None, public
    for private in ("::ffff:10.0.0.1", "2002:a00:1::", "64:ff9b::7f00:1", "198.18.0.1"):
        assert address_problem(ipaddress.ip_address(private)) is not None, private
    lab = EndpointPolicy(allow_http=True, allow_private=True)
    check_endpoint("http://127.0.0.1:8080/push/x", lab)
    with pytest.raises(EndpointError, match="user name"):
        check_endpoint("http://user:pw@127.0.0.1:8080/push/x", lab)


async def test_sends_refuse_what_a_name_resolves_to_now(
    guarded: tuple[aiohttp.ClientSession, WebPushChannel, MemoryTargets, HostsResolver],
    listener: list[tuple[str, int]],
) -> None:
    """DNS rebinding: the name was public at subscription and points at loopback at send."""
    session, channel, targets, hosts = guarded
    async with session.post("/subscribe", json=_request("https://rebind.evil.test/wp/x")) as r:
        assert r.status == 201
    (target,) = targets.targets.values()
    for answer in ([TRAP_IP], [PUBLIC_IP, TRAP_IP], [f"::ffff:{TRAP_IP}"]):
        hosts.table["rebind.evil.test"] = answer
        with pytest.raises(EndpointRefusedError, match=r"resolves to .*127\.83\.61\.7"):
            await channel.send(contract_delivery(target))
    stored = replace(target, address=f"https://{TRAP_IP}/wp/x")
    with pytest.raises(EndpointRefusedError, match="loopback"):
        await channel.send(contract_delivery(stored))
    userinfo = replace(target, address="https://user:pw@fcm.push.test/wp/x")
    with pytest.raises(EndpointRefusedError, match="user name") as refused:
        await channel.send(contract_delivery(userinfo))
    assert "pw" not in str(refused.value)
    await asyncio.sleep(0.2)
    assert listener == []
    health = await channel.health()
    assert health.ok, "a subscriber's endpoint does not make the channel unhealthy"
    assert "refused" in health.devices["rebind.evil.test"]["last_error"]
    assert "user name" in health.devices["fcm.push.test"]["last_error"]
    assert "pw" not in str(health.devices)


async def test_the_lab_switch_lets_the_server_reach_loopback(
    make_channel: ChannelFactory,
    listener: list[tuple[str, int]],
) -> None:
    """The control for the test above: with private endpoints allowed, the same target is
    connected to (the listener sees it), so the refusals are the guard's doing."""
    channel = make_channel(MemoryTargets(), allow_private_endpoints=True)
    channel.resolver = HostsResolver({"rebind.evil.test": [TRAP_IP]})
    await channel.start()
    try:
        keys = SubscriberKeys().subscription("https://rebind.evil.test/wp/x")
        target = _stored(keys["endpoint"], keys["keys"])
        with pytest.raises(DeviceUnavailableError):
            await channel.send(contract_delivery(target))
    finally:
        await channel.stop()
    await asyncio.sleep(0.2)
    assert listener, "the lab switch let the server connect"


async def test_the_stand_in_on_loopback_needs_the_lab_switch(
    make_channel: ChannelFactory, push_service: PushServiceStandIn
) -> None:
    endpoint = push_service.subscriber("phone")["endpoint"]
    keys = push_service.subscriber("phone")["keys"]
    target = _stored(endpoint, keys)
    deployed = make_channel(MemoryTargets(), allow_private_endpoints=False)
    await deployed.start()
    try:
        with pytest.raises(EndpointRefusedError, match="port 443"):
            await deployed.send(contract_delivery(target))
        body = {"subscription": {"endpoint": endpoint, "keys": keys}, "division": ZHUOZI_TOWNSHIP}
        with pytest.raises(SubscriptionError, match="port 443"):
            await deployed.enrol(body)
    finally:
        await deployed.stop()
    assert push_service.received == []
    lab = make_channel(MemoryTargets(), allow_private_endpoints=True)
    await lab.start()
    try:
        result = await lab.send(contract_delivery(target))
    finally:
        await lab.stop()
    assert result.provider_ref and len(push_service.received) == 1


async def test_redirects_are_not_followed(
    make_channel: ChannelFactory, push_service: PushServiceStandIn
) -> None:
    """A push service (here on loopback, lab switch on) that redirects elsewhere on loopback:
    the server does not follow, and the redirect target sees nothing."""

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{push_service.base_url}/push/phone")

    app = web.Application()
    app.router.add_post("/push/{name}", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    keys = push_service.subscriber("phone")["keys"]
    target = _stored(str(server.make_url("/push/r")), keys)
    channel = make_channel(MemoryTargets(), allow_private_endpoints=True)
    await channel.start()
    try:
        with pytest.raises(TargetRejectedError, match="redirects are not followed"):
            await channel.send(contract_delivery(target))
    finally:
        await channel.stop()
        await server.close()
    assert push_service.received == []
