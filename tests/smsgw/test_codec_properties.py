"""Properties of the gateway codecs: any PDU round-trips through encode and decode, any cut or
corrupted frame is a GatewayProtocolError (never another exception), and text splitting
loses nothing."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from drivers.cmpp import pdu as cmpp
from drivers.smpp import pdu as smpp
from drivers.smsgw.errors import GatewayProtocolError
from drivers.smsgw.results import gateway_time
from drivers.smsgw.segments import TextCoding, join_payload, split_message

ascii_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
octet = st.integers(0, 255)

short_messages = st.builds(
    smpp.ShortMessage,
    source_addr=ascii_text,
    destination_addr=ascii_text,
    short_message=st.binary(max_size=254),
    service_type=ascii_text.map(lambda s: s[:5]),
    esm_class=octet,
    registered_delivery=octet,
    data_coding=octet,
    tlvs=st.lists(
        st.builds(smpp.Tlv, st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=3
    ).map(tuple),
)
smpp_pdus = st.builds(
    smpp.SmppPdu,
    command_id=st.sampled_from([smpp.SUBMIT_SM, smpp.DELIVER_SM]),
    sequence=st.integers(1, 0x7FFFFFFF),
    body=short_messages,
)
cmpp_submits = st.builds(
    cmpp.Submit,
    dest_terminal_ids=st.lists(ascii_text, min_size=1, max_size=5).map(tuple),
    content=st.binary(max_size=140),
    msg_fmt=st.sampled_from([0, 8, 15]),
    tp_udhi=st.integers(0, 1),
    service_id=ascii_text.map(lambda s: s[:10]),
    src_id=ascii_text,
    msg_id=st.integers(0, 2**64 - 1),
)


@given(smpp_pdus)
def test_smpp_round_trips(message: smpp.SmppPdu) -> None:
    assert smpp.decode(smpp.encode(message)) == message


@given(cmpp_submits, st.sampled_from([cmpp.V2, cmpp.V3]))
def test_cmpp_submit_round_trips(body: cmpp.Submit, version: int) -> None:
    message = cmpp.CmppPdu(cmpp.SUBMIT, 3, body)
    assert cmpp.decode(cmpp.encode(message, version), version) == message


@given(smpp_pdus, st.data())
def test_cut_smpp_frames_decode_or_raise_protocol_errors_only(
    message: smpp.SmppPdu, data: st.DataObject
) -> None:
    frame = smpp.encode(message)
    cut = data.draw(st.integers(0, len(frame) - 1))
    shorter = cut.to_bytes(4, "big")[:cut] + frame[4:cut]
    try:
        decoded = smpp.decode(shorter)
    except GatewayProtocolError:
        return
    # a cut that ends between TLVs is a shorter valid PDU
    assert isinstance(decoded.body, smpp.ShortMessage) and cut >= smpp.HEADER_LENGTH


@given(cmpp_submits, st.data())
def test_cut_cmpp_frames_are_protocol_errors(body: cmpp.Submit, data: st.DataObject) -> None:
    frame = cmpp.encode(cmpp.CmppPdu(cmpp.SUBMIT, 1, body), cmpp.V3)
    cut = data.draw(st.integers(12, len(frame) - 1))
    shorter = len(frame[:cut]).to_bytes(4, "big") + frame[4:cut]
    try:
        cmpp.decode(shorter, cmpp.V3)
    except GatewayProtocolError:
        return
    raise AssertionError("a cut SUBMIT decoded")


@given(st.text(min_size=1, max_size=600), st.sampled_from(list(TextCoding)))
def test_splitting_loses_nothing(text: str, coding: TextCoding) -> None:
    try:
        segments = split_message(text, coding, 255)
    except ValueError:
        return  # uncodable (GBK) or unpaired surrogate: refused as GatewayMessageError
    parts = [join_payload(s.payload, s.udhi, s.data_coding) for s in segments]
    assert "".join(part for part, _ in parts) == text
    assert all(len(s.payload) <= 140 for s in segments)
    assert [meta[2] for _, meta in parts] == list(range(1, len(segments) + 1)) or len(parts) == 1


@given(st.text(alphabet="0123456789", min_size=8, max_size=13))
def test_receipt_times_read_as_strptime_reads_them(value: str) -> None:
    layout = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(value))
    try:
        expected = None if layout is None else datetime.strptime(value, layout)
    except ValueError:
        expected = None
    assert gateway_time(value) == expected
