"""SpeakerFleetSimulator: many loudspeaker boxes in one process, for integrators and benchmarks.

Every simulated box is the real ``BoxAgent`` with the real uplink for its transport (TCP, TLS,
MQTT or a shared serial line); only the player differs: a RecordingPlayer notes what would have
played and when. Keys are derived from one fleet secret (``codec.derive_key``) so a hub can
register the same fleet without a key file. Fault hooks: playback time, a share of commands
lost on arrival, a delay before each command is handled, boxes that never connect, boxes
that can be stopped and restarted one by one, and boxes that predate the ``acks`` member of
commands (they acknowledge every stage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.speaker.agent import BoxAgent, BoxBehaviourConfig, BoxIdentity
from drivers.speaker.codec import derive_key
from drivers.speaker.errors import SpeakerConfigError
from drivers.speaker.hub import BoxRegistration, Transport
from drivers.speaker.link_url import LinkAddress, open_uplink, parse_link_url
from drivers.speaker.messages import AckStage, Command
from drivers.speaker.player import PlaybackLog, RecordingPlayer
from drivers.speaker.serial_frames import MAX_ADDRESS
from drivers.speaker.store import ClipStore, MediaFetcher, PlayJournal
from drivers.speaker.uplinks import MqttUplink, SerialBoxLine, TcpUplink

log = logging.getLogger(__name__)


def box_key(fleet_secret: bytes, box_id: str) -> bytes:
    """The key of a simulated box."""
    return derive_key(fleet_secret, f"box:{box_id}")


def area_key(fleet_secret: bytes, area_code: str) -> bytes:
    """The key of a simulated area."""
    return derive_key(fleet_secret, f"area:{area_code}")


@dataclass(frozen=True, slots=True)
class FleetSimulatorConfig:
    """What to simulate. ``persist_journals``: journals live in ``work_dir/state`` and survive
    restarts."""

    url: str
    fleet_secret: bytes
    boxes: int = 10
    first_index: int = 0
    id_prefix: str = "sim-"
    areas: tuple[str, ...] = ("150902",)
    work_dir: Path = Path("speaker-sim")
    persist_journals: bool = False
    play_seconds: float = 0.0
    fallback_clip: str | None = None
    heartbeat_s: float = 30.0
    first_serial_address: int = 1
    ca_file: Path | None = None
    drop_rate: float = 0.0
    command_delay_s: float = 0.0
    offline_boxes: int = 0
    ignore_acks: bool = False
    seed: int = 0
    command_qos: int = 1

    def __post_init__(self) -> None:
        if self.boxes < 1 or not self.areas:
            raise SpeakerConfigError("a fleet needs at least one box and one area")
        if not 0.0 <= self.drop_rate <= 1.0 or self.command_delay_s < 0:
            raise SpeakerConfigError("drop_rate must be 0..1 and command_delay_s positive")
        if not 0 <= self.offline_boxes <= self.boxes:
            raise SpeakerConfigError("offline_boxes must be 0..boxes")
        if self.command_qos not in (0, 1):
            raise SpeakerConfigError("command_qos must be 0 or 1")
        address = parse_link_url(self.url)
        last = self.first_serial_address + self.boxes - 1
        if address.scheme == "serial" and not 1 <= self.first_serial_address <= last <= MAX_ADDRESS:
            raise SpeakerConfigError(f"a serial line holds addresses 1..{MAX_ADDRESS}")

    def box_id(self, index: int) -> str:
        return f"{self.id_prefix}{index:05d}"

    def area_of(self, index: int) -> str:
        return self.areas[index % len(self.areas)]

    def keyed_areas_of(self, index: int) -> tuple[str, ...]:
        """Every area whose key the box holds (and whose MQTT topic it subscribes to)."""
        return (self.area_of(index),)


class FaultyBoxAgent(BoxAgent):
    """A BoxAgent that loses a share of incoming commands and handles the rest late; with
    ``ignore_acks`` it acknowledges every stage, as a box that predates ``acks`` does."""

    def __init__(
        self,
        *args: Any,
        drop_rate: float,
        delay_s: float,
        rng: random.Random,
        ignore_acks: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._drop_rate = drop_rate
        self._delay_s = delay_s
        self._rng = rng
        self._ignore_acks = ignore_acks

    def _acks_of(self, command: Command) -> tuple[AckStage, ...] | None:
        return None if self._ignore_acks else command.acks

    async def handle_command(self, data: bytes) -> None:
        if self._rng.random() < self._drop_rate:
            log.info("box %s: simulated loss of a command", self.box_id)
            return
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        await super().handle_command(data)


class SimulatedBox:
    """One box of the fleet: an agent and, except on serial lines, its own uplink."""

    def __init__(self, fleet: SpeakerFleetSimulator, index: int) -> None:
        config = fleet.config
        self.index = index
        self.box_id = config.box_id(index)
        areas = config.keyed_areas_of(index)
        identity = BoxIdentity(
            box_id=self.box_id,
            key=box_key(config.fleet_secret, self.box_id),
            area_keys={area: area_key(config.fleet_secret, area) for area in areas},
        )
        journal_path = config.work_dir / "state" / f"{self.box_id}.json"
        self.player = RecordingPlayer(fleet.log, fleet.play_seconds)
        self.agent = FaultyBoxAgent(
            identity,
            self.player,
            fleet.clips,
            fleet.fetcher,
            PlayJournal(journal_path if config.persist_journals else None),
            BoxBehaviourConfig(fallback_clip=config.fallback_clip, heartbeat_s=config.heartbeat_s),
            drop_rate=config.drop_rate,
            delay_s=config.command_delay_s,
            rng=fleet.rng,
            ignore_acks=config.ignore_acks,
        )
        self.offline = index >= config.first_index + config.boxes - config.offline_boxes
        self.uplink: TcpUplink | MqttUplink | None = None
        if fleet.address.scheme != "serial" and not self.offline:
            self.uplink = open_uplink(
                self.agent, fleet.address, fleet.tls, command_qos=config.command_qos
            )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.agent.run())]
        if self.uplink is not None:
            self._tasks.append(loop.create_task(self.uplink.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


class SpeakerFleetSimulator:
    """Runs a fleet of simulated boxes; ``log`` holds every playback."""

    def __init__(self, config: FleetSimulatorConfig) -> None:
        self.config = config
        self.address: LinkAddress = parse_link_url(config.url)
        self.tls: ssl.SSLContext | None = None
        if self.address.uses_tls:
            self.tls = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file else None
            )
        self.log = PlaybackLog()
        self.rng = random.Random(config.seed)
        self.play_seconds = config.play_seconds
        self.clips = ClipStore(config.work_dir / "clips")
        self.fetcher = MediaFetcher(config.work_dir / "cache")
        first = config.first_index
        self.boxes = [SimulatedBox(self, i) for i in range(first, first + config.boxes)]
        self._line: SerialBoxLine | None = None
        self._line_task: asyncio.Task[None] | None = None

    def registrations(
        self, transport: Transport, serial_line: str = "line"
    ) -> list[BoxRegistration]:
        """How a hub registers this fleet."""
        return [
            BoxRegistration(
                box_id=box.box_id,
                key=box_key(self.config.fleet_secret, box.box_id),
                transport=transport,
                areas=frozenset(self.config.keyed_areas_of(box.index)),
                serial_line=serial_line if transport == "serial" else None,
                serial_address=self.serial_address(box) if transport == "serial" else None,
            )
            for box in self.boxes
        ]

    def serial_address(self, box: SimulatedBox) -> int:
        return self.config.first_serial_address + box.index - self.config.first_index

    def set_play_seconds(self, seconds: float) -> None:
        """How long each playback lasts from now on, for every box."""
        self.play_seconds = seconds
        for box in self.boxes:
            box.player.duration_s = seconds

    def box(self, box_id: str) -> SimulatedBox:
        return next(b for b in self.boxes if b.box_id == box_id)

    async def start(self) -> None:
        """Start every box (and the shared serial line)."""
        for box in self.boxes:
            box.start()
        if self.address.scheme == "serial":
            agents = {self.serial_address(b): b.agent for b in self.boxes if not b.offline}
            self._line = SerialBoxLine(self.address.serial_url, agents, self.address.baudrate)
            self._line_task = asyncio.get_running_loop().create_task(self._line.run())

    async def wait_connected(self, within_s: float) -> None:
        """Wait until every TCP/MQTT box is connected; raises TimeoutError."""
        async with asyncio.timeout(within_s):
            for box in self.boxes:
                if box.uplink is not None:
                    await box.uplink.connected.wait()

    async def restart(self, box_id: str) -> SimulatedBox:
        """Stop one box as a power cut would, and start a fresh agent with the same state."""
        old = self.box(box_id)
        await old.stop()
        new = SimulatedBox(self, old.index)
        self.boxes[self.boxes.index(old)] = new
        if self._line is not None:
            self._line.replace_agent(self.serial_address(new), new.agent)
        new.start()
        return new

    async def stop(self) -> None:
        """Stop every box, the serial line and the shared downloader."""
        await asyncio.gather(*(box.stop() for box in self.boxes))
        if self._line_task is not None:
            self._line_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._line_task
            self._line_task = None
        await self.fetcher.aclose()


def played_boxes(log: PlaybackLog, alert_id: str) -> Sequence[str]:
    """Ids of the boxes that completed ``alert_id``, sorted."""
    return sorted({r.request.box_id for r in log.completed(alert_id=alert_id)})
