"""The one exception tree of the audio package, split by phase and by whether a retry helps.

::

    AudioError
    ├── AudioConfigError (ValueError)      bad configuration or request; names the field
    ├── SpeechTextError (ValueError)       the text to speak is empty or unusable
    ├── SameHeaderError (ValueError)       a SAME header that 47 CFR §11.31 does not allow
    ├── ClipLibraryError                   the clip manifest or a clip file is unusable
    │   └── ClipIntegrityError             a clip's SHA-256 differs from its manifest
    ├── EngineError                        one speech engine could not produce audio
    │   ├── EngineUnavailableError         not installed, not configured, language unsupported
    │   ├── EngineFailedError              it ran and failed (network refused, bad output)
    │   └── EngineTimeoutError (TimeoutError)  it did not finish within its timeout
    ├── NoSpeechError                      every engine and the clip library failed
    │   └── NoVoiceError (ValueError)      no language of a programme can be voiced at all
    ├── AudioFormatError (ValueError)      bytes that are not the audio format expected
    ├── AudioToolError                     ffmpeg (or another subprocess) failed or is missing
    └── RenderCacheError                   the render cache directory is unusable

The speech chain catches ``EngineError`` and moves to the next rung; everything else reaches
the caller, with the foreign cause chained through ``raise ... from``.
"""

from __future__ import annotations

from typing import Any


class AudioError(Exception):
    """Base of every error the audio package raises on purpose."""


class AudioConfigError(AudioError, ValueError):
    """A configuration value or request field is invalid; the message names it."""


class SpeechTextError(AudioError, ValueError):
    """The speech text is empty or cannot be spoken."""


class SameHeaderError(AudioError, ValueError):
    """A SAME header does not follow the 47 CFR §11.31 layout."""


class ClipLibraryError(AudioError):
    """The clip library manifest is missing or invalid, or a clip cannot be found."""


class ClipIntegrityError(ClipLibraryError):
    """A clip file's SHA-256 does not match the one in the manifest."""


class EngineError(AudioError):
    """A speech engine could not produce audio; the chain tries the next engine."""


class EngineUnavailableError(EngineError):
    """The engine is not installed or configured, or cannot speak the language."""


class EngineFailedError(EngineError):
    """The engine ran and failed: refused connection, error exit, unusable output."""


class EngineTimeoutError(EngineError, TimeoutError):
    """The engine did not finish within its configured timeout."""


class NoSpeechError(AudioError):
    """No engine and no stored clip could speak the warning."""


class NoVoiceError(NoSpeechError, ValueError):
    """Not one language of a programme has a template, voice, clip or recording: supplying
    one is the only remedy, so retrying does not help. ``unspoken`` names each language and
    why (``audio.render.UnspokenLanguage``)."""

    def __init__(self, message: str, unspoken: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.unspoken = unspoken


class AudioFormatError(AudioError, ValueError):
    """Bytes are not the audio format expected (for example not 16-bit PCM WAV)."""


class AudioToolError(AudioError):
    """An audio subprocess (ffmpeg) is missing or failed."""


class RenderCacheError(AudioError):
    """The render cache cannot be read or written."""
