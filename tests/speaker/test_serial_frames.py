"""Serial framing: CRC-16/MODBUS, encoding, and a decoder that survives line noise."""

from __future__ import annotations

import pytest

from drivers.speaker.errors import FrameError
from drivers.speaker.serial_frames import (
    FrameKind,
    SerialFrame,
    SerialFrameDecoder,
    crc16_modbus,
    decode_frame,
    encode_frame,
)


def test_crc_matches_the_modbus_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37
    # A Modbus RTU request whose CRC is widely published: 01 03 00 00 00 0A -> C5 CD.
    assert crc16_modbus(bytes.fromhex("01030000000a")).to_bytes(2, "little") == b"\xc5\xcd"


def test_frame_layout() -> None:
    frame = SerialFrame(3, 7, FrameKind.COMMAND, b"hi")
    data = encode_frame(frame)
    assert data[:7].hex(" ") == "7e 03 07 01 00 02 68"
    assert data[-2:] == crc16_modbus(data[1:-2]).to_bytes(2, "little")
    assert decode_frame(data) == frame


@pytest.mark.parametrize(
    "frame",
    [
        SerialFrame(0, 0, FrameKind.POLL),
        SerialFrame(248, 0, FrameKind.POLL),
        SerialFrame(1, 256, FrameKind.POLL),
        SerialFrame(1, 0, FrameKind.MESSAGE, b"x" * 20000),
        SerialFrame(1, 0, FrameKind.SYNC, b"x"),
        SerialFrame(1, 0, FrameKind.IDLE, b"x"),
    ],
)
def test_out_of_range_frames_are_refused(frame: SerialFrame) -> None:
    with pytest.raises(FrameError):
        encode_frame(frame)


def test_decoder_skips_noise_and_damaged_frames_and_reassembles_split_ones() -> None:
    good = [SerialFrame(a, a, FrameKind.MESSAGE, bytes([0x7E]) * a) for a in (1, 2, 3)]
    wire = [encode_frame(f) for f in good]
    damaged = bytearray(wire[1])
    damaged[-3] ^= 0x01
    stream = b"\x00\x7e\x7e\xff" + wire[0] + bytes(damaged) + b"\x7e\x05" + wire[2]
    decoder = SerialFrameDecoder()
    frames = [frame for i in range(len(stream)) for frame in decoder.feed(stream[i : i + 1])]
    assert frames == [good[0], good[2]]
    assert decoder.dropped_bytes >= len(damaged)


def test_a_silent_gap_discards_a_half_frame() -> None:
    decoder = SerialFrameDecoder()
    data = encode_frame(SerialFrame(1, 1, FrameKind.POLL))
    assert decoder.feed(b"\x7e\x01\x01\x81\x01\x00") == []
    decoder.discard_partial()
    assert decoder.pending == 0
    assert decoder.feed(data) == [SerialFrame(1, 1, FrameKind.POLL)]


def test_decode_frame_refuses_trailing_garbage() -> None:
    data = encode_frame(SerialFrame(1, 1, FrameKind.IDLE))
    with pytest.raises(FrameError):
        decode_frame(data + b"\x00")
    with pytest.raises(FrameError):
        decode_frame(data[:-1])


def test_a_header_with_a_payload_its_kind_cannot_carry_is_noise() -> None:
    sync = encode_frame(SerialFrame(5, 9, FrameKind.SYNC))
    # "7e 05 7e 03 01 00 ..." would be a SYNC with 256 bytes of payload: skipped at once, not
    # awaited (which would swallow the real frame behind it).
    stream = b"\x7e\x05\x7e\x03\x01\x00" + sync
    assert SerialFrameDecoder().feed(stream) == [SerialFrame(5, 9, FrameKind.SYNC)]
