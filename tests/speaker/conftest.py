"""Fixtures for the loudspeaker driver tests: leak checks, a real Mosquitto, an HTTP media
server, and a rig that runs a SpeakerHub against a simulated fleet over one transport."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from drivers.speaker.hub import MqttBrokerConfig, SpeakerHub, SpeakerHubConfig, TcpListenConfig
from drivers.speaker.hub_serial import SerialLineConfig
from drivers.speaker.messages import PlayUrl
from drivers.speaker.simulator import FleetSimulatorConfig, SpeakerFleetSimulator, area_key
from drivers.speaker.testing import (
    HubEventRecorder,
    MediaServer,
    MosquittoBroker,
    NullModem,
    play_url_command,
)
from tests.speaker import agent_rig

FLEET_SECRET = b"fleet-secret-for-tests-0123456789"
AREAS = ("150902", "150921")
AUDIO = b"RIFF-not-really-audio" * 100
FALLBACK = b"stored generic warning clip"


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running or serial threads alive."""
    yield
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftover, f"leaked tasks: {leftover}"
    threads = [t.name for t in threading.enumerate() if t.name.startswith(("serial", "null-"))]
    assert not threads, f"leaked threads: {threads}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path) as broker:
        yield broker


@pytest.fixture
def null_modem() -> Iterator[NullModem]:
    modem = NullModem()
    yield modem
    modem.close()


@pytest.fixture
async def media_server() -> AsyncIterator[MediaServer]:
    async with MediaServer({"alert.wav": AUDIO}) as server:
        yield server


@pytest.fixture
def make_play(media_server: MediaServer) -> Callable[..., PlayUrl]:
    """Build a PlayUrl for the served test audio (or ``url=`` something else)."""

    def make(cmd_id: str, alert_id: str, url: str | None = None, **kwargs: object) -> PlayUrl:
        return play_url_command(
            cmd_id,
            alert_id,
            url or media_server.url("alert.wav"),
            AUDIO,
            **kwargs,  # type: ignore[arg-type]
        )

    return make


class Rig:
    """A SpeakerHub and a simulated fleet of four boxes in two areas over one transport."""

    areas = AREAS

    def __init__(self, transport: str, hub: SpeakerHub, fleet: SpeakerFleetSimulator) -> None:
        self.transport = transport
        self.hub = hub
        self.fleet = fleet
        self.events = HubEventRecorder(hub)
        self.box_ids = [b.box_id for b in fleet.boxes]

    def area_boxes(self, area: str) -> set[str]:
        return set(self.hub.boxes_in_area(area))

    async def send_to_area(self, area: str, command: PlayUrl) -> None:
        """One area-topic publish on MQTT; one command per box on point-to-point links."""
        if self.transport == "mqtt":
            await self.hub.send_area_command(area, command)
        else:
            boxes = self.area_boxes(area)
            await asyncio.gather(*(self.hub.send_command(b, command) for b in boxes))

    async def wait_online(self, within_s: float = 10.0) -> None:
        everyone = set(self.box_ids)
        await self.events.wait_for(lambda: self.hub.online_boxes() >= everyone, within_s)
        assert self.hub.online_count == len(everyone)


@pytest.fixture(params=["tcp", "serial", "mqtt"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    transport: str = request.param
    work = tmp_path / "fleet"
    (work / "clips").mkdir(parents=True)
    (work / "clips" / "generic").write_bytes(FALLBACK)
    cleanups: list[Callable[[], None]] = []
    if transport == "tcp":
        config = SpeakerHubConfig(tcp=TcpListenConfig(host="127.0.0.1", port=0))
    elif transport == "serial":
        modem = NullModem()
        cleanups.append(modem.close)
        line = SerialLineConfig(
            name="line", url=modem.path_a, reply_timeout_s=0.1, poll_interval_s=0.05
        )
        config = SpeakerHubConfig(serial_lines=(line,))
    else:
        broker = MosquittoBroker(tmp_path).__enter__()
        cleanups.append(lambda: broker.__exit__(None, None, None))
        keys = {area: area_key(FLEET_SECRET, area) for area in AREAS}
        mqtt = MqttBrokerConfig(host=broker.host, port=broker.port, area_keys=keys)
        config = SpeakerHubConfig(mqtt=mqtt)
    hub = SpeakerHub(config)
    await hub.start()
    if transport == "tcp":
        url = f"tcp://127.0.0.1:{hub.tcp_port}"
    elif transport == "serial":
        url = f"serial://{modem.path_b}"
    else:
        url = f"mqtt://{broker.host}:{broker.port}"
    fleet = SpeakerFleetSimulator(
        FleetSimulatorConfig(
            url=url,
            fleet_secret=FLEET_SECRET,
            boxes=4,
            areas=AREAS,
            work_dir=work,
            persist_journals=True,
            play_seconds=0.05,
            fallback_clip="generic",
        )
    )
    for registration in fleet.registrations(transport):  # type: ignore[arg-type]
        hub.register(registration)
    rig = Rig(transport, hub, fleet)
    await fleet.start()
    try:
        await rig.wait_online()
        yield rig
    finally:
        await fleet.stop()
        await rig.events.close()
        await hub.stop()
        for cleanup in reversed(cleanups):
            cleanup()


@pytest.fixture
async def media() -> AsyncIterator[MediaServer]:
    async with MediaServer(
        {"a.wav": agent_rig.AUDIO, "wrong.wav": b"not what the hash says"}
    ) as server:
        yield server


@pytest.fixture
async def box(tmp_path: Path, media: MediaServer) -> AsyncIterator[agent_rig.Box]:
    box = agent_rig.Box(tmp_path, media)
    box.start()
    yield box
    await box.stop()
    await box.fetcher.aclose()
