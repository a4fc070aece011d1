"""The loudspeaker programme as a box plays it attention-first: the stored attention clip, then
the downloaded audio from where its speech starts, decoded by real ffmpeg in the box's player,
still meets the profile's loudness and true-peak targets by ffmpeg's own ebur128 meter."""

from __future__ import annotations

import asyncio
import hashlib
import wave
from dataclasses import replace
from pathlib import Path

import pytest

from audio.assembly import LOUDSPEAKER_PROFILE, attention_clip
from audio.export import ExportFormat, export_one, to_segment
from audio.render import Renderer, RendererConfig, RenderRequest
from audio.speechtext import SpeechText
from drivers.speaker.agent import BoxAgent, BoxBehaviourConfig, BoxIdentity
from drivers.speaker.codec import decode_box_message, encode_command
from drivers.speaker.messages import AckStage, BoxAck
from drivers.speaker.player import CommandPlayer
from drivers.speaker.store import ClipStore, MediaFetcher, PlayJournal
from drivers.speaker.testing import MediaServer, play_url_command

from .conftest import ebur128

KEY = b"box-key-for-the-playback-test"


async def _play_on_box(tmp_path: Path, clip: Path, audio: bytes, start_ms: int) -> Path:
    """Send the attention-first command to a real agent whose player decodes with ffmpeg and
    appends what it plays to one raw file; returns that file."""
    played = tmp_path / "played.raw"
    player = CommandPlayer(
        [
            "sh",
            "-c",
            f'ffmpeg -v error -ss "$1" -i "$0" -ac 1 -ar 48000 -f s16le - >> {played}',
            "{path}",
            "{start}",
        ]
    )
    fetcher = MediaFetcher(tmp_path / "cache")
    agent = BoxAgent(
        BoxIdentity(box_id="b1", key=KEY),
        player,
        ClipStore(clip.parent),
        fetcher,
        PlayJournal(),
        BoxBehaviourConfig(heartbeat_s=3600),
    )
    async with MediaServer({"programme.opus": audio}) as media:
        command = replace(
            play_url_command("c1", "alert-1", media.url("programme.opus"), audio),
            attention_clip=clip.name,
            attention_sha256=hashlib.sha256(clip.read_bytes()).hexdigest(),
            speech_start_ms=start_ms,
        )
        run = asyncio.get_running_loop().create_task(agent.run())
        try:
            await agent.handle_command(encode_command(command, "box:b1", KEY))
            async with asyncio.timeout(30):
                while True:
                    ack = decode_box_message(await agent.next_outgoing(), lambda b: KEY)
                    if isinstance(ack, BoxAck) and ack.stage is AckStage.FINISHED:
                        break
                    assert not (isinstance(ack, BoxAck) and ack.stage is AckStage.FAILED), ack
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            await fetcher.aclose()
    return played


async def test_attention_first_playback_meets_the_loudspeaker_targets(tmp_path: Path) -> None:
    profile = LOUDSPEAKER_PROFILE.with_formats(ExportFormat.OPUS)
    renderer = Renderer(RendererConfig(cache_dir=tmp_path / "cache", engine_order=("espeak-ng",)))
    speech = SpeechText(
        language="zh-CN",
        status="Actual",
        event="暴雪",
        headline="乌兰察布市气象台发布暴雪红色预警信号",
        description="预计未来12小时内将出现暴雪天气，请做好防御准备，减少户外活动。",
        level="red",
    )
    render = await renderer.render(RenderRequest(speech, hazard="blizzard"), profile)
    attention = next(s for s in render.segments if s.kind == "attention")
    (tmp_path / "clips").mkdir()
    clip = export_one(to_segment(attention_clip(profile)), ExportFormat.OPUS, tmp_path / "clips")
    clip = clip.rename(tmp_path / "clips" / "attention")
    audio = render.files[ExportFormat.OPUS].read_bytes()

    played = await _play_on_box(tmp_path, clip, audio, round(attention.end_s * 1000))

    pcm = played.read_bytes()
    as_heard = tmp_path / "as-heard.wav"
    with wave.open(str(as_heard), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(pcm)
    # The clip and the audio from its speech make up the programme once, no more, no less.
    assert len(pcm) / 2 / 48_000 == pytest.approx(render.duration_s, abs=0.15)
    measured = ebur128(as_heard)
    assert measured.integrated_lufs == pytest.approx(profile.loudness.lufs, abs=1.0)
    assert measured.true_peak_dbtp <= -1.0
    # Splitting adds no peak: what the box plays peaks no higher than the file it downloaded.
    assert measured.true_peak_dbtp <= ebur128(render.files[ExportFormat.OPUS]).true_peak_dbtp
