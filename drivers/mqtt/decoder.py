"""Incremental MQTT 3.1.1 decoder: bytes as they arrive in, whole packets out.

Follows OASIS MQTT Version 3.1.1: 2.2 fixed header and the reserved flags of table 2.2
(SUBSCRIBE and UNSUBSCRIBE carry 0010, PUBLISH carries DUP/QoS/RETAIN, all others 0000),
2.2.3 remaining length (at most 4 bytes), 1.5.3 UTF-8 strings (well-formed, no NUL),
3.1 to 3.14 for each packet's variable header and payload. Packet types 0 and 15 are reserved;
the QoS 2 flow (PUBREC, PUBREL, PUBCOMP) is not supported and is refused like them.

A packet split across reads is kept until it is whole, without re-joining the pieces on every
read; many packets in one read come out together, as a list or, on the receiving hot path,
through callbacks with no object built per PUBLISH. Anything malformed raises
``MqttProtocolError`` with what was wrong; the connection must then be closed.

The maximum packet size is checked against the remaining length as soon as the fixed header is
read (2.2.3), so no packet over it is ever held. A packet over it is a protocol error, except a
PUBLISH (3.3) when the decoder is given ``on_oversized``: its bytes are read and discarded as
they arrive (:mod:`drivers.mqtt.oversized`, never more than its variable header kept), and once
its last byte is read it is handed over as an ``OversizedPublish`` (topic, size, QoS, packet
identifier), so the receiver can acknowledge it as its QoS requires (4.3) and keep the session.
A remaining length of more than 4 bytes stays a protocol error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from drivers.mqtt.errors import MqttProtocolError
from drivers.mqtt.oversized import OversizedPublish, OversizedPublishReader
from drivers.mqtt.packets import (
    PROTOCOL_NAME,
    SUBACK_FAILURE,
    Connack,
    Connect,
    Disconnect,
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

DEFAULT_MAX_PACKET_BYTES = 16 * 1024 * 1024
_unpack_u16 = struct.Struct(">H").unpack_from
_PINGREQ, _PINGRESP, _DISCONNECT = Pingreq(), Pingresp(), Disconnect()
_NAMES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
}


def _u16(data: bytes, pos: int, end: int, what: str) -> int:
    if pos + 2 > end:
        raise MqttProtocolError(f"packet ends inside its {what}")
    value: int = _unpack_u16(data, pos)[0]
    return value


def _packet_id(data: bytes, pos: int, end: int, name: str) -> int:
    packet_id = _u16(data, pos, end, "packet identifier")
    if packet_id == 0:
        raise MqttProtocolError(f"{name} with packet identifier 0 (MQTT 3.1.1 section 2.3.1)")
    return packet_id


def _binary(data: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    length = _u16(data, pos, end, what)
    start = pos + 2
    stop = start + length
    if stop > end:
        raise MqttProtocolError(f"{what} of {length} bytes runs past the end of the packet")
    return data[start:stop], stop


def _text(data: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    raw, stop = _binary(data, pos, end, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MqttProtocolError(
            f"{what} is not well-formed UTF-8 at byte {exc.start} (MQTT 3.1.1 section 1.5.3)"
        ) from exc
    if "\x00" in text:
        raise MqttProtocolError(f"{what} contains NUL (MQTT 3.1.1 section 1.5.3)")
    return text, stop


def _expect_length(name: str, length: int, wanted: int) -> None:
    if length != wanted:
        raise MqttProtocolError(
            f"{name} with remaining length {length}, must be {wanted} (MQTT 3.1.1)"
        )


def _publish_qos(flags: int) -> int:
    """The QoS of a PUBLISH's fixed header flags, which must not be 3 nor DUP at QoS 0."""
    qos = (flags >> 1) & 3
    if qos == 3:
        raise MqttProtocolError("PUBLISH with QoS 3 (MQTT 3.1.1 section 3.3.1.2)")
    if flags & 8 and not qos:
        raise MqttProtocolError("PUBLISH QoS 0 with DUP set (MQTT 3.1.1 section 3.3.1.1)")
    return qos


def _publish(flags: int, data: bytes, pos: int, end: int) -> tuple[str, bytes, int]:
    """A PUBLISH body's topic, payload and packet identifier (0 at QoS 0)."""
    qos = _publish_qos(flags)
    topic, pos = _text(data, pos, end, "PUBLISH topic name")
    if not topic or "+" in topic or "#" in topic:
        raise MqttProtocolError(
            f"PUBLISH topic name {topic!r} is empty or has a wildcard (MQTT 3.1.1 section 3.3.2.1)"
        )
    packet_id = 0
    if qos:
        packet_id = _packet_id(data, pos, end, "PUBLISH")
        pos += 2
    return topic, data[pos:end], packet_id


def _connect(data: bytes, pos: int, end: int) -> Connect:
    name, pos = _binary(data, pos, end, "CONNECT protocol name")
    if name != PROTOCOL_NAME:
        raise MqttProtocolError(f"CONNECT protocol name {name!r}, not b'MQTT' (3.1.2.1)")
    if pos + 4 > end:
        raise MqttProtocolError("CONNECT ends inside its variable header")
    level, flags = data[pos], data[pos + 1]
    keepalive = _unpack_u16(data, pos + 2)[0]
    pos += 4
    if level != 4:
        raise MqttProtocolError(f"CONNECT protocol level {level}, only 4 is 3.1.1 (3.1.2.2)")
    if flags & 0x01:
        raise MqttProtocolError("CONNECT reserved flag set (MQTT 3.1.1 section 3.1.2.3)")
    will_flag, will_qos = flags & 0x04, (flags >> 3) & 3
    if will_qos == 3 or (not will_flag and flags & 0x38):
        raise MqttProtocolError("CONNECT will QoS/retain flags invalid (3.1.2.6, 3.1.2.7)")
    if flags & 0x40 and not flags & 0x80:
        raise MqttProtocolError("CONNECT password flag without user name flag (3.1.2.9)")
    client_id, pos = _text(data, pos, end, "CONNECT client identifier")
    will = None
    if will_flag:
        will_topic, pos = _text(data, pos, end, "CONNECT will topic")
        will_payload, pos = _binary(data, pos, end, "CONNECT will message")
        will = MqttWill(will_topic, will_payload, will_qos, bool(flags & 0x20))
    username = password = None
    if flags & 0x80:
        username, pos = _text(data, pos, end, "CONNECT user name")
    if flags & 0x40:
        password, pos = _binary(data, pos, end, "CONNECT password")
    if pos != end:
        raise MqttProtocolError(f"CONNECT has {end - pos} bytes after its payload")
    return Connect(client_id, bool(flags & 0x02), keepalive, will, username, password)


def _connack(data: bytes, pos: int, end: int) -> Connack:
    _expect_length("CONNACK", end - pos, 2)
    ack_flags, code = data[pos], data[pos + 1]
    if ack_flags & 0xFE:
        raise MqttProtocolError("CONNACK reserved flags set (MQTT 3.1.1 section 3.2.2.1)")
    return Connack(bool(ack_flags), code)


def _puback(data: bytes, pos: int, end: int) -> Puback:
    _expect_length("PUBACK", end - pos, 2)
    return Puback(_packet_id(data, pos, end, "PUBACK"))


def _unsuback(data: bytes, pos: int, end: int) -> Unsuback:
    _expect_length("UNSUBACK", end - pos, 2)
    return Unsuback(_packet_id(data, pos, end, "UNSUBACK"))


def _subscribe(data: bytes, pos: int, end: int) -> Subscribe:
    packet_id = _packet_id(data, pos, end, "SUBSCRIBE")
    pos += 2
    filters: list[tuple[str, int]] = []
    while pos < end:
        topic_filter, pos = _text(data, pos, end, "SUBSCRIBE topic filter")
        if pos >= end:
            raise MqttProtocolError("SUBSCRIBE ends before the requested QoS")
        options = data[pos]
        pos += 1
        if options > 2:
            raise MqttProtocolError(f"SUBSCRIBE requested QoS byte {options:#04x} (3.8.3.1)")
        filters.append((topic_filter, options))
    if not filters:
        raise MqttProtocolError("SUBSCRIBE without a topic filter (MQTT 3.1.1 section 3.8.3)")
    return Subscribe(packet_id, tuple(filters))


def _suback(data: bytes, pos: int, end: int) -> Suback:
    packet_id = _packet_id(data, pos, end, "SUBACK")
    codes = tuple(data[pos + 2 : end])
    if not codes:
        raise MqttProtocolError("SUBACK without return codes (MQTT 3.1.1 section 3.9.3)")
    for code in codes:
        if code > 2 and code != SUBACK_FAILURE:
            raise MqttProtocolError(f"SUBACK return code {code:#04x} (MQTT 3.1.1 section 3.9.3)")
    return Suback(packet_id, codes)


def _unsubscribe(data: bytes, pos: int, end: int) -> Unsubscribe:
    packet_id = _packet_id(data, pos, end, "UNSUBSCRIBE")
    pos += 2
    filters: list[str] = []
    while pos < end:
        topic_filter, pos = _text(data, pos, end, "UNSUBSCRIBE topic filter")
        filters.append(topic_filter)
    if not filters:
        raise MqttProtocolError("UNSUBSCRIBE without a topic filter (3.10.3)")
    return Unsubscribe(packet_id, tuple(filters))


def _empty(packet: Packet, name: str) -> Callable[[bytes, int, int], Packet]:
    def decode(data: bytes, pos: int, end: int) -> Packet:
        _expect_length(name, end - pos, 0)
        return packet

    return decode


# Packet type -> (required low-nibble flags, body decoder); PUBLISH is handled on its own.
_BODIES: dict[int, tuple[int, Callable[[bytes, int, int], Packet]]] = {
    1: (0, _connect),
    2: (0, _connack),
    4: (0, _puback),
    8: (2, _subscribe),
    9: (0, _suback),
    10: (2, _unsubscribe),
    11: (0, _unsuback),
    12: (0, _empty(_PINGREQ, "PINGREQ")),
    13: (0, _empty(_PINGRESP, "PINGRESP")),
    14: (0, _empty(_DISCONNECT, "DISCONNECT")),
}


PublishSink = Callable[[str, bytes, int, int], None]
"""Takes each PUBLISH as (topic, payload, fixed header flags, packet identifier): QoS is
``(flags >> 1) & 3``, RETAIN ``flags & 1``, DUP ``flags & 8``; the identifier is 0 at QoS 0."""
PacketSink = Callable[[Packet], None]
OversizedSink = Callable[[OversizedPublish], None]
"""Takes each PUBLISH that was over the maximum packet size, once its last byte is read."""


class MqttDecoder:
    """Turns a byte stream into packets, as a list (``feed``) or through callbacks, with no
    object built per PUBLISH (``feed_into``).

    A packet over ``max_packet_bytes`` (fixed header included) raises MqttProtocolError, but a
    PUBLISH over it goes to ``on_oversized`` when one is given: it is skipped with the memory
    of its variable header only, however large its remaining length (MQTT 3.1.1 section 2.2.3).
    """

    __slots__ = ("_have", "_max", "_need", "_on_oversized", "_parts", "_skipping")

    def __init__(
        self,
        max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
        *,
        on_oversized: OversizedSink | None = None,
    ) -> None:
        self._max = max_packet_bytes
        self._on_oversized = on_oversized
        self._parts: list[bytes] = []
        self._have = 0
        self._need = 0
        self._skipping: OversizedPublishReader | None = None

    def feed(self, data: bytes) -> list[Packet]:
        """Add bytes read from the peer; returns every packet completed so far.
        MqttProtocolError if they are not valid MQTT."""
        packets: list[Packet] = []

        def publish(topic: str, payload: bytes, flags: int, packet_id: int) -> None:
            qos, retain, dup = (flags >> 1) & 3, bool(flags & 1), bool(flags & 8)
            packets.append(Publish(topic, payload, qos, retain, packet_id, dup))

        self.feed_into(data, publish, packets.append)
        return packets

    def feed_into(self, data: bytes, on_publish: PublishSink, on_packet: PacketSink) -> None:
        """Add bytes read from the peer and hand each completed packet over at once, in
        stream order: a PUBLISH to ``on_publish``, any other packet to ``on_packet``, and a
        PUBLISH over the maximum packet size to the decoder's ``on_oversized`` once its last
        byte is read.

        Raises MqttProtocolError if the bytes are not valid MQTT, after handing over the
        packets before the bad one. What a callback raises goes through; either way the
        connection must then be closed, as the rest of the read is lost.
        """
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._parts)
            self._parts.clear()
        pos, size, need = 0, len(data), 0
        try:
            skipping = self._skipping
            if skipping is not None:
                pos = skipping.consume(data, 0)
                if not skipping.done:
                    return
                self._skipping = None
                self._skipped(skipping)
            while pos < size:
                first = data[pos]
                kind = first >> 4
                # Checked before the length, so garbage fails at once instead of waiting.
                if kind != 3:
                    entry = _BODIES.get(kind)
                    if entry is None:
                        raise MqttProtocolError(
                            f"packet type {kind} ({_NAMES.get(kind, 'reserved')}) is not supported"
                        )
                    if first & 0x0F != entry[0]:
                        raise MqttProtocolError(
                            f"{_NAMES[kind]} with fixed header flags {first & 0x0F:#03x}, must "
                            f"be {entry[0]:#03x} (MQTT 3.1.1 section 2.2.2)"
                        )
                    decode_body = entry[1]
                length, shift, index = 0, 0, pos + 1
                while True:
                    if index >= size:
                        need = size - pos + 1
                        break
                    byte = data[index]
                    index += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift == 28:
                        raise MqttProtocolError(
                            "remaining length longer than 4 bytes (MQTT 3.1.1 section 2.2.3)"
                        )
                if need:
                    break
                total = index - pos + length
                if total > self._max:
                    if kind != 3 or self._on_oversized is None:
                        raise MqttProtocolError(
                            f"{_NAMES.get(kind, 'packet')} of {total} bytes is over the maximum "
                            f"packet size of {self._max} bytes"
                        )
                    # Bad flags fail at once, not after the whole body was read.
                    _publish_qos(first & 0x0F)
                    skipping = OversizedPublishReader(first & 0x0F, total, length)
                    pos = skipping.consume(data, index)
                    if not skipping.done:
                        self._skipping = skipping
                        break
                    self._skipped(skipping)
                    continue
                end = index + length
                if end > size:
                    need = total
                    break
                pos = end
                if kind == 3:
                    # The usual PUBLISH, read inline; anything unusual goes through _publish,
                    # which names what is wrong.
                    flags = first & 0x0F
                    topic_end = (
                        index + 2 + (data[index] << 8 | data[index + 1]) if length > 1 else 0
                    )
                    body = topic_end + 2 if flags & 6 else topic_end
                    if flags & 6 == 2 and index + 2 < topic_end and body <= end:
                        try:
                            topic = data[index + 2 : topic_end].decode()
                        except UnicodeDecodeError:
                            topic = "+"  # the checked reading below names the error
                        packet_id = data[topic_end] << 8 | data[topic_end + 1]
                        if packet_id and not ("+" in topic or "#" in topic or "\x00" in topic):
                            on_publish(topic, data[body:end], flags, packet_id)
                            continue
                    topic, payload, packet_id = _publish(flags, data, index, end)
                    on_publish(topic, payload, flags, packet_id)
                else:
                    on_packet(decode_body(data, index, end))
        except BaseException:
            self._parts.clear()
            self._have = self._need = 0
            self._skipping = None
            raise
        if pos < size:
            rest = data[pos:] if pos else data
            self._parts.append(rest)
            self._have = len(rest)
            self._need = need
        else:
            self._have = self._need = 0

    def _skipped(self, skipped: OversizedPublishReader) -> None:
        """Check a skipped PUBLISH's variable header as if it were whole (MQTT 3.1.1 section
        3.3.2) and hand it over."""
        assert self._on_oversized is not None
        flags, head = skipped.flags, bytes(skipped.head)
        topic, _, packet_id = _publish(flags, head, 0, len(head))
        self._on_oversized(
            OversizedPublish(
                topic, skipped.size, (flags >> 1) & 3, bool(flags & 1), bool(flags & 8), packet_id
            )
        )
