"""Sealed audio retained on MQTT (docs/protocols/speaker.md, sections 4.3 and 5.1).

A sealed ``play_url`` may name an ``audio_topic``. The server then publishes, retained and at
QoS 1, the audio once under ``<audio_topic>/media`` and, for each ``to`` its commands went to,
a seal note under ``<audio_topic>/seal/<to>``: the canonical JSON object ``{"seal": ...,
"sha256": ..., "speech_start_ms": ...}`` (no ``speech_start_ms`` when the audio has none),
whose seal is the one the HTTP answer would carry (:mod:`drivers.speaker.seal`), or the plain
``unavailable`` when the server has nothing to retain there (the render failed): the box then
asks the URL. A box on MQTT subscribes to both topics, plays the media only when a media
message and a seal note verify together (:func:`check_topic_audio`, the checks of an HTTP
answer), and asks the URL when they do not in time. The broker, not the server, sends each
box its copy, so a fan-out costs the server one publish of the audio.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from drivers.speaker.codec import MAX_SPEECH_START_MS, SHA256_PATTERN
from drivers.speaker.errors import MediaIntegrityError
from drivers.speaker.seal import seal_matches
from drivers.speaker.sealed_audio import CommandTarget, SealedAudio

UNAVAILABLE = b"unavailable"
"""A seal note saying the audio is not retained: the box asks the command's URL."""
MAX_NOTE_BYTES = 512
"""The longest seal note a box reads."""


def media_topic(audio_topic: str) -> str:
    """Where the audio itself is retained."""
    return f"{audio_topic}/media"


def seal_topic(audio_topic: str, target: str) -> str:
    """Where the seal note for commands to ``target`` (``box:<id>``, ``area:<code>``) is
    retained."""
    return f"{audio_topic}/seal/{target}"


@dataclass(frozen=True, slots=True)
class SealNote:
    """A seal note: the audio's SHA-256, where its speech starts and its seal."""

    sha256: str
    speech_start_ms: int | None
    seal: str


def encode_seal_note(note: SealNote) -> bytes:
    """A seal note's payload: canonical JSON (members sorted, no whitespace)."""
    obj: dict[str, object] = {"seal": note.seal, "sha256": note.sha256}
    if note.speech_start_ms is not None:
        obj["speech_start_ms"] = note.speech_start_ms
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def parse_seal_note(payload: bytes) -> SealNote | None:
    """The seal note in ``payload``; None for :data:`UNAVAILABLE`; raises
    MediaIntegrityError when it is neither."""
    if payload == UNAVAILABLE:
        return None
    if len(payload) > MAX_NOTE_BYTES:
        raise MediaIntegrityError(f"a seal note of {len(payload)} bytes, over {MAX_NOTE_BYTES}")
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise MediaIntegrityError("a seal note that is not JSON") from exc
    if not isinstance(obj, dict) or not set(obj) <= {"seal", "sha256", "speech_start_ms"}:
        raise MediaIntegrityError("a seal note must hold seal, sha256 and speech_start_ms only")
    sha256, seal, start = obj.get("sha256"), obj.get("seal"), obj.get("speech_start_ms")
    if not all(isinstance(v, str) and SHA256_PATTERN.fullmatch(v) for v in (sha256, seal)):
        raise MediaIntegrityError("a seal note needs sha256 and seal of 64 lower-case hex digits")
    if start is not None and (
        not isinstance(start, int)
        or isinstance(start, bool)
        or not 0 <= start <= MAX_SPEECH_START_MS
    ):
        raise MediaIntegrityError(f"a seal note's speech_start_ms must be 0..{MAX_SPEECH_START_MS}")
    return SealNote(str(sha256), start, str(seal))


def check_topic_audio(url: str, to: CommandTarget, note: SealNote, media: bytes) -> SealedAudio:
    """What retained ``media`` with its seal ``note`` says, for a command to ``to`` naming
    ``url``; raises MediaIntegrityError unless the media hashes to the note's SHA-256 and the
    seal matches under the key of ``to``."""
    if hashlib.sha256(media).hexdigest() != note.sha256:
        raise MediaIntegrityError(f"the retained audio of {url} does not match its seal note")
    if not seal_matches(to.key, url, to.target, note.sha256, note.speech_start_ms, note.seal):
        raise MediaIntegrityError(
            f"the retained seal of {url} does not match the key of {to.target}"
        )
    return SealedAudio(note.sha256, note.speech_start_ms)
