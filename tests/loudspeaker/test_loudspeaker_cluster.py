"""The loudspeaker channel through a real three-node NATS cluster (MQTT): the server and the
boxes are configured with every node; the node the boxes are on is killed (SIGKILL) while an
alert goes out, and every delivery still ends confirmed with each box playing it once.

Boxes subscribe to their commands at QoS 1 (the broker queues commands for them) or at QoS 0
(it keeps their subscriptions but queues nothing): then the server sends again what a box has
not acknowledged as soon as the box's new hello arrives, whether the box was cut off by a dead
node or offline when the alert went out, and well before the confirmation timeout; a Cancel
still stops what plays.

The channel retains no audio on the cluster (``audio_over_mqtt = false``, as its README
advises for NATS): the boxes download it. On nats-server 2.9 a subscription set up while a
retained message is published, or just after a node died, can miss it, and a box would wait
for its audio before it asks the URL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from pathlib import Path

from broadcaster.cap import MsgType, Status
from channels.loudspeaker.commands import alert_key
from drivers.mqtt.testing_nats import NatsMqttCluster
from tests.core.support import COUNTY, make_alert, wait_until_complete
from tests.loudspeaker.conftest import IN_COUNTY, SpeakerSystem, speaker_system

CONFIRM_TIMEOUT_S = 30.0
"""The confirmation timeout of the test configuration (``system_config``)."""
GROUPS = ([COUNTY], [COUNTY], [])
"""Two boxes of the county follow its area topic, the third has its own key only."""
GROUPED = f"box-{IN_COUNTY[0]}"


async def test_deliveries_end_confirmed_when_the_boxes_broker_node_dies(tmp_path: Path) -> None:
    with NatsMqttCluster(tmp_path / "nats") as cluster:
        async with speaker_system(
            tmp_path, "mqtt", play_seconds=0.5, cluster=cluster, audio_over_mqtt=False
        ) as system:
            alert = make_alert("cluster-node-lost")
            key = alert_key(alert)
            result = await system.service.submit(alert, origin="test")
            assert result.planned == {"loudspeaker": 3}
            await system.wait_playing(key, system.county_boxes, within_s=30)
            cluster.kill(0)
            summary = await wait_until_complete(system.service, result.alert_id, timeout=60)
            assert summary == {"loudspeaker": {"confirmed": 3}}
            assert system.played(key) == dict.fromkeys(system.county_boxes, 1)
            # The boxes are back, on the other nodes: the next alert reaches them too.
            await system.channel.wait_online(system.box_ids, within_s=30)
            after = make_alert("cluster-after")
            second = await system.service.submit(after, origin="test")
            summary = await wait_until_complete(system.service, second.alert_id, timeout=60)
            assert summary == {"loudspeaker": {"confirmed": 3}}
            assert system.played(alert_key(after)) == dict.fromkeys(system.county_boxes, 1)


async def test_commands_lost_with_the_boxes_node_are_sent_again_when_they_are_back(
    tmp_path: Path,
) -> None:
    """QoS 0: the boxes' node stops (SIGSTOP) before the alert, the server's commands (one to
    the county's topic, one to a box's own) go to the other nodes, which pass them towards it;
    the node is then killed with them. Its boxes reconnect elsewhere and say hello: the
    server, which still counted them online (a killed node publishes no last will), sends
    their commands again within seconds, and each box plays once."""
    with NatsMqttCluster(tmp_path / "nats") as cluster:
        async with speaker_system(
            tmp_path, "mqtt", cluster=cluster, audio_over_mqtt=False, groups=GROUPS, command_qos=0
        ) as system:
            # The broker holds a queue (a JetStream consumer) for each of the server's two
            # subscriptions, to the boxes' messages and presence, and none for the boxes.
            assert [subject.rpartition(".")[2] for subject in session_queues(cluster)] == [
                "presence",
                "up",
            ]
            node = cluster.nodes[0].process
            assert node is not None
            os.kill(node.pid, signal.SIGSTOP)
            alert = make_alert("cluster-commands-lost")
            key = alert_key(alert)
            result = await system.service.submit(alert, origin="test")
            assert result.planned == {"loudspeaker": 3}
            await wait_for_states(system, result.alert_id, {"accepted"})
            assert system.played(key) == {}
            cluster.kill(0)
            killed = time.monotonic()
            summary = await wait_until_complete(system.service, result.alert_id, timeout=30)
            assert summary == {"loudspeaker": {"confirmed": 3}}
            # Sent again on the boxes' hellos, not by the confirmation timeout, which would
            # only come about CONFIRM_TIMEOUT_S after the kill. The hellos wait for the
            # cluster's failover (its streams elect new leaders): 0.2 to 11 s here.
            assert time.monotonic() - killed < CONFIRM_TIMEOUT_S * 2 / 3
            assert system.played(key) == dict.fromkeys(system.county_boxes, 1)


def session_queues(cluster: NatsMqttCluster) -> list[str]:
    """The subjects of the JetStream consumers MQTT sessions hold on the cluster (as its
    second node reports them): one per QoS 1 subscription of a persistent session."""
    base = f"http://{cluster.host}:{cluster.nodes[1].monitor_port}"
    query = "accounts=true&streams=true&consumers=true&config=true"
    with urllib.request.urlopen(f"{base}/jsz?{query}", timeout=10) as answer:
        accounts = json.load(answer).get("account_details", [])
    return sorted(
        str(consumer["config"]["filter_subject"])
        for account in accounts
        for stream in account.get("stream_detail", [])
        if stream["name"] == "$MQTT_msgs"
        for consumer in stream.get("consumer_detail") or []
    )


async def wait_for_states(system: SpeakerSystem, alert_id: str, states: set[str]) -> None:
    """Wait until every delivery of ``alert_id`` is in one of ``states``."""
    async with asyncio.timeout(30):
        while True:
            rows = await system.service.database.run(system.service.outbox.deliveries, alert_id)
            if {r["state"] for r in rows} <= states:
                return
            await asyncio.sleep(0.05)


async def test_a_box_offline_when_the_area_command_went_out_gets_it_when_back(
    tmp_path: Path,
) -> None:
    """QoS 0: the broker keeps nothing for the box; its return brings the command again, to
    its own topic, within seconds (not after the confirmation timeout), and it plays once."""
    with NatsMqttCluster(tmp_path / "nats") as cluster:
        async with speaker_system(
            tmp_path, "mqtt", cluster=cluster, audio_over_mqtt=False, groups=GROUPS, command_qos=0
        ) as system:
            await system.fleet.box(GROUPED).stop()
            await system.channel.wait_online([GROUPED], within_s=10, online=False)
            alert = make_alert("cluster-offline", status=Status.TEST)
            key = alert_key(alert)
            result = await system.service.submit(alert, origin="test")
            others = system.county_boxes - {GROUPED}
            await system.fleet.log.wait_for(lambda _: system.played(key).keys() == others, 30)
            rows = await system.service.database.run(
                system.service.outbox.deliveries, result.alert_id
            )
            assert {r["state"] for r in rows if r["target_id"].endswith(GROUPED[4:])} == {
                "accepted"
            }
            back = time.monotonic()
            await system.fleet.restart(GROUPED)
            summary = await wait_until_complete(system.service, result.alert_id, timeout=20)
            assert summary == {"loudspeaker": {"confirmed": 3}}
            assert time.monotonic() - back < CONFIRM_TIMEOUT_S / 3
            assert system.played(key) == dict.fromkeys(system.county_boxes, 1)
            # Sent again as the same test broadcast: it played at a test's priority.
            records = [r for r in system.fleet.log.records if r.request.alert_id == key]
            assert {r.request.priority for r in records} == {20}


async def test_a_cancel_stops_what_plays_on_boxes_subscribed_at_qos_0(tmp_path: Path) -> None:
    with NatsMqttCluster(tmp_path / "nats") as cluster:
        async with speaker_system(
            tmp_path,
            "mqtt",
            play_seconds=60.0,
            cluster=cluster,
            audio_over_mqtt=False,
            groups=GROUPS,
            command_qos=0,
        ) as system:
            alert = make_alert("cluster-cancel")
            key = alert_key(alert)
            result = await system.service.submit(alert, origin="test")
            await system.wait_playing(key, system.county_boxes, within_s=30)
            cancel = make_alert("cluster-cancel-c", msg_type=MsgType.CANCEL, references=[alert])
            await system.service.submit(cancel, origin="test")
            await system.wait_stopped(key, within_s=5)
            summary = await wait_until_complete(system.service, result.alert_id, timeout=10)
            assert summary == {"loudspeaker": {"confirmed": 3}}
            assert system.played(key) == {}
