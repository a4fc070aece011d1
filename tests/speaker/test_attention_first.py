"""Attention first: a box holding the attention clip plays it the moment it accepts a
``play_url``, downloads meanwhile, then plays the audio from where its speech starts; boxes
without the clip, or whose player cannot start mid-file, play the audio whole as before."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.speaker.agent import BoxAgent, BoxBehaviourConfig, BoxIdentity
from drivers.speaker.codec import decode_box_message, decode_command, encode_command
from drivers.speaker.errors import SpeakerProtocolError
from drivers.speaker.messages import AckStage, BoxAck, PlayClip, PlayUrl, Priority
from drivers.speaker.player import (
    CommandPlayer,
    PlaybackLog,
    PlaybackRecord,
    PlaybackRequest,
    RecordingPlayer,
)
from drivers.speaker.store import ClipStore, MediaFetcher, PlayJournal
from drivers.speaker.testing import MediaServer, play_url_command

KEY = b"box-key-attention-0123456789"
AUDIO = b"programme audio" * 100
TONE = b"stored attention signal"
SPEECH_START_MS = 4000


class NoSeekPlayer(RecordingPlayer):
    """A player that can only play files from their start."""

    starts_mid_file = False


class Box:
    """A box agent in the test's loop, its acks decoded in arrival order."""

    def __init__(self, tmp_path: Path, player: RecordingPlayer, with_clip: bool = True) -> None:
        clips = tmp_path / "clips"
        clips.mkdir()
        if with_clip:
            (clips / "attention").write_bytes(TONE)
        self.player = player
        self.fetcher = MediaFetcher(tmp_path / "cache")
        self.acks: list[BoxAck] = []
        self.agent = BoxAgent(
            BoxIdentity(box_id="b1", key=KEY),
            player,
            ClipStore(clips),
            self.fetcher,
            PlayJournal(tmp_path / "journal.json"),
            BoxBehaviourConfig(heartbeat_s=3600),
        )

    async def __aenter__(self) -> Box:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self.agent.run()), loop.create_task(self._drain())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.fetcher.aclose()

    async def _drain(self) -> None:
        while True:
            message = decode_box_message(await self.agent.next_outgoing(), lambda b: KEY)
            if isinstance(message, BoxAck):
                self.acks.append(message)

    def stages(self, cmd_id: str) -> list[tuple[AckStage, str | None]]:
        return [(a.stage, a.source) for a in self.acks if a.cmd_id == cmd_id]

    async def wait_stage(self, cmd_id: str, stage: AckStage) -> None:
        async with asyncio.timeout(5):
            while stage not in [s for s, _ in self.stages(cmd_id)]:
                await asyncio.sleep(0.01)

    async def send(self, command: PlayUrl | PlayClip) -> None:
        await self.agent.handle_command(encode_command(command, "box:b1", KEY))


def attention_command(url: str, cmd_id: str = "c1") -> PlayUrl:
    plain = play_url_command(cmd_id, "alert-1", url, AUDIO)
    return replace(
        plain,
        attention_clip="attention",
        attention_sha256=hashlib.sha256(TONE).hexdigest(),
        speech_start_ms=SPEECH_START_MS,
    )


@pytest.fixture
async def media() -> AsyncIterator[MediaServer]:
    async with MediaServer({"a.opus": AUDIO}) as server:
        yield server


def played(log: PlaybackLog) -> list[tuple[str, str, float]]:
    return [(r.request.source, r.request.path.name, r.request.start_s) for r in log.records]


def gap_s(first: PlaybackRecord, second: PlaybackRecord) -> float:
    assert first.ended_at is not None
    return (second.started_at - first.ended_at).total_seconds()


async def test_attention_plays_while_the_audio_is_still_downloading(
    tmp_path: Path, media: MediaServer
) -> None:
    log = PlaybackLog()
    media.gate = asyncio.Event()  # the download hangs until the test lets it go
    async with Box(tmp_path, RecordingPlayer(log, 0.3)) as box:
        await box.send(replace(attention_command(media.url("a.opus")), repeat=2))
        await log.wait_for(lambda records: len(records) == 1, within_s=5)
        # Sound has started and the box said so, yet the audio has not arrived.
        assert played(log) == [("attention:attention", "attention", 0.0)]
        assert box.stages("c1") == [
            (AckStage.ACCEPTED, None),
            (AckStage.STARTED, "attention:attention"),
        ]
        async with asyncio.timeout(2):
            while not media.requests:  # the download has begun and is held
                await asyncio.sleep(0.01)
        assert not (tmp_path / "cache").exists()
        media.gate.set()
        await box.wait_stage("c1", AckStage.FINISHED)
    # Then the warning, from where its speech starts, and the repeat whole.
    sha = hashlib.sha256(AUDIO).hexdigest()
    assert played(log) == [
        ("attention:attention", "attention", 0.0),
        ("url", sha, SPEECH_START_MS / 1000),
        ("url", sha, 0.0),
    ]
    assert gap_s(log.records[0], log.records[1]) < 0.2
    assert box.stages("c1")[-1] == (AckStage.FINISHED, "url")


async def test_a_box_without_the_clip_plays_the_audio_whole(
    tmp_path: Path, media: MediaServer
) -> None:
    log = PlaybackLog()
    async with Box(tmp_path, RecordingPlayer(log), with_clip=False) as box:
        await box.send(replace(attention_command(media.url("a.opus")), repeat=1))
        await log.wait_for(lambda records: any(r.ended_at for r in records), within_s=5)
        await asyncio.sleep(0.05)
    assert played(log) == [("url", hashlib.sha256(AUDIO).hexdigest(), 0.0)]
    assert (AckStage.STARTED, "url") in box.stages("c1")


async def test_a_player_that_cannot_start_mid_file_plays_the_audio_whole(
    tmp_path: Path, media: MediaServer
) -> None:
    log = PlaybackLog()
    async with Box(tmp_path, NoSeekPlayer(log)) as box:
        await box.send(replace(attention_command(media.url("a.opus")), repeat=1))
        await log.wait_for(lambda records: any(r.ended_at for r in records), within_s=5)
    assert played(log) == [("url", hashlib.sha256(AUDIO).hexdigest(), 0.0)]


async def test_a_clip_of_the_wrong_hash_is_not_played(tmp_path: Path, media: MediaServer) -> None:
    log = PlaybackLog()
    command = replace(attention_command(media.url("a.opus")), attention_sha256="0" * 64, repeat=1)
    async with Box(tmp_path, RecordingPlayer(log)) as box:
        await box.send(command)
        await log.wait_for(lambda records: any(r.ended_at for r in records), within_s=5)
    assert [source for source, _, _ in played(log)] == ["url"]


async def test_an_attention_clip_sent_ahead_is_not_played_twice(
    tmp_path: Path, media: MediaServer
) -> None:
    """The server's early ``play_clip`` starts the signal; the ``play_url`` that follows it
    goes on with the speech."""
    log = PlaybackLog()
    now = datetime.now(UTC)
    early = PlayClip(
        cmd_id="attention-1",
        alert_id="alert-1",
        issued_at=now,
        expires_at=now + timedelta(minutes=1),
        clip_id="attention",
        sha256=hashlib.sha256(TONE).hexdigest(),
        priority=Priority.EMERGENCY,
    )
    async with Box(tmp_path, RecordingPlayer(log, 0.2)) as box:
        await box.send(early)
        await box.send(replace(attention_command(media.url("a.opus")), repeat=1))
        await log.wait_for(lambda records: len(records) == 2 and records[1].ended_at, 5)
    assert [(source, start) for source, _, start in played(log)] == [
        ("clip", 0.0),
        ("url", SPEECH_START_MS / 1000),
    ]
    assert gap_s(log.records[0], log.records[1]) < 0.2


def test_the_fields_round_trip_and_come_together() -> None:
    command = attention_command("http://127.0.0.1:1/a.opus")
    _, decoded = decode_command(encode_command(command, "box:b1", KEY), lambda t: KEY)
    assert isinstance(decoded, PlayUrl)
    fields = ("attention_clip", "attention_sha256", "speech_start_ms", "url", "sha256")
    assert [getattr(decoded, f) for f in fields] == [getattr(command, f) for f in fields]
    lone = replace(command, speech_start_ms=None)
    with pytest.raises(SpeakerProtocolError, match="go together"):
        decode_command(encode_command(lone, "box:b1", KEY), lambda t: KEY)


async def test_command_player_fills_in_the_start(tmp_path: Path) -> None:
    out = tmp_path / "argv"
    player = CommandPlayer(["sh", "-c", f'echo "$0 $1" > {out}', "{path}", "{start}"])
    assert player.starts_mid_file and not CommandPlayer().starts_mid_file
    request = PlaybackRequest("b1", "c", "a", tmp_path / "f.opus", 50, 1, "url", start_s=4.25)
    await player.play(request)
    assert out.read_text().split() == [str(tmp_path / "f.opus"), "4.250"]
