"""A fleet larger than one broker holds, as deployed: one ``loudspeaker`` channel instance per
broker, each with its share of the registry's boxes. One alert for the county plans a
delivery on every instance, each instance's group command reaches the boxes of its own broker
only, and each box's acks confirm its delivery (real Mosquitto brokers, lean boxes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from broadcaster.service import BroadcasterService
from channels.loudspeaker import LoudspeakerChannel
from drivers.speaker.simulator_lean import LeanFleet, LeanFleetConfig
from drivers.speaker.testing import MosquittoBroker
from tests.core.support import COUNTY, make_alert, make_config, wait_until_complete

SECRET = "box-provisioning-secret-for-tests"
PER_BROKER = 3
INSTANCES = ("loudspeaker-1", "loudspeaker-2")


def targets() -> list[dict[str, Any]]:
    """Boxes ``sim-00000``… in villages of the county, holding the county's key, the first
    ``PER_BROKER`` on the first instance, the next on the second."""
    return [
        {
            "id": f"spk-{n}",
            "channel": INSTANCES[n // PER_BROKER],
            "name": f"村{n}",
            "division": f"{COUNTY[:6]}001{n + 1:03d}",
            "address": f"sim-{n:05d}",
            "params": {"group_areas": [COUNTY]},
        }
        for n in range(PER_BROKER * len(INSTANCES))
    ]


@asynccontextmanager
async def two_brokers(tmp_path: Path) -> AsyncIterator[tuple[BroadcasterService, list[LeanFleet]]]:
    """The service with one channel instance per broker, and each broker's boxes connected."""
    async with AsyncExitStack() as stack:
        brokers = [stack.enter_context(MosquittoBroker(tmp_path)) for _ in INSTANCES]
        channels = {
            name: {
                "type": "loudspeaker",
                "master_secret": SECRET,
                "repeat": 1,
                "mqtt": {"host": broker.host, "port": broker.port},
                "default_transport": "mqtt",
            }
            for name, broker in zip(INSTANCES, brokers, strict=True)
        }
        service = BroadcasterService(make_config(tmp_path, channels, targets()))
        await service.start()
        stack.push_async_callback(service.stop)
        fleets = []
        for k, broker in enumerate(brokers):
            config = LeanFleetConfig(
                url=f"mqtt://{broker.host}:{broker.port}",
                fleet_secret=SECRET.encode(),
                boxes=PER_BROKER,
                first_index=k * PER_BROKER,
                areas=(COUNTY,),
            )
            fleet = LeanFleet(config)
            await fleet.start()
            stack.callback(fleet.close)
            fleets.append(fleet)
        yield service, fleets


async def test_one_alert_reaches_the_boxes_of_every_broker_through_its_own_instance(
    tmp_path: Path,
) -> None:
    async with two_brokers(tmp_path) as (service, fleets):
        ids = [[box.box_id for box in fleet.boxes] for fleet in fleets]
        for name, boxes in zip(INSTANCES, ids, strict=True):
            channel = service.channels[name]
            assert isinstance(channel, LoudspeakerChannel)
            await channel.wait_online(boxes, within_s=20)
        result = await service.submit(make_alert("two-brokers"), origin="test")
        assert result.planned == dict.fromkeys(INSTANCES, PER_BROKER)
        summary = await wait_until_complete(service, result.alert_id, timeout=40)
        assert summary == {name: {"confirmed": PER_BROKER} for name in INSTANCES}
        # Each instance signs its own group command for the county, and each box gets only
        # the one of its broker: one play command per box, none from the other instance.
        plays = [
            {
                box.box_id: sorted(c for c in box.seen if c.startswith("play-"))
                for box in fleet.boxes
            }
            for fleet in fleets
        ]
        for per_box in plays:
            assert all(len(cmds) == 1 for cmds in per_box.values()), per_box
        first, second = ({c for cmds in p.values() for c in cmds} for p in plays)
        assert len(first) == len(second) == 1 and first != second
