"""MQTT 3.1.1 control packets as small frozen dataclasses, and their encoders.

Follows OASIS MQTT Version 3.1.1: 2.2 fixed header (type in the high nibble, flags in the low
one), 2.2.3 remaining length (1 to 4 bytes, 7 bits each, least significant first), 3.1 CONNECT,
3.2 CONNACK, 3.3 PUBLISH, 3.4 PUBACK, 3.8 SUBSCRIBE, 3.9 SUBACK, 3.10 UNSUBSCRIBE,
3.11 UNSUBACK, 3.12 PINGREQ, 3.13 PINGRESP, 3.14 DISCONNECT. Strings are a 2-byte big-endian
length and UTF-8 (1.5.3). Decoding lives in ``drivers.mqtt.decoder``.

``encode_publish`` and ``encode_puback`` are the hot path and take ready bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from drivers.mqtt.topics import encode_topic_filter, encode_topic_name

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
MAX_REMAINING_LENGTH = 268_435_455
SUBACK_FAILURE = 0x80
PROTOCOL_NAME = b"MQTT"
PROTOCOL_LEVEL = 4

_U16 = struct.Struct(">H")
_pack_u16 = _U16.pack
PINGREQ_BYTES = b"\xc0\x00"
PINGRESP_BYTES = b"\xd0\x00"
DISCONNECT_BYTES = b"\xe0\x00"


def encode_remaining_length(length: int) -> bytes:
    """The variable-length remaining length of section 2.2.3 (0 to 268,435,455)."""
    if length < 128:
        return bytes((length,))
    if length > MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {length} is over {MAX_REMAINING_LENGTH}")
    out = bytearray()
    while True:
        digit = length & 0x7F
        length >>= 7
        if length:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def _string(raw: bytes) -> bytes:
    return _pack_u16(len(raw)) + raw


def _check_packet_id(packet_id: int) -> None:
    if not 0 < packet_id <= 0xFFFF:
        raise ValueError(f"packet identifier {packet_id} is not in 1..65535 (2.3.1)")


def encode_publish(
    topic: bytes, payload: bytes, qos: int, retain: bool, packet_id: int, dup: bool
) -> bytes:
    """A PUBLISH (3.3) from an already validated UTF-8 topic; ``packet_id`` only for QoS > 0."""
    flags = (qos << 1) | retain | (dup << 3)
    if qos:
        head = _pack_u16(len(topic)) + topic + _pack_u16(packet_id)
    else:
        head = _pack_u16(len(topic)) + topic
    length = len(head) + len(payload)
    if length < 128:
        return bytes((0x30 | flags, length)) + head + payload
    return bytes((0x30 | flags,)) + encode_remaining_length(length) + head + payload


def encode_puback(packet_id: int) -> bytes:
    """A PUBACK (3.4)."""
    return b"\x40\x02" + _pack_u16(packet_id)


@dataclass(frozen=True, slots=True)
class MqttWill:
    """The will message the broker publishes if the connection drops without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT (3.1): the first packet from the client."""

    client_id: str
    clean_session: bool = True
    keepalive_s: int = 0
    will: MqttWill | None = None
    username: str | None = None
    password: bytes | None = None

    def encode(self) -> bytes:
        if not 0 <= self.keepalive_s <= 0xFFFF:
            raise ValueError(f"keep alive {self.keepalive_s} s is not in 0..65535 (3.1.2.10)")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a user name (3.1.2.9)")
        flags = 0x02 if self.clean_session else 0
        parts = [_string(self.client_id.encode("utf-8"))]
        if self.will is not None:
            if self.will.qos not in (0, 1, 2):
                raise ValueError(f"will QoS {self.will.qos} is not 0, 1 or 2 (3.1.2.6)")
            flags |= 0x04 | (self.will.qos << 3) | (0x20 if self.will.retain else 0)
            parts.append(_string(encode_topic_name(self.will.topic)))
            parts.append(_string(self.will.payload))
        if self.username is not None:
            flags |= 0x80
            parts.append(_string(self.username.encode("utf-8")))
        if self.password is not None:
            flags |= 0x40
            parts.append(_string(self.password))
        header = _string(PROTOCOL_NAME) + bytes((PROTOCOL_LEVEL, flags))
        body = b"".join([header, _pack_u16(self.keepalive_s), *parts])
        return b"\x10" + encode_remaining_length(len(body)) + body


@dataclass(frozen=True, slots=True)
class Connack:
    """CONNACK (3.2): the broker's answer to CONNECT; return code 0 means accepted."""

    session_present: bool
    return_code: int

    def encode(self) -> bytes:
        return bytes((0x20, 2, int(self.session_present), self.return_code))


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH (3.3); ``packet_id`` is 0 for QoS 0."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    packet_id: int = 0
    dup: bool = False

    def encode(self) -> bytes:
        if self.qos not in (0, 1, 2):
            raise ValueError(f"QoS {self.qos} is not 0, 1 or 2 (3.3.1.2)")
        if self.qos:
            _check_packet_id(self.packet_id)
        elif self.dup:
            raise ValueError("DUP must be 0 for QoS 0 (3.3.1.1)")
        return encode_publish(
            encode_topic_name(self.topic),
            self.payload,
            self.qos,
            self.retain,
            self.packet_id,
            self.dup,
        )


@dataclass(frozen=True, slots=True)
class Puback:
    """PUBACK (3.4): acknowledges a QoS 1 PUBLISH."""

    packet_id: int

    def encode(self) -> bytes:
        _check_packet_id(self.packet_id)
        return encode_puback(self.packet_id)


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE (3.8): topic filters with the maximum QoS asked for each."""

    packet_id: int
    filters: tuple[tuple[str, int], ...]

    def encode(self) -> bytes:
        _check_packet_id(self.packet_id)
        if not self.filters:
            raise ValueError("SUBSCRIBE needs at least one topic filter (3.8.3)")
        parts = [_pack_u16(self.packet_id)]
        for topic_filter, qos in self.filters:
            if qos not in (0, 1, 2):
                raise ValueError(f"requested QoS {qos} is not 0, 1 or 2 (3.8.3.1)")
            parts.append(_string(encode_topic_filter(topic_filter)) + bytes((qos,)))
        body = b"".join(parts)
        return b"\x82" + encode_remaining_length(len(body)) + body


@dataclass(frozen=True, slots=True)
class Suback:
    """SUBACK (3.9): granted QoS per filter, or 0x80 for a refused one."""

    packet_id: int
    return_codes: tuple[int, ...]

    def encode(self) -> bytes:
        _check_packet_id(self.packet_id)
        body = _pack_u16(self.packet_id) + bytes(self.return_codes)
        return b"\x90" + encode_remaining_length(len(body)) + body


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE (3.10)."""

    packet_id: int
    filters: tuple[str, ...]

    def encode(self) -> bytes:
        _check_packet_id(self.packet_id)
        if not self.filters:
            raise ValueError("UNSUBSCRIBE needs at least one topic filter (3.10.3)")
        body = _pack_u16(self.packet_id) + b"".join(
            _string(encode_topic_filter(f)) for f in self.filters
        )
        return b"\xa2" + encode_remaining_length(len(body)) + body


@dataclass(frozen=True, slots=True)
class Unsuback:
    """UNSUBACK (3.11)."""

    packet_id: int

    def encode(self) -> bytes:
        _check_packet_id(self.packet_id)
        return b"\xb0\x02" + _pack_u16(self.packet_id)


@dataclass(frozen=True, slots=True)
class Pingreq:
    """PINGREQ (3.12): the client is alive."""

    def encode(self) -> bytes:
        return PINGREQ_BYTES


@dataclass(frozen=True, slots=True)
class Pingresp:
    """PINGRESP (3.13): the broker is alive."""

    def encode(self) -> bytes:
        return PINGRESP_BYTES


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT (3.14): a clean end; the broker discards the will."""

    def encode(self) -> bytes:
        return DISCONNECT_BYTES


Packet = (
    Connect
    | Connack
    | Publish
    | Puback
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
)
