"""Codec and PDU tests; submits are checked by the independent decoder smspdudecoder and
status reports by python-gsmmodem-new's decoder, never by our own decoder alone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from gsmmodem.pdu import decodeSmsPdu

from drivers.gsm.codec import (
    SmsEncoding,
    decode_gsm7,
    encode_gsm7,
    pack_septets,
    segment_count,
    split_text,
    unpack_septets,
)
from drivers.gsm.errors import (
    GsmInvalidNumberError,
    GsmInvalidTextError,
    GsmMessageTooLongError,
    GsmProtocolError,
)
from drivers.gsm.pdu import (
    ReportStatus,
    StatusReportPdu,
    classify_status,
    decode_status_report,
    decode_submit,
    encode_status_report,
    encode_submit,
    normalize_number,
)

from .oracle import independent, independent_text

CHINESE = (
    "【乌兰察布市应急管理局】暴雨红色预警：预计未来3小时集宁区降雨量将达100毫米以上，请立即转移。"
)
NUMBER = "+8613800000001"


def concat(decoded: dict[str, Any]) -> tuple[int, int, int] | None:
    header = decoded["user_data"]["header"]
    if not header:
        return None
    element = header["elements"][0]
    assert element["iei"] == 0x00 and element["length"] == 3
    data = element["data"]
    return data["reference"], data["parts_count"], data["part_number"]


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("Flood warning: move to high ground now.", SmsEncoding.GSM7, 1),
        ("x" * 160, SmsEncoding.GSM7, 1),
        ("x" * 161, SmsEncoding.GSM7, 2),
        ("€" * 80, SmsEncoding.GSM7, 1),
        ("€" * 81, SmsEncoding.GSM7, 2),
        ("{[~]}|^\\ " * 30, SmsEncoding.GSM7, 4),
        ("暴" * 70, SmsEncoding.UCS2, 1),
        ("暴" * 71, SmsEncoding.UCS2, 2),
        (CHINESE * 3, SmsEncoding.UCS2, 3),
        ("𠮷" * 35, SmsEncoding.UCS2, 1),
        ("𠮷" * 36, SmsEncoding.UCS2, 2),
        ("a" + "𠮷" * 40, SmsEncoding.UCS2, 2),
    ],
)
def test_submit_pdus_decode_independently_to_the_exact_text(
    text: str, encoding: SmsEncoding, segments: int
) -> None:
    pdus = encode_submit(NUMBER, text, concat_reference=42, request_status_report=True)
    assert len(pdus) == segments == segment_count(text)
    joined = ""
    for sequence, pdu in enumerate(pdus, start=1):
        decoded = independent(pdu.hex)
        assert decoded["recipient"]["number"] == NUMBER[1:]
        assert decoded["recipient"]["toa"]["ton"] == "international"
        assert decoded["dcs"]["encoding"] == ("gsm" if encoding is SmsEncoding.GSM7 else "ucs2")
        assert decoded["header"]["srr"] is True
        assert decoded["header"]["udhi"] is (segments > 1)
        assert concat(decoded) == ((42, segments, sequence) if segments > 1 else None)
        assert independent_text(pdu.hex) == pdu.segment.text
        assert pdu.tpdu_length == len(pdu.hex) // 2 - 1
        joined += independent_text(pdu.hex)
    assert joined == text


def test_gsm7_parts_hold_153_septets_and_never_split_an_escape() -> None:
    text = "a" * 152 + "€" + "b" * 10
    parts = split_text(text)
    assert [len(encode_gsm7(p.text) or []) for p in parts] == [152, 12]
    assert parts[0].text == "a" * 152 and parts[1].text.startswith("€")


def test_ucs2_parts_hold_67_units_and_never_split_a_surrogate_pair() -> None:
    text = "吉" * 66 + "𠮷" + "吉" * 3
    parts = split_text(text)
    assert [p.text for p in parts] == ["吉" * 66, "𠮷吉吉吉"]
    assert "".join(independent_text(p.hex) for p in encode_submit(NUMBER, text)) == text


def test_status_report_request_follows_the_flag() -> None:
    (pdu,) = encode_submit(NUMBER, "test", request_status_report=False)
    assert independent(pdu.hex)["header"]["srr"] is False


def test_validity_period_is_relative_and_rounded_up() -> None:
    (pdu,) = encode_submit(NUMBER, "test", validity=timedelta(hours=2))
    decoded = independent(pdu.hex)
    assert decoded["header"]["vpf"] == 2
    # 23.040 §9.2.3.12.1: (TP-VP + 1) x 5 minutes; smspdudecoder's minutes field omits the +1
    assert decoded["vp"] == 23


def test_national_numbers_keep_unknown_type_and_separators_are_dropped() -> None:
    (pdu,) = encode_submit("138-0000 0001", "hi")
    decoded = independent(pdu.hex)
    assert decoded["recipient"]["number"] == "13800000001"
    assert decoded["recipient"]["toa"]["ton"] != "international"


@pytest.mark.parametrize("number", ["", "12", "+86 abc", "++8613800000001", "1" * 21, "☎123"])
def test_invalid_numbers_are_rejected(number: str) -> None:
    with pytest.raises(GsmInvalidNumberError, match="not a phone number"):
        normalize_number(number)


def test_too_long_and_empty_texts_are_rejected() -> None:
    with pytest.raises(GsmMessageTooLongError, match="4 UCS2 segments; at most 3"):
        encode_submit(NUMBER, "暴" * 67 * 3 + "雨", max_segments=3)
    with pytest.raises(GsmMessageTooLongError, match="at least one character"):
        encode_submit(NUMBER, "")


def test_unpaired_surrogates_are_rejected() -> None:
    with pytest.raises(GsmInvalidTextError, match=r"U\+D83D"):
        encode_submit(NUMBER, "warning \ud83d")
    with pytest.raises(GsmInvalidTextError):
        segment_count("\udc00")
    assert segment_count("ok 😀") == 1


def test_septet_packing_round_trips_with_fill_bits() -> None:
    septets = encode_gsm7("hello [world] €") or []
    for fill in range(7):
        assert unpack_septets(pack_septets(septets, fill), len(septets), fill) == septets
    assert decode_gsm7(septets) == "hello [world] €"


def test_our_submit_decoder_agrees_with_the_independent_one() -> None:
    for pdu in encode_submit(NUMBER, CHINESE * 2 + "𠮷", concat_reference=9):
        ours = decode_submit(pdu.hex)
        theirs = independent(pdu.hex)
        assert ours.text == independent_text(pdu.hex)
        assert (ours.concat_reference, ours.total, ours.sequence) == concat(theirs)


@pytest.mark.parametrize("status", [0x00, 0x21, 0x46, 0x63])
def test_status_reports_decode_independently(status: int) -> None:
    sent = datetime(2026, 7, 1, 8, 30, 15, tzinfo=timezone(timedelta(hours=8)))
    done = datetime(2026, 7, 1, 8, 31, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    report = StatusReportPdu(200, NUMBER, sent, done, status)
    pdu_hex, length = encode_status_report(report)
    theirs = decodeSmsPdu(pdu_hex)
    assert theirs["type"] == "SMS-STATUS-REPORT"
    assert (theirs["reference"], theirs["number"], theirs["status"]) == (200, NUMBER, status)
    assert theirs["discharge"].utcoffset() == done.utcoffset()
    assert theirs["tpdu_length"] == length
    assert decode_status_report(pdu_hex) == report


def test_tp_status_ranges() -> None:
    assert classify_status(0x00) is ReportStatus.DELIVERED
    assert classify_status(0x02) is ReportStatus.DELIVERED
    assert classify_status(0x20) is ReportStatus.PENDING
    assert classify_status(0x3F) is ReportStatus.PENDING
    assert classify_status(0x40) is ReportStatus.FAILED
    assert classify_status(0x46) is ReportStatus.FAILED
    assert classify_status(0x6F) is ReportStatus.FAILED


@pytest.mark.parametrize(
    "garbage",
    ["", "zz", "0001000B911", "0011000B916831080000F10000AA0568656C6C6F", "0006C8"],
)
def test_garbage_status_reports_raise_protocol_errors(garbage: str) -> None:
    with pytest.raises(GsmProtocolError):
        decode_status_report(garbage)
