"""Which topics the hub's MQTT session hands to the hub (docs/protocols/speaker.md section
4.3): a box's ``up`` and ``presence`` under the prefix, with a well-formed box id; anything
else a broker delivers on the wildcard subscriptions is dropped, however often it comes."""

from __future__ import annotations

import asyncio

from drivers.mqtt import MqttClient
from drivers.speaker.hub_mqtt import MqttHubLink
from drivers.speaker.testing import MosquittoBroker
from drivers.speaker.topics import SpeakerTopics


class RecordingSink:
    """A LinkSink that notes what the link hands over."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes | bool]] = []
        self.replayed: list[bool] = []

    def authenticate(self, hello: bytes) -> str:
        raise AssertionError("MQTT boxes do not send a TCP hello")

    def receive(self, box_id: str, data: bytes, transport: str, replayed: bool = False) -> None:
        self.calls.append(("receive", box_id, data))
        self.replayed.append(replayed)

    def presence(self, box_id: str, online: bool, transport: str) -> None:
        self.calls.append(("presence", box_id, online))

    def link_lost(self, transport: str) -> None:
        self.calls.append(("lost", transport, False))


async def test_only_box_topics_with_a_well_formed_id_reach_the_hub(
    mosquitto: MosquittoBroker,
) -> None:
    sink = RecordingSink()
    topics = SpeakerTopics("test/speaker")
    link = MqttHubLink(sink, mosquitto.host, mosquitto.port, topics, "hub-topics")
    await link.start()
    sender = MqttClient(mosquitto.host, mosquitto.port, "box-sender")
    await sender.connect()
    try:
        sent = [
            ("test/speaker/box/box-1/up", b"ack 1"),
            ("test/speaker/box/bad id!/up", b"bad id"),
            ("test/speaker/box/box-1/cmd", b"a command, not for the hub"),
            ("test/speaker/box/box-1/up/extra", b"one level too many"),
            ("test/speaker/box/box-2/presence", b"offline"),
            ("test/speaker/box/box-2/presence", b"signed hello"),
            ("test/speaker/box//up", b"empty id"),
            ("test/speaker/box/" + "x" * 129 + "/up", b"id too long"),
            ("test/speaker/box/bad id!/up", b"bad id again"),
            ("test/speaker/box/box-1/up", b"ack 2"),
        ]
        for topic, payload in sent:
            await sender.publish(topic, payload, qos=1)
        async with asyncio.timeout(5):
            while len(sink.calls) < 4:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # nothing else follows
    finally:
        await sender.disconnect()
        await link.stop()
    assert sink.calls == [
        ("receive", "box-1", b"ack 1"),
        ("presence", "box-2", False),
        ("receive", "box-2", b"signed hello"),
        ("receive", "box-1", b"ack 2"),
        ("lost", "mqtt", False),  # the session ended with stop()
    ]


async def test_a_retained_hello_read_again_is_told_from_one_the_box_just_sent(
    mosquitto: MosquittoBroker,
) -> None:
    """MQTT 3.1.1 section 3.3.1.3: a retained message sent to a new subscription carries
    RETAIN, one published while the hub is subscribed does not."""
    sink = RecordingSink()
    topics = SpeakerTopics("test/speaker")
    box = MqttClient(mosquitto.host, mosquitto.port, "box-replay")
    await box.connect()
    await box.publish("test/speaker/box/box-1/presence", b"hello before", qos=1, retain=True)
    link = MqttHubLink(sink, mosquitto.host, mosquitto.port, topics, "hub-replay")
    await link.start()
    try:
        async with asyncio.timeout(5):
            while not sink.calls:
                await asyncio.sleep(0.01)
        await box.publish("test/speaker/box/box-1/presence", b"hello after", qos=1, retain=True)
        async with asyncio.timeout(5):
            while len(sink.calls) < 2:
                await asyncio.sleep(0.01)
    finally:
        await box.disconnect()
        await link.stop()
    assert sink.calls[:2] == [
        ("receive", "box-1", b"hello before"),
        ("receive", "box-1", b"hello after"),
    ]
    assert sink.replayed == [True, False]
