"""PCM helpers: WAV parsing from engines, resampling, decoding through ffmpeg."""

from __future__ import annotations

import io
import struct
import wave
from math import gcd

import numpy as np
import pytest
from scipy import signal  # type: ignore[import-untyped]

from audio.errors import AudioFormatError, AudioToolError
from audio.pcm import MASTER_RATE, decode, decode_async, resample, to_pcm16, wav_to_samples

from .conftest import spectrum_peaks


def _wav(samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        if width == 2:
            handle.writeframes(to_pcm16(samples.astype(np.float32)))
        else:
            handle.writeframes(bytes(len(samples)))
    return buffer.getvalue()


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def test_espeak_rate_wav_is_resampled_to_the_master_rate() -> None:
    samples = wav_to_samples(_wav(_tone(440, 22_050), 22_050))
    assert abs(len(samples) - 48_000) <= 1
    assert spectrum_peaks(samples, 48_000, 1)[0] == pytest.approx(440, abs=2)


@pytest.mark.parametrize("rate", [22050, 16000, 44100])
def test_resampling_with_the_filter_designed_once_is_scipys_own(rate: int) -> None:
    common = gcd(rate, MASTER_RATE)
    noise = np.random.default_rng(rate).standard_normal(rate // 2).astype(np.float32) * 0.3
    for _ in range(2):  # the second call uses the filter the first designed
        ours = resample(noise, rate)
        theirs = signal.resample_poly(noise, MASTER_RATE // common, rate // common)
        theirs = theirs.astype(np.float32)
        assert ours.dtype == np.float32 and np.array_equal(ours, theirs)


def test_stereo_is_mixed_to_mono() -> None:
    left_right = np.repeat(_tone(1000, 48_000), 2)
    samples = wav_to_samples(_wav(left_right, 48_000, channels=2))
    assert len(samples) == 48_000
    assert np.max(np.abs(samples)) == pytest.approx(0.5, abs=0.01)


def test_a_streamed_header_with_placeholder_sizes_is_read_to_the_end() -> None:
    data = bytearray(_wav(_tone(440, 48_000), 48_000))
    struct.pack_into("<I", data, 4, 0xFFFFFFFF)
    struct.pack_into("<I", data, data.index(b"data") + 4, 0xFFFFFFFF)
    assert len(wav_to_samples(bytes(data))) == 48_000


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"garbage" * 10, "RIFF"),
        (b"RIFF\x00\x00\x00\x00WAVE", "no data chunk"),
        (None, "unsupported WAV"),
    ],
)
def test_unusable_wav_is_refused(data: bytes | None, problem: str) -> None:
    payload = data if data is not None else _wav(np.zeros(100), 8000, width=1)
    with pytest.raises(AudioFormatError, match=problem):
        wav_to_samples(payload)


async def test_ffmpeg_decodes_bytes_and_refuses_garbage() -> None:
    samples = await decode_async(_wav(_tone(440, 16_000), 16_000))
    assert abs(len(samples) - 48_000) <= 48
    with pytest.raises(AudioToolError, match="could not decode"):
        await decode_async(b"\x00" * 64)
    with pytest.raises(AudioToolError, match="could not decode"):
        decode(b"\x00" * 64)
