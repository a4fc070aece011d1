"""A box on MQTT takes the sealed audio its command retains under an ``audio_topic`` from the
broker (docs/protocols/speaker.md, sections 4.3 and 5.1): the real agent on its MQTT uplink,
a real Mosquitto, a stand-in server publishing with a plain ``MqttClient``, and a real HTTP
server on 127.0.0.1 counting the requests for the URL. Without a verified pair in time, on
``unavailable`` or a malformed note, or when its session is lost, the box asks the URL and
the outcome is what it is over HTTP; a box on TCP always asks it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import pytest

from drivers.mqtt import MqttClient
from drivers.mqtt.testing import MosquittoBroker
from drivers.speaker import topic_audio
from drivers.speaker.agent import BoxAgent, BoxBehaviourConfig, BoxIdentity
from drivers.speaker.audio_topics import UNAVAILABLE, media_topic, seal_topic
from drivers.speaker.errors import MediaDownloadError
from drivers.speaker.hub import BoxRegistration, SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.messages import AckStage, PlayUrl
from drivers.speaker.player import PlaybackLog, RecordingPlayer
from drivers.speaker.sealed_audio import CommandTarget, SealedAudio
from drivers.speaker.store import TOPIC_WAIT_S, ClipStore, MediaFetcher, PlayJournal
from drivers.speaker.testing import HubEventRecorder, SealedMediaServer, play_url_command
from drivers.speaker.topic_audio import TopicAudio
from drivers.speaker.uplinks import MqttUplink, TcpUplink
from tests.speaker.topic_rig import TOPICS, ServerStandIn, seal_note

KEY = b"box-key-0123456789abcdef"
AREA_KEY = b"area-key-0123456789abcdef"
BOX_TO = CommandTarget("box:b1", KEY)
AREA_TO = CommandTarget("area:150902", AREA_KEY)
AUDIO = b"retained warning audio" * 300
TAMPERED = AUDIO[:-1] + b"!"
TONE = b"attention tone"
CLIP = b"stored generic warning"
SPEECH_START_MS = 4250
AUDIO_TOPIC = TOPICS.audio("t-0123")
ACCEPTED, STARTED, FINISHED = AckStage.ACCEPTED, AckStage.STARTED, AckStage.FINISHED

Uplink = Callable[[BoxAgent], MqttUplink | TcpUplink]


@pytest.fixture
async def server() -> AsyncIterator[SealedMediaServer]:
    keys = {BOX_TO.target: KEY, AREA_TO.target: AREA_KEY}
    async with SealedMediaServer({"w.opus": AUDIO}, keys, {"w.opus": SPEECH_START_MS}) as media:
        yield media


def on_mqtt(broker: MosquittoBroker) -> Uplink:
    return lambda agent: MqttUplink(agent, broker.host, broker.port, TOPICS)


class Box:
    """The real agent of box b1 (area 150902) on the uplink ``uplink`` makes for it, with a
    recording player and the clips ``generic`` (its fallback) and ``attention``."""

    def __init__(self, tmp_path: Path, uplink: Uplink, topic_wait_s: float = TOPIC_WAIT_S) -> None:
        clips = tmp_path / "clips"
        clips.mkdir()
        (clips / "generic").write_bytes(CLIP)
        (clips / "attention").write_bytes(TONE)
        self.log = PlaybackLog()
        self.fetcher = MediaFetcher(tmp_path / "cache", topic_wait_s=topic_wait_s)
        self.agent = BoxAgent(
            BoxIdentity("b1", KEY, {"150902": AREA_KEY}),
            RecordingPlayer(self.log),
            ClipStore(clips),
            self.fetcher,
            PlayJournal(),
            BoxBehaviourConfig(fallback_clip="generic", heartbeat_s=3600),
        )
        self.uplink = uplink(self.agent)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Box:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.agent.run()), loop.create_task(self.uplink.run())]
        async with asyncio.timeout(10):
            await self.uplink.connected.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.fetcher.aclose()

    def played(self) -> list[tuple[bytes, str, float]]:
        """What each finished playback played (the file's bytes), its source and start."""
        return [
            (r.request.path.read_bytes(), r.request.source, r.request.start_s)
            for r in self.log.completed()
        ]


def sealed(url: str, cmd_id: str = "c1", attention: bool = False) -> PlayUrl:
    """A sealed play command retaining its audio under AUDIO_TOPIC."""
    plain = play_url_command(cmd_id, "alert-1", url, AUDIO)
    clip = "attention" if attention else None
    return replace(plain, sha256=None, attention_clip=clip, audio_topic=AUDIO_TOPIC)


@pytest.mark.parametrize("to", [BOX_TO, AREA_TO], ids=["box", "area"])
async def test_the_box_plays_retained_audio_without_asking_the_url(
    tmp_path: Path, mosquitto: MosquittoBroker, server: SealedMediaServer, to: CommandTarget
) -> None:
    url = server.url("w.opus")
    async with (
        ServerStandIn(mosquitto, {"b1": KEY}) as stand_in,
        Box(tmp_path, on_mqtt(mosquitto)) as box,
    ):
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
        await stand_in.retain_note(AUDIO_TOPIC, to.target, seal_note(url, to, AUDIO, 4250))
        await stand_in.send(sealed(url, attention=True), to, "b1" if to is BOX_TO else None)
        await stand_in.wait_settled("c1")
    assert stand_in.said("c1") == [
        (ACCEPTED, None, None),
        (STARTED, None, "attention:attention"),
        (FINISHED, None, "url"),
    ]
    assert {ack.cmd_id for ack in stand_in.acks} == {"c1"}
    assert box.played() == [(TONE, "attention:attention", 0.0), (AUDIO, "url", 4.25)]
    assert server.requests == 0
    assert (tmp_path / "cache" / hashlib.sha256(AUDIO).hexdigest()).read_bytes() == AUDIO


@pytest.mark.parametrize("broken", ["wrong seal", "tampered media"])
async def test_retained_audio_that_does_not_verify_is_not_played_and_the_url_is_asked(
    tmp_path: Path, mosquitto: MosquittoBroker, server: SealedMediaServer, broken: str
) -> None:
    url = server.url("w.opus")
    wait_s = 1.0
    async with (
        ServerStandIn(mosquitto, {"b1": KEY}) as stand_in,
        Box(tmp_path, on_mqtt(mosquitto), topic_wait_s=wait_s) as box,
    ):
        if broken == "wrong seal":
            other = CommandTarget(BOX_TO.target, b"another key 0123456789")
            await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
            await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, seal_note(url, other, AUDIO))
        else:
            await stand_in.retain_media(AUDIO_TOPIC, TAMPERED)
            await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, seal_note(url, BOX_TO, AUDIO))
        sent = time.monotonic()
        await stand_in.send(sealed(url), BOX_TO, "b1")
        await stand_in.wait_settled("c1")
        waited = time.monotonic() - sent
    assert stand_in.said("c1")[-1] == (FINISHED, None, "url")
    assert box.played() == [(AUDIO, "url", 0.0)]
    assert server.requests == 1 and waited >= wait_s


@pytest.mark.parametrize(
    "note", [UNAVAILABLE, b"not a seal note"], ids=["unavailable", "malformed"]
)
async def test_an_unavailable_or_malformed_note_makes_the_box_ask_the_url_at_once(
    tmp_path: Path, mosquitto: MosquittoBroker, server: SealedMediaServer, note: bytes
) -> None:
    url = server.url("w.opus")
    async with (
        ServerStandIn(mosquitto, {"b1": KEY}) as stand_in,
        Box(tmp_path, on_mqtt(mosquitto)) as box,
    ):
        await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, note)
        sent = time.monotonic()
        await stand_in.send(sealed(url), BOX_TO, "b1")
        await stand_in.wait_settled("c1", within_s=TOPIC_WAIT_S / 2)
        waited = time.monotonic() - sent
    assert stand_in.said("c1")[-1] == (FINISHED, None, "url")
    assert box.played() == [(AUDIO, "url", 0.0)]
    assert server.requests == 1 and waited < 3.0


async def test_audio_published_after_the_box_subscribed_is_taken(
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    server: SealedMediaServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The box holds a pair that does not verify (tampered audio) and waits; the audio the
    server publishes then reaches it live, verifies, and plays."""
    caplog.set_level(logging.WARNING, logger="drivers.speaker.topic_audio")
    url = server.url("w.opus")
    async with (
        ServerStandIn(mosquitto, {"b1": KEY}) as stand_in,
        Box(tmp_path, on_mqtt(mosquitto)) as box,
    ):
        await stand_in.retain_media(AUDIO_TOPIC, TAMPERED)
        await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, seal_note(url, BOX_TO, AUDIO))
        await stand_in.send(sealed(url), BOX_TO, "b1")
        async with asyncio.timeout(5):
            while not any("waiting for newer" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.02)
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
        await stand_in.wait_settled("c1", within_s=TOPIC_WAIT_S / 2)
    assert stand_in.said("c1")[-1] == (FINISHED, None, "url")
    assert box.played() == [(AUDIO, "url", 0.0)]
    assert server.requests == 0


async def test_without_retained_audio_or_url_the_box_plays_its_fallback_as_over_http(
    tmp_path: Path, mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    async with (
        ServerStandIn(mosquitto, {"b1": KEY}) as stand_in,
        Box(tmp_path, on_mqtt(mosquitto), topic_wait_s=0.5) as box,
    ):
        await stand_in.send(sealed(server.missing_url), BOX_TO, "b1")
        await stand_in.wait_settled("c1")
    assert stand_in.said("c1") == [
        (ACCEPTED, None, None),
        (STARTED, "download_failed", "fallback:generic"),
        (FINISHED, "download_failed", "fallback:generic"),
    ]
    assert box.played() == [(CLIP, "fallback:generic", 0.0)]
    assert server.requests == 1


async def test_a_lost_session_makes_the_box_ask_the_url_at_once(
    tmp_path: Path, mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    url = server.url("w.opus")
    async with (
        ServerStandIn(mosquitto, {"b1": KEY}) as stand_in,
        Box(tmp_path, on_mqtt(mosquitto)) as box,
    ):
        await stand_in.send(sealed(url), BOX_TO, "b1")
        await stand_in.wait_for(lambda: stand_in.said("c1") != [])
        lost = time.monotonic()
        mosquitto.kill()
        await box.log.wait_for(lambda _: box.played() != [], within_s=5)
        assert time.monotonic() - lost < 3.0
    assert box.played() == [(AUDIO, "url", 0.0)]
    assert server.requests == 1


async def test_a_box_on_tcp_asks_the_url_of_a_command_naming_an_audio_topic(
    tmp_path: Path, server: SealedMediaServer
) -> None:
    config = SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0))
    async with SpeakerHub(config, [BoxRegistration("b1", KEY, "tcp")]) as hub:
        recorder = HubEventRecorder(hub)
        port = hub.tcp_port
        try:
            async with Box(tmp_path, lambda agent: TcpUplink(agent, "127.0.0.1", port)) as box:
                await recorder.wait_for(lambda: hub.online_count == 1)
                sent = time.monotonic()
                await hub.send_command("b1", sealed(server.url("w.opus")))
                await recorder.wait_acks("c1", FINISHED, {"b1"}, within_s=TOPIC_WAIT_S / 2)
                waited = time.monotonic() - sent
        finally:
            await recorder.close()
    assert box.played() == [(AUDIO, "url", 0.0)]
    assert server.requests == 1 and waited < 3.0


class CountingTopics:
    """An audio topic source that counts the waits asked of the one it passes them to."""

    def __init__(self, inner: TopicAudio) -> None:
        self.inner = inner
        self.takes = 0

    async def take(
        self, audio_topic: str, url: str, to: CommandTarget, within_s: float, max_bytes: int
    ) -> tuple[SealedAudio, bytes] | None:
        self.takes += 1
        return await self.inner.take(audio_topic, url, to, within_s, max_bytes)


@asynccontextmanager
async def session(broker: MosquittoBroker) -> AsyncIterator[tuple[TopicAudio, list[str]]]:
    """A box's MQTT session attached to a TopicAudio, and the topics of what it received."""
    audio = TopicAudio()
    received: list[str] = []

    def on_message(topic: str, payload: bytes, retain: bool) -> None:
        received.append(topic)
        audio.route(topic, payload)

    client = MqttClient(broker.host, broker.port, "box-b1", on_message=on_message)
    await client.connect()
    audio.attach(client)
    try:
        yield audio, received
    finally:
        await audio.detach()
        await client.disconnect()


async def test_a_fetch_before_the_first_session_waits_for_it(
    mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    # A box resuming its commands at start asks for their audio before its MQTT session is up.
    url = server.url("w.opus")
    audio = TopicAudio()
    client = MqttClient(
        mosquitto.host, mosquitto.port, "box-b1", on_message=lambda t, p, r: audio.route(t, p)
    )
    async with ServerStandIn(mosquitto, {}) as stand_in:
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
        await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, seal_note(url, BOX_TO, AUDIO, 9))
        taking = asyncio.ensure_future(audio.take(AUDIO_TOPIC, url, BOX_TO, 5.0, len(AUDIO)))
        await asyncio.sleep(0.3)
        assert not taking.done()
        await client.connect()
        audio.attach(client)
        try:
            async with asyncio.timeout(5):
                got = await taking
        finally:
            await audio.detach()
            await client.disconnect()
    assert got is not None and got[1] == AUDIO
    assert server.requests == 0


async def test_concurrent_fetches_share_one_wait_and_it_unsubscribes(
    tmp_path: Path, mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    url = server.url("w.opus")
    fetcher = MediaFetcher(tmp_path / "cache")
    async with ServerStandIn(mosquitto, {}) as stand_in, session(mosquitto) as (audio, received):
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
        await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, seal_note(url, BOX_TO, AUDIO, 9))
        counting = CountingTopics(audio)
        fetches = [fetcher.fetch_sealed(url, BOX_TO, AUDIO_TOPIC, counting) for _ in range(3)]
        results = await asyncio.gather(*fetches)
        path = tmp_path / "cache" / hashlib.sha256(AUDIO).hexdigest()
        assert results == [(path, 9)] * 3 and path.read_bytes() == AUDIO
        assert counting.takes == 1 and server.requests == 0
        async with asyncio.timeout(5):  # until the UNSUBACK
            while audio.route(media_topic(AUDIO_TOPIC), b""):
                await asyncio.sleep(0.02)
        before = len(received)
        await stand_in.retain_media(AUDIO_TOPIC, TAMPERED)
        await asyncio.sleep(0.3)
        assert len(received) == before
    await fetcher.aclose()


async def test_retained_audio_over_the_download_limit_is_refused(
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    server: SealedMediaServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="drivers.speaker.topic_audio")
    url = server.url("w.opus")
    fetcher = MediaFetcher(tmp_path / "cache", max_bytes=len(AUDIO) - 1, topic_wait_s=0.5)
    async with ServerStandIn(mosquitto, {}) as stand_in, session(mosquitto) as (audio, _):
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
        await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, seal_note(url, BOX_TO, AUDIO))
        with pytest.raises(MediaDownloadError, match="larger than"):
            await fetcher.fetch_sealed(url, BOX_TO, AUDIO_TOPIC, audio)
    await fetcher.aclose()
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert server.requests == 1
    assert not (tmp_path / "cache" / hashlib.sha256(AUDIO).hexdigest()).exists()


async def test_the_next_session_drops_the_audio_topics_a_lost_one_kept(
    mosquitto: MosquittoBroker, server: SealedMediaServer
) -> None:
    """A box's session is persistent: the broker keeps a lost session's audio subscriptions
    (at QoS 0 it queues none of their messages for it). Until the next session has
    unsubscribed, a message on them is taken for audio, never for a command."""
    url = server.url("w.opus")
    audio = TopicAudio()
    routed: list[tuple[str, bool]] = []

    def on_message(topic: str, payload: bytes, retain: bool) -> None:
        routed.append((topic, audio.route(topic, payload)))

    def client() -> MqttClient:
        return MqttClient(
            mosquitto.host, mosquitto.port, "box-b1", on_message=on_message, clean_session=False
        )

    async with ServerStandIn(mosquitto, {}) as stand_in:
        await stand_in.retain_media(AUDIO_TOPIC, TAMPERED)
        first = client()
        await first.connect()
        audio.attach(first)
        take = asyncio.get_running_loop().create_task(
            audio.take(AUDIO_TOPIC, url, BOX_TO, 30.0, len(AUDIO))
        )
        async with asyncio.timeout(5):
            while not routed:
                await asyncio.sleep(0.02)
        first.abort()
        await audio.detach()
        assert await asyncio.wait_for(take, 1) is None
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO)  # not queued: subscribed at QoS 0
        second = client()
        await second.connect()
        audio.attach(second)
        async with asyncio.timeout(5):  # until the UNSUBACK
            while audio.route(media_topic(AUDIO_TOPIC), b""):
                await asyncio.sleep(0.02)
        assert routed == [(media_topic(AUDIO_TOPIC), True)]
        await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
        await asyncio.sleep(0.3)
        assert len(routed) == 1
        await audio.detach()
        await second.disconnect()


async def test_a_wait_subscribes_again_to_the_topic_it_has_had_nothing_on(
    mosquitto: MosquittoBroker, server: SealedMediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster may miss a message published while a subscription is being set up: a wait
    subscribes again, after each pause, to the topics it has had nothing on (the broker then
    sends their retained message again), and to those alone."""
    monkeypatch.setattr(topic_audio, "ASK_AGAIN_S", (0.2, 0.2))
    url = server.url("w.opus")
    audio = TopicAudio()
    asked: list[list[str]] = []

    class Box(MqttClient):
        async def subscribe(self, filters: Sequence[tuple[str, int]]) -> list[int]:
            asked.append([topic for topic, _ in filters])
            return await super().subscribe(filters)

    def on_message(topic: str, payload: bytes, retain: bool) -> None:
        audio.route(topic, payload)

    client = Box(mosquitto.host, mosquitto.port, "box-b1", on_message=on_message)
    await client.connect()
    audio.attach(client)
    media, seal = media_topic(AUDIO_TOPIC), seal_topic(AUDIO_TOPIC, BOX_TO.target)
    try:
        async with ServerStandIn(mosquitto, {}) as stand_in:
            await stand_in.retain_media(AUDIO_TOPIC, AUDIO)
            take = asyncio.ensure_future(audio.take(AUDIO_TOPIC, url, BOX_TO, 5.0, len(AUDIO)))
            async with asyncio.timeout(3):
                while len(asked) < 3:
                    await asyncio.sleep(0.02)
            await stand_in.retain_note(AUDIO_TOPIC, BOX_TO.target, seal_note(url, BOX_TO, AUDIO))
            taken = await asyncio.wait_for(take, 3)
        assert taken is not None and taken[1] == AUDIO
        assert asked[:3] == [[media, seal], [seal], [seal]]
    finally:
        await audio.detach()
        await client.disconnect()
