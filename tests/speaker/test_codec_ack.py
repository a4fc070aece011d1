"""The fast ack decoder against the general one: the same ack for every canonical ack, and
the general decoder's verdict for everything else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.speaker.codec import decode_box_message, encode_box_message
from drivers.speaker.codec_ack import _fast_ack, decode_box_line
from drivers.speaker.errors import SignatureError, SpeakerProtocolError
from drivers.speaker.messages import AckStage, BoxAck

KEY = b"k" * 32
KEYS = {"box-1": KEY, "box-2": b"o" * 32}
AT = datetime(2026, 12, 6, 8, 30, 1, 123000, tzinfo=UTC)


def ack(**changes: object) -> BoxAck:
    fields: dict[str, object] = {
        "box_id": "box-1",
        "cmd_id": "play-abc",
        "alert_id": "urn:oid:2.49.0.1.156.0.2026.12.06.1",
        "stage": AckStage.STARTED,
        "at": AT,
        "source": "url",
    }
    return BoxAck(**(fields | changes))  # type: ignore[arg-type]


ids = st.text("abcXYZ019._:-", min_size=1, max_size=40)
texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    cmd_id=ids,
    alert_id=texts,
    stage=st.sampled_from(AckStage),
    reason=st.none() | texts,
    source=st.none() | texts,
    millis=st.integers(0, 999),
)
def test_fast_path_agrees_with_the_general_decoder(
    cmd_id: str, alert_id: str, stage: AckStage, reason: str | None, source: str | None, millis: int
) -> None:
    message = ack(
        cmd_id=cmd_id,
        alert_id=alert_id,
        stage=stage,
        reason=reason,
        source=source,
        at=AT.replace(microsecond=millis * 1000),
    )
    data = encode_box_message(message, KEY)
    try:
        general: BoxAck | Exception = decode_box_message(data, KEYS.get)  # type: ignore[assignment]
    except SpeakerProtocolError as exc:
        general = exc
    fast = _fast_ack(data, KEYS.get)
    if isinstance(general, Exception):
        assert fast is None
        with pytest.raises(type(general)):
            decode_box_line(data, KEYS.get)
    else:
        assert general == message
        assert decode_box_line(data, KEYS.get) == general
        plain = all(
            ch not in text for text in (alert_id, reason or "", source or "") for ch in '"\\'
        )
        assert fast == (general if plain else None)


def test_a_canonical_ack_takes_the_fast_path() -> None:
    data = encode_box_message(ack(reason="preempted"), KEY)
    assert _fast_ack(data, KEYS.get) == ack(reason="preempted")
    assert _fast_ack(encode_box_message(ack(source=None), KEY), KEYS.get) == ack(source=None)


def test_other_layouts_go_to_the_general_decoder() -> None:
    data = encode_box_message(ack(), KEY)
    spaced = data.replace(b'","', b'", "')
    assert _fast_ack(spaced, KEYS.get) is None
    assert decode_box_line(spaced, KEYS.get) == ack()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (encode_box_message(ack(), b"x" * 32), SignatureError),  # another key
        (encode_box_message(ack(box_id="box-9"), KEY), SignatureError),  # unknown box
        (encode_box_message(ack(), KEY).replace(b"started", b"finished"), SignatureError),
        (encode_box_message(ack(), KEY).replace(b"2026-12-06", b"2026-13-06"), SignatureError),
        (encode_box_message(ack(reason="a\x7fb"), KEY), SpeakerProtocolError),
        (encode_box_message(ack(alert_id="é"), KEY).replace("é".encode(), b"\xff\xfe"), Exception),
        (b'{"v":1}', SpeakerProtocolError),
    ],
)
def test_bad_acks_are_refused_as_the_general_decoder_refuses_them(
    data: bytes, error: type[Exception]
) -> None:
    assert _fast_ack(data, KEYS.get) is None
    with pytest.raises(error) as fast:
        decode_box_line(data, KEYS.get)
    with pytest.raises(error) as general:
        decode_box_message(data, KEYS.get)
    assert type(fast.value) is type(general.value) and str(fast.value) == str(general.value)
    assert isinstance(fast.value, SpeakerProtocolError)
