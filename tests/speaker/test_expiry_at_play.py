"""A warning never plays past its ``expires_at`` (docs/protocols/speaker.md sections 2.3 and
3.3): not when its audio arrives after it, not after its attention clip, and no repeat starts
after it. The box then fails the command with ``expired``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.speaker.messages import AckStage, PlayUrl
from drivers.speaker.testing import MediaServer, play_url_command
from tests.speaker.agent_rig import AUDIO, CLIP, Box, sha


async def hold_until_expired(media: MediaServer, command: PlayUrl) -> None:
    """Let the held download go once ``command`` has expired."""
    assert media.gate is not None
    async with asyncio.timeout(5):
        while not media.requests:
            await asyncio.sleep(0.01)
    await asyncio.sleep((command.expires_at - datetime.now(UTC)).total_seconds() + 0.1)
    media.gate.set()


@pytest.mark.parametrize("audio", ["a.wav", "missing.wav"], ids=["audio", "fallback"])
async def test_audio_that_arrives_after_expiry_is_not_played(
    box: Box, media: MediaServer, audio: str
) -> None:
    media.gate = asyncio.Event()
    command = play_url_command("c1", "a", media.url(audio), AUDIO, expires_in_s=0.8)
    await box.send(command)
    await hold_until_expired(media, command)
    await box.wait_settled("c1")
    await asyncio.sleep(0.1)
    assert box.acks("c1") == [(AckStage.ACCEPTED, None), (AckStage.FAILED, "expired")]
    assert box.log.records == []


async def test_the_audio_after_an_attention_clip_is_not_played_once_expired(
    box: Box, media: MediaServer
) -> None:
    media.gate = asyncio.Event()
    command = replace(
        play_url_command("c1", "a", media.url("a.wav"), AUDIO, expires_in_s=0.8),
        attention_clip="generic",
        attention_sha256=sha(CLIP),
        speech_start_ms=1000,
    )
    await box.send(command)
    await hold_until_expired(media, command)
    await box.wait_settled("c1")
    await asyncio.sleep(0.1)
    assert box.said("c1")[:2] == [
        (AckStage.ACCEPTED, None, None),
        (AckStage.STARTED, None, "attention:generic"),
    ]
    assert box.acks("c1")[2:] == [(AckStage.FAILED, "expired")]
    assert [r.request.source for r in box.log.records] == ["attention:generic"]


async def test_no_repeat_starts_after_expiry(tmp_path: Path, media: MediaServer) -> None:
    box = Box(tmp_path, media, play_seconds=0.4)
    box.start()
    try:
        command = replace(
            play_url_command("c1", "a", media.url("a.wav"), AUDIO, expires_in_s=1.0), repeat=5
        )
        await box.send(command)
        await box.wait_settled("c1")
        await asyncio.sleep(0.5)
    finally:
        await box.stop()
        await box.fetcher.aclose()
    starts = [r.started_at for r in box.log.records]
    assert 1 <= len(starts) < 5
    assert all(start < command.expires_at for start in starts)
    assert all(r.ended_at is not None and not r.interrupted for r in box.log.records)
    assert box.acks("c1") == [
        (AckStage.ACCEPTED, None),
        (AckStage.STARTED, None),
        (AckStage.FAILED, "expired"),
    ]
