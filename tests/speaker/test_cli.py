"""``broadcaster-box`` and ``broadcaster sim speaker`` as real processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import wave
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from drivers.mqtt.testing import password_listener
from drivers.speaker.agent_cli import main as agent_main
from drivers.speaker.errors import SpeakerConnectionError
from drivers.speaker.hub import (
    BoxRegistration,
    MqttBrokerConfig,
    SpeakerHub,
    SpeakerHubConfig,
    TcpListenConfig,
)
from drivers.speaker.messages import AckStage, BoxAck
from drivers.speaker.simulator import box_key
from drivers.speaker.testing import (
    HubEventRecorder,
    MediaServer,
    MosquittoBroker,
    play_url_command,
)

KEY = bytes(range(100, 132))


def tone_wav(path: Path) -> bytes:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x10" * 800)
    return path.read_bytes()


def write_config(tmp_path: Path, link: str, played: Path) -> Path:
    # ffmpeg decodes the file for real and writes its length, standing in for a sound card.
    player = [
        "sh",
        "-c",
        'ffmpeg -v error -i "$1" -f null - && echo "$1 $2" >> "$3"',
        "sh",
        "{path}",
        "{volume}",
        str(played),
    ]
    config = tmp_path / "box.toml"
    config.write_text(
        f'box_id = "box-7"\nkey = "{KEY.hex()}"\nlink = "{link}"\nstate_dir = "state"\n'
        f"player = {json.dumps(player)}\nheartbeat_s = 30\n"
    )
    return config


async def start_agent(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.speaker.agent_cli",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def wav_server(tmp_path: Path) -> AsyncIterator[tuple[MediaServer, bytes]]:
    audio = tone_wav(tmp_path / "tone.wav")
    async with MediaServer({"tone.wav": audio}) as server:
        yield server, audio


async def test_agent_process_plays_through_its_player_command_and_stops_cleanly(
    tmp_path: Path, wav_server: tuple[MediaServer, bytes]
) -> None:
    server, audio = wav_server
    box = BoxRegistration(box_id="box-7", key=KEY, transport="tcp")
    hub = SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0)), [box])
    played = tmp_path / "played.txt"
    async with hub:
        recorder = HubEventRecorder(hub)
        config = write_config(tmp_path, f"tcp://127.0.0.1:{hub.tcp_port}", played)
        process = await start_agent(config)
        try:
            await recorder.wait_for(lambda: "box-7" in hub.online_boxes(), 10)
            command = play_url_command("c1", "a1", server.url("tone.wav"), audio)
            await hub.send_command("box-7", command)
            await recorder.wait_acks("c1", AckStage.FINISHED, {"box-7"}, within_s=10)
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                assert await process.wait() == 0
            await recorder.wait_for(lambda: recorder.presence("box-7") == [True, False])
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await recorder.close()
    cached = tmp_path / "state" / "cache" / hashlib.sha256(audio).hexdigest()
    assert played.read_text().split() == [str(cached), "70"]
    journal = json.loads((tmp_path / "state" / "journal.json").read_text())
    assert [(e["cmd_id"], e["stage"]) for e in journal["entries"]] == [("c1", "finished")]


async def test_killed_mqtt_box_is_marked_offline_by_its_last_will(tmp_path: Path) -> None:
    with MosquittoBroker(tmp_path) as broker:
        box = BoxRegistration(box_id="box-7", key=KEY, transport="mqtt")
        mqtt = MqttBrokerConfig(host=broker.host, port=broker.port)
        async with SpeakerHub(SpeakerHubConfig(mqtt=mqtt), [box]) as hub:
            recorder = HubEventRecorder(hub)
            link = f"mqtt://{broker.host}:{broker.port}"
            process = await start_agent(write_config(tmp_path, link, tmp_path / "p"))
            try:
                await recorder.wait_for(lambda: "box-7" in hub.online_boxes(), 10)
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()
                # the recorder sees hub events after the hub's own state changes: wait on it
                await recorder.wait_for(lambda: recorder.presence("box-7") == [True, False], 10)
                assert "box-7" not in hub.online_boxes()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                await recorder.close()


def test_bad_configuration_is_one_clear_line(tmp_path: Path, capsys) -> None:
    config = tmp_path / "box.toml"
    config.write_text('box_id = "b"\nkey = "abcd"\nlink = "tcp://h:1"\n')
    assert agent_main(["--config", str(config), "--check-config"]) == 2
    assert capsys.readouterr().err.strip() == (
        "broadcaster-box: configuration error: key: key must be at least 16 bytes"
    )
    for text, message in [
        ("box_id = [", "not valid TOML"),
        (f'box_id = "b"\nkey = "{KEY.hex()}"\nlink = "ftp://h"', "scheme"),
        (f'box_id = "b"\nkey = "{KEY.hex()}"\nlink = "serial:///dev/x"', "serial_address"),
        (f'box_id = "b"\nkey = "{KEY.hex()}"\nlink = "tcp://h"\nvolume = 3', "unknown settings"),
        ('box_id = "b"\nkey_file = "nope"\nlink = "tcp://h"', "cannot read"),
    ]:
        config.write_text(text)
        assert agent_main(["--config", str(config), "--check-config"]) == 2
        assert message in capsys.readouterr().err
    assert agent_main(["--config", str(tmp_path / "absent.toml")]) == 2


def test_dump_config_masks_every_key(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, "mqtt://broker/warn", tmp_path / "p")
    config.write_text(config.read_text() + f'[areas]\n150902 = "{(KEY * 2).hex()}"\n')
    assert agent_main(["--config", str(config), "--dump-config"]) == 0
    out = capsys.readouterr().out
    dumped = json.loads(out)
    assert dumped["key"] == "********" and dumped["areas"] == {"150902": "********"}
    assert dumped["link"]["prefix"] == "warn"
    assert KEY.hex() not in out and KEY.hex()[:16] not in out


@pytest.mark.parametrize(("transport", "loop"), [("tcp", "asyncio"), ("mqtt", "uvloop")])
async def test_simulator_command_runs_a_fleet_and_reports_playbacks(
    tmp_path: Path, wav_server: tuple[MediaServer, bytes], transport: str, loop: str
) -> None:
    server, audio = wav_server
    secret = b"cli-fleet-secret-0123456789abcdef"
    ids = [f"sim-{i:05d}" for i in range(3)]
    boxes = [BoxRegistration(box_id=b, key=box_key(secret, b), transport=transport) for b in ids]
    report = tmp_path / "report.jsonl"
    async with AsyncExitStack() as stack:
        if transport == "mqtt":
            broker = stack.enter_context(MosquittoBroker(tmp_path))
            config = SpeakerHubConfig(mqtt=MqttBrokerConfig(broker.host, broker.port))
        else:
            config = SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0))
        hub = await stack.enter_async_context(SpeakerHub(config, boxes))
        link = (
            f"mqtt://{broker.host}:{broker.port}"
            if transport == "mqtt"
            else f"tcp://127.0.0.1:{hub.tcp_port}"
        )
        recorder = HubEventRecorder(hub)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "drivers.speaker.simulator_cli",
            "--link",
            link,
            "--loop",
            loop,
            "--fleet-secret",
            secret.hex(),
            "--boxes",
            "3",
            "--work-dir",
            str(tmp_path / "sim"),
            "--report",
            str(report),
            "--ignore-acks",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            async with asyncio.timeout(10):
                assert await process.stdout.readline() == b"ready 3\n"
            await recorder.wait_for(lambda: hub.online_boxes() == set(ids))
            command = play_url_command("c1", "a1", server.url("tone.wav"), audio)
            command = replace(command, acks=(AckStage.FINISHED,))
            await asyncio.gather(*(hub.send_command(b, command) for b in ids))
            await recorder.wait_acks("c1", AckStage.FINISHED, set(ids))
            # --ignore-acks: boxes as old as the member's absence acknowledge every stage
            accepted = {
                e.box_id
                for e in recorder.events
                if isinstance(e, BoxAck) and e.stage is AckStage.ACCEPTED
            }
            assert accepted == set(ids)
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(10):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await recorder.close()
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(line["box_id"] for line in lines) == ids
    assert {(line["alert_id"], line["source"], line["interrupted"]) for line in lines} == {
        ("a1", "url", False)
    }
    assert server.requests == 1


async def test_box_and_server_log_in_to_a_broker_that_requires_it(
    tmp_path: Path, wav_server: tuple[MediaServer, bytes], capsys
) -> None:
    server, audio = wav_server
    users = {"box-box-7": "box-secret", "broadcaster": "hub-secret"}
    with MosquittoBroker(tmp_path, password_listener(tmp_path, users)) as broker:
        box = BoxRegistration(box_id="box-7", key=KEY, transport="mqtt")
        login = {"host": broker.host, "port": broker.port, "username": "broadcaster"}
        with pytest.raises(SpeakerConnectionError, match=r"not authori[sz]ed"):
            await SpeakerHub(
                SpeakerHubConfig(mqtt=MqttBrokerConfig(**login, password="wrong")), [box]
            ).start()
        mqtt = MqttBrokerConfig(**login, password="hub-secret")
        async with SpeakerHub(SpeakerHubConfig(mqtt=mqtt), [box]) as hub:
            recorder = HubEventRecorder(hub)
            config = write_config(tmp_path, f"mqtt://{broker.host}:{broker.port}", tmp_path / "p")
            (tmp_path / "mqtt-password").write_text("box-secret\n")
            config.write_text(config.read_text() + 'mqtt_password_file = "mqtt-password"\n')
            assert agent_main(["--config", str(config), "--dump-config"]) == 0
            dumped = capsys.readouterr().out
            assert "box-secret" not in dumped
            assert json.loads(dumped)["mqtt_username"] == "box-box-7"
            process = await start_agent(config)
            try:
                await recorder.wait_for(lambda: "box-7" in hub.online_boxes(), 10)
                command = play_url_command("c1", "a1", server.url("tone.wav"), audio)
                await hub.send_command("box-7", command)
                await recorder.wait_acks("c1", AckStage.FINISHED, {"box-7"}, within_s=10)
            finally:
                process.kill()
                await process.wait()
                await recorder.close()
