"""The receiving hot path of MqttClient: many packets per read, packets split across reads,
the PUBACKs of one read in one write and only after their messages were handed over, and a
connection lost with PUBACKs unwritten (the broker sends those messages again)."""

from __future__ import annotations

import asyncio
import random

from drivers.mqtt import (
    Connack,
    MqttClient,
    MqttDecoder,
    Packet,
    Pingresp,
    Puback,
    Publish,
    Suback,
)
from drivers.mqtt.testing import MosquittoBroker
from tests.mqtt.support import HostilePeer, PahoPeer, Script

BURST = 300


def burst(count: int = BURST) -> list[Publish]:
    """QoS 1 messages of several sizes (remaining lengths of 1 and 2 bytes), some retained."""
    return [
        Publish(f"up/box-{n:04d}", bytes([n % 251]) * (n % 190), 1, n % 7 == 0, n + 1, n % 5 == 0)
        for n in range(count)
    ]


def handed_over(decoder: MqttDecoder, reads: list[bytes]) -> list[object]:
    """What ``feed_into`` hands over for ``reads``, PUBLISH as a tuple, others as packets."""
    out: list[object] = []

    def publish(topic: str, payload: bytes, flags: int, packet_id: int) -> None:
        out.append((topic, payload, flags, packet_id))

    for data in reads:
        decoder.feed_into(data, publish, out.append)
    return out


def test_feed_into_hands_over_each_packet_once_in_order_however_the_reads_split() -> None:
    others: list[Packet] = [Puback(9), Pingresp(), Suback(3, (1, 0x80))]
    packets: list[Packet] = [*burst(40), *others, *burst(5)]
    stream = b"".join(p.encode() for p in packets)
    expected = [
        (p.topic, p.payload, p.qos << 1 | p.retain | p.dup << 3, p.packet_id)
        if isinstance(p, Publish)
        else p
        for p in packets
    ]
    assert handed_over(MqttDecoder(), [stream]) == expected
    for cut in range(1, 200):  # every split point of the first packets, one byte at a time too
        assert handed_over(MqttDecoder(), [stream[:cut], stream[cut:]]) == expected
    assert handed_over(MqttDecoder(), [stream[i : i + 1] for i in range(len(stream))]) == expected
    rng = random.Random(7)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(stream)), 30))
        reads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert handed_over(MqttDecoder(), reads) == expected
    assert MqttDecoder().feed(stream) == packets


class CountingClient(MqttClient):
    """Counts the reads it gets and the writes it makes (CONNECT, then only PUBACKs here)."""

    reads = 0
    writes: list[bytes]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.writes = []
        assert isinstance(transport, asyncio.Transport)
        write = transport.write

        def counted(data: bytes | bytearray | memoryview) -> None:
            self.writes.append(bytes(data))
            write(data)

        transport.write = counted  # type: ignore[method-assign]
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        super().data_received(data)


def scripted_broker(reads: list[bytes], pubacks: asyncio.Future[bytes]) -> Script:
    """A broker that answers CONNECT with ``reads`` (each its own write, a moment apart) and
    puts the PUBACKs it gets for the burst into ``pubacks``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        for data in reads:
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(0.0005)
        got = b""
        while len(got) < 4 * BURST:
            got += await reader.read(65536)
        pubacks.set_result(got)
        while await reader.read(1024):
            pass

    return script


async def test_a_burst_split_across_many_reads_is_handed_over_and_acknowledged_once() -> None:
    messages = burst()
    stream = Connack(False, 0).encode() + b"".join(p.encode() for p in messages)
    # Cuts inside headers, topics and payloads.
    reads = [stream[start : start + 97] for start in range(0, len(stream), 97)]
    pubacks: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    received: list[tuple[str, bytes, bool]] = []
    async with HostilePeer(scripted_broker(reads, pubacks)) as peer:
        client = CountingClient(
            "127.0.0.1", peer.port, "box-r", on_message=lambda *m: received.append(m)
        )
        await client.connect()
        got = await asyncio.wait_for(pubacks, 10)
        await client.disconnect()
    assert received == [(p.topic, p.payload, p.retain) for p in messages]
    assert got == b"".join(Puback(p.packet_id).encode() for p in messages)
    assert client.reads > 20
    assert len(client.writes[1:]) <= client.reads  # never more than one write per read


async def test_the_pubacks_of_one_read_leave_in_one_write_after_every_message() -> None:
    messages = burst()
    # CONNACK and the whole burst in one write: one read on loopback.
    reads = [Connack(False, 0).encode() + b"".join(p.encode() for p in messages)]
    pubacks: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    writes_seen: list[int] = []

    def on_message(topic: str, payload: bytes, retain: bool) -> None:
        writes_seen.append(len(client.writes))  # only CONNECT while messages are handed over

    async with HostilePeer(scripted_broker(reads, pubacks)) as peer:
        client = CountingClient("127.0.0.1", peer.port, "box-w", on_message=on_message)
        await client.connect()
        got = await asyncio.wait_for(pubacks, 10)
        await client.disconnect()
    assert writes_seen == [1] * BURST
    assert client.reads == 1
    assert client.writes[1] == got == b"".join(Puback(p.packet_id).encode() for p in messages)


async def test_messages_whose_pubacks_were_never_written_come_again(
    broker: MosquittoBroker,
) -> None:
    """The server dies while handling a read: what it was handed has no PUBACK yet, so the
    broker keeps it for the persistent session and delivers it again (at least once)."""
    first: list[bytes] = []

    def dies_on_the_fifth(topic: str, payload: bytes, retain: bool) -> None:
        first.append(payload)
        if len(first) == 5:
            dying.abort()

    dying = MqttClient(
        broker.host, broker.port, "hub-r", clean_session=False, on_message=dies_on_the_fifth
    )
    await dying.connect()
    await dying.subscribe([("up/#", 1)])
    async with PahoPeer(broker.host, broker.port, "boxes") as boxes:
        for n in range(50):
            await boxes.publish(f"up/box-{n}", b"ack %d" % n)
    await dying.wait_closed()
    assert len(first) == 5  # nothing handed over once the connection was dropped

    again: asyncio.Queue[bytes] = asyncio.Queue()
    survivor = MqttClient(
        broker.host,
        broker.port,
        "hub-r",
        clean_session=False,
        on_message=lambda topic, payload, retain: again.put_nowait(payload),
    )
    assert await survivor.connect() is True
    every = {b"ack %d" % n for n in range(50)}
    second: list[bytes] = []
    while set(first) | set(second) != every:
        second.append(await asyncio.wait_for(again.get(), 5))
    await survivor.disconnect()
    # The fifth was handed over, but its PUBACK never left: it comes again, as may the first
    # four when their read was the same one or their write had not happened yet.
    assert b"ack 4" in second
    assert len(second) == len(set(second))
