"""Loudspeaker fan-out: 10,000 simulated boxes on loopback, over direct TCP and over MQTT
through Mosquitto, in one run.

For each transport the bench starts a SpeakerHub in this process and the fleet simulator
(``drivers.speaker.simulator_cli``, real agent code, playback time zero) in separate processes,
waits until every box is online, then sends one ``play_url`` per box and measures the time
from the first send to every box acknowledging ``started`` and ``finished``. On MQTT it also
measures one command per area topic. The hub process's peak RSS is the server memory figure.

Goals: all boxes started within 5 s; server memory under 300 MB.
Run: ``.venv/bin/python bench/bench_speaker.py [--boxes 10000] [--processes 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.speaker.event_loops import LOOPS
from drivers.speaker.hub import (
    BoxRegistration,
    MqttBrokerConfig,
    SpeakerHub,
    SpeakerHubConfig,
    TcpListenConfig,
)
from drivers.speaker.messages import AckStage, BoxAck, BoxPresence, PlayUrl, Priority
from drivers.speaker.simulator import area_key, box_key
from drivers.speaker.testing import MediaServer, MosquittoBroker

SECRET = b"bench-fleet-secret-0123456789abcdef"
PLAYBACKS = "playbacks.jsonl"
"""Where each agents' simulator process writes its boxes' playbacks as it exits."""
AREAS = tuple(f"1509{n:02d}" for n in range(1, 11))
AUDIO = b"RIFF" + bytes(32_000)
SLICE = 200


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process so far (this one when ``pid`` is None)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by named processes between ``start`` and ``report``."""

    def __init__(self, processes: dict[str, int | None]) -> None:
        self._processes = processes
        self._before = {name: cpu_seconds(pid) for name, pid in processes.items()}

    def report(self, elapsed_s: float) -> str:
        spent = {
            name: cpu_seconds(pid) - self._before[name] for name, pid in self._processes.items()
        }
        parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in spent.items())
        total = sum(spent.values())
        cpus = os.cpu_count()
        return f"CPU seconds: {parts}; total {total:.2f} in {elapsed_s:.2f} s on {cpus} CPUs"


def raise_file_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class AckCounter:
    """Counts boxes per (cmd_id, stage) from the hub's event stream."""

    expected: int
    seen: dict[tuple[str, AckStage], set[str]] = field(default_factory=dict)
    reached: dict[tuple[str, AckStage], float] = field(default_factory=dict)
    arrivals: dict[tuple[str, AckStage], list[float]] = field(default_factory=dict)
    failed: int = 0
    done: dict[tuple[str, AckStage], asyncio.Event] = field(default_factory=dict)
    all_online: asyncio.Event = field(default_factory=asyncio.Event)

    def event(self, cmd_id: str, stage: AckStage) -> asyncio.Event:
        return self.done.setdefault((cmd_id, stage), asyncio.Event())

    async def consume(self, hub: SpeakerHub) -> None:
        async for event in hub.events():
            if isinstance(event, BoxPresence) and hub.online_count == self.expected:
                self.all_online.set()
            if not isinstance(event, BoxAck):
                continue
            if event.stage is AckStage.FAILED:
                self.failed += 1
            key = (event.cmd_id, event.stage)
            boxes = self.seen.setdefault(key, set())
            if event.box_id not in boxes:
                self.arrivals.setdefault(key, []).append(time.perf_counter())
            boxes.add(event.box_id)
            if len(boxes) == self.expected and key not in self.reached:
                self.reached[key] = time.perf_counter()
                self.event(*key).set()


def play(cmd_id: str, url: str) -> PlayUrl:
    now = datetime.now(UTC)
    return PlayUrl(
        cmd_id=cmd_id,
        alert_id=f"bench-{cmd_id}",
        issued_at=now,
        expires_at=now + timedelta(minutes=10),
        url=url,
        sha256=hashlib.sha256(AUDIO).hexdigest(),
        priority=Priority.EMERGENCY,
    )


def add_sim_loop_option(parser: argparse.ArgumentParser) -> None:
    """``--sim-loop``: the simulators' event loop (auto: uvloop when installed)."""
    parser.add_argument(
        "--sim-loop",
        choices=LOOPS,
        default="auto",
        help="the simulated boxes' event loop (auto: uvloop when installed)",
    )


async def start_fleet(
    link: str | list[str],
    boxes: int,
    processes: int,
    work: Path,
    stagger_s: float = 0.0,
    extra: Sequence[str] = (),
    lean: bool = False,
    loop: str = "auto",
) -> list[asyncio.subprocess.Process]:
    """Simulator processes; with a list of links, process ``n`` uses link ``n`` (cycling).
    ``stagger_s`` apart, so a broker that sets up sessions slowly gets them a share at a time;
    ``extra``: more arguments of every simulator; ``lean``: the lean simulator (verify and
    acknowledge only, :mod:`drivers.speaker.simulator_lean`) instead of the agent's code;
    ``loop``: the simulators' event loop (:mod:`drivers.speaker.event_loops`)."""
    links = [link] if isinstance(link, str) else link
    per = -(-boxes // processes)
    fleet = []
    for n in range(processes):
        if n and stagger_s:
            await asyncio.sleep(stagger_s)
        count = min(per, boxes - n * per)
        common = [
            "--link", links[n % len(links)],
            "--fleet-secret", SECRET.hex(),
            "--boxes", str(count),
            "--first-index", str(n * per),
            # a lean box holds every area it is given: each process gets one
            "--areas", AREAS[n % len(AREAS)] if lean else ",".join(AREAS),
            "--connect-timeout-s", "300",
            "--loop", loop,
        ]  # fmt: skip
        agent = [
            "--heartbeat-s", "600",
            "--work-dir", str(work / f"sim-{n}"),
            "--report", str(work / f"sim-{n}" / PLAYBACKS),
        ]  # fmt: skip
        module = "drivers.speaker.simulator_lean_cli" if lean else "drivers.speaker.simulator_cli"
        fleet.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *common,
                *([] if lean else agent),
                *extra,
                stdin=asyncio.subprocess.PIPE if lean else None,  # a lean one ends at its EOF
                stdout=asyncio.subprocess.PIPE,
            )
        )
    return fleet


def playback_starts(work: Path, processes: int) -> dict[str, float]:
    """When each box of a stopped agents' fleet began to play, by its own clock (the earliest
    playback of the box in its simulator's ``--report``), as wall-clock seconds."""
    first: dict[str, float] = {}
    for n in range(processes):
        report = work / f"sim-{n}" / PLAYBACKS
        if not report.exists():
            continue
        for line in report.read_text(encoding="utf-8").splitlines():
            played = json.loads(line)
            at = datetime.fromisoformat(played["started_at"]).timestamp()
            first[played["box_id"]] = min(at, first.get(played["box_id"], at))
    return first


async def stop_fleet(fleet: list[asyncio.subprocess.Process]) -> None:
    for process in fleet:
        if process.returncode is not None:
            continue
        if process.stdin is not None:
            process.stdin.close()
        else:
            process.send_signal(signal.SIGINT)
    await reap(fleet, 60)


async def reap(processes: Sequence[asyncio.subprocess.Process], timeout_s: float) -> None:
    """Wait for each of ``processes`` to end, killing one that takes longer than ``timeout_s``."""
    for process in processes:
        try:
            async with asyncio.timeout(timeout_s):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def measure(
    name: str,
    hub: SpeakerHub,
    ids: list[str],
    link: str | list[str],
    args: argparse.Namespace,
    url: str,
    broker_pid: int | None = None,
    *,
    broker_pids: Sequence[int] = (),
    simulator_args: Sequence[str] = (),
    lean: bool = False,
) -> None:
    """Start the fleet, wait until it is online and time each way of sending one command to
    every box; ``broker_pids``: the nodes of a broker cluster, whose CPU is reported each."""
    counter = AckCounter(len(ids))
    consumer = asyncio.get_running_loop().create_task(counter.consume(hub))
    began = time.perf_counter()
    fleet = await start_fleet(
        link,
        len(ids),
        args.processes,
        args.work,
        args.stagger_s,
        simulator_args,
        lean,
        args.sim_loop,
    )
    try:
        online = asyncio.ensure_future(counter.all_online.wait())
        exits = [asyncio.ensure_future(p.wait()) for p in fleet]
        await asyncio.wait([online, *exits], return_when=asyncio.FIRST_COMPLETED)
        for waiter in [online, *exits]:
            waiter.cancel()
        if not counter.all_online.is_set():
            raise SystemExit(f"{name}: a simulator process exited before all boxes were online")
        print(f"{name}: {len(ids)} boxes online after {time.perf_counter() - began:.1f} s")
        for label, sender in senders(name, hub, ids):
            cmd_id = f"{name}-{label}"
            command = play(cmd_id, url)
            processes = {"hub": None} | {f"fleet{n}": p.pid for n, p in enumerate(fleet)}
            brokers = {f"broker{n}": pid for n, pid in enumerate(broker_pids)}
            cpu = CpuMeter(processes | brokers | ({"broker": broker_pid} if broker_pid else {}))
            start = time.perf_counter()
            await sender(command)
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(args.timeout_s):
                    await counter.event(cmd_id, AckStage.FINISHED).wait()
            except TimeoutError:
                counts = [len(counter.seen.get((cmd_id, st), ())) for st in AckStage]
                print(
                    f"{name} {label:>11}: NOT COMPLETE after {args.timeout_s:.0f} s: "
                    + ", ".join(f"{st.value} {n}" for st, n in zip(AckStage, counts, strict=True))
                )
                continue
            accepted = counter.arrivals[(cmd_id, AckStage.ACCEPTED)]
            started = counter.arrivals[(cmd_id, AckStage.STARTED)]
            finished = counter.reached[(cmd_id, AckStage.FINISHED)] - start
            p50, p99 = (started[int(len(started) * q) - 1] - start for q in (0.5, 0.99))
            print(
                f"{name} {label:>11}: sent in {sent - start:5.2f} s; all accepted "
                f"{accepted[-1] - start:5.2f} s (first {accepted[0] - start:4.2f} s, half "
                f"{accepted[len(accepted) // 2] - start:4.2f} s); started: half {p50:5.2f} s, "
                f"99 % {p99:5.2f} s, all {started[-1] - start:5.2f} s; all finished "
                f"{finished:5.2f} s; failed acks {counter.failed}; "
                f"hub peak RSS {peak_rss_mb():.0f} MB"
            )
            print(f"{name} {label:>11}: {cpu.report(finished)}")
    finally:
        await stop_fleet(fleet)
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


def senders(name: str, hub: SpeakerHub, ids: list[str]):  # type: ignore[no-untyped-def]
    async def per_box(command: PlayUrl) -> None:
        # Start the sends in slices so the hub's loop keeps serving the audio download and
        # the first acknowledgements while the fan-out is still going out.
        loop = asyncio.get_running_loop()
        sends = []
        for first in range(0, len(ids), SLICE):
            sends += [
                loop.create_task(hub.send_command(b, command)) for b in ids[first : first + SLICE]
            ]
            await asyncio.sleep(0)
        await asyncio.gather(*sends)

    async def per_area(command: PlayUrl) -> None:
        await asyncio.gather(*(hub.send_area_command(area, command) for area in AREAS))

    yield "per-box", per_box
    if name != "tcp":
        yield "area-topics", per_area


def registrations(
    ids: list[str], transport: str, per_process: int | None = None
) -> list[BoxRegistration]:
    """Box ``i`` is in area ``AREAS[i % 10]`` (as the agent simulator has it), or with
    ``per_process`` in the area of its simulator process (as :func:`start_fleet` gives a lean
    one)."""
    return [
        BoxRegistration(
            box_id=box,
            key=box_key(SECRET, box),
            transport=transport,  # type: ignore[arg-type]
            areas=frozenset({AREAS[(i // per_process if per_process else i) % len(AREAS)]}),
        )
        for i, box in enumerate(ids)
    ]


async def run(args: argparse.Namespace) -> None:
    ids = [f"sim-{i:05d}" for i in range(args.boxes)]
    print(
        f"speaker fan-out: {args.boxes} boxes, {args.processes} simulator processes, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    async with MediaServer({"alert.wav": AUDIO}) as media:
        url = media.url("alert.wav")
        tcp = SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0), heartbeat_timeout_s=3600)
        if "tcp" in args.transports:
            async with SpeakerHub(tcp, registrations(ids, "tcp")) as hub:
                await measure("tcp", hub, ids, f"tcp://127.0.0.1:{hub.tcp_port}", args, url)
        if "mqtt" in args.transports:
            with MosquittoBroker(args.work) as broker:
                keys = {area: area_key(SECRET, area) for area in AREAS}
                mqtt = MqttBrokerConfig(host=broker.host, port=broker.port, area_keys=keys)
                config = SpeakerHubConfig(mqtt=mqtt, heartbeat_timeout_s=3600)
                async with SpeakerHub(config, registrations(ids, "mqtt")) as hub:
                    link = f"mqtt://{broker.host}:{broker.port}"
                    await measure("mqtt", hub, ids, link, args, url, broker.pid)
    print(f"server (hub process) peak RSS: {peak_rss_mb():.0f} MB (goal < 300 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--transports", default="tcp,mqtt", help="comma-separated: tcp, mqtt")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="per fan-out")
    parser.add_argument("--stagger-s", type=float, default=0.0, help="between simulators")
    add_sim_loop_option(parser)
    args = parser.parse_args()
    limit = raise_file_limit()
    if limit < args.boxes + 1000:
        sys.exit(f"open-file limit {limit} is too low for {args.boxes} boxes")
    with tempfile.TemporaryDirectory(prefix="bench-speaker-") as work:
        args.work = Path(work)
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
