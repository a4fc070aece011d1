"""Parts of the loudspeaker channel: broadcast class and volume of an alert, command ids, the
registry and keys, and the audio files served over HTTP (Range, caching, unknown names)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from broadcaster.cap import NamedValue, Status
from broadcaster.channel import AlertMessage, ChannelContext
from broadcaster.config import MASK
from broadcaster.delivery import Target
from broadcaster.plugins import masked_config
from broadcaster.rendition import render
from broadcaster.scheduler.runs import VOLUME_PARAMETER
from broadcaster.testing.contract import contract_delivery
from channels.loudspeaker import LoudspeakerChannel, LoudspeakerChannelConfig
from channels.loudspeaker.boxes import (
    BoxKeyring,
    BoxRegistryError,
    read_key_file,
    registration,
)
from channels.loudspeaker.commands import (
    CLASS_PARAMETER,
    broadcast_class,
    command_id,
    play_url,
    volume_for,
)
from channels.loudspeaker.media import AudioLibrary
from drivers.speaker import BroadcastClass
from drivers.speaker.codec import derive_key
from drivers.speaker.hub_config import TcpListenConfig
from tests.core.support import make_alert, make_config

SETTINGS = LoudspeakerChannelConfig.model_validate(
    {"type": "loudspeaker", "volume": 80, "test_volume": 30}
)
TARGET = Target(id="spk-1", channel="loudspeaker", name="村", division="150921001001")


def test_classes_follow_the_status_and_a_test_never_plays_as_an_emergency() -> None:
    assert broadcast_class(make_alert(status=Status.ACTUAL)) is BroadcastClass.EMERGENCY
    assert broadcast_class(make_alert(status=Status.TEST)) is BroadcastClass.SYSTEM_DRILL
    exercise = make_alert(status=Status.EXERCISE)
    assert broadcast_class(exercise) is BroadcastClass.SIMULATED_DRILL
    exercise.infos[0].parameters.append(NamedValue(CLASS_PARAMETER, "live_drill"))
    assert broadcast_class(exercise) is BroadcastClass.LIVE_DRILL
    test = make_alert(status=Status.TEST)
    test.infos[0].parameters.append(NamedValue(CLASS_PARAMETER, "emergency"))
    assert broadcast_class(test) is BroadcastClass.SYSTEM_DRILL
    actual = make_alert(status=Status.ACTUAL)
    actual.infos[0].parameters.append(NamedValue(CLASS_PARAMETER, "system_drill"))
    assert broadcast_class(actual) is BroadcastClass.EMERGENCY


def test_volume_from_the_alert_then_the_settings() -> None:
    assert volume_for(make_alert(), SETTINGS) == 80
    assert volume_for(make_alert(status=Status.TEST), SETTINGS) == 30
    scheduled = make_alert(status=Status.TEST)
    scheduled.infos[0].parameters.append(NamedValue(VOLUME_PARAMETER, "45"))
    assert volume_for(scheduled, SETTINGS) == 45


def test_a_retry_reuses_the_command_id_and_carries_the_alert_deadline() -> None:
    delivery = contract_delivery(TARGET)
    assert command_id("play", delivery) == command_id("play", replace(delivery, attempt=5))
    other = replace(delivery, idempotency_key=delivery.idempotency_key + ":1")
    assert command_id("play", other) != command_id("play", delivery)
    command = play_url(delivery, SETTINGS, "http://x/a.mp3", None)
    assert command.sha256 is None  # sealed: the audio brings its SHA-256
    assert command.expires_at.timestamp() == pytest.approx(delivery.expires_at)
    assert command.priority == 20 and command.broadcast_class is BroadcastClass.SYSTEM_DRILL


def test_registrations_from_targets_and_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"box-a": "11" * 32}))
    keyring = BoxKeyring(read_key_file(keys), b"master")
    explicit = registration(replace(TARGET, address="box-a"), SETTINGS, keyring)
    assert explicit.key == bytes.fromhex("11" * 32)
    assert explicit.areas == frozenset({"150921001001"})
    derived = registration(replace(TARGET, address="box-b"), SETTINGS, keyring)
    assert derived.key == derive_key(b"master", "box:box-b")
    with pytest.raises(BoxRegistryError, match="no key"):
        registration(TARGET, SETTINGS, BoxKeyring({}, None))
    serial = replace(TARGET, params={"transport": "serial", "serial_address": "3"})
    with pytest.raises(BoxRegistryError, match="serial_address must be an integer"):
        registration(serial, SETTINGS, keyring)
    for text, problem in (("[]", "must hold an object"), ("{", "not valid JSON")):
        keys.write_text(text)
        with pytest.raises(BoxRegistryError, match=problem):
            read_key_file(keys)


async def test_audio_is_served_with_ranges_and_immutable_caching(tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    digest = hashlib.sha256(body).hexdigest()
    library = AudioLibrary(tmp_path / "audio", "http://unused", "mp3")
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / f"{digest}.mp3").write_bytes(body)
    server = TestServer(library.web_app())
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
            async with session.get(f"/audio/{digest}.mp3") as response:
                assert response.status == 200
                assert await response.read() == body
                assert response.headers["Content-Type"] == "audio/mpeg"
                assert "immutable" in response.headers["Cache-Control"]
                etag = response.headers["ETag"]
            ranged = {"Range": "bytes=100-199"}
            async with session.get(f"/audio/{digest}.mp3", headers=ranged) as response:
                assert response.status == 206
                assert await response.read() == body[100:200]
            cached = {"If-None-Match": etag}
            async with session.get(f"/audio/{digest}.mp3", headers=cached) as response:
                assert response.status == 304
            for name in ("0" * 64 + ".mp3", "..%2Fetc%2Fpasswd", f"{digest}.wav"):
                async with session.get(f"/audio/{name}") as response:
                    assert response.status == 404
    finally:
        await server.close()


async def test_published_audio_not_used_for_the_keep_time_is_deleted(tmp_path: Path) -> None:
    library = AudioLibrary(tmp_path / "audio", "http://unused", "mp3")
    (tmp_path / "audio").mkdir()
    month_ago = time.time() - 31 * 86400
    for name in ("old.mp3", "old.part", "fresh.mp3", "republished.mp3"):
        (tmp_path / "audio" / name).write_bytes(b"x")
        if name != "fresh.mp3":
            os.utime(tmp_path / "audio" / name, (month_ago, month_ago))
    render = tmp_path / "render.mp3"
    render.write_bytes(b"x")
    await asyncio.to_thread(library._store, render, tmp_path / "audio" / "republished.mp3")
    assert await library.prune(30 * 86400) == 2
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == [
        "fresh.mp3",
        "republished.mp3",
    ]


async def test_one_delivery_per_box_and_a_preview_naming_the_class(tmp_path: Path) -> None:
    alert = make_alert(status=Status.EXERCISE)
    alert.infos.append(replace(alert.infos[0], language="mn", headline="Mongolian headline"))
    message = AlertMessage(
        id="a-1", alert=alert, rendition=render(alert), expires_at=time.time() + 600
    )
    context = ChannelContext(data_dir=tmp_path, sender_name="测试", public_url="http://x")
    channel = LoudspeakerChannel("loudspeaker", SETTINGS, context)
    both = replace(TARGET, languages=("zh-CN", "mn"))
    planned = await channel.plan(message, [both, TARGET])
    assert [(p.target.id, p.part) for p in planned] == [("spk-1", 0), ("spk-1", 0)]
    preview = await channel.preview(message, [both, TARGET])
    assert (preview.targets, preview.unit) == (1, "boxes")
    assert preview.contents == ()  # this server renders no audio: said in a note
    assert "renders no audio" in preview.notes[0]
    assert preview.notes[-1] == "plays as simulated_drill at priority 30"
    assert preview.counts == {"repeat": 2}


def test_secrets_are_masked_in_a_config_dump_and_reach_the_hub(tmp_path: Path) -> None:
    table = {
        "type": "loudspeaker",
        "master_secret": "very-secret-box-provisioning",
        "mqtt": {"host": "broker", "username": "bc", "password": "very-secret-login"},
    }
    config = make_config(tmp_path, {"loudspeaker": table}, [])
    dumped = masked_config(config)
    assert dumped["channels"]["loudspeaker"]["master_secret"] == MASK
    assert dumped["channels"]["loudspeaker"]["mqtt"]["password"] == MASK
    assert "very-secret" not in json.dumps(dumped) + repr(config)
    mqtt = LoudspeakerChannelConfig.model_validate(table).hub_config().mqtt
    assert mqtt is not None and (mqtt.username, mqtt.password) == ("bc", "very-secret-login")
    assert mqtt.client_id == "broadcaster-hub" and "very-secret" not in repr(mqtt)


def test_the_bound_on_connections_awaiting_their_hello_reaches_the_hub() -> None:
    def listen(**tcp: object) -> TcpListenConfig | None:
        table = {"type": "loudspeaker", "master_secret": "s" * 32}
        tcp = {"host": "127.0.0.1", "port": 0, **tcp}
        return LoudspeakerChannelConfig.model_validate(table | {"tcp": tcp}).hub_config().tcp

    default, bounded = listen(), listen(max_pending_hellos=8)
    assert default is not None and default.max_pending_hellos == 256
    assert bounded is not None and bounded.max_pending_hellos == 8
    with pytest.raises(ValidationError, match="max_pending_hellos"):
        listen(max_pending_hellos=0)


def test_the_hub_keeps_its_hello_state_in_the_channel_directory(tmp_path: Path) -> None:
    table = {"type": "loudspeaker", "master_secret": "s" * 32, "tcp": {"port": 0}}
    settings = LoudspeakerChannelConfig.model_validate(table)
    tcp = settings.hub_config(tmp_path / "loudspeaker-speakers").tcp
    assert tcp is not None
    assert tcp.hello_state_file == tmp_path / "loudspeaker-speakers" / "tcp-hellos.json"
    no_directory = settings.hub_config().tcp
    assert no_directory is not None and no_directory.hello_state_file is None
