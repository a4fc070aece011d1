"""Officers' recordings (:mod:`audio.recording`): a file of a few kilobytes that holds far more
than the longest recording allowed (silence in large FLAC frames) is refused from its measured
length, without decoding it whole at the master rate; audio an alert carries is decoded no
further than the longest the speech chain takes."""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import pytest

from audio.chain import SUPPLIED_MAX_S
from audio.errors import AudioFormatError, AudioToolError
from audio.pcm import MASTER_RATE, decode_async
from audio.recording import MAX_SECONDS, prepare_recording


def _long_silence_flac(path: Path, seconds: float) -> bytes:
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono"),
            *("-t", f"{seconds:g}", "-c:a", "flac", "-frame_size", "65535", "-strict", "-2"),
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()


def test_a_small_file_of_long_silence_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    data = _long_silence_flac(tmp_path / "long.flac", 3 * MAX_SECONDS)
    assert len(data) < 64 * 1024  # 30 minutes at 48 kHz: 345 MB decoded to float samples
    tracemalloc.start()
    try:
        with pytest.raises(AudioFormatError, match="longer than 600 s"):
            prepare_recording(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"refusing it took {peak / 2**20:.0f} MiB"


async def test_supplied_audio_is_decoded_no_further_than_its_longest(tmp_path: Path) -> None:
    """Audio an alert carries goes through the speech chain's decode, bounded the same way."""
    data = _long_silence_flac(tmp_path / "long.flac", 3 * SUPPLIED_MAX_S)
    tracemalloc.start()
    try:
        with pytest.raises(AudioToolError, match="600 s long or more"):
            await decode_async(data, max_seconds=SUPPLIED_MAX_S)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 600 s at 48 kHz as float samples (115 MB) and one copy, not 30 minutes of them.
    assert peak < 260 * 2**20, f"refusing it took {peak / 2**20:.0f} MiB"
    short = _long_silence_flac(tmp_path / "short.flac", 2)
    assert len(await decode_async(short, max_seconds=SUPPLIED_MAX_S)) == 2 * MASTER_RATE
