"""The lean fleet takes the sealed audio a command retains under an ``audio_topic`` over its
own MQTT connections (docs/protocols/speaker.md, sections 4.3 and 5.1): a real Mosquitto, a
stand-in server publishing with a plain ``MqttClient``, and a real HTTP server on 127.0.0.1
counting the requests for the URL. A lean box plays retained audio only once it verifies,
asks the URL when it does not in time, on ``unavailable`` or when its connection is lost, and
on TCP always asks it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from drivers.mqtt.testing import MosquittoBroker
from drivers.speaker.audio_topics import UNAVAILABLE
from drivers.speaker.codec import (
    area_target,
    box_target,
    canonical_bytes,
    decode_command,
    encode_command,
    sign,
)
from drivers.speaker.errors import SpeakerProtocolError
from drivers.speaker.hub import BoxRegistration, SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.lean_codec import quick_command
from drivers.speaker.messages import AckStage, PlayUrl
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.simulator import area_key, box_key
from drivers.speaker.simulator_lean import LeanFleet, LeanFleetConfig
from drivers.speaker.store import TOPIC_WAIT_S
from drivers.speaker.testing import HubEventRecorder, SealedMediaServer, play_url_command
from tests.speaker.topic_rig import TOPICS, ServerStandIn, seal_note

SECRET = b"lean-topic-secret-0123456789abcdef"
AREA = "150902"
IDS = [f"sim-{n:05d}" for n in range(2)]
BOX_KEYS = {box_id: box_key(SECRET, box_id) for box_id in IDS}
KEYS = {box_target(b): key for b, key in BOX_KEYS.items()} | {
    area_target(AREA): area_key(SECRET, AREA)
}
AREA_TO = CommandTarget(area_target(AREA), KEYS[area_target(AREA)])
BOX_TO = CommandTarget(box_target(IDS[0]), KEYS[box_target(IDS[0])])
AUDIO = b"lean retained warning audio" * 400
TAMPERED = AUDIO[:-1] + b"!"
AUDIO_TOPIC = TOPICS.audio("lean-0123")
FINISHED = AckStage.FINISHED


@pytest.fixture
async def server() -> AsyncIterator[SealedMediaServer]:
    async with SealedMediaServer({"w.mp3": AUDIO}, KEYS, {"w.mp3": 3250}) as media:
        yield media


def sealed(url: str, cmd_id: str = "c1", audio_topic: str | None = AUDIO_TOPIC) -> PlayUrl:
    plain = play_url_command(cmd_id, "s,a", url, AUDIO)
    return replace(plain, sha256=None, audio_topic=audio_topic)


@asynccontextmanager
async def lean_fleet(
    broker: MosquittoBroker, stand_in: ServerStandIn, boxes: int, topic_wait_s: float
) -> AsyncIterator[LeanFleet]:
    """Lean boxes on ``broker`` fetching their audio, each subscribed to its commands."""
    link = f"mqtt://{broker.host}:{broker.port}"
    config = LeanFleetConfig(
        link, SECRET, boxes=boxes, areas=(AREA,), download=True, topic_wait_s=topic_wait_s
    )
    fleet = LeanFleet(config)
    await fleet.start()
    try:
        await stand_in.wait_for(lambda: stand_in.present >= set(IDS[:boxes]))
        yield fleet
    finally:
        fleet.close()


def sources(stand_in: ServerStandIn, cmd_id: str) -> dict[str, str | None]:
    """The ``source`` of each box's ``finished``, by box."""
    return {a.box_id: a.source for a in stand_in.acks if a.cmd_id == cmd_id and a.stage is FINISHED}


async def test_lean_boxes_play_retained_audio_without_asking_the_url(
    mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    url = server.url("w.mp3")
    async with (
        ServerStandIn(mosquitto, BOX_KEYS) as stand_in,
        lean_fleet(mosquitto, stand_in, 2, TOPIC_WAIT_S) as fleet,
    ):
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
        await stand_in.retain_note(AUDIO_TOPIC, AREA_TO.target, seal_note(url, AREA_TO, AUDIO))
        await stand_in.send(sealed(url), AREA_TO)
        await stand_in.wait_settled("c1", boxes=2)
        assert sources(stand_in, "c1") == {box_id: "url" for box_id in IDS}
        assert server.requests == 0 and len(fleet.downloads()) == 2
        assert fleet.fetching is not None and fleet.fetching.failures == 0
        assert fleet.fetching.downloads.bytes == 2 * len(AUDIO)


@pytest.mark.parametrize("broken", ["wrong seal", "tampered media"])
async def test_a_lean_box_asks_the_url_when_retained_audio_does_not_verify(
    mosquitto: MosquittoBroker, server: SealedMediaServer, broken: str
) -> None:
    url = server.url("w.mp3")
    wait_s = 0.5
    media, note = AUDIO, seal_note(url, BOX_TO, AUDIO)
    if broken == "wrong seal":
        note = seal_note(url, replace(BOX_TO, key=bytes(32)), AUDIO)
    else:
        media = TAMPERED
    async with (
        ServerStandIn(mosquitto, BOX_KEYS) as stand_in,
        lean_fleet(mosquitto, stand_in, 1, wait_s) as fleet,
    ):
        await stand_in.retain_media(AUDIO_TOPIC, media)
        await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, note)
        sent = time.monotonic()
        await stand_in.send(sealed(url), BOX_TO, IDS[0])
        await stand_in.wait_settled("c1")
        waited = time.monotonic() - sent
        assert sources(stand_in, "c1") == {IDS[0]: "url"}
        assert server.requests == 1 and waited >= wait_s
        assert fleet.fetching is not None and fleet.fetching.failures == 0
        assert fleet.fetching.downloads.bytes == len(media) + len(AUDIO)


async def test_unavailable_makes_a_lean_box_ask_the_url_at_once(
    mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    url = server.url("w.mp3")
    async with (
        ServerStandIn(mosquitto, BOX_KEYS) as stand_in,
        lean_fleet(mosquitto, stand_in, 1, TOPIC_WAIT_S),
    ):
        await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, UNAVAILABLE)
        sent = time.monotonic()
        await stand_in.send(sealed(url), BOX_TO, IDS[0])
        await stand_in.wait_settled("c1", within_s=TOPIC_WAIT_S / 2)
        assert time.monotonic() - sent < 3.0
        assert sources(stand_in, "c1") == {IDS[0]: "url"} and server.requests == 1


async def test_a_lean_box_takes_audio_published_after_it_subscribed(
    mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    """The audio is published live (not retained): only a box already subscribed gets it."""
    url = server.url("w.mp3")
    async with (
        ServerStandIn(mosquitto, BOX_KEYS) as stand_in,
        lean_fleet(mosquitto, stand_in, 1, TOPIC_WAIT_S) as fleet,
    ):
        await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, seal_note(url, BOX_TO, AUDIO))
        await stand_in.send(sealed(url), BOX_TO, IDS[0])
        await stand_in.wait_for(lambda: AckStage.STARTED in [s for s, _, _ in stand_in.said("c1")])
        await asyncio.sleep(0.3)
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO, retain=False)
        await stand_in.wait_settled("c1", within_s=TOPIC_WAIT_S / 2)
        assert sources(stand_in, "c1") == {IDS[0]: "url"}
        assert server.requests == 0 and len(fleet.downloads()) == 1


async def test_a_lean_box_whose_connection_is_lost_asks_the_url_at_once(
    mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    url = server.url("w.mp3")
    async with (
        ServerStandIn(mosquitto, BOX_KEYS) as stand_in,
        lean_fleet(mosquitto, stand_in, 1, TOPIC_WAIT_S) as fleet,
    ):
        await stand_in.send(sealed(url), BOX_TO, IDS[0])
        await stand_in.wait_for(lambda: stand_in.said("c1") != [])
        lost = time.monotonic()
        mosquitto.kill()
        async with asyncio.timeout(5):
            while not fleet.downloads():
                await asyncio.sleep(0.02)
        assert time.monotonic() - lost < 3.0 and server.requests == 1


async def test_a_lean_box_on_tcp_asks_the_url_of_a_command_naming_an_audio_topic(
    server: SealedMediaServer,
) -> None:
    regs = [BoxRegistration(IDS[0], BOX_KEYS[IDS[0]], "tcp")]
    async with SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0)), regs) as hub:
        recorder = HubEventRecorder(hub)
        link = f"tcp://127.0.0.1:{hub.tcp_port}"
        fleet = LeanFleet(LeanFleetConfig(link, SECRET, boxes=1, download=True))
        await fleet.start()
        try:
            await recorder.wait_for(lambda: hub.online_count == 1)
            sent = time.monotonic()
            await hub.send_command(IDS[0], sealed(server.url("w.mp3")))
            await recorder.wait_acks("c1", FINISHED, {IDS[0]}, within_s=TOPIC_WAIT_S / 2)
            assert time.monotonic() - sent < 3.0 and server.requests == 1
        finally:
            fleet.close()
            await recorder.close()


def test_the_quick_path_carries_the_audio_topic_and_leaves_a_bad_one_to_the_decoder() -> None:
    def key_for(target: str) -> bytes | None:
        return KEYS.get(target)

    data = encode_command(sealed("http://127.0.0.1/w.mp3"), BOX_TO.target, BOX_TO.key)
    quick = quick_command(data, key_for)
    assert quick is not None and quick.audio_topic == AUDIO_TOPIC
    assert quick.sealed_url == "http://127.0.0.1/w.mp3"
    bare = encode_command(
        sealed("http://127.0.0.1/w.mp3", audio_topic=None), BOX_TO.target, BOX_TO.key
    )
    assert (bare_quick := quick_command(bare, key_for)) is not None
    assert bare_quick.audio_topic is None
    for members in ({"audio_topic": "p/#"}, {"sha256": "ab" * 32}, {"audio_topic": 7}):
        obj = json.loads(data) | members
        obj.pop("sig")
        signed = canonical_bytes(obj)[:-1] + f',"sig":"{sign(obj, BOX_TO.key)}"}}'.encode()
        assert quick_command(signed, key_for) is None
        with pytest.raises(SpeakerProtocolError):
            decode_command(signed, key_for)
