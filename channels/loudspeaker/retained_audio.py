"""Sealed audio retained on MQTT, the server's side (docs/protocols/speaker.md sections 4.3
and 5.1, "Sealed audio on MQTT"; the wire form is :mod:`drivers.speaker.audio_topics`).

When the channel has an MQTT link (and ``audio_over_mqtt``), each token the audio library
reserves gets an ``audio_topic``, ``<prefix>/audio/<token>``, that its sealed ``play_url``
commands name (:meth:`RetainedAudio.topic_for`). :class:`RetainedAudio` follows each token:

- the sender notes each ``to`` the token's commands go to over MQTT (:meth:`~RetainedAudio.note`:
  a set lookup per box; an area's command is one ``to`` however many boxes it reaches);
- once the render is published (:meth:`~RetainedAudio.follow`), the audio goes once to
  ``<audio_topic>/media`` (as soon as some ``to`` is noted: nothing is published for boxes
  on other transports), then a seal note per ``to`` to ``<audio_topic>/seal/<to>``: the
  seal the HTTP answer carries, under the key of that ``to``, over the command's URL; a ``to``
  noted later gets its note as its command goes;
- a render that fails, or audio that cannot be published, leaves ``unavailable`` on each seal
  topic, so the boxes ask the URL at once; a later render that succeeds replaces them;
- once the alert expires or is cancelled (:meth:`~RetainedAudio.end`), every topic of the
  token is cleared (an empty retained message, MQTT 3.1.1 section 3.3.1.3).

Everything is retained at QoS 1. Each token's publishes run one after another in a task of
its own, never in the fan-out; one the broker's connection fails is tried again once the link
is back (the audio a few times only, then its notes say ``unavailable``). Before a topic is
published, its ``to`` is appended to ``<token>.retained`` beside the audio (the alert's
expiry on the first line), so topics a server left behind when it stopped are cleared after
a restart (:meth:`~RetainedAudio.sweep`, at start and in the channel's housekeeping); the
note goes once its topics are cleared. Topics are built only from the link's prefix, the
library's own tokens and the ``to`` of the channel's own commands: nothing a box or another
client of the broker sends chooses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from channels.loudspeaker.media import PublishedAudio
from drivers.speaker import SpeakerConnectionError, SpeakerError, SpeakerHub, seal
from drivers.speaker.audio_topics import (
    UNAVAILABLE,
    SealNote,
    encode_seal_note,
    media_topic,
    seal_topic,
)
from drivers.speaker.codec import AREA_PATTERN, ID_PATTERN

log = logging.getLogger(__name__)

NOTE_SUFFIX = ".retained"
"""The note of a token's retained topics: ``<token>.retained`` beside the audio."""
AT_ONCE = 256
"""Topics published at once, each awaiting its PUBACK."""
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 5.0
"""A publish the broker's connection failed is tried again after 1 s, then twice as long
each time, at most 5 s."""
MEDIA_ATTEMPTS = 4
"""Tries of the audio itself: a broker that drops the connection over a message of its size
is not asked for ever (its seal notes then say ``unavailable``)."""
CLEAR_ATTEMPTS = 12
"""Tries of a clearing; what is still retained after them is cleared by a later sweep."""
_ENDED_KEPT = 256
"""Alerts remembered as cancelled, whose commands name no audio topic any more."""
_TOKEN = re.compile(r"[0-9a-f]{32}")
_TARGET = re.compile(rf"box:{ID_PATTERN.pattern}|area:{AREA_PATTERN.pattern}")


@dataclass(eq=False)
class _Token:
    """One token's audio topic: what its commands went to and what is retained of it."""

    token: str
    topic: str
    url: str
    """The URL the token's commands name, which each seal covers."""
    message_id: str
    expires_at: float
    targets: set[str] = field(default_factory=set)
    """Every ``to`` the token's commands went to over MQTT."""
    todo: set[str] = field(default_factory=set)
    """The ``to``s whose seal note is to be published (again)."""
    written: set[str] = field(default_factory=set)
    """The ``to``s in the token's note, whose topics are cleared at the end."""
    recorded: bool = False
    """Whether the note exists (something may be retained)."""
    audio: PublishedAudio | None = None
    sent: str | None = None
    """The SHA-256 of the audio last published to the media topic."""
    unavailable: bool = False
    over: bool = False
    worker: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None


class RetainedAudio:
    """Follows the tokens whose audio is retained on MQTT; see the module docstring."""

    def __init__(
        self, directory: Path, audio_format: str, key_for: Callable[[str], bytes | None]
    ) -> None:
        self._directory = directory
        self._format = audio_format
        self._key_for = key_for
        self._hub: SpeakerHub | None = None
        self._active = False
        self._states: dict[str, _Token] = {}
        self._of_message: dict[str, set[str]] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._sweeping: asyncio.Task[None] | None = None

    def start(self, hub: SpeakerHub, active: bool) -> None:
        """Retain through ``hub`` when it has an MQTT link (``active``: commands name audio
        topics), and clear in the background what a server before left retained."""
        self._hub = hub if hub.mqtt_topics is not None else None
        self._active = active and self._hub is not None
        if self._hub is not None:
            self._sweeping = asyncio.get_running_loop().create_task(self.sweep())

    async def stop(self) -> None:
        """Stop publishing; what is retained is cleared by the next start's sweep."""
        tasks = [s.worker for s in self._states.values() if s.worker is not None]
        tasks += [self._sweeping] if self._sweeping is not None else []
        for state in self._states.values():
            if state.timer is not None:
                state.timer.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._states.clear()
        self._of_message.clear()
        self._sweeping = None
        self._hub = None
        self._active = False

    def topic_for(self, url: str, message_id: str, expires_at: float) -> str | None:
        """The ``audio_topic`` of the audio the library reserved at ``url`` for the alert
        ``message_id``, retained until ``expires_at``; None when no audio is retained (no
        MQTT link, ``audio_over_mqtt`` off, the alert over)."""
        hub, token = self._hub, url.rsplit("/", 1)[-1]
        topics = hub.mqtt_topics if hub is not None else None
        if not self._active or topics is None or _TOKEN.fullmatch(token) is None:
            return None
        if message_id in self._ended or expires_at <= time.time():
            return None
        topic = topics.audio(token)
        state = self._states.get(topic)
        if state is None:
            state = self._states[topic] = _Token(token, topic, url, message_id, expires_at)
        elif state.over:
            return None
        elif state.url and expires_at <= state.expires_at:
            return topic
        state.url, state.message_id = url, message_id  # also of a token a stop left behind
        state.expires_at = max(state.expires_at, expires_at)
        self._of_message.setdefault(message_id, set()).add(topic)
        self._schedule(state)
        return topic

    def note(self, audio_topic: str | None, target: str) -> None:
        """A command naming ``audio_topic`` goes to ``target`` (its ``to``) over MQTT."""
        state = self._states.get(audio_topic) if audio_topic is not None else None
        if state is None or target in state.targets or state.over:
            return
        state.targets.add(target)
        if state.audio is not None or state.unavailable:
            state.todo.add(target)
            self._wake(state)

    async def follow(self, audio_topic: str, rendered: Awaitable[PublishedAudio]) -> PublishedAudio:
        """``rendered``, the publish of ``audio_topic``'s audio, and its outcome retained."""
        try:
            audio = await rendered
        except Exception:
            self._failed(audio_topic)
            raise
        state = self._states.get(audio_topic)
        if state is not None and not state.over and state.audio != audio:
            state.audio, state.unavailable = audio, False
            self._wake(state)
        return audio

    def _failed(self, audio_topic: str) -> None:
        """The render failed: the boxes are told to ask the URL (unless an earlier render of
        it was published, which the URL serves still)."""
        state = self._states.get(audio_topic)
        if state is None or state.over or state.audio is not None or state.unavailable:
            return
        state.unavailable = True
        state.todo |= state.targets
        self._wake(state)

    def end(self, message_id: str) -> None:
        """The alert ``message_id`` was cancelled: its topics are cleared."""
        self._ended[message_id] = None
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        for topic in self._of_message.pop(message_id, ()):
            state = self._states.get(topic)
            if state is not None:
                self._end(state)

    def _end(self, state: _Token) -> None:
        if state.timer is not None:
            state.timer.cancel()
        if not state.over:
            state.over = True
            self._wake(state)

    def _schedule(self, state: _Token) -> None:
        """End ``state`` when its alert expires."""
        if state.timer is not None:
            state.timer.cancel()
        delay = max(0.0, state.expires_at - time.time())
        state.timer = asyncio.get_running_loop().call_later(delay, self._end, state)

    def _wake(self, state: _Token) -> None:
        if state.worker is None or state.worker.done():
            state.worker = asyncio.get_running_loop().create_task(self._work(state))

    async def _work(self, state: _Token) -> None:
        try:
            while await self._step(state):
                pass
        except Exception:
            log.exception("retained audio %s: publishing failed", state.topic)

    async def _step(self, state: _Token) -> bool:
        """Publish what ``state`` wants next; False when nothing is left to do."""
        if state.over:
            await self._clear(state)
            return False
        audio = state.audio
        if audio is not None and state.sent != audio.sha256 and state.targets:
            state.sent = audio.sha256
            await self._record(state, ())
            state.unavailable = not await self._retain_media(state.topic, audio)
            state.todo |= state.targets
            return True
        batch = [state.todo.pop() for _ in range(min(AT_ONCE, len(state.todo)))]
        if not batch:
            return False
        await self._record(state, batch)
        notes = [(seal_topic(state.topic, t), self._note(state, t)) for t in batch]
        await asyncio.gather(*(self._retain(t, payload, None, state) for t, payload in notes))
        return True

    def _note(self, state: _Token, target: str) -> bytes:
        """The seal note for commands to ``target``: the HTTP answer's seal, or
        ``unavailable``."""
        audio, key = state.audio, self._key_for(target)
        if audio is None or state.unavailable or key is None:
            return UNAVAILABLE
        start = audio.speech_start_ms
        sealed = seal.seal(key, state.url, target, audio.sha256, start)
        return encode_seal_note(SealNote(audio.sha256, start, sealed))

    async def _retain_media(self, audio_topic: str, audio: PublishedAudio) -> bool:
        """Publish the audio's file to the media topic; whether the broker has it."""
        path = self._directory / f"{audio.sha256}.{self._format}"
        try:
            data = await asyncio.to_thread(_read_checked, path, audio.sha256)
        except OSError as exc:
            log.warning("retained audio %s: cannot read %s: %s", audio_topic, path.name, exc)
            return False
        return await self._retain(media_topic(audio_topic), data, MEDIA_ATTEMPTS)

    async def _retain(
        self, topic: str, payload: bytes, attempts: int | None, state: _Token | None = None
    ) -> bool:
        """Publish ``payload`` retained to ``topic``, again while the connection to the broker
        fails: at most ``attempts`` times, or (None) until ``state`` is over; whether the
        broker has it."""
        delay, tried = RETRY_FIRST_S, 0
        while (hub := self._hub) is not None:
            try:
                await hub.retain(topic, payload)
                return True
            except SpeakerConnectionError as exc:
                tried += 1
                if tried == attempts or (state is not None and state.over):
                    log.warning("cannot retain %s on the broker: %s", topic, exc)
                    return False
                if tried == 1:
                    log.warning("cannot retain %s on the broker now, trying again: %s", topic, exc)
            except SpeakerError as exc:
                log.warning("cannot retain %s on the broker: %s", topic, exc)
                return False
            await asyncio.sleep(delay)
            delay = min(2 * delay, RETRY_MAX_S)
        return False

    async def _record(self, state: _Token, targets: Iterable[str]) -> None:
        """Note ``targets`` (first the expiry) in the token's note before their topics are
        published, so a server started again clears them."""
        new = [target for target in targets if target not in state.written]
        if state.recorded and not new:
            return
        lines = new if state.recorded else [json.dumps({"expires_at": state.expires_at}), *new]
        state.recorded = True
        state.written.update(new)
        try:
            await asyncio.to_thread(_append, self._note_path(state.token), lines)
        except OSError as exc:
            log.warning("retained audio %s will stay after a restart: %s", state.topic, exc)

    async def _clear(self, state: _Token) -> None:
        """Clear every topic the token may have retained, then its note; forget it."""
        topics = [media_topic(state.topic)] if state.recorded else []
        topics += [seal_topic(state.topic, target) for target in sorted(state.written)]
        cleared = True
        for first in range(0, len(topics), AT_ONCE):
            chunk = topics[first : first + AT_ONCE]
            done = await asyncio.gather(*(self._retain(t, b"", CLEAR_ATTEMPTS) for t in chunk))
            cleared = cleared and all(done)
        if self._states.get(state.topic) is state:
            del self._states[state.topic]
        followed = self._of_message.get(state.message_id)
        if followed is not None:
            followed.discard(state.topic)
            if not followed:
                del self._of_message[state.message_id]
        if cleared and state.recorded:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self._note_path(state.token).unlink, missing_ok=True)

    def _note_path(self, token: str) -> Path:
        return self._directory / f"{token}{NOTE_SUFFIX}"

    async def sweep(self) -> None:
        """Follow again the tokens a server before left retained (their notes): those
        expired are cleared at once, the others when they expire."""
        hub = self._hub
        topics = hub.mqtt_topics if hub is not None else None
        if topics is None:
            return
        for token, expires_at, targets in await asyncio.to_thread(self._leftovers):
            topic = topics.audio(token)
            if topic not in self._states:
                state = _Token(token, topic, "", "", expires_at, written=set(targets))
                state.recorded = True
                self._states[topic] = state
                self._schedule(state)

    def _leftovers(self) -> list[tuple[str, float, list[str]]]:
        """Each token's note in the directory: its token, expiry and ``to``s."""
        found = []
        for path in self._directory.glob(f"*{NOTE_SUFFIX}"):
            token = path.name.removesuffix(NOTE_SUFFIX)
            try:
                first, *rest = path.read_text("utf-8").splitlines()
                expires_at = float(json.loads(first)["expires_at"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("%s cannot be read, its topics stay retained: %s", path, exc)
                continue
            if _TOKEN.fullmatch(token) is not None:
                found.append((token, expires_at, [t for t in rest if _TARGET.fullmatch(t)]))
        return found


def _read_checked(path: Path, sha256: str) -> bytes:
    """The file at ``path``; raises OSError unless it hashes to ``sha256``."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise OSError(f"{path.name} does not hash to its name")
    return data


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as note:
        note.write("".join(f"{line}\n" for line in lines))
