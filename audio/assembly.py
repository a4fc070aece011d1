"""Assembly of a spoken warning for one channel, and the channel profiles that drive it.

Layout: [SAME header ×3] → attention signal → pause → [marker] → body, repeated N times with
pauses → closing phrase → [marker] → [SAME end-of-message ×3]. The message between the SAME
bursts is normalised to the profile's integrated-loudness target under its true-peak ceiling;
SAME bursts, when present, are scaled to the same loudness so they neither blast nor vanish.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from audio.chain import SpeechResult
from audio.errors import AudioConfigError
from audio.export import ExportFormat
from audio.loudness import LoudnessReport, LoudnessTarget, integrated_loudness, normalize
from audio.loudness import true_peak_dbtp as measure_true_peak
from audio.pcm import MASTER_RATE, Samples, silence
from audio.same import eom_bursts, header_bursts
from audio.signals import AttentionConfig, AttentionKind, attention_signal

SHORT_PAUSE_S = 0.5
SAME_ATTENTION_S = 8.0


@dataclass(frozen=True)
class ChannelProfile:
    """How one kind of channel wants its audio: loudness, formats, attention, repeats."""

    name: str
    loudness: LoudnessTarget
    formats: tuple[ExportFormat, ...]
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    repeats: int = 2
    pause_s: float = 1.0
    closing: bool = True
    same: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.repeats <= 10:
            raise AudioConfigError(f"profile {self.name!r}: repeats must be 1-10")
        if not 0 <= self.pause_s <= 10:
            raise AudioConfigError(f"profile {self.name!r}: pause_s must be 0-10 s")
        if not self.formats:
            raise AudioConfigError(f"profile {self.name!r}: at least one export format")

    def identity(self) -> dict[str, object]:
        """Every setting, for the render cache key."""
        return asdict(self)

    def with_formats(self, *formats: ExportFormat) -> ChannelProfile:
        """The same profile exporting only ``formats``."""
        return replace(self, formats=tuple(formats))


LOUDSPEAKER_PROFILE = ChannelProfile(
    "loudspeaker", LoudnessTarget(-16.0, -1.0), (ExportFormat.MP3, ExportFormat.OPUS)
)
FM_PROFILE = ChannelProfile("fm", LoudnessTarget(-23.0, -1.0), (ExportFormat.WAV,), same=True)
TELEPHONE_PROFILE = ChannelProfile(
    "telephone",
    LoudnessTarget(-18.0, -2.0),
    (ExportFormat.ULAW,),
    attention=AttentionConfig(AttentionKind.CHIME),
)
PROFILES = {p.name: p for p in (LOUDSPEAKER_PROFILE, FM_PROFILE, TELEPHONE_PROFILE)}


@dataclass(frozen=True)
class SegmentSpan:
    """Where one part of the message lies in the assembled audio."""

    kind: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class AssembledAudio:
    """The finished master: samples, layout, and the loudness measured on it."""

    samples: Samples
    segments: tuple[SegmentSpan, ...]
    loudness: LoudnessReport


class _Timeline:
    def __init__(self) -> None:
        self.parts: list[Samples] = []
        self.spans: list[SegmentSpan] = []
        self.length = 0

    def add(self, kind: str | None, samples: Samples) -> None:
        if kind is not None:
            start = self.length / MASTER_RATE
            self.spans.append(SegmentSpan(kind, start, start + len(samples) / MASTER_RATE))
        self.parts.append(samples.astype(np.float32))
        self.length += len(samples)

    def samples(self) -> Samples:
        return np.concatenate(self.parts) if self.parts else silence(0)


def _message(
    speech: SpeechResult, profile: ChannelProfile, attention: AttentionConfig
) -> _Timeline:
    line = _Timeline()
    signal = attention_signal(attention)
    if len(signal):
        line.add("attention", signal)
        line.add(None, silence(profile.pause_s))
    if speech.marker is not None:
        line.add("marker", speech.marker)
        line.add(None, silence(SHORT_PAUSE_S))
    for repeat in range(profile.repeats):
        if repeat:
            line.add(None, silence(profile.pause_s))
        line.add("body", speech.body)
    if profile.closing and speech.closing is not None:
        line.add(None, silence(SHORT_PAUSE_S))
        line.add("closing", speech.closing)
    if speech.marker is not None:
        line.add(None, silence(SHORT_PAUSE_S))
        line.add("marker", speech.marker)
    return line


def _at_loudness(samples: Samples, lufs: float) -> Samples:
    return (samples * 10 ** ((lufs - integrated_loudness(samples)) / 20)).astype(np.float32)


def assemble(
    speech: SpeechResult, profile: ChannelProfile, same_header: str | None = None
) -> AssembledAudio:
    """Lay out, normalise and (for SAME profiles with a header) frame the message."""
    with_same = profile.same and same_header is not None
    attention = (
        AttentionConfig(AttentionKind.TWO_TONE, SAME_ATTENTION_S)
        if with_same
        else profile.attention
    )
    message = _message(speech, profile, attention)
    normalised, report = normalize(message.samples(), profile.loudness)
    if not with_same or same_header is None:
        return AssembledAudio(normalised, tuple(message.spans), report)
    target = profile.loudness.lufs
    header = _at_loudness(header_bursts(same_header), target)
    eom = _at_loudness(eom_bursts(), target)
    offset = len(header) / MASTER_RATE
    spans = [SegmentSpan("same-header", 0.0, offset)]
    spans += [SegmentSpan(s.kind, s.start_s + offset, s.end_s + offset) for s in message.spans]
    end = offset + len(normalised) / MASTER_RATE
    spans.append(SegmentSpan("same-eom", end, end + len(eom) / MASTER_RATE))
    full = np.concatenate([header, normalised, eom]).astype(np.float32)
    measured = LoudnessReport(
        integrated_loudness(full),
        max(measure_true_peak(full), report.true_peak_dbtp),
        report.gain_db,
    )
    return AssembledAudio(full, tuple(spans), measured)
