"""Loudspeaker fan-out against the wire: bare Mosquitto, the hub alone and the whole server,
over TCP and MQTT, for 10,000 and 100,000 boxes, side by side in one run.

Every measurement runs in a fresh process (so its peak RSS and CPU time are its own: all of
its threads, from ``getrusage``), with lean simulated boxes (``drivers.speaker
.simulator_lean``: verify, ack ``accepted``/``started``/``finished`` at once, no download, no
playback) in separate processes, each connecting from its own loopback address:

- ``bare mqtt``: one QoS 1 message published to N bare subscribers of one topic; times are
  from the publish to its arrival at the subscribers (the broker's fan-out, the floor).
- ``hub tcp|mqtt``: a ``SpeakerHub`` alone sends one signed ``play_url`` per box (a command
  template signed per box key); times are from the first send to the acks at the hub.
- ``server tcp|mqtt``: the whole server (API, intake, planner, dispatcher, store, channel,
  audio rendered by espeak-ng inside the time) from the API's answer to one CAP alert for
  the county; ``started``/``accepted`` are the boxes' acks as the channel receives them
  (``started`` by the attention clip the server sends ahead, ``--attention on``, the default),
  ``confirmed`` when the store has every delivery confirmed.

``wire`` columns are when the command reached the boxes (the simulators' clocks, same
machine); ``sim CPU`` is the simulators' CPU time, the part of the machine they took. CPU per
delivery is the measured process's CPU from just before the POST (server) or the first send
(hub) to the last confirmation, divided by the boxes.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_fanout.py [--quick] [--boxes 10000,100000]``
(``BENCH_FANOUT_QUICK=1`` is ``--quick``: 10,000 boxes only). ``BENCH_FANOUT_PROFILE=PATH``
writes a cProfile of the server's event loop over the measured window of each ``server-*``
kind to ``PATH-<transport>[-own]`` (read it with ``pstats``; the profiler slows the loop,
so its run's figures are not the bench's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.bench_speaker import SECRET, play
from drivers.mqtt import MqttClient
from drivers.mqtt.testing import MosquittoBroker
from drivers.speaker import AckStage, BoxAck, HubEvent, SpeakerHub, SpeakerHubConfig
from drivers.speaker.codec import CommandTemplate, box_target
from drivers.speaker.hub import BoxRegistration, MqttBrokerConfig, TcpListenConfig
from drivers.speaker.simulator import box_key

PER_PROCESS = 25_000
"""Boxes per simulator process (each from its own loopback address, under its port range)."""
BARE_TOPIC = "bench/bare"
STAGES = (AckStage.ACCEPTED, AckStage.STARTED, AckStage.FINISHED)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds of this process's threads so far, summed by name (``sqlite``, ``asyncio``,
    the event loop as ``main``...)."""
    ticks = os.sysconf("SC_CLK_TCK")
    by_name: dict[str, float] = {}
    main_id = os.getpid()
    names = {t.native_id: t.name for t in threading.enumerate()}
    for task in Path(f"/proc/{main_id}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        name = names.get(int(task.name), "other")
        name = "main" if int(task.name) == main_id else name.rstrip("0123456789_-")
        by_name[name] = by_name.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return by_name


def threads_spent(before: dict[str, float]) -> dict[str, float]:
    """CPU seconds each thread group spent since ``before`` (0.01 s resolution)."""
    return {
        name: round(spent - before.get(name, 0.0), 2)
        for name, spent in thread_cpu_s().items()
        if spent - before.get(name, 0.0) >= 0.01
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raise_file_limit(wanted: int) -> int:
    """As many open files as ``wanted`` (root may raise the hard limit); returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (max(wanted, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return limit
        except (ValueError, OSError):
            continue
    return soft


class Fleet:
    """Lean simulator processes; ``arrivals`` asks each for its boxes' arrival times."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes

    async def ask(self) -> tuple[list[float], float]:
        arrivals: list[float] = []
        cpu = 0.0
        for process in self.processes:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(b"arrivals\n")
            await process.stdin.drain()
            answer = json.loads(await process.stdout.readline())
            arrivals += answer["arrivals"]
            cpu += answer["cpu_s"]
        return sorted(arrivals), cpu


@asynccontextmanager
async def lean_fleet(
    link: str, boxes: int, bare: bool = False, areas: tuple[str, ...] = ()
) -> AsyncIterator[Fleet]:
    per = min(PER_PROCESS, -(-boxes // 2))
    processes = []
    try:
        for n, first in enumerate(range(0, boxes, per)):
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "drivers.speaker.simulator_lean_cli",
                    "--link", link, "--fleet-secret", SECRET.hex(),
                    "--boxes", str(min(per, boxes - first)), "--first-index", str(first),
                    "--source-host", f"127.0.0.{10 + n}",
                    *(["--bare-topic", BARE_TOPIC] if bare else []),
                    *(["--areas", ",".join(areas)] if areas else []),
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
        for process in processes:
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


def spread(times: list[float], start: float, expected: int) -> dict[str, float | None]:
    """First, 50 %, 99 % and all of ``times`` after ``start`` (None where not reached)."""

    def at(share: float) -> float | None:
        index = max(1, int(expected * share + 0.999999)) - 1
        return times[index] - start if index < len(times) else None

    return {"first": at(0.0), "p50": at(0.5), "p99": at(0.99), "all": at(1.0)}


class AckTimes:
    """When each box's first ack of each stage arrived (wall clock), from hub events: of the
    play command, except ``started``, which is the box's first sound (the attention clip sent
    ahead, when there is one); ``accepted`` is the first ack of the play command whatever its
    stage (the server asks boxes for ``started`` and ``finished`` only)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.times: dict[AckStage, list[float]] = {stage: [] for stage in AckStage}
        self._seen: dict[AckStage, set[str]] = {stage: set() for stage in AckStage}
        self.done = asyncio.Event()

    def on_event(self, event: HubEvent) -> None:
        if not isinstance(event, BoxAck):
            return
        play = event.cmd_id.startswith("play-")
        if not play and event.stage is not AckStage.STARTED:
            return
        if play and event.box_id not in self._seen[AckStage.ACCEPTED]:
            self._seen[AckStage.ACCEPTED].add(event.box_id)
            self.times[AckStage.ACCEPTED].append(time.time())
        if event.stage is AckStage.ACCEPTED:
            return
        seen = self._seen[event.stage]
        if event.box_id not in seen:
            seen.add(event.box_id)
            self.times[event.stage].append(time.time())
            if event.stage is AckStage.FINISHED and len(seen) == self.expected:
                self.done.set()

    def result(self, start: float) -> dict[str, Any]:
        started = spread(self.times[AckStage.STARTED], start, self.expected)
        accepted = spread(self.times[AckStage.ACCEPTED], start, self.expected)
        return {"started": started, "accepted": accepted["all"]}


async def bare(boxes: int, work: Path, timeout_s: float) -> dict[str, Any]:
    with MosquittoBroker(work) as broker:
        async with lean_fleet(f"mqtt://{broker.host}:{broker.port}", boxes, bare=True) as fleet:
            publisher = MqttClient(broker.host, broker.port, "bench-bare-publisher")
            await publisher.connect()
            _, sim_before = await fleet.ask()
            start = time.time()
            await publisher.publish(BARE_TOPIC, b"x" * 400, qos=1)
            async with asyncio.timeout(timeout_s):
                while True:  # the subscribers are other processes: ask until all have it
                    arrivals = (await fleet.ask())[0]
                    if len(arrivals) >= boxes:
                        break
                    await asyncio.sleep(0.05)
            _, sim_after = await fleet.ask()
            await publisher.disconnect()
    wire = spread(arrivals, start, boxes)
    return {"wire": wire, "started": wire, "sim_cpu": sim_after - sim_before}


async def hub_alone(transport: str, boxes: int, work: Path, timeout_s: float) -> dict[str, Any]:
    ids = [f"sim-{n:05d}" for n in range(boxes)]
    regs = [BoxRegistration(b, box_key(SECRET, b), transport) for b in ids]  # type: ignore[arg-type]
    async with broker_for(transport, work) as mqtt:
        tcp = TcpListenConfig("127.0.0.1", 0) if transport == "tcp" else None
        config = SpeakerHubConfig(tcp=tcp, mqtt=mqtt, heartbeat_timeout_s=3600)
        async with SpeakerHub(config, regs) as hub:
            acks = AckTimes(boxes)

            async def consume() -> None:
                async for event in hub.events():
                    acks.on_event(event)
                    if hub.online_count == boxes:
                        online.set()

            consumer = asyncio.get_running_loop().create_task(consume())
            online = asyncio.Event()
            link = f"mqtt://{mqtt.host}:{mqtt.port}" if mqtt else f"tcp://127.0.0.1:{hub.tcp_port}"
            async with lean_fleet(link, boxes) as fleet:
                async with asyncio.timeout(timeout_s):
                    await online.wait()
                _, sim_before = await fleet.ask()
                template = CommandTemplate(play("play-bench", "http://127.0.0.1:9/a.wav"))
                cpu_before, start = cpu_s(), time.time()
                sends = []
                for first in range(0, boxes, 500):
                    for reg in regs[first : first + 500]:
                        data = template.sign("play-bench", box_target(reg.box_id), reg.key)
                        sends.append(asyncio.ensure_future(hub.send_signed(reg.box_id, data)))
                    await asyncio.sleep(0)
                await asyncio.gather(*sends)
                async with asyncio.timeout(timeout_s):
                    await acks.done.wait()
                cpu = cpu_s() - cpu_before
                arrivals, sim_after = await fleet.ask()
            consumer.cancel()
    return acks.result(start) | {
        "wire": spread(arrivals, start, boxes),
        "cpu_s": cpu,
        "sim_cpu": sim_after - sim_before,
        "rss_mb": peak_rss_mb(),
    }


@asynccontextmanager
async def broker_for(transport: str, work: Path) -> AsyncIterator[MqttBrokerConfig | None]:
    if transport != "mqtt":
        yield None
        return
    with MosquittoBroker(work) as broker:
        yield MqttBrokerConfig(broker.host, broker.port, client_id="bench-hub")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", default="10000,100000", help="comma-separated fleet sizes")
    parser.add_argument("--quick", action="store_true", help="10,000 boxes only")
    parser.add_argument(
        "--kinds",
        default="bare,hub-tcp,hub-mqtt,server-tcp,server-mqtt",
        help="also server-tcp-own, server-mqtt-own: boxes without area keys (a command each)",
    )
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--attention",
        choices=("on", "off"),
        default="on",
        help="the server sends the boxes' stored attention clip ahead of the warning",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, size = args.one.rsplit(":", 1)
        attention = args.attention == "on"
        result = asyncio.run(measure_one(kind, int(size), args.timeout_s, attention))
        print("RESULT " + json.dumps(result))
        return
    sizes = [int(s) for s in args.boxes.split(",")]
    if args.quick or os.environ.get("BENCH_FANOUT_QUICK"):
        sizes = [10_000]
    limit = raise_file_limit(max(sizes) * 2 + 20_000)
    results: dict[tuple[str, int], dict[str, Any] | str] = {}
    for size in sizes:
        for kind in args.kinds.split(","):
            if size + 1000 > limit:
                # The server (TCP) and the broker (MQTT) each hold every box's connection.
                results[kind, size] = f"not run: {size} sessions need more open files than {limit}"
                print(f"{kind} {size}: {results[kind, size]}", flush=True)
                continue
            command = [sys.executable, __file__, f"--one={kind}:{size}"]
            command += [f"--timeout-s={args.timeout_s}", f"--attention={args.attention}"]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            results[kind, size] = (
                json.loads(lines[-1][7:]) if lines else f"failed: {done.stderr.strip()[-300:]}"
            )
            print(f"{kind} {size}: {format_row(results[kind, size])}", flush=True)
    print_table(sizes, args.kinds.split(","), results)


async def measure_one(
    kind: str, boxes: int, timeout_s: float, attention: bool = True
) -> dict[str, Any]:
    raise_file_limit(boxes * 2 + 20_000)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as work:
        if kind == "bare":
            result = await bare(boxes, Path(work), timeout_s)
        elif kind.startswith("hub-"):
            result = await hub_alone(kind.split("-")[1], boxes, Path(work), timeout_s)
        else:
            from bench.fanout_server import whole_server

            own = kind.endswith("-own")
            transport = kind.split("-")[1]
            result = await whole_server(transport, boxes, Path(work), timeout_s, own, attention)
    return result | {"boxes": boxes}


def _s(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.2f}"


def format_row(result: dict[str, Any] | str) -> str:
    if isinstance(result, str):
        return result
    started, wire = result["started"], result.get("wire", {})
    parts = [
        f"started first {_s(started['first'])} 50% {_s(started['p50'])}"
        f" 99% {_s(started['p99'])} all {_s(started['all'])}",
        f"accepted {_s(result.get('accepted'))}",
        f"wire all {_s(wire.get('all'))}",
        f"sim CPU {result['sim_cpu']:.2f}",
    ]
    if "cpu_s" in result:
        per = result["cpu_s"] / result["boxes"] * 1000 if "boxes" in result else None
        parts.append(f"CPU {result['cpu_s']:.2f} s" + (f" ({per:.3f} ms/delivery)" if per else ""))
        parts.append(f"peak RSS {result['rss_mb']:.0f} MB")
    if "confirmed" in result:
        parts.append(f"confirmed {_s(result['confirmed'])}")
    if "threads" in result:
        parts.append(f"CPU by thread {result['threads']}")
    return "; ".join(parts)


def print_table(
    sizes: list[int], kinds: list[str], results: dict[tuple[str, int], dict[str, Any] | str]
) -> None:
    print("\nfrom the publish / first send / API answer, seconds (started = acks at the server)")
    head = f"{'':12}" + "".join(f"{size:>34,}" for size in sizes)
    print(head)
    rows = [
        ("first", lambda r: _s(r["started"]["first"])),
        ("50 %", lambda r: _s(r["started"]["p50"])),
        ("99 %", lambda r: _s(r["started"]["p99"])),
        ("all started", lambda r: _s(r["started"]["all"])),
        ("all accepted", lambda r: _s(r.get("accepted"))),
        ("wire: all", lambda r: _s(r.get("wire", {}).get("all"))),
        ("CPU ms/dlv", lambda r: f"{r['cpu_s'] / r['boxes'] * 1000:6.3f}" if "cpu_s" in r else "-"),
        ("peak RSS MB", lambda r: f"{r['rss_mb']:6.0f}" if "rss_mb" in r else "-"),
        ("sim CPU s", lambda r: f"{r['sim_cpu']:6.2f}"),
    ]
    for kind in kinds:
        print(f"{kind}")
        for label, value in rows:
            cells = []
            for size in sizes:
                result = results.get((kind, size))
                cells.append(value(result) if isinstance(result, dict) else "  n/a ")
            print(f"  {label:12}" + "".join(f"{cell:>34}" for cell in cells))


if __name__ == "__main__":
    main()
