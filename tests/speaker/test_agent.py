"""The box agent on its own: verification, media, priorities, the journal and the player."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.speaker.codec import area_target
from drivers.speaker.errors import BoxStorageError, SpeakerConfigError
from drivers.speaker.messages import (
    ALL_ALERTS,
    AckStage,
    PlayClip,
    Priority,
    SetVolume,
    Stop,
)
from drivers.speaker.player import (
    CommandPlayer,
    PlaybackRequest,
    PlayerError,
)
from drivers.speaker.store import MediaFetcher, PlayJournal
from drivers.speaker.testing import MediaServer, play_url_command
from tests.speaker.agent_rig import AREA_KEY, AUDIO, CLIP, KEY, Box, header, sha


async def test_downloads_once_and_checks_the_hash(box: Box, media: MediaServer) -> None:
    for n in (1, 2):
        await box.send(play_url_command(f"c{n}", f"a{n}", media.url("a.wav"), AUDIO))
        await box.wait_ack(f"c{n}", AckStage.FINISHED)
    assert media.requests == 1
    assert [r.request.source for r in box.log.completed()] == ["url", "url"]
    assert box.log.completed()[0].request.path.read_bytes() == AUDIO


async def test_hash_mismatch_falls_back_and_is_not_cached(box: Box, media: MediaServer) -> None:
    command = play_url_command("c", "a", media.url("wrong.wav"), AUDIO)
    await box.send(command)
    await box.wait_ack("c", AckStage.FINISHED)
    assert box.acks("c")[1] == (AckStage.STARTED, "hash_mismatch")
    assert not (box.tmp_path / "cache" / sha(AUDIO)).exists()


async def test_no_fallback_and_missing_clip_fail_with_a_reason(
    box: Box, media: MediaServer
) -> None:
    await box.send(PlayClip(clip_id="absent", sha256=sha(CLIP), priority=1, **header("c1")))
    await box.send(PlayClip(clip_id="generic", sha256=sha(b"other"), priority=1, **header("c2")))
    await box.send(PlayClip(clip_id="generic", sha256=sha(CLIP), priority=1, **header("c3")))
    for cmd in ("c1", "c2"):
        await box.wait_ack(cmd, AckStage.FAILED)
        assert box.acks(cmd)[-1] == (AckStage.FAILED, "media_unavailable")
    await box.wait_ack("c3", AckStage.FINISHED)
    assert [r.request.cmd_id for r in box.log.completed()] == ["c3"]


async def test_area_commands_need_the_area_key(box: Box, media: MediaServer) -> None:
    url = media.url("a.wav")
    await box.send(play_url_command("c1", "a", url, AUDIO), AREA_KEY, area_target("150902"))
    await box.send(play_url_command("c2", "a2", url, AUDIO), KEY, area_target("150902"))
    await box.send(play_url_command("c3", "a3", url, AUDIO), AREA_KEY, area_target("150921"))
    await box.wait_ack("c1", AckStage.FINISHED)
    await box.wait_ack("c3", AckStage.FAILED)
    assert box.acks("c2") == [(AckStage.FAILED, "bad_signature")]
    assert box.acks("c3") == [(AckStage.FAILED, "bad_signature")]


async def test_commands_from_the_future_and_garbage_are_refused(box: Box) -> None:
    future = header("c1")
    future["issued_at"] += timedelta(hours=1)
    future["expires_at"] += timedelta(hours=1)
    await box.send(Stop(**future))
    await box.agent.handle_command(b"\x00garbage")
    await box.agent.handle_command(b'{"v":1,"type":"stop","cmd_id":"c2","alert_id":"x"}')
    await box.wait_ack("c1", AckStage.FAILED)
    assert box.acks("c1") == [(AckStage.FAILED, "not_yet_valid")]
    assert box.acks("c2") == [(AckStage.FAILED, "malformed")]


async def test_lower_priority_waits_and_equal_priority_queues(box: Box, media: MediaServer) -> None:
    box.player.duration_s = 0.2
    url = media.url("a.wav")
    await box.send(play_url_command("c1", "a1", url, AUDIO, priority=Priority.EMERGENCY))
    await box.wait_ack("c1", AckStage.STARTED)
    await box.send(play_url_command("c2", "a2", url, AUDIO, priority=Priority.ROUTINE))
    await box.send(play_url_command("c3", "a3", url, AUDIO, priority=Priority.EMERGENCY))
    await box.wait_ack("c2", AckStage.FINISHED)
    assert [r.request.cmd_id for r in box.log.completed()] == ["c1", "c3", "c2"]


async def test_stop_all_clears_the_queue(box: Box, media: MediaServer) -> None:
    box.player.duration_s = 30
    url = media.url("a.wav")
    await box.send(play_url_command("c1", "a1", url, AUDIO))
    await box.send(play_url_command("c2", "a2", url, AUDIO))
    await box.wait_ack("c1", AckStage.STARTED)
    await box.send(Stop(**header("s", ALL_ALERTS)))
    await box.wait_ack("c2", AckStage.FAILED)
    await box.wait_ack("c1", AckStage.FAILED)
    assert box.acks("c2")[-1] == (AckStage.FAILED, "stopped")
    assert [(r.request.cmd_id, r.interrupted) for r in box.log.records] == [("c1", True)]


async def test_set_volume_applies_to_plays_without_their_own_and_survives_restart(
    tmp_path: Path, media: MediaServer
) -> None:
    box = Box(tmp_path, media)
    box.start()
    await box.send(SetVolume(volume=33, **header("v")))
    await box.wait_ack("v", AckStage.FINISHED)
    await box.stop()
    box.start()
    clip = PlayClip(clip_id="generic", sha256=sha(CLIP), priority=1, **header("p"))
    await box.send(clip)
    await box.wait_ack("p", AckStage.FINISHED)
    await box.stop()
    await box.fetcher.aclose()
    assert box.log.completed()[0].request.volume == 33
    assert box.agent.status().volume == 33


async def test_expired_while_waiting_in_the_queue(box: Box, media: MediaServer) -> None:
    box.player.duration_s = 0.5
    url = media.url("a.wav")
    await box.send(play_url_command("c1", "a1", url, AUDIO))
    await box.send(play_url_command("c2", "a2", url, AUDIO, expires_in_s=0.2))
    await box.wait_ack("c2", AckStage.FAILED)
    assert box.acks("c2") == [(AckStage.ACCEPTED, None), (AckStage.FAILED, "expired")]


async def test_a_corrupt_journal_is_a_clear_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text('{"entries": [{"cmd_id": 1}]}')
    with pytest.raises(SpeakerConfigError, match="journal"):
        await PlayJournal(path).load()


async def test_journal_survives_reload(tmp_path: Path, box: Box, media: MediaServer) -> None:
    await box.send(play_url_command("c1", "a1", media.url("a.wav"), AUDIO))
    await box.wait_ack("c1", AckStage.FINISHED)
    journal = PlayJournal(tmp_path / "journal.json")
    await journal.load()
    entry = journal.get("c1")
    assert entry is not None and entry.stage is AckStage.FINISHED and entry.source == "url"
    assert json.loads(entry.wire)["cmd_id"] == "c1"


def request(path: Path) -> PlaybackRequest:
    return PlaybackRequest("b1", "c", "a", path, 50, 1, "clip")


async def test_command_player_runs_the_command_with_the_file(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    player = CommandPlayer(
        ["sh", "-c", 'echo "$1 $2 $3" > "$4"', "sh", "{path}", "{volume}", "{gain}", str(out)]
    )
    await player.play(request(tmp_path / "clip.wav"))
    assert out.read_text().split() == [str(tmp_path / "clip.wav"), "50", "0.50"]


async def test_command_player_failure_and_cancellation(tmp_path: Path) -> None:
    with pytest.raises(PlayerError, match="status 3"):
        await CommandPlayer(["sh", "-c", "exit 3", "sh", "{path}"]).play(request(tmp_path))
    with pytest.raises(PlayerError, match="cannot start"):
        await CommandPlayer(["/nonexistent/player", "{path}"]).play(request(tmp_path))
    with pytest.raises(SpeakerConfigError):
        CommandPlayer(["aplay"])
    task = asyncio.get_running_loop().create_task(
        CommandPlayer(["sh", "-c", "sleep 30", "sh", "{path}"]).play(request(tmp_path))
    )
    await asyncio.sleep(0.1)
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < 1.0


async def test_an_unwritable_journal_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    journal = PlayJournal(tmp_path / "not-a-dir" / "journal.json")
    with pytest.raises(BoxStorageError, match="cannot write journal"):
        await journal.save()


async def test_a_cancelled_caller_does_not_cancel_a_shared_download(
    tmp_path: Path, media: MediaServer
) -> None:
    fetcher = MediaFetcher(tmp_path / "shared")
    loop = asyncio.get_running_loop()
    first = loop.create_task(fetcher.fetch(media.url("a.wav"), sha(AUDIO)))
    second = loop.create_task(fetcher.fetch(media.url("a.wav"), sha(AUDIO)))
    await asyncio.sleep(0)
    first.cancel()
    try:
        path = await second
        assert path.read_bytes() == AUDIO
        assert first.cancelled() and media.requests == 1
    finally:
        await fetcher.aclose()
