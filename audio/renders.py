"""What a finished render is (``Render``, ``UnspokenLanguage``) and how one is read back from the
metadata a render cache entry keeps beside its files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio.assembly import SegmentSpan
from audio.chain import EngineAttempt
from audio.errors import RenderCacheError
from audio.export import ExportFormat


@dataclass(frozen=True)
class UnspokenLanguage:
    """A language of a programme that nothing could voice, and why."""

    language: str
    reason: str


@dataclass(frozen=True)
class Render:
    """A finished render for one channel profile: ``languages`` spoken in order, ``unspoken``
    those left out."""

    key: str
    profile: str
    files: dict[ExportFormat, Path]
    duration_s: float
    loudness_lufs: float
    true_peak_dbtp: float
    engine: str
    fallback: bool
    attempts: tuple[EngineAttempt, ...]
    marker: str | None
    segments: tuple[SegmentSpan, ...]
    sha256: dict[ExportFormat, str]
    cached: bool = False
    languages: tuple[str, ...] = ()
    unspoken: tuple[UnspokenLanguage, ...] = ()
    first_audio_s: float | None = None
    """For a streamed (one-format) render: when its first second went to the encoder, and
    when its first speech did (synthesised and normalised), from the start."""
    speech_audio_s: float | None = None

    @property
    def has_marker(self) -> bool:
        """Whether the spoken test/exercise marker is in the audio."""
        return self.marker is not None


def digest(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_present(directory: Path, meta: dict[str, Any]) -> bool:
    """Whether every file a render's metadata names is in ``directory``."""
    files = meta.get("files")
    return isinstance(files, dict) and all((directory / str(n)).is_file() for n in files.values())


def render_from_meta(key: str, directory: Path, meta: dict[str, Any], cached: bool) -> Render:
    """The ``Render`` a cache entry's metadata describes; raises RenderCacheError if damaged."""
    try:
        return Render(
            key=key,
            profile=str(meta["profile"]),
            files={ExportFormat(f): directory / str(n) for f, n in meta["files"].items()},
            duration_s=float(meta["duration_s"]),
            loudness_lufs=float(meta["loudness_lufs"]),
            true_peak_dbtp=float(meta["true_peak_dbtp"]),
            engine=str(meta["engine"]),
            fallback=bool(meta["fallback"]),
            attempts=tuple(EngineAttempt(**a) for a in meta["attempts"]),
            marker=meta["marker"],
            segments=tuple(SegmentSpan(**s) for s in meta["segments"]),
            sha256={ExportFormat(f): str(d) for f, d in meta["sha256"].items()},
            cached=cached,
            languages=tuple(str(lang) for lang in meta.get("languages", ())),
            unspoken=tuple(UnspokenLanguage(**u) for u in meta.get("unspoken", ())),
            first_audio_s=meta.get("first_audio_s"),
            speech_audio_s=meta.get("speech_audio_s"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RenderCacheError(f"render metadata in {directory} is damaged: {exc}") from exc
