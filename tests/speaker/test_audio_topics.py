"""Sealed audio retained on MQTT: the command's ``audio_topic`` and the seal note a box checks
retained audio with (docs/protocols/speaker.md, section 5.1)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from drivers.speaker.audio_topics import (
    UNAVAILABLE,
    SealNote,
    check_topic_audio,
    encode_seal_note,
    media_topic,
    parse_seal_note,
    seal_topic,
)
from drivers.speaker.codec import canonical_bytes, decode_command, encode_command
from drivers.speaker.errors import MediaIntegrityError, SpeakerProtocolError
from drivers.speaker.messages import PlayUrl
from drivers.speaker.seal import seal
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.topics import SpeakerTopics

KEY = bytes(range(32))
ISSUED = datetime(2026, 11, 28, 23, 59, 1, tzinfo=UTC)
URL = "https://warn.example.org/audio/next/0123"
TO = CommandTarget("area:150902", KEY)
MEDIA = b"rendered warning" * 100
SHA = hashlib.sha256(MEDIA).hexdigest()


def _command(**extra: object) -> PlayUrl:
    return PlayUrl(
        cmd_id="c-1",
        alert_id="a",
        issued_at=ISSUED,
        expires_at=ISSUED + timedelta(minutes=5),
        url=URL,
        sha256=None,
        priority=100,
        **extra,  # type: ignore[arg-type]
    )


def _signed(obj: dict[str, object]) -> bytes:
    obj = dict(obj)
    obj["sig"] = hmac.new(KEY, canonical_bytes(obj), hashlib.sha256).hexdigest()
    return json.dumps(obj).encode()


def test_a_sealed_play_url_carries_its_audio_topic_under_its_signature() -> None:
    topic = SpeakerTopics().audio("0123")
    assert topic == "broadcaster/speaker/audio/0123"
    command = _command(audio_topic=topic, attention_clip="tone")
    data = encode_command(command, TO.target, KEY)
    assert json.loads(data)["audio_topic"] == topic
    assert decode_command(data, lambda _: KEY) == (TO.target, command)
    assert "audio_topic" not in json.loads(encode_command(_command(), TO.target, KEY))
    forged = json.loads(data) | {"audio_topic": "broadcaster/speaker/audio/other"}
    with pytest.raises(SpeakerProtocolError, match="signature"):
        decode_command(json.dumps(forged).encode(), lambda _: KEY)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sha256": "ab" * 32, "audio_topic": "p/audio/t"}, "sealed audio"),
        ({"audio_topic": "p/audio/+"}, "MQTT topic name"),
        ({"audio_topic": "p/#"}, "MQTT topic name"),
        ({"audio_topic": "/p/audio/t"}, "MQTT topic name"),
        ({"audio_topic": ""}, "audio_topic"),
        ({"audio_topic": "p/" + "a" * 600}, "MQTT topic name"),
        ({"audio_topic": 7}, "audio_topic"),
    ],
)
def test_an_audio_topic_that_breaks_a_rule_is_malformed(
    extra: dict[str, object], message: str
) -> None:
    obj: dict[str, object] = {
        "v": 1,
        "type": "play_url",
        "to": TO.target,
        "cmd_id": "c",
        "alert_id": "a",
        "issued_at": "2026-11-28T23:59:01.000Z",
        "expires_at": "2026-11-28T23:59:31.000Z",
        "url": URL,
        "priority": 1,
        "repeat": 1,
        "class": "emergency",
    }
    with pytest.raises(SpeakerProtocolError, match=message):
        decode_command(_signed(obj | extra), lambda _: KEY)


def test_the_topics_of_retained_audio() -> None:
    assert media_topic("p/audio/t") == "p/audio/t/media"
    assert seal_topic("p/audio/t", "area:150902") == "p/audio/t/seal/area:150902"


def test_a_seal_note_round_trips_canonically_and_verifies_retained_audio() -> None:
    note = SealNote(SHA, 4200, seal(KEY, URL, TO.target, SHA, 4200))
    payload = encode_seal_note(note)
    assert (
        payload
        == json.dumps(
            {"seal": note.seal, "sha256": SHA, "speech_start_ms": 4200}, separators=(",", ":")
        ).encode()
    )
    assert parse_seal_note(payload) == note
    checked = check_topic_audio(URL, TO, note, MEDIA)
    assert (checked.sha256, checked.speech_start_ms) == (SHA, 4200)
    bare = SealNote(SHA, None, seal(KEY, URL, TO.target, SHA, None))
    assert b"speech_start_ms" not in encode_seal_note(bare)
    assert check_topic_audio(URL, TO, bare, MEDIA).speech_start_ms is None
    assert parse_seal_note(UNAVAILABLE) is None


def test_retained_audio_is_refused_unless_media_and_seal_agree() -> None:
    note = SealNote(SHA, 4200, seal(KEY, URL, TO.target, SHA, 4200))
    with pytest.raises(MediaIntegrityError, match="does not match its seal note"):
        check_topic_audio(URL, TO, note, MEDIA + b"x")
    for url, to, start in (
        (URL + "x", TO, 4200),
        (URL, CommandTarget("box:b1", KEY), 4200),
        (URL, CommandTarget(TO.target, b"k" * 32), 4200),
        (URL, TO, 0),
    ):
        with pytest.raises(MediaIntegrityError, match="retained seal"):
            check_topic_audio(url, to, SealNote(SHA, start, note.seal), MEDIA)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"available",
        b"[1]",
        b'{"sha256": "' + b"a" * 64 + b'"}',
        b'{"seal": "' + b"a" * 64 + b'", "sha256": "' + b"A" * 64 + b'"}',
        json.dumps({"seal": "a" * 64, "sha256": "b" * 64, "speech_start_ms": 60001}).encode(),
        json.dumps({"seal": "a" * 64, "sha256": "b" * 64, "speech_start_ms": True}).encode(),
        json.dumps({"seal": "a" * 64, "sha256": "b" * 64, "url": "x"}).encode(),
        b"[" * 100_000,
        b" " * 600,
    ],
)
def test_a_malformed_seal_note_is_an_integrity_error(payload: bytes) -> None:
    with pytest.raises(MediaIntegrityError):
        parse_seal_note(payload)
