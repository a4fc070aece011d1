"""MqttClient keeps its session through a message over its maximum packet size: the message
is read past without being held, acknowledged (PUBACK at QoS 1, MQTT 3.1.1 section 4.3.2),
logged and counted, never delivered, so a broker keeping a persistent session does not send it
again on every reconnect (4.4). A broker stand-in on 127.0.0.1 checks the wire, a real
Mosquitto the persistent session."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from asyncio import StreamReader, StreamWriter
from collections.abc import Awaitable, Callable

import pytest

from drivers.mqtt import (
    Connack,
    MqttClient,
    MqttDecoder,
    MqttProtocolError,
    Puback,
    Publish,
)
from drivers.mqtt.packets import encode_remaining_length
from drivers.mqtt.testing import MosquittoBroker
from tests.mqtt.support import HostilePeer, Script

Inbox = asyncio.Queue[tuple[str, bytes, bool]]
TOPIC = "boxes/b1/cmd"
LIMIT = 4096


def sized(total: int, packet_id: int, retain: bool = False) -> Publish:
    """A QoS 1 PUBLISH to TOPIC whose encoded packet is ``total`` bytes (128 to 16,383) long."""
    empty = len(Publish(TOPIC, b"", 1, retain, packet_id).encode()) + 1  # 2-byte length
    packet = Publish(TOPIC, b"a" * (total - empty), 1, retain, packet_id)
    assert len(packet.encode()) == total
    return packet


def stand_in(
    send: Callable[[StreamWriter], Awaitable[None]], acks: int, got: list[Puback]
) -> Script:
    """A broker stand-in: CONNACK, then ``send``, then the client's PUBACKs into ``got``
    until ``acks`` of them have come."""

    async def script(reader: StreamReader, writer: StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(Connack(False, 0).encode())
        await send(writer)
        decoder = MqttDecoder()
        while len(got) < acks and (data := await reader.read(1024)):
            got.extend(p for p in decoder.feed(data) if isinstance(p, Puback))
        while await reader.read(1024):
            pass

    return script


async def box_on(port: int, inbox: Inbox, limit: int = LIMIT) -> MqttClient:
    client = MqttClient(
        "127.0.0.1",
        port,
        "box-b1",
        on_message=lambda topic, payload, retain: inbox.put_nowait((topic, payload, retain)),
        max_packet_bytes=limit,
    )
    await client.connect()
    return client


async def test_a_message_one_byte_over_the_limit_is_acknowledged_and_not_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.mqtt.client")
    over, at_limit = sized(LIMIT + 1, 7, retain=True), sized(LIMIT, 8)
    normal = Publish(TOPIC, b"play", 1, packet_id=9)

    async def send(writer: StreamWriter) -> None:
        writer.write(over.encode() + at_limit.encode())
        await writer.drain()
        writer.write(normal.encode())

    acks: list[Puback] = []
    inbox: Inbox = asyncio.Queue()
    async with HostilePeer(stand_in(send, 3, acks)) as peer:
        client = await box_on(peer.port, inbox)
        assert await asyncio.wait_for(inbox.get(), 5) == (TOPIC, at_limit.payload, False)
        assert await asyncio.wait_for(inbox.get(), 5) == (TOPIC, b"play", False)
        async with asyncio.timeout(5):
            while len(acks) < 3:
                await asyncio.sleep(0.01)
        assert client.is_connected
        await client.disconnect()
    assert acks == [Puback(7), Puback(8), Puback(9)]
    assert inbox.empty()
    assert client.oversized_skipped == 1
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert repr(TOPIC) in warning
    assert f"of {LIMIT + 1} bytes" in warning and f"size of {LIMIT} bytes" in warning


async def test_fifty_megabytes_over_the_wire_cost_the_time_to_read_them_not_memory() -> None:
    """The oversized message streams in 256 KiB writes; what Python allocates meanwhile, on
    both ends of the connection, stays a small fraction of it."""
    size = 50 << 20
    head = Publish(TOPIC, b"", 1, packet_id=11).encode()[2:]  # topic name and packet id
    chunk = memoryview(bytes(256 << 10))
    normal = Publish(TOPIC, b"play", 1, packet_id=12)

    async def send(writer: StreamWriter) -> None:
        writer.write(b"\x32" + encode_remaining_length(len(head) + size) + head)
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        writer.write(normal.encode())

    acks: list[Puback] = []
    inbox: Inbox = asyncio.Queue()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with HostilePeer(stand_in(send, 2, acks)) as peer:
            client = await box_on(peer.port, inbox, limit=1 << 20)
            assert await asyncio.wait_for(inbox.get(), 30) == (TOPIC, b"play", False)
            async with asyncio.timeout(5):
                while len(acks) < 2:
                    await asyncio.sleep(0.01)
            assert client.is_connected
            await client.disconnect()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert acks == [Puback(11), Puback(12)]
    assert client.oversized_skipped == 1
    assert peak < 8 << 20, f"{peak} bytes allocated at the peak for a {size} byte message"


async def test_an_oversized_qos2_message_is_still_a_protocol_error() -> None:
    """This client subscribes at QoS 0 and 1 only; a QoS 2 PUBLISH breaks the protocol at any
    size (MQTT 3.1.1 section 3.8.4)."""

    async def script(reader: StreamReader, writer: StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(Connack(False, 0).encode())
        await reader.read(1024)  # the client's first PUBLISH: CONNACK was read on its own
        writer.write(Publish(TOPIC, bytes(LIMIT), 2, packet_id=3).encode())
        while await reader.read(1024):
            pass

    inbox: Inbox = asyncio.Queue()
    async with HostilePeer(script) as peer:
        client = await box_on(peer.port, inbox)
        await client.publish("boxes/b1/up", b"hello", qos=0)
        with pytest.raises(MqttProtocolError, match="QoS 2"):
            await asyncio.wait_for(client.wait_closed(), 5)
    assert client.oversized_skipped == 0


class Box:
    """Box b1's persistent session (clean session off) with a small packet limit."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.broker = broker
        self.inbox: Inbox = asyncio.Queue()

    async def connect(self) -> MqttClient:
        client = MqttClient(
            self.broker.host,
            self.broker.port,
            "box-b1",
            on_message=lambda topic, payload, retain: self.inbox.put_nowait(
                (topic, payload, retain)
            ),
            clean_session=False,
            max_packet_bytes=LIMIT,
        )
        await client.connect()
        return client

    async def next(self) -> tuple[str, bytes, bool]:
        return await asyncio.wait_for(self.inbox.get(), 5)


async def server_on(broker: MosquittoBroker) -> MqttClient:
    server = MqttClient(broker.host, broker.port, "broadcaster-hub")
    await server.connect()
    return server


async def test_a_queued_oversized_message_does_not_come_again_after_a_reconnect(
    broker: MosquittoBroker,
) -> None:
    box = Box(broker)
    first = await box.connect()
    await first.subscribe([(TOPIC, 1)])
    await first.disconnect()
    server = await server_on(broker)
    await server.publish(TOPIC, bytes(3 * LIMIT), qos=1)  # queued for the absent box
    await server.publish(TOPIC, b"play", qos=1)

    second = await box.connect()
    assert await box.next() == (TOPIC, b"play", False)
    assert second.is_connected and second.oversized_skipped == 1
    await second.disconnect()

    third = await box.connect()
    await server.publish(TOPIC, b"stop", qos=1)
    # Mosquitto sends a session's queued messages in order: an unacknowledged one first.
    assert await box.next() == (TOPIC, b"stop", False)
    assert third.is_connected and third.oversized_skipped == 0
    await third.disconnect()
    await server.disconnect()


async def test_an_oversized_retained_message_leaves_the_session_up(
    broker: MosquittoBroker,
) -> None:
    server = await server_on(broker)
    await server.publish(TOPIC, bytes(3 * LIMIT), qos=1, retain=True)
    box = Box(broker)
    first = await box.connect()
    await first.subscribe([(TOPIC, 1)])  # the retained message comes at once (3.3.1.3)
    await server.publish(TOPIC, b"play", qos=1)
    assert await box.next() == (TOPIC, b"play", False)
    assert first.is_connected and first.oversized_skipped == 1
    await first.disconnect()

    second = await box.connect()
    await server.publish(TOPIC, b"stop", qos=1)
    assert await box.next() == (TOPIC, b"stop", False)
    assert second.oversized_skipped == 0  # acknowledged: not sent to the session again
    # Subscribing again brings the retained message again (3.8.4); it is skipped again.
    await second.subscribe([(TOPIC, 1)])
    await server.publish(TOPIC, b"again", qos=1)
    assert await box.next() == (TOPIC, b"again", False)
    assert second.is_connected and second.oversized_skipped == 1
    await second.disconnect()
    await server.disconnect()
