"""Audio rendering benchmark: a fresh offline render of a 200-character Chinese warning
(espeak-ng, assembly, loudness normalisation, export) and a render-cache hit.

Also the loudspeaker render as the channel makes it: before (MP3 and Opus exported after the
whole programme is assembled; the first audio exists when the render ends) and after (one
format, streamed: the encoder starts with the attention signal while the text is synthesised),
with the time to the first second of audio, to the first speech and to the whole file; and
three ways to bring the speech to the loudspeaker's loudness, their error and cost.

Goals: fresh render under 1.5 s, cache hit under 20 ms, first audio long before the speech.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from audio.assembly import FM_PROFILE, LOUDSPEAKER_PROFILE, ChannelProfile, assemble
from audio.chain import SpeechChain
from audio.engines import EdgeTtsConfig, EspeakEngine
from audio.export import ExportFormat, export_all
from audio.loudness import (
    INTERSAMPLE_MARGIN_DB,
    integrated_loudness,
    limit,
    normalize,
    true_peak_dbtp,
)
from audio.render import Renderer, RendererConfig, RenderRequest
from audio.speechtext import SpeechText, build_script

DESCRIPTION = (
    "预计未来12小时内，集宁区、卓资县、兴和县、察哈尔右翼前旗将出现暴雪天气，降雪量10mm以上，"
    "并伴有6-8级偏北风，最低气温将降至-25℃。请有关单位和人员做好防御准备，减少不必要的户外活动，"
    "注意防寒保暖；车辆驾驶人员注意交通安全，农牧区做好牲畜转移和防寒工作。学校和幼儿园可根据情况"
    "停课，请广大市民关注最新预警信息，服从当地政府的统一安排和指挥。"
)
REQUEST = RenderRequest(
    SpeechText(
        language="zh-CN",
        status="Actual",
        event="暴雪",
        headline="乌兰察布市气象台2026年11月28日21:29发布暴雪红色预警信号",
        description=DESCRIPTION,
        level="red",
    ),
    hazard="blizzard",
)
FRESH_RUNS = 5
HIT_RUNS = 200


def _config(directory: Path) -> RendererConfig:
    return RendererConfig(cache_dir=directory, engine_order=("espeak-ng",))


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _own_cpu_seconds() + children.ru_utime + children.ru_stime


async def fresh(profile: ChannelProfile) -> list[float]:
    times = []
    cpu_started = _cpu_seconds()
    for _ in range(FRESH_RUNS):
        with tempfile.TemporaryDirectory() as directory:
            renderer = Renderer(_config(Path(directory)))
            started = time.perf_counter()
            render = await renderer.render(REQUEST, profile)
            times.append(time.perf_counter() - started)
    cpu = (_cpu_seconds() - cpu_started) / FRESH_RUNS
    print(
        f"  {profile.name}: audio {render.duration_s:.1f} s, {render.loudness_lufs:.1f} LUFS, "
        f"formats {', '.join(f.value for f in render.files)}, "
        f"CPU {cpu * 1000:.0f} ms per render (process + encoders)"
    )
    return times


async def stages() -> None:
    script = build_script(REQUEST.speech)
    chain = SpeechChain([EspeakEngine()], None)
    started = time.perf_counter()
    speech = await chain.speak(script, "blizzard", "red")
    synth = time.perf_counter() - started
    started = time.perf_counter()
    assembled = assemble(speech, LOUDSPEAKER_PROFILE)
    mix = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        export_all(assembled.samples, LOUDSPEAKER_PROFILE.formats, Path(directory))
        encode = time.perf_counter() - started
    print(
        f"  stages (loudspeaker): synthesis {synth * 1000:.0f} ms, assembly + normalisation "
        f"{mix * 1000:.0f} ms, MP3 + Opus export {encode * 1000:.0f} ms"
    )


async def streamed() -> None:
    for label, profile in (
        ("before: MP3 + Opus, exported whole", LOUDSPEAKER_PROFILE),
        ("after: MP3 only, streamed", LOUDSPEAKER_PROFILE.with_formats(ExportFormat.MP3)),
    ):
        whole, first, speech, own = [], [], [], []
        for _ in range(FRESH_RUNS):
            with tempfile.TemporaryDirectory() as directory:
                renderer = Renderer(_config(Path(directory)))
                started, cpu_started = time.perf_counter(), _own_cpu_seconds()
                render = await renderer.render(REQUEST, profile)
                whole.append(time.perf_counter() - started)
                own.append(_own_cpu_seconds() - cpu_started)
                first.append(render.first_audio_s or whole[-1])
                speech.append(render.speech_audio_s or whole[-1])
        print(
            f"  loudspeaker {label}: first audio {statistics.median(first) * 1000:.0f} ms, "
            f"first speech {statistics.median(speech) * 1000:.0f} ms, whole render "
            f"{statistics.median(whole) * 1000:.0f} ms, CPU of this process (its threads, not "
            f"espeak-ng or the encoders) {statistics.median(own) * 1000:.0f} ms "
            f"(medians of {FRESH_RUNS})"
        )


async def normalisers() -> None:
    script = build_script(REQUEST.speech)
    speech = await SpeechChain([EspeakEngine()], None).speak(script, "blizzard", "red")
    unit = np.concatenate(
        [p for p in (speech.marker, speech.body, speech.closing) if p is not None]
    )
    target = LOUDSPEAKER_PROFILE.loudness
    threshold = 10 ** ((target.true_peak_dbtp - INTERSAMPLE_MARGIN_DB) / 20)

    def once(measured_on: np.ndarray) -> np.ndarray:
        gain = 10 ** ((target.lufs - integrated_loudness(measured_on)) / 20)
        return limit((unit * gain).astype(np.float32), threshold)

    for label, work in (
        ("iterative gain + limiter (used)", lambda: normalize(unit, target)[0]),
        ("one gain from the whole speech + limiter", lambda: once(unit)),
        ("one gain from the first 4 s + limiter", lambda: once(unit[: 4 * 48_000])),
    ):
        started = time.perf_counter()
        out = work()
        spent = time.perf_counter() - started
        print(
            f"  normalise {len(unit) / 48_000:.0f} s of speech, {label}: "
            f"{integrated_loudness(out) - target.lufs:+.2f} LU from target, "
            f"true peak {true_peak_dbtp(out):.2f} dBTP, {spent * 1000:.0f} ms"
        )


async def fallback() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    times = []
    for _ in range(FRESH_RUNS):
        with tempfile.TemporaryDirectory() as directory:
            config = RendererConfig(
                cache_dir=Path(directory),
                engine_order=("edge-tts", "espeak-ng"),
                edge_tts=EdgeTtsConfig(proxy=proxy),
            )
            started = time.perf_counter()
            render = await Renderer(config).render(REQUEST, LOUDSPEAKER_PROFILE)
            times.append(time.perf_counter() - started)
    edge = render.attempts[0]
    print(
        f"  fresh render, edge-tts refused first: median {statistics.median(times) * 1000:.0f} ms "
        f"(edge-tts {edge.outcome} after {edge.elapsed_s * 1000:.0f} ms, spoken by {render.engine})"
    )


async def hits() -> list[float]:
    with tempfile.TemporaryDirectory() as directory:
        await Renderer(_config(Path(directory))).render(REQUEST, LOUDSPEAKER_PROFILE)
        renderer = Renderer(_config(Path(directory)))
        times = []
        for _ in range(HIT_RUNS):
            started = time.perf_counter()
            render = await renderer.render(REQUEST, LOUDSPEAKER_PROFILE)
            times.append(time.perf_counter() - started)
        assert render.cached
    return times


async def main() -> None:
    chars = len(build_script(REQUEST.speech).body)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"audio render benchmark: {chars}-character Chinese warning, espeak-ng")
    print(f"  machine: {os.cpu_count()} cores, load average {load} at start")
    for profile in (LOUDSPEAKER_PROFILE, FM_PROFILE):
        times = await fresh(profile)
        print(
            f"  fresh render {profile.name}: median {statistics.median(times) * 1000:.0f} ms, "
            f"min {min(times) * 1000:.0f} ms over {FRESH_RUNS} runs (goal < 1500 ms)"
        )
    await stages()
    await streamed()
    await normalisers()
    await fallback()
    times = await hits()
    print(
        f"  cache hit: median {statistics.median(times) * 1000:.2f} ms, "
        f"p95 {sorted(times)[int(0.95 * len(times))] * 1000:.2f} ms over {HIT_RUNS} runs "
        "(goal < 20 ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
