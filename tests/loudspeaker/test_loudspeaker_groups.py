"""Group commands end to end, over TCP and MQTT: one command signed once for the area every
box of a group holds the key of plays on each box of the group, each box's acks settle its
own delivery; a box outside the group neither gets nor accepts it; a box that knows only its
own key still gets its own command; a forged group command and a replayed one are refused
by the boxes; a Cancel stops the boxes a group command reached, also when it came while the
command's send was still in flight (real box agents, real Mosquitto)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import MsgType
from broadcaster.service import BroadcasterService
from channels.loudspeaker.commands import alert_key
from drivers.speaker import AckStage, BoxAck, HubEvent, SpeakerHub
from drivers.speaker.codec import area_target, decode_command, encode_command
from drivers.speaker.simulator import area_key
from tests.core.support import COUNTY, OTHER_COUNTY, make_alert, wait_until_complete
from tests.loudspeaker.conftest import IN_COUNTY, SECRET, SpeakerSystem, speaker_system

# The first two boxes of the county and one box of the other county hold area keys; the third
# box of the county and the last box know only their own keys.
GROUPS = ([COUNTY, IN_COUNTY[0]], [COUNTY], [], [OTHER_COUNTY])
GROUPED = [f"box-{IN_COUNTY[0]}", f"box-{IN_COUNTY[1]}"]
OLD = f"box-{IN_COUNTY[2]}"
OUTSIDE = f"box-{OTHER_COUNTY[:6]}001001"


class Wire:
    """Records what the channel's hub sends and the acks the channel receives."""

    def __init__(self, system: SpeakerSystem) -> None:
        hub = system.channel.hub
        assert hub is not None
        self.hub: SpeakerHub = hub
        self.sent: list[tuple[str, bytes]] = []
        self.acks: list[BoxAck] = []
        self._changed = asyncio.Event()
        send_each, publish_area = hub.send_each, hub.publish_area

        async def recording_each(commands: Sequence[tuple[str, bytes]]) -> list[Any]:
            self.sent += [(f"box:{b}", data) for b, data in commands]
            return await send_each(commands)

        async def recording_area(area: str, data: bytes) -> None:
            self.sent.append((f"area:{area}", data))
            await publish_area(area, data)

        hub.send_each = recording_each  # type: ignore[method-assign]
        hub.publish_area = recording_area  # type: ignore[method-assign]
        handler: Callable[[HubEvent], None] = system.channel._on_event

        def on_event(event: HubEvent) -> None:
            handler(event)
            if isinstance(event, BoxAck):
                self.acks.append(event)
                self._changed.set()

        system.channel._on_event = on_event  # type: ignore[method-assign]

    async def ack(self, box_id: str, cmd_id: str, stage: AckStage) -> BoxAck:
        """The first ack of ``box_id`` for ``cmd_id`` at ``stage`` (waits up to 10 s)."""
        async with asyncio.timeout(10):
            while True:
                for ack in self.acks:
                    if (ack.box_id, ack.cmd_id, ack.stage) == (box_id, cmd_id, stage):
                        return ack
                self._changed.clear()
                await self._changed.wait()


async def refs(service: BroadcasterService, alert_id: str) -> dict[str, str]:
    """Each delivery's box and the command id its send reported."""
    rows = await service.database.run(service.outbox.deliveries, alert_id)
    return {f"box-{r['division']}": str(r["provider_ref"]) for r in rows}


@pytest.fixture(params=["tcp", "mqtt"])
def network(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def played_once(system: SpeakerSystem, transport: str) -> tuple[Wire, dict[str, str], bytes]:
    """Submit a county alert and wait until it completes: the recorder, each box's command
    id and the group command's bytes."""
    wire = Wire(system)
    alert = make_alert(f"group-{transport}")
    result = await system.service.submit(alert, origin="test")
    assert result.planned == {"loudspeaker": 3}
    summary = await wait_until_complete(system.service, result.alert_id, timeout=40)
    assert summary == {"loudspeaker": {"confirmed": 3}}
    assert system.played(alert_key(alert)) == dict.fromkeys(system.county_boxes, 1)
    group = next(data for to, data in wire.sent if b'"to":"area:' + COUNTY.encode() in data)
    return wire, await refs(system.service, result.alert_id), group


async def test_a_group_command_plays_on_each_box_of_the_group(tmp_path: Path, network: str) -> None:
    transport = network
    async with speaker_system(tmp_path, transport, groups=GROUPS) as system:
        wire, commands, group = await played_once(system, transport)
        # One command id for the group, another for the box with its own key only.
        assert commands[GROUPED[0]] == commands[GROUPED[1]] != commands[OLD]
        target, command = decode_command(group, lambda _t: area_key(SECRET.encode(), COUNTY))
        assert target == area_target(COUNTY) and command.cmd_id == commands[GROUPED[0]]
        # Each box's own acks settled its own delivery.
        for box in [*GROUPED, OLD]:
            ack = await wire.ack(box, commands[box], AckStage.FINISHED)
            assert ack.box_id == box
        same = [to for to, data in wire.sent if data == group]
        if transport == "mqtt":  # one publish to the county's topic
            assert same == [f"area:{COUNTY}"]
        else:  # the same bytes written to each box of the group
            assert sorted(same) == sorted(f"box:{b}" for b in GROUPED)
        old = [data for to, data in wire.sent if to == f"box:{OLD}"]
        assert len(old) == 1 and f'"to":"box:{OLD}"'.encode() in old[0]


async def test_boxes_outside_the_group_and_forged_or_replayed_commands_do_not_play(
    tmp_path: Path, network: str
) -> None:
    transport = network
    async with speaker_system(tmp_path, transport, groups=GROUPS) as system:
        wire, commands, group = await played_once(system, transport)
        cmd_id = commands[GROUPED[0]]
        # The group command reaches a box of another county: it lacks the key, refuses it.
        await wire.hub.send_signed(OUTSIDE, group)
        refused = await wire.ack(OUTSIDE, cmd_id, AckStage.FAILED)
        assert refused.reason == "bad_signature"
        # A replay to a box that played it: its latest ack again, no second playback.
        before = len(wire.acks)
        await wire.hub.send_signed(GROUPED[1], group)
        async with asyncio.timeout(10):
            while not any(a.box_id == GROUPED[1] for a in wire.acks[before:]):
                await asyncio.sleep(0.02)
        assert [a.stage for a in wire.acks[before:] if a.box_id == GROUPED[1]] == [
            AckStage.FINISHED
        ]
        # A group command under a new id signed with anything but the area key.
        _, command = decode_command(group, lambda _t: area_key(SECRET.encode(), COUNTY))
        forged = encode_command(
            replace(command, cmd_id="forged-1"), area_target(COUNTY), b"not the area key 0123"
        )
        await wire.hub.send_signed(GROUPED[0], forged)
        refused = await wire.ack(GROUPED[0], "forged-1", AckStage.FAILED)
        assert refused.reason == "bad_signature"
        await asyncio.sleep(0.2)
        alert = command.alert_id
        assert system.played(alert) == dict.fromkeys(system.county_boxes, 1)
        assert OUTSIDE not in {r.request.box_id for r in system.fleet.log.records}


async def test_a_cancel_stops_boxes_the_group_command_reached_before_their_turn(
    tmp_path: Path, network: str
) -> None:
    # One send at a time, one every 10 s: the group command reaches every box at once (the
    # area's topic, or each TCP box of the group), while the deliveries of the other boxes
    # still wait their turn when the Cancel comes.
    groups = ([COUNTY], [COUNTY], [COUNTY])
    settings = {"concurrency": 1, "rate_per_second": 0.1}
    async with speaker_system(
        tmp_path, network, play_seconds=60.0, groups=groups, **settings
    ) as system:
        alert = make_alert("group-cancel")
        key = alert_key(alert)
        result = await system.service.submit(alert, origin="test")
        await system.wait_playing(key, system.county_boxes, within_s=40)
        rows = await system.service.database.run(system.service.outbox.deliveries, result.alert_id)
        assert "queued" in {r["state"] for r in rows}
        cancel = make_alert("group-cancel-c", msg_type=MsgType.CANCEL, references=[alert])
        await system.service.submit(cancel, origin="test")
        await system.wait_stopped(key, within_s=15)
        assert system.played(key) == {}


async def test_a_cancel_while_the_group_command_is_in_flight_stops_its_boxes(
    tmp_path: Path, network: str
) -> None:
    # The group command's send returns only after the Cancel came (a broker slow to answer
    # the publish, TCP boxes slow to take it): the Cancel could not know where it went, so
    # the area is stopped once the send returns, after the play command.
    groups = ([COUNTY], [COUNTY], [COUNTY])
    async with speaker_system(tmp_path, network, play_seconds=60.0, groups=groups) as system:
        hub = system.channel.hub
        assert hub is not None
        in_flight, answer = asyncio.Event(), asyncio.Event()

        def slowed(send: Callable[[Any, bytes], Any]) -> Callable[[Any, bytes], Any]:
            async def slow(where: Any, data: bytes) -> Any:
                if b'"type":"play_url"' in data:
                    in_flight.set()
                    await answer.wait()
                return await send(where, data)

            return slow

        hub.publish_area = slowed(hub.publish_area)  # type: ignore[method-assign]
        hub.send_same = slowed(hub.send_same)  # type: ignore[method-assign]
        alert = make_alert("group-in-flight")
        key = alert_key(alert)
        await system.service.submit(alert, origin="test")
        await asyncio.wait_for(in_flight.wait(), 20)
        cancel = make_alert("group-in-flight-c", msg_type=MsgType.CANCEL, references=[alert])
        await system.service.submit(cancel, origin="test")
        answer.set()
        await asyncio.sleep(2.0)  # the play command reaches the boxes
        await system.wait_stopped(key, within_s=15)
        assert system.played(key) == {}
