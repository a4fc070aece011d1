"""An alert's audio retained on the broker for the boxes on MQTT (docs/protocols/speaker.md
section 5.1, "Sealed audio on MQTT"; channels/loudspeaker/retained_audio.py), end to end through
the real core, channel, HTTP server, Mosquitto and box agents, watched by a plain MQTT
subscriber: the play commands name the audio topic; the broker retains the audio the channel
published, once, and a seal note per ``to`` that verifies as a box checks it, for the command's
URL and the key of its ``to``; the URL still answers; a failed render leaves ``unavailable``;
the topics are cleared once the alert expires or is cancelled; over TCP, or with
``audio_over_mqtt`` off, commands name no topic and nothing is retained."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.cap import MsgType
from channels.loudspeaker.commands import alert_key
from drivers.speaker import PlayUrl, seal
from drivers.speaker.audio_topics import (
    UNAVAILABLE,
    check_topic_audio,
    media_topic,
    parse_seal_note,
    seal_topic,
)
from drivers.speaker.codec import decode_command
from drivers.speaker.sealed_audio import CommandTarget
from tests.core.support import COUNTY, make_alert, wait_until_complete
from tests.loudspeaker.conftest import IN_COUNTY, HeldRender, SpeakerSystem, speaker_system
from tests.loudspeaker.retained_watch import AudioWatch, retained_now, wait_cleared
from tests.loudspeaker.test_loudspeaker_early import Sent

GROUPS = ([COUNTY],)
"""The first box of the county takes its area's group command; the others have own keys."""
TARGETS = {f"area:{COUNTY}", f"box:box-{IN_COUNTY[1]}", f"box:box-{IN_COUNTY[2]}"}


def broker_of(system: SpeakerSystem) -> tuple[str, int]:
    mqtt = system.channel.config.mqtt
    assert mqtt is not None
    return mqtt.host, mqtt.port


def play_commands(system: SpeakerSystem, sent: Sent, alert: Any) -> dict[str, PlayUrl]:
    """The alert's play commands the hub handed out, verified, by their ``to``."""
    found: dict[str, PlayUrl] = {}
    for data in sent.of(alert):
        target, command = decode_command(data, system.channel.roster.command_key)
        assert isinstance(command, PlayUrl)
        found[target] = command
    return found


async def test_the_alerts_audio_is_retained_once_with_a_seal_per_target(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, "mqtt", groups=GROUPS) as system:
        sent = Sent(system)
        host, port = broker_of(system)
        alert = make_alert("retained")
        async with AudioWatch(host, port) as watch:
            result = await system.service.submit(alert, origin="test")
            await wait_until_complete(system.service, result.alert_id, timeout=60)
            commands = play_commands(system, sent, alert)
            (topic,) = {command.audio_topic for command in commands.values()}
            assert topic is not None
            wanted = {media_topic(topic)} | {seal_topic(topic, t) for t in TARGETS}
            await watch.wait_for(lambda seen: wanted <= set(seen), 20)
            await watch.quiet()
            media_sent = watch.count(media_topic(topic))
        notes = await retained_now(host, port)
        (published,) = system.channel.library.directory.glob("*.mp3")
        keys = {target: system.channel.roster.command_key(target) for target in TARGETS}
        (url,) = {command.url for command in commands.values()}
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers={seal.TARGET_HEADER: f"area:{COUNTY}"}) as response,
        ):
            status, body = response.status, await response.read()
    assert set(commands) == TARGETS
    assert topic.startswith("broadcaster/speaker/audio/") and url.endswith(topic.rsplit("/")[-1])
    assert set(notes) == wanted
    media = notes[media_topic(topic)]
    assert media == published.read_bytes() and media_sent == 1  # the audio once, whoever asks
    assert hashlib.sha256(media).hexdigest() == published.stem
    for target in TARGETS:
        note = parse_seal_note(notes[seal_topic(topic, target)])
        key = keys[target]
        assert note is not None and key is not None
        assert (
            check_topic_audio(url, CommandTarget(target, key), note, media).sha256 == published.stem
        )
    # The boxes that ask the URL are answered as before.
    assert status == 200 and body == media


async def test_a_failed_render_leaves_unavailable_for_each_target(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, "mqtt", groups=GROUPS) as system:
        assert system.service.audio is not None
        render = HeldRender(system.service.audio)
        render.fail = True
        render.gate.set()
        sent = Sent(system)
        host, port = broker_of(system)
        alert = make_alert("retained-failed")
        result = await system.service.submit(alert, origin="test")
        await wait_until_complete(system.service, result.alert_id, timeout=60)
        (topic,) = {command.audio_topic for command in play_commands(system, sent, alert).values()}
        assert topic is not None
        wanted = {seal_topic(topic, target) for target in TARGETS}
        async with AudioWatch(host, port) as watch:
            await watch.wait_for(lambda seen: wanted <= set(seen), 20)
        notes = await retained_now(host, port)
    assert notes == dict.fromkeys(wanted, UNAVAILABLE)


async def test_the_topics_are_cleared_once_the_alert_expires(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, "mqtt", groups=GROUPS) as system:
        host, port = broker_of(system)
        alert = make_alert("retained-expiring", expires_in=8)
        result = await system.service.submit(alert, origin="test")
        await wait_until_complete(system.service, result.alert_id, timeout=60)
        async with AudioWatch(host, port) as watch:
            await watch.wait_for(lambda seen: len(seen) == 1 + len(TARGETS), 20)
        await wait_cleared(host, port, 30)
        left = list(system.channel.library.directory.glob("*.retained"))
    assert not left


async def test_the_topics_are_cleared_when_the_alert_is_cancelled(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, "mqtt", groups=GROUPS, play_seconds=60.0) as system:
        sent = Sent(system)
        host, port = broker_of(system)
        alert = make_alert("retained-cancelled")
        await system.service.submit(alert, origin="test")
        async with AudioWatch(host, port) as watch:
            await watch.wait_for(lambda seen: len(seen) == 1 + len(TARGETS), 30)
        await system.wait_playing(alert_key(alert), system.county_boxes)
        (topic,) = {command.audio_topic for command in play_commands(system, sent, alert).values()}
        assert topic is not None
        cancel = make_alert("retained-cancelled-c", msg_type=MsgType.CANCEL, references=[alert])
        await system.service.submit(cancel, origin="test")
        # The Cancel itself is played (its own audio, its own topics): the alert's are gone.
        async with asyncio.timeout(20):
            while any(t.startswith(f"{topic}/") for t in await retained_now(host, port)):
                await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    ("transport", "settings"), [("tcp", {}), ("mqtt", {"audio_over_mqtt": False})]
)
async def test_no_topic_over_tcp_or_when_turned_off(
    tmp_path: Path, transport: str, settings: dict[str, Any]
) -> None:
    async with speaker_system(tmp_path, transport, groups=GROUPS, **settings) as system:
        sent = Sent(system)
        alert = make_alert(f"not-retained-{transport}")
        result = await system.service.submit(alert, origin="test")
        summary = await wait_until_complete(system.service, result.alert_id, timeout=60)
        commands = play_commands(system, sent, alert)
        notes = await retained_now(*broker_of(system)) if transport == "mqtt" else {}
    assert summary == {"loudspeaker": {"confirmed": len(system.county_boxes)}}
    assert commands and all(command.audio_topic is None for command in commands.values())
    assert notes == {}
