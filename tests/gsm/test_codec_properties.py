"""Property tests of segmentation and PDU encoding over random mixed-script text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gsm.codec import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    UCS2_PART_UNITS,
    SmsEncoding,
    encode_gsm7,
    split_text,
)
from drivers.gsm.pdu import decode_submit, encode_submit

from .oracle import independent_text

GSM7_TEXT = st.text(
    alphabet=st.sampled_from([c for c in GSM7_BASIC if c != "\x1b"] + list(GSM7_EXTENSION)),
    min_size=1,
    max_size=700,
)
ANY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FFFF),
    min_size=1,
    max_size=400,
)


@settings(max_examples=60, deadline=None)
@given(GSM7_TEXT)
def test_gsm7_text_round_trips_in_parts_of_at_most_153_septets(text: str) -> None:
    parts = split_text(text)
    assert "".join(p.text for p in parts) == text
    if len(parts) > 1:
        assert all(len(encode_gsm7(p.text) or []) <= 153 for p in parts)
    pdus = encode_submit("+8613800000001", text, concat_reference=200)
    assert "".join(independent_text(p.hex) for p in pdus) == text


@settings(max_examples=60, deadline=None)
@given(ANY_TEXT)
def test_any_text_round_trips_and_ucs2_parts_fit(text: str) -> None:
    pdus = encode_submit("+8613800000001", text, concat_reference=7)
    assert "".join(decode_submit(p.hex).text for p in pdus) == text
    # 14 header octets for a 13-digit number without TP-VP, at most 140 octets of user data
    assert all(p.tpdu_length <= 14 + 140 for p in pdus)
    if pdus[0].segment.encoding is SmsEncoding.UCS2:
        assert "".join(independent_text(p.hex) for p in pdus) == text
        units = [len(p.segment.text.encode("utf-16-be")) // 2 for p in pdus]
        assert len(pdus) == 1 or max(units) <= UCS2_PART_UNITS
