"""The loudspeaker channel through a real three-node NATS cluster (MQTT): the server and the
boxes are configured with every node; the node the boxes are on is killed (SIGKILL) while an
alert goes out, and every delivery still ends confirmed with each box playing it once."""

from __future__ import annotations

from pathlib import Path

from channels.loudspeaker.commands import alert_key
from drivers.mqtt.testing_nats import NatsMqttCluster
from tests.core.support import make_alert, wait_until_complete
from tests.loudspeaker.conftest import speaker_system


async def test_deliveries_end_confirmed_when_the_boxes_broker_node_dies(tmp_path: Path) -> None:
    with NatsMqttCluster(tmp_path / "nats") as cluster:
        async with speaker_system(tmp_path, "mqtt", play_seconds=0.5, cluster=cluster) as system:
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
