"""A stand-in for the server of sealed audio retained on MQTT (docs/protocols/speaker.md,
sections 4.3 and 5.1): a plain ``MqttClient`` that publishes, retained at QoS 1, the audio and
the seal notes of an ``audio_topic``, sends signed commands to box and area topics, and reads
the boxes' acknowledgements. The rig of the retained audio tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

from drivers.mqtt import MqttClient
from drivers.mqtt.testing import MosquittoBroker
from drivers.speaker.audio_topics import SealNote, encode_seal_note, media_topic, seal_topic
from drivers.speaker.codec import decode_box_message, encode_command
from drivers.speaker.messages import AckStage, BoxAck, PlayUrl
from drivers.speaker.seal import seal
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.topics import OFFLINE, SpeakerTopics

TOPICS = SpeakerTopics()


def seal_note(
    url: str, to: CommandTarget, media: bytes, speech_start_ms: int | None = None
) -> bytes:
    """The seal note a server retains for ``media`` of ``url`` sent to ``to``."""
    sha256 = hashlib.sha256(media).hexdigest()
    sealed = seal(to.key, url, to.target, sha256, speech_start_ms)
    return encode_seal_note(SealNote(sha256, speech_start_ms, sealed))


class ServerStandIn:
    """Publishes what a server publishes for retained audio and collects the acks of the
    boxes whose keys ``box_keys`` holds, and which boxes are ``present`` (a box publishes its
    presence once it has subscribed to its command topics)."""

    def __init__(self, broker: MosquittoBroker, box_keys: Mapping[str, bytes]) -> None:
        self._keys = dict(box_keys)
        self.client = MqttClient(
            broker.host, broker.port, "server-stand-in", on_message=self._on_message
        )
        self.acks: list[BoxAck] = []
        self.present: set[str] = set()
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Self:
        await self.client.connect()
        await self.client.subscribe([(TOPICS.box_messages("+"), 1), (TOPICS.presence("+"), 1)])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.client.is_connected:
            await self.client.disconnect()
        self.client.abort()

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        if topic.endswith("/presence"):
            box_id = topic.split("/")[-2]
            if payload == OFFLINE:
                self.present.discard(box_id)
            else:
                self.present.add(box_id)
        else:
            message = decode_box_message(payload, self._keys.get)
            if isinstance(message, BoxAck):
                self.acks.append(message)
        self._changed.set()

    async def retain_media(self, audio_topic: str, media: bytes, retain: bool = True) -> None:
        await self.client.publish(media_topic(audio_topic), media, qos=1, retain=retain)

    async def retain_note(self, audio_topic: str, target: str, note: bytes) -> None:
        await self.client.publish(seal_topic(audio_topic, target), note, qos=1, retain=True)

    async def send(self, command: PlayUrl, to: CommandTarget, box_id: str | None = None) -> None:
        """Sign ``command`` for ``to`` and publish it to the box's topic (``box_id``) or to
        the area's."""
        if box_id is not None:
            topic = TOPICS.box_commands(box_id)
        else:
            topic = TOPICS.area_commands(to.target.removeprefix("area:"))
        await self.client.publish(topic, encode_command(command, to.target, to.key), qos=1)

    def said(
        self, cmd_id: str, box_id: str | None = None
    ) -> list[tuple[AckStage, str | None, str | None]]:
        """The stage, reason and source of each ack of ``cmd_id`` (from ``box_id``)."""
        return [
            (a.stage, a.reason, a.source)
            for a in self.acks
            if a.cmd_id == cmd_id and box_id in (None, a.box_id)
        ]

    async def wait_for(self, predicate: Callable[[], bool], within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_settled(self, cmd_id: str, boxes: int = 1, within_s: float = 10.0) -> None:
        """Wait until ``boxes`` boxes said ``finished`` or ``failed`` for ``cmd_id``."""
        final = (AckStage.FINISHED, AckStage.FAILED)

        def settled() -> bool:
            done = {a.box_id for a in self.acks if a.cmd_id == cmd_id and a.stage in final}
            return len(done) >= boxes

        await self.wait_for(settled, within_s)
