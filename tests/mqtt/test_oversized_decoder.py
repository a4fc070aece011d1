"""MqttDecoder given ``on_oversized``: a PUBLISH over the maximum packet size is read past with
the memory of its variable header only and handed over once its last byte is read, however the
reads split it and whatever remaining length it announces (MQTT 3.1.1 sections 2.2.3 and 3.3);
any other packet over the limit and a malformed remaining length stay protocol errors."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from drivers.mqtt import (
    MqttDecoder,
    MqttProtocolError,
    OversizedPublish,
    Pingresp,
    Puback,
    Publish,
)
from drivers.mqtt.packets import MAX_REMAINING_LENGTH

LIMIT = 64
TOPIC = "boxes/b1/cmd"


def sized(total: int, qos: int, packet_id: int, **flags: bool) -> Publish:
    """A PUBLISH to TOPIC whose encoded packet is ``total`` bytes (under 130) long."""
    empty = len(Publish(TOPIC, b"", qos, packet_id=packet_id, **flags).encode())
    packet = Publish(TOPIC, b"x" * (total - empty), qos, packet_id=packet_id, **flags)
    assert len(packet.encode()) == total
    return packet


def decoded(reads: list[bytes], limit: int = LIMIT) -> list[object]:
    """Everything a decoder with ``on_oversized`` hands over for ``reads``, in stream order."""
    out: list[object] = []

    def publish(topic: str, payload: bytes, flags: int, packet_id: int) -> None:
        qos, retain, dup = (flags >> 1) & 3, bool(flags & 1), bool(flags & 8)
        out.append(Publish(topic, payload, qos, retain, packet_id, dup))

    decoder = MqttDecoder(limit, on_oversized=out.append)
    for data in reads:
        decoder.feed_into(data, publish, out.append)
    return out


def test_an_oversized_publish_is_skipped_however_the_reads_split() -> None:
    small = Publish(TOPIC, b"play", 1, packet_id=1)
    at_limit = sized(LIMIT, 1, 2)
    over = sized(LIMIT + 1, 1, 7, retain=True, dup=True)
    big_qos0 = Publish(TOPIC, bytes(5000), 0)
    stream = b"".join(
        p.encode() for p in (small, at_limit, over, Pingresp(), big_qos0, Puback(3), small)
    )
    expected = [
        small,
        at_limit,
        OversizedPublish(TOPIC, LIMIT + 1, 1, True, True, 7),
        Pingresp(),
        OversizedPublish(TOPIC, len(big_qos0.encode()), 0, False, False, 0),
        Puback(3),
        small,
    ]
    assert decoded([stream]) == expected
    for cut in range(1, 300):  # every split inside the headers, topics and identifiers
        assert decoded([stream[:cut], stream[cut:]]) == expected
    assert decoded([stream[i : i + 1] for i in range(len(stream))]) == expected
    rng = random.Random(11)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(stream)), 40))
        reads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert decoded(reads) == expected


def test_the_mqtt_maximum_remaining_length_costs_no_memory() -> None:
    """A PUBLISH announcing 268,435,455 bytes, with the longest topic name there is, fed in
    64 KiB reads: the decoder keeps its variable header (65,539 bytes), not its payload."""
    topic = "t" * 65535
    head = b"\x32\xff\xff\xff\x7f" + len(topic).to_bytes(2) + topic.encode() + b"\x00\x09"
    chunk = bytes(65536)
    left = MAX_REMAINING_LENGTH - (len(head) - 5)
    out: list[object] = []
    decoder = MqttDecoder(1 << 20, on_oversized=out.append)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        decoder.feed(head)
        while left > len(chunk):
            decoder.feed(chunk)
            left -= len(chunk)
        out += decoder.feed(chunk[:left] + Pingresp().encode())
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert out == [
        OversizedPublish(topic, 1 + 4 + MAX_REMAINING_LENGTH, 1, False, False, 9),
        Pingresp(),
    ]
    assert peak < 512 * 1024, f"{peak} bytes held while skipping"


def test_without_on_oversized_an_oversized_publish_is_a_protocol_error() -> None:
    with pytest.raises(MqttProtocolError, match="PUBLISH of 65 bytes is over the maximum"):
        MqttDecoder(LIMIT).feed(sized(LIMIT + 1, 1, 7).encode()[:8])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x90\xff\x7f", "SUBACK of 16386 bytes is over the maximum packet size"),
        (b"\x20\xff\x7f", "CONNACK of 16386 bytes is over the maximum packet size"),
        (b"\x40\x80\x01", "PUBACK of 131 bytes is over the maximum packet size"),
        (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
        (b"\x36\xff\x7f", "QoS 3"),  # refused from the fixed header, before the body
        (b"\x38\xff\x7f", "DUP"),
    ],
)
def test_other_oversized_packets_and_bad_headers_fail_at_once(raw: bytes, message: str) -> None:
    decoder = MqttDecoder(LIMIT, on_oversized=lambda skipped: None)
    with pytest.raises(MqttProtocolError, match=message):
        decoder.feed(raw)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"\x00\x04a/+b\x00\x01", "wildcard"),
        (b"\x00\x02\xc3\x28\x00\x01", "not well-formed UTF-8"),
        (b"\x00\x02a\x00\x00\x01", "NUL"),
        (b"\x00\x00\x00\x01", "empty"),
        (b"\x00\x01a\x00\x00", "identifier 0"),
        (b"\xff\xff", "runs past the end"),
    ],
)
def test_a_malformed_oversized_publish_fails_once_it_is_read(head: bytes, message: str) -> None:
    length = 200
    body = head + bytes(length - len(head))
    decoder = MqttDecoder(LIMIT, on_oversized=lambda skipped: None)
    assert decoder.feed(b"\x32\xc8\x01" + body[:-1]) == []
    with pytest.raises(MqttProtocolError, match=message):
        decoder.feed(body[-1:])
