"""``simulate = true``: the channel's registry boxes as in-process simulated boxes, for demos.

Each simulated box is the real box agent (``drivers.speaker.SpeakerFleetSimulator``) with a
recording player, connected over TCP on loopback to the channel's own hub, with the box id
and area of its registry target and the key derived from the channel's ``master_secret`` (the
same derivation the hub uses). Boxes download audio from the server like real ones; playback
is simulated (``simulated_play_seconds``). At most ``simulated_boxes_max`` boxes are simulated
(the first ones of the registry); the rest stay offline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from drivers.speaker import BoxRegistration, FleetSimulatorConfig, SpeakerFleetSimulator

log = logging.getLogger(__name__)

#: How long the demo waits for its simulated boxes to connect before serving anyway.
_CONNECT_WITHIN_S = 30.0


@dataclass(frozen=True, slots=True)
class RegistryFleetConfig(FleetSimulatorConfig):
    """A fleet whose boxes carry the ids and areas of registry targets."""

    box_ids: tuple[str, ...] = ()
    box_areas: tuple[str, ...] = ()

    def box_id(self, index: int) -> str:
        return self.box_ids[index]

    def area_of(self, index: int) -> str:
        return self.box_areas[index]


async def start_fleet(
    boxes: list[BoxRegistration],
    port: int,
    secret: bytes,
    work_dir: Path,
    play_seconds: float,
) -> SpeakerFleetSimulator:
    """Start simulated boxes for ``boxes`` (TCP ones) against a hub on 127.0.0.1:``port``."""
    areas = tuple(min(b.areas) if b.areas else "demo" for b in boxes)
    config = RegistryFleetConfig(
        url=f"tcp://127.0.0.1:{port}",
        fleet_secret=secret,
        boxes=len(boxes),
        areas=tuple(sorted(set(areas))),
        work_dir=work_dir,
        persist_journals=True,
        play_seconds=play_seconds,
        heartbeat_s=30.0,
        box_ids=tuple(b.box_id for b in boxes),
        box_areas=areas,
    )
    began = time.monotonic()
    fleet = SpeakerFleetSimulator(config)
    await fleet.start()
    try:
        await fleet.wait_connected(_CONNECT_WITHIN_S)
    except TimeoutError:
        log.warning(
            "simulated loudspeaker boxes: not all connected within %.0f s", _CONNECT_WITHIN_S
        )
    log.info(
        "simulated loudspeaker boxes: %d connected in %.2f s",
        len(boxes),
        time.monotonic() - began,
    )
    return fleet
