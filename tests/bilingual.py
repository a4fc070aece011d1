"""Bilingual alerts for tests: a Chinese warning with its Mongolian (traditional script)
counterpart, optionally carrying a stand-in recording, and a cross-correlation that finds that
recording in played audio."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from audio.pcm import MASTER_RATE, Samples, decode
from broadcaster.cap import Alert, Info, Resource
from tests.core.support import COUNTY, make_alert

RECORDING_S = 2.0


def recording() -> np.ndarray[Any, np.dtype[np.float32]]:
    """A stand-in for a recorded Mongolian announcement: a 2 s chirp, unlike any speech."""
    t = np.arange(int(RECORDING_S * MASTER_RATE)) / MASTER_RATE
    phase = 2 * np.pi * (300 * t + (2700 / (2 * RECORDING_S)) * t**2)
    return (0.4 * np.sin(phase)).astype(np.float32)


def wav_bytes(samples: np.ndarray[Any, np.dtype[np.float32]]) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(MASTER_RATE)
        wav.writeframes((samples * 32767).astype("<i2").tobytes())
    return out.getvalue()


def mongolian(info: Info, *, with_recording: bool) -> Info:
    resources = []
    if with_recording:
        data = base64.b64encode(wav_bytes(recording())).decode()
        resources = [Resource(resource_desc="ᠳᠠᠭᠤ", mime_type="audio/wav", deref_uri=data)]
    return replace(
        info,
        language="mn-Mong",
        event="ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ",
        headline="ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ ᠶᠢᠨ ᠤᠯᠠᠪᠳᠤᠷ ᠤᠷᠢᠳᠴᠢᠯᠠᠨ ᠰᠡᠷᠡᠮᠵᠢᠯᠡᠭᠦᠯᠦᠯ",
        description="ᠮᠠᠨᠠᠭᠠᠳᠤᠷ ᠶᠡᠬᠡ ᠴᠠᠰᠤ ᠣᠷᠣᠨ᠎ᠠ᠃",
        instruction="ᠭᠠᠳᠠᠭᠰᠢ ᠭᠠᠷᠬᠤ ᠪᠠᠨ ᠪᠠᠭᠠᠰᠭᠠᠭᠠᠷᠠᠢ᠃",
        resources=resources,
    )


def alert(
    identifier: str,
    languages: str,
    *,
    with_recording: bool = False,
    geocodes: Sequence[str] = (COUNTY,),
) -> Alert:
    """An alert in ``languages`` (``zh``, ``mn`` or ``zh+mn``, in that order) for ``geocodes``;
    the Mongolian info carries the stand-in recording when ``with_recording``."""
    made = make_alert(identifier, geocodes=geocodes)
    chinese = made.infos[0]
    infos = {"zh": [chinese], "mn": [mongolian(chinese, with_recording=with_recording)]}
    made.infos = [info for code in languages.split("+") for info in infos[code]]
    return made


def recording_at(played: Path, sound: Samples | None = None) -> tuple[float, float]:
    """Where the recording (or ``sound``) first starts in a played file (seconds) and how well
    it matches there (normalised cross-correlation, 1.0 for an exact copy at any gain)."""
    pcm = decode(played).astype(np.float64)
    probe = (recording() if sound is None else sound).astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(pcm) + len(probe))))
    spectrum = np.fft.rfft(pcm, size) * np.conj(np.fft.rfft(probe, size))
    correlation = np.fft.irfft(spectrum, size)[: len(pcm) - len(probe) + 1]
    power = np.concatenate(([0.0], np.cumsum(pcm**2)))
    energy = np.sqrt(np.maximum(power[len(probe) :] - power[: -len(probe)], 1e-12))
    score = correlation / (np.linalg.norm(probe) * energy)
    best = float(np.max(score))
    first = int(np.argmax(score > best - 0.05))
    return first / MASTER_RATE, best
