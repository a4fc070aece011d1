"""Build a clip library: speak a phrase table with an engine and write Opus clips + manifest.

The shipped library under ``audio/clips`` was made with ``python -m audio clips-build`` from
``default_phrases()``: one warning clip per hazard, level and language, the generic warning
without a level, the test and exercise markers and the closing phrase. Integrators with recorded
clips write their own files and call ``clips.write_manifest`` instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydub import AudioSegment
from pydub.exceptions import CouldntEncodeError

from audio.clips import GENERIC_HAZARD, ClipEntry, write_manifest
from audio.engines.base import SpeechEngine
from audio.errors import AudioToolError
from audio.pcm import MASTER_RATE, Samples, ffmpeg_binary, to_pcm16
from audio.speechtext import TEMPLATES, Level, MarkerKind

CLIP_BITRATE = "12k"

HAZARDS: dict[str, tuple[str, str]] = {
    GENERIC_HAZARD: ("", ""),
    "rainstorm": ("暴雨", "rainstorm"),
    "flood": ("洪水", "flood"),
    "blizzard": ("暴雪", "blizzard"),
    "cold-wave": ("寒潮", "cold wave"),
    "gale": ("大风", "gale"),
    "sandstorm": ("沙尘暴", "sandstorm"),
    "wildfire": ("森林草原火险", "wildfire"),
    "earthquake": ("地震", "earthquake"),
    "hazmat": ("危险化学品事故", "hazardous chemicals"),
}
_LEVEL_WORDS = {
    Level.RED: ("红色", "Red"),
    Level.ORANGE: ("橙色", "Orange"),
    Level.YELLOW: ("黄色", "Yellow"),
    Level.BLUE: ("蓝色", "Blue"),
}
_ADVICE = {
    "zh-CN": "请立即采取防范措施，注意收听当地政府发布的后续信息。",
    "en": "Take protective action now and listen for further information from local authorities.",
}


def _warning_text(language: str, hazard: str, level: Level) -> str:
    zh_event, en_event = HAZARDS[hazard]
    zh_level, en_level = _LEVEL_WORDS.get(level, ("", ""))
    if language == "zh-CN":
        return f"{zh_event}{zh_level}预警。{_ADVICE[language]}"
    words = " ".join(w for w in (en_level, en_event, "warning.") if w)
    return f"{words[0].upper()}{words[1:]} {_ADVICE[language]}"


def default_phrases() -> list[ClipEntry]:
    """The phrase table of the shipped library (``sha256`` is filled in when written)."""
    entries = []
    for language, base in (("zh-CN", "zh"), ("en", "en")):
        template = TEMPLATES[base]
        for kind in MarkerKind:
            text = template.markers[kind]
            entries.append(
                ClipEntry(f"marker-{kind}", language, f"{language}/marker-{kind}.opus", "", text)
            )
        entries.append(
            ClipEntry("closing", language, f"{language}/closing.opus", "", template.closing)
        )
        entries.append(
            ClipEntry(
                "warning",
                language,
                f"{language}/generic-none.opus",
                "",
                _warning_text(language, GENERIC_HAZARD, Level.NONE),
                GENERIC_HAZARD,
                "none",
            )
        )
        for hazard in HAZARDS:
            for level in _LEVEL_WORDS:
                text = _warning_text(language, hazard, level)
                path = f"{language}/{hazard}-{level}.opus"
                entries.append(ClipEntry("warning", language, path, "", text, hazard, level.value))
    return entries


def encode_clip(samples: Samples, target: Path) -> None:
    """Write ``samples`` as a small mono Ogg Opus clip (blocking)."""
    AudioSegment.converter = ffmpeg_binary()
    segment = AudioSegment(
        data=to_pcm16(samples), sample_width=2, frame_rate=MASTER_RATE, channels=1
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        segment.export(
            str(target),
            format="opus",
            codec="libopus",
            bitrate=CLIP_BITRATE,
            parameters=["-application", "voip"],
        ).close()
    except (CouldntEncodeError, OSError) as exc:
        raise AudioToolError(f"could not encode clip {target}: {exc}") from exc


async def build_library(engine: SpeechEngine, directory: Path, entries: list[ClipEntry]) -> Path:
    """Speak every entry with ``engine``, encode it under ``directory``, write the manifest."""
    for entry in entries:
        samples = await engine.synthesize(entry.text, entry.language)
        await asyncio.to_thread(encode_clip, samples, directory / entry.file)
    return await asyncio.to_thread(write_manifest, directory, entries)
