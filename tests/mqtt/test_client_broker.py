"""MqttClient against a real Mosquitto, with paho-mqtt as the independent other side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from drivers.mqtt import (
    MqttClient,
    MqttConnectionError,
    MqttTopicError,
    MqttUsageError,
    MqttWill,
)
from drivers.mqtt.testing import MosquittoBroker, free_port
from tests.mqtt.support import PahoPeer

Inbox = asyncio.Queue[tuple[str, bytes, bool]]


@asynccontextmanager
async def session(
    broker: MosquittoBroker, client_id: str, **options: Any
) -> AsyncIterator[tuple[MqttClient, Inbox]]:
    """A connected MqttClient whose messages land in a queue; disconnected on exit."""
    inbox: Inbox = asyncio.Queue()
    client = MqttClient(
        broker.host,
        broker.port,
        client_id,
        on_message=lambda topic, payload, retain: inbox.put_nowait((topic, payload, retain)),
        **options,
    )
    await client.connect()
    try:
        yield client, inbox
    finally:
        await client.disconnect()


async def next_item(inbox: Inbox) -> tuple[str, bytes, bool]:
    return await asyncio.wait_for(inbox.get(), 5)


async def test_qos0_and_qos1_publishes_reach_a_paho_subscriber(broker: MosquittoBroker) -> None:
    big = bytes(range(256)) * 4096
    async with PahoPeer(broker.host, broker.port, "listener") as paho:
        assert await paho.subscribe("警报/#", 1) == [1]
        async with session(broker, "box-1") as (client, _):
            await client.publish("警报/乌兰察布/集宁区", "暴雨红色预警".encode(), qos=0)
            await client.publish("警报/big", big, qos=1)
            await client.publish("警报/retained", b"r", qos=1, retain=True)
        assert await paho.next_message() == (
            "警报/乌兰察布/集宁区",
            "暴雨红色预警".encode(),
            False,
            0,
        )
        assert await paho.next_message() == ("警报/big", big, False, 1)
        assert await paho.next_message() == ("警报/retained", b"r", False, 1)


async def test_wildcard_subscriptions_receive_paho_publishes(broker: MosquittoBroker) -> None:
    async with (
        session(broker, "box-2") as (client, inbox),
        PahoPeer(broker.host, broker.port, "officer") as paho,
    ):
        assert await client.subscribe([("boxes/+/cmd", 1), ("alerts/#", 0)]) == [1, 0]
        await paho.publish("boxes/other/status", b"not for us", qos=1)
        await paho.publish("boxes/150902-001/cmd", b"play", qos=1)
        await paho.publish("alerts", b"parent level", qos=1)
        await paho.publish("alerts/150902/a", b"deep", qos=0)
        assert await next_item(inbox) == ("boxes/150902-001/cmd", b"play", False)
        assert await next_item(inbox) == ("alerts", b"parent level", False)
        assert await next_item(inbox) == ("alerts/150902/a", b"deep", False)
        await client.unsubscribe(["alerts/#"])
        await paho.publish("alerts/x", b"after unsubscribe", qos=1)
        await paho.publish("boxes/7/cmd", b"marker", qos=1)
        assert await next_item(inbox) == ("boxes/7/cmd", b"marker", False)


async def test_a_retained_message_is_delivered_on_subscribe(broker: MosquittoBroker) -> None:
    async with PahoPeer(broker.host, broker.port, "config-writer") as paho:
        await paho.publish("config/150902", b"volume=80", qos=1, retain=True)
    async with session(broker, "box-3") as (client, inbox):
        assert await client.subscribe([("config/+", 1)]) == [1]
        assert await next_item(inbox) == ("config/150902", b"volume=80", True)


async def test_the_will_is_published_after_abort_and_not_after_disconnect(
    broker: MosquittoBroker,
) -> None:
    async with PahoPeer(broker.host, broker.port, "presence-watch") as paho:
        await paho.subscribe("presence/#", 1)
        # The graceful one first: a will it wrongly left would arrive before the other's.
        for box, graceful in (("b", True), ("a", False)):
            client = MqttClient(
                broker.host,
                broker.port,
                f"box-{box}",
                will=MqttWill(f"presence/{box}", b"offline", qos=1),
            )
            await client.connect()
            if graceful:
                await client.disconnect()
            else:
                client.abort()
            await client.wait_closed()
        assert await paho.next_message() == ("presence/a", b"offline", False, 1)
        await paho.publish("presence/marker", b"end", qos=1)
        assert await paho.next_message() == ("presence/marker", b"end", False, 1)


async def test_a_persistent_session_keeps_subscriptions_and_queues_qos1(
    broker: MosquittoBroker,
) -> None:
    async with session(broker, "box-p", clean_session=False) as (client, _):
        await client.subscribe([("inbox/p", 1)])
    async with PahoPeer(broker.host, broker.port, "dispatcher") as paho:
        await paho.publish("inbox/p", b"queued while offline", qos=1)
    inbox: Inbox = asyncio.Queue()
    again = MqttClient(
        broker.host,
        broker.port,
        "box-p",
        clean_session=False,
        on_message=lambda topic, payload, retain: inbox.put_nowait((topic, payload, retain)),
    )
    assert await again.connect() is True
    try:
        assert await next_item(inbox) == ("inbox/p", b"queued while offline", False)
    finally:
        await again.disconnect()


async def test_keepalive_holds_an_idle_connection_open(broker: MosquittoBroker) -> None:
    async with session(broker, "box-idle", keepalive_s=1) as (client, inbox):
        await client.subscribe([("idle/echo", 1)])
        closed = asyncio.ensure_future(client.wait_closed())
        await asyncio.sleep(3)
        assert not closed.done()
        assert client.is_connected
        await client.publish("idle/echo", b"still here", qos=1)
        assert await next_item(inbox) == ("idle/echo", b"still here", False)
    await closed


async def test_bad_requests_are_refused_before_anything_is_sent(broker: MosquittoBroker) -> None:
    async with session(broker, "box-strict") as (client, _):
        with pytest.raises(MqttTopicError, match="wildcard"):
            await client.publish("alerts/+", b"x")
        with pytest.raises(MqttTopicError, match="whole level"):
            await client.subscribe([("alerts/a#", 0)])
        with pytest.raises(ValueError, match="QoS 2"):
            await client.publish("alerts/a", b"x", qos=2)
        await client.publish("alerts/a", b"fine", qos=1)


async def test_an_unreachable_broker_is_a_connection_error() -> None:
    client = MqttClient("127.0.0.1", free_port(), "box-lonely", connect_timeout_s=2)
    with pytest.raises(MqttConnectionError, match="cannot reach"):
        await client.connect()
    with pytest.raises(MqttConnectionError, match="not connected"):
        await client.publish("a", b"x")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keepalive_s": 70000}, "keep alive"),
        ({"password": "secret"}, "user name"),
        ({"will": MqttWill("presence/#", b"x")}, "wildcard"),
        ({"will": MqttWill("presence/a", b"x", qos=3)}, "will QoS"),
    ],
)
def test_bad_settings_are_refused_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(MqttUsageError, match=message):
        MqttClient("127.0.0.1", 1883, "box-bad", **options)


async def test_disconnect_before_connect_returns_at_once() -> None:
    client = MqttClient("127.0.0.1", free_port(), "box-idle")
    await asyncio.wait_for(client.disconnect(), 1)
    await client.wait_closed()
    with pytest.raises(MqttUsageError, match="at least one"):
        await client.subscribe([])
