"""End-to-end renders checked on the audio itself: format facts, loudness by ffmpeg's meter,
attention tones by spectrum, the spoken marker by correlation with an independent rendering,
SAME by multimon-ng, and the cache."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from audio.assembly import FM_PROFILE, LOUDSPEAKER_PROFILE, TELEPHONE_PROFILE
from audio.engines import EspeakConfig
from audio.errors import AudioConfigError, SameHeaderError, SpeechTextError
from audio.export import ExportFormat
from audio.render import Renderer, RenderRequest
from audio.speechtext import SpeechText

from .conftest import (
    best_match,
    decode_reference,
    ebur128,
    espeak_reference,
    offline_config,
    probe,
    read_pcm,
    spectrum_peaks,
)

HEADER = "ZCZC-CIV-EVI-150900+0100-3321329-ULANQAB -"


def _request(status: str = "Actual", language: str = "zh-CN", **extra: object) -> RenderRequest:
    speech = SpeechText(
        language=language,
        status=status,
        event="暴雪" if language == "zh-CN" else "Blizzard",
        sender_name="乌兰察布市气象台" if language == "zh-CN" else "Ulanqab Met Office",
        level="red",
        description="预计21:29起降雪量10mm。" if language == "zh-CN" else "Snow 10mm from 21:29.",
    )
    return RenderRequest(speech, hazard="blizzard", **extra)  # type: ignore[arg-type]


async def test_loudspeaker_render_formats_loudness_and_tones(renderer: Renderer) -> None:
    profile = LOUDSPEAKER_PROFILE.with_formats(
        ExportFormat.MP3, ExportFormat.OPUS, ExportFormat.WAV
    )
    render = await renderer.render(_request(), profile)

    assert render.engine == "espeak-ng" and render.fallback
    assert [a.outcome for a in render.attempts] == ["failed", "ok"]
    mp3, opus = probe(render.files[ExportFormat.MP3]), probe(render.files[ExportFormat.OPUS])
    assert (mp3.codec, mp3.sample_rate, mp3.channels) == ("mp3", 24_000, 1)
    assert (opus.codec, opus.sample_rate, opus.channels) == ("opus", 48_000, 1)
    for facts in (mp3, opus):
        assert facts.duration_s == pytest.approx(render.duration_s, abs=0.1)
    ceiling = LOUDSPEAKER_PROFILE.loudness.true_peak_dbtp
    for fmt, overshoot in (
        (ExportFormat.WAV, 0.3),
        (ExportFormat.MP3, 1.0),
        (ExportFormat.OPUS, 1.0),
    ):
        measured = ebur128(render.files[fmt])
        assert measured.integrated_lufs == pytest.approx(-16.0, abs=1.0)
        assert measured.true_peak_dbtp <= ceiling + overshoot
        assert measured.true_peak_dbtp <= -1.0
    wav = read_pcm(render.files[ExportFormat.WAV], 48_000)
    attention = next(s for s in render.segments if s.kind == "attention")
    tones = wav[int((attention.start_s + 0.1) * 48_000) : int((attention.end_s - 0.1) * 48_000)]
    low, high = spectrum_peaks(tones, 48_000, 2)
    assert abs(low - 853) < 3 and abs(high - 960) < 3
    assert not render.has_marker
    body = [s for s in render.segments if s.kind == "body"]
    assert len(body) == LOUDSPEAKER_PROFILE.repeats


@pytest.mark.parametrize(
    ("status", "language", "voice", "marker"),
    [
        ("Exercise", "zh-CN", "cmn-latn-pinyin", "这是一次演练"),
        ("Test", "en", "en-gb", "This is a test"),
    ],
)
async def test_marker_is_spoken_at_start_and_end(
    renderer: Renderer, status: str, language: str, voice: str, marker: str
) -> None:
    profile = FM_PROFILE.with_formats(ExportFormat.WAV)
    render = await renderer.render(_request(status, language), profile)
    assert render.marker == marker
    audio = read_pcm(render.files[ExportFormat.WAV], 48_000)
    reference = espeak_reference(marker, voice)
    half = len(audio) // 2
    first, first_at = best_match(audio[:half], reference)
    last, last_at = best_match(audio[half:], reference)
    assert first > 0.9 and last > 0.9
    assert first_at / 48_000 < 12.0
    assert (len(audio) - half - last_at) / 48_000 < 6.0


async def test_actual_warning_has_no_marker_in_the_audio(renderer: Renderer) -> None:
    render = await renderer.render(_request("Actual"), FM_PROFILE)
    audio = read_pcm(render.files[ExportFormat.WAV], 48_000)
    score, _ = best_match(audio, espeak_reference("这是一次演练", "cmn-latn-pinyin"))
    assert score < 0.6
    assert render.marker is None and not render.has_marker


async def test_fm_render_with_same_header_decodes_in_multimon(
    renderer: Renderer, tmp_path: Path
) -> None:
    render = await renderer.render(_request(same_header=HEADER), FM_PROFILE)
    wav = probe(render.files[ExportFormat.WAV])
    assert (wav.codec, wav.sample_rate, wav.channels) == ("pcm_s16le", 48_000, 1)
    assert ebur128(render.files[ExportFormat.WAV]).integrated_lufs == pytest.approx(-23, abs=1.0)
    raw = tmp_path / "fm22.raw"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(render.files[ExportFormat.WAV]),
            "-f",
            "s16le",
            "-ar",
            "22050",
            "-ac",
            "1",
            str(raw),
        ],
        check=True,
    )
    decoded = subprocess.run(
        ["multimon-ng", "-q", "-t", "raw", "-a", "EAS", str(raw)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert decoded == [f"EAS: {HEADER}", "EAS: NNNN", "EAS: NNNN", "EAS: NNNN"]
    kinds = [s.kind for s in render.segments]
    assert kinds[0] == "same-header" and kinds[-1] == "same-eom"


async def test_telephone_render_is_8_khz_mulaw_with_a_chime(renderer: Renderer) -> None:
    render = await renderer.render(_request(), TELEPHONE_PROFILE)
    facts = probe(render.files[ExportFormat.ULAW])
    assert (facts.codec, facts.sample_rate, facts.channels) == ("pcm_mulaw", 8_000, 1)
    assert ebur128(render.files[ExportFormat.ULAW]).integrated_lufs == pytest.approx(-18, abs=1.0)
    audio = read_pcm(render.files[ExportFormat.ULAW], 8_000)
    assert render.segments[0].kind == "attention"
    first_note = spectrum_peaks(audio[400:2400], 8_000, 1)[0]
    assert first_note == pytest.approx(659.3, abs=8)


async def test_rendering_does_not_stall_the_event_loop(renderer: Renderer) -> None:
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await renderer.render(_request(), LOUDSPEAKER_PROFILE.with_formats(*ExportFormat))
    done.set()
    await ticking
    assert len(gaps) > 10
    assert max(gaps) < 0.5


async def test_second_render_is_a_cache_hit_and_speech_is_shared(
    renderer: Renderer, tmp_path: Path
) -> None:
    first = await renderer.render(_request(), LOUDSPEAKER_PROFILE)
    started = time.perf_counter()
    again = await renderer.render(_request(), LOUDSPEAKER_PROFILE)
    assert time.perf_counter() - started < 0.5
    assert again.cached and not first.cached and again.files == first.files
    for fmt, path in first.files.items():
        assert again.sha256[fmt] == hashlib.sha256(path.read_bytes()).hexdigest()
    await renderer.render(_request(), FM_PROFILE)
    assert len(list((renderer.cache.directory / "speech").iterdir())) == 1
    assert len(list((renderer.cache.directory / "renders").iterdir())) == 2
    other = Renderer(renderer.config)
    assert (await other.render(_request(), LOUDSPEAKER_PROFILE)).cached


async def test_concurrent_renders_of_one_alert_render_once(renderer: Renderer) -> None:
    renders = await asyncio.gather(*(renderer.render(_request(), FM_PROFILE) for _ in range(4)))
    assert sum(not r.cached for r in renders) == 1
    assert len({r.files[ExportFormat.WAV] for r in renders}) == 1


async def test_a_changed_voice_setting_is_a_new_render(tmp_path: Path, refused_proxy: str) -> None:
    slow = offline_config(tmp_path, refused_proxy, espeak=EspeakConfig(words_per_minute=120))
    fast = offline_config(tmp_path, refused_proxy, espeak=EspeakConfig(words_per_minute=200))
    a = await Renderer(slow).render(_request(), FM_PROFILE)
    b = await Renderer(fast).render(_request(), FM_PROFILE)
    assert a.key != b.key and not b.cached
    assert a.duration_s > b.duration_s


async def test_all_synthesisers_down_uses_clips_and_is_not_silent(
    tmp_path: Path, refused_proxy: str
) -> None:
    config = offline_config(
        tmp_path, refused_proxy, espeak=EspeakConfig(binary="espeak-ng-not-installed")
    )
    renderer = Renderer(config)
    render = await renderer.render(_request("Exercise"), FM_PROFILE)
    assert render.engine == "clip" and render.fallback and render.has_marker
    assert ebur128(render.files[ExportFormat.WAV]).integrated_lufs == pytest.approx(-23, abs=1.0)
    audio = read_pcm(render.files[ExportFormat.WAV], 48_000)
    for span in render.segments:
        part = audio[int(span.start_s * 48_000) : int(span.end_s * 48_000)]
        assert np.sqrt(np.mean(part**2)) > 0.005, span.kind
    assert not (renderer.cache.directory / "speech").exists() or not any(
        (renderer.cache.directory / "speech").iterdir()
    )


async def test_offline_fallback_time_is_bounded_by_the_edge_timeout(
    tmp_path: Path, stalling_proxy: str
) -> None:
    config = offline_config(tmp_path / "a", stalling_proxy)
    offline_only = replace(config, cache_dir=tmp_path / "b", engine_order=("espeak-ng",))
    started = time.monotonic()
    await Renderer(offline_only).render(_request(), FM_PROFILE)
    offline = time.monotonic() - started
    started = time.monotonic()
    render = await Renderer(config).render(_request(), FM_PROFILE)
    with_fallback = time.monotonic() - started
    print(f"offline {offline:.2f} s, with edge-tts stalled {with_fallback:.2f} s")
    assert [(a.engine, a.outcome) for a in render.attempts] == [
        ("edge-tts", "timeout"),
        ("espeak-ng", "ok"),
    ]
    assert with_fallback < config.edge_tts.timeout_s + offline + 1.0


async def test_a_damaged_cache_entry_is_rebuilt(renderer: Renderer) -> None:
    first = await renderer.render(_request(), LOUDSPEAKER_PROFILE)
    first.files[ExportFormat.OPUS].unlink()
    rebuilt = await renderer.render(_request(), LOUDSPEAKER_PROFILE)
    assert not rebuilt.cached and rebuilt.files[ExportFormat.OPUS].is_file()
    (renderer.cache.entry_dir("renders", first.key) / "meta.json").write_text("{broken")
    again = await renderer.render(_request(), LOUDSPEAKER_PROFILE)
    assert not again.cached
    assert (await renderer.render(_request(), LOUDSPEAKER_PROFILE)).cached


async def test_prune_removes_old_entries(renderer: Renderer) -> None:
    await renderer.render(_request(), FM_PROFILE)
    assert renderer.cache.prune(older_than_s=3600) == 0
    assert renderer.cache.prune(older_than_s=-1) == 2
    assert not any((renderer.cache.directory / "renders").iterdir())
    assert not (await renderer.render(_request(), FM_PROFILE)).cached


async def test_prune_keeps_what_was_used_lately_however_old(renderer: Renderer) -> None:
    render = await renderer.render(_request(), FM_PROFILE)
    entries = [
        p for kind in ("speech", "renders") for p in (renderer.cache.directory / kind).iterdir()
    ]
    month_ago = time.time() - 30 * 86400
    for entry in entries:
        os.utime(entry, (month_ago, month_ago))
    assert (await renderer.render(_request(), FM_PROFILE)).cached  # used today
    # The finished render stays; only its intermediate speech, unused for a month, goes.
    assert renderer.cache.prune(older_than_s=7 * 86400) == 1
    assert render.files[ExportFormat.WAV].is_file()
    assert (await renderer.render(_request(), FM_PROFILE)).cached


async def test_supplied_audio_is_the_body_and_the_marker_is_still_spoken(
    renderer: Renderer,
) -> None:
    supplied = (Path(__file__).parents[2] / "audio/clips/en/gale-red.opus").read_bytes()
    request = replace(_request("Exercise"), supplied_audio=supplied)
    render = await renderer.render(request, FM_PROFILE)
    assert render.engine == "supplied" and render.has_marker
    assert [(a.engine, a.outcome) for a in render.attempts] == [
        ("supplied", "ok"),
        ("edge-tts", "failed"),
        ("espeak-ng", "ok"),
    ]
    audio = read_pcm(render.files[ExportFormat.WAV], 48_000)
    body = next(s for s in render.segments if s.kind == "body")
    reference = decode_reference(supplied)
    # The layout repeats the body: its two copies match equally well, so the search is held to
    # the first body's place (with a margin) rather than taking the best match in the whole file.
    start = int((body.start_s - 0.5) * 48_000)
    score, at = best_match(audio[start : start + len(reference) + 48_000], reference)
    assert score > 0.9 and (start + at) / 48_000 == pytest.approx(body.start_s, abs=0.05)
    marker_score, _ = best_match(audio, espeak_reference("这是一次演练", "cmn-latn-pinyin"))
    assert marker_score > 0.9


async def test_undecodable_supplied_audio_falls_back_to_synthesis(renderer: Renderer) -> None:
    request = replace(_request(), supplied_audio=b"\x00garbage" * 100)
    render = await renderer.render(request, FM_PROFILE)
    assert render.engine == "espeak-ng"
    assert [(a.engine, a.outcome) for a in render.attempts] == [
        ("supplied", "failed"),
        ("edge-tts", "failed"),
        ("espeak-ng", "ok"),
    ]


async def test_bad_input_is_refused_before_anything_is_rendered(renderer: Renderer) -> None:
    with pytest.raises(SameHeaderError, match="originator"):
        await renderer.render(
            _request(same_header="ZCZC-XXX-EVI-150900+0100-3321329-ULANQAB -"), FM_PROFILE
        )
    with pytest.raises(SpeechTextError, match="no speech template"):
        await renderer.render(_request(language="fr"), FM_PROFILE)
    assert not any((renderer.cache.directory / "speech").iterdir())
    assert not any((renderer.cache.directory / "renders").iterdir())


async def test_silent_supplied_audio_is_not_amplified_into_noise(
    renderer: Renderer, tmp_path: Path
) -> None:
    hiss = tmp_path / "hiss.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=a=0.0001:d=3",
            "-ar",
            "48000",
            str(hiss),
        ],
        check=True,
    )
    request = replace(_request(), supplied_audio=hiss.read_bytes())
    render = await renderer.render(request, FM_PROFILE)
    assert render.attempts[0].engine == "supplied" and render.attempts[0].outcome == "failed"
    assert "LUFS" in render.attempts[0].detail
    assert render.engine == "espeak-ng"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [({"repeats": 0}, "repeats"), ({"pause_s": 60.0}, "pause_s"), ({"formats": ()}, "format")],
)
def test_bad_profiles_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(AudioConfigError, match=problem):
        replace(FM_PROFILE, **changes)
