"""SMPP 3.4 PDUs: encode and decode, pure functions shared by the client and the simulator.

Follows the SMPP Protocol Specification v3.4 (Issue 1.2): §3.2 (header: command_length,
command_id, command_status, sequence_number, four octets each, big-endian), §3.1 (C-Octet
strings end in NUL; the sizes below include it), §4.1.5/§4.1.6 (bind_transceiver and its
response), §4.4 (submit_sm, submit_sm_resp), §4.6 (deliver_sm, deliver_sm_resp), §4.2
(unbind), §4.11 (enquire_link), §4.3 (generic_nack), §3.3/§5.3 (TLVs: tag, length, value).
A PDU with a command_id this codec does not know (alert_notification, data_sm, ...) decodes
with its header and no body, so the session can answer it (§4.3: generic_nack with
ESME_RINVCMDID) instead of dropping the connection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from drivers.smsgw.errors import GatewayMessageError, GatewayProtocolError

GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015

HEADER_ONLY = frozenset({GENERIC_NACK, UNBIND, UNBIND_RESP, ENQUIRE_LINK, ENQUIRE_LINK_RESP})
HEADER_LENGTH = 16
INTERFACE_VERSION = 0x34

# §5.3.2 TLV tags
TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_SC_INTERFACE_VERSION = 0x0210
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_MESSAGE_PAYLOAD = 0x0424

ESM_UDHI = 0x40
ESM_DELIVERY_RECEIPT = 0x04
ESM_MESSAGE_TYPE_MASK = 0x3C
REGISTERED_DELIVERY_FINAL = 0x01
DATA_CODING_UCS2 = 0x08


@dataclass(frozen=True, slots=True)
class Tlv:
    """An optional parameter (§3.3): a 16-bit tag and its value octets."""

    tag: int
    value: bytes


@dataclass(frozen=True, slots=True)
class BindBody:
    """bind_transceiver (§4.1.5)."""

    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindRespBody:
    """bind_transceiver_resp (§4.1.6); the body is empty when the bind is refused."""

    system_id: str = ""
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, slots=True)
class ShortMessage:
    """The body of submit_sm (§4.4.1) and deliver_sm (§4.6.1), which share one layout."""

    source_addr: str = ""
    destination_addr: str = ""
    short_message: bytes = b""
    service_type: str = ""
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 0
    dest_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: tuple[Tlv, ...] = ()

    def tlv(self, tag: int) -> bytes | None:
        """The value of the first TLV with ``tag``, or None."""
        return next((t.value for t in self.tlvs if t.tag == tag), None)


@dataclass(frozen=True, slots=True)
class MessageIdBody:
    """submit_sm_resp (§4.4.2) and deliver_sm_resp (§4.6.2): a message id (empty for the latter)."""

    message_id: str = ""


SmppBody = BindBody | BindRespBody | ShortMessage | MessageIdBody | None


@dataclass(frozen=True, slots=True)
class SmppPdu:
    """One PDU: header fields and, for commands that have one, the body."""

    command_id: int
    sequence: int
    status: int = 0
    body: SmppBody = field(default=None)


# C-Octet string maximum sizes, NUL included (§4)
_SIZES = {
    "system_id": 16,
    "password": 9,
    "system_type": 13,
    "address_range": 41,
    "service_type": 6,
    "addr": 21,
    "time": 17,
    "message_id": 65,
}


def _cstring(value: str, size: int, name: str) -> bytes:
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise GatewayMessageError(f"{name}: {value!r} is not ASCII") from exc
    if len(raw) >= size or b"\0" in raw:
        raise GatewayMessageError(f"{name}: {value!r} is longer than {size - 1} characters")
    return raw + b"\0"


def _tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    return b"".join(struct.pack(">HH", t.tag, len(t.value)) + t.value for t in tlvs)


def _short_message(body: ShortMessage) -> bytes:
    if len(body.short_message) > 254:
        raise GatewayMessageError("short_message: more than 254 octets (use message_payload)")
    return b"".join(
        (
            _cstring(body.service_type, _SIZES["service_type"], "service_type"),
            bytes((body.source_ton, body.source_npi)),
            _cstring(body.source_addr, _SIZES["addr"], "source_addr"),
            bytes((body.dest_ton, body.dest_npi)),
            _cstring(body.destination_addr, _SIZES["addr"], "destination_addr"),
            bytes((body.esm_class, body.protocol_id, body.priority_flag)),
            _cstring(body.schedule_delivery_time, _SIZES["time"], "schedule_delivery_time"),
            _cstring(body.validity_period, _SIZES["time"], "validity_period"),
            bytes(
                (
                    body.registered_delivery,
                    body.replace_if_present,
                    body.data_coding,
                    body.sm_default_msg_id,
                    len(body.short_message),
                )
            ),
            body.short_message,
            _tlvs(body.tlvs),
        )
    )


def _encode_body(body: SmppBody) -> bytes:
    if body is None:
        return b""
    if isinstance(body, BindBody):
        return b"".join(
            (
                _cstring(body.system_id, _SIZES["system_id"], "system_id"),
                _cstring(body.password, _SIZES["password"], "password"),
                _cstring(body.system_type, _SIZES["system_type"], "system_type"),
                bytes((body.interface_version, body.addr_ton, body.addr_npi)),
                _cstring(body.address_range, _SIZES["address_range"], "address_range"),
            )
        )
    if isinstance(body, BindRespBody):
        return _cstring(body.system_id, _SIZES["system_id"], "system_id") + _tlvs(body.tlvs)
    if isinstance(body, ShortMessage):
        return _short_message(body)
    return _cstring(body.message_id, _SIZES["message_id"], "message_id")


def encode(pdu: SmppPdu) -> bytes:
    """The octets of ``pdu``, header included; GatewayMessageError for an oversized field."""
    body = _encode_body(pdu.body)
    header = struct.pack(
        ">IIII", HEADER_LENGTH + len(body), pdu.command_id, pdu.status, pdu.sequence
    )
    return header + body


class _Reader:
    """Walks a PDU body, raising GatewayProtocolError when a field runs past its end."""

    def __init__(self, data: bytes, command: str) -> None:
        self.data = data
        self.offset = 0
        self.command = command

    def fail(self, what: str) -> GatewayProtocolError:
        return GatewayProtocolError(
            f"{self.command}: {what} at octet {self.offset + HEADER_LENGTH}"
        )

    def cstring(self, size: int, name: str) -> str:
        end = self.data.find(b"\0", self.offset, self.offset + size)
        if end < 0:
            raise self.fail(f"{name} is not NUL-terminated within {size} octets")
        raw = self.data[self.offset : end]
        self.offset = end + 1
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{name} is not ASCII") from None

    def octets(self, count: int, name: str) -> bytes:
        if self.offset + count > len(self.data):
            raise self.fail(f"{name} runs past the end")
        raw = self.data[self.offset : self.offset + count]
        self.offset += count
        return raw

    def tlvs(self) -> tuple[Tlv, ...]:
        found: list[Tlv] = []
        while self.offset < len(self.data):
            tag, length = struct.unpack(">HH", self.octets(4, "TLV header"))
            found.append(Tlv(tag, self.octets(length, f"TLV {tag:#06x}")))
        return tuple(found)


def _decode_short_message(reader: _Reader) -> ShortMessage:
    service_type = reader.cstring(_SIZES["service_type"], "service_type")
    source_ton, source_npi = reader.octets(2, "source_addr_ton")
    source_addr = reader.cstring(_SIZES["addr"], "source_addr")
    dest_ton, dest_npi = reader.octets(2, "dest_addr_ton")
    destination_addr = reader.cstring(_SIZES["addr"], "destination_addr")
    esm_class, protocol_id, priority_flag = reader.octets(3, "esm_class")
    schedule = reader.cstring(_SIZES["time"], "schedule_delivery_time")
    validity = reader.cstring(_SIZES["time"], "validity_period")
    registered, replace, coding, default_id, length = reader.octets(5, "registered_delivery")
    short_message = reader.octets(length, "short_message")
    return ShortMessage(
        source_addr, destination_addr, short_message, service_type, source_ton, source_npi,
        dest_ton, dest_npi, esm_class, protocol_id, priority_flag, schedule, validity,
        registered, replace, coding, default_id, reader.tlvs(),
    )  # fmt: skip


KNOWN = HEADER_ONLY | {
    BIND_TRANSCEIVER, BIND_TRANSCEIVER_RESP, SUBMIT_SM, SUBMIT_SM_RESP, DELIVER_SM, DELIVER_SM_RESP
}  # fmt: skip


def _decode_body(command_id: int, status: int, reader: _Reader) -> SmppBody:
    if command_id not in KNOWN or command_id in HEADER_ONLY:
        return None
    if command_id == BIND_TRANSCEIVER:
        system_id = reader.cstring(_SIZES["system_id"], "system_id")
        password = reader.cstring(_SIZES["password"], "password")
        system_type = reader.cstring(_SIZES["system_type"], "system_type")
        version, ton, npi = reader.octets(3, "interface_version")
        address_range = reader.cstring(_SIZES["address_range"], "address_range")
        return BindBody(system_id, password, system_type, version, ton, npi, address_range)
    if command_id in (SUBMIT_SM, DELIVER_SM):
        return _decode_short_message(reader)
    if not reader.data:
        return None  # §4.1.6, §4.4.2: a refusal may carry no body; some SMSCs omit it anyway
    if command_id == BIND_TRANSCEIVER_RESP:
        return BindRespBody(reader.cstring(_SIZES["system_id"], "system_id"), reader.tlvs())
    return MessageIdBody(reader.cstring(_SIZES["message_id"], "message_id"))


def decode(frame: bytes) -> SmppPdu:
    """The PDU in ``frame`` (one whole PDU); GatewayProtocolError if it is not one."""
    if len(frame) < HEADER_LENGTH:
        raise GatewayProtocolError(f"PDU of {len(frame)} octets is shorter than its header")
    length, command_id, status, sequence = struct.unpack(">IIII", frame[:HEADER_LENGTH])
    if length != len(frame):
        raise GatewayProtocolError(f"command_length {length} but {len(frame)} octets")
    reader = _Reader(frame[HEADER_LENGTH:], f"command {command_id:#010x}")
    return SmppPdu(command_id, sequence, status, _decode_body(command_id, status, reader))
