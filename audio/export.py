"""Export formats per channel, written with pydub and ffmpeg.

``mp3`` and ``opus`` for IP loudspeaker boxes (24 kHz MP3 at 48 kbit/s, Ogg Opus at 32 kbit/s),
``wav`` (48 kHz 16-bit PCM) for FM transmitters, ``ulaw`` (8 kHz G.711 µ-law in WAV) for
telephone paging. Encoders run in worker threads; formats are written in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydub import AudioSegment
from pydub.exceptions import CouldntEncodeError

from audio.errors import AudioToolError
from audio.pcm import MASTER_RATE, Samples, ffmpeg_binary, to_pcm16


class ExportFormat(StrEnum):
    """An output encoding; the value is the name used on the command line and in metadata."""

    MP3 = "mp3"
    OPUS = "opus"
    WAV = "wav"
    ULAW = "ulaw"


@dataclass(frozen=True)
class EncoderSettings:
    """How pydub/ffmpeg writes one format."""

    filename: str
    container: str
    codec: str | None
    bitrate: str | None
    parameters: tuple[str, ...]
    sample_rate: int


ENCODERS: dict[ExportFormat, EncoderSettings] = {
    ExportFormat.MP3: EncoderSettings(
        "audio.mp3", "mp3", "libmp3lame", "48k", ("-ar", "24000", "-compression_level", "9"), 24000
    ),
    ExportFormat.OPUS: EncoderSettings(
        "audio.opus",
        "opus",
        "libopus",
        "32k",
        ("-compression_level", "0"),
        MASTER_RATE,
    ),
    ExportFormat.WAV: EncoderSettings("audio-48k.wav", "wav", None, None, (), MASTER_RATE),
    ExportFormat.ULAW: EncoderSettings(
        "audio-8k-ulaw.wav", "wav", "pcm_mulaw", None, ("-ar", "8000"), 8000
    ),
}


def to_segment(samples: Samples) -> AudioSegment:
    """Master-rate samples as a 16-bit pydub segment."""
    AudioSegment.converter = ffmpeg_binary()
    return AudioSegment(data=to_pcm16(samples), sample_width=2, frame_rate=MASTER_RATE, channels=1)


def export_one(segment: AudioSegment, fmt: ExportFormat, directory: Path) -> Path:
    """Write a master-rate segment in ``fmt`` into ``directory``; return the file path."""
    settings = ENCODERS[fmt]
    target = directory / settings.filename
    try:
        handle = segment.export(
            str(target),
            format=settings.container,
            codec=settings.codec,
            bitrate=settings.bitrate,
            parameters=list(settings.parameters) or None,
        )
    except (CouldntEncodeError, OSError) as exc:
        raise AudioToolError(f"could not write {fmt.value}: {exc}") from exc
    handle.close()
    if not target.is_file() or target.stat().st_size == 0:
        raise AudioToolError(f"encoder wrote no {fmt.value} file")
    return target


def export_all(
    samples: Samples, formats: Iterable[ExportFormat], directory: Path
) -> dict[ExportFormat, Path]:
    """Write every format in parallel threads (each encoder is its own ffmpeg process)."""
    wanted = list(dict.fromkeys(formats))
    segment = to_segment(samples)
    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        futures = {fmt: pool.submit(export_one, segment, fmt, directory) for fmt in wanted}
        return {fmt: future.result() for fmt, future in futures.items()}
