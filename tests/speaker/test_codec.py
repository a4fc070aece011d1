"""The signed JSON codec: round trips, the canonical form, and refusal of tampered input."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from drivers.speaker.codec import (
    area_target,
    box_target,
    canonical_bytes,
    decode_box_message,
    decode_command,
    derive_key,
    encode_box_message,
    encode_command,
    format_time,
    hmac_hex,
    parse_time,
)
from drivers.speaker.errors import SignatureError, SpeakerError, SpeakerProtocolError
from drivers.speaker.messages import (
    AckStage,
    BoxAck,
    BoxHello,
    BoxState,
    BoxStatus,
    BroadcastClass,
    PlayClip,
    PlayUrl,
    SetVolume,
    Stop,
)

KEY = bytes(range(32))
ISSUED = datetime(2026, 11, 28, 23, 59, 1, 250000, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(minutes=30)
HEADER = {
    "cmd_id": "c-1",
    "alert_id": "cn.12379,alert-7",
    "issued_at": ISSUED,
    "expires_at": EXPIRES,
}

COMMANDS = [
    PlayUrl(
        url="https://example.org/a.wav",
        sha256="ab" * 32,
        priority=100,
        volume=75,
        repeat=3,
        fallback_clip="generic",
        broadcast_class=BroadcastClass.LIVE_DRILL,
        **HEADER,
    ),
    PlayUrl(url="http://h/x.mp3", sha256="cd" * 32, priority=10, **HEADER),
    PlayClip(clip_id="flood-zh", sha256="ef" * 32, priority=40, volume=0, **HEADER),
    Stop(**HEADER),
    SetVolume(volume=100, **HEADER),
]


def lookup(key: bytes, target: str):
    return lambda name: key if name == target else None


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.kind)
def test_commands_round_trip(command) -> None:
    data = encode_command(command, box_target("box-1"), KEY)
    target, decoded = decode_command(data, lookup(KEY, "box:box-1"))
    assert (target, decoded) == ("box:box-1", command)


def test_box_messages_round_trip() -> None:
    messages = [
        BoxAck(
            box_id="b1",
            cmd_id="c-1",
            alert_id="a",
            stage=AckStage.STARTED,
            at=ISSUED,
            reason="download_failed",
            source="fallback:generic",
        ),
        BoxAck(box_id="b1", cmd_id="c-1", alert_id="a", stage=AckStage.FINISHED, at=ISSUED),
        BoxStatus(
            box_id="b1",
            at=ISSUED,
            state=BoxState.PLAYING,
            volume=80,
            uptime_s=12,
            firmware="fw 1",
            playing_alert_id="a",
            playing_cmd_id="c-1",
            signal_dbm=-71,
        ),
        BoxHello(box_id="b1", at=ISSUED, nonce="00ff", firmware="fw 1"),
    ]
    for message in messages:
        data = encode_box_message(message, KEY)
        assert decode_box_message(data, lookup(KEY, "b1")) == message


def test_signature_is_hmac_sha256_over_sorted_compact_json() -> None:
    data = encode_command(COMMANDS[3], area_target("150902"), KEY)
    obj = json.loads(data)
    unsigned = {k: v for k, v in obj.items() if k != "sig"}
    expected_form = (
        '{"alert_id":"cn.12379,alert-7","cmd_id":"c-1","expires_at":"2026-11-29T00:29:01.250Z",'
        '"issued_at":"2026-11-28T23:59:01.250Z","to":"area:150902","type":"stop","v":1}'
    )
    assert canonical_bytes(unsigned) == expected_form.encode()
    assert obj["sig"] == hmac.new(KEY, expected_form.encode(), hashlib.sha256).hexdigest()


def test_field_order_and_whitespace_do_not_matter() -> None:
    obj = json.loads(encode_command(COMMANDS[0], box_target("b"), KEY))
    reordered = json.dumps(dict(reversed(list(obj.items()))), indent=2).encode()
    assert decode_command(reordered, lookup(KEY, "box:b"))[1] == COMMANDS[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [("priority", 99), ("url", "https://evil.example/a.wav"), ("to", "box:other"), ("volume", 1)],
)
def test_tampering_with_any_field_breaks_the_signature(field: str, value: object) -> None:
    obj = json.loads(encode_command(COMMANDS[0], box_target("b"), KEY))
    obj[field] = value
    with pytest.raises(SignatureError):
        decode_command(json.dumps(obj).encode(), lambda _: KEY)


def test_wire_bytes_are_the_canonical_form_and_any_flipped_byte_is_refused() -> None:
    data = encode_command(COMMANDS[0], box_target("b"), KEY)
    obj = json.loads(data)
    assert data == canonical_bytes(obj)[:-1] + f',"sig":"{obj["sig"]}"}}'.encode()
    for index in range(1, len(data) - 2, 7):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        with pytest.raises(SpeakerProtocolError):
            decode_command(bytes(tampered), lambda _: KEY)


def test_wrong_key_unknown_target_and_missing_signature_are_signature_errors() -> None:
    data = encode_command(COMMANDS[3], box_target("b"), KEY)
    with pytest.raises(SignatureError):
        decode_command(data, lookup(b"x" * 32, "box:b"))
    with pytest.raises(SignatureError, match="no key"):
        decode_command(data, lookup(KEY, "box:someone-else"))
    obj = json.loads(data)
    del obj["sig"]
    with pytest.raises(SignatureError, match="no signature"):
        decode_command(json.dumps(obj).encode(), lookup(KEY, "box:b"))
    for sig in ("\ud800" * 64, "é" * 64, "A" * 64, "0" * 63):  # never an encoding error
        obj["sig"] = sig
        with pytest.raises(SignatureError, match="64 hex digits"):
            decode_command(json.dumps(obj).encode(), lookup(KEY, "box:b"))


def _signed(obj: dict) -> bytes:
    obj = dict(obj)
    obj["sig"] = hmac.new(KEY, canonical_bytes(obj), hashlib.sha256).hexdigest()
    return json.dumps(obj).encode()


BASE = {
    "v": 1,
    "type": "stop",
    "to": "box:b",
    "cmd_id": "c",
    "alert_id": "a",
    "issued_at": "2026-11-28T23:59:01.000Z",
    "expires_at": "2026-11-28T23:59:31Z",
}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not a JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"v": 1, "type": "stop", "x": 1.5}', "floating-point"),
        (b'{"v": 1, "v": 1, "type": "stop"}', "duplicate key"),
        (b'{"v": 2, "type": "stop"}', "version"),
        (b"{" * 20000, "exceeds"),
        (b'{"v": 1, "type": "stop", "x": ' + b"1" * 5000 + b"}", "not a JSON"),
        (
            json.dumps(BASE | {"type": "stop", "note": "\ud800", "sig": "00" * 32}).encode(),
            "not Unicode",
        ),
        (_signed(BASE | {"type": "reboot"}), "unknown command"),
        (_signed(BASE | {"issued_at": "2026-11-28 23:59:01"}), "RFC 3339"),
        (_signed(BASE | {"issued_at": "2026-11-28T23:59:01+00:00"}), "RFC 3339"),
        (_signed(BASE | {"cmd_id": "has space"}), "cmd_id"),
        (_signed(BASE | {"alert_id": "line\nbreak"}), "control"),
        (_signed(BASE | {"type": "set_volume", "volume": 101}), "volume"),
        (_signed(BASE | {"type": "set_volume", "volume": True}), "volume"),
    ],
)
def test_malformed_commands_raise_protocol_errors(data: bytes, message: str) -> None:
    with pytest.raises(SpeakerProtocolError, match=message) as caught:
        decode_command(data, lookup(KEY, "box:b"))
    assert isinstance(caught.value, SpeakerError) and isinstance(caught.value, ValueError)


def test_play_url_must_be_http_and_clip_ids_are_safe_names() -> None:
    play = BASE | {"type": "play_url", "sha256": "ab" * 32, "priority": 1, "repeat": 1}
    with pytest.raises(SpeakerProtocolError, match="http"):
        decode_command(
            _signed(play | {"url": "file:///etc/passwd", "class": "routine"}), lambda _: KEY
        )
    clip = BASE | {"type": "play_clip", "sha256": "ab" * 32, "priority": 1, "repeat": 1}
    with pytest.raises(SpeakerProtocolError, match="clip_id"):
        decode_command(_signed(clip | {"clip_id": "../../x", "class": "routine"}), lambda _: KEY)


def test_box_message_naming_an_unknown_box_is_refused() -> None:
    data = encode_box_message(BoxHello(box_id="b1", at=ISSUED, nonce="1", firmware="f"), KEY)
    with pytest.raises(SignatureError):
        decode_box_message(data, lambda _: None)


def test_times_are_utc_with_milliseconds_and_z() -> None:
    local = datetime(2026, 1, 2, 11, 4, 5, 678999).astimezone()
    text = format_time(local)
    assert text.endswith("Z") and len(text) == len("2026-01-02T03:04:05.678Z")
    assert parse_time(text) == local.replace(microsecond=678000)
    assert parse_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_derived_keys_differ_per_label() -> None:
    assert derive_key(b"s", "box:a") != derive_key(b"s", "box:b")
    assert len(derive_key(b"s", "box:a")) == 32


@pytest.mark.parametrize("length", [0, 1, 16, 32, 63, 64, 65, 200])
def test_prepared_hmac_states_give_the_standard_hmac(length: int) -> None:
    key = bytes(range(7, 7 + length))
    for data in (b"", b"x", b"{}" * 100):
        expected = hmac.new(key, data, hashlib.sha256).hexdigest().encode()
        assert hmac_hex(key, data) == expected
        assert hmac_hex(key, data) == expected  # the second time from the prepared states
