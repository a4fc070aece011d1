"""The web push channel against the local push-service stand-in: the contract suite, what a
push carries (decrypted with the subscriber's keys), and each answer a push service gives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from broadcaster.cap import MsgType, Severity, Status, Urgency
from broadcaster.channel import (
    Channel,
    ConfirmationOutcome,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.delivery import Target
from broadcaster.divisions import DivisionTree
from broadcaster.errors import (
    DeviceTimeoutError,
    DeviceUnavailableError,
    RetryableError,
    TargetRejectedError,
)
from broadcaster.rendition import render
from broadcaster.testing.contract import ChannelContract, contract_delivery
from broadcaster.testing.targets import MemoryTargets
from channels.webpush import WebPushChannel
from channels.webpush.channel import ChannelNotReadyError
from channels.webpush.endpoints import EndpointPolicy
from channels.webpush.enrolment import build_target
from channels.webpush.payload import ack_token, topic_for
from tests.webpush.conftest import ZHUOZI_TOWNSHIP, ChannelFactory
from tests.webpush.pushservice import PushServiceStandIn, ReceivedPush

LAB = EndpointPolicy(allow_http=True, allow_private=True)


def subscribe(
    targets: MemoryTargets, divisions: DivisionTree, service: PushServiceStandIn, name: str
) -> Target:
    body = {"subscription": service.subscriber(name), "division": ZHUOZI_TOWNSHIP}
    target = build_target(
        body,
        channel="push",
        tree=divisions,
        languages=("zh-CN", "mn", "en"),
        policy=LAB,
        previous=None,
    )
    targets.targets[target.id] = target
    return target


@pytest.fixture
async def phone_acks(push_service: PushServiceStandIn) -> AsyncIterator[list[str]]:
    """Make the stand-in play the phone: every decrypted push is acked to ``ack_url[0]``."""
    ack_url: list[str] = []
    async with aiohttp.ClientSession() as session:

        async def post_ack(push: ReceivedPush) -> None:
            fields = {k: push.payload[k] for k in ("alert", "delivery", "sub", "ack")}
            async with session.post(ack_url[0], json=fields) as response:
                assert response.status == 204

        push_service.on_push = post_ack
        yield ack_url


class TestWebPushChannelContract(ChannelContract):
    @pytest.fixture
    def targets(self) -> MemoryTargets:
        return MemoryTargets()

    @pytest.fixture
    async def channel(
        self, make_channel: ChannelFactory, targets: MemoryTargets, phone_acks: list[str]
    ) -> AsyncIterator[Channel]:
        channel = make_channel(targets)
        server = TestServer(channel.web_app())
        await server.start_server()
        phone_acks.append(str(server.make_url("/ack")))
        yield channel
        await server.close()

    @pytest.fixture
    def reachable_target(
        self, targets: MemoryTargets, divisions: DivisionTree, push_service: PushServiceStandIn
    ) -> Target:
        return subscribe(targets, divisions, push_service, "phone-1")

    @pytest.fixture
    def delivery_sink(self, push_service: PushServiceStandIn) -> PushSink:
        return PushSink(push_service)

    @pytest_asyncio.fixture
    async def permanent_failure(
        self,
        make_channel: ChannelFactory,
        divisions: DivisionTree,
        push_service: PushServiceStandIn,
    ) -> AsyncIterator[tuple[Channel, Target]]:
        async with scripted(make_channel, divisions, push_service, "gone", 410) as failing:
            yield failing

    @pytest_asyncio.fixture
    async def transient_failure(
        self,
        make_channel: ChannelFactory,
        divisions: DivisionTree,
        push_service: PushServiceStandIn,
    ) -> AsyncIterator[tuple[Channel, Target]]:
        async with scripted(make_channel, divisions, push_service, "busy", 503) as failing:
            yield failing


class PushSink:
    """The push service stand-in: a delivery is seen once a push for it was decrypted."""

    def __init__(self, push_service: PushServiceStandIn) -> None:
        self.push_service = push_service

    async def received(self, delivery: OutgoingDelivery) -> bool:
        return any(p.payload.get("delivery") == delivery.id for p in self.push_service.received)


@asynccontextmanager
async def scripted(
    make_channel: ChannelFactory,
    divisions: DivisionTree,
    push_service: PushServiceStandIn,
    name: str,
    status: int,
) -> AsyncIterator[tuple[Channel, Target]]:
    """A started channel and a subscriber whose push service always answers ``status``."""
    targets = MemoryTargets()
    target = subscribe(targets, divisions, push_service, name)
    push_service.script[name] = [status]
    channel = make_channel(targets)
    await channel.start()
    try:
        yield channel, target
    finally:
        await channel.stop()


@pytest.fixture
async def started(make_channel: ChannelFactory) -> AsyncIterator[tuple[WebPushChannel, Any]]:
    targets = MemoryTargets()
    channel = make_channel(targets)
    await channel.start()
    yield channel, targets
    await channel.stop()


async def test_push_is_encrypted_signed_and_carries_the_alert(
    started: tuple[WebPushChannel, MemoryTargets],
    divisions: DivisionTree,
    push_service: PushServiceStandIn,
) -> None:
    channel, targets = started
    target = subscribe(targets, divisions, push_service, "p1")
    delivery = contract_delivery(target, delivery_id=9)
    result = await channel.send(delivery)
    assert result.outcome is SendOutcome.ACCEPTED
    assert result.provider_ref == "/msg/p1/1"
    [push] = push_service.received
    payload, headers = push.payload, push.headers
    assert payload["alert"] == delivery.message.id
    assert payload["delivery"] == 9
    assert payload["url"] == f"https://alerts.example.cn/alerts/{delivery.message.id}"
    assert payload["test"] is True
    assert payload["level"] == "yellow"
    [text] = payload["texts"]
    assert text["title"] == "【测试】大风黄色预警"
    assert text["body"].startswith("请注意防范。")
    assert text["area"] == "测试区"
    sub = target.id.removeprefix("push-")
    assert payload["ack"] == ack_token(target.params["secret"], 9, delivery.message.id, sub)
    assert 3500 <= int(headers["TTL"]) <= 3600
    assert headers["Urgency"] == "high"
    assert headers["Topic"] == topic_for(delivery.message.alert)
    assert push_service.rejected == []


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_subscription_fails_and_is_removed(
    started: tuple[WebPushChannel, MemoryTargets],
    divisions: DivisionTree,
    push_service: PushServiceStandIn,
    status: int,
) -> None:
    channel, targets = started
    target = subscribe(targets, divisions, push_service, "old")
    push_service.script["old"] = [status]
    with pytest.raises(TargetRejectedError, match=f"HTTP {status}"):
        await channel.send(contract_delivery(target))
    assert target.id not in targets.targets


async def test_429_is_retried_after_the_given_delay(
    started: tuple[WebPushChannel, MemoryTargets],
    divisions: DivisionTree,
    push_service: PushServiceStandIn,
) -> None:
    channel, targets = started
    target = subscribe(targets, divisions, push_service, "busy")
    push_service.script["busy"] = [429]
    with pytest.raises(RetryableError) as error:
        await channel.send(contract_delivery(target))
    assert error.value.retry_after == 7.0
    assert target.id in targets.targets
    assert (await channel.send(contract_delivery(target))).outcome is SendOutcome.ACCEPTED


async def test_server_errors_and_timeouts_are_retryable(
    make_channel: ChannelFactory, divisions: DivisionTree, push_service: PushServiceStandIn
) -> None:
    targets = MemoryTargets()
    channel = make_channel(targets, timeout_seconds=0.2)
    await channel.start()
    try:
        target = subscribe(targets, divisions, push_service, "flaky")
        push_service.script["flaky"] = [500, 503, 1.0]
        for _ in range(2):
            with pytest.raises(RetryableError, match="HTTP 50"):
                await channel.send(contract_delivery(target))
        with pytest.raises(DeviceTimeoutError):
            await channel.send(contract_delivery(target))
        service = push_service.base_url.removeprefix("http://")
        health = await channel.health()
        assert health.ok, "one push service's failures are not the channel's"
        assert health.devices[service]["failed"] == 3
        assert "no answer" in health.devices[service]["last_error"]
        assert (await channel.send(contract_delivery(target))).outcome is SendOutcome.ACCEPTED
        health = await channel.health()
        assert health.devices[service] | {"updated_at": 0} == {
            "sent": 1,
            "failed": 3,
            "last_error": "",
            "updated_at": 0,
        }
        assert "1 sent, 3 failed; 0 of 1 push services failing" in health.detail
    finally:
        await channel.stop()


async def test_unreachable_push_service_is_retryable(
    started: tuple[WebPushChannel, MemoryTargets], divisions: DivisionTree
) -> None:
    channel, targets = started
    nowhere = PushServiceStandIn()
    nowhere.base_url = "http://127.0.0.1:9"
    target = subscribe(targets, divisions, nowhere, "x")
    with pytest.raises(DeviceUnavailableError):
        await channel.send(contract_delivery(target))


async def test_a_target_without_keys_is_rejected(
    started: tuple[WebPushChannel, MemoryTargets],
) -> None:
    channel, _ = started
    target = Target(id="push-x", channel="push", name="x", address="https://push.example/x")
    with pytest.raises(TargetRejectedError, match="not a push subscription"):
        await channel.send(contract_delivery(target))


async def test_concurrent_sends_share_encryption_and_bad_keys_fail_alone(
    started: tuple[WebPushChannel, MemoryTargets],
    divisions: DivisionTree,
    push_service: PushServiceStandIn,
) -> None:
    channel, targets = started
    good = [subscribe(targets, divisions, push_service, f"p{n}") for n in range(20)]
    broken = replace(good[0], id="push-broken", params={**good[0].params, "auth": "AAAA"})
    deliveries = [contract_delivery(t, delivery_id=n + 1) for n, t in enumerate([*good, broken])]
    outcomes = await asyncio.gather(*(channel.send(d) for d in deliveries), return_exceptions=True)
    for outcome in outcomes[:-1]:
        assert isinstance(outcome, SendResult) and outcome.outcome is SendOutcome.ACCEPTED
    assert isinstance(outcomes[-1], TargetRejectedError)
    assert "16 bytes" in str(outcomes[-1])
    assert sorted(p.payload["delivery"] for p in push_service.received) == list(range(1, 21))


async def test_send_before_start_is_retryable(make_channel: ChannelFactory) -> None:
    channel = make_channel()
    target = Target(id="push-x", channel="push", name="x")
    with pytest.raises(ChannelNotReadyError):
        await channel.send(contract_delivery(target))
    assert not (await channel.health()).ok


async def test_update_replaces_by_topic_and_extreme_is_urgent(
    started: tuple[WebPushChannel, MemoryTargets],
    divisions: DivisionTree,
    push_service: PushServiceStandIn,
) -> None:
    channel, targets = started
    target = subscribe(targets, divisions, push_service, "p1")
    first = contract_delivery(target, delivery_id=1)
    original = first.message.alert
    info = replace(original.infos[0], urgency=Urgency.EXPECTED, severity=Severity.EXTREME)
    update = replace(
        original,
        identifier=original.identifier + ".u",
        status=Status.ACTUAL,
        msg_type=MsgType.UPDATE,
        references=[original.reference],
        infos=[info],
    )
    message = replace(first.message, id="a-update", alert=update, rendition=render(update))
    second = replace(first, id=2, message=message)
    await channel.send(first)
    await channel.send(second)
    one, two = push_service.received
    assert one.headers["Topic"] == two.headers["Topic"]
    assert two.headers["Urgency"] == "high"
    assert two.payload["level"] == "red"
    assert two.payload["type"] == "Update"
    assert two.payload["texts"][0]["title"].startswith("【更新】")


async def test_ack_confirms_only_with_the_right_token(
    started: tuple[WebPushChannel, MemoryTargets],
    divisions: DivisionTree,
    push_service: PushServiceStandIn,
) -> None:
    channel, targets = started
    target = subscribe(targets, divisions, push_service, "p1")
    sub = target.id.removeprefix("push-")
    token = ack_token(target.params["secret"], 5, "a1", sub)
    assert not await channel.acknowledge({"alert": "a1", "delivery": 6, "sub": sub, "ack": token})
    assert not await channel.acknowledge({"alert": "a1", "delivery": 5, "sub": "zz", "ack": token})
    assert await channel.acknowledge({"alert": "a1", "delivery": 5, "sub": sub, "ack": token})
    confirmation = await asyncio.wait_for(anext(aiter(channel.confirmations())), 1)
    assert confirmation.delivery_id == 5
    assert confirmation.outcome is ConfirmationOutcome.CONFIRMED


async def test_ttl_follows_the_expiry(
    started: tuple[WebPushChannel, MemoryTargets],
    divisions: DivisionTree,
    push_service: PushServiceStandIn,
) -> None:
    channel, targets = started
    target = subscribe(targets, divisions, push_service, "p1")
    delivery = replace(contract_delivery(target), expires_at=time.time() + 600)
    await channel.send(delivery)
    assert 590 <= int(push_service.received[0].headers["TTL"]) <= 600
