"""CMPP 2.0 and 3.0 PDUs (China Mobile Peer to Peer): encode and decode, pure functions.

Follows the CMPP 2.0 and CMPP 3.0 interface specifications (China Mobile), §7.4: a 12-octet
header (Total_Length, Command_Id, Sequence_Id, unsigned 32-bit big-endian), Octet String
fields of fixed width padded with NUL, §7.4.1 CMPP_CONNECT/_RESP, §7.4.3 CMPP_SUBMIT/_RESP,
§7.4.5 CMPP_DELIVER/_RESP and its status report body, §7.4.2 CMPP_TERMINATE/_RESP, §7.4.9
CMPP_ACTIVE_TEST/_RESP. The versions differ in field widths: terminal ids are 21 octets in 2.0
and 32 in 3.0 (which adds the terminal-type octets and LinkID), and the Status/Result fields
of the responses are 1 octet in 2.0 and 4 in 3.0. A PDU with a Command_Id this codec does not
know (CMPP_QUERY, CMPP_CANCEL, ...) decodes with its header and no body: the specifications
define no negative answer, so the session ignores it and the connection stays up.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime

from drivers.smsgw.errors import GatewayMessageError, GatewayProtocolError

CONNECT = 0x00000001
CONNECT_RESP = 0x80000001
TERMINATE = 0x00000002
TERMINATE_RESP = 0x80000002
SUBMIT = 0x00000004
SUBMIT_RESP = 0x80000004
DELIVER = 0x00000005
DELIVER_RESP = 0x80000005
ACTIVE_TEST = 0x00000008
ACTIVE_TEST_RESP = 0x80000008
HEADER_ONLY = frozenset({TERMINATE, TERMINATE_RESP, ACTIVE_TEST})
HEADER_LENGTH = 12

V2 = 0x20
V3 = 0x30
MSG_FMT_ASCII = 0
MSG_FMT_UCS2 = 8
MSG_FMT_GBK = 15


def terminal_width(version: int) -> int:
    """Octets of a terminal id: 21 in CMPP 2.0, 32 in CMPP 3.0."""
    return 32 if version >= V3 else 21


@dataclass(frozen=True, slots=True)
class Connect:
    """CMPP_CONNECT (§7.4.1.1)."""

    source_addr: str
    authenticator: bytes
    version: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class ConnectResp:
    """CMPP_CONNECT_RESP (§7.4.1.2)."""

    status: int
    authenticator: bytes
    version: int


@dataclass(frozen=True, slots=True)
class Submit:
    """CMPP_SUBMIT (§7.4.3.1) for one segment to one or more terminals."""

    dest_terminal_ids: tuple[str, ...]
    content: bytes
    msg_fmt: int = MSG_FMT_UCS2
    tp_udhi: int = 0
    pk_total: int = 1
    pk_number: int = 1
    registered_delivery: int = 1
    msg_level: int = 0
    service_id: str = ""
    fee_user_type: int = 2
    fee_terminal_id: str = ""
    fee_terminal_type: int = 0
    tp_pid: int = 0
    msg_src: str = ""
    fee_type: str = "01"
    fee_code: str = "000000"
    valid_time: str = ""
    at_time: str = ""
    src_id: str = ""
    dest_terminal_type: int = 0
    link_id: str = ""
    msg_id: int = 0


@dataclass(frozen=True, slots=True)
class MsgIdResult:
    """CMPP_SUBMIT_RESP (§7.4.3.2) and CMPP_DELIVER_RESP (§7.4.5.2)."""

    msg_id: int
    result: int


@dataclass(frozen=True, slots=True)
class Deliver:
    """CMPP_DELIVER (§7.4.5.1): an uplink message, or a status report when
    ``registered_delivery`` is 1 (``content`` then holds ``StatusReport``)."""

    msg_id: int
    dest_id: str
    src_terminal_id: str
    content: bytes
    registered_delivery: int = 0
    msg_fmt: int = 0
    service_id: str = ""
    tp_pid: int = 0
    tp_udhi: int = 0
    src_terminal_type: int = 0
    link_id: str = ""


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The Msg_Content of a status-report CMPP_DELIVER (§7.4.5.1, 状态报告)."""

    msg_id: int
    stat: str
    submit_time: str
    done_time: str
    dest_terminal_id: str
    smsc_sequence: int


@dataclass(frozen=True, slots=True)
class ActiveTestResp:
    """CMPP_ACTIVE_TEST_RESP (§7.4.9.2): one reserved octet."""

    reserved: int = 0


CmppBody = Connect | ConnectResp | Submit | MsgIdResult | Deliver | ActiveTestResp | None


@dataclass(frozen=True, slots=True)
class CmppPdu:
    """One PDU: header fields and, for commands that have one, the body."""

    command_id: int
    sequence: int
    body: CmppBody = None


def timestamp_text(moment: datetime) -> str:
    """The ``MMDDHHMMSS`` form the authenticator and the Timestamp field use."""
    return f"{moment:%m%d%H%M%S}"


def valid_time_text(moment: datetime) -> str:
    """ValId_Time / At_Time of an aware ``moment``: ``YYMMDDhhmmsstnnp``, the SMPP 3.3 format
    the specifications name (``t`` tenths of a second, ``nn`` the offset from UTC in quarter
    hours, ``p`` ``+`` ahead of UTC or ``-`` behind), e.g. ``260101120000032+`` in Beijing."""
    offset = moment.utcoffset()
    if offset is None:
        raise GatewayMessageError("ValId_Time: the time needs its time zone")
    quarters = round(offset.total_seconds() / 900)
    sign = "-" if quarters < 0 else "+"
    return f"{moment:%y%m%d%H%M%S}{moment.microsecond // 100_000}{abs(quarters):02d}{sign}"


def authenticator_source(sp_id: str, secret: str, timestamp: str) -> bytes:
    """AuthenticatorSource = MD5(Source_Addr + 9 zero octets + shared secret + timestamp)."""
    raw = sp_id.encode("ascii") + b"\0" * 9 + secret.encode("ascii") + timestamp.encode("ascii")
    return hashlib.md5(raw, usedforsecurity=False).digest()


def authenticator_ismg(status: int, source: bytes, secret: str, version: int) -> bytes:
    """AuthenticatorISMG = MD5(Status + AuthenticatorSource + shared secret)."""
    status_octets = status.to_bytes(4 if version >= V3 else 1, "big")
    return hashlib.md5(
        status_octets + source + secret.encode("ascii"), usedforsecurity=False
    ).digest()


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def number(self, value: int, width: int) -> None:
        self.parts.append(value.to_bytes(width, "big"))

    def text(self, value: str, width: int, name: str) -> None:
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise GatewayMessageError(f"{name}: {value!r} is not ASCII") from None
        if len(raw) > width:
            raise GatewayMessageError(f"{name}: {value!r} is longer than {width} octets")
        self.parts.append(raw.ljust(width, b"\0"))

    def raw(self, value: bytes) -> None:
        self.parts.append(value)


class _Reader:
    def __init__(self, data: bytes, command: str) -> None:
        self.data = data
        self.offset = 0
        self.command = command

    def raw(self, width: int, name: str) -> bytes:
        if self.offset + width > len(self.data):
            raise GatewayProtocolError(f"{self.command}: {name} runs past the end of the PDU")
        value = self.data[self.offset : self.offset + width]
        self.offset += width
        return value

    def number(self, width: int, name: str) -> int:
        return int.from_bytes(self.raw(width, name), "big")

    def text(self, width: int, name: str) -> str:
        return self.raw(width, name).rstrip(b"\0").decode("latin-1")


def _status_width(version: int) -> int:
    return 4 if version >= V3 else 1


def _encode_submit(out: _Writer, body: Submit, version: int) -> None:
    width = terminal_width(version)
    out.number(body.msg_id, 8)
    for value in (body.pk_total, body.pk_number, body.registered_delivery, body.msg_level):
        out.number(value, 1)
    out.text(body.service_id, 10, "Service_Id")
    out.number(body.fee_user_type, 1)
    out.text(body.fee_terminal_id, width, "Fee_terminal_Id")
    if version >= V3:
        out.number(body.fee_terminal_type, 1)
    for value in (body.tp_pid, body.tp_udhi, body.msg_fmt):
        out.number(value, 1)
    out.text(body.msg_src, 6, "Msg_src")
    out.text(body.fee_type, 2, "FeeType")
    out.text(body.fee_code, 6, "FeeCode")
    out.text(body.valid_time, 17, "ValId_Time")
    out.text(body.at_time, 17, "At_Time")
    out.text(body.src_id, 21, "Src_Id")
    if not 1 <= len(body.dest_terminal_ids) <= 100:
        raise GatewayMessageError("DestUsr_tl: 1 to 100 destination terminals")
    out.number(len(body.dest_terminal_ids), 1)
    for terminal in body.dest_terminal_ids:
        out.text(terminal, width, "Dest_terminal_Id")
    if version >= V3:
        out.number(body.dest_terminal_type, 1)
    if len(body.content) > 140:
        raise GatewayMessageError("Msg_Content: more than 140 octets")
    out.number(len(body.content), 1)
    out.raw(body.content)
    out.text(body.link_id, 20 if version >= V3 else 8, "LinkID" if version >= V3 else "Reserve")


def _decode_submit(source: _Reader, version: int) -> Submit:
    width = terminal_width(version)
    msg_id = source.number(8, "Msg_Id")
    pk_total, pk_number, registered, level = source.raw(4, "Pk_total")
    service_id = source.text(10, "Service_Id")
    fee_user_type = source.number(1, "Fee_UserType")
    fee_terminal_id = source.text(width, "Fee_terminal_Id")
    fee_terminal_type = source.number(1, "Fee_terminal_type") if version >= V3 else 0
    tp_pid, tp_udhi, msg_fmt = source.raw(3, "TP_pId")
    msg_src = source.text(6, "Msg_src")
    fee_type = source.text(2, "FeeType")
    fee_code = source.text(6, "FeeCode")
    valid_time = source.text(17, "ValId_Time")
    at_time = source.text(17, "At_Time")
    src_id = source.text(21, "Src_Id")
    count = source.number(1, "DestUsr_tl")
    terminals = tuple(source.text(width, "Dest_terminal_Id") for _ in range(count))
    dest_terminal_type = source.number(1, "Dest_terminal_type") if version >= V3 else 0
    content = source.raw(source.number(1, "Msg_Length"), "Msg_Content")
    link_id = source.text(20 if version >= V3 else 8, "LinkID")
    return Submit(
        terminals, content, msg_fmt, tp_udhi, pk_total, pk_number, registered, level,
        service_id, fee_user_type, fee_terminal_id, fee_terminal_type, tp_pid, msg_src,
        fee_type, fee_code, valid_time, at_time, src_id, dest_terminal_type, link_id, msg_id,
    )  # fmt: skip


def _encode_deliver(out: _Writer, body: Deliver, version: int) -> None:
    out.number(body.msg_id, 8)
    out.text(body.dest_id, 21, "Dest_Id")
    out.text(body.service_id, 10, "Service_Id")
    for value in (body.tp_pid, body.tp_udhi, body.msg_fmt):
        out.number(value, 1)
    out.text(body.src_terminal_id, terminal_width(version), "Src_terminal_Id")
    if version >= V3:
        out.number(body.src_terminal_type, 1)
    out.number(body.registered_delivery, 1)
    out.number(len(body.content), 1)
    out.raw(body.content)
    out.text(body.link_id, 20 if version >= V3 else 8, "LinkID" if version >= V3 else "Reserved")


def _decode_deliver(source: _Reader, version: int) -> Deliver:
    msg_id = source.number(8, "Msg_Id")
    dest_id = source.text(21, "Dest_Id")
    service_id = source.text(10, "Service_Id")
    tp_pid, tp_udhi, msg_fmt = source.raw(3, "TP_pid")
    src_terminal_id = source.text(terminal_width(version), "Src_terminal_Id")
    src_terminal_type = source.number(1, "Src_terminal_type") if version >= V3 else 0
    registered = source.number(1, "Registered_Delivery")
    content = source.raw(source.number(1, "Msg_Length"), "Msg_Content")
    link_id = source.text(20 if version >= V3 else 8, "LinkID")
    return Deliver(
        msg_id, dest_id, src_terminal_id, content, registered, msg_fmt, service_id, tp_pid,
        tp_udhi, src_terminal_type, link_id,
    )  # fmt: skip


def encode_status_report(report: StatusReport, version: int) -> bytes:
    """The Msg_Content of a status report: 60 octets in CMPP 2.0, 71 in 3.0."""
    out = _Writer()
    out.number(report.msg_id, 8)
    out.text(report.stat, 7, "Stat")
    out.text(report.submit_time, 10, "Submit_time")
    out.text(report.done_time, 10, "Done_time")
    out.text(report.dest_terminal_id, terminal_width(version), "Dest_terminal_Id")
    out.number(report.smsc_sequence, 4)
    return b"".join(out.parts)


def decode_status_report(content: bytes, version: int) -> StatusReport:
    """The status report in a CMPP_DELIVER's Msg_Content."""
    source = _Reader(content, "status report")
    report = StatusReport(
        source.number(8, "Msg_Id"),
        source.text(7, "Stat"),
        source.text(10, "Submit_time"),
        source.text(10, "Done_time"),
        source.text(terminal_width(version), "Dest_terminal_Id"),
        source.number(4, "SMSC_sequence"),
    )
    return report


def encode(pdu: CmppPdu, version: int) -> bytes:
    """The octets of ``pdu`` in CMPP ``version`` (0x20 or 0x30), header included."""
    out = _Writer()
    body = pdu.body
    if isinstance(body, Connect):
        out.text(body.source_addr, 6, "Source_Addr")
        out.raw(body.authenticator)
        out.number(body.version, 1)
        out.number(body.timestamp, 4)
    elif isinstance(body, ConnectResp):
        out.number(body.status, _status_width(version))
        out.raw(body.authenticator)
        out.number(body.version, 1)
    elif isinstance(body, Submit):
        _encode_submit(out, body, version)
    elif isinstance(body, MsgIdResult):
        out.number(body.msg_id, 8)
        out.number(body.result, _status_width(version))
    elif isinstance(body, Deliver):
        _encode_deliver(out, body, version)
    elif isinstance(body, ActiveTestResp):
        out.number(body.reserved, 1)
    payload = b"".join(out.parts)
    return struct.pack(">III", HEADER_LENGTH + len(payload), pdu.command_id, pdu.sequence) + payload


def decode(frame: bytes, version: int) -> CmppPdu:
    """The PDU in ``frame`` (one whole PDU); GatewayProtocolError if it is not one."""
    if len(frame) < HEADER_LENGTH:
        raise GatewayProtocolError(f"PDU of {len(frame)} octets is shorter than its header")
    length, command_id, sequence = struct.unpack(">III", frame[:HEADER_LENGTH])
    if length != len(frame):
        raise GatewayProtocolError(f"Total_Length {length} but {len(frame)} octets")
    source = _Reader(frame[HEADER_LENGTH:], f"command {command_id:#010x}")
    body: CmppBody
    if command_id in HEADER_ONLY:
        body = None
    elif command_id == CONNECT:
        body = Connect(
            source.text(6, "Source_Addr"), source.raw(16, "AuthenticatorSource"),
            source.number(1, "Version"), source.number(4, "Timestamp"),
        )  # fmt: skip
    elif command_id == CONNECT_RESP:
        # the Status width tells the versions apart, so a refusal from a gateway of the other
        # version (Status 4, version too high) still reads
        status_width = 1 if len(source.data) == 18 else _status_width(version)
        body = ConnectResp(
            source.number(status_width, "Status"), source.raw(16, "AuthenticatorISMG"),
            source.number(1, "Version"),
        )  # fmt: skip
    elif command_id == SUBMIT:
        body = _decode_submit(source, version)
    elif command_id in (SUBMIT_RESP, DELIVER_RESP):
        body = MsgIdResult(
            source.number(8, "Msg_Id"), source.number(_status_width(version), "Result")
        )
    elif command_id == DELIVER:
        body = _decode_deliver(source, version)
    elif command_id == ACTIVE_TEST_RESP:
        body = ActiveTestResp(source.number(1, "Reserved")) if source.data else ActiveTestResp()
    else:
        body = None  # not known here: the session ignores it
    return CmppPdu(command_id, sequence, body)


def msg_id(moment: datetime, gateway_code: int, serial: int) -> int:
    """A Msg_Id as an ISMG makes it: month, day, hour, minute, second (4/5/5/6/6 bits), the
    22-bit gateway code and a 16-bit serial."""
    value = moment.month
    for part, bits in ((moment.day, 5), (moment.hour, 5), (moment.minute, 6), (moment.second, 6)):
        value = (value << bits) | part
    return (((value << 22) | (gateway_code & 0x3FFFFF)) << 16) | (serial & 0xFFFF)
