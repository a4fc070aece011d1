"""Loudspeaker fan-out against the wire: bare Mosquitto, the hub alone and the whole server,
over TCP and MQTT, for 10,000 to 100,000 boxes, side by side in one run.

Every measurement runs in a fresh process (so its peak RSS and CPU time are its own: all of
its threads, from ``getrusage``), with lean simulated boxes (``drivers.speaker
.simulator_lean``: verify, ack ``accepted``/``started`` at once and ``finished`` once the
command has played, ``--play-s``, by default no time; no sound) in separate processes, each
connecting from its own loopback address. By default they download nothing; with
``--download`` the boxes of the server kinds fetch and verify their sealed audio as real
boxes do and play only then (``downloaded``: when every box had its audio verified; the
failures and the bytes received). Over MQTT they take it from the broker, where the channel
retains it once with a seal note per command target (``audio_over_mqtt``, the default), so
the brokers' CPU includes sending each box its copy; with ``--download=server``, and always
over TCP, each box asks the server (one request each, on a connection of its own), and the
server's CPU includes serving every box's download.

One process may hold no more than 20,000 open files here (the hard limit cannot be raised), so
a fleet is spread: over MQTT across one Mosquitto per ``PER_BROKER`` boxes (25,000 boxes: two
brokers; 100,000: six), each with simulator processes of at most ``PER_PROCESS`` boxes:

- ``bare mqtt``: one QoS 1 message published to every broker's bare subscribers of one topic;
  times are from the first publish to its arrival at the subscribers (the brokers' fan-out,
  the floor).
- ``hub tcp|mqtt``: ``SpeakerHub`` alone (one per broker, in this process) sends one signed
  ``play_url`` per box (a command template signed per box key); times are from the first
  send to the acks at the hubs.
- ``server tcp|mqtt``: the whole server (API, intake, planner, dispatcher, store, channel,
  audio rendered by espeak-ng inside the time) from the API's answer to one CAP alert for
  the county; over several brokers it runs one ``loudspeaker`` channel instance per broker,
  each with its share of the registry's boxes, and the alert selects the boxes of every
  instance. ``started``/``accepted`` are the boxes' acks of the play command as the channels
  receive them (a box reports ``started`` when it starts the stored attention clip the command
  names, on arrival, while the server still renders the warning: ``--attention on``, the
  default), ``confirmed`` when the store has every delivery confirmed.

Over TCP the server (and the hub) holds one socket per box, so a size over the open-file limit
cannot run in one process: the bench then measures the ``--tcp-curve`` sizes and prints the
extrapolation of their CPU per delivery, RSS per box and times to the size asked for, marked as
such (:mod:`bench.fanout_report`).

``wire`` columns are when the command reached the boxes (the simulators' clocks, same
machine); ``sim CPU`` is the simulators' CPU time and ``broker CPU`` the brokers', each also as
a share of the machine's cores over the measured window. The simulators share the machine's
cores with what is measured, so they run on uvloop when it is installed (``--sim-loop``,
``sim loop`` in the table; the bare subscribers too, so every kind has the same boxes): about a
third less CPU per box than the standard event loop. CPU per delivery is the measured
process's CPU from just before the POST (server) or the first send (hub) to the last
confirmation, divided by the boxes; with several sizes the bench also splits each kind's CPU,
by least squares, into a part per alert (the API, the plan, the render, what the window costs
whatever the fleet) and a part per delivery, the marginal cost of one more box. Each row
carries the load average when it ended.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_fanout.py [--quick] [--boxes
10000,25000,50000,100000] [--kinds server-mqtt] [--sim-loop asyncio] [--repeat 3]``
(``BENCH_FANOUT_QUICK=1`` is ``--quick``: 10,000 boxes only). On a shared machine one run's
wall times can be off by half; ``--repeat N`` runs every kind N times, in turn, and prints the
median, lowest and highest of all started, all accepted, accepted ÷ bare (each run against
its own bare fan-out) and CPU per delivery. ``BENCH_FANOUT_PROFILE=PATH``
writes a cProfile of the server's event loop over the measured window of each ``server-*``
kind to ``PATH-<transport>[-own]`` (read it with ``pstats``; the profiler slows the loop, so
its run's figures are not the bench's).
``BENCH_FANOUT_SPY=PATH`` samples every thread of the server with py-spy (installed by the test
extra) over the same window, into ``PATH-<transport>[-own]`` in py-spy's raw format.
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
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.bench_speaker import SECRET, add_sim_loop_option, play
from bench.fanout_fleet import (
    BARE_TOPIC,
    Machine,
    broker_shares,
    lean_fleet,
    mosquittos,
)
from bench.fanout_report import (
    extrapolate,
    format_row,
    print_cpu_split,
    print_spread,
    print_table,
)
from drivers.mqtt import MqttClient
from drivers.speaker import AckStage, BoxAck, HubEvent, SpeakerHub, SpeakerHubConfig
from drivers.speaker.codec import CommandTemplate, box_target
from drivers.speaker.hub import BoxRegistration, MqttBrokerConfig, TcpListenConfig
from drivers.speaker.simulator import box_key

TCP_CURVE = "5000,10000,19000"
PLAY_S = 0.0
"""How long the lean boxes play a command before they report it ``finished`` (``--play-s``).
A real box reports it when the warning has played, tens of seconds after it started; with no
time the box's ``started`` and ``finished`` travel back together, and the server records
them as one change of the delivery."""
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


def spread(times: list[float], start: float, expected: int) -> dict[str, float | None]:
    """First, 50 %, 99 % and all of ``times`` after ``start`` (None where not reached)."""

    def at(share: float) -> float | None:
        index = max(1, int(expected * share + 0.999999)) - 1
        return times[index] - start if index < len(times) else None

    return {"first": at(0.0), "p50": at(0.5), "p99": at(0.99), "all": at(1.0)}


class AckTimes:
    """When each box's first ack of each stage of the play command arrived (wall clock), from
    hub events; ``accepted`` is the first ack whatever its stage (the server asks boxes for
    ``started`` and ``finished`` only), ``started`` the box's first sound (the attention clip
    the command names, when there is one).

    It runs on the server's event loop, so its CPU and memory count in the server's: per ack
    it appends the time and the event to a list (the events are the hub's own objects) and
    counts ``finished`` acks; which is each box's first of each stage is worked out after the
    measured window (:meth:`times`). The boxes that reported ``finished`` are kept as a set (a
    box may repeat its acks): the window ends when every box has."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self._acks: list[tuple[float, BoxAck]] = []
        self._finished: set[str] = set()
        self.done = asyncio.Event()

    def on_event(self, event: HubEvent) -> None:
        if type(event) is not BoxAck:
            return
        self._acks.append((time.time(), event))
        if event.stage is AckStage.FINISHED and event.cmd_id.startswith("play-"):
            self._finished.add(event.box_id)
            if len(self._finished) == self.expected:
                self.done.set()

    def times(self) -> dict[AckStage, list[float]]:
        """Each stage's first-ack times, one a box, earliest first."""
        first: dict[AckStage, dict[str, float]] = {stage: {} for stage in AckStage}
        for at, ack in self._acks:
            box, stage = ack.box_id, ack.stage
            if ack.cmd_id.startswith("play-"):
                first[AckStage.ACCEPTED].setdefault(box, at)
                if stage is AckStage.FINISHED:
                    first[AckStage.FINISHED].setdefault(box, at)
                    continue
            if stage is AckStage.STARTED:
                first[AckStage.STARTED].setdefault(box, at)
        return {stage: sorted(times.values()) for stage, times in first.items()}

    def result(self, start: float, machine: dict[str, Any]) -> dict[str, Any]:
        times = self.times()
        started = spread(times[AckStage.STARTED], start, self.expected)
        accepted = spread(times[AckStage.ACCEPTED], start, self.expected)
        wire = spread(machine.pop("arrivals"), start, self.expected)
        fetched = machine.pop("downloads", [])
        result = {"started": started, "accepted": accepted["all"], "wire": wire} | machine
        if fetched or machine.get("download_failures"):
            result["downloaded"] = spread(fetched, start, self.expected)
        else:
            for key in ("download_failures", "download_mb"):
                result.pop(key, None)
        return result


async def bare(boxes: int, work: Path, timeout_s: float, sim_loop: str) -> dict[str, Any]:
    shares = broker_shares("mqtt", boxes)
    with mosquittos(len(shares), work) as brokers:
        links = [f"mqtt://{broker.host}:{broker.port}" for broker in brokers]
        async with lean_fleet(
            links, shares, bare=True, connect_timeout_s=timeout_s, loop=sim_loop
        ) as fleet:
            publishers = [
                MqttClient(broker.host, broker.port, "bench-bare-publisher") for broker in brokers
            ]
            await asyncio.gather(*(publisher.connect() for publisher in publishers))
            machine = Machine(fleet, brokers)
            await machine.begin()
            start = time.time()
            await asyncio.gather(*(p.publish(BARE_TOPIC, b"x" * 400, qos=1) for p in publishers))
            async with asyncio.timeout(timeout_s):
                while True:  # the subscribers are other processes: ask until all have it
                    arrivals = (await fleet.ask()).arrivals
                    if len(arrivals) >= boxes:
                        break
                    await asyncio.sleep(0.05)
            figures = await machine.end(arrivals[-1])
            await asyncio.gather(*(publisher.disconnect() for publisher in publishers))
    wire = spread(figures.pop("arrivals"), start, boxes)
    for key in ("downloads", "download_failures", "download_mb"):
        figures.pop(key)
    return {"wire": wire, "started": wire} | figures


async def hub_alone(
    transport: str, boxes: int, work: Path, timeout_s: float, play_s: float, sim_loop: str
) -> dict[str, Any]:
    """One hub per broker (one in all for TCP), in this process, each sending a command to
    every box of its share; the sends take the hubs in turn, 500 boxes between yields."""
    shares = broker_shares(transport, boxes)
    with mosquittos(len(shares) if transport == "mqtt" else 0, work) as brokers:
        regs = [
            [
                BoxRegistration(f"sim-{n:05d}", box_key(SECRET, f"sim-{n:05d}"), transport)  # type: ignore[arg-type]
                for n in share
            ]
            for share in shares
        ]
        tcp = TcpListenConfig("127.0.0.1", 0) if transport == "tcp" else None
        mqtts: list[MqttBrokerConfig | None] = [
            MqttBrokerConfig(b.host, b.port, client_id="bench-hub") for b in brokers
        ]
        configs = [
            SpeakerHubConfig(tcp=tcp, mqtt=mqtt, heartbeat_timeout_s=3600)
            for mqtt in (mqtts or [None])
        ]
        hubs = [SpeakerHub(config, share) for config, share in zip(configs, regs, strict=True)]
        acks = AckTimes(boxes)
        online = asyncio.Event()
        async with AsyncExitStack() as stack:
            for hub in hubs:
                await stack.enter_async_context(hub)

            async def consume(hub: SpeakerHub) -> None:
                async for event in hub.events():
                    acks.on_event(event)
                    if all(h.online_count == len(r) for h, r in zip(hubs, regs, strict=True)):
                        online.set()

            consumers = [asyncio.get_running_loop().create_task(consume(hub)) for hub in hubs]
            links = [f"mqtt://{b.host}:{b.port}" for b in brokers]
            links = links or [f"tcp://127.0.0.1:{hubs[0].tcp_port}"]
            async with lean_fleet(
                links, shares, connect_timeout_s=timeout_s, play_s=play_s, loop=sim_loop
            ) as fleet:
                async with asyncio.timeout(timeout_s):
                    await online.wait()
                machine = Machine(fleet, brokers)
                await machine.begin()
                template = CommandTemplate(play("play-bench", "http://127.0.0.1:9/a.wav"))
                cpu_before, start = cpu_s(), time.time()
                order = [
                    (hub, share_regs[n])
                    for n in range(max(map(len, regs)))
                    for hub, share_regs in zip(hubs, regs, strict=True)
                    if n < len(share_regs)
                ]
                sends = []
                for first in range(0, boxes, 500):
                    for hub, reg in order[first : first + 500]:
                        data = template.sign("play-bench", box_target(reg.box_id), reg.key)
                        sends.append(asyncio.ensure_future(hub.send_signed(reg.box_id, data)))
                    await asyncio.sleep(0)
                await asyncio.gather(*sends)
                async with asyncio.timeout(timeout_s):
                    await acks.done.wait()
                cpu = cpu_s() - cpu_before
                figures = await machine.end(time.time())
            for consumer in consumers:
                consumer.cancel()
    return acks.result(start, figures) | {"cpu_s": cpu, "rss_mb": peak_rss_mb()}


def holds_every_socket(kind: str) -> bool:
    """Whether the measured process holds a socket per box (TCP), so one process's open files
    bound the size; over MQTT the brokers hold them, and the bench spreads the boxes."""
    return kind.split("-")[1] == "tcp" if "-" in kind else False


def run_one(kind: str, size: int, args: argparse.Namespace) -> dict[str, Any] | str:
    """One kind at one size in a fresh process; its figures, or why it failed."""
    command = [sys.executable, __file__, f"--one={kind}:{size}"]
    command += [f"--timeout-s={args.timeout_s}", f"--attention={args.attention}"]
    command += [f"--play-s={args.play_s}", f"--sim-loop={args.sim_loop}"]
    command += [f"--download={args.download}"] if args.download else []
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    result: dict[str, Any] | str = (
        json.loads(lines[-1][7:]) if lines else f"failed: {done.stderr.strip()[-300:]}"
    )
    print(f"{kind} {size}: {format_row(result)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", default="10000,100000", help="comma-separated fleet sizes")
    parser.add_argument("--quick", action="store_true", help="10,000 boxes only")
    parser.add_argument(
        "--kinds",
        default="bare,hub-tcp,hub-mqtt,server-tcp,server-mqtt",
        help="also server-tcp-own, server-mqtt-own: boxes without area keys (a command each)",
    )
    parser.add_argument(
        "--tcp-curve",
        default=TCP_CURVE,
        help="TCP sizes measured to extrapolate one over the open-file limit ('' for none)",
    )
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every kind this many times, in turn, and print the spread of the main figures",
    )
    parser.add_argument(
        "--attention",
        choices=("on", "off"),
        default="on",
        help="the play command names the attention clip the boxes store (played on arrival)",
    )
    parser.add_argument(
        "--play-s",
        type=float,
        default=PLAY_S,
        help="how long the lean boxes play a command before they report it finished",
    )
    parser.add_argument(
        "--download",
        nargs="?",
        const="broker",
        choices=("broker", "server"),
        help="the lean boxes of the server kinds fetch and verify the sealed audio as real"
        " boxes do, and report a command finished only after that: over MQTT from the audio"
        " the server retains on the broker (the default), or with '=server' each from the"
        " server over HTTP (the channel's audio_over_mqtt off); over TCP always from the server",
    )
    add_sim_loop_option(parser)  # for every kind alike
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    if args.one:
        kind, size = args.one.rsplit(":", 1)
        attention = args.attention == "on"
        measuring = measure_one(
            kind, int(size), args.timeout_s, attention, args.play_s, args.download, args.sim_loop
        )
        result = asyncio.run(measuring)
        print("RESULT " + json.dumps(result))
        return
    sizes = [int(s) for s in args.boxes.split(",")]
    if args.quick or os.environ.get("BENCH_FANOUT_QUICK"):
        sizes = [10_000]
    kinds = args.kinds.split(",")
    limit = raise_file_limit(max(sizes) + 20_000)
    runs: list[dict[tuple[str, int], dict[str, Any] | str]] = []
    too_big: list[tuple[str, int]] = []
    for _ in range(args.repeat):
        results: dict[tuple[str, int], dict[str, Any] | str] = {}
        runs.append(results)
        for size in sizes:
            for kind in kinds:
                if holds_every_socket(kind) and size + 1000 > limit:
                    results[kind, size] = (
                        f"not run: one process holds a socket per box, and no process here may "
                        f"open more than {limit:,} files (the hard limit, which cannot be raised)"
                    )
                    if len(runs) == 1:
                        too_big.append((kind, size))
                        print(f"{kind} {size}: {results[kind, size]}", flush=True)
                    continue
                results[kind, size] = run_one(kind, size, args)
    curve = [int(s) for s in args.tcp_curve.split(",") if s] if too_big else []
    for kind in dict.fromkeys(kind for kind, _ in too_big):
        for size in curve:
            if (kind, size) not in results:
                results[kind, size] = run_one(kind, size, args)
    ran = {size for (_, size), result in results.items() if isinstance(result, dict)}
    print_table(sorted(ran), kinds, results)
    print_cpu_split(sorted(ran), kinds, results)
    if args.play_s:
        print(f"(the boxes play each command {args.play_s:g} s: 'confirmed' includes that time)")
    for kind, size in too_big:
        measured = {n: r for (k, n), r in results.items() if k == kind and isinstance(r, dict)}
        print(f"\n{kind} {size:,}: {results[kind, size]}")
        print(extrapolate(kind, measured, size))
    if len(runs) > 1:
        print("\n(the table above is the last run's)")
        print_spread(sorted(ran), kinds, runs)


async def measure_one(
    kind: str,
    boxes: int,
    timeout_s: float,
    attention: bool = True,
    play_s: float = PLAY_S,
    download: str | None = None,
    sim_loop: str = "auto",
) -> dict[str, Any]:
    raise_file_limit(boxes + 20_000)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as work:
        if kind == "bare":
            result = await bare(boxes, Path(work), timeout_s, sim_loop)
        elif kind.startswith("hub-"):
            transport = kind.split("-")[1]
            result = await hub_alone(transport, boxes, Path(work), timeout_s, play_s, sim_loop)
        else:
            from bench.fanout_server import whole_server

            own = kind.endswith("-own")
            transport = kind.split("-")[1]
            result = await whole_server(
                transport, boxes, Path(work), timeout_s, own, attention, play_s, download, sim_loop
            )
    return result | {"boxes": boxes}


if __name__ == "__main__":
    main()
