"""Loudspeaker alert through the whole server: 10,000 simulated boxes on loopback, over direct
TCP and over MQTT through Mosquitto, in one run.

For each transport the bench runs the real service with its HTTP server and the ``loudspeaker``
channel in this process (registry of 10,000 boxes in one county, keys from the channel's master
secret), and the fleet simulator (``drivers.speaker.simulator_cli``: real agent code, playback
time zero) in separate processes. Once every box is online it POSTs one CAP alert to
``/api/v1/alerts`` and measures, from the API's answer: the time until every box acknowledged
``started`` and ``finished`` (as the channel receives the acks), and until the core has recorded
every delivery as confirmed. The audio is rendered (espeak-ng) inside that time and downloaded
by the boxes from the server. The server process's peak RSS is the memory figure (each transport
runs in a fresh process; the simulators and the broker run in other processes); the CPU seconds
each process spent from the API's answer to the last confirmation show where the time goes.

With ``--attention on`` (the default) the channel is configured with the stored attention clip
and the simulated boxes hold it, so sound starts with the clip the play command names, on its
arrival, while the server still renders the warning; ``--attention off`` measures the boxes
without it (sound starts with the rendered warning, once downloaded). "API answer -> first box
playing sound" is the first ``started`` ack at the server; "by the boxes' own clocks" gives when
the first and the last box began to play as the simulators recorded it (their ``--report``, read
once they have exited), so the acks' way back to the server is told apart from the boxes'
playing. Each simulator process runs thousands of agents on one event loop, so at 10,000 boxes
a box's steps (verifying the command and the stored clip, starting its player) interleave with
those of every other box of its process: the boxes' own times then measure the simulators as
much as the server (``bench/bench_fanout.py`` measures the fan-out with boxes that do the least).
``--sim-loop`` chooses the simulators' event loop (uvloop when installed, by default).

Goals: first box playing sound within 0.5 s, all boxes started within 5 s; server memory under
300 MB.
Run: ``PYTHONPATH=. .venv/bin/python bench/bench_loudspeaker.py [--boxes N] [--transports mqtt]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from audio import LOUDSPEAKER_PROFILE, ExportFormat
from audio.assembly import attention_clip
from audio.export import export_one, to_segment
from bench.bench_speaker import (
    SECRET,
    CpuMeter,
    add_sim_loop_option,
    playback_starts,
    raise_file_limit,
    start_fleet,
    stop_fleet,
)
from broadcaster.api.app import make_app
from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config, parse_config
from broadcaster.deploy.listen import make_runner, open_listener
from broadcaster.deploy.server import freeze_startup_objects
from broadcaster.service import BroadcasterService
from channels.loudspeaker import LoudspeakerChannel
from drivers.speaker import AckStage, BoxAck, HubEvent
from drivers.speaker.event_loops import loop_name
from drivers.speaker.testing import MosquittoBroker, free_port
from tests.core.support import COUNTY, make_alert

TOKEN = "bench-api-token"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


ATTENTION_CLIP = "attention"


def attention_file(work: Path) -> str:
    """Write the loudspeaker attention signal as the boxes store it; returns its SHA-256."""
    path = work / ATTENTION_CLIP
    samples = attention_clip(LOUDSPEAKER_PROFILE)
    encoded = export_one(to_segment(samples), ExportFormat.MP3, work)
    encoded.rename(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def registry(boxes: int, group_areas: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Boxes ``sim-00000``… (the simulator's ids) in villages of one county, holding the keys
    of ``group_areas`` (group commands; none: each box its own command)."""
    params = {"group_areas": list(group_areas)} if group_areas else {}
    return [
        {
            "id": f"spk-{n:05d}",
            "channel": "loudspeaker",
            "name": f"村{n}",
            "division": f"{COUNTY[:6]}{n // 500 + 1:03d}{n % 500 + 1:03d}",
            "address": f"sim-{n:05d}",
            "params": params,
        }
        for n in range(boxes)
    ]


def server_config(
    work: Path,
    boxes: int,
    hub: dict[str, Any],
    concurrency: int = 1000,
    extra: dict[str, Any] | None = None,
    group_areas: Sequence[str] = (),
) -> tuple[Config, int]:
    """The server's configuration for ``boxes`` boxes of the registry in ``work`` and the
    port it listens on; ``hub`` is the channel's transport table, ``extra`` more of its keys,
    ``group_areas`` the areas whose keys the boxes hold."""
    targets = work / "targets.json"
    targets.write_text(json.dumps(registry(boxes, group_areas)))
    port = free_port()
    channel_table = (
        {
            "type": "loudspeaker",
            "concurrency": concurrency,
            "master_secret": SECRET.decode(),  # the simulators' --fleet-secret
            "repeat": 1,
            "heartbeat_timeout_seconds": 3600,
        }
        | hub
        | (extra or {})
    )
    data = {
        "server": {
            "data_dir": str(work / "data"),
            "public_url": f"http://127.0.0.1:{port}",
            "max_body_bytes": 1_000_000,
            # The simulated boxes share a few loopback addresses; real boxes have one each.
            "connections_per_client": boxes + 100,
        },
        "api": {"tokens": [{"name": "bench", "token": TOKEN}]},
        "audio": {"engine_order": ["espeak-ng"]},
        "registry": {"targets": str(targets)},
        "dispatcher": {"batch_size": concurrency},  # polls idle at the default, as served
        "channels": {"loudspeaker": channel_table},
    }
    return parse_config(data, base_dir=work, source=None), port


class AckClock:
    """Wraps the channel's event handler: when each stage reached every box."""

    def __init__(self, channel: LoudspeakerChannel, expected: int) -> None:
        self.expected = expected
        self.boxes: dict[AckStage, set[str]] = {stage: set() for stage in AckStage}
        self.reached: dict[AckStage, float] = {}
        self.first: dict[AckStage, float] = {}
        self.sounding: set[str] = set()
        self.first_sound: float | None = None
        self.all_sound: float | None = None
        self.done = asyncio.Event()
        handler: Callable[[HubEvent], None] = channel._on_event

        def recording(event: HubEvent) -> None:
            handler(event)
            if isinstance(event, BoxAck) and event.stage is AckStage.STARTED:
                # Sound starts with the attention clip, or with the warning itself.
                self.first_sound = self.first_sound or time.perf_counter()
                self.sounding.add(event.box_id)
                if len(self.sounding) == self.expected and self.all_sound is None:
                    self.all_sound = time.perf_counter()
            if isinstance(event, BoxAck) and event.cmd_id.startswith("play-"):
                # The play command asks for started and finished only: either says the box
                # accepted it too.
                stages = {event.stage}
                if event.stage is not AckStage.FAILED:
                    stages.add(AckStage.ACCEPTED)
                for stage in stages:
                    self.note(stage, event.box_id)

        channel._on_event = recording  # type: ignore[method-assign]

    def note(self, stage: AckStage, box_id: str) -> None:
        """``box_id`` reached ``stage`` of the play command (now, if it is the first)."""
        seen = self.boxes[stage]
        self.first.setdefault(stage, time.perf_counter())
        seen.add(box_id)
        if len(seen) == self.expected and stage not in self.reached:
            self.reached[stage] = time.perf_counter()
            if stage is AckStage.FINISHED:
                self.done.set()


async def measure(
    name: str,
    args: argparse.Namespace,
    hub: dict[str, Any],
    link: str,
    broker_pid: int | None = None,
) -> None:
    work = args.work / name
    work.mkdir()
    extra: dict[str, Any] = {}
    if args.attention == "on":
        extra["attention_clip"] = {"id": ATTENTION_CLIP, "sha256": attention_file(work)}
    config, port = server_config(work, args.boxes, hub, args.concurrency, extra)
    service = BroadcasterService(config)
    runner = make_runner(make_app(service), config.server)  # as broadcaster serve listens
    await runner.setup()
    listener = await open_listener(runner, "127.0.0.1", port, config.server)
    freeze_startup_objects()  # as broadcaster serve does
    fleet: list[asyncio.subprocess.Process] = []
    try:
        channel = service.channels["loudspeaker"]
        assert isinstance(channel, LoudspeakerChannel) and channel.hub is not None
        if name == "tcp":
            link = link.format(port=channel.hub.tcp_port)
        began = time.perf_counter()
        if args.attention == "on":
            for n in range(args.processes):
                clips = work / f"sim-{n}" / "clips"
                clips.mkdir(parents=True)
                (clips / ATTENTION_CLIP).write_bytes((work / ATTENTION_CLIP).read_bytes())
        fleet = await start_fleet(link, args.boxes, args.processes, work, loop=args.sim_loop)
        ids = [f"sim-{n:05d}" for n in range(args.boxes)]
        await channel.wait_online(ids, within_s=args.timeout_s)
        online = time.perf_counter() - began
        rss = peak_rss_mb()
        print(f"{name}: {args.boxes} boxes online after {online:.1f} s (RSS {rss:.0f} MB)")
        clock = AckClock(channel, args.boxes)
        processes = {"server": None} | {f"fleet{n}": p.pid for n, p in enumerate(fleet)}
        cpu = CpuMeter(processes | ({"broker": broker_pid} if broker_pid else {}))
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/cap+xml"}
        alert = to_xml(make_alert(f"bench-{name}", geocodes=(COUNTY,)))
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/api/v1/alerts"
            async with session.post(url, data=alert, headers=headers) as response:
                answer = await response.json()
                accepted, answered_at = time.perf_counter(), time.time()
        if response.status != 201:
            raise SystemExit(f"{name}: the API refused the alert: {answer}")
        print(f"{name}: planned {answer['planned']}")
        try:
            async with asyncio.timeout(args.timeout_s):
                await clock.done.wait()
                await confirmed(service, answer["id"], args.boxes)
        except TimeoutError:
            counts = ", ".join(f"{s.value} {len(b)}" for s, b in clock.boxes.items())
            print(f"{name}: NOT COMPLETE after {args.timeout_s:.0f} s: {counts}")
            return
        recorded = time.perf_counter()
        assert clock.first_sound is not None and clock.all_sound is not None
        print(
            f"{name}: attention clip {args.attention}: API answer -> first box playing sound"
            f" {clock.first_sound - accepted:5.2f} s (goal <= 0.5 s), every box playing sound"
            f" {clock.all_sound - accepted:5.2f} s"
        )
        started = clock.reached[AckStage.STARTED] - accepted
        print(
            f"{name}: first accepted {clock.first[AckStage.ACCEPTED] - accepted:5.2f} s, all"
            f" accepted {clock.reached[AckStage.ACCEPTED] - accepted:5.2f} s, first started"
            f" {clock.first[AckStage.STARTED] - accepted:5.2f} s"
        )
        finished = clock.reached[AckStage.FINISHED] - accepted
        print(
            f"{name}: from the API's answer: all started {started:5.2f} s, all finished"
            f" {finished:5.2f} s, all confirmed in the store {recorded - accepted:5.2f} s;"
            f" failed acks {len(clock.boxes[AckStage.FAILED])}; server peak RSS"
            f" {peak_rss_mb():.0f} MB"
        )
        print(f"{name}: {cpu.report(recorded - accepted)}")
        await stop_fleet(fleet)  # its simulators write their boxes' playbacks as they exit
        starts = sorted(playback_starts(work, args.processes).values())
        if starts:
            print(
                f"{name}: by the boxes' own clocks: first box playing sound"
                f" {starts[0] - answered_at:5.2f} s, every box playing sound"
                f" {starts[-1] - answered_at:5.2f} s after the API's answer ({len(starts)} boxes)"
            )
    finally:
        await stop_fleet(fleet)
        listener.close()
        await runner.cleanup()


async def confirmed(service: BroadcasterService, alert_id: str, expected: int) -> None:
    """Wait until the store has every delivery of the alert confirmed (on every channel
    instance: a fleet may be spread over several)."""
    changed = asyncio.Event()
    unsubscribe = service.subscribe(changed.set)
    try:
        while True:
            changed.clear()
            summary = await service.database.run(service.outbox.summary, alert_id)
            if sum(states.get("confirmed", 0) for states in summary.values()) == expected:
                return
            await changed.wait()
    finally:
        unsubscribe()


async def run(args: argparse.Namespace) -> None:
    print(
        f"{args.transports}: {args.boxes} boxes, {args.processes} simulator processes"
        f" on {loop_name(args.sim_loop)}"
    )
    if args.transports == "tcp":
        tcp = {"tcp": {"host": "127.0.0.1", "port": 0}}
        await measure("tcp", args, tcp, "tcp://127.0.0.1:{port}")
    else:
        with MosquittoBroker(args.work) as broker:
            hub = {"mqtt": {"host": broker.host, "port": broker.port}, "default_transport": "mqtt"}
            link = f"mqtt://{broker.host}:{broker.port}"
            await measure("mqtt", args, hub, link, broker.pid)
    print(f"{args.transports}: server peak RSS {peak_rss_mb():.0f} MB (goal < 300 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--transports", default="tcp,mqtt", help="comma-separated: tcp, mqtt; each runs alone"
    )
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=1000, help="the channel's sends")
    parser.add_argument(
        "--attention",
        choices=("on", "off"),
        default="on",
        help="boxes hold the attention clip the play command names (off: without it)",
    )
    add_sim_loop_option(parser)
    args = parser.parse_args()
    transports = args.transports.split(",")
    if not set(transports) <= {"tcp", "mqtt"}:
        sys.exit(f"unknown transports in {args.transports!r}")
    if len(transports) > 1:
        # Each server in a fresh process, so its peak memory is its own.
        options = [a for a in sys.argv[1:] if not a.startswith("--transports")]
        failed = 0
        for transport in transports:
            command = [sys.executable, __file__, *options, f"--transports={transport}"]
            failed |= subprocess.run(command, check=False).returncode
        sys.exit(failed)
    limit = raise_file_limit()
    if limit < args.boxes + 1000:
        sys.exit(f"open-file limit {limit} is too low for {args.boxes} boxes")
    with tempfile.TemporaryDirectory(prefix="bench-loudspeaker-") as work:
        args.work = Path(work)
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
