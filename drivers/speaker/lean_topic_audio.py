"""A lean box's sealed audio retained on MQTT (docs/protocols/speaker.md, sections 4.3 and
5.1): what :mod:`drivers.speaker.topic_audio` does for a full box, on the lean box's own
connection (:mod:`drivers.speaker.simulator_lean`) with the packets of
:mod:`drivers.mqtt.packets`.

A wait sends one SUBSCRIBE (QoS 0, as a full box's) for the media and seal note topics of a
command's ``audio_topic``, keeps the newest of each that the broker sends (retained or live),
ends at the first pair that verifies
(:func:`~drivers.speaker.audio_topics.check_topic_audio`, on the event loop, as the lean
download checks its answer) and sends UNSUBSCRIBE. It ends with nothing on ``unavailable``,
a malformed note, the connection lost, or its time spent: the box then downloads. A wait
runs in the fetch that awaits it, with no task or timer of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from drivers.mqtt.packets import Subscribe, Unsubscribe
from drivers.speaker.lean_download import MAX_BYTES
from drivers.speaker.sealed_audio import CommandTarget, SealedAudio
from drivers.speaker.topic_audio import AUDIO_QOS, AudioWait

MAX_PACKET_BYTES = MAX_BYTES + (1 << 17)
"""The largest MQTT packet a lean box reads: audio of its download limit with room for the
longest topic name and the headers, so that larger audio is refused, not fatal."""


class LeanAudioTopics:
    """The audio topics of one lean box's MQTT connection: ``write`` sends a packet on it,
    ``packet_id`` numbers the next one; the connection hands every message to ``route``
    first and says ``close`` when it is lost."""

    __slots__ = ("_closed", "_packet_id", "_waits", "_write")

    def __init__(self, write: Callable[[bytes], None], packet_id: Callable[[], int]) -> None:
        self._write = write
        self._packet_id = packet_id
        self._waits: dict[str, list[AudioWait]] | None = None
        self._closed = False

    def route(self, topic: str, payload: bytes) -> bool:
        """Whether a message is on an audio topic of this connection (handed to the waits on
        it, none once they ended) rather than a command."""
        waits = self._waits.get(topic) if self._waits else None
        if waits is None:
            return False
        for wait in waits:
            wait.offer(topic, payload)
        return True

    def close(self) -> None:
        """The connection is lost: every wait gives up."""
        self._closed = True
        for waits in (self._waits or {}).values():
            for wait in waits:
                wait.end("the MQTT connection was lost")

    async def take(
        self, audio_topic: str, url: str, to: CommandTarget, within_s: float
    ) -> tuple[SealedAudio | None, int]:
        """What the seal note for ``to`` says of the audio retained under ``audio_topic``,
        once they verify for ``url`` within ``within_s`` (None: the box downloads), and the
        media bytes received meanwhile; media over the download limit is refused."""
        if self._closed:
            return None, 0
        wait = AudioWait(audio_topic, to.target, MAX_BYTES)
        topics = (wait.media_topic, wait.seal_topic)
        waits = self._waits = self._waits or {}
        for topic in topics:
            waits.setdefault(topic, []).append(wait)
        subscribe = Subscribe(self._packet_id(), tuple((topic, AUDIO_QOS) for topic in topics))
        self._write(subscribe.encode())
        taken = None
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    taken = await wait.verified(url, to, in_thread=False)
        finally:
            gone = []
            for topic in topics:
                waits[topic].remove(wait)
                if not waits[topic]:  # kept: a message still on its way is no command
                    gone.append(topic)
            if gone and not self._closed:
                self._write(Unsubscribe(self._packet_id(), tuple(gone)).encode())
        return (None if taken is None else taken[0]), wait.received
