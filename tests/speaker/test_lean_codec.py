"""The lean fleet's short path (drivers/speaker/lean_codec.py): its acks are the codec's
bytes and read by both of the server's decoders; it takes a command only when canonical and
signed with the key of its ``to``, and leaves everything else to the general decoder."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from drivers.speaker.codec import (
    area_target,
    box_target,
    canonical_bytes,
    decode_box_message,
    encode_box_message,
    encode_command,
    format_time,
    hmac_hex,
)
from drivers.speaker.codec_ack import decode_box_line
from drivers.speaker.lean_codec import QuickCommand, WireClock, ack_bytes, quick_command
from drivers.speaker.messages import AckStage, BoxAck, PlayClip, PlayUrl, Stop

KEY = bytes(range(32))
AREA_KEY = bytes(range(1, 33))
NOW = datetime(2026, 12, 1, 8, 0, 0, 125000, tzinfo=UTC)
PLAY = PlayUrl(
    cmd_id="play-1", alert_id='s,"id" 中\\', issued_at=NOW, expires_at=NOW + timedelta(hours=1),
    url="https://h/a.mp3", sha256="a" * 64, priority=100, volume=None, fallback_clip="flood",
    acks=(AckStage.STARTED, AckStage.FINISHED),
)  # fmt: skip


def keys(target: str) -> bytes | None:
    return {box_target("sim-00001"): KEY, area_target("150902"): AREA_KEY}.get(target)


@pytest.mark.parametrize("stage", list(AckStage))
@pytest.mark.parametrize("source", [None, "url", "attention:chime"])
@pytest.mark.parametrize("alert_id", ["cn.nmg.ulanqab,2026-11-28-001", 'a"b\\c 中\u2028'])
@pytest.mark.parametrize("reason", [None, "download_failed"])
def test_an_ack_is_byte_for_byte_what_the_codec_writes(
    stage: AckStage, source: str | None, alert_id: str, reason: str | None
) -> None:
    ack = BoxAck(
        box_id="sim-00001",
        at=NOW,
        cmd_id="play-1",
        alert_id=alert_id,
        stage=stage,
        source=source,
        reason=reason,
    )
    at = format_time(NOW)
    written = ack_bytes(KEY, "sim-00001", at, "play-1", alert_id, stage, source, reason)
    assert written == encode_box_message(ack, KEY)
    assert decode_box_message(written, lambda _b: KEY) == ack
    assert decode_box_line(written, lambda _b: KEY) == ack


def test_the_wire_clock_writes_the_codec_s_time_form() -> None:
    before = format_time(datetime.now(UTC))
    text = WireClock().now()
    after = format_time(datetime.now(UTC))
    assert before <= text <= after and len(text) == len(before)


@pytest.mark.parametrize("target", [box_target("sim-00001"), area_target("150902")])
def test_a_canonical_signed_command_is_taken(target: str) -> None:
    data = encode_command(PLAY, target, keys(target) or b"")
    assert quick_command(data, keys) == QuickCommand(
        "play-1", PLAY.alert_id, "play_url", (AckStage.STARTED, AckStage.FINISHED), target
    )
    sealed = encode_command(replace(PLAY, sha256=None), target, keys(target) or b"")
    assert quick_command(sealed, keys) == QuickCommand(
        "play-1", PLAY.alert_id, "play_url", PLAY.acks, target, PLAY.url
    )
    clip = PlayClip(
        cmd_id="c", alert_id="a", issued_at=NOW, expires_at=NOW, clip_id="x", sha256="b" * 64,
        priority=1, volume=None,
    )  # fmt: skip
    assert quick_command(encode_command(clip, target, keys(target) or b""), keys) == (
        QuickCommand("c", "a", "play_clip", None, target)
    )


def test_anything_else_is_left_to_the_general_decoder() -> None:
    target = box_target("sim-00001")
    good = encode_command(PLAY, target, KEY)
    forged = encode_command(PLAY, target, bytes(32))
    stranger = encode_command(PLAY, box_target("sim-00002"), KEY)
    wrong_area = encode_command(PLAY, area_target("150902"), KEY)
    spaced = json.dumps(json.loads(good)).encode()  # valid for the general decoder, not canonical
    tampered = good.replace(b"https://h/a.mp3", b"https://h/b.mp3")
    stop = Stop(cmd_id="s", alert_id="a", issued_at=NOW, expires_at=NOW)
    unknown_stage = json.loads(encode_command(stop, target, KEY)) | {"acks": ["played"]}
    signed = canonical_bytes(unknown_stage)
    bad_acks = signed[:-1] + b',"sig":"' + hmac_hex(KEY, signed) + b'"}'
    for data in (forged, stranger, wrong_area, spaced, tampered, bad_acks, b"", b"[]", good[:-3]):
        assert quick_command(data, keys) is None, data
