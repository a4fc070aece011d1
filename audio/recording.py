"""An officer's recording made ready to store: decoded, loudness-normalised, encoded.

A recording comes from a browser's microphone (WebM or Ogg Opus from MediaRecorder) or from a
file (any format ffmpeg reads). Its length is measured first by a decode at a low rate that
stops a second past :data:`MAX_SECONDS` and within :data:`MEASURE_TIMEOUT_S`: a file of a few
kilobytes can hold hours of silence, which decoded whole at the master rate would take
gigabytes; a longer one is refused there. Then it is decoded to the master rate, refused when
it is too short or as quiet as silence (the speech chain would not take it either,
:data:`SUPPLIED_MIN_LUFS`), normalised by :func:`audio.loudness.normalize` to the loudspeaker
speech target (ITU-R BS.1770 loudness, as every spoken phrase is) and written as Ogg Opus, which
every channel profile decodes again and browsers play.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from audio.assembly import LOUDSPEAKER_PROFILE
from audio.chain import SUPPLIED_MIN_LUFS
from audio.errors import AudioFormatError, AudioToolError
from audio.export import ExportFormat, export_one, to_segment
from audio.loudness import LoudnessTarget, integrated_loudness, normalize
from audio.pcm import MASTER_RATE, decode, ffmpeg_binary

RECORDING_MIME_TYPE = "audio/ogg"
MIN_SECONDS = 0.5
MAX_SECONDS = 600.0
MEASURE_TIMEOUT_S = 30.0
"""How long measuring a recording may take; a file that takes longer is refused."""
_MEASURE_RATE = 8000


@dataclass(frozen=True, slots=True)
class PreparedRecording:
    """The stored form of a recording: Ogg Opus bytes and what was measured."""

    data: bytes
    duration_s: float
    loudness_lufs: float


def prepare_recording(
    data: bytes, target: LoudnessTarget = LOUDSPEAKER_PROFILE.loudness
) -> PreparedRecording:
    """Measure, decode, check and normalise ``data`` (blocking: ffmpeg runs three times).
    Raises ``AudioFormatError`` for audio that does not decode, is too short or long, or is
    silent."""
    if _measured_seconds(data) > MAX_SECONDS:
        raise AudioFormatError(f"the recording is longer than {MAX_SECONDS:g} s")
    try:
        samples = decode(data)
    except AudioToolError as exc:
        raise AudioFormatError("the recording is not audio that can be decoded") from exc
    duration_s = len(samples) / MASTER_RATE
    if duration_s < MIN_SECONDS:
        raise AudioFormatError(f"the recording is shorter than {MIN_SECONDS:g} s")
    if integrated_loudness(samples) < SUPPLIED_MIN_LUFS:
        raise AudioFormatError("the recording is silent")
    normalised, report = normalize(samples, target)
    with tempfile.TemporaryDirectory(prefix="recording-") as directory:
        path = export_one(to_segment(normalised), ExportFormat.OPUS, Path(directory))
        encoded = path.read_bytes()
    return PreparedRecording(encoded, duration_s, report.integrated_lufs)


def _measured_seconds(data: bytes) -> float:
    """How long ``data`` plays, up to a second past ``MAX_SECONDS``: decoded to 16-bit mono at
    a low rate, so the output stays under 10 MB whatever the file claims."""
    command = [
        ffmpeg_binary(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        "pipe:0",
        "-t",
        f"{MAX_SECONDS + 1:g}",
        "-f",
        "s16le",
        "-ac",
        "1",
        "-ar",
        str(_MEASURE_RATE),
        "pipe:1",
    ]
    try:
        done = subprocess.run(
            command, input=data, capture_output=True, timeout=MEASURE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AudioFormatError(
            f"the recording did not decode within {MEASURE_TIMEOUT_S:g} s"
        ) from exc
    if done.returncode != 0:
        raise AudioFormatError("the recording is not audio that can be decoded")
    return len(done.stdout) / (2 * _MEASURE_RATE)
