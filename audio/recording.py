"""An officer's recording made ready to store: decoded, loudness-normalised, encoded.

A recording comes from a browser's microphone (WebM or Ogg Opus from MediaRecorder) or from a
file (any format ffmpeg reads). It is decoded to the master rate, refused when it is too short
or as quiet as silence (the speech chain would not take it either, :data:`SUPPLIED_MIN_LUFS`),
normalised by :func:`audio.loudness.normalize` to the loudspeaker speech target (ITU-R BS.1770
loudness, as every spoken phrase is) and written as Ogg Opus, which every channel profile
decodes again and browsers play.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from audio.assembly import LOUDSPEAKER_PROFILE
from audio.chain import SUPPLIED_MIN_LUFS
from audio.errors import AudioFormatError, AudioToolError
from audio.export import ExportFormat, export_one, to_segment
from audio.loudness import LoudnessTarget, integrated_loudness, normalize
from audio.pcm import MASTER_RATE, decode

RECORDING_MIME_TYPE = "audio/ogg"
MIN_SECONDS = 0.5
MAX_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class PreparedRecording:
    """The stored form of a recording: Ogg Opus bytes and what was measured."""

    data: bytes
    duration_s: float
    loudness_lufs: float


def prepare_recording(
    data: bytes, target: LoudnessTarget = LOUDSPEAKER_PROFILE.loudness
) -> PreparedRecording:
    """Decode, check and normalise ``data`` (blocking: ffmpeg runs twice). Raises
    ``AudioFormatError`` for audio that does not decode, is too short or long, or is silent."""
    try:
        samples = decode(data)
    except AudioToolError as exc:
        raise AudioFormatError("the recording is not audio that can be decoded") from exc
    duration_s = len(samples) / MASTER_RATE
    if duration_s < MIN_SECONDS:
        raise AudioFormatError(f"the recording is shorter than {MIN_SECONDS:g} s")
    if duration_s > MAX_SECONDS:
        raise AudioFormatError(f"the recording is longer than {MAX_SECONDS:g} s")
    if integrated_loudness(samples) < SUPPLIED_MIN_LUFS:
        raise AudioFormatError("the recording is silent")
    normalised, report = normalize(samples, target)
    with tempfile.TemporaryDirectory(prefix="recording-") as directory:
        path = export_one(to_segment(normalised), ExportFormat.OPUS, Path(directory))
        encoded = path.read_bytes()
    return PreparedRecording(encoded, duration_s, report.integrated_lufs)
