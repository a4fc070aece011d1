"""The TCP hub bounds the connections still awaiting their hello (docs/protocols/speaker.md,
section 4.1): past the bound a new connection is closed at once, so silent connections cannot
exhaust the server, while boxes already connected keep working and a box connects again as
soon as there is room."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.speaker.errors import SpeakerConfigError
from drivers.speaker.hub import SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.messages import AckStage, SetVolume
from drivers.speaker.simulator import FleetSimulatorConfig, SpeakerFleetSimulator
from drivers.speaker.testing import HubEventRecorder

SECRET = b"pending-hello-secret-0123456789ab"
BOUND = 4
EXTRA = 3


@pytest.fixture
async def hub() -> AsyncIterator[SpeakerHub]:
    listen = TcpListenConfig("127.0.0.1", 0, max_pending_hellos=BOUND)
    async with SpeakerHub(SpeakerHubConfig(tcp=listen)) as hub:
        yield hub


def fleet_of_one(hub: SpeakerHub, tmp_path: Path, index: int) -> SpeakerFleetSimulator:
    """A real box agent that connects to ``hub`` over TCP, registered with it."""
    fleet = SpeakerFleetSimulator(
        FleetSimulatorConfig(
            url=f"tcp://127.0.0.1:{hub.tcp_port}",
            fleet_secret=SECRET,
            boxes=1,
            first_index=index,
            work_dir=tmp_path / f"box-{index}",
        )
    )
    for registration in fleet.registrations("tcp"):
        hub.register(registration)
    return fleet


async def closed_at_once(reader: asyncio.StreamReader) -> bool:
    """Whether the hub closes the connection well before its 10 s hello timeout."""
    try:
        async with asyncio.timeout(1):
            return await reader.read() == b""
    except TimeoutError:
        return False


async def volume_reaches(hub: SpeakerHub, recorder: HubEventRecorder, box_id: str) -> None:
    now = dt.datetime.now(dt.UTC)
    command = SetVolume(
        cmd_id=f"volume-{box_id}",
        alert_id="volume",
        issued_at=now,
        expires_at=now + dt.timedelta(minutes=1),
        volume=40,
    )
    await hub.send_command(box_id, command)
    await recorder.wait_acks(command.cmd_id, AckStage.FINISHED, {box_id})


async def test_connections_past_the_bound_are_closed_at_once(
    hub: SpeakerHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = HubEventRecorder(hub)
    fleet, late = fleet_of_one(hub, tmp_path, 0), fleet_of_one(hub, tmp_path, 1)
    box_id, late_id = fleet.boxes[0].box_id, late.boxes[0].box_id
    silent: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    await fleet.start()
    try:
        await recorder.wait_for(lambda: box_id in hub.online_boxes())
        caplog.set_level(logging.WARNING, logger="drivers.speaker.hub_tcp")
        for _ in range(BOUND + EXTRA):
            silent.append(await asyncio.open_connection("127.0.0.1", hub.tcp_port))
        closed = await asyncio.gather(*(closed_at_once(reader) for reader, _ in silent))
        assert closed == [False] * BOUND + [True] * EXTRA
        refusals = [r for r in caplog.records if "await their hello" in r.getMessage()]
        assert len(refusals) == 1

        # The box that had said hello is untouched by the flood.
        assert hub.online_boxes() == {box_id}
        await volume_reaches(hub, recorder, box_id)

        # Once the silent connections go, another box connects and says hello.
        for _, writer in silent:
            writer.close()
            await writer.wait_closed()
        silent.clear()
        await late.start()
        await recorder.wait_for(lambda: late_id in hub.online_boxes())
        await volume_reaches(hub, recorder, late_id)
    finally:
        for _, writer in silent:
            writer.close()
            await writer.wait_closed()
        await late.stop()
        await fleet.stop()
        await recorder.close()


def test_the_bound_must_allow_a_connection() -> None:
    with pytest.raises(SpeakerConfigError, match="max_pending_hellos"):
        SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0, max_pending_hellos=0)))
