"""The whole-server part of ``bench/bench_fanout.py``: one CAP alert to every box of a county,
from the API's answer, with the real service (HTTP API, store, dispatcher, ``loudspeaker``
channel, espeak-ng) in this process and lean simulated boxes in others."""

from __future__ import annotations

import asyncio
import cProfile
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.bench_fanout import (
    AckTimes,
    broker_for,
    cpu_s,
    lean_fleet,
    peak_rss_mb,
    spread,
    thread_cpu_s,
    threads_spent,
)
from bench.bench_loudspeaker import (
    ATTENTION_CLIP,
    TOKEN,
    attention_file,
    confirmed,
    server_config,
)
from broadcaster.api.app import make_app
from broadcaster.cap.serialize import to_xml
from broadcaster.deploy.server import freeze_startup_objects
from broadcaster.service import BroadcasterService
from channels.loudspeaker import LoudspeakerChannel
from drivers.speaker import HubEvent
from tests.core.support import COUNTY, make_alert


async def settled(service: BroadcasterService, channel: LoudspeakerChannel) -> None:
    """Wait until the server has finished with the boxes' arrival (their retries brought
    forward), so that work is not counted in the alert's time and CPU."""
    forwarder = service.dispatcher._forwarder
    while True:  # internal state of another component: polled, not awaited
        writing = any(not w.done() for w in forwarder._writers.values())
        if not channel.returning.waiting and not writing:
            return
        await asyncio.sleep(0.05)


async def whole_server(
    transport: str,
    boxes: int,
    work: Path,
    timeout_s: float,
    own: bool = False,
    attention: bool = True,
) -> dict[str, Any]:
    """One alert to ``boxes`` boxes that hold the county's key (group commands), or with
    ``own`` only their own keys (a command each); with ``attention`` the boxes hold the
    attention clip and the server sends it ahead of the warning."""
    groups = () if own else (COUNTY,)
    extra = {"attention_clip": {"id": ATTENTION_CLIP, "sha256": attention_file(work)}}
    async with broker_for(transport, work) as mqtt:
        if mqtt is None:
            hub: dict[str, Any] = {"tcp": {"host": "127.0.0.1", "port": 0}}
        else:
            hub = {"mqtt": {"host": mqtt.host, "port": mqtt.port}, "default_transport": "mqtt"}
        config, port = server_config(
            work, boxes, hub, extra=extra if attention else None, group_areas=groups
        )
        service = BroadcasterService(config)
        runner = web.AppRunner(make_app(service), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        freeze_startup_objects()
        try:
            channel = service.channels["loudspeaker"]
            assert isinstance(channel, LoudspeakerChannel) and channel.hub is not None
            acks = AckTimes(boxes)
            handler: Callable[[HubEvent], None] = channel._on_event

            def recording(event: HubEvent) -> None:
                handler(event)
                acks.on_event(event)

            channel._on_event = recording  # type: ignore[method-assign]
            link = f"mqtt://{mqtt.host}:{mqtt.port}" if mqtt else None
            link = link or f"tcp://127.0.0.1:{channel.hub.tcp_port}"
            async with lean_fleet(link, boxes, areas=groups) as fleet:
                ids = [f"sim-{n:05d}" for n in range(boxes)]
                await channel.wait_online(ids, within_s=timeout_s)
                await settled(service, channel)
                _, sim_before = await fleet.ask()
                alert = to_xml(make_alert(f"bench-{transport}", geocodes=(COUNTY,)))
                headers = {
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/cap+xml",
                }
                profile_to = os.environ.get("BENCH_FANOUT_PROFILE")
                profiler = cProfile.Profile() if profile_to else None
                cpu_before, threads_before = cpu_s(), thread_cpu_s()
                if profiler is not None:
                    profiler.enable()
                async with aiohttp.ClientSession() as session:
                    url = f"http://127.0.0.1:{port}/api/v1/alerts"
                    async with session.post(url, data=alert, headers=headers) as response:
                        answer = await response.json()
                        start = time.time()
                if response.status != 201:
                    raise SystemExit(f"the API refused the alert: {answer}")
                async with asyncio.timeout(timeout_s):
                    await acks.done.wait()
                    await confirmed(service, answer["id"], boxes)
                done = time.time()
                cpu = cpu_s() - cpu_before
                if profiler is not None and profile_to:
                    profiler.disable()
                    profiler.dump_stats(f"{profile_to}-{transport}{'-own' if own else ''}")
                threads = threads_spent(threads_before)
                arrivals, sim_after = await fleet.ask()
        finally:
            await runner.cleanup()
    return acks.result(start) | {
        "wire": spread(arrivals, start, boxes),
        "confirmed": done - start,
        "cpu_s": cpu,
        "threads": threads,
        "sim_cpu": sim_after - sim_before,
        "rss_mb": peak_rss_mb(),
    }
