"""The channel's audio retained on MQTT (channels/loudspeaker/retained_audio.py;
docs/protocols/speaker.md section 5.1, "Sealed audio on MQTT"), with a real SpeakerHub on a real
Mosquitto, the real audio library rendering with espeak-ng, and a plain MQTT subscriber as the
boxes' eyes: the audio is retained once, and a seal note per ``to`` that verifies as a box
checks it, also for a ``to`` noted after the render (nothing at all while no ``to`` is); a
failed render leaves ``unavailable``, replaced by a later render that succeeds; at expiry or
cancellation every topic is cleared, also by a tracker started again over the topics a
stopped one left; the URL still answers; nothing anyone else writes makes the server publish
outside the token's own topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from audio import AudioError
from channels.loudspeaker.media import AudioLibrary
from channels.loudspeaker.retained_audio import NOTE_SUFFIX, RetainedAudio
from drivers.speaker import SpeakerConfigError
from drivers.speaker.audio_topics import (
    UNAVAILABLE,
    check_topic_audio,
    media_topic,
    parse_seal_note,
    seal_topic,
)
from drivers.speaker.hub import MqttBrokerConfig, SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.testing import MosquittoBroker
from tests.loudspeaker.retained_watch import AudioWatch, retained_now, wait_cleared
from tests.loudspeaker.test_sealed_audio import (
    AREA_KEY,
    BOX_KEY,
    KEYS,
    MESSAGE,
    Site,
    held_publisher,
    library_in,
)

AREA, BOX = "area:150902", "box:box-1"
LANGUAGES = ("zh-CN",)


@dataclass
class Rig:
    broker: MosquittoBroker
    hub: SpeakerHub
    library: AudioLibrary
    retained: RetainedAudio
    site: Site

    def tracker(self) -> RetainedAudio:
        """A tracker over the library's directory, as the channel makes one."""
        return RetainedAudio(self.library.directory, "mp3", KEYS.get)

    async def retained_now(self) -> dict[str, bytes]:
        return await retained_now(self.broker.host, self.broker.port)

    async def wait_cleared(self, within_s: float = 10.0) -> None:
        await wait_cleared(self.broker.host, self.broker.port, within_s)

    def watch(self, topic_filter: str | None = None) -> AudioWatch:
        if topic_filter is None:
            return AudioWatch(self.broker.host, self.broker.port)
        return AudioWatch(self.broker.host, self.broker.port, topic_filter)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    with MosquittoBroker(tmp_path) as broker:
        mqtt = MqttBrokerConfig(host=broker.host, port=broker.port)
        hub = SpeakerHub(SpeakerHubConfig(mqtt=mqtt))
        await hub.start()
        library = library_in(tmp_path)
        server = TestServer(library.web_app(), host="127.0.0.1")
        await server.start_server()
        retained = RetainedAudio(library.directory, "mp3", KEYS.get)
        retained.start(hub, True)
        try:
            yield Rig(broker, hub, library, retained, Site(library, server))
        finally:
            await retained.stop()
            await server.close()
            await hub.stop()


def verify(url: str, target: str, key: bytes, notes: dict[str, bytes], topic: str) -> str:
    """The SHA-256 the retained media and the seal note of ``target`` say, checked as a box
    checks them."""
    note = parse_seal_note(notes[seal_topic(topic, target)])
    assert note is not None
    return check_topic_audio(
        url, CommandTarget(target, key), note, notes[media_topic(topic)]
    ).sha256


async def test_the_audio_is_retained_once_with_a_seal_per_target(rig: Rig, tmp_path: Path) -> None:
    publisher, render = held_publisher(tmp_path / "cache")
    url = rig.library.reserve(MESSAGE, LANGUAGES)
    topic = rig.retained.topic_for(url, MESSAGE.id, time.time() + 600)
    assert topic == f"broadcaster/speaker/audio/{url.rsplit('/', 1)[1]}"
    async with rig.watch() as watch:
        rig.retained.note(topic, AREA)  # the area's command went before the render
        render.gate.set()
        published = await rig.retained.follow(
            topic, rig.library.publish(publisher, MESSAGE, LANGUAGES)
        )
        await watch.wait_for(lambda seen: seal_topic(topic, AREA) in seen, 10)
        rig.retained.note(topic, BOX)  # a box with its own key, after the render
        await watch.wait_for(lambda seen: seal_topic(topic, BOX) in seen, 10)
        # The same audio published again by a later batch, the same targets noted again.
        await rig.retained.follow(topic, rig.library.publish(publisher, MESSAGE, LANGUAGES))
        rig.retained.note(topic, AREA)
        rig.retained.note(topic, BOX)
        await watch.quiet()
        assert watch.count(media_topic(topic)) == 1
        assert watch.count(seal_topic(topic, AREA)) == watch.count(seal_topic(topic, BOX)) == 1
    notes = await rig.retained_now()
    assert set(notes) == {media_topic(topic), seal_topic(topic, AREA), seal_topic(topic, BOX)}
    stored = (rig.library.directory / f"{published.sha256}.mp3").read_bytes()
    assert notes[media_topic(topic)] == stored
    assert verify(url, AREA, AREA_KEY, notes, topic) == published.sha256
    assert verify(url, BOX, BOX_KEY, notes, topic) == published.sha256
    note = parse_seal_note(notes[seal_topic(topic, BOX)])
    assert note is not None and note.speech_start_ms == published.speech_start_ms
    # A note under one target's key does not verify under another's.
    with pytest.raises(Exception, match="key of"):
        check_topic_audio(url, CommandTarget(BOX, AREA_KEY), note, stored)
    # The URL answers as before.
    status, _, body = await rig.site.get(url, AREA)
    assert status == 200 and body == stored
    # Cancelled: every topic goes, and so does the note of them.
    assert (rig.library.directory / f"{url.rsplit('/', 1)[1]}{NOTE_SUFFIX}").is_file()
    rig.retained.end(MESSAGE.id)
    await rig.wait_cleared()
    assert not list(rig.library.directory.glob(f"*{NOTE_SUFFIX}"))
    assert rig.retained.topic_for(url, MESSAGE.id, time.time() + 600) is None


async def test_a_failed_render_says_unavailable_until_one_succeeds(
    rig: Rig, tmp_path: Path
) -> None:
    publisher, render = held_publisher(tmp_path / "cache")
    render.fail = True
    render.gate.set()
    url = rig.library.reserve(MESSAGE, LANGUAGES)
    topic = rig.retained.topic_for(url, MESSAGE.id, time.time() + 600)
    assert topic is not None
    rig.retained.note(topic, AREA)
    async with rig.watch() as watch:
        with pytest.raises(AudioError):
            await rig.retained.follow(topic, rig.library.publish(publisher, MESSAGE, LANGUAGES))
        rig.retained.note(topic, BOX)  # noted after the failure: told at once as well
        both = {seal_topic(topic, AREA), seal_topic(topic, BOX)}
        await watch.wait_for(lambda seen: both <= set(seen), 10)
    notes = await rig.retained_now()
    assert notes == dict.fromkeys(both, UNAVAILABLE)
    assert parse_seal_note(notes[seal_topic(topic, AREA)]) is None
    status, _, _ = await rig.site.get(url, AREA)
    assert status == 404  # the URL says so too: the boxes play their fallback clip
    # A render that begins again and succeeds replaces them.
    render.fail = False
    published = await rig.retained.follow(topic, rig.library.publish(publisher, MESSAGE, LANGUAGES))
    async with rig.watch() as watch:
        await watch.wait_for(lambda seen: media_topic(topic) in seen, 10)
        await watch.wait_for(lambda seen: all(seen.get(t) != UNAVAILABLE for t in both), 10)
    notes = await rig.retained_now()
    assert verify(url, AREA, AREA_KEY, notes, topic) == published.sha256
    assert verify(url, BOX, BOX_KEY, notes, topic) == published.sha256


async def test_what_the_broker_could_not_take_is_retained_once_it_is_back(
    rig: Rig, tmp_path: Path
) -> None:
    """The broker dies as the render ends: the audio and its note are published again once
    the hub's session is back (a box that asks meanwhile has the URL)."""
    publisher, render = held_publisher(tmp_path / "cache")
    url = rig.library.reserve(MESSAGE, LANGUAGES)
    topic = rig.retained.topic_for(url, MESSAGE.id, time.time() + 600)
    assert topic is not None
    rig.retained.note(topic, AREA)
    rig.broker.kill()
    render.gate.set()
    published = await rig.retained.follow(topic, rig.library.publish(publisher, MESSAGE, LANGUAGES))
    await asyncio.sleep(0.5)
    with MosquittoBroker(tmp_path, port=rig.broker.port):
        async with rig.watch() as watch:
            await watch.wait_for(lambda seen: seal_topic(topic, AREA) in seen, 20)
        notes = await rig.retained_now()
    assert verify(url, AREA, AREA_KEY, notes, topic) == published.sha256


async def test_expired_topics_are_cleared_also_by_a_tracker_started_again(
    rig: Rig, tmp_path: Path
) -> None:
    publisher, render = held_publisher(tmp_path / "cache")
    render.gate.set()
    url = rig.library.reserve(MESSAGE, LANGUAGES)
    expires_at = time.time() + 3.0
    topic = rig.retained.topic_for(url, MESSAGE.id, expires_at)
    assert topic is not None
    await rig.retained.follow(topic, rig.library.publish(publisher, MESSAGE, LANGUAGES))
    assert await rig.retained_now() == {}  # no command went over MQTT: nothing to retain
    async with rig.watch() as watch:
        rig.retained.note(topic, AREA)
        await watch.wait_for(lambda seen: seal_topic(topic, AREA) in seen, 10)
    # The server stops before the alert expires: the topics stay, listed beside the audio.
    await rig.retained.stop()
    assert set(await rig.retained_now()) == {media_topic(topic), seal_topic(topic, AREA)}
    again = rig.tracker()
    again.start(rig.hub, True)
    try:
        await asyncio.sleep(max(0.0, expires_at - time.time() - 1.0))
        assert await rig.retained_now()  # not before the alert expires
        await rig.wait_cleared()
        assert time.time() >= expires_at - 0.1
        assert not list(rig.library.directory.glob(f"*{NOTE_SUFFIX}"))
        # An alert already over gets no topic.
        assert again.topic_for(url, MESSAGE.id, time.time() - 1) is None
    finally:
        await again.stop()


async def test_topics_are_the_servers_own(rig: Rig) -> None:
    """Only the library's own tokens become topics, only under the prefix, and a note file
    tampered with clears nothing but the token's own topics."""
    url = rig.library.reserve(MESSAGE, LANGUAGES)
    for other in ("../../box/x/cmd", "#", "0" * 31, url.rsplit("/", 1)[1].upper()):
        assert rig.retained.topic_for(url.rsplit("/", 1)[0] + "/" + other, "m", 9e9) is None
    rig.retained.note("broadcaster/speaker/box/box-1/cmd", AREA)  # not a followed topic
    with pytest.raises(SpeakerConfigError):
        await rig.hub.retain("elsewhere/audio/x", b"")
    token = "ab" * 16
    rig.library.directory.mkdir(parents=True, exist_ok=True)
    lines = ['{"expires_at": 0}', AREA, "box:x/../../#", "box:a+b", "../box/box-1/cmd", BOX]
    (rig.library.directory / f"{token}{NOTE_SUFFIX}").write_text("\n".join(lines) + "\n")
    (rig.library.directory / f"..{NOTE_SUFFIX}").write_text('{"expires_at": 0}\n')
    async with rig.watch("#") as watch:
        await rig.retained.sweep()
        await watch.quiet(1.0)
    written = {topic for topic, _, retained in watch.messages if not retained}
    base = f"broadcaster/speaker/audio/{token}"
    assert written == {media_topic(base), seal_topic(base, AREA), seal_topic(base, BOX)}
    assert not (rig.library.directory / f"{token}{NOTE_SUFFIX}").exists()


async def test_no_topic_without_mqtt_or_when_turned_off(rig: Rig, tmp_path: Path) -> None:
    url = rig.library.reserve(MESSAGE, LANGUAGES)
    off = rig.tracker()
    off.start(rig.hub, False)
    tcp_hub = SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig(host="127.0.0.1", port=0)))
    await tcp_hub.start()
    without = rig.tracker()
    without.start(tcp_hub, True)
    try:
        assert off.topic_for(url, MESSAGE.id, 9e9) is None
        assert without.topic_for(url, MESSAGE.id, 9e9) is None
        assert tcp_hub.mqtt_topics is None
        with pytest.raises(SpeakerConfigError):
            await tcp_hub.retain("broadcaster/speaker/audio/x/media", b"x")
    finally:
        await without.stop()
        await off.stop()
        await tcp_hub.stop()
