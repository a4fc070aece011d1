"""A Mongolian warning assembled from recorded phrase clips (place names, hazard, level,
instruction) when no voice speaks the language: stand-in clips (tones of known pitch) are
generated here, and the rendered audio is checked to hold them in order."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from audio.assembly import FM_PROFILE
from audio.clips import ClipEntry, ClipLibrary, write_manifest
from audio.errors import ClipLibraryError, NoVoiceError
from audio.export import ExportFormat
from audio.pcm import MASTER_RATE, decode
from audio.render import Renderer, RendererConfig, RenderRequest
from audio.speechtext import SpeechText

PHRASES = {  # kind, key, pitch of the stand-in clip (Hz)
    ("place", "150926"): 400.0,
    ("place", "150928"): 600.0,
    ("hazard", "blizzard"): 800.0,
    ("level", "red"): 1000.0,
    ("instruction", "blizzard"): 1200.0,
}
PHRASE_S = 0.6


def _tone(path: Path, pitch: float) -> None:
    t = np.arange(int(PHRASE_S * MASTER_RATE)) / MASTER_RATE
    samples = (0.3 * np.sin(2 * np.pi * pitch * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MASTER_RATE)
        out.writeframes(samples.tobytes())


def stand_in_library(directory: Path, skip: tuple[str, ...] = ()) -> Path:
    """A clip library of Mongolian phrase clips (tones), with a ``wanted`` list."""
    (directory / "mn-Mong").mkdir(parents=True)
    entries = []
    for (kind, key), pitch in PHRASES.items():
        if kind in skip:
            continue
        name = f"mn-Mong/{kind}-{key}.wav"
        _tone(directory / name, pitch)
        fields = {"place": key} if kind == "place" else {"hazard": key}
        if kind == "level":
            fields = {"level": key}
        entries.append(ClipEntry(kind, "mn-Mong", name, "", f"stand-in {key}", **fields))
    wanted = [
        {"kind": "hazard", "language": "mn-Mong", "hazard": "blizzard", "text": "ᠴᠠᠰᠤᠨ"},
        {"kind": "hazard", "language": "mn-Mong", "hazard": "gale", "text": "ᠰᠠᠯᠬᠢ"},
    ]
    manifest = directory / "manifest.json"
    manifest.write_text(json.dumps({"format": 1, "clips": [], "wanted": wanted}), "utf-8")
    write_manifest(directory, entries)
    return directory


def _pitch(samples: np.ndarray, start_s: float) -> float:
    window = samples[int(start_s * MASTER_RATE) :][: int(0.2 * MASTER_RATE)]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    return float(np.argmax(spectrum) * MASTER_RATE / len(window))


MONGOLIAN = SpeechText("mn-Mong", "Actual", "ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ", level="red")


async def test_a_warning_is_assembled_from_phrase_clips_in_order(tmp_path: Path) -> None:
    library = stand_in_library(tmp_path / "clips")
    document = json.loads((library / "manifest.json").read_text("utf-8"))
    assert [w["hazard"] for w in document["wanted"]] == ["gale"], "recorded ones leave the list"
    renderer = Renderer(
        RendererConfig(tmp_path / "cache", engine_order=("espeak-ng",), clips_dir=library)
    )
    profile = FM_PROFILE.with_formats(ExportFormat.WAV)
    request = RenderRequest(MONGOLIAN, "blizzard", places=("150928", "150999", "150926"))
    render = await renderer.render_programme([request], profile)
    assert render.engine == "clip" and render.languages == ("mn-Mong",)
    samples = decode(render.files[ExportFormat.WAV])
    body = next(s for s in render.segments if s.kind == "body")
    step = PHRASE_S + 0.3
    assert body.end_s - body.start_s == pytest.approx(5 * PHRASE_S + 4 * 0.3, abs=0.05)
    heard = [_pitch(samples, body.start_s + 0.2 + n * step) for n in range(5)]
    # The places the alert names (without a clip for 150999), hazard, level, instruction.
    assert heard == pytest.approx([600.0, 400.0, 800.0, 1000.0, 1200.0], abs=10)


async def test_without_a_level_clip_nothing_is_assembled(tmp_path: Path) -> None:
    library = stand_in_library(tmp_path / "clips", skip=("level",))
    renderer = Renderer(
        RendererConfig(tmp_path / "cache", engine_order=("espeak-ng",), clips_dir=library)
    )
    with pytest.raises(NoVoiceError, match="no level clip for 'blizzard'/'red' in 'mn-Mong'"):
        await renderer.render_programme([RenderRequest(MONGOLIAN, "blizzard")], FM_PROFILE)


def test_phrase_clips_need_their_key(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "format": 1,
                "clips": [
                    {"kind": "place", "language": "mn-Mong", "file": "a.wav", "sha256": "0" * 64}
                ],
            }
        ),
        "utf-8",
    )
    with pytest.raises(ClipLibraryError, match="a place clip needs place"):
        ClipLibrary(tmp_path)
