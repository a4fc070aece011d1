"""SMPP 3.4 codec: byte-exact vectors worked out from the spec, and smpplib (an independent
implementation) decoding what we encode and the reverse."""

from __future__ import annotations

import struct
from datetime import datetime

import pytest
from smpplib import smpp as smpplib_smpp

from drivers.smpp import pdu
from drivers.smpp.receipt import format_receipt_text, parse_receipt
from drivers.smpp.status import ESME_RINVDSTADR, ESME_RMSGQFUL, ESME_RTHROTTLED, status_error
from drivers.smsgw.errors import (
    GatewayMessageError,
    GatewayProtocolError,
    GatewayRejectedError,
    GatewayRetryableError,
    GatewayThrottledError,
    GatewayTransientError,
)
from drivers.smsgw.results import ReceiptState

# §3.2 header + §4.1.5 body: "test\0" "pw\0" "\0" 34 00 00 "\0"


class _Sequences:
    """The sequence source smpplib expects of a client."""

    sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


BIND_VECTOR = bytes.fromhex("0000001d00000009000000000000000174657374007077000034000000")
SUBMIT_VECTOR = bytes.fromhex(
    "00000037" "00000004" "00000000" "00000007"  # header: length 55, submit_sm, seq 7
    "00" "0000" "313233343500"  # service_type "", source ton/npi, source_addr "12345"
    "0101" "3836313338303000"  # dest ton/npi 1/1, destination_addr "8613800"
    "000000" "00" "00"  # esm_class, protocol_id, priority; schedule "", validity ""
    "01" "00" "08" "00" "04" "4f60597d"  # registered_delivery 1, data_coding 8, sm_length 4
    "020c" "0002" "0001"  # TLV sar_msg_ref_num = 1
)  # fmt: skip


def test_bind_transceiver_is_byte_exact() -> None:
    message = pdu.SmppPdu(pdu.BIND_TRANSCEIVER, 1, body=pdu.BindBody("test", "pw"))
    assert pdu.encode(message) == BIND_VECTOR
    assert pdu.decode(BIND_VECTOR) == message


def test_submit_sm_is_byte_exact() -> None:
    message = pdu.SmppPdu(
        pdu.SUBMIT_SM,
        7,
        body=pdu.ShortMessage(
            source_addr="12345",
            destination_addr="8613800",
            short_message="你好".encode("utf-16-be"),
            dest_ton=1,
            dest_npi=1,
            registered_delivery=1,
            data_coding=8,
            tlvs=(pdu.Tlv(pdu.TAG_SAR_MSG_REF_NUM, b"\x00\x01"),),
        ),
    )
    assert pdu.encode(message) == SUBMIT_VECTOR
    assert pdu.decode(SUBMIT_VECTOR) == message


@pytest.mark.parametrize(
    ("message", "octets"),
    [
        (pdu.SmppPdu(pdu.ENQUIRE_LINK, 1), "00000010000000150000000000000001"),
        (pdu.SmppPdu(pdu.UNBIND_RESP, 2), "00000010800000060000000000000002"),
        (pdu.SmppPdu(pdu.GENERIC_NACK, 3, 3), "00000010800000000000000300000003"),
        (
            pdu.SmppPdu(pdu.SUBMIT_SM_RESP, 9, body=pdu.MessageIdBody("abc")),
            "0000001480000004000000000000000961626300",
        ),
        (pdu.SmppPdu(pdu.SUBMIT_SM_RESP, 9, ESME_RTHROTTLED), "00000010800000040000005800000009"),
    ],
)
def test_short_pdus_are_byte_exact(message: pdu.SmppPdu, octets: str) -> None:
    assert pdu.encode(message).hex() == octets
    assert pdu.decode(bytes.fromhex(octets)) == message


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x00\x00\x10\x00\x00",  # shorter than a header
        bytes.fromhex("00000011000000150000000000000001"),  # length says 17
        bytes.fromhex("0000001400000009000000000000000174657374"),  # system_id without NUL
    ],
)
def test_malformed_pdus_are_protocol_errors(frame: bytes) -> None:
    with pytest.raises(GatewayProtocolError):
        pdu.decode(frame)


def test_an_unknown_command_decodes_with_its_header_alone() -> None:
    body = b"\x01\x018613800000001\0\x01\x0112110\0"  # alert_notification (§4.12.1)
    frame = struct.pack(">IIII", 16 + len(body), 0x00000102, 0, 7) + body
    assert pdu.decode(frame) == pdu.SmppPdu(0x00000102, 7)


def test_oversized_fields_are_refused_before_sending() -> None:
    with pytest.raises(GatewayMessageError, match="password"):
        pdu.encode(pdu.SmppPdu(pdu.BIND_TRANSCEIVER, 1, body=pdu.BindBody("sys", "123456789")))
    with pytest.raises(GatewayMessageError, match="short_message"):
        pdu.encode(pdu.SmppPdu(pdu.SUBMIT_SM, 1, body=pdu.ShortMessage(short_message=b"x" * 255)))


def test_our_submit_sm_decodes_in_smpplib() -> None:
    payload = bytes.fromhex("0500030a0201") + "暴雨预警".encode("utf-16-be")
    ours = pdu.SmppPdu(
        pdu.SUBMIT_SM,
        42,
        body=pdu.ShortMessage(
            source_addr="10086",
            destination_addr="8613800138000",
            short_message=payload,
            dest_ton=1,
            dest_npi=1,
            esm_class=pdu.ESM_UDHI,
            registered_delivery=1,
            data_coding=8,
        ),
    )
    theirs = smpplib_smpp.parse_pdu(pdu.encode(ours), client=_Sequences())
    assert theirs.command == "submit_sm"
    assert theirs.sequence == 42
    assert theirs.source_addr == b"10086"
    assert theirs.destination_addr == b"8613800138000"
    assert theirs.esm_class == pdu.ESM_UDHI
    assert theirs.data_coding == 8
    assert theirs.registered_delivery == 1
    assert theirs.short_message == payload


def test_smpplib_deliver_sm_receipt_decodes_in_ours() -> None:
    text = format_receipt_text(
        "5a00002a",
        ReceiptState.UNDELIVERABLE,
        datetime(2026, 7, 1, 8, 30),
        datetime(2026, 7, 1, 8, 31),
        "001",
        "hello",
    )
    theirs = smpplib_smpp.make_pdu(
        "deliver_sm",
        client=_Sequences(),
        source_addr="8613800138000",
        destination_addr="10086",
        esm_class=pdu.ESM_DELIVERY_RECEIPT,
        short_message=text.encode(),
        receipted_message_id="5a00002a",
        message_state=5,
    )
    theirs.sequence = 5
    ours = pdu.decode(theirs.generate())
    assert ours.command_id == pdu.DELIVER_SM and ours.sequence == 5
    assert isinstance(ours.body, pdu.ShortMessage)
    receipt = parse_receipt(ours.body)
    assert receipt.message_id == "5a00002a"
    assert receipt.state is ReceiptState.UNDELIVERABLE
    assert receipt.stat == "UNDELIV" and receipt.error == "001"
    assert receipt.submitted is not None and receipt.submitted.minute == 30


def test_smpplib_bind_and_resp_round_trip() -> None:
    theirs = smpplib_smpp.make_pdu(
        "bind_transceiver", client=_Sequences(), system_id="warn", password="secret", system_type=""
    )
    theirs.sequence = 3
    ours = pdu.decode(theirs.generate())
    assert ours.body == pdu.BindBody("warn", "secret") and ours.sequence == 3
    response = pdu.SmppPdu(pdu.SUBMIT_SM_RESP, 3, body=pdu.MessageIdBody("5a000001"))
    parsed = smpplib_smpp.parse_pdu(pdu.encode(response), client=_Sequences())
    assert parsed.command == "submit_sm_resp" and parsed.message_id == b"5a000001"


def test_receipt_text_alone_is_enough() -> None:
    body = pdu.ShortMessage(
        short_message=b"id:0001234 sub:001 dlvrd:001 submit date:2607010830"
        b" done date:2607010831 stat:DELIVRD err:000 text:id:x stat:UNDELIV",
        esm_class=pdu.ESM_DELIVERY_RECEIPT,
    )
    receipt = parse_receipt(body)
    assert (receipt.message_id, receipt.state) == ("0001234", ReceiptState.DELIVERED)
    with pytest.raises(GatewayProtocolError):
        parse_receipt(pdu.ShortMessage(short_message=b"stat:DELIVRD"))


def test_a_receipt_in_another_field_order_reads_as_the_appendix_b_layout() -> None:
    laid_out = (
        b"id:77 sub:001 dlvrd:000 submit date:2607010830 done date:2607010831 stat:EXPIRED err:006"
    )
    shuffled = b"stat:EXPIRED err:006 submit date:2607010830 id:77 done date:2607010831 dlvrd:000"
    first, second = (parse_receipt(pdu.ShortMessage(short_message=t)) for t in (laid_out, shuffled))
    assert first == second and first.state is ReceiptState.EXPIRED and first.error == "006"
    assert first.done is not None and first.done.minute == 31


def test_statuses_map_onto_the_retry_split() -> None:
    assert isinstance(status_error(ESME_RTHROTTLED, "submit_sm"), GatewayThrottledError)
    assert isinstance(status_error(ESME_RMSGQFUL, "submit_sm"), GatewayTransientError)
    rejected = status_error(ESME_RINVDSTADR, "submit_sm")
    assert isinstance(rejected, GatewayRejectedError)
    assert not isinstance(rejected, GatewayRetryableError)
    assert "ESME_RINVDSTADR" in str(rejected)
