"""Mono float PCM at the master rate, and decoding any audio file or byte string into it.

All assembly happens on ``numpy.float32`` arrays in [-1, 1] at ``MASTER_RATE`` (48 kHz mono).
Decoding runs ffmpeg as a subprocess: ``decode_async`` for coroutines (the event loop only waits
on pipes), ``decode`` for worker threads. ``wav_to_samples`` reads the 16-bit PCM WAV that local
engines write (RIFF chunks, sizes of a streamed header ignored) and resamples in-process, which
is faster than a decoder process for long speech.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from functools import cache
from math import gcd
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal  # type: ignore[import-untyped]

from audio.errors import AudioFormatError, AudioToolError

MASTER_RATE = 48_000

Samples = npt.NDArray[np.float32]


def ffmpeg_binary() -> str:
    """Path of the ffmpeg executable, or ``AudioToolError`` when it is not installed."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise AudioToolError("ffmpeg is not installed (Debian package 'ffmpeg')")
    return found


def _decode_command(source: str, rate: int, max_seconds: float | None = None) -> list[str]:
    limit = [] if max_seconds is None else ["-t", f"{max_seconds:g}"]
    return [
        ffmpeg_binary(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        source,
        *limit,
        "-f",
        "f32le",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "pipe:1",
    ]


def _to_samples(raw: bytes) -> Samples:
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def decode(source: Path | bytes, rate: int = MASTER_RATE) -> Samples:
    """Decode a file path or an encoded byte string into mono float samples (blocking)."""
    if isinstance(source, Path):
        cmd, stdin = _decode_command(str(source), rate), None
    else:
        cmd, stdin = _decode_command("pipe:0", rate), source
    done = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise AudioToolError(
            f"ffmpeg could not decode audio: {done.stderr.decode(errors='replace')}"
        )
    return _to_samples(done.stdout)


async def decode_async(
    source: Path | bytes, rate: int = MASTER_RATE, max_seconds: float | None = None
) -> Samples:
    """Decode like ``decode`` without blocking the event loop; the subprocess dies if cancelled.
    With ``max_seconds`` ffmpeg decodes no more than that (a few bytes of a codec can stand for
    hours of samples), and audio that long is refused with ``AudioToolError``."""
    if isinstance(source, Path):
        cmd, stdin = _decode_command(str(source), rate, max_seconds), None
    else:
        cmd, stdin = _decode_command("pipe:0", rate, max_seconds), source
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise AudioToolError(f"ffmpeg could not decode audio: {err.decode(errors='replace')}")
    samples = _to_samples(out)
    if max_seconds is not None and len(samples) >= round(max_seconds * rate):
        raise AudioToolError(f"the audio is {max_seconds:g} s long or more")
    return samples


def silence(seconds: float, rate: int = MASTER_RATE) -> Samples:
    """``seconds`` of digital silence."""
    return np.zeros(round(seconds * rate), dtype=np.float32)


def to_pcm16(samples: Samples) -> bytes:
    """Little-endian signed 16-bit PCM, clipped to full scale."""
    # Scaling by a power of two is exact, so clipping after it clips the same samples; the
    # clip and rounding then work in place on the one scaled copy.
    scaled = samples * 32768.0
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype("<i2").tobytes()


def wav_to_samples(data: bytes) -> Samples:
    """Mono master-rate samples from a 16-bit PCM WAV byte string (blocking: CPU work)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError("not a RIFF/WAVE stream")
    position, rate, channels, bits = 12, 0, 0, 0
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if chunk == b"fmt ":
            codec, channels, rate = struct.unpack_from("<HHI", data, body)
            bits = struct.unpack_from("<H", data, body + 14)[0]
            if codec != 1 or bits != 16 or channels not in (1, 2):
                raise AudioFormatError(f"unsupported WAV: codec {codec}, {bits} bit, {channels} ch")
        elif chunk == b"data":
            if not rate:
                raise AudioFormatError("WAV data before its fmt chunk")
            # Streamed headers carry a placeholder size: the data runs to the end.
            end = len(data) if size in (0, 0xFFFFFFFF) or body + size > len(data) else body + size
            usable = (end - body) // (2 * channels) * 2 * channels
            pcm = np.frombuffer(data, dtype="<i2", count=usable // 2, offset=body)
            mono = pcm.reshape(-1, channels).mean(axis=1) / 32768.0
            return resample(mono.astype(np.float32), rate)
        position = body + size + (size & 1)
    raise AudioFormatError("WAV stream has no data chunk")


def resample(samples: Samples, rate: int, target: int = MASTER_RATE) -> Samples:
    """Polyphase resampling from ``rate`` to ``target``."""
    if rate == target:
        return samples
    common = gcd(rate, target)
    up, down = target // common, rate // common
    out: Samples = np.asarray(
        signal.resample_poly(samples, up, down, window=_low_pass(up, down)), dtype=np.float32
    )
    return out


@cache
def _low_pass(up: int, down: int) -> npt.NDArray[np.float32]:
    """The anti-aliasing filter ``resample_poly`` designs for ``up``/``down`` by default (a
    Kaiser window, beta 5, ten zero crossings a side), designed once per ratio: each design
    costs about as much as the resampling of a spoken warning."""
    half_len = 10 * max(up, down)
    taps = signal.firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0))
    return np.asarray(taps, dtype=np.float32)
