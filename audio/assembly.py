"""Assembly of a spoken warning for one channel, and the channel profiles that drive it.

Layout: [SAME header ×3] → attention signal → pause → [marker] → body, repeated N times with
pauses → closing phrase → [marker] → [SAME end-of-message ×3]. A programme in several
languages has one attention signal (and one SAME frame); each language's part (marker, body
repeats, closing, marker) follows the last after a pause, in the order given. The spoken
phrases of each language are normalised together, once, to the profile's integrated-loudness
target under its true-peak ceiling; the attention signal and SAME bursts are scaled to the same
loudness (never past the ceiling), so the laid-out message meets the target without normalising
the repeats again. The loudness reported
is measured on the finished message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from audio.chain import SpeechResult
from audio.errors import AudioConfigError
from audio.export import ExportFormat
from audio.loudness import (
    SILENT,
    LoudnessReport,
    LoudnessTarget,
    integrated_loudness,
    laid_out_loudness,
    normalize,
    ringing,
    true_peak_dbtp,
)
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
    # Lossy encoders overshoot the master's peak: MP3 by under half a decibel, Opus at 32 kbit/s
    # by up to 1.6 dB on espeak-ng speech (measured with ffmpeg's ebur128), so the master is
    # held at -3 dBTP for the decoded MP3/Opus to stay under -1 dBTP.
    "loudspeaker",
    LoudnessTarget(-16.0, -3.0),
    (ExportFormat.MP3, ExportFormat.OPUS),
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
    language: str = ""


@dataclass(frozen=True)
class AssembledAudio:
    """The finished master: samples, layout, and the loudness measured on it."""

    samples: Samples
    segments: tuple[SegmentSpan, ...]
    loudness: LoudnessReport


class _Timeline:
    def __init__(self, sink: Callable[[Samples], None] | None = None) -> None:
        self.parts: list[Samples] = []
        self.spans: list[SegmentSpan] = []
        self.length = 0
        self._sink = sink

    def add(self, kind: str | None, samples: Samples, language: str = "") -> None:
        if kind is not None:
            start = self.length / MASTER_RATE
            end = start + len(samples) / MASTER_RATE
            self.spans.append(SegmentSpan(kind, start, end, language))
        self.parts.append(samples.astype(np.float32, copy=False))
        self.length += len(samples)
        if self._sink is not None:
            self._sink(self.parts[-1])

    def samples(self) -> Samples:
        return np.concatenate(self.parts) if self.parts else silence(0)


@dataclass(frozen=True)
class _Parts:
    language: str
    marker: Samples | None
    body: Samples
    closing: Samples | None
    true_peak_dbtp: float
    speech_gain_db: float


def _at_loudness(samples: Samples, target: LoudnessTarget) -> tuple[Samples, float]:
    """A steady signal (tones, AFSK) scaled to the target loudness, or lower if its peak
    would pass the ceiling; returns the scaled signal and its true peak."""
    if not len(samples):
        return samples, SILENT
    gain_db = target.lufs - integrated_loudness(samples)
    peak = true_peak_dbtp(samples)
    gain_db = min(gain_db, target.true_peak_dbtp - peak)
    return (samples * 10 ** (gain_db / 20)).astype(np.float32), peak + gain_db


@functools.lru_cache(maxsize=16)
def _fixed_at_loudness(
    attention: AttentionConfig | None, target: LoudnessTarget
) -> tuple[Samples, float, Samples]:
    """An attention signal (or, for ``None``, the SAME end of message) at the target loudness,
    its true peak and its K-weighting (``ringing``): the same for every message of a
    profile, so made once (read-only)."""
    made = attention_signal(attention) if attention is not None else eom_bursts()
    samples, peak = _at_loudness(made, target)
    weighted = ringing(samples)
    samples.setflags(write=False)
    weighted.setflags(write=False)
    return samples, peak, weighted


def attention_clip(profile: ChannelProfile) -> Samples:
    """The profile's attention signal as a message opens with it (at the message's loudness,
    under its ceiling): the clip a box stores to play while the rest of a message downloads."""
    return _fixed_at_loudness(profile.attention, profile.loudness)[0]


def _normalised_parts(speech: SpeechResult, language: str, profile: ChannelProfile) -> _Parts:
    # Each distinct phrase is normalised once, as one unit, before the layout repeats it:
    # the repeated message has the same loudness at a fraction of the work.
    closing = speech.closing if profile.closing else None
    phrases = [p for p in (speech.marker, speech.body, closing) if p is not None]
    unit, report = normalize(np.concatenate(phrases), profile.loudness)
    cuts = np.cumsum([len(p) for p in phrases])[:-1]
    pieces = iter(np.split(unit, cuts))
    marker = next(pieces) if speech.marker is not None else None
    body = next(pieces)
    closing = next(pieces) if closing is not None else None
    return _Parts(language, marker, body, closing, report.true_peak_dbtp, report.gain_db)


def _lay_out(line: _Timeline, parts: _Parts, profile: ChannelProfile) -> None:
    language = parts.language
    if parts.marker is not None:
        line.add("marker", parts.marker, language)
        line.add(None, silence(SHORT_PAUSE_S))
    for repeat in range(profile.repeats):
        if repeat:
            line.add(None, silence(profile.pause_s))
        line.add("body", parts.body, language)
    if parts.closing is not None:
        line.add(None, silence(SHORT_PAUSE_S))
        line.add("closing", parts.closing, language)
    if parts.marker is not None:
        line.add(None, silence(SHORT_PAUSE_S))
        line.add("marker", parts.marker, language)


def assemble(
    speech: SpeechResult, profile: ChannelProfile, same_header: str | None = None
) -> AssembledAudio:
    """Lay out, normalise and (for SAME profiles with a header) frame the message."""
    return assemble_programme([("", speech)], profile, same_header)


def assemble_programme(
    speeches: Sequence[tuple[str, SpeechResult]],
    profile: ChannelProfile,
    same_header: str | None = None,
) -> AssembledAudio:
    """One message in several languages (``(language, speech)`` in the order to play): one
    attention signal, then each language's part; normalised and framed as ``assemble``."""
    if not speeches:
        raise AudioConfigError("a programme needs at least one language")
    return ProgrammeStream(profile, same_header).finish(speeches)


class ProgrammeStream:
    """A message laid out in playing order, each piece handed to ``sink`` as soon as it is
    made: the opening (SAME header, attention signal and its pause) at once, since it does
    not depend on the speech; the speech parts when ``finish`` gets them."""

    def __init__(
        self,
        profile: ChannelProfile,
        same_header: str | None = None,
        sink: Callable[[Samples], None] | None = None,
    ) -> None:
        self.profile = profile
        self._with_same = profile.same and same_header is not None
        self._line = _Timeline(sink)
        self._peaks: list[float] = []
        attention = (
            AttentionConfig(AttentionKind.TWO_TONE, SAME_ATTENTION_S)
            if self._with_same
            else profile.attention
        )
        if self._with_same and same_header is not None:
            header, header_peak = _at_loudness(header_bursts(same_header), profile.loudness)
            self._line.add("same-header", header)
            self._peaks.append(header_peak)
        tone, tone_peak, tone_weighted = _fixed_at_loudness(attention, profile.loudness)
        self._weighted = {id(tone): tone_weighted}
        self._peaks.append(tone_peak)
        if len(tone):
            self._line.add("attention", tone)
            self._line.add(None, silence(profile.pause_s))

    @property
    def length(self) -> int:
        """Samples laid out so far."""
        return self._line.length

    def finish(self, speeches: Sequence[tuple[str, SpeechResult]]) -> AssembledAudio:
        """Normalise and lay out the spoken parts (and the SAME end of message)."""
        if not speeches:
            raise AudioConfigError("a programme needs at least one language")
        profile, line = self.profile, self._line
        parts = [_normalised_parts(speech, language, profile) for language, speech in speeches]
        peaks = [*self._peaks, *(p.true_peak_dbtp for p in parts)]
        for index, part in enumerate(parts):
            if index:
                line.add(None, silence(profile.pause_s))
            _lay_out(line, part, profile)
        if self._with_same:
            eom, eom_peak, eom_weighted = _fixed_at_loudness(None, profile.loudness)
            self._weighted[id(eom)] = eom_weighted
            line.add("same-eom", eom)
            peaks.append(eom_peak)
        full = line.samples()
        loudness = laid_out_loudness(line.parts, self._weighted)
        report = LoudnessReport(loudness, max(peaks), parts[0].speech_gain_db)
        return AssembledAudio(full, tuple(line.spans), report)
