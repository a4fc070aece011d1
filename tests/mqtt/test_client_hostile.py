"""MqttClient against a hostile or broken peer: garbage, bad lengths, silence, half packets,
refusals, and a peer that never acknowledges. Clear errors, no hang, nothing logged by asyncio."""

from __future__ import annotations

import asyncio
import logging

import pytest

from drivers.mqtt import (
    Connack,
    MqttClient,
    MqttConnectionError,
    MqttDecoder,
    MqttProtocolError,
    MqttRefusedError,
    Puback,
    Publish,
    Suback,
    Subscribe,
)
from tests.mqtt.support import HostilePeer, Script

Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter
ACCEPT = Connack(False, 0).encode()


async def read_connect(reader: Reader) -> None:
    """Read the client's CONNECT (it always fits one read on loopback)."""
    assert (await reader.read(1024))[:1] == b"\x10"


def answer(reply: bytes, then: Script | None = None) -> Script:
    async def script(reader: Reader, writer: Writer) -> None:
        await read_connect(reader)
        writer.write(reply)
        await writer.drain()
        if then is not None:
            await then(reader, writer)
        else:
            while await reader.read(1024):
                pass

    return script


@pytest.fixture(autouse=True)
def nothing_logged_by_asyncio(caplog: pytest.LogCaptureFixture) -> object:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    yield
    noisy = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def connect_to(peer: HostilePeer, **options: object) -> MqttClient:
    client = MqttClient("127.0.0.1", peer.port, "box-h", **options)
    await client.connect()
    return client


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (b"\xf0\x00", MqttProtocolError, "type 15"),
        (b"HTTP/1.1 400 Bad Request\r\n", MqttProtocolError, "PUBACK with fixed header flags"),
        (b"\x20\xff\xff\xff\xff\x01", MqttProtocolError, "longer than 4 bytes"),
        (b"\x20\x03\x00\x00\x00", MqttProtocolError, "CONNACK with remaining length 3"),
        (b"\x20\x02\x04\x00", MqttProtocolError, "reserved flags"),
        (b"\x30\x03\x00\x01a", MqttProtocolError, "PUBLISH before CONNACK"),
        (b"\x20\x02\x00\x02", MqttRefusedError, "client identifier rejected"),
        (b"\x20\x02\x00\x09", MqttRefusedError, "reserved return code"),
    ],
)
async def test_a_bad_answer_to_connect_is_a_clear_error(
    reply: bytes, error: type[Exception], message: str
) -> None:
    async with HostilePeer(answer(reply)) as peer:
        with pytest.raises(error, match=message):
            await asyncio.wait_for(connect_to(peer), 5)


async def test_a_peer_closing_mid_packet_is_a_connection_error() -> None:
    async def half_then_close(reader: Reader, writer: Writer) -> None:
        await read_connect(reader)
        writer.write(b"\x20\x02\x00")
        await writer.drain()

    async with HostilePeer(half_then_close) as peer:
        with pytest.raises(MqttConnectionError, match="before CONNACK"):
            await asyncio.wait_for(connect_to(peer), 5)


async def test_a_silent_peer_times_out_the_connect() -> None:
    async with HostilePeer(answer(b"")) as peer:
        with pytest.raises(MqttConnectionError, match=r"no CONNACK .* within 0\.3 s"):
            await asyncio.wait_for(connect_to(peer, connect_timeout_s=0.3), 5)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"\x00\x00", "packet type 0"),
        (b"\x90\xff\xff\x7f", "SUBACK of 2097155 bytes is over the maximum packet size"),
        (ACCEPT, "unexpected CONNACK"),
        (Publish("a/b", b"x", 2, packet_id=1).encode(), "QoS 2"),
        (b"\x90\x04\x00\x01\x01\x01", "2 return codes for 1 topic filters"),
    ],
)
async def test_a_bad_packet_mid_session_fails_pending_requests_and_closes(
    reply: bytes, message: str
) -> None:
    async def bad_reply_to_subscribe(reader: Reader, writer: Writer) -> None:
        await reader.read(1024)
        writer.write(reply)
        while await reader.read(1024):
            pass

    async with HostilePeer(answer(ACCEPT, bad_reply_to_subscribe)) as peer:
        client = await connect_to(peer, max_packet_bytes=1 << 20)
        with pytest.raises((MqttConnectionError, MqttProtocolError), match=message):
            await asyncio.wait_for(client.subscribe([("a/#", 1)]), 5)
        with pytest.raises(MqttProtocolError, match=message):
            await asyncio.wait_for(client.wait_closed(), 5)
        assert not client.is_connected


async def test_a_duplicate_redelivery_is_delivered_again_and_acknowledged() -> None:
    acks: list[Puback] = []
    both_acked = asyncio.Event()

    async def redeliver(reader: Reader, writer: Writer) -> None:
        first = Publish("boxes/1/cmd", b"play", 1, packet_id=5)
        again = Publish("boxes/1/cmd", b"play", 1, packet_id=5, dup=True)
        writer.write(first.encode() + again.encode())
        decoder = MqttDecoder()
        while data := await reader.read(1024):
            acks.extend(p for p in decoder.feed(data) if isinstance(p, Puback))
            if len(acks) == 2:
                both_acked.set()

    seen: list[tuple[str, bytes, bool]] = []
    async with HostilePeer(answer(ACCEPT, redeliver)) as peer:
        client = await connect_to(
            peer, on_message=lambda topic, payload, retain: seen.append((topic, payload, retain))
        )
        await asyncio.wait_for(both_acked.wait(), 5)
        await client.disconnect()
    assert seen == [("boxes/1/cmd", b"play", False)] * 2
    assert acks == [Puback(5), Puback(5)]


async def test_a_cancelled_connect_leaves_nothing_open() -> None:
    async with HostilePeer(answer(b"")) as peer:
        client = MqttClient("127.0.0.1", peer.port, "box-c")
        attempt = asyncio.ensure_future(client.connect())
        done, _ = await asyncio.wait([attempt], timeout=0.2)
        assert not done
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        with pytest.raises(MqttConnectionError, match="connect cancelled"):
            await asyncio.wait_for(client.wait_closed(), 5)


async def test_a_silent_broker_is_detected_by_keepalive() -> None:
    async with HostilePeer(answer(ACCEPT)) as peer:
        client = await connect_to(peer, keepalive_s=1)
        started = asyncio.get_running_loop().time()
        with pytest.raises(MqttConnectionError, match=r"no packet from the broker for 1\.5"):
            await asyncio.wait_for(client.wait_closed(), 5)
        assert asyncio.get_running_loop().time() - started < 2.5


async def test_a_refused_subscription_raises_and_the_session_lives_on() -> None:
    async def refuse(reader: Reader, writer: Writer) -> None:
        decoder = MqttDecoder()
        while data := await reader.read(1024):
            for packet in decoder.feed(data):
                if isinstance(packet, Subscribe):
                    writer.write(Suback(packet.packet_id, (1, 0x80)).encode())
                elif isinstance(packet, Publish):
                    writer.write(Puback(packet.packet_id).encode())

    async with HostilePeer(answer(ACCEPT, refuse)) as peer:
        client = await connect_to(peer)
        with pytest.raises(MqttRefusedError, match="secret/#") as refused:
            await client.subscribe([("boxes/1/cmd", 1), ("secret/#", 1)])
        assert refused.value.return_code == 0x80
        await asyncio.wait_for(client.publish("boxes/1/ack", b"ok", qos=1), 5)
        await client.disconnect()


async def test_a_failing_callback_is_logged_and_the_message_still_acknowledged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    acked = asyncio.Event()

    async def deliver(reader: Reader, writer: Writer) -> None:
        writer.write(Publish("boxes/1/cmd", b"play", 1, packet_id=9).encode())
        if MqttDecoder().feed(await reader.read(1024)) == [Puback(9)]:
            acked.set()
        await reader.read(1024)

    def broken(topic: str, payload: bytes, retain: bool) -> None:
        raise RuntimeError("application bug")

    async with HostilePeer(answer(ACCEPT, deliver)) as peer:
        client = await connect_to(peer, on_message=broken)
        await asyncio.wait_for(acked.wait(), 5)
        assert client.is_connected
        failures = [r for r in caplog.records if r.name == "drivers.mqtt.client"]
        assert failures and "on_message failed" in failures[0].getMessage()
        caplog.clear()
        await client.disconnect()


async def test_packet_ids_never_exceed_65535_in_flight_and_are_reused() -> None:
    seen: list[int] = []

    async def ack_late(reader: Reader, writer: Writer) -> None:
        decoder = MqttDecoder()
        while data := await reader.read(1 << 20):
            for packet in decoder.feed(data):
                assert isinstance(packet, Publish)
                seen.append(packet.packet_id)
                if len(seen) == 65535:
                    writer.write(Puback(7).encode())
                elif len(seen) == 65536:
                    writer.write(b"".join(Puback(i).encode() for i in range(1, 65536)))

    async with HostilePeer(answer(ACCEPT, ack_late)) as peer:
        client = await connect_to(peer, keepalive_s=0)
        sends = [client.publish("q", b"", qos=1) for _ in range(65536)]
        await asyncio.wait_for(asyncio.gather(*sends), 30)
        assert sorted(seen[:65535]) == list(range(1, 65536))
        assert seen[65535] == 7
        await client.disconnect()
