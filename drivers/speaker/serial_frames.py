"""Binary framing for RS-485 style serial lines (docs/protocols/speaker.md, section 4.2).

A frame is ``7E | address | sequence | kind | length (2, big-endian) | payload | CRC (2)``.
The CRC is CRC-16/MODBUS (reflected polynomial 0xA001, initial value 0xFFFF, check value of
``"123456789"`` = 0x4B37) over address..payload, sent low byte first as on Modbus RTU. There is
no byte stuffing: a receiver finds the next ``7E``, reads the header, and when the length is
impossible or the CRC wrong it drops that one byte and searches again. Pure functions and a
stream decoder shared by the hub's bus master and the box side.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from drivers.speaker.errors import FrameError

START = 0x7E
HEADER_LEN = 6
"""Start byte, address, sequence, kind and the two length bytes."""
CRC_LEN = 2
MAX_PAYLOAD = 16 * 1024
MIN_ADDRESS = 1
MAX_ADDRESS = 247


class FrameKind(IntEnum):
    """What a frame carries. Master frames are below 0x80, box replies above."""

    COMMAND = 0x01
    POLL = 0x02
    SYNC = 0x03
    """A poll that also asks the box to repeat its latest acknowledgements (section 4.2)."""
    MESSAGE = 0x81
    MESSAGE_MORE = 0x83
    IDLE = 0x82


_EMPTY_KINDS = frozenset({FrameKind.POLL, FrameKind.SYNC, FrameKind.IDLE})
"""Kinds that carry no payload: any other length makes their header impossible."""


@dataclass(frozen=True, slots=True)
class SerialFrame:
    """One decoded frame."""

    address: int
    sequence: int
    kind: FrameKind
    payload: bytes = b""


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def encode_frame(frame: SerialFrame) -> bytes:
    """Serialise a frame; raises FrameError for an out-of-range address, sequence or payload."""
    if not MIN_ADDRESS <= frame.address <= MAX_ADDRESS:
        raise FrameError(f"address {frame.address} outside {MIN_ADDRESS}..{MAX_ADDRESS}")
    if not 0 <= frame.sequence <= 0xFF:
        raise FrameError(f"sequence {frame.sequence} outside 0..255")
    if len(frame.payload) > MAX_PAYLOAD:
        raise FrameError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    if frame.payload and frame.kind in _EMPTY_KINDS:
        raise FrameError(f"a {frame.kind.name} frame carries no payload")
    body = (
        bytes([frame.address, frame.sequence, frame.kind])
        + len(frame.payload).to_bytes(2, "big")
        + frame.payload
    )
    return bytes([START]) + body + crc16_modbus(body).to_bytes(2, "little")


def decode_frame(data: bytes) -> SerialFrame:
    """Decode exactly one complete frame; raises FrameError when anything is wrong."""
    decoder = SerialFrameDecoder()
    frames = decoder.feed(data)
    if len(frames) != 1 or decoder.pending or decoder.dropped_bytes:
        raise FrameError(f"not exactly one valid frame: {data.hex(' ')}")
    return frames[0]


class SerialFrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get whole valid frames back.

    Garbage between frames and damaged frames are skipped and counted in ``dropped_bytes``.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.dropped_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buffer)

    def discard_partial(self) -> None:
        """Drop a half-received frame: called after a silent gap on the line, as on Modbus RTU."""
        self.dropped_bytes += len(self._buffer)
        self._buffer.clear()

    def feed(self, data: bytes) -> list[SerialFrame]:
        """Add received bytes; return every complete valid frame found, in order."""
        self._buffer += data
        frames: list[SerialFrame] = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self.dropped_bytes += len(self._buffer)
                self._buffer.clear()
                return frames
            if start:
                self.dropped_bytes += start
                del self._buffer[:start]
            if len(self._buffer) < HEADER_LEN:
                return frames
            frame, consumed = self._parse_head()
            if consumed == 0:
                return frames
            if frame is None:
                self.dropped_bytes += 1
                del self._buffer[:1]
                continue
            del self._buffer[:consumed]
            frames.append(frame)

    def _parse_head(self) -> tuple[SerialFrame | None, int]:
        """Try the frame at the start of the buffer: (frame, length), (None, 1) or (None, 0)."""
        buf = self._buffer
        address, sequence, kind = buf[1], buf[2], buf[3]
        length = int.from_bytes(buf[4:6], "big")
        valid_head = (
            MIN_ADDRESS <= address <= MAX_ADDRESS
            and kind in FrameKind._value2member_map_
            and length <= (0 if kind in _EMPTY_KINDS else MAX_PAYLOAD)
        )
        if not valid_head:
            return None, 1
        total = HEADER_LEN + length + CRC_LEN
        if len(buf) < total:
            return None, 0
        body = bytes(buf[1 : total - CRC_LEN])
        if crc16_modbus(body) != int.from_bytes(buf[total - CRC_LEN : total], "little"):
            return None, 1
        return SerialFrame(address, sequence, FrameKind(kind), body[5:]), total
