"""MQTT 3.1.1 codec: round trips, remaining-length boundaries (2.2.3), split and coalesced
reads, every malformed case, and bytes checked against the spec and against paho-mqtt."""

from __future__ import annotations

import asyncio
import random

import paho.mqtt.client as paho
import pytest

from drivers.mqtt import (
    Connack,
    Connect,
    Disconnect,
    MqttDecoder,
    MqttProtocolError,
    MqttWill,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from drivers.mqtt.packets import encode_remaining_length

ALL_PACKETS: list[Packet] = [
    Connect("box-150902-001", True, 30),
    Connect(
        "盒子-7",
        False,
        65535,
        MqttWill("boxes/7/presence", b"offline", 1, True),
        "officer",
        b"\x00secret\xff",
    ),
    Connack(True, 0),
    Connack(False, 5),
    Publish("alerts/150902", b"", 0),
    Publish("警报/乌兰察布", "撤离".encode(), 1, True, 65535, True),
    Puback(1),
    Subscribe(7, (("boxes/+/ack", 1), ("alerts/#", 0), ("$SYS/#", 2))),
    Suback(7, (1, 0, 0x80)),
    Unsubscribe(8, ("alerts/#", "boxes/+/ack")),
    Unsuback(8),
    Pingreq(),
    Pingresp(),
    Disconnect(),
]


def test_every_packet_round_trips() -> None:
    for packet in ALL_PACKETS:
        assert MqttDecoder().feed(packet.encode()) == [packet]


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2097151, b"\xff\xff\x7f"),
        (2097152, b"\x80\x80\x80\x01"),
        (268435455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_matches_the_table_of_section_2_2_3(length: int, encoded: bytes) -> None:
    assert encode_remaining_length(length) == encoded
    decoder = MqttDecoder(max_packet_bytes=10)
    if length <= 5:
        return
    with pytest.raises(MqttProtocolError, match=f"of {1 + len(encoded) + length} bytes"):
        decoder.feed(b"\x30" + encoded)


@pytest.mark.parametrize("length", [0, 127, 128, 16383, 16384, 2097151])
def test_publish_of_each_boundary_length_round_trips(length: int) -> None:
    if length == 0:
        assert MqttDecoder().feed(b"\xc0\x00") == [Pingreq()]
        return
    payload = bytes(range(256)) * (length // 256 + 1)
    packet = Publish("t", payload[: length - 3], 0)
    raw = packet.encode()
    assert raw[1 : 1 + len(encode_remaining_length(length))] == encode_remaining_length(length)
    assert MqttDecoder().feed(raw) == [packet]


def test_remaining_length_over_4_bytes_is_refused() -> None:
    with pytest.raises(MqttProtocolError, match="longer than 4 bytes"):
        MqttDecoder().feed(b"\x30\xff\xff\xff\xff\x01")
    with pytest.raises(ValueError, match="over 268435455"):
        encode_remaining_length(268435456)


def test_split_and_coalesced_reads_give_the_same_packets() -> None:
    stream = b"".join(p.encode() for p in ALL_PACKETS)
    assert MqttDecoder().feed(stream) == ALL_PACKETS
    one_by_one = MqttDecoder()
    got: list[Packet] = []
    for index in range(len(stream)):
        got += one_by_one.feed(stream[index : index + 1])
    assert got == ALL_PACKETS
    chunks = random.Random(5)
    for _ in range(20):
        decoder, got, pos = MqttDecoder(), [], 0
        while pos < len(stream):
            step = chunks.randint(1, 40)
            got += decoder.feed(stream[pos : pos + step])
            pos += step
        assert got == ALL_PACKETS


def test_a_big_packet_in_many_reads_then_the_next_one() -> None:
    big = Publish("bulk/audio", bytes(1_000_000), 1, packet_id=3)
    stream = big.encode() + Pingresp().encode()
    decoder = MqttDecoder()
    got: list[Packet] = []
    for pos in range(0, len(stream), 65536):
        got += decoder.feed(stream[pos : pos + 65536])
    assert got == [big, Pingresp()]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00", "type 0"),
        (b"\xf0\x00", "type 15"),
        (b"\x50\x02\x00\x01", "PUBREC"),
        (b"\xc1\x00", "PINGREQ with fixed header flags"),
        (b"\x80\x06\x00\x01\x00\x01a\x00", "SUBSCRIBE with fixed header flags"),
        (b"\x42\x02\x00\x01", "PUBACK with fixed header flags"),
        (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
        (b"\x38\x03\x00\x01a", "DUP"),
        (b"\x30\x05\x00\x02\xc3\x28x", "not well-formed UTF-8"),
        (b"\x30\x04\x00\x02\xed\xa0", "not well-formed UTF-8"),
        (b"\x30\x04\x00\x02a\x00", "NUL"),
        (b"\x30\x04\x00\x02a+", "wildcard"),
        (b"\x30\x02\x00\x00", "empty"),
        (b"\x30\x03\x00\x05a", "runs past the end"),
        (b"\x32\x03\x00\x01a", "packet identifier"),
        (b"\x32\x05\x00\x01a\x00\x00", "identifier 0"),
        # The same faults at QoS 1, the receiving hot path's own reading.
        (b"\x32\x06\x00\x02\xc3\x28\x00\x01", "not well-formed UTF-8"),
        (b"\x32\x06\x00\x02a\x00\x00\x01", "NUL"),
        (b"\x32\x06\x00\x02a#\x00\x01", "wildcard"),
        (b"\x32\x06\x00\x02+a\x00\x01", "wildcard"),
        (b"\x32\x04\x00\x00\x00\x01", "empty"),
        (b"\x32\x05\x00\x04a\x00\x01", "runs past the end"),
        (b"\x32\x01\x00", "packet ends inside"),
        (b"\x3a\x05\x00\x01a\x00\x00", "identifier 0"),
        (b"\x20\x03\x00\x00\x00", "CONNACK with remaining length 3"),
        (b"\x20\x02\x02\x00", "reserved flags"),
        (b"\x40\x03\x00\x01\x00", "PUBACK with remaining length 3"),
        (b"\x90\x03\x00\x01\x03", "return code 0x03"),
        (b"\x90\x02\x00\x01", "without return codes"),
        (b"\x82\x02\x00\x01", "without a topic filter"),
        (b"\x82\x06\x00\x01\x00\x01a\x03", "requested QoS"),
        (b"\xa2\x02\x00\x01", "without a topic filter"),
        (b"\xd0\x01\x00", "PINGRESP with remaining length 1"),
        (b"\x10\x0c\x00\x04MQTs\x04\x02\x00\x1e\x00\x00", "protocol name"),
        (b"\x10\x0c\x00\x04MQTT\x03\x02\x00\x1e\x00\x00", "protocol level 3"),
        (b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x1e\x00\x00", "reserved flag"),
        (b"\x10\x0c\x00\x04MQTT\x04\x42\x00\x1e\x00\x00", "password flag"),
        (b"\x10\x0c\x00\x04MQTT\x04\x1e\x00\x1e\x00\x00", "will QoS"),
        (b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x1e\x00\x00\x00", "after its payload"),
    ],
)
def test_malformed_input_raises_a_clear_protocol_error(raw: bytes, message: str) -> None:
    with pytest.raises(MqttProtocolError, match=message):
        MqttDecoder().feed(raw)


def test_the_maximum_packet_size_is_enforced_from_the_header() -> None:
    decoder = MqttDecoder(max_packet_bytes=1024)
    assert decoder.feed(Publish("t", bytes(1000)).encode()) == [Publish("t", bytes(1000))]
    with pytest.raises(MqttProtocolError, match="PUBLISH of 1030 bytes is over the maximum"):
        decoder.feed(Publish("t", bytes(1024)).encode()[:4])


def test_bytes_match_hand_computed_examples() -> None:
    assert (
        Connect("box-1", True, 30).encode() == b"\x10\x11\x00\x04MQTT\x04\x02\x00\x1e\x00\x05box-1"
    )
    assert Publish("a/b", b"hi", 1, packet_id=10).encode() == b"\x32\x09\x00\x03a/b\x00\x0ahi"
    assert Publish("a/b", b"", 0, retain=True).encode() == b"\x31\x05\x00\x03a/b"
    assert Subscribe(1, (("a/#", 1),)).encode() == b"\x82\x08\x00\x01\x00\x03a/#\x01"
    assert Connack(True, 0).encode() == b"\x20\x02\x01\x00"
    assert Puback(258).encode() == b"\x40\x02\x01\x02"
    assert Disconnect().encode() == b"\xe0\x00"


def test_encoders_refuse_what_the_spec_forbids() -> None:
    with pytest.raises(ValueError, match="DUP"):
        Publish("a", b"", 0, dup=True).encode()
    with pytest.raises(ValueError, match="packet identifier 0"):
        Publish("a", b"", 1).encode()
    with pytest.raises(ValueError, match="user name"):
        Connect("x", password=b"p").encode()
    with pytest.raises(ValueError, match="at least one"):
        Subscribe(1, ()).encode()


def _paho_session(port: int) -> None:
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id="box-9", protocol=paho.MQTTv311
    )
    client.will_set("boxes/9/presence", b"offline", 1, True)
    client.username_pw_set("officer", "密码")
    client.connect("127.0.0.1", port, keepalive=45)
    client.loop(2.0)
    client.subscribe([("boxes/+/ack", 1), ("alerts/#", 0)])
    client.publish("alerts/150902", "警报".encode(), qos=1, retain=True)
    client.publish("alerts/150921", b"x" * 300, qos=0)
    client.disconnect()


async def test_our_encoder_writes_the_same_bytes_as_paho() -> None:
    received = bytearray()
    finished = asyncio.Event()

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MqttDecoder()
        while not finished.is_set():
            data = await reader.read(65536)
            if not data:
                break
            received.extend(data)
            for packet in decoder.feed(data):
                if isinstance(packet, Connect):
                    writer.write(Connack(False, 0).encode())
                elif isinstance(packet, Disconnect):
                    finished.set()
        writer.close()

    server = await asyncio.start_server(broker, "127.0.0.1", 0)
    try:
        await asyncio.to_thread(_paho_session, server.sockets[0].getsockname()[1])
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        server.close()
        await server.wait_closed()
    expected = [
        Connect(
            "box-9",
            True,
            45,
            MqttWill("boxes/9/presence", b"offline", 1, True),
            "officer",
            "密码".encode(),
        ),
        Subscribe(1, (("boxes/+/ack", 1), ("alerts/#", 0))),
        Publish("alerts/150902", "警报".encode(), 1, True, 2),
        Publish("alerts/150921", b"x" * 300, 0),
        Disconnect(),
    ]
    assert bytes(received) == b"".join(packet.encode() for packet in expected)
