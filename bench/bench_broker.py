"""The brokers' own QoS 1 fan-out, with no broadcaster server: N persistent sessions, one sender.

N bare subscribers (MQTT 3.1.1, ``clean_session=0``, one QoS 1 subscription each) are spread
over several processes, each process on a loopback address of its own and over the broker's
nodes in turn. Once every subscription is granted, one process publishes at QoS 1 through
``--publishers`` connections, either one message per subscriber to its own topic
(``--mode topics``, what the loudspeaker channel sends today) or one message to the topic
every subscriber holds (``--mode group``). It prints how long the sessions took to set up,
when the broker had acknowledged every publish, when every subscriber had received (and
acknowledged) its message, and the CPU time each broker process used for each phase.

Brokers: ``mosquitto`` (one Mosquitto) and ``nats`` (a three-node NATS cluster with MQTT, the
binary from ``--nats-bin``, extra ``mqtt {}`` settings from ``--mqtt key=value``).
Run: ``PYTHONPATH=. .venv/bin/python bench/bench_broker.py --broker nats --subs 1000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import TypeVar

from drivers.mqtt.decoder import MqttDecoder
from drivers.mqtt.packets import Connack, Connect, Puback, Publish, Suback, Subscribe
from drivers.mqtt.testing import MosquittoBroker
from drivers.mqtt.testing_nats import NatsMqttCluster, default_server

GROUP_TOPIC = "bench/all"
ACK_PREFIX = "bench/acks"
PAYLOAD = b"x" * 200
RETRY_S = 1.0
P = TypeVar("P", bound=asyncio.Protocol)


def _factory(protocol: P) -> Callable[[], P]:
    return lambda: protocol


def own_topic(index: int) -> str:
    return f"bench/s{index:06d}"


def ack_topic(client_id: str) -> str:
    return f"{ACK_PREFIX}/{client_id}"


class Subscriber(asyncio.Protocol):
    """One persistent session: CONNECT, SUBSCRIBE at ``qos``, PUBACK whatever arrives."""

    def __init__(
        self, client_id: str, topic: str, ready: asyncio.Future[None], qos: int = 1
    ) -> None:
        self.client_id = client_id
        self._topic = topic
        self._qos = qos
        self._ready = ready
        self._decoder = MqttDecoder()
        self._transport: asyncio.Transport | None = None
        self.received_at: float | None = None
        self.pubacks = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(Connect(self.client_id, clean_session=False).encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._ready.done():
            self._ready.set_exception(ConnectionError(f"{self.client_id}: lost before SUBACK"))

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        for packet in self._decoder.feed(data):
            if isinstance(packet, Connack):
                self._transport.write(Subscribe(1, ((self._topic, self._qos),)).encode())
            elif isinstance(packet, Suback) and not self._ready.done():
                if packet.return_codes == (self._qos,):
                    self._ready.set_result(None)
                else:
                    self._ready.set_exception(ConnectionError(f"SUBACK {packet.return_codes}"))
            elif isinstance(packet, Publish):
                if packet.qos:
                    self._transport.write(Puback(packet.packet_id).encode())
                if self.received_at is None:
                    self.received_at = time.monotonic()
            elif isinstance(packet, Puback):
                self.pubacks += 1

    def send_acks(self, count: int) -> None:
        """Publish ``count`` QoS 1 messages to this session's acknowledgement topic."""
        assert self._transport is not None
        topic = ack_topic(self.client_id)
        self._transport.write(
            b"".join(Publish(topic, b"ack", qos=1, packet_id=n + 1).encode() for n in range(count))
        )


async def subscribe_all(
    indices: range, ports: list[int], options: dict[str, str], counter: Synchronized[int]
) -> tuple[list[Subscriber], int]:
    """Set up every session (a refused or dropped one tries again); returns them and retries."""
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(int(options["parallel"]))
    source, mode = options["source"], options["mode"]
    retries = 0

    async def one(index: int) -> Subscriber:
        nonlocal retries
        topic = GROUP_TOPIC if mode == "group" else own_topic(index)
        attempt = 0
        while True:
            port = ports[(index + attempt) % len(ports)]
            async with limit:
                ready: asyncio.Future[None] = loop.create_future()
                protocol = Subscriber(f"s{index:06d}", topic, ready, int(options["qos"]))
                try:
                    await loop.create_connection(
                        _factory(protocol), "127.0.0.1", port, local_addr=(source, 0)
                    )
                    await asyncio.wait_for(ready, 60)
                    with counter.get_lock():
                        counter.value += 1
                    return protocol
                except (OSError, TimeoutError):
                    retries += 1
                    attempt += 1
            await asyncio.sleep(RETRY_S)

    subscribers = await asyncio.gather(*(one(i) for i in indices))
    return list(subscribers), retries


async def worker_main(
    conn: Connection, subscribing: Awaitable[tuple[list[Subscriber], int]]
) -> None:
    subscribers, retries = await subscribing
    conn.send(("ready", retries))
    deadline = float(conn.recv())
    while time.monotonic() < deadline:
        if all(s.received_at is not None for s in subscribers):
            break
        await asyncio.sleep(0.02)
    conn.send(("received", [s.received_at for s in subscribers]))
    # Waiting in a thread: the loop goes on reading the broker's PUBACKs meanwhile.
    order = await asyncio.to_thread(conn.recv)
    if order != "done":
        for subscriber in subscribers:
            subscriber.send_acks(int(order))
        await asyncio.to_thread(conn.recv)
        conn.send(sum(s.pubacks for s in subscribers))


def worker(
    conn: Connection,
    indices: range,
    ports: list[int],
    options: dict[str, str],
    counter: Synchronized[int],
) -> None:
    asyncio.run(worker_main(conn, subscribe_all(indices, ports, options, counter)))


class Publisher(asyncio.Protocol):
    """One clean session that sends QoS 1 PUBLISHes and counts the PUBACKs."""

    def __init__(self, connected: asyncio.Future[None], done: asyncio.Future[float]) -> None:
        self._decoder = MqttDecoder()
        self._connected = connected
        self._done = done
        self.expected = 0
        self.acked = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(Connect(f"pub-{id(self)}", clean_session=True).encode())

    def data_received(self, data: bytes) -> None:
        for packet in self._decoder.feed(data):
            if isinstance(packet, Connack) and not self._connected.done():
                self._connected.set_result(None)
            elif isinstance(packet, Puback):
                self.acked += 1
                if self.acked == self.expected and not self._done.done():
                    self._done.set_result(time.monotonic())


async def publish(ports: list[int], topics: list[str], connections: int) -> tuple[float, float]:
    """Publish one message per topic over ``connections`` sessions: (start, all acknowledged)."""
    loop = asyncio.get_running_loop()
    publishers: list[Publisher] = []
    dones: list[asyncio.Future[float]] = []
    for n in range(connections):
        connected: asyncio.Future[None] = loop.create_future()
        done: asyncio.Future[float] = loop.create_future()
        publisher = Publisher(connected, done)
        await loop.create_connection(_factory(publisher), "127.0.0.1", ports[n % len(ports)])
        await connected
        publishers.append(publisher)
        dones.append(done)
    shares = [topics[n :: len(publishers)] for n in range(len(publishers))]
    started = time.monotonic()
    for publisher, share, done in zip(publishers, shares, dones, strict=True):
        publisher.expected = len(share)
        assert publisher.transport is not None
        for n, topic in enumerate(share):
            packet = Publish(topic, PAYLOAD, qos=1, packet_id=n % 0xFFFF + 1)
            publisher.transport.write(packet.encode())
        if not share:
            done.set_result(started)
    acked = max(await asyncio.gather(*dones))
    for publisher in publishers:
        assert publisher.transport is not None
        publisher.transport.close()
    return started, acked


def cpu_s(pids: list[int]) -> list[float]:
    ticks = os.sysconf("SC_CLK_TCK")
    times = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        times.append((int(fields[11]) + int(fields[12])) / ticks)
    return times


def run(args: argparse.Namespace, ports: list[int], pids: list[int]) -> None:
    per = -(-args.subs // args.processes)
    ctx = multiprocessing.get_context("fork")
    conns, procs = [], []
    counter: Synchronized[int] = ctx.Value("i", 0)
    cpu0, t0 = cpu_s(pids), time.monotonic()
    for p in range(args.processes):
        indices = range(p * per, min(args.subs, (p + 1) * per))
        parent, child = ctx.Pipe()
        options = {"source": f"127.0.{10 + p // 250}.{1 + p % 250}", "mode": args.mode}
        options["qos"] = str(args.sub_qos)
        options["parallel"] = str(args.parallel)
        proc = ctx.Process(target=worker, args=(child, indices, ports, options, counter))
        proc.start()
        conns.append(parent)
        procs.append(proc)
    while not all(conn.poll() for conn in conns):
        time.sleep(1.0)
        if time.monotonic() - t0 > args.setup_timeout_s:
            for proc in procs:
                proc.kill()
            sys.exit(
                f"only {counter.value} of {args.subs} sessions set up in {args.setup_timeout_s} s"
            )
        if int(time.monotonic() - t0) % 10 == 0:
            print(f"  {counter.value} sessions after {time.monotonic() - t0:.0f} s", flush=True)
    retries = sum(conn.recv()[1] for conn in conns)
    setup = time.monotonic() - t0
    cpu1 = cpu_s(pids)
    topics = [GROUP_TOPIC] if args.mode == "group" else [own_topic(i) for i in range(args.subs)]
    started, acked = asyncio.run(publish(ports, topics, args.publishers))
    for conn in conns:
        conn.send(str(started + args.timeout_s))
    arrivals: list[float | None] = []
    for conn in conns:
        arrivals += conn.recv()[1]
    cpu2 = cpu_s(pids)
    acks_line = ""
    if args.acks:
        acks_line = collect_acks(args, ports, pids, conns)
    else:
        for conn in conns:
            conn.send("done")
    for proc in procs:
        proc.join()
    got = sorted(a - started for a in arrivals if a is not None)
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"{args.broker} {args.subs} subs mode={args.mode} sub_qos={args.sub_qos} "
        f"publishers={args.publishers} "
        f"mqtt={args.mqtt} js={args.js} load={load}\n"
        f"  sessions set up in {setup:.1f} s ({retries} retries), broker CPU "
        f"{sum(cpu1) - sum(cpu0):.1f} s ({_per_ms(sum(cpu1) - sum(cpu0), args.subs)} per session)\n"
        f"  publishes acknowledged after {acked - started:.2f} s; "
        f"received {len(got)}/{args.subs}, last after "
        f"{got[-1] if got else float('nan'):.2f} s, "
        f"median {got[len(got) // 2] if got else float('nan'):.2f} s; "
        f"broker CPU {sum(cpu2) - sum(cpu1):.1f} s "
        f"({_per_ms(sum(cpu2) - sum(cpu1), args.subs)} per delivery), per process "
        + "/".join(f"{b - a:.1f}" for a, b in zip(cpu1, cpu2, strict=True))
        + acks_line
        + f"\n  broker RSS per node {'/'.join(f'{rss_mb(pid):.0f}' for pid in pids)} MB"
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Collector(asyncio.Protocol):
    """The hub's side of the acknowledgements: one persistent session, a QoS 1 wildcard
    subscription to every subscriber's acknowledgement topic, counting what arrives."""

    def __init__(self, ready: asyncio.Future[None], expected: int) -> None:
        self._decoder = MqttDecoder()
        self._ready = ready
        self._expected = expected
        self._transport: asyncio.Transport | None = None
        self.count = 0
        self.last_at = 0.0
        self.done: asyncio.Future[None] = ready.get_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(Connect("bench-collector", clean_session=False).encode())

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        for packet in self._decoder.feed(data):
            if isinstance(packet, Connack):
                self._transport.write(Subscribe(1, ((f"{ACK_PREFIX}/+", 1),)).encode())
            elif isinstance(packet, Suback) and not self._ready.done():
                self._ready.set_result(None)
            elif isinstance(packet, Publish):
                if packet.qos:
                    self._transport.write(Puback(packet.packet_id).encode())
                self.count += 1
                self.last_at = time.monotonic()
                if self.count >= self._expected and not self.done.done():
                    self.done.set_result(None)


def collector(conn: Connection, port: int, expected: int, timeout_s: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        protocol = Collector(ready, expected)
        await loop.create_connection(_factory(protocol), "127.0.0.1", port)
        await ready
        conn.send("ready")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(protocol.done, timeout_s)
        conn.send((protocol.count, protocol.last_at))

    asyncio.run(main())


def collect_acks(
    args: argparse.Namespace, ports: list[int], pids: list[int], conns: list[Connection]
) -> str:
    """Every subscriber publishes ``args.acks`` QoS 1 messages to its acknowledgement topic;
    one collector receives them all: the line saying how long that took and what it cost."""
    ctx = multiprocessing.get_context("fork")
    expected = args.subs * args.acks
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=collector, args=(child, ports[0], expected, args.timeout_s))
    proc.start()
    parent.recv()
    cpu0, started = cpu_s(pids), time.monotonic()
    for conn in conns:
        conn.send(str(args.acks))
    count, last_at = parent.recv()
    cpu1 = cpu_s(pids)
    proc.join()
    for conn in conns:
        conn.send("done")
    taken = sum(conn.recv() for conn in conns)
    return (
        f"\n  acks: the broker acknowledged {taken}/{expected}; "
        f"{count} received by one QoS 1 subscriber, last after "
        f"{last_at - started:.2f} s; broker CPU {sum(cpu1) - sum(cpu0):.1f} s "
        f"({_per_ms(sum(cpu1) - sum(cpu0), expected)} per ack)"
    )


def raise_file_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _per_ms(seconds: float, count: int) -> str:
    return f"{1000 * seconds / max(count, 1):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("mosquitto", "nats"), default="nats")
    parser.add_argument("--nats-bin", default=default_server())
    parser.add_argument("--mqtt", action="append", default=[], help="key=value in mqtt {}")
    parser.add_argument(
        "--js", action="append", default=[], help="key=value in jetstream {} (default: the limits)"
    )
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=50, help="connects at once per process")
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--mode", choices=("topics", "group"), default="topics")
    parser.add_argument(
        "--sub-qos", type=int, choices=(0, 1), default=1, help="the subscriptions' QoS"
    )
    parser.add_argument(
        "--acks", type=int, default=0, help="QoS 1 messages back per subscriber, to one collector"
    )
    parser.add_argument("--timeout-s", type=float, default=120.0, help="for the fan-out")
    parser.add_argument("--setup-timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--work-dir", help="for the brokers' files (default: the system's; /dev/shm deletes fast)"
    )
    args = parser.parse_args()
    if raise_file_limit() < args.subs // args.processes + 1000:
        sys.exit("too few subscriber processes for the open-file limit")
    with tempfile.TemporaryDirectory(prefix="bench-broker-", dir=args.work_dir) as work:
        if args.broker == "mosquitto":
            with MosquittoBroker(Path(work)) as broker:
                assert broker.pid is not None
                run(args, [broker.port], [broker.pid])
        else:
            cluster = NatsMqttCluster(
                Path(work),
                ack_wait_s=5,
                binary=args.nats_bin,
                mqtt_settings=dict(item.split("=", 1) for item in args.mqtt),
                jetstream_settings=dict(item.split("=", 1) for item in args.js)
                if args.js
                else None,
            )
            with cluster:
                run(args, [port for _, port in cluster.addresses], cluster.pids())
                for node in cluster.nodes:
                    faults = [
                        line
                        for line in node.log_text().splitlines()
                        if "[WRN]" in line or "[ERR]" in line
                    ]
                    last = faults[-1] if faults else ""
                    print(f"  {node.name}: {len(faults)} warnings and errors logged {last}")


if __name__ == "__main__":
    main()
