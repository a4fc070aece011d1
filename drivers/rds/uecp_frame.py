"""UECP frame layer: CRC, byte stuffing, framing and a streaming frame reader.

Follows the frame format of EBU SPB 490 (UECP, version 7)::

    STA  ADD(2)  SQC  MFL  MSG(MFL bytes)  CRC(2)  STP
    FE   site:10 bits + encoder:6 bits, big-endian   FF

* SQC is the sequence counter: 0 means "not used", 1..255 count cyclically.
* MFL is the length of the message field, 0..255 bytes.
* The CRC is CRC-16/GENIBUS (CCITT polynomial 0x1021, initial value 0xFFFF, result inverted;
  the check value over ``b"123456789"`` is 0xD64E), over ADD..MSG before stuffing, sent
  high byte first. It is the standard library's CRC-CCITT (``binascii.crc_hqx``, in C) started
  at 0xFFFF and inverted: about 90 times faster than a loop in Python and the same CRC
  (``tests/rds/test_uecp_codec.py`` checks both on the UECP vectors and on random data).
* Byte stuffing applies to ADD..CRC: 0xFD -> FD 00, 0xFE -> FD 01, 0xFF -> FD 02, so the
  start and stop bytes never occur inside a frame.

Pure functions shared by the drivers (controller side) and the simulator (encoder side).
Malformed input raises :class:`~drivers.rds.errors.RdsFrameError` carrying the UECP
acknowledgement code an encoder answers with (SPB 490 message acknowledgement, MEC 0x18).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from enum import IntEnum

from drivers.rds.errors import RdsFrameError

START = 0xFE
STOP = 0xFF
ESCAPE = 0xFD
MAX_MESSAGE_LENGTH = 255
MAX_SITE_ADDRESS = 0x3FF
MAX_ENCODER_ADDRESS = 0x3F
# Longest stuffed body: every byte of ADD+SQC+MFL+MSG+CRC doubled.
_MAX_STUFFED_BODY = 2 * (2 + 1 + 1 + MAX_MESSAGE_LENGTH + 2)


class AckCode(IntEnum):
    """Answer codes of the message acknowledgement element (SPB 490, MEC 0x18)."""

    OK = 0
    CRC_ERROR = 1
    MESSAGE_NOT_RECEIVED_COMPLETELY = 2
    MESSAGE_UNKNOWN = 3
    DSN_ERROR = 4
    PSN_ERROR = 5
    PARAMETER_OUT_OF_RANGE = 6
    ELEMENT_LENGTH_ERROR = 7
    FIELD_LENGTH_ERROR = 8
    MESSAGE_NOT_ACCEPTABLE = 9
    END_MESSAGE_MISSING = 10
    BUFFER_OVERFLOW = 11
    BAD_STUFFING = 12
    UNEXPECTED_END_OF_MESSAGE = 13


def crc16_genibus(data: bytes) -> int:
    """CRC-16/GENIBUS: poly 0x1021, init 0xFFFF, no reflection, final XOR 0xFFFF."""
    return binascii.crc_hqx(data, 0xFFFF) ^ 0xFFFF


def stuff(data: bytes) -> bytes:
    """Replace FD, FE and FF by FD 00, FD 01 and FD 02."""
    out = bytearray()
    for byte in data:
        if byte >= ESCAPE:
            out += bytes((ESCAPE, byte - ESCAPE))
        else:
            out.append(byte)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    """Undo :func:`stuff`; a lone or unknown escape is a stuffing error."""
    out = bytearray()
    escaped = False
    for byte in data:
        if escaped:
            if byte > 2:
                raise RdsFrameError(f"bad stuffing: FD {byte:02X}", AckCode.BAD_STUFFING)
            out.append(ESCAPE + byte)
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(byte)
    if escaped:
        raise RdsFrameError("bad stuffing: frame ends after FD", AckCode.BAD_STUFFING)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class UecpFrame:
    """One UECP frame: address, sequence counter and the raw message field."""

    site_address: int
    encoder_address: int
    sequence: int
    message: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.site_address <= MAX_SITE_ADDRESS:
            raise RdsFrameError(
                f"site address {self.site_address} outside 0..{MAX_SITE_ADDRESS}",
                AckCode.PARAMETER_OUT_OF_RANGE,
            )
        if not 0 <= self.encoder_address <= MAX_ENCODER_ADDRESS:
            raise RdsFrameError(
                f"encoder address {self.encoder_address} outside 0..{MAX_ENCODER_ADDRESS}",
                AckCode.PARAMETER_OUT_OF_RANGE,
            )
        if not 0 <= self.sequence <= 0xFF:
            raise RdsFrameError(
                f"sequence {self.sequence} outside 0..255", AckCode.PARAMETER_OUT_OF_RANGE
            )
        if len(self.message) > MAX_MESSAGE_LENGTH:
            raise RdsFrameError(
                f"message field of {len(self.message)} bytes exceeds {MAX_MESSAGE_LENGTH}",
                AckCode.FIELD_LENGTH_ERROR,
            )

    @property
    def address(self) -> int:
        """The 16-bit address field: site in the top 10 bits, encoder in the low 6."""
        return self.site_address << 6 | self.encoder_address


def encode_frame(frame: UecpFrame) -> bytes:
    """The bytes on the wire for ``frame``: STA, stuffed ADD..CRC, STP."""
    body = (
        frame.address.to_bytes(2, "big")
        + bytes((frame.sequence, len(frame.message)))
        + frame.message
    )
    crc = crc16_genibus(body)
    return bytes((START,)) + stuff(body + crc.to_bytes(2, "big")) + bytes((STOP,))


def decode_frame_body(stuffed: bytes) -> UecpFrame:
    """Decode the bytes between STA and STP: unstuff, check CRC and length."""
    body = unstuff(stuffed)
    if len(body) < 6:
        raise RdsFrameError(
            f"frame of {len(body)} bytes is too short", AckCode.UNEXPECTED_END_OF_MESSAGE
        )
    payload, received_crc = body[:-2], int.from_bytes(body[-2:], "big")
    computed_crc = crc16_genibus(payload)
    if received_crc != computed_crc:
        raise RdsFrameError(
            f"CRC error: frame says {received_crc:04X}, data gives {computed_crc:04X}",
            AckCode.CRC_ERROR,
        )
    address = int.from_bytes(payload[0:2], "big")
    sequence, length = payload[2], payload[3]
    message = payload[4:]
    if length != len(message):
        raise RdsFrameError(
            f"message field length says {length}, frame carries {len(message)}",
            AckCode.FIELD_LENGTH_ERROR,
        )
    return UecpFrame(address >> 6, address & MAX_ENCODER_ADDRESS, sequence, message)


def frame_sequence_hint(stuffed: bytes) -> int:
    """Best-effort sequence counter of a damaged frame, so a NAK can name it (0 if unknown)."""
    try:
        body = unstuff(stuffed)
    except RdsFrameError:
        return 0
    return body[2] if len(body) > 2 else 0


class UecpFrameReader:
    """Splits a byte stream into frames; bad frames come out as RdsFrameError items.

    Bytes outside STA..STP are line noise and are dropped. A new STA inside a frame means
    the previous frame lost its end: it is reported and the new frame starts.
    """

    def __init__(self) -> None:
        self._body = bytearray()
        self._inside = False

    def feed(self, data: bytes) -> list[UecpFrame | RdsFrameError]:
        """Consume ``data``; return the frames (or frame errors) it completed, in order."""
        results: list[UecpFrame | RdsFrameError] = []
        for byte in data:
            if byte == START:
                if self._inside and self._body:
                    results.append(
                        RdsFrameError("frame without stop byte", AckCode.END_MESSAGE_MISSING)
                    )
                self._body.clear()
                self._inside = True
            elif not self._inside:
                continue
            elif byte == STOP:
                results.append(self._finish())
            elif len(self._body) >= _MAX_STUFFED_BODY:
                self._body.clear()
                self._inside = False
                results.append(RdsFrameError("frame too long", AckCode.BUFFER_OVERFLOW))
            else:
                self._body.append(byte)
        return results

    def _finish(self) -> UecpFrame | RdsFrameError:
        body = bytes(self._body)
        self._body.clear()
        self._inside = False
        try:
            return decode_frame_body(body)
        except RdsFrameError as error:
            error.sequence = frame_sequence_hint(body)
            return error
