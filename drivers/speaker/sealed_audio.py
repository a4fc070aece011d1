"""The box's check of sealed audio (docs/protocols/speaker.md, section 5.1).

A ``play_url`` without ``sha256`` names audio the server may not have rendered yet. The box
asks for it with the command's ``to`` (``drivers.speaker.seal.TARGET_HEADER``) and accepts the
answer only when its headers are well formed, the body's own SHA-256 is the one the answer
names, and the seal over the URL, the target, that SHA-256 and the speech start matches under
the key that verified the command. :func:`check_sealed_answer` makes these checks;
``MediaFetcher.fetch_sealed`` downloads and caches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from multidict import MultiMapping

from drivers.speaker.codec import MAX_SPEECH_START_MS, SHA256_PATTERN
from drivers.speaker.errors import MediaIntegrityError
from drivers.speaker.seal import SEAL_HEADER, SHA256_HEADER, SPEECH_START_HEADER, seal_matches

_SPEECH_START_PATTERN = re.compile(r"0|[1-9][0-9]{0,4}")


@dataclass(frozen=True, slots=True)
class CommandTarget:
    """The ``to`` of a command and the key that verified it, with which its sealed audio is
    asked for and checked; the key never appears in repr."""

    target: str
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SealedAudio:
    """What a verified sealed answer says of its body."""

    sha256: str
    speech_start_ms: int | None


def check_sealed_answer(
    url: str, to: CommandTarget, headers: MultiMapping[str], body_sha256: str
) -> SealedAudio:
    """The SHA-256 and speech start of the answer to a sealed download of ``url`` for ``to``
    whose body hashes to ``body_sha256``; raises MediaIntegrityError unless every header is
    given once and well formed, the body matches its SHA-256 and the seal matches."""
    sha256 = _header(url, headers, SHA256_HEADER, SHA256_PATTERN)
    given = _header(url, headers, SEAL_HEADER, SHA256_PATTERN)
    start_text = _optional_header(url, headers, SPEECH_START_HEADER, _SPEECH_START_PATTERN)
    start = None if start_text is None else int(start_text)
    if start is not None and start > MAX_SPEECH_START_MS:
        raise MediaIntegrityError(
            f"{url}: {SPEECH_START_HEADER} {start} is beyond {MAX_SPEECH_START_MS}"
        )
    if body_sha256 != sha256:
        raise MediaIntegrityError(f"{url} does not match its {SHA256_HEADER} {sha256}")
    if not seal_matches(to.key, url, to.target, sha256, start, given):
        raise MediaIntegrityError(f"the seal of {url} does not match the key of {to.target}")
    return SealedAudio(sha256, start)


def _header(url: str, headers: MultiMapping[str], name: str, pattern: re.Pattern[str]) -> str:
    """The one value of header ``name``, which the answer must carry."""
    value = _optional_header(url, headers, name, pattern)
    if value is None:
        raise MediaIntegrityError(f"{url} came without the header {name}")
    return value


def _optional_header(
    url: str, headers: MultiMapping[str], name: str, pattern: re.Pattern[str]
) -> str | None:
    """The one value of header ``name``, None when it is absent."""
    values = headers.getall(name, [])
    if not values:
        return None
    if len(values) > 1 or not pattern.fullmatch(values[0]):
        shown = ", ".join(repr(value[:80]) for value in values)
        raise MediaIntegrityError(f"{url}: header {name} must be given once, well formed: {shown}")
    return values[0]
