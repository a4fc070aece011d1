"""The three-node NATS cluster used as the loudspeakers' broker cluster, through our MQTT client:
a persistent session and its queued QoS 1 messages survive the loss of the node the client was
on, retained messages are served through wildcard filters from any node, and the fixture stops
every node it started."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from drivers.mqtt import MqttClient, MqttConnectionError
from drivers.mqtt.testing_nats import NatsMqttCluster


async def test_a_session_and_its_queued_messages_survive_losing_its_node(tmp_path: Path) -> None:
    with NatsMqttCluster(tmp_path) as cluster:
        (a_host, a_port), (b_host, b_port), (c_host, c_port) = cluster.addresses
        received: list[bytes] = []

        def box(host: str, port: int) -> MqttClient:
            return MqttClient(
                host,
                port,
                "box-1",
                clean_session=False,
                on_message=lambda topic, payload, retain: received.append(payload),
                connect_timeout_s=20,
            )

        first = box(a_host, a_port)
        await first.connect()
        await first.subscribe([("warn/box/1/cmd", 1)])
        await first.publish("warn/box/1/presence", b"hello", qos=1, retain=True)
        await first.disconnect()
        server = MqttClient(b_host, b_port, "server", clean_session=False)
        await server.connect()
        for n in range(3):
            await server.publish("warn/box/1/cmd", b"command %d" % n, qos=1)
        await server.disconnect()
        cluster.kill(0)
        # Until the surviving nodes elect new stream leaders (seconds), a node may close the
        # connection before CONNACK; a box retries, as here.
        async with asyncio.timeout(30):
            while True:
                again = box(c_host, c_port)
                try:
                    session_present = await again.connect()
                    break
                except MqttConnectionError:
                    await asyncio.sleep(0.5)
        assert session_present  # the session was found on another node
        async with asyncio.timeout(20):
            while len(received) < 3:
                await asyncio.sleep(0.05)
        assert received == [b"command 0", b"command 1", b"command 2"]
        retained: list[tuple[bytes, bool]] = []
        watcher = MqttClient(
            b_host, b_port, "watcher", on_message=lambda t, p, r: retained.append((p, r))
        )
        await watcher.connect()
        await watcher.subscribe([("warn/box/+/presence", 0)])
        async with asyncio.timeout(10):
            while not retained:
                await asyncio.sleep(0.05)
        assert retained == [(b"hello", True)]
        await watcher.disconnect()
        await again.disconnect()
    assert not any(node.running for node in cluster.nodes)


def test_the_cluster_runs_with_the_mqtt_and_jetstream_settings_it_is_given(tmp_path: Path) -> None:
    settings = {"max_ack_pending": "100"}
    cluster = NatsMqttCluster(
        tmp_path, mqtt_settings=settings, jetstream_settings={"max_mem": "64M"}
    )
    with cluster:
        for node in cluster.nodes:
            base = f"http://{cluster.host}:{node.monitor_port}"
            with urllib.request.urlopen(f"{base}/varz", timeout=10) as answer:
                mqtt = json.load(answer)["mqtt"]
            with urllib.request.urlopen(f"{base}/jsz", timeout=10) as answer:
                jetstream = json.load(answer)["config"]
            assert (mqtt["max_ack_pending"], mqtt["ack_wait"]) == (100, 2_000_000_000)
            assert jetstream["max_memory"] == 64_000_000


def test_a_missing_server_binary_is_a_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-nats-server")
    with pytest.raises(MqttConnectionError, match=r"cannot start .*no-such-nats-server"):
        NatsMqttCluster(tmp_path, binary=missing).__enter__()
