"""Streamed renders: the encoder has the first second (the attention signal) before the text is
synthesised, and the file it writes still meets the profile's loudness and true-peak targets by
ffmpeg's own ebur128 meter."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio.assembly import LOUDSPEAKER_PROFILE
from audio.errors import NoSpeechError
from audio.export import ExportFormat
from audio.render import Renderer, RendererConfig, RenderRequest
from audio.speechtext import SpeechText

from .conftest import ebur128, probe

DESCRIPTION = (
    "预计未来12小时内，集宁区、卓资县、兴和县、察哈尔右翼前旗将出现暴雪天气，降雪量10mm以上，"
    "并伴有6-8级偏北风，最低气温将降至-25℃。请有关单位和人员做好防御准备，减少不必要的户外活动。"
)


def _request() -> RenderRequest:
    speech = SpeechText(
        language="zh-CN",
        status="Actual",
        event="暴雪",
        headline="乌兰察布市气象台发布暴雪红色预警信号",
        description=DESCRIPTION,
        level="red",
    )
    return RenderRequest(speech, hazard="blizzard")


@pytest.mark.parametrize("fmt", [ExportFormat.MP3, ExportFormat.OPUS])
async def test_streamed_loudspeaker_render_meets_the_targets(
    tmp_path: Path, fmt: ExportFormat
) -> None:
    renderer = Renderer(RendererConfig(cache_dir=tmp_path, engine_order=("espeak-ng",)))
    render = await renderer.render(_request(), LOUDSPEAKER_PROFILE.with_formats(fmt))

    assert list(render.files) == [fmt]
    # The first second went to the encoder before the text was synthesised and normalised.
    assert render.first_audio_s is not None and render.speech_audio_s is not None
    assert render.first_audio_s < render.speech_audio_s
    assert probe(render.files[fmt]).duration_s == pytest.approx(render.duration_s, abs=0.1)
    measured = ebur128(render.files[fmt])
    assert measured.integrated_lufs == pytest.approx(LOUDSPEAKER_PROFILE.loudness.lufs, abs=1.0)
    assert measured.true_peak_dbtp <= -1.0
    cached = await renderer.render(_request(), LOUDSPEAKER_PROFILE.with_formats(fmt))
    assert cached.cached and cached.sha256 == render.sha256


async def test_a_render_whose_speech_fails_leaves_no_encoder_or_file(tmp_path: Path) -> None:
    renderer = Renderer(RendererConfig(cache_dir=tmp_path, engine_order=("piper",), clips_dir=None))
    with pytest.raises(NoSpeechError):
        await renderer.render(_request(), LOUDSPEAKER_PROFILE.with_formats(ExportFormat.OPUS))
    assert list((tmp_path / "work").iterdir()) == []
    assert not list((tmp_path / "renders").glob("*/audio.opus"))
