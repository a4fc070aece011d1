"""Byte-exact tests of the UECP frame and element codecs and the RDS character set.

Oracles: the vectors in PROTOCOLS.md, frames computed by hand from EBU SPB 490, and for the CRC
(which the codec takes from ``binascii.crc_hqx``) CRC-16/GENIBUS written out bit by bit from its
definition, as the codec computed it before, and its catalogue check value.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.rds import EwsPayload, RdsFrameError, RdsValueError
from drivers.rds.charset import (
    DECODE_TABLE,
    decode_rds_text,
    encode_ps,
    encode_rds_text,
    is_rds_text,
)
from drivers.rds.uecp_elements import (
    AckElement,
    CommunicationMode,
    CommunicationModeElement,
    EwsElement,
    PiElement,
    PsElement,
    PtyElement,
    RequestElement,
    RtBuffer,
    RtElement,
    TaTpElement,
    decode_message,
    encode_element,
    encode_message,
)
from drivers.rds.uecp_frame import (
    AckCode,
    UecpFrame,
    UecpFrameReader,
    crc16_genibus,
    decode_frame_body,
    encode_frame,
    stuff,
    unstuff,
)

PS_ALERT = bytes.fromhex("FE 00 00 00 0B 02 00 00 41 4C 45 52 54 20 20 20 52 14 FF")
TA_TP_ON = bytes.fromhex("FE 00 00 00 04 03 00 00 03 EC 78 FF")


def oracle_crc(data: bytes) -> int:
    """CRC-16/GENIBUS bit by bit: poly 0x1021, init 0xFFFF, no reflection, final XOR 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc ^ 0xFFFF


def frame(site: int, encoder: int, sequence: int, message: bytes) -> bytes:
    return encode_frame(UecpFrame(site, encoder, sequence, message))


def test_crc_check_value() -> None:
    assert crc16_genibus(b"123456789") == 0xD64E


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff" * 7, bytes(range(256))])
def test_crc_matches_the_bitwise_definition(data: bytes) -> None:
    assert crc16_genibus(data) == oracle_crc(data)


@given(st.binary(max_size=300))
def test_crc_matches_the_bitwise_definition_on_any_data(data: bytes) -> None:
    assert crc16_genibus(data) == oracle_crc(data)


@pytest.mark.parametrize("wire", [PS_ALERT, TA_TP_ON], ids=["ps-alert", "ta-tp-on"])
def test_crc_of_the_protocol_vectors(wire: bytes) -> None:
    body, sent = wire[1:-3], int.from_bytes(wire[-3:-1], "big")
    assert crc16_genibus(body) == oracle_crc(body) == sent


def test_protocols_md_vectors() -> None:
    assert frame(0, 0, 0, encode_message([PsElement("ALERT")])) == PS_ALERT
    assert frame(0, 0, 0, encode_element(TaTpElement(ta=True, tp=True))) == TA_TP_ON


def test_stuffing_of_reserved_bytes() -> None:
    assert stuff(b"\xfd\xfe\xff\x01") == b"\xfd\x00\xfd\x01\xfd\x02\x01"
    assert unstuff(b"\xfd\x00\xfd\x01\xfd\x02\x01") == b"\xfd\xfe\xff\x01"


@pytest.mark.parametrize("bad", [b"\xfd", b"\x01\xfd\x03"])
def test_bad_stuffing_is_refused_with_code_12(bad: bytes) -> None:
    with pytest.raises(RdsFrameError) as caught:
        unstuff(bad)
    assert caught.value.ack_code == AckCode.BAD_STUFFING


def test_rt_frame_by_hand() -> None:
    # SPB 490 RT element: MEC 0A, DSN, PSN, MEL = 1 + text bytes, flags, text.
    # Flags 0x01: buffer "replace" (bits 6-5 = 00), transmissions 0 (bits 4-1), toggle A/B.
    # Shorter than 64 characters, the text ends with the end-of-text marker 0D.
    body = bytes.fromhex("00 00 00 0B 0A 00 00 07 01 46 4C 4F 4F 44 0D")
    assert oracle_crc(body) == 0x34B6
    expected = bytes.fromhex("FE 00 00 00 0B 0A 00 00 07 01 46 4C 4F 4F 44 0D 34 B6 FF")
    assert frame(0, 0, 0, encode_element(RtElement("FLOOD"))) == expected


def test_crc_bytes_are_stuffed_too() -> None:
    # PI 0x3C93 gives the CRC 0xFDFF: both CRC bytes must be stuffed (FD 00, FD 02).
    body = bytes.fromhex("00 00 00 05 01 00 00 3C 93")
    assert oracle_crc(body) == 0xFDFF
    expected = bytes.fromhex("FE 00 00 00 05 01 00 00 3C 93 FD 00 FD 02 FF")
    assert frame(0, 0, 0, encode_element(PiElement(0x3C93))) == expected


def test_rt_flags_transmissions_and_append() -> None:
    element = RtElement("AB", transmissions=3, toggle_ab=False, buffer=RtBuffer.APPEND)
    # flags = 10 << 5 | 3 << 1 | 0 = 0x46
    assert encode_element(element) == bytes.fromhex("0A 00 00 04 46 41 42 0D")
    assert decode_message(encode_element(element)) == [element]


def test_empty_rt_clears_the_buffer() -> None:
    assert encode_element(RtElement("")) == bytes.fromhex("0A 00 00 00")


def test_pty_frame_by_hand_with_address_and_sequence() -> None:
    # Site 12, encoder 3: 12 << 6 | 3 = 0x0303. Sequence 7. PTY 31 (alarm) on DSN 1, PSN 2.
    body = bytes.fromhex("03 03 07 04 07 01 02 1F")
    assert oracle_crc(body) == 0x7CD0
    expected = bytes.fromhex("FE 03 03 07 04 07 01 02 1F 7C D0 FF")
    assert frame(12, 3, 7, encode_element(PtyElement(31, dsn=1, psn=2))) == expected


def test_frame_with_stuffed_bytes_round_trips() -> None:
    # PI 0xFEFF forces stuffing inside the message; the CRC covers the unstuffed bytes.
    wire = frame(0, 0, 0xFD, encode_element(PiElement(0xFEFF)))
    assert b"\xfe" not in wire[1:-1] and b"\xff" not in wire[1:-1]
    assert b"\xfd\x00" in wire and b"\xfd\x01" in wire and b"\xfd\x02" in wire
    decoded = decode_frame_body(wire[1:-1])
    assert decoded.sequence == 0xFD
    assert decode_message(decoded.message) == [PiElement(0xFEFF)]


def test_ews_and_ack_elements() -> None:
    payload = EwsPayload(0x15, 0xABCD, 0x1234)
    assert encode_element(EwsElement(payload)) == bytes.fromhex("2B 15 AB CD 12 34")
    assert encode_element(AckElement(AckCode.OK)) == bytes.fromhex("18 00")
    assert encode_element(AckElement(AckCode.CRC_ERROR, 9)) == bytes.fromhex("18 01 09")
    assert encode_element(RequestElement(0x0A, 1, 2)) == bytes.fromhex("17 03 0A 01 02")
    assert decode_message(bytes.fromhex("17 01 07")) == [RequestElement(0x07)]
    mode = CommunicationModeElement(CommunicationMode.SPONTANEOUS_RESPONSE)
    assert encode_element(mode) == bytes.fromhex("2C 02")
    assert decode_message(bytes.fromhex("2C 02")) == [mode]
    message = bytes.fromhex("2B 15 AB CD 12 34 18 00 18 06 02")
    assert decode_message(message) == [
        EwsElement(payload),
        AckElement(AckCode.OK),
        AckElement(AckCode.PARAMETER_OUT_OF_RANGE, 2),
    ]


def test_multi_element_message_decodes_in_order() -> None:
    elements = [TaTpElement(False, True), PtyElement(3), PsElement("RADIO 1 "), RtElement("Hi")]
    assert decode_message(encode_message(elements)) == elements


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"\x99\x00", AckCode.MESSAGE_UNKNOWN),
        (b"\x02\x00\x00ABC", AckCode.ELEMENT_LENGTH_ERROR),
        (b"\x07\x00\x00\x20", AckCode.PARAMETER_OUT_OF_RANGE),
        (b"\x2c\x03", AckCode.PARAMETER_OUT_OF_RANGE),
        (b"\x17\x00", AckCode.ELEMENT_LENGTH_ERROR),
        (b"\x02\x00\x00ABCDEFG\x7f", AckCode.PARAMETER_OUT_OF_RANGE),
    ],
)
def test_bad_elements_carry_their_ack_code(message: bytes, code: AckCode) -> None:
    with pytest.raises(RdsFrameError) as caught:
        decode_message(message)
    assert caught.value.ack_code == code


def test_reader_splits_stream_skips_noise_and_reports_bad_crc() -> None:
    reader = UecpFrameReader()
    damaged = bytearray(frame(0, 0, 42, encode_element(PtyElement(31))))
    damaged[-3] ^= 0x01
    stream = b"noise" + PS_ALERT + bytes(damaged) + TA_TP_ON
    results = []
    for index in range(0, len(stream), 3):
        results.extend(reader.feed(stream[index : index + 3]))
    assert len(results) == 3
    first, error, last = results
    assert isinstance(first, UecpFrame) and decode_message(first.message) == [PsElement("ALERT   ")]
    assert isinstance(error, RdsFrameError) and error.ack_code == AckCode.CRC_ERROR
    assert error.sequence == 42
    assert isinstance(last, UecpFrame) and last.message == bytes.fromhex("03 00 00 03")


def test_reader_reports_length_mismatch_and_missing_stop() -> None:
    body = bytes.fromhex("00 00 01 05 07 00 00 1F")  # says 5 bytes, carries 4
    bad_length = b"\xfe" + stuff(body + oracle_crc(body).to_bytes(2, "big")) + b"\xff"
    results = UecpFrameReader().feed(bad_length + b"\xfe\x00\x00" + TA_TP_ON)
    assert [r.ack_code for r in results if isinstance(r, RdsFrameError)] == [
        AckCode.FIELD_LENGTH_ERROR,
        AckCode.END_MESSAGE_MISSING,
    ]
    assert isinstance(results[-1], UecpFrame)


def test_frame_limits() -> None:
    with pytest.raises(RdsFrameError):
        UecpFrame(0x400, 0, 0, b"")
    with pytest.raises(RdsFrameError):
        UecpFrame(0, 0x40, 0, b"")
    with pytest.raises(RdsFrameError):
        UecpFrame(0, 0, 0, bytes(256))


def test_values_rds_cannot_carry() -> None:
    with pytest.raises(RdsValueError, match="65 characters"):
        encode_element(RtElement("x" * 65))
    with pytest.raises(RdsValueError, match="at most 8"):
        encode_element(PsElement("TOO LONG!"))
    with pytest.raises(RdsValueError, match="PTY 32"):
        encode_element(PtyElement(32))
    with pytest.raises(RdsValueError, match=r"'洪' \(U\+6D2A\) at position 0"):
        encode_element(RtElement("洪水预警"))
    with pytest.raises(RdsValueError):
        EwsPayload(32, 0, 0)


def test_character_set_differs_from_ascii_where_the_standard_says() -> None:
    assert encode_rds_text("$") == b"\xab"
    assert encode_rds_text("¤") == b"\x24"
    assert encode_rds_text("é€ß") == b"\x82\xa9\x8d"
    for char in "^`~\n":
        with pytest.raises(RdsValueError):
            encode_rds_text(char)
    assert encode_ps("SOS") == b"SOS     "
    assert is_rds_text("Überschwemmung! 50 mm/h") and not is_rds_text("暴雨 warning")


def test_character_table_round_trips_every_code() -> None:
    codes = bytes(sorted(DECODE_TABLE))
    assert len(codes) == 0xFE - 0x20  # 0x20..0xFE without 0x7F
    assert encode_rds_text(decode_rds_text(codes)) == codes
    with pytest.raises(RdsValueError, match="0x7F"):
        decode_rds_text(b"\x7f")
