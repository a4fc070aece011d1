"""CMPP 2.0/3.0 codec: byte-exact vectors laid out by hand from the specifications' field
tables, and cmppy (an independent CMPP 3.0 implementation) in both directions.

cmppy only builds CMPP_CONNECT and CMPP_SUBMIT and only parses their responses, in CMPP 3.0;
CMPP 2.0 and CMPP_DELIVER rest on the hand-made vectors below.
"""

from __future__ import annotations

import hashlib
import importlib
from datetime import datetime, timedelta, timezone

import pytest
from cmppy.request import ConnectReq, SubmitReq
from cmppy.response import parse_response

from drivers.cmpp import pdu
from drivers.cmpp.status import connect_error, submit_error
from drivers.smsgw.errors import (
    GatewayBindError,
    GatewayMessageError,
    GatewayProtocolError,
    GatewayRejectedError,
    GatewayThrottledError,
    GatewayTransientError,
)

# MD5("901234" + 9 x 00 + "1234" + "0705123045"), computed once outside the codec
AUTH = bytes.fromhex("ec59b0ff8f226aa9abd7085db421c741")
CONNECT_V3 = bytes.fromhex(
    "00000027" "00000001" "00000001"  # 39 octets, CMPP_CONNECT, sequence 1
    "393031323334"  # Source_Addr "901234"
    "ec59b0ff8f226aa9abd7085db421c741"  # AuthenticatorSource
    "30" "2a0752e5"  # Version 3.0, Timestamp 0705123045 as an integer
)  # fmt: skip


def _octets(text: str, width: int) -> str:
    return text.encode().ljust(width, b"\0").hex()


def _submit_vector(version: int) -> bytes:
    width = 32 if version == pdu.V3 else 21
    body = (
        "0000000000000000" "01" "01" "01" "00"  # Msg_Id, Pk_total, Pk_number, Registered, level
        + _octets("WARN", 10) + "02" + _octets("", width)  # Service_Id, Fee_UserType, Fee_term
        + ("00" if version == pdu.V3 else "")  # Fee_terminal_type (3.0)
        + "00" "00" "08"  # TP_pId, TP_udhi, Msg_Fmt UCS-2
        + _octets("901234", 6) + _octets("01", 2) + _octets("000000", 6)
        + _octets("", 17) + _octets("", 17) + _octets("10657001", 21)
        + "01" + _octets("13800138000", width)  # DestUsr_tl, Dest_terminal_Id
        + ("00" if version == pdu.V3 else "")  # Dest_terminal_type (3.0)
        + "04" "4f60597d"  # Msg_Length, "你好"
        + _octets("", 20 if version == pdu.V3 else 8)  # LinkID (3.0) / Reserve (2.0)
    )  # fmt: skip
    raw = bytes.fromhex(body)
    return (12 + len(raw)).to_bytes(4, "big") + bytes.fromhex("0000000400000005") + raw


SUBMIT = pdu.Submit(
    dest_terminal_ids=("13800138000",),
    content="你好".encode("utf-16-be"),
    service_id="WARN",
    msg_src="901234",
    src_id="10657001",
)


def test_authenticator_source_is_the_md5_of_the_spec() -> None:
    assert pdu.authenticator_source("901234", "1234", "0705123045") == AUTH
    stamp = pdu.timestamp_text(datetime(2026, 7, 5, 12, 30, 45))
    assert stamp == "0705123045"


def test_connect_is_byte_exact() -> None:
    message = pdu.CmppPdu(pdu.CONNECT, 1, pdu.Connect("901234", AUTH, pdu.V3, 705123045))
    assert pdu.encode(message, pdu.V3) == CONNECT_V3
    assert pdu.decode(CONNECT_V3, pdu.V3) == message


@pytest.mark.parametrize("version", [pdu.V2, pdu.V3])
def test_submit_is_byte_exact_in_both_versions(version: int) -> None:
    vector = _submit_vector(version)
    assert len(vector) == (12 + 147 + 4 if version == pdu.V2 else 12 + 183 + 4)
    message = pdu.CmppPdu(pdu.SUBMIT, 5, SUBMIT)
    assert pdu.encode(message, version) == vector
    assert pdu.decode(vector, version) == message


@pytest.mark.parametrize(
    ("version", "octets"),
    [
        (pdu.V2, "0000001580000004000000090123456789abcdef08"),
        (pdu.V3, "0000001880000004000000090123456789abcdef00000008"),
    ],
)
def test_submit_resp_result_width_differs(version: int, octets: str) -> None:
    message = pdu.CmppPdu(pdu.SUBMIT_RESP, 9, pdu.MsgIdResult(0x0123456789ABCDEF, 8))
    assert pdu.encode(message, version).hex() == octets
    assert pdu.decode(bytes.fromhex(octets), version) == message


@pytest.mark.parametrize("version", [pdu.V2, pdu.V3])
def test_status_report_deliver_round_trips_with_its_widths(version: int) -> None:
    report = pdu.StatusReport(77, "UNDELIV", "2607051230", "2607051231", "13800138000", 3)
    content = pdu.encode_status_report(report, version)
    assert len(content) == (60 if version == pdu.V2 else 71)
    assert content[:15] == bytes.fromhex("000000000000004d") + b"UNDELIV"
    deliver = pdu.Deliver(77, "901234", "13800138000", content, registered_delivery=1)
    frame = pdu.encode(pdu.CmppPdu(pdu.DELIVER, 4, deliver), version)
    assert len(frame) == 12 + (8 + 21 + 10 + 3 + 21 + 1 + 1 + 60 + 8 if version == pdu.V2 else
                               8 + 21 + 10 + 3 + 32 + 1 + 1 + 1 + 71 + 20)  # fmt: skip
    decoded = pdu.decode(frame, version)
    assert decoded.body == deliver
    assert pdu.decode_status_report(deliver.content, version) == report


def test_header_only_and_active_test_resp() -> None:
    assert pdu.encode(pdu.CmppPdu(pdu.ACTIVE_TEST, 2), pdu.V2).hex() == "0000000c0000000800000002"
    resp = pdu.CmppPdu(pdu.ACTIVE_TEST_RESP, 2, pdu.ActiveTestResp())
    assert pdu.encode(resp, pdu.V3).hex() == "0000000d800000080000000200"


@pytest.mark.parametrize(
    "frame",
    [
        "0000000c00000001",  # shorter than a header
        "0000000d0000000800000002",  # Total_Length says 13
        "0000000e800000040000000100",  # SUBMIT_RESP cut short
    ],
)
def test_malformed_pdus_are_protocol_errors(frame: str) -> None:
    with pytest.raises(GatewayProtocolError):
        pdu.decode(bytes.fromhex(frame), pdu.V3)


def test_an_unknown_command_decodes_with_its_header_alone() -> None:
    frame = bytes.fromhex("0000000f0000009900000001") + b"abc"
    assert pdu.decode(frame, pdu.V3) == pdu.CmppPdu(0x99, 1)


def test_oversized_fields_are_refused() -> None:
    too_long = pdu.Submit(dest_terminal_ids=("1" * 22,), content=b"x")
    with pytest.raises(GatewayMessageError, match="Dest_terminal_Id"):
        pdu.encode(pdu.CmppPdu(pdu.SUBMIT, 1, too_long), pdu.V2)
    pdu.encode(pdu.CmppPdu(pdu.SUBMIT, 1, too_long), pdu.V3)  # 32 octets in 3.0


def test_msg_id_packs_time_gateway_and_serial() -> None:
    value = pdu.msg_id(datetime(2026, 7, 5, 12, 30, 45), 0x01F4A, 3)
    assert value >> 60 == 7 and (value >> 55) & 0x1F == 5 and (value >> 50) & 0x1F == 12
    assert (value >> 44) & 0x3F == 30 and (value >> 38) & 0x3F == 45
    assert (value >> 16) & 0x3FFFFF == 0x01F4A and value & 0xFFFF == 3


def test_cmppy_connect_decodes_in_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # cmppy reads the clock itself; pin it so the authenticator is known
    connect_module = importlib.import_module("cmppy.request.ConnectReq")
    monkeypatch.setattr(connect_module, "_get_strtime", lambda: "0705123045")
    theirs = ConnectReq("901234", "1234")
    ours = pdu.decode(theirs.message, pdu.V3)
    assert ours.body == pdu.Connect("901234", AUTH, pdu.V3, 705123045)


def test_cmppy_submit_decodes_in_ours() -> None:
    theirs = SubmitReq(
        "901234", "暴雨预警", src_id="10657001", dest_terminal_id=["13800138000"],
        registered_delivery=1, service_id="WARN", feetype="01", feecode="000000",
    )  # fmt: skip
    ours = pdu.decode(theirs.message, pdu.V3)
    assert isinstance(ours.body, pdu.Submit)
    assert ours.body.dest_terminal_ids == ("13800138000",)
    assert ours.body.content.decode("utf-16-be") == "暴雨预警"
    assert (ours.body.msg_fmt, ours.body.registered_delivery) == (8, 1)
    assert (ours.body.src_id, ours.body.service_id, ours.body.msg_src) == (
        "10657001", "WARN", "901234",
    )  # fmt: skip
    assert pdu.encode(ours, pdu.V3) == theirs.message


def test_our_responses_parse_in_cmppy() -> None:
    source = AUTH
    ismg = pdu.authenticator_ismg(0, source, "1234", pdu.V3)
    assert ismg == hashlib.md5(b"\0\0\0\0" + source + b"1234").digest()
    connect = parse_response(
        pdu.encode(pdu.CmppPdu(pdu.CONNECT_RESP, 1, pdu.ConnectResp(0, ismg, pdu.V3)), pdu.V3)
    )
    assert (connect.status, connect.authenticator_ISMG, connect.version) == (0, ismg, 0x30)
    submit = parse_response(
        pdu.encode(pdu.CmppPdu(pdu.SUBMIT_RESP, 2, pdu.MsgIdResult(12345678901, 8)), pdu.V3)
    )
    assert (submit.msg_id, submit.result, submit.sequence) == (12345678901, 8, 2)


def test_results_map_onto_the_retry_split() -> None:
    assert isinstance(submit_error(8), GatewayThrottledError)
    assert isinstance(submit_error(13), GatewayRejectedError)
    assert isinstance(submit_error(3), GatewayTransientError)
    assert isinstance(connect_error(3), GatewayBindError)
    assert "流量控制错" in str(submit_error(8))


def test_valid_time_is_an_absolute_time_with_its_offset_from_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    assert pdu.valid_time_text(datetime(2026, 1, 1, 12, 0, 5, 300_000, beijing)) == (
        "260101120005332+"
    )
    behind = timezone(-timedelta(hours=5, minutes=30))
    assert pdu.valid_time_text(datetime(2026, 7, 9, 8, 30, tzinfo=behind)) == "260709083000022-"
    with pytest.raises(GatewayMessageError, match="time zone"):
        pdu.valid_time_text(datetime(2026, 1, 1, 12, 0))
