"""edge-tts against a local stand-in for its online service: the success path through the real
library, aiohttp and ffmpeg, what the service is asked for, and every scripted fault falling back
to espeak-ng. Only the service address changes (``edge_tts.communicate.WSS_URL``)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import edge_tts.communicate
import numpy as np
import pytest
from edge_tts.drm import DRM

from audio.assembly import FM_PROFILE
from audio.chain import SpeechChain
from audio.clips import ClipLibrary
from audio.engines import EdgeTtsConfig, EdgeTtsEngine, EspeakEngine
from audio.export import ExportFormat
from audio.render import Renderer, RendererConfig, RenderRequest
from audio.speechtext import SpeechText, build_script

from .conftest import decode_reference, read_pcm, spectrum_peaks
from .edge_standin import ReadAloudFault, ReadAloudSimulator

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "WS_PROXY", "WSS_PROXY", "ALL_PROXY")
FAULT_TIMEOUT_S = 1.0


@pytest.fixture
async def service(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ReadAloudSimulator]:
    """The stand-in, with edge_tts pointed at it and no proxy from the environment."""
    async with ReadAloudSimulator() as simulator:
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", simulator.url)
        # A refused handshake makes edge_tts correct its clock by the server's Date header.
        monkeypatch.setattr(DRM, "clock_skew_seconds", DRM.clock_skew_seconds)
        for name in PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        yield simulator


def _speech(language: str, status: str = "Actual") -> SpeechText:
    if language == "en":
        return SpeechText(
            language="en",
            status=status,
            event="Flood",
            headline="River level <3 m & rising at Jining",
            sender_name="Ulanqab Met Office",
            level="red",
        )
    return SpeechText(
        language="zh-CN",
        status=status,
        event="暴雪",
        headline="降雪量<10毫米 & 大风",
        sender_name="乌兰察布市气象台",
        level="red",
    )


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


@pytest.mark.parametrize(
    ("language", "text", "voice"),
    [
        ("zh-CN", "降雪量<10毫米 & 大风，请减少户外活动", "zh-CN-XiaoxiaoNeural"),
        ("en", "River level <3 m & rising at Jining", "en-GB-SoniaNeural"),
    ],
)
async def test_engine_speaks_through_the_service(
    service: ReadAloudSimulator, language: str, text: str, voice: str
) -> None:
    engine = EdgeTtsEngine(EdgeTtsConfig(rate="+10%", connect_timeout_s=1, timeout_s=5.0))
    samples = await engine.synthesize(text, language)

    (request,) = service.requests
    assert request.voice_short_name == voice
    assert request.rate == "+10%"
    assert request.text == text
    assert "&lt;" in request.ssml and "&amp;" in request.ssml and text not in request.ssml
    assert request.ssml_headers["Content-Type"] == "application/ssml+xml"
    output = request.speech_config["context"]["synthesis"]["audio"]["outputFormat"]
    assert output == "audio-24khz-48kbitrate-mono-mp3"
    query = request.handshake.query
    assert re.fullmatch(r"[0-9A-F]{16}-[0-9A-F]{64}", query["Sec-MS-GEC"])
    assert query["Sec-MS-GEC-Version"] and re.fullmatch(r"[0-9a-f]{32}", query["ConnectionId"])
    assert service.audio_frames[0] >= 3 and not service.protocol_errors

    expected_s = service.seconds_for(text)
    # The MP3 encoder adds its delay and pads the last frame: under 0.1 s at 24 kHz.
    assert expected_s <= len(samples) / 48_000 <= expected_s + 0.15
    assert _rms(samples) > 0.05
    (peak,) = spectrum_peaks(samples.astype(np.float64), 48_000, 1)
    assert abs(peak - service.tone_hz) < 5
    independent = decode_reference(service.audio_sent[0])
    assert len(samples) == len(independent)
    assert np.max(np.abs(samples - independent)) < 1e-3


async def test_renderer_records_edge_tts_and_caches_its_speech(
    service: ReadAloudSimulator, tmp_path: Path
) -> None:
    config = RendererConfig(
        cache_dir=tmp_path / "cache",
        engine_order=("edge-tts", "espeak-ng"),
        edge_tts=EdgeTtsConfig(connect_timeout_s=1, timeout_s=5.0),
    )
    request = RenderRequest(_speech("en", "Exercise"), hazard="flood")
    profile = FM_PROFILE.with_formats(ExportFormat.WAV)
    render = await Renderer(config).render(request, profile)

    assert render.engine == "edge-tts" and not render.fallback and not render.cached
    assert [(a.engine, a.outcome) for a in render.attempts] == [("edge-tts", "ok")]
    script = build_script(request.speech)
    spoken = sorted(r.text for r in service.requests)
    assert spoken == sorted([script.marker or "", script.body, script.closing])
    assert {r.voice_short_name for r in service.requests} == {"en-GB-SoniaNeural"}
    audio = read_pcm(render.files[ExportFormat.WAV], 48_000)
    body = next(s for s in render.segments if s.kind == "body")
    spoken_body = audio[int(body.start_s * 48_000) : int(body.end_s * 48_000)]
    (peak,) = spectrum_peaks(spoken_body, 48_000, 1)
    assert abs(peak - service.tone_hz) < 5

    asked = len(service.requests)
    again = await Renderer(config).render(request, profile)
    assert again.cached and again.engine == "edge-tts" and again.files == render.files
    other_profile = await Renderer(config).render(request, profile.with_formats(ExportFormat.MP3))
    assert not other_profile.cached and other_profile.engine == "edge-tts"
    assert len(service.requests) == asked


@pytest.mark.parametrize(
    ("fault", "scripted", "outcome", "detail"),
    [
        (ReadAloudFault.REFUSE_HANDSHAKE, {}, "failed", "403"),
        (ReadAloudFault.CLOSE_BEFORE_TURN_END, {}, "failed", "NoAudioReceived"),
        (
            ReadAloudFault.CLOSE_BEFORE_TURN_END,
            {"frames_before_close": 2},
            "failed",
            "closed before the end of the speech (0 of 3600 audio bytes",
        ),
        (ReadAloudFault.GARBAGE_BINARY, {}, "failed", "malformed service message (ValueError"),
        (ReadAloudFault.GARBAGE_BINARY, {"garbage": b"\x07"}, "failed", "missing the header"),
        (
            ReadAloudFault.GARBAGE_BINARY,
            {"garbage": b"\xff\xff<html>"},
            "failed",
            "header length is greater",
        ),
        (ReadAloudFault.STALL, {}, "timeout", f"no audio within {FAULT_TIMEOUT_S:g} s"),
        (ReadAloudFault.NOT_MP3, {}, "failed", "cannot be decoded"),
    ],
    ids=["refused", "closed", "cut-off", "garbage", "short", "long-header", "stall", "not-mp3"],
)
async def test_each_service_fault_falls_back_to_espeak(
    service: ReadAloudSimulator,
    caplog: pytest.LogCaptureFixture,
    fault: ReadAloudFault,
    scripted: dict[str, Any],
    outcome: str,
    detail: str,
) -> None:
    service.fault = fault
    for name, value in scripted.items():
        setattr(service, name, value)
    caplog.set_level(logging.DEBUG)
    edge = EdgeTtsEngine(EdgeTtsConfig(connect_timeout_s=1, timeout_s=FAULT_TIMEOUT_S))
    chain = SpeechChain([edge, EspeakEngine()], ClipLibrary())

    started = time.monotonic()
    result = await chain.speak(build_script(_speech("zh-CN", "Exercise")), "blizzard", "red")

    assert result.engine == "espeak-ng" and result.fallback
    assert [(a.engine, a.outcome) for a in result.attempts] == [
        ("edge-tts", outcome),
        ("espeak-ng", "ok"),
    ]
    assert detail in result.attempts[0].detail
    assert result.attempts[0].elapsed_s <= FAULT_TIMEOUT_S + 1.0
    assert time.monotonic() - started < FAULT_TIMEOUT_S + 10.0
    assert result.marker is not None and _rms(result.marker) > 0.01
    assert _rms(result.body) > 0.01 and len(result.body) / 48_000 > 1.0
    assert service.handshakes
    assert service.requests or fault is ReadAloudFault.REFUSE_HANDSHAKE
    assert not service.protocol_errors
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_render_while_the_service_refuses_records_the_fallback_and_keeps_it(
    service: ReadAloudSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service.fault = ReadAloudFault.REFUSE_HANDSHAKE
    caplog.set_level(logging.DEBUG)
    config = RendererConfig(
        cache_dir=tmp_path / "cache",
        engine_order=("edge-tts", "espeak-ng"),
        edge_tts=EdgeTtsConfig(connect_timeout_s=1, timeout_s=FAULT_TIMEOUT_S),
    )
    request = RenderRequest(_speech("zh-CN"), hazard="blizzard")
    profile = FM_PROFILE.with_formats(ExportFormat.WAV)
    render = await Renderer(config).render(request, profile)

    assert render.engine == "espeak-ng" and render.fallback
    assert [(a.engine, a.outcome) for a in render.attempts] == [
        ("edge-tts", "failed"),
        ("espeak-ng", "ok"),
    ]
    assert "403" in render.attempts[0].detail
    assert _rms(read_pcm(render.files[ExportFormat.WAV], 48_000)) > 0.01
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]

    # Once spoken, an alert keeps its voice on every channel even after the service is back.
    service.fault = ReadAloudFault.NONE
    again = await Renderer(config).render(request, profile.with_formats(ExportFormat.MP3))
    assert again.engine == "espeak-ng" and not service.requests
