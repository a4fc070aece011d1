"""UECP message elements: the RDS settings a controller sends and the encoder's answer.

Follows the message element definitions of EBU SPB 490 (UECP, version 7); every element
starts with its message element code (MEC). Elements addressed to a programme carry a data
set number (DSN) and a programme service number (PSN) after the MEC.

=====  ======  =====================================================================
MEC    name    layout after the MEC
=====  ======  =====================================================================
0x01   PI      DSN PSN PI(2, big-endian)               (Programme Identification)
0x02   PS      DSN PSN PS(8, RDS character set)        (Programme Service name)
0x03   TA/TP   DSN PSN flags: bit 0 TA, bit 1 TP       (Traffic Announcement/Programme)
0x07   PTY     DSN PSN PTY(0..31; 30 alarm test, 31 alarm)          (Programme TYpe)
0x0A   RT      DSN PSN MEL [flags text(MEL-1)]; MEL 0 clears the buffer  (RadioText)
               flags: bits 6-5 buffer configuration (00 replace, 10 append),
               bits 4-1 number of transmissions (0 = without end), bit 0 toggle A/B;
               a text shorter than 64 characters ends with 0x0D (EN 50067 3.1.5.3:
               the end-of-text marker for displays longer than the message)
0x2B   EWS     5 bytes: the 37 bits of group 9A (5 of block 2, blocks 3 and 4),
               no DSN/PSN; the meaning of the bits is nationally defined
               (Emergency Warning System)
0x18   ACK     code [SQC]; the sequence counter follows a negative code
               (Message acknowledgement, encoder to controller)
0x17   REQ     MEL MEC [DSN PSN]: ask for the current data of an element; the
               encoder answers with that element          (Message request)
0x2C   MODE    communication mode: 0 unidirectional, 1 bidirectional with
               requested response, 2 bidirectional with spontaneous
               response (an answer to every message)    (Communication mode)
=====  ======  =====================================================================

Layouts were cross-checked against the public ``python-uecp`` implementation and the
examples in the project's protocol notes (facts only, no code taken).
Pure functions shared by the drivers and the simulator. Bad element data raises
:class:`~drivers.rds.errors.RdsFrameError` with the acknowledgement code an encoder answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from drivers.rds.charset import PS_LENGTH, RT_MAX_LENGTH, decode_rds_text, encode_ps, encode_rt
from drivers.rds.errors import RdsFrameError, RdsValueError
from drivers.rds.state import EncoderState
from drivers.rds.uecp_frame import AckCode

RT_END = b"\x0d"


class ElementCode(IntEnum):
    """Message element codes used here (SPB 490 MEC values)."""

    PI = 0x01
    PS = 0x02
    TA_TP = 0x03
    PTY = 0x07
    RT = 0x0A
    REQUEST = 0x17
    ACK = 0x18
    EWS = 0x2B
    COMMUNICATION_MODE = 0x2C


class CommunicationMode(IntEnum):
    """Whether and when the encoder answers (SPB 490, MEC 0x2C)."""

    UNIDIRECTIONAL = 0
    REQUESTED_RESPONSE = 1
    SPONTANEOUS_RESPONSE = 2


class RtBuffer(IntEnum):
    """RadioText buffer configuration (bits 6-5 of the RT flags byte)."""

    REPLACE = 0b00
    APPEND = 0b10


@dataclass(frozen=True, slots=True)
class EwsPayload:
    """The 37 free bits of an RDS group 9A: 5 in block 2, 16 in block 3, 16 in block 4."""

    block2_bits: int
    block3: int
    block4: int

    def __post_init__(self) -> None:
        if not 0 <= self.block2_bits <= 0x1F:
            raise RdsValueError(f"EWS block 2 bits {self.block2_bits} outside 0..31")
        for name, value in (("block 3", self.block3), ("block 4", self.block4)):
            if not 0 <= value <= 0xFFFF:
                raise RdsValueError(f"EWS {name} value {value} outside 0..0xFFFF")

    def to_bytes(self) -> bytes:
        """The five data bytes of the UECP EWS element."""
        return (
            bytes((self.block2_bits,))
            + self.block3.to_bytes(2, "big")
            + self.block4.to_bytes(2, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> EwsPayload:
        """Read the five data bytes of a UECP EWS element."""
        if len(data) != 5:
            raise RdsValueError(f"EWS payload needs 5 bytes, got {len(data)}")
        return cls(
            data[0] & 0x1F, int.from_bytes(data[1:3], "big"), int.from_bytes(data[3:5], "big")
        )


@dataclass(frozen=True, slots=True)
class PiElement:
    pi: int
    dsn: int = 0
    psn: int = 0


@dataclass(frozen=True, slots=True)
class PsElement:
    ps: str
    dsn: int = 0
    psn: int = 0


@dataclass(frozen=True, slots=True)
class TaTpElement:
    ta: bool
    tp: bool
    dsn: int = 0
    psn: int = 0


@dataclass(frozen=True, slots=True)
class PtyElement:
    pty: int
    dsn: int = 0
    psn: int = 0


@dataclass(frozen=True, slots=True)
class RtElement:
    text: str
    transmissions: int = 0
    toggle_ab: bool = True
    buffer: RtBuffer = RtBuffer.REPLACE
    dsn: int = 0
    psn: int = 0


@dataclass(frozen=True, slots=True)
class EwsElement:
    payload: EwsPayload


@dataclass(frozen=True, slots=True)
class AckElement:
    code: AckCode
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class CommunicationModeElement:
    mode: CommunicationMode


@dataclass(frozen=True, slots=True)
class RequestElement:
    element_code: int
    dsn: int = 0
    psn: int = 0


#: The elements whose current data a controller can read back with a request.
READABLE_CODES = (
    ElementCode.PI,
    ElementCode.PS,
    ElementCode.TA_TP,
    ElementCode.PTY,
    ElementCode.RT,
)


UecpElement = (
    PiElement
    | PsElement
    | TaTpElement
    | PtyElement
    | RtElement
    | EwsElement
    | AckElement
    | CommunicationModeElement
    | RequestElement
)


def _check_range(name: str, value: int, high: int) -> None:
    if not 0 <= value <= high:
        raise RdsValueError(f"{name} {value} outside 0..{high}")


def encode_element(element: UecpElement) -> bytes:
    """The bytes of one message element; raise RdsValueError for values RDS cannot carry."""
    match element:
        case PiElement(pi, dsn, psn):
            _check_range("PI", pi, 0xFFFF)
            return bytes((ElementCode.PI, dsn, psn)) + pi.to_bytes(2, "big")
        case PsElement(ps, dsn, psn):
            return bytes((ElementCode.PS, dsn, psn)) + encode_ps(ps)
        case TaTpElement(ta, tp, dsn, psn):
            return bytes((ElementCode.TA_TP, dsn, psn, int(tp) << 1 | int(ta)))
        case PtyElement(pty, dsn, psn):
            _check_range("PTY", pty, 31)
            return bytes((ElementCode.PTY, dsn, psn, pty))
        case RtElement(text, transmissions, toggle_ab, buffer, dsn, psn):
            _check_range("RT number of transmissions", transmissions, 15)
            head = bytes((ElementCode.RT, dsn, psn))
            if not text and buffer is RtBuffer.REPLACE:
                return head + b"\x00"
            encoded = encode_rt(text)
            if len(encoded) < RT_MAX_LENGTH:
                encoded += RT_END
            flags = buffer << 5 | transmissions << 1 | int(toggle_ab)
            return head + bytes((len(encoded) + 1, flags)) + encoded
        case EwsElement(payload):
            return bytes((ElementCode.EWS,)) + payload.to_bytes()
        case CommunicationModeElement(mode):
            return bytes((ElementCode.COMMUNICATION_MODE, mode))
        case RequestElement(element_code, dsn, psn):
            _check_range("requested element code", element_code, 0xFF)
            return bytes((ElementCode.REQUEST, 3, element_code, dsn, psn))
        case AckElement(code, sequence):
            if code is AckCode.OK:
                return bytes((ElementCode.ACK, code))
            return bytes((ElementCode.ACK, code, sequence))
    raise RdsValueError(f"not a UECP element: {element!r}")


def element_state(element: UecpElement) -> EncoderState | None:
    """The on-air state an element sets or reports, or None for other elements."""
    match element:
        case PiElement(pi):
            return EncoderState(pi=pi)
        case PsElement(ps):
            return EncoderState(ps=ps)
        case TaTpElement(ta, tp):
            return EncoderState(ta=ta, tp=tp)
        case PtyElement(pty):
            return EncoderState(pty=pty)
        case RtElement(text):
            return EncoderState(rt=text)
    return None


def state_elements(state: EncoderState, dsn: int = 0, psn: int = 0) -> list[UecpElement]:
    """The elements reporting every field of ``state`` that is set (TA and TP together)."""
    elements: list[UecpElement] = []
    if state.pi is not None:
        elements.append(PiElement(state.pi, dsn, psn))
    if state.pty is not None:
        elements.append(PtyElement(state.pty, dsn, psn))
    if state.ps is not None:
        elements.append(PsElement(state.ps, dsn, psn))
    if state.rt is not None:
        elements.append(RtElement(state.rt, dsn=dsn, psn=psn))
    if state.ta is not None or state.tp is not None:
        elements.append(TaTpElement(bool(state.ta), bool(state.tp), dsn, psn))
    return elements


def encode_message(elements: list[UecpElement]) -> bytes:
    """The message field carrying ``elements`` in order."""
    return b"".join(encode_element(element) for element in elements)


def _need(data: bytes, offset: int, count: int, mec: int) -> bytes:
    if offset + count > len(data):
        raise RdsFrameError(
            f"element 0x{mec:02X} needs {count} bytes, {len(data) - offset} left",
            AckCode.ELEMENT_LENGTH_ERROR,
        )
    return data[offset : offset + count]


def _text(data: bytes, field: str) -> str:
    try:
        return decode_rds_text(data, field=field)
    except RdsValueError as error:
        raise RdsFrameError(str(error), AckCode.PARAMETER_OUT_OF_RANGE) from error


def _decode_one(data: bytes, offset: int) -> tuple[UecpElement, int]:
    mec = data[offset]
    pos = offset + 1
    if mec == ElementCode.ACK:
        (raw_code,) = _need(data, pos, 1, mec)
        try:
            code = AckCode(raw_code)
        except ValueError as error:
            raise RdsFrameError(
                f"unknown ACK code {raw_code}", AckCode.PARAMETER_OUT_OF_RANGE
            ) from error
        if code is AckCode.OK:
            return AckElement(code), pos + 1
        (sequence,) = _need(data, pos + 1, 1, mec)
        return AckElement(code, sequence), pos + 2
    if mec == ElementCode.REQUEST:
        (mel,) = _need(data, pos, 1, mec)
        if mel == 0:
            raise RdsFrameError("empty message request", AckCode.ELEMENT_LENGTH_ERROR)
        body = _need(data, pos + 1, mel, mec).ljust(3, b"\x00")
        return RequestElement(body[0], body[1], body[2]), pos + 1 + mel
    if mec == ElementCode.COMMUNICATION_MODE:
        (raw_mode,) = _need(data, pos, 1, mec)
        if raw_mode > CommunicationMode.SPONTANEOUS_RESPONSE:
            raise RdsFrameError(
                f"communication mode {raw_mode} outside 0..2", AckCode.PARAMETER_OUT_OF_RANGE
            )
        return CommunicationModeElement(CommunicationMode(raw_mode)), pos + 1
    if mec == ElementCode.EWS:
        return EwsElement(EwsPayload.from_bytes(_need(data, pos, 5, mec))), pos + 5
    if mec not in (
        ElementCode.PI,
        ElementCode.PS,
        ElementCode.TA_TP,
        ElementCode.PTY,
        ElementCode.RT,
    ):
        raise RdsFrameError(f"unknown message element 0x{mec:02X}", AckCode.MESSAGE_UNKNOWN)
    dsn, psn = _need(data, pos, 2, mec)
    pos += 2
    if mec == ElementCode.PI:
        return PiElement(int.from_bytes(_need(data, pos, 2, mec), "big"), dsn, psn), pos + 2
    if mec == ElementCode.PS:
        return PsElement(_text(_need(data, pos, PS_LENGTH, mec), "PS"), dsn, psn), pos + PS_LENGTH
    if mec == ElementCode.TA_TP:
        (flags,) = _need(data, pos, 1, mec)
        return TaTpElement(bool(flags & 1), bool(flags & 2), dsn, psn), pos + 1
    if mec == ElementCode.PTY:
        (pty,) = _need(data, pos, 1, mec)
        if pty > 31:
            raise RdsFrameError(f"PTY {pty} outside 0..31", AckCode.PARAMETER_OUT_OF_RANGE)
        return PtyElement(pty, dsn, psn), pos + 1
    (mel,) = _need(data, pos, 1, mec)
    pos += 1
    if mel == 0:
        return RtElement("", dsn=dsn, psn=psn), pos
    if mel > RT_MAX_LENGTH + 1:
        raise RdsFrameError(f"RT element length {mel} exceeds 65", AckCode.ELEMENT_LENGTH_ERROR)
    body = _need(data, pos, mel, mec)
    flags = body[0]
    text, _, _ = body[1:].partition(RT_END)
    element = RtElement(
        _text(text, "RT"),
        transmissions=(flags >> 1) & 0x0F,
        toggle_ab=bool(flags & 1),
        buffer=RtBuffer.APPEND if flags & 0x40 else RtBuffer.REPLACE,
        dsn=dsn,
        psn=psn,
    )
    return element, pos + mel


def decode_message(data: bytes) -> list[UecpElement]:
    """Split a message field into elements; raise RdsFrameError on unknown or short elements."""
    elements: list[UecpElement] = []
    offset = 0
    while offset < len(data):
        element, offset = _decode_one(data, offset)
        elements.append(element)
    return elements
