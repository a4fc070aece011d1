"""Fixtures for the audio tests: independent measurements with ffmpeg/ffprobe, closed and
stalling local endpoints for edge-tts, and checks that no subprocess or task outlives a test."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from audio.engines import EdgeTtsConfig, EspeakConfig
from audio.render import Renderer, RendererConfig


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_leaked_subprocesses() -> Iterator[None]:
    """Fail a test that leaves an engine or encoder process running."""
    before = _children()
    yield
    leaked = _children() - before
    assert not leaked, f"test leaked subprocesses: {sorted(leaked)}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves tasks behind on its loop."""
    yield
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not pending, f"test leaked tasks: {pending}"


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbtp: float


def ebur128(path: Path) -> Loudness:
    """Integrated loudness and true peak as ffmpeg's ebur128 filter measures them."""
    done = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            "-i",
            str(path),
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = done.stderr[done.stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert integrated and peak, summary
    return Loudness(float(integrated[1]), float(peak[1]))


@dataclass(frozen=True)
class Probe:
    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float


def probe(path: Path) -> Probe:
    """Stream facts from ffprobe."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(done.stdout)
    stream = info["streams"][0]
    return Probe(
        info["format"]["format_name"],
        stream["codec_name"],
        int(stream["sample_rate"]),
        int(stream["channels"]),
        float(info["format"]["duration"]),
    )


def read_pcm(path: Path, rate: int) -> np.ndarray:
    """Decode any file to mono float64 at ``rate`` with the ffmpeg command line."""
    done = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "f32le",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "pipe:1",
        ],
        capture_output=True,
        check=True,
    )
    return np.frombuffer(done.stdout, dtype="<f4").astype(np.float64)


def spectrum_peaks(samples: np.ndarray, rate: int, count: int) -> list[float]:
    """Frequencies of the ``count`` strongest, well-separated spectral peaks."""
    window = np.hanning(len(samples))
    magnitude = np.abs(np.fft.rfft(samples * window))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    peaks: list[float] = []
    for index in np.argsort(magnitude)[::-1]:
        if all(abs(freqs[index] - p) > 30 for p in peaks):
            peaks.append(float(freqs[index]))
        if len(peaks) == count:
            break
    return sorted(peaks)


def espeak_reference(text: str, voice: str, rate: int = 48_000) -> np.ndarray:
    """The phrase as espeak-ng says it, rendered here without the audio package."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "165", "--stdout", text], capture_output=True, check=True
    ).stdout
    return decode_reference(wav, rate)


def decode_reference(encoded: bytes, rate: int = 48_000) -> np.ndarray:
    """Encoded audio decoded with the ffmpeg command line."""
    done = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            "pipe:0",
            "-f",
            "f32le",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "pipe:1",
        ],
        input=encoded,
        capture_output=True,
        check=True,
    )
    return np.frombuffer(done.stdout, dtype="<f4").astype(np.float64)


def best_match(haystack: np.ndarray, needle: np.ndarray) -> tuple[float, float]:
    """Highest normalised cross-correlation of ``needle`` in ``haystack``, and its offset."""
    from scipy.signal import fftconvolve

    corr = fftconvolve(haystack, needle[::-1], mode="valid")
    energy = np.concatenate([[0.0], np.cumsum(haystack * haystack)])
    local = np.sqrt(np.maximum(energy[len(needle) :] - energy[: -len(needle)], 1e-12))
    ncc = corr / (local * np.linalg.norm(needle))
    best = int(np.argmax(ncc))
    return float(ncc[best]), float(best)


@pytest.fixture
def refused_proxy() -> str:
    """An HTTP proxy URL on a local port where nothing listens: connections are refused."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def stalling_proxy() -> AsyncIterator[str]:
    """A local proxy that accepts connections and never answers."""
    handlers: list[asyncio.Task[None]] = []
    released = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        await released.wait()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    released.set()
    server.close()
    await asyncio.gather(*handlers, return_exceptions=True)
    await server.wait_closed()


def offline_config(cache_dir: Path, proxy: str, **overrides: object) -> RendererConfig:
    """A renderer configuration whose edge-tts points at ``proxy``."""
    settings: dict[str, object] = {
        "cache_dir": cache_dir,
        "engine_order": ("edge-tts", "espeak-ng"),
        "edge_tts": EdgeTtsConfig(proxy=proxy, connect_timeout_s=1, timeout_s=1.0),
        "espeak": EspeakConfig(),
    }
    settings.update(overrides)
    return RendererConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def renderer(tmp_path: Path, refused_proxy: str) -> Renderer:
    """A renderer with a fresh cache and an unreachable edge-tts."""
    return Renderer(offline_config(tmp_path / "cache", refused_proxy))
