"""Loudspeaker boxes over TCP with two nodes on one PostgreSQL: how long a delivery takes to
settle when the node that claims it is not the one its box is connected to.

Each node runs its own hub; a box holds one connection, to one of them. A delivery claimed by
the other node fails there as "box offline" (retryable, after about
``offline_retry_seconds`` with jitter, 0.5–1 times it) and goes back to the queue, where
either node may claim it next. The bench runs two real services in this process on a
throw-away PostgreSQL server (``broadcaster.testing.pgserver``), each with its HTTP server and
its TCP hub on loopback, and real box agents (the fleet simulator, playback time zero): half
the boxes connect to node A's hub, half to node B's. It submits one alert to every box and
reports, per delivery, the time from the submission to its confirmation, split into the
deliveries whose first claim was on their box's node and those that went through the other
node first, with the number of such detours; and the process's CPU time per delivery.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_cluster_boxes.py [--boxes N]
[--offline-retry S]`` (defaults: 20 boxes, the channel's default of 15 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.config import AudioConfig, Secret, StoreConfig
from broadcaster.service import BroadcasterService
from broadcaster.testing.pgserver import PgServer
from channels.loudspeaker import LoudspeakerChannel
from channels.loudspeaker.boxes import RegistryFleetConfig
from drivers.speaker import SpeakerFleetSimulator
from drivers.speaker.testing import free_port
from tests.core.support import COUNTY, make_alert, make_config, wait_until_complete

SECRET = "box-provisioning-secret-for-the-bench"


def targets(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"spk-{n}",
            "channel": "loudspeaker",
            "name": f"村{n}大喇叭",
            "division": f"{COUNTY[:6]}001{n:03d}",
            "address": f"box-{n:04d}",
        }
        for n in range(count)
    ]


async def node(
    stack: AsyncExitStack,
    work: Path,
    name: str,
    url: str,
    boxes: list[dict[str, Any]],
    retry: float,
) -> tuple[BroadcasterService, int]:
    """A started node with its HTTP server; returns it and its hub's port."""
    hub_port, http_port = free_port(), free_port()
    channel = {
        "type": "loudspeaker",
        "concurrency": 64,
        "master_secret": SECRET,
        "repeat": 1,
        "offline_retry_seconds": retry,
        "tcp": {"host": "127.0.0.1", "port": hub_port},
    }
    folder = work / name
    folder.mkdir()
    config = make_config(folder, {"loudspeaker": channel}, boxes, confirm_timeout_seconds=60)
    config = config.model_copy(
        update={
            "server": config.server.model_copy(
                update={"public_url": f"http://127.0.0.1:{http_port}"}
            ),
            "audio": AudioConfig(engine_order=("espeak-ng",)),
            "store": StoreConfig(url=Secret(url), node=name),
        }
    )
    service = BroadcasterService(config)
    server = TestServer(make_app(service), host="127.0.0.1", port=http_port)
    await server.start_server()
    stack.push_async_callback(server.close)
    return service, hub_port


async def fleet(
    stack: AsyncExitStack, work: Path, hub_port: int, boxes: list[dict[str, Any]]
) -> None:
    folder = work / f"boxes-{hub_port}"
    folder.mkdir()
    simulator = SpeakerFleetSimulator(
        RegistryFleetConfig(
            url=f"tcp://127.0.0.1:{hub_port}",
            fleet_secret=SECRET.encode(),
            boxes=len(boxes),
            areas=tuple(sorted({str(b["division"]) for b in boxes})),
            work_dir=folder,
            play_seconds=0.0,
            box_ids=tuple(str(b["address"]) for b in boxes),
            box_areas=tuple(str(b["division"]) for b in boxes),
        )
    )
    await simulator.start()
    stack.push_async_callback(simulator.stop)


async def settle_times(count: int, retry: float) -> dict[str, Any]:
    boxes = targets(count)
    with PgServer() as pg, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        url = pg.migrated()
        async with AsyncExitStack() as stack:
            a, hub_a = await node(stack, work, "a", url, boxes, retry)
            b, hub_b = await node(stack, work, "b", url, boxes, retry)
            half = count // 2
            await fleet(stack, work, hub_a, boxes[:half])
            await fleet(stack, work, hub_b, boxes[half:])
            for service, own in ((a, boxes[:half]), (b, boxes[half:])):
                channel = service.channels["loudspeaker"]
                assert isinstance(channel, LoudspeakerChannel)
                await channel.wait_online([str(t["address"]) for t in own], within_s=60)
            cpu = os.times()
            submitted = time.time()
            result = await a.submit(make_alert("cluster-boxes", expires_in=3600), origin="bench")
            summary = await wait_until_complete(a, result.alert_id, timeout=600)
            spent = os.times()
            rows = await a.database.run(
                a.database.query,
                "SELECT d.id, max(e.at) AS settled,"
                " sum(CASE WHEN e.detail LIKE '%is offline%' THEN 1 ELSE 0 END) AS detours"
                " FROM deliveries d JOIN delivery_events e ON e.delivery_id = d.id"
                " WHERE d.alert_id = ? GROUP BY d.id",
                (result.alert_id,),
            )
    direct = [r["settled"] - submitted for r in rows if not r["detours"]]
    detoured = [r["settled"] - submitted for r in rows if r["detours"]]
    cpu_seconds = (spent.user - cpu.user) + (spent.system - cpu.system)
    return {
        "boxes": count,
        "offline_retry_seconds": retry,
        "summary": summary,
        "direct": describe(direct),
        "through_the_other_node": describe(detoured),
        "detours": sorted(int(r["detours"]) for r in rows if r["detours"]),
        "cpu_ms_per_delivery": round(1000 * cpu_seconds / max(1, len(rows)), 1),
    }


def describe(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "median_s": round(statistics.median(ordered), 2),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "max_s": round(ordered[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--offline-retry", type=float, default=15.0)
    args = parser.parse_args()
    figures = asyncio.run(settle_times(args.boxes, args.offline_retry))
    figures["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
