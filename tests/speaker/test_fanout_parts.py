"""The fan-out parts of the driver: a command template signs exactly what ``encode_command``
signs, and the lean fleet answers a real hub over TCP and over a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from drivers.speaker.codec import (
    CommandTemplate,
    area_target,
    box_target,
    decode_command,
    encode_command,
)
from drivers.speaker.errors import SignatureError, SpeakerProtocolError
from drivers.speaker.hub import (
    BoxRegistration,
    MqttBrokerConfig,
    SpeakerHub,
    SpeakerHubConfig,
    TcpListenConfig,
)
from drivers.speaker.messages import AckStage, PlayClip, PlayUrl, Stop
from drivers.speaker.simulator import area_key, box_key
from drivers.speaker.simulator_lean import LeanFleet, LeanFleetConfig
from drivers.speaker.testing import HubEventRecorder, MosquittoBroker, play_url_command

KEY = bytes(range(32))
SECRET = b"lean-fleet-secret-0123456789abcdef"
NOW = datetime(2026, 12, 1, 8, 0, 0, 125000, tzinfo=UTC)


@pytest.mark.parametrize(
    "command",
    [
        PlayUrl(
            cmd_id="x", alert_id='s,"id" 中\\', issued_at=NOW, expires_at=NOW + timedelta(hours=1),
            url="https://h/a.mp3?x=1&y=2", sha256="a" * 64, priority=100, volume=None,
            fallback_clip="flood",
        ),
        PlayClip(
            cmd_id="x", alert_id="s,i", issued_at=NOW, expires_at=NOW + timedelta(hours=1),
            clip_id="flood", sha256="b" * 64, priority=50, volume=70, repeat=3,
        ),
        Stop(cmd_id="x", alert_id="s,i", issued_at=NOW, expires_at=NOW + timedelta(minutes=5)),
    ],
)  # fmt: skip
@pytest.mark.parametrize("target", [box_target("sim-00001"), area_target("150902")])
def test_a_template_signs_byte_for_byte_what_encode_command_signs(
    command: PlayUrl | PlayClip | Stop, target: str
) -> None:
    template = CommandTemplate(command)
    for cmd_id in ("play-0123abcd", "stop-ffff", "a:b.c-d_e"):
        signed = template.sign(cmd_id, target, KEY)
        assert signed == encode_command(replace(command, cmd_id=cmd_id), target, KEY)
        assert decode_command(signed, lambda _t: KEY) == (target, replace(command, cmd_id=cmd_id))
    with pytest.raises(SignatureError):
        decode_command(template.sign("play-1", target, KEY), lambda _t: bytes(32))


@pytest.mark.parametrize(
    ("cmd_id", "target"),
    [('play-"x', "box:b"), ("play-1", 'box:b","to":"area:1'), ("play-1", "group:1"), ("", "box:b")],
)
def test_a_template_refuses_ids_and_targets_that_would_change_the_json(
    cmd_id: str, target: str
) -> None:
    template = CommandTemplate(
        Stop(cmd_id="x", alert_id="a", issued_at=NOW, expires_at=NOW + timedelta(minutes=5))
    )
    with pytest.raises(SpeakerProtocolError):
        template.sign(cmd_id, target, KEY)


@pytest.mark.parametrize("transport", ["tcp", "mqtt"])
async def test_lean_boxes_verify_ack_and_note_arrival(
    transport: str, mosquitto: MosquittoBroker
) -> None:
    ids = [f"sim-{n:05d}" for n in range(20)]
    regs = [BoxRegistration(b, box_key(SECRET, b), transport) for b in ids]  # type: ignore[arg-type]
    mqtt = MqttBrokerConfig(
        mosquitto.host, mosquitto.port, area_keys={"150902": area_key(SECRET, "150902")}
    )
    config = SpeakerHubConfig(
        tcp=TcpListenConfig("127.0.0.1", 0) if transport == "tcp" else None,
        mqtt=mqtt if transport == "mqtt" else None,
    )
    async with SpeakerHub(config, regs) as hub:
        recorder = HubEventRecorder(hub)
        url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
        if transport == "tcp":
            url = f"tcp://127.0.0.1:{hub.tcp_port}"
        fleet = LeanFleet(LeanFleetConfig(url, SECRET, boxes=20, areas=("150902",)))
        await fleet.start()
        try:
            await recorder.wait_for(lambda: hub.online_count == 20)
            command = play_url_command("play-1", "s,a", "http://127.0.0.1:9/a.wav", b"x")
            for box_id in ids:
                await hub.send_command(box_id, command)
            await hub.send_command(ids[0], command)  # repeated: its ack again, no new play
            forged = encode_command(replace(command, cmd_id="play-forged"), box_target(ids[1]), KEY)
            await hub.send_signed(ids[1], forged)
            await recorder.wait_for(
                lambda: len(recorder.acked_boxes("play-1", AckStage.FINISHED)) == 20
            )
            for stage in (AckStage.ACCEPTED, AckStage.STARTED):
                assert recorder.acked_boxes("play-1", stage) == set(ids)
            await recorder.wait_for(
                lambda: len(recorder.acks("play-1", AckStage.FINISHED, ids[0])) == 2
            )
            assert len(recorder.acks("play-1", AckStage.ACCEPTED, ids[0])) == 1
            assert len(fleet.arrivals()) == 20
            assert recorder.acks("play-forged") == []
            if transport == "tcp":  # a dropped box connects again, as a real one does
                hub.unregister(ids[5])
                hub.register(regs[5])
                await recorder.wait_for(lambda: hub.online_count == 20, within_s=10)
            else:
                area = replace(command, cmd_id="play-area")
                await hub.send_area_command("150902", area)
                await recorder.wait_for(
                    lambda: len(recorder.acked_boxes("play-area", AckStage.FINISHED)) == 20
                )
        finally:
            fleet.close()
            await recorder.close()


async def test_lean_boxes_finish_a_play_command_once_it_has_played() -> None:
    """With ``play_s``, a lean box reports ``started`` at once and ``finished`` that long
    after, timed then; a repeat meanwhile gets ``started`` again, one after it ``finished``."""
    ids = [f"sim-{n:05d}" for n in range(5)]
    regs = [BoxRegistration(b, box_key(SECRET, b), "tcp") for b in ids]
    config = SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0))
    async with SpeakerHub(config, regs) as hub:
        recorder = HubEventRecorder(hub)
        url = f"tcp://127.0.0.1:{hub.tcp_port}"
        fleet = LeanFleet(LeanFleetConfig(url, SECRET, boxes=5, play_s=0.6))
        await fleet.start()
        try:
            await recorder.wait_for(lambda: hub.online_count == 5)
            command = play_url_command("play-1", "s,a", "http://127.0.0.1:9/a.wav", b"x")
            sent = datetime.now(UTC)
            for box_id in ids:
                await hub.send_command(box_id, command)
            await recorder.wait_for(
                lambda: len(recorder.acked_boxes("play-1", AckStage.STARTED)) == 5
            )
            assert recorder.acked_boxes("play-1", AckStage.FINISHED) == set()
            await hub.send_command(ids[0], command)  # while it plays: its started again
            await recorder.wait_for(
                lambda: len(recorder.acks("play-1", AckStage.STARTED, ids[0])) == 2
            )
            stop = Stop(
                cmd_id="stop-1",
                alert_id="s,a",
                issued_at=sent,
                expires_at=sent + timedelta(minutes=5),
            )
            await hub.send_command(ids[1], stop)
            await recorder.wait_for(
                lambda: recorder.acked_boxes("stop-1", AckStage.FINISHED) == {ids[1]}
            )
            assert recorder.acked_boxes("play-1", AckStage.FINISHED) == set()
            await recorder.wait_for(
                lambda: len(recorder.acked_boxes("play-1", AckStage.FINISHED)) == 5, within_s=5
            )
            for box_id in ids:
                (finished,) = recorder.acks("play-1", AckStage.FINISHED, box_id)
                assert (finished.at - sent).total_seconds() >= 0.55
            await hub.send_command(ids[0], command)  # after it played: finished again
            await recorder.wait_for(
                lambda: len(recorder.acks("play-1", AckStage.FINISHED, ids[0])) == 2
            )
        finally:
            fleet.close()
            await recorder.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_the_fleet_command_answers_over_mqtt_on_either_loop(
    loop: str, mosquitto: MosquittoBroker
) -> None:
    """``simulator_lean_cli --loop``: boxes in their own process verify and acknowledge an area
    command through a real Mosquitto, and say which event loop they ran on."""
    ids = [f"sim-{n:05d}" for n in range(3)]
    regs = [BoxRegistration(b, box_key(SECRET, b), "mqtt") for b in ids]
    mqtt = MqttBrokerConfig(
        mosquitto.host, mosquitto.port, area_keys={"150902": area_key(SECRET, "150902")}
    )
    async with SpeakerHub(SpeakerHubConfig(mqtt=mqtt), regs) as hub:
        recorder = HubEventRecorder(hub)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "drivers.speaker.simulator_lean_cli",
            "--link", f"mqtt://{mosquitto.host}:{mosquitto.port}", "--fleet-secret", SECRET.hex(),
            "--boxes", "3", "--areas", "150902", "--loop", loop,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        try:
            assert await process.stdout.readline() == b"ready 3\n"
            await recorder.wait_for(lambda: hub.online_count == 3)
            command = play_url_command("play-1", "s,a", "http://127.0.0.1:9/a.wav", b"x")
            await hub.send_area_command("150902", command)
            await recorder.wait_for(
                lambda: recorder.acked_boxes("play-1", AckStage.FINISHED) == set(ids)
            )
            process.stdin.write(b"arrivals\n")
            answer = json.loads(await process.stdout.readline())
            assert len(answer["arrivals"]) == 3 and answer["loop"] == loop
        finally:
            process.stdin.close()
            await asyncio.wait_for(process.wait(), 30)
            await recorder.close()
