"""Programmes in several languages: one attention signal, each language's part in the order
asked, a language nothing can voice left out and named, and a clear error only when no
language can be voiced at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio.assembly import LOUDSPEAKER_PROFILE, TELEPHONE_PROFILE
from audio.errors import AudioConfigError, NoVoiceError
from audio.render import Renderer, RendererConfig, RenderRequest
from audio.speechtext import SpeechText

ZH = RenderRequest(SpeechText("zh-CN", "Test", "暴雪", headline="暴雪橙色预警"), "blizzard")
EN = RenderRequest(SpeechText("en", "Test", "Blizzard", headline="Blizzard warning"), "blizzard")
MN = RenderRequest(SpeechText("mn-Mong", "Test", "ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ"), "blizzard")
FR = RenderRequest(SpeechText("fr", "Test", "Tempête de neige"), "blizzard")


@pytest.fixture
def offline(tmp_path: Path) -> Renderer:
    return Renderer(RendererConfig(cache_dir=tmp_path / "cache", engine_order=("espeak-ng",)))


async def test_languages_follow_in_order_under_one_attention_signal(offline: Renderer) -> None:
    profile = TELEPHONE_PROFILE
    render = await offline.render_programme([EN, ZH], profile)
    assert render.languages == ("en", "zh-CN") and render.unspoken == ()
    kinds = [(s.kind, s.language) for s in render.segments]
    assert kinds[0] == ("attention", "") and [k for k, _ in kinds].count("attention") == 1
    spoken = [language for kind, language in kinds if kind == "body"]
    assert spoken == ["en", "en", "zh-CN", "zh-CN"]
    assert render.marker == "This is a test"
    reversed_order = await offline.render_programme([ZH, EN], profile)
    assert next(s.language for s in reversed_order.segments if s.kind == "body") == "zh-CN"
    again = await offline.render_programme([EN, ZH], profile)
    assert again.cached and again.sha256 == render.sha256


async def test_a_language_nothing_can_voice_is_left_out_and_named(offline: Renderer) -> None:
    render = await offline.render_programme([ZH, MN, FR], LOUDSPEAKER_PROFILE)
    assert render.languages == ("zh-CN",)
    assert [u.language for u in render.unspoken] == ["mn-Mong", "fr"]
    assert "no voice configured for 'mn-Mong'" in render.unspoken[0].reason
    assert "no speech template for language 'fr'" in render.unspoken[1].reason
    assert not render.cached
    alone = await offline.render_programme([ZH], LOUDSPEAKER_PROFILE)
    assert alone.duration_s == pytest.approx(render.duration_s, abs=0.01)


async def test_no_voiceable_language_is_one_clear_error(offline: Renderer) -> None:
    with pytest.raises(NoVoiceError, match="supply recorded audio") as raised:
        await offline.render_programme([MN, FR], LOUDSPEAKER_PROFILE)
    assert [u.language for u in raised.value.unspoken] == ["mn-Mong", "fr"]
    assert isinstance(raised.value, ValueError)
    with pytest.raises(AudioConfigError):
        await offline.render_programme([], LOUDSPEAKER_PROFILE)
