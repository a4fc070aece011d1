"""The fleet simulator's fault hooks: lost commands, late handling, boxes that never connect."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from drivers.speaker.errors import SpeakerConfigError
from drivers.speaker.hub import SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.messages import AckStage
from drivers.speaker.simulator import FleetSimulatorConfig, SpeakerFleetSimulator
from drivers.speaker.testing import HubEventRecorder, MediaServer, play_url_command

SECRET = b"simulator-test-secret-0123456789"
AUDIO = b"audio" * 100


async def run_fleet(tmp_path: Path, **faults: object):
    hub = SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0)))
    await hub.start()
    config = FleetSimulatorConfig(
        url=f"tcp://127.0.0.1:{hub.tcp_port}",
        fleet_secret=SECRET,
        boxes=3,
        work_dir=tmp_path,
        **faults,  # type: ignore[arg-type]
    )
    fleet = SpeakerFleetSimulator(config)
    for registration in fleet.registrations("tcp"):
        hub.register(registration)
    await fleet.start()
    return hub, fleet, HubEventRecorder(hub)


async def test_lost_commands_late_handling_and_boxes_that_never_connect(tmp_path: Path) -> None:
    async with MediaServer({"a.wav": AUDIO}) as media:
        hub, fleet, recorder = await run_fleet(tmp_path, offline_boxes=1, command_delay_s=0.3)
        try:
            await fleet.wait_connected(5)
            await recorder.wait_for(lambda: hub.online_count == 2)
            offline = fleet.boxes[2].box_id
            assert offline not in hub.online_boxes()
            command = play_url_command("c1", "a1", media.url("a.wav"), AUDIO)
            began = time.monotonic()
            online = [b.box_id for b in fleet.boxes[:2]]
            await asyncio.gather(*(hub.send_command(b, command) for b in online))
            await recorder.wait_acks("c1", AckStage.ACCEPTED, set(online))
            assert time.monotonic() - began >= 0.3
        finally:
            await fleet.stop()
            await recorder.close()
            await hub.stop()


async def test_a_fleet_that_loses_every_command_never_acknowledges(tmp_path: Path) -> None:
    async with MediaServer({"a.wav": AUDIO}) as media:
        hub, fleet, recorder = await run_fleet(tmp_path, drop_rate=1.0)
        try:
            await recorder.wait_for(lambda: hub.online_count == 3)
            box = fleet.boxes[0].box_id
            await hub.send_command(box, play_url_command("c1", "a1", media.url("a.wav"), AUDIO))
            marker = play_url_command("c2", "a2", media.url("a.wav"), AUDIO)
            await hub.send_command(box, marker)
            with pytest.raises(TimeoutError):
                await recorder.wait_for(lambda: bool(recorder.acks()), 0.5)
            assert fleet.log.records == []
        finally:
            await fleet.stop()
            await recorder.close()
            await hub.stop()


@pytest.mark.parametrize(
    "faults",
    [{"drop_rate": 1.5}, {"command_delay_s": -1}, {"offline_boxes": 4}, {"boxes": 0}],
)
def test_invalid_fleet_settings_are_refused(tmp_path: Path, faults: dict[str, float]) -> None:
    with pytest.raises(SpeakerConfigError):
        FleetSimulatorConfig(
            url="tcp://127.0.0.1:1",
            fleet_secret=SECRET,
            **{"boxes": 3, "work_dir": tmp_path} | faults,  # type: ignore[arg-type]
        )
