"""Speech engines and the fallback chain, with real espeak-ng and an unreachable edge-tts."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from audio.chain import CLIP_RUNG, SpeechChain
from audio.clips import ClipLibrary
from audio.engines import (
    EdgeTtsConfig,
    EdgeTtsEngine,
    EspeakConfig,
    EspeakEngine,
    PiperConfig,
    PiperEngine,
)
from audio.engines.base import SpeechEngine
from audio.errors import EngineFailedError, EngineUnavailableError, NoSpeechError
from audio.speechtext import SpeechText, build_script


def _script(status: str = "Actual", language: str = "zh-CN"):
    return build_script(
        SpeechText(
            language=language,
            status=status,
            event="暴雪",
            sender_name="乌兰察布市气象台",
            level="red",
            description="预计降雪量10mm。",
        )
    )


async def test_espeak_speaks_mandarin_and_english() -> None:
    engine = EspeakEngine()
    zh = await engine.synthesize("这是一次演练", "zh-CN")
    en = await engine.synthesize("This is a test", "en")
    for samples in (zh, en):
        assert 0.8 < len(samples) / 48_000 < 4.0
        assert np.sqrt(np.mean(samples**2)) > 0.01


async def test_espeak_without_a_voice_for_the_language_is_unavailable() -> None:
    with pytest.raises(EngineUnavailableError, match="no voice"):
        await EspeakEngine().synthesize("bonjour", "fr")


async def test_espeak_with_a_voice_that_is_not_installed_is_unavailable() -> None:
    engine = EspeakEngine(EspeakConfig(voices={"zh": "no-such-voice"}))
    with pytest.raises(EngineUnavailableError, match="no voice named"):
        await engine.synthesize("测试", "zh-CN")


async def test_edge_tts_fails_fast_when_its_proxy_refuses(refused_proxy: str) -> None:
    engine = EdgeTtsEngine(EdgeTtsConfig(proxy=refused_proxy, connect_timeout_s=1))
    started = time.monotonic()
    with pytest.raises(EngineFailedError, match="edge-tts"):
        await engine.synthesize("测试", "zh-CN")
    assert time.monotonic() - started < 2.0


async def test_piper_without_a_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailableError, match="no voice model"):
        await PiperEngine().synthesize("测试", "zh-CN")
    missing = PiperEngine(PiperConfig(models={"zh": tmp_path / "absent.onnx"}))
    with pytest.raises(EngineUnavailableError, match="does not exist"):
        await missing.synthesize("测试", "zh-CN")


async def test_stalled_edge_tts_times_out_and_espeak_takes_over(stalling_proxy: str) -> None:
    edge = EdgeTtsEngine(EdgeTtsConfig(proxy=stalling_proxy, connect_timeout_s=5, timeout_s=1.0))
    chain = SpeechChain([edge, EspeakEngine()], ClipLibrary())
    script = _script()
    offline_started = time.monotonic()
    await SpeechChain([EspeakEngine()], None).speak(script, "blizzard", "red")
    offline_s = time.monotonic() - offline_started

    started = time.monotonic()
    result = await chain.speak(script, "blizzard", "red")
    elapsed = time.monotonic() - started

    assert result.engine == "espeak-ng" and result.fallback
    assert [(a.engine, a.outcome) for a in result.attempts] == [
        ("edge-tts", "timeout"),
        ("espeak-ng", "ok"),
    ]
    assert elapsed < 1.0 + offline_s + 1.0


async def test_every_engine_down_speaks_from_stored_clips(refused_proxy: str) -> None:
    chain = SpeechChain(
        [
            EdgeTtsEngine(EdgeTtsConfig(proxy=refused_proxy)),
            EspeakEngine(EspeakConfig(binary="espeak-ng-not-installed")),
            PiperEngine(),
        ],
        ClipLibrary(),
    )
    result = await chain.speak(_script("Exercise"), "blizzard", "red")
    assert result.engine == CLIP_RUNG and result.fallback
    assert [a.outcome for a in result.attempts] == ["failed", "unavailable", "unavailable", "ok"]
    assert result.marker is not None and np.sqrt(np.mean(result.marker**2)) > 0.01
    assert np.sqrt(np.mean(result.body**2)) > 0.01
    assert len(result.body) / 48_000 > 3.0


async def test_damaged_clip_library_and_no_engine_is_a_clear_error(
    tmp_path: Path, refused_proxy: str
) -> None:
    library = tmp_path / "clips"
    shutil.copytree(ClipLibrary().directory, library)
    manifest = json.loads((library / "manifest.json").read_text())
    for row in manifest["clips"]:
        if row["kind"] == "warning":
            (library / row["file"]).write_bytes(b"not opus")
    chain = SpeechChain([EdgeTtsEngine(EdgeTtsConfig(proxy=refused_proxy))], ClipLibrary(library))
    with pytest.raises(NoSpeechError, match="SHA-256"):
        await chain.speak(_script(), "blizzard", "red")


async def test_no_clip_library_and_no_engine_is_a_clear_error(refused_proxy: str) -> None:
    chain = SpeechChain([EdgeTtsEngine(EdgeTtsConfig(proxy=refused_proxy))], None)
    with pytest.raises(NoSpeechError, match="no clip library"):
        await chain.speak(_script(), "blizzard", "red")


class HalfBrokenEngine(SpeechEngine):
    """Speaks short phrases through a slow real subprocess and fails on long ones."""

    name = "half-broken"

    @property
    def timeout_s(self) -> float:
        return 30.0

    def identity(self) -> dict[str, object]:
        return {"engine": self.name}

    async def synthesize(self, text: str, language: str) -> np.ndarray:
        if len(text) > 10:
            await asyncio.sleep(0.05)
            raise EngineFailedError("long phrases are refused")
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        try:
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        raise EngineFailedError("unreachable")


async def test_one_failed_phrase_stops_the_engines_other_phrases_at_once() -> None:
    chain = SpeechChain([HalfBrokenEngine(), EspeakEngine()], None)
    started = time.monotonic()
    result = await chain.speak(_script("Exercise"), "blizzard", "red")
    assert time.monotonic() - started < 5.0
    assert result.engine == "espeak-ng"
    assert result.attempts[0].detail == "long phrases are refused"


async def test_supplied_audio_with_every_engine_down_takes_the_marker_from_clips(
    refused_proxy: str,
) -> None:
    library = ClipLibrary()
    supplied = (library.directory / library.find_warning("flood", "red", "en").file).read_bytes()
    chain = SpeechChain(
        [
            EdgeTtsEngine(EdgeTtsConfig(proxy=refused_proxy)),
            EspeakEngine(EspeakConfig(binary="espeak-ng-not-installed")),
        ],
        library,
    )
    result = await chain.speak(_script("Test"), "flood", "red", supplied)
    assert result.engine == "supplied" and result.fallback
    assert [a.outcome for a in result.attempts] == ["ok", "failed", "unavailable", "ok"]
    assert result.marker is not None and np.sqrt(np.mean(result.marker**2)) > 0.01
    assert len(result.body) / 48_000 > 3.0


async def test_an_engine_over_its_timeout_is_stopped_and_its_process_reaped() -> None:
    hasty = EspeakEngine(EspeakConfig(timeout_s=0.005))
    chain = SpeechChain([hasty], ClipLibrary())
    result = await chain.speak(_script("Exercise"), "blizzard", "red")
    assert [(a.engine, a.outcome) for a in result.attempts] == [
        ("espeak-ng", "timeout"),
        ("clip", "ok"),
    ]
    assert "0.005 s" in result.attempts[0].detail


def test_the_chain_says_which_languages_a_synthesiser_speaks(tmp_path: Path) -> None:
    model = tmp_path / "mn.onnx"
    model.write_bytes(b"model")
    espeak_only = SpeechChain([EspeakEngine()], None)
    assert espeak_only.has_voice("zh-CN") and espeak_only.has_voice("en")
    assert not espeak_only.has_voice("mn") and not espeak_only.has_voice("mn-Mong")
    with_piper = SpeechChain([EspeakEngine(), PiperEngine(PiperConfig(models={"mn": model}))], None)
    assert with_piper.has_voice("mn-Mong")
    assert not SpeechChain([], None).has_voice("zh-CN")
