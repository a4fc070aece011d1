"""The whole-server part of ``bench/bench_fanout.py``: one CAP alert to every box of a county,
from the API's answer, with the real service (HTTP API, store, dispatcher, ``loudspeaker``
channel, espeak-ng) in this process and lean simulated boxes in others.

Over MQTT a fleet larger than one broker holds runs as a real deployment of that size would:
one ``loudspeaker`` channel instance per broker (``loudspeaker-1``, ``loudspeaker-2``...), each
with its share of the registry's boxes, the same master secret and the same area keys; one
alert for the county plans a delivery on every instance."""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.bench_fanout import AckTimes, cpu_s, peak_rss_mb, thread_cpu_s, threads_spent
from bench.bench_loudspeaker import (
    ATTENTION_CLIP,
    TOKEN,
    attention_file,
    confirmed,
    server_config,
)
from bench.fanout_fleet import Machine, broker_shares, lean_fleet, mosquittos
from broadcaster.api.app import make_app
from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config
from broadcaster.deploy.listen import make_runner, open_listener
from broadcaster.deploy.server import freeze_startup_objects
from broadcaster.service import BroadcasterService
from channels.loudspeaker import LoudspeakerChannel
from drivers.speaker import HubEvent
from tests.core.support import COUNTY, make_alert


async def settled(service: BroadcasterService, channels: Sequence[LoudspeakerChannel]) -> None:
    """Wait until the server has finished with the boxes' arrival (their retries brought
    forward), so that work is not counted in the alert's time and CPU."""
    forwarder = service.dispatcher._forwarder
    while True:  # internal state of other components: polled, not awaited
        writing = any(not w.done() for w in forwarder._writers.values())
        if not any(channel.returning.waiting for channel in channels) and not writing:
            return
        await asyncio.sleep(0.05)


def instances(
    config: Config, work: Path, shares: Sequence[range], hubs: Sequence[dict[str, Any]]
) -> tuple[Config, list[str]]:
    """``config`` with one loudspeaker channel instance per share of the boxes, each on its
    own hub settings (its broker) and with its share of the registry; their names."""
    if len(shares) == 1:
        return config, ["loudspeaker"]
    names = [f"loudspeaker-{k + 1}" for k in range(len(shares))]
    targets = work / "targets.json"
    boxes = json.loads(targets.read_text())
    for name, share in zip(names, shares, strict=True):
        for n in share:
            boxes[n]["channel"] = name
    targets.write_text(json.dumps(boxes))
    table = config.channels["loudspeaker"]
    channels = {name: table | hub for name, hub in zip(names, hubs, strict=True)}
    return config.model_copy(update={"channels": channels}), names


async def sampling(
    path: str | None, transport: str, own: bool
) -> asyncio.subprocess.Process | None:
    """With ``path``, py-spy sampling every thread of this process from now until it is sent
    SIGINT, into ``path-<kind>`` (its raw format: one stack and count a line). Unlike the
    profiler it leaves the loop's speed about as it is."""
    if not path:
        return None
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    out = f"{path}-{transport}{'-own' if own else ''}"
    command = [spy, "record", "--pid", str(os.getpid()), "--threads", "--nonblocking"]
    command += ["--rate", "500", "--format", "raw", "--output", out]
    quiet = asyncio.subprocess.DEVNULL
    sampler = await asyncio.create_subprocess_exec(*command, stdout=quiet, stderr=quiet)
    await asyncio.sleep(1.0)  # attached before the alert goes in
    return sampler


def recording(channel: LoudspeakerChannel, acks: AckTimes) -> None:
    """Let ``acks`` see every event the channel handles."""
    handler: Callable[[HubEvent], None] = channel._on_event

    def both(event: HubEvent) -> None:
        handler(event)
        acks.on_event(event)

    channel._on_event = both  # type: ignore[method-assign]


async def whole_server(
    transport: str,
    boxes: int,
    work: Path,
    timeout_s: float,
    own: bool = False,
    attention: bool = True,
    play_s: float = 0.0,
    download: str | None = None,
    sim_loop: str = "auto",
) -> dict[str, Any]:
    """One alert to ``boxes`` boxes (simulated on event loop ``sim_loop``) that hold the
    county's key (group commands), or with ``own`` only their own keys (a command each); with
    ``attention`` the boxes hold the attention clip the play command names; the boxes play
    each command ``play_s`` (with ``download``, after they fetched and verified its sealed
    audio: ``broker``, over MQTT from the audio the channel retains on the broker, ``server``,
    from the server over HTTP)."""
    groups = () if own else (COUNTY,)
    extra: dict[str, Any] = {"audio_over_mqtt": download != "server"}
    if attention:
        extra["attention_clip"] = {"id": ATTENTION_CLIP, "sha256": attention_file(work)}
    shares = broker_shares(transport, boxes)
    with mosquittos(len(shares) if transport == "mqtt" else 0, work) as brokers:
        hubs: list[dict[str, Any]] = [
            {"mqtt": {"host": b.host, "port": b.port}, "default_transport": "mqtt"} for b in brokers
        ] or [{"tcp": {"host": "127.0.0.1", "port": 0}}]
        config, port = server_config(work, boxes, hubs[0], extra=extra, group_areas=groups)
        config, names = instances(config, work, shares, hubs)
        service = BroadcasterService(config)
        runner = make_runner(make_app(service), config.server)  # as broadcaster serve listens
        await runner.setup()
        listener = await open_listener(runner, "127.0.0.1", port, config.server)
        freeze_startup_objects()
        try:
            acks = AckTimes(boxes)
            channels: list[LoudspeakerChannel] = []
            for name in names:
                instance = service.channels[name]
                assert isinstance(instance, LoudspeakerChannel) and instance.hub is not None
                recording(instance, acks)
                channels.append(instance)
            links = [f"mqtt://{b.host}:{b.port}" for b in brokers]
            assert channels[0].hub is not None
            links = links or [f"tcp://127.0.0.1:{channels[0].hub.tcp_port}"]
            async with lean_fleet(
                links,
                shares,
                areas=groups,
                connect_timeout_s=timeout_s,
                play_s=play_s,
                download=download is not None,
                loop=sim_loop,
            ) as fleet:
                for channel, share in zip(channels, shares, strict=True):
                    ids = [f"sim-{n:05d}" for n in share]
                    await channel.wait_online(ids, within_s=timeout_s)
                await settled(service, channels)
                machine = Machine(fleet, brokers)
                await machine.begin()
                alert = to_xml(make_alert(f"bench-{transport}", geocodes=(COUNTY,)))
                headers = {
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/cap+xml",
                }
                profile_to = os.environ.get("BENCH_FANOUT_PROFILE")
                profiler = cProfile.Profile() if profile_to else None
                sampler = await sampling(os.environ.get("BENCH_FANOUT_SPY"), transport, own)
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
                stuck: dict[str, dict[str, int]] | None = None
                try:
                    async with asyncio.timeout(timeout_s):
                        await acks.done.wait()
                        await confirmed(service, answer["id"], boxes)
                except TimeoutError:  # report how far it got, and where deliveries stand
                    stuck = await service.database.run(service.outbox.summary, answer["id"])
                done = time.time()
                cpu = cpu_s() - cpu_before
                if profiler is not None and profile_to:
                    profiler.disable()
                    profiler.dump_stats(f"{profile_to}-{transport}{'-own' if own else ''}")
                threads = threads_spent(threads_before)
                if sampler is not None:
                    sampler.send_signal(signal.SIGINT)
                    await asyncio.wait_for(sampler.wait(), 30)
                figures = await machine.end(done)
        finally:
            listener.close()
            await runner.cleanup()
    return acks.result(start, figures) | {
        "confirmed": None if stuck else done - start,
        **({"timed_out": stuck} if stuck else {}),
        "cpu_s": cpu,
        "threads": threads,
        "rss_mb": peak_rss_mb(),
        "instances": len(names),
    }
