"""The seal on audio a ``play_url`` names without its SHA-256 (docs/protocols/speaker.md,
section 5.1).

A server may send a play command before its audio exists, so the box can start its stored
attention signal at once. Such a command carries no ``sha256``: the box asks for the URL with
the command's ``to`` in the request header :data:`TARGET_HEADER`, and the server answers, once
the audio is rendered, with the file, its SHA-256, where its speech starts, and a seal: the
HMAC-SHA256, under the key of that ``to`` (the key that signed the command), over
:func:`sealed_text`. The box plays the file only when its own SHA-256 of the body and the seal
both match; otherwise it falls back as for a hash mismatch.
"""

from __future__ import annotations

import hashlib
import hmac

TARGET_HEADER = "Broadcaster-To"
"""Request: the ``to`` of the command the box downloads for (``box:<id>`` or ``area:<code>``)."""
SHA256_HEADER = "Broadcaster-Audio-SHA256"
"""Answer: 64 lower-case hex digits, the SHA-256 of the body."""
SPEECH_START_HEADER = "Broadcaster-Speech-Start-Ms"
"""Answer, optional: where the speech starts after the audio's attention signal, in ms."""
SEAL_HEADER = "Broadcaster-Audio-Seal"
"""Answer: 64 lower-case hex digits, the HMAC-SHA256 of :func:`sealed_text`."""

_LABEL = "broadcaster-audio-seal/1"


def sealed_text(url: str, target: str, sha256: str, speech_start_ms: int | None) -> bytes:
    """What the seal covers: a label, the command's ``url`` and ``to``, the audio's SHA-256
    and its speech start (empty when it has none), one per line, in UTF-8. It never parses as
    a protocol message (those are JSON objects), so a seal can never stand for a signature."""
    start = "" if speech_start_ms is None else str(speech_start_ms)
    return f"{_LABEL}\n{url}\n{target}\n{sha256}\n{start}".encode()


def seal(key: bytes, url: str, target: str, sha256: str, speech_start_ms: int | None) -> str:
    """The seal a server sends with the audio at ``url`` for a command to ``target``."""
    text = sealed_text(url, target, sha256, speech_start_ms)
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def seal_matches(
    key: bytes, url: str, target: str, sha256: str, speech_start_ms: int | None, given: str
) -> bool:
    """Whether ``given`` is the seal of this audio, compared in constant time."""
    expected = seal(key, url, target, sha256, speech_start_ms)
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
