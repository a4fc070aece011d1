"""A box's sealed audio retained on MQTT (docs/protocols/speaker.md, sections 4.3 and 5.1).

A sealed ``play_url`` may name an ``audio_topic``: the server retains the audio there
(:func:`~drivers.speaker.audio_topics.media_topic`) and a seal note for each ``to``
(:func:`~drivers.speaker.audio_topics.seal_topic`). :class:`TopicAudio` serves a box's MQTT
uplink as the fetcher's :class:`~drivers.speaker.store.AudioTopicSource`: each wait subscribes
(QoS 0, one SUBSCRIBE) to both topics on the box's own session, keeps the newest media and
the newest seal note (subscribing again, after 2, 6 and 14 s, to a topic it has had nothing
on), and ends as soon as a pair verifies
(:func:`~drivers.speaker.audio_topics.check_topic_audio`); a pair that does not is not
played, and the wait goes on for newer messages. It ends with nothing, and the box asks the
URL, on ``unavailable``, on a malformed note, when the session is lost and when its time is
spent. A fetch that comes before the box's first session is up (a box resuming its commands
at start) waits for that session, within its time, rather than asking the URL at once: after
a power cut every box of a county would otherwise download from the server. Media larger than
the download limit is refused. A wait unsubscribes when it ends;
the subscriptions a lost session kept (it is persistent) are dropped once the next session
is attached, and messages on them meanwhile are ignored, never taken for commands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from drivers.mqtt import MqttClient, MqttError
from drivers.speaker.audio_topics import (
    SealNote,
    check_topic_audio,
    media_topic,
    parse_seal_note,
    seal_topic,
)
from drivers.speaker.errors import MediaIntegrityError
from drivers.speaker.sealed_audio import CommandTarget, SealedAudio
from drivers.speaker.store import MAX_DOWNLOAD_BYTES

log = logging.getLogger(__name__)

AUDIO_QOS = 0
"""The QoS of a box's audio subscriptions: a retained message reaches a subscriber on its
connection, and one lost with the connection ends the wait (the box asks the URL), so the
broker keeps no message in flight per box, and a cluster such as NATS no consumer."""
ASK_AGAIN_S = (2.0, 4.0, 8.0)
"""The pauses after which a wait subscribes again to the topics it has had nothing on."""

MAX_PACKET_BYTES = MAX_DOWNLOAD_BYTES + (1 << 17)
"""The largest MQTT packet a box's session reads: audio of the download limit with room for
the longest topic name and the headers, so that larger audio is refused, not fatal."""


class AudioWait:
    """One fetch's wait: the newest media and seal note on its two topics, the media bytes
    that came (``received``) and why it ended without a verified pair (None while it has
    not). The lean fleet's boxes wait with it too (:mod:`drivers.speaker.lean_topic_audio`)."""

    __slots__ = (
        "changed",
        "ended",
        "max_bytes",
        "media",
        "media_topic",
        "note",
        "received",
        "seal_topic",
    )

    def __init__(self, audio_topic: str, target: str, max_bytes: int) -> None:
        self.media_topic = media_topic(audio_topic)
        self.seal_topic = seal_topic(audio_topic, target)
        self.max_bytes = max_bytes
        self.media: bytes | None = None
        self.note: SealNote | None = None
        self.ended: str | None = None
        self.received = 0
        self.changed = asyncio.Event()

    def offer(self, topic: str, payload: bytes) -> None:
        """A message on one of the wait's topics."""
        if topic == self.media_topic:
            self.received += len(payload)
            if len(payload) > self.max_bytes:
                log.warning(
                    "audio on %s refused: %d bytes, over %d", topic, len(payload), self.max_bytes
                )
                return
            self.media = payload
        else:
            try:
                note = parse_seal_note(payload)
            except MediaIntegrityError as exc:
                self.end(f"its seal note is malformed ({exc})")
                return
            if note is None:
                self.end("it is unavailable there")
                return
            self.note = note
        self.changed.set()

    def missing(self) -> list[str]:
        """The topics the wait has had nothing on yet."""
        topics = [self.media_topic] if self.media is None else []
        return topics + ([self.seal_topic] if self.note is None else [])

    def end(self, why: str) -> None:
        """Give up: the fetch asks the URL."""
        if self.ended is None:
            self.ended = why
        self.changed.set()

    async def verified(
        self, url: str, to: CommandTarget, in_thread: bool = True
    ) -> tuple[SealedAudio, bytes] | None:
        """The first pair of media and note that verifies, with what the note says; None once
        the wait ended without one. ``in_thread``: hash the media off the event loop."""
        while True:
            await self.changed.wait()
            self.changed.clear()
            if self.ended is not None:
                log.info("retained audio of %s for %s: %s", url, to.target, self.ended)
                return None
            note, media = self.note, self.media
            if note is None or media is None:
                continue
            try:
                if in_thread:
                    sealed = await asyncio.to_thread(check_topic_audio, url, to, note, media)
                else:
                    sealed = check_topic_audio(url, to, note, media)
            except MediaIntegrityError as exc:
                log.warning("retained audio not played, waiting for newer: %s", exc)
                continue
            return sealed, media


class TopicAudio:
    """The audio topics of one box's MQTT sessions: the uplink ``attach``-es each session once
    it is connected, ``detach``-es it when it ends, and hands every incoming message to
    ``route`` first; the fetcher ``take``-s retained audio."""

    def __init__(self) -> None:
        self._client: MqttClient | None = None
        self._waits: dict[str, list[AudioWait]] = {}
        self._dropping: set[str] = set()
        """Topics no wait holds that a session may still be subscribed to."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._first_session = asyncio.Event()
        """Set once a session has been attached: until then a fetch waits for one."""

    def attach(self, client: MqttClient) -> None:
        """A session is connected: waits subscribe on it, and it drops the audio topics an
        earlier session may have kept."""
        self._client = client
        self._first_session.set()
        stale = sorted(self._dropping - self._waits.keys())
        if stale:
            self._spawn(self._unsubscribe(client, stale))

    async def detach(self) -> None:
        """The session ended: every wait gives up (its fetch asks the URL)."""
        self._client = None
        for waits in self._waits.values():
            for wait in waits:
                wait.end("the MQTT session was lost")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def route(self, topic: str, payload: bytes) -> bool:
        """Whether a message is on an audio topic (handed to its waits, or ignored when none
        waits on it any longer) rather than a command."""
        waits = self._waits.get(topic)
        if waits is None:
            return topic in self._dropping
        for wait in waits:
            wait.offer(topic, payload)
        return True

    async def take(
        self, audio_topic: str, url: str, to: CommandTarget, within_s: float, max_bytes: int
    ) -> tuple[SealedAudio, bytes] | None:
        """The audio retained under ``audio_topic`` and what its seal note for ``to`` says,
        once they verify for ``url`` within ``within_s``; None when the box is to ask the URL
        instead (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        if not self._first_session.is_set():
            try:
                async with asyncio.timeout(within_s):
                    await self._first_session.wait()
            except TimeoutError:
                log.info(
                    "no MQTT session within %g s to take the retained audio of %s", within_s, url
                )
                return None
            within_s = deadline - loop.time()
        client = self._client
        if client is None or not client.is_connected:
            log.info("no MQTT session to take the retained audio of %s from", url)
            return None
        wait = AudioWait(audio_topic, to.target, max_bytes)
        topics = (wait.media_topic, wait.seal_topic)
        for topic in topics:
            self._waits.setdefault(topic, []).append(wait)
        try:
            async with asyncio.timeout(within_s):
                await client.subscribe([(topic, AUDIO_QOS) for topic in topics])
                return await self._verified(client, wait, url, to)
        except TimeoutError:
            log.info("no verified retained audio of %s within %g s", url, within_s)
        except MqttError as exc:
            log.info("cannot take the retained audio of %s: %s", url, exc)
        finally:
            self._release(client, wait, topics)
        return None

    @staticmethod
    async def _verified(
        client: MqttClient, wait: AudioWait, url: str, to: CommandTarget
    ) -> tuple[SealedAudio, bytes] | None:
        """``wait``'s verified pair; meanwhile, after each of :data:`ASK_AGAIN_S`, subscribes
        again to a topic it has had nothing on, so that the broker sends its retained message
        again (MQTT 3.1.1 section 3.8.4): a cluster may miss one published while the first
        subscription was being set up."""
        verifying = asyncio.ensure_future(wait.verified(url, to))
        try:
            for pause in (*ASK_AGAIN_S, None):
                done, _ = await asyncio.wait({verifying}, timeout=pause)
                if done:
                    return verifying.result()
                missing = wait.missing()
                if missing:
                    await client.subscribe([(topic, AUDIO_QOS) for topic in missing])
            return None
        finally:
            verifying.cancel()

    def _release(self, client: MqttClient, wait: AudioWait, topics: tuple[str, str]) -> None:
        """Forget an ended wait; unsubscribe from the topics no other wait holds."""
        gone = []
        for topic in topics:
            waits = self._waits[topic]
            waits.remove(wait)
            if not waits:
                del self._waits[topic]
                gone.append(topic)
        self._dropping.update(gone)
        if gone and client is self._client and client.is_connected:
            self._spawn(self._unsubscribe(client, gone))

    async def _unsubscribe(self, client: MqttClient, topics: list[str]) -> None:
        try:
            await client.unsubscribe(topics)
        except MqttError as exc:
            log.info("audio topics stay subscribed until the next session: %s", exc)
            return
        self._dropping.difference_update(topics)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
