"""Property tests: the codecs round-trip, and no byte sequence makes them misbehave."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.rds import RdsFrameError
from drivers.rds.charset import DECODE_TABLE
from drivers.rds.simulator_device import AsciiDeviceProtocol, SimulatedEncoder, UecpDeviceProtocol
from drivers.rds.uecp_elements import (
    PiElement,
    PsElement,
    PtyElement,
    RtElement,
    TaTpElement,
    UecpElement,
    decode_message,
    encode_message,
)
from drivers.rds.uecp_frame import (
    START,
    STOP,
    UecpFrame,
    UecpFrameReader,
    encode_frame,
    stuff,
    unstuff,
)

rds_text = st.text(alphabet=sorted(DECODE_TABLE.values()), max_size=64)
elements: st.SearchStrategy[UecpElement] = st.one_of(
    st.builds(PiElement, st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 255)),
    st.builds(PsElement, rds_text.filter(lambda t: len(t) <= 8).map(lambda t: t.ljust(8))),
    st.builds(TaTpElement, st.booleans(), st.booleans()),
    st.builds(PtyElement, st.integers(0, 31)),
    st.builds(RtElement, rds_text.filter(bool), st.integers(0, 15), st.booleans()),
    st.just(RtElement("")),
)


@given(st.binary(max_size=300))
def test_stuffing_round_trips_and_hides_frame_bytes(data: bytes) -> None:
    stuffed = stuff(data)
    assert START not in stuffed and STOP not in stuffed
    assert unstuff(stuffed) == data


@given(
    st.integers(0, 0x3FF),
    st.integers(0, 0x3F),
    st.integers(0, 255),
    st.lists(elements, max_size=3),
    st.integers(1, 7),
)
def test_frames_round_trip_through_the_stream_reader(
    site: int, encoder: int, sequence: int, body: list[UecpElement], chunk: int
) -> None:
    wire = encode_frame(UecpFrame(site, encoder, sequence, encode_message(body)))
    reader = UecpFrameReader()
    results = []
    for offset in range(0, len(wire), chunk):
        results.extend(reader.feed(wire[offset : offset + chunk]))
    assert len(results) == 1
    (frame,) = results
    assert isinstance(frame, UecpFrame)
    assert (frame.site_address, frame.encoder_address, frame.sequence) == (site, encoder, sequence)
    assert decode_message(frame.message) == body


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_garbage_never_escapes_the_frame_reader(noise: bytes) -> None:
    for item in UecpFrameReader().feed(noise):
        assert isinstance(item, UecpFrame | RdsFrameError)


@settings(max_examples=500)
@given(st.binary(max_size=255))
def test_any_message_field_decodes_or_is_refused_with_a_code(message: bytes) -> None:
    try:
        decoded = decode_message(message)
    except RdsFrameError as error:
        assert 1 <= error.ack_code <= 13
    else:
        again = decode_message(encode_message(decoded))
        assert [type(e) for e in again] == [type(e) for e in decoded]


@settings(max_examples=300)
@given(st.binary(max_size=255), st.integers(1, 255))
def test_every_well_framed_message_gets_exactly_one_answer(message: bytes, sequence: int) -> None:
    wire = encode_frame(UecpFrame(0, 0, sequence, message))
    (answer,) = UecpDeviceProtocol(SimulatedEncoder()).feed(wire)
    (frame,) = UecpFrameReader().feed(answer)
    assert isinstance(frame, UecpFrame) and frame.sequence == sequence


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_garbage_gets_answers_not_exceptions_from_the_simulated_encoder(noise: bytes) -> None:
    encoder = SimulatedEncoder()
    for answer in UecpDeviceProtocol(encoder).feed(noise):
        assert answer[0] == START and answer[-1] == STOP
    for answer in AsciiDeviceProtocol(encoder).feed(noise):
        assert answer in (b"+\r\n", b"!\r\n", b"-\r\n", b"/\r\n")
