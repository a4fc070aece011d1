"""The lean box fleet of ``bench/bench_fanout.py`` spread over processes and brokers, and the
CPU the simulators and the brokers spend while a fan-out is measured.

One process here may hold no more than 20,000 open files (a hard limit that cannot be
raised), and one Mosquitto holds one socket per session, so a fleet is spread: over MQTT one
broker per ``PER_BROKER`` boxes, and simulator processes of at most ``PER_PROCESS`` boxes
(at least two, one per core), each connecting from its own loopback address to one broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from bench.bench_speaker import SECRET, reap
from drivers.mqtt.testing import MosquittoBroker

BARE_TOPIC = "bench/bare"
PER_PROCESS = 18_000
"""Boxes per simulator process at most: one socket each, under the 20,000 open files a process
may hold here, from its own loopback address (under its ephemeral port range)."""
PER_BROKER = 18_000
"""MQTT sessions per Mosquitto at most, for the same limit."""


def process_cpu_s(pid: int | None) -> float:
    """CPU seconds another process (a broker) has spent so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``/proc/loadavg`` gives them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def split(indexes: range, parts: int) -> list[range]:
    """``indexes`` in ``parts`` consecutive ranges whose sizes differ by one at most."""
    n, first = len(indexes), indexes.start
    return [range(first + n * k // parts, first + n * (k + 1) // parts) for k in range(parts)]


def broker_shares(transport: str, boxes: int) -> list[range]:
    """The boxes of each broker over MQTT (one share for TCP: the server holds them all);
    ``BENCH_FANOUT_PER_BROKER`` lowers ``PER_BROKER`` to try several brokers with few boxes."""
    per_broker = int(os.environ.get("BENCH_FANOUT_PER_BROKER", PER_BROKER))
    return split(range(boxes), -(-boxes // per_broker) if transport == "mqtt" else 1)


class FleetReport(NamedTuple):
    """What the simulator processes say: when commands reached their boxes and when the boxes
    verified their downloads (wall clock, sorted), how many downloads failed, the bytes they
    received, their CPU s, and their event loops."""

    arrivals: list[float]
    downloads: list[float]
    failures: int
    download_bytes: int
    cpu_s: float
    loop: str


class Fleet:
    """Lean simulator processes; ``ask`` asks each what its boxes did."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes

    async def ask(self) -> FleetReport:
        arrivals: list[float] = []
        downloads: list[float] = []
        failures, received, cpu = 0, 0, 0.0
        loops: dict[str, None] = {}
        for process in self.processes:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(b"arrivals\n")
            await process.stdin.drain()
            answer = json.loads(await process.stdout.readline())
            arrivals += answer["arrivals"]
            downloads += answer["downloads"]
            failures += answer["download_failures"]
            received += answer["download_bytes"]
            cpu += answer["cpu_s"]
            loops[answer["loop"]] = None
        loop = "+".join(loops)
        return FleetReport(sorted(arrivals), sorted(downloads), failures, received, cpu, loop)


@asynccontextmanager
async def lean_fleet(
    links: Sequence[str],
    shares: Sequence[range],
    bare: bool = False,
    areas: tuple[str, ...] = (),
    connect_timeout_s: float = 300.0,
    play_s: float = 0.0,
    download: bool = False,
    loop: str = "auto",
) -> AsyncIterator[Fleet]:
    """The boxes of ``shares[k]`` connect to ``links[k]``, from at least two processes (one per
    core) of at most ``PER_PROCESS`` boxes, each from its own loopback address, on event loop
    ``loop`` (``simulator_lean_cli --loop``); they play each command ``play_s`` before they
    report it finished (with ``download``, once they have fetched and verified its sealed
    audio)."""
    at_least = -(-2 // len(shares))
    parts = [
        (link, part)
        for link, share in zip(links, shares, strict=True)
        for part in split(share, max(at_least, -(-len(share) // PER_PROCESS)))
    ]
    # Addresses of this run's own: another bench running at the same time uses others.
    source_net = f"127.{os.getpid() % 250 + 1}.{os.getpid() // 250 % 256}"
    processes = []
    try:
        for n, (link, part) in enumerate(parts):
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "drivers.speaker.simulator_lean_cli",
                    "--link", link, "--fleet-secret", SECRET.hex(),
                    "--boxes", str(len(part)), "--first-index", str(part.start),
                    "--source-host", f"{source_net}.{10 + n}",
                    "--connect-timeout-s", str(connect_timeout_s), "--play-s", str(play_s),
                    "--loop", loop,
                    *(["--bare-topic", BARE_TOPIC] if bare else []),
                    *(["--areas", ",".join(areas)] if areas else []),
                    *(["--download"] if download else []),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26,
                )
            )  # fmt: skip
        for process in processes:
            assert process.stdout is not None
            line = await process.stdout.readline()
            if not line.startswith(b"ready"):
                raise SystemExit(f"a simulator process did not start: {line!r}")
        yield Fleet(processes)
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
        await reap(processes, 30)


@contextmanager
def mosquittos(count: int, work: Path) -> Iterator[list[MosquittoBroker]]:
    """``count`` Mosquitto brokers on loopback, each on its own port."""
    with ExitStack() as stack:
        yield [stack.enter_context(MosquittoBroker(work)) for _ in range(count)]


class Machine:
    """The simulators' and the brokers' CPU over a measured window, against its wall time."""

    def __init__(self, fleet: Fleet, brokers: Sequence[MosquittoBroker]) -> None:
        self._fleet = fleet
        self._pids = [broker.pid for broker in brokers]
        self._sim = self._broker = self._began = 0.0
        self._received = 0

    async def begin(self) -> None:
        report = await self._fleet.ask()
        self._sim, self._received = report.cpu_s, report.download_bytes
        self._broker = sum(map(process_cpu_s, self._pids))
        self._began = time.time()

    async def end(self, done: float) -> dict[str, Any]:
        """The figures up to ``done`` (wall clock) and the simulators' arrivals."""
        broker = sum(map(process_cpu_s, self._pids)) - self._broker
        report = await self._fleet.ask()
        received = report.download_bytes - self._received
        return {
            "arrivals": report.arrivals,
            "downloads": report.downloads,
            "download_failures": report.failures,
            "download_mb": received / 1e6,
            "sim_cpu": report.cpu_s - self._sim,
            "sim_loop": report.loop,
            "broker_cpu": broker,
            "window_s": done - self._began,
            "cores": os.cpu_count() or 1,
            "load": load_average(),
        }
