"""Boxes and the hub on a real three-node NATS cluster (MQTT), and broker failover on Mosquitto.

A node is killed (SIGKILL) in the middle of a fan-out: the boxes on it reconnect to the next
node, find their persistent session there, and every box plays the warning exactly once
(its play journal holds one completed playback); the hub's publishing sessions fail over too.
A command the broker delivered is carried out even when the box's connection drops while it is
being handled. Boxes subscribed at QoS 0 whose node dies are reported online again by their new
hello, though the hub never saw them go (a killed node publishes no last will).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from drivers.mqtt.testing_nats import NatsMqttCluster
from drivers.speaker.errors import SpeakerConnectionError
from drivers.speaker.hub import MqttBrokerConfig, SpeakerHub, SpeakerHubConfig
from drivers.speaker.messages import AckStage, PlayUrl
from drivers.speaker.simulator import FleetSimulatorConfig, SpeakerFleetSimulator, area_key
from drivers.speaker.store import PlayJournal
from drivers.speaker.testing import HubEventRecorder, MosquittoBroker, free_port
from tests.speaker.conftest import AREAS, FLEET_SECRET

BOXES = 40


def fleet_config(
    tmp_path: Path, url: str, boxes: int, command_delay_s: float = 0.0, command_qos: int = 1
) -> FleetSimulatorConfig:
    return FleetSimulatorConfig(
        command_delay_s=command_delay_s,
        command_qos=command_qos,
        url=url,
        fleet_secret=FLEET_SECRET,
        boxes=boxes,
        areas=AREAS,
        work_dir=tmp_path / "fleet",
        persist_journals=True,
        play_seconds=0.05,
    )


@asynccontextmanager
async def hub_and_fleet(
    mqtt: MqttBrokerConfig,
    tmp_path: Path,
    url: str,
    boxes: int,
    command_delay_s: float = 0.0,
    command_qos: int = 1,
) -> AsyncIterator[tuple[SpeakerHub, SpeakerFleetSimulator, HubEventRecorder, set[str]]]:
    """A started hub and fleet, every box online; stopped on leaving."""
    hub = SpeakerHub(SpeakerHubConfig(mqtt=mqtt))
    await hub.start()
    config = fleet_config(tmp_path, url, boxes, command_delay_s, command_qos)
    fleet = SpeakerFleetSimulator(config)
    for registration in fleet.registrations("mqtt"):
        hub.register(registration)
    events = HubEventRecorder(hub)
    await fleet.start()
    try:
        everyone = {b.box_id for b in fleet.boxes}
        await events.wait_for(lambda: hub.online_boxes() >= everyone, 30)
        yield hub, fleet, events, everyone
    finally:
        await fleet.stop()
        await events.close()
        await hub.stop()


async def deliver(hub: SpeakerHub, box_id: str, command: PlayUrl, sent: list[str]) -> None:
    """Send until the broker has it, retrying as the channel's dispatcher would."""
    async with asyncio.timeout(60):
        while True:
            try:
                await hub.send_command(box_id, command)
            except SpeakerConnectionError:
                await asyncio.sleep(0.2)
                continue
            sent.append(box_id)
            return


async def test_every_box_plays_once_when_a_broker_node_dies_mid_fan_out(
    tmp_path: Path, make_play: Callable[..., PlayUrl], media_server: object
) -> None:
    with NatsMqttCluster(tmp_path / "nats") as cluster:
        (first, *others) = cluster.addresses
        keys = {area: area_key(FLEET_SECRET, area) for area in AREAS}
        # The hub's receiving session starts on node 2; the boxes all start on node 1.
        mqtt = MqttBrokerConfig(
            host=others[0][0],
            port=others[0][1],
            failover=(others[1], first),
            area_keys=keys,
            publish_sessions=3,
        )
        async with hub_and_fleet(mqtt, tmp_path, cluster.url(), BOXES) as (
            hub,
            fleet,
            events,
            everyone,
        ):
            command = make_play("c-cluster", "alert-cluster")
            sent: list[str] = []
            limit = asyncio.Semaphore(4)

            async def one(box_id: str) -> None:
                async with limit:
                    if len(sent) >= BOXES // 2 and cluster.nodes[0].running:
                        cluster.kill(0)
                    await deliver(hub, box_id, command, sent)

            await asyncio.gather(*(one(b) for b in sorted(everyone)))
            assert not cluster.nodes[0].running and sorted(sent) == sorted(everyone)
            await events.wait_acks("c-cluster", AckStage.FINISHED, everyone, within_s=60)
            for box in fleet.boxes:
                assert len(fleet.log.completed(box.box_id, "alert-cluster")) == 1, box.box_id
                journal = PlayJournal(tmp_path / "fleet" / "state" / f"{box.box_id}.json")
                await journal.load()
                entry = journal.get("c-cluster")
                assert entry is not None and entry.stage is AckStage.FINISHED, box.box_id
            # Every box now runs on another node: a second command reaches all of them.
            again = make_play("c-after", "alert-after")
            await asyncio.gather(*(deliver(hub, b, again, []) for b in everyone))
            await events.wait_acks("c-after", AckStage.FINISHED, everyone, within_s=30)


async def test_boxes_whose_node_died_are_online_again_on_their_new_hello(tmp_path: Path) -> None:
    with NatsMqttCluster(tmp_path / "nats") as cluster:
        (first, *others) = cluster.addresses
        mqtt = MqttBrokerConfig(host=others[0][0], port=others[0][1], failover=(others[1], first))
        async with hub_and_fleet(mqtt, tmp_path, cluster.url(), 5, command_qos=0) as (
            hub,
            _,
            events,
            everyone,
        ):
            await events.wait_for(lambda: all(events.presence(b) for b in everyone), 10)
            seen = {b: events.presence(b) for b in everyone}
            assert all(seen.values()) and all(all(online) for online in seen.values()), seen
            cluster.kill(0)
            # Reported online again (once or more: a reconnection may take two tries while the
            # cluster notices the dead node; and if the cluster drops the hub's own session
            # meanwhile, every box goes offline and comes back with its retained hello).
            await events.wait_for(
                lambda: all(events.presence(b)[len(seen[b]) :][-1:] == [True] for b in everyone),
                30,
            )
            assert hub.online_boxes() >= everyone


async def test_box_and_hub_skip_a_dead_broker_and_work_with_one_mosquitto(
    tmp_path: Path, make_play: Callable[..., PlayUrl], media_server: object
) -> None:
    dead = free_port()  # nothing listens here
    with MosquittoBroker(tmp_path) as broker:
        mqtt = MqttBrokerConfig(
            host="127.0.0.1", port=dead, failover=((broker.host, broker.port),), publish_sessions=2
        )
        url = f"mqtt://127.0.0.1:{dead},{broker.host}:{broker.port}"
        async with hub_and_fleet(mqtt, tmp_path, url, 3) as (hub, fleet, events, everyone):
            command = make_play("c-mosquitto", "alert-mosquitto")
            await asyncio.gather(*(hub.send_command(b, command) for b in everyone))
            await events.wait_acks("c-mosquitto", AckStage.FINISHED, everyone, within_s=15)
            assert all(len(fleet.log.completed(b, "alert-mosquitto")) == 1 for b in everyone)


async def test_a_delivered_command_is_carried_out_when_the_connection_drops_meanwhile(
    tmp_path: Path, make_play: Callable[..., PlayUrl], media_server: object
) -> None:
    with MosquittoBroker(tmp_path) as broker:
        mqtt = MqttBrokerConfig(host=broker.host, port=broker.port)
        url = f"mqtt://{broker.host}:{broker.port}"
        # Each box takes 1.5 s to handle a command; the broker dies after delivering it.
        async with hub_and_fleet(mqtt, tmp_path, url, 2, command_delay_s=1.5) as (
            hub,
            fleet,
            _,
            everyone,
        ):
            command = make_play("c-dropped", "alert-dropped")
            await asyncio.gather(*(hub.send_command(b, command) for b in everyone))
            await asyncio.sleep(0.5)
            broker.kill()
            await fleet.log.wait_for(
                lambda records: {r.request.box_id for r in records if r.ended_at} >= everyone, 10
            )
            assert all(len(fleet.log.completed(b, "alert-dropped")) == 1 for b in everyone)
