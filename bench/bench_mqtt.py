"""MQTT client cost: ``drivers.mqtt.MqttClient`` against paho-mqtt, gmqtt and aiomqtt.

The server's own case first: one session (the loudspeaker hub's) publishes M QoS 1 commands
(default 10,000) to Mosquitto, all at once, and waits until every one is acknowledged (PUBACK).
Each implementation runs in a child process of its own; printed: seconds from the first publish
to the last PUBACK, and the CPU seconds of that process. paho-mqtt is used directly (its network
thread, ``on_publish`` counting PUBACKs), once with its default of 20 messages in flight and
once unlimited like the others; gmqtt offers no per-message acknowledgement, so its run waits
for its store of unacknowledged messages to drain. gmqtt ships a top-level ``tests`` package that
would shadow this project's, so it is kept out of ``.venv``: the first run installs it with pip
into ``.bench-gmqtt/`` (ignored by git) and only the gmqtt child process has it on its path.

Then many sessions, for drivers.mqtt and aiomqtt: a child process opens N sessions (one MQTT
connection each, like N loudspeaker boxes), each subscribed at QoS 1 to its own command topic.
This process then publishes one QoS 1 command per session and collects, on a wildcard
subscription, the three QoS 1 answers (accepted, started, finished) each session publishes one
after the other.

Printed per implementation: sessions connected per second; time from the first command to the
last of the 3*N answers; CPU seconds the sessions' process spent connecting and answering
(``resource.getrusage`` in that process). Then the ratio own/aiomqtt for each figure.
The publisher and the collector are ``MqttClient`` in both runs, so only the sessions differ.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_mqtt.py [--messages 10000] [--sessions 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho

from drivers.mqtt import MqttClient
from drivers.mqtt.client import MessageHandler
from drivers.mqtt.testing import MosquittoBroker

CONNECT_CONCURRENCY = 100
ONE_SESSION = ("own", "paho", "paho-20", "gmqtt", "aiomqtt")
GMQTT_DIR = Path(__file__).resolve().parents[1] / ".bench-gmqtt"
GMQTT = "gmqtt>=0.6,<0.9"


def gmqtt_path() -> str | None:
    """A folder holding gmqtt (installed there on first use), or None if pip cannot get it."""
    if not (GMQTT_DIR / "gmqtt").is_dir():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(GMQTT_DIR), GMQTT],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            return None
    return str(GMQTT_DIR)


STAGES = (b"accepted", b"started", b"finished")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def own_sessions(port: int, count: int, done: asyncio.Event) -> list[MqttClient]:
    """``count`` MqttClient sessions; ``done`` is set once all of them answered."""
    answered = 0
    keep: set[asyncio.Task[None]] = set()

    async def answer(client: MqttClient, box: int) -> None:
        nonlocal answered
        for stage in STAGES:
            await client.publish(f"bench/box/{box}/ack", stage, qos=1)
        answered += 1
        if answered == count:
            done.set()

    def handler(box: int) -> MessageHandler:
        def on_message(topic: str, payload: bytes, retain: bool) -> None:
            task = asyncio.ensure_future(answer(clients[box], box))
            keep.add(task)
            task.add_done_callback(keep.discard)

        return on_message

    clients = [
        MqttClient("127.0.0.1", port, f"own-{box}", on_message=handler(box)) for box in range(count)
    ]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def start(box: int) -> None:
        async with gate:
            await clients[box].connect()
            await clients[box].subscribe([(f"bench/box/{box}/cmd", 1)])

    await asyncio.gather(*(start(box) for box in range(count)))
    return clients


async def aiomqtt_sessions(
    port: int, count: int, done: asyncio.Event
) -> tuple[list[aiomqtt.Client], list[asyncio.Task[None]]]:
    answered = 0

    async def serve(client: aiomqtt.Client, box: int) -> None:
        nonlocal answered
        async for _message in client.messages:
            for stage in STAGES:
                await client.publish(f"bench/box/{box}/ack", stage, qos=1)
            answered += 1
            if answered == count:
                done.set()

    clients = [
        aiomqtt.Client(
            "127.0.0.1", port, identifier=f"aio-{box}", protocol=aiomqtt.ProtocolVersion.V311
        )
        for box in range(count)
    ]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def start(box: int) -> None:
        async with gate:
            await clients[box].__aenter__()
            await clients[box].subscribe(f"bench/box/{box}/cmd", qos=1)

    await asyncio.gather(*(start(box) for box in range(count)))
    tasks = [asyncio.create_task(serve(clients[box], box)) for box in range(count)]
    return clients, tasks


async def publish_own(port: int, count: int) -> None:
    client = MqttClient("127.0.0.1", port, "one-own")
    await client.connect()
    await asyncio.gather(
        *(client.publish(f"bench/box/{n}/cmd", b"play", qos=1) for n in range(count))
    )
    await client.disconnect()


async def publish_aiomqtt(port: int, count: int) -> None:
    # Past 10 pending calls aiomqtt logs a warning per call; silenced so as to time MQTT only.
    quiet = logging.getLogger("bench.aiomqtt")
    quiet.setLevel(logging.ERROR)
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        logger=quiet,
        identifier="one-aiomqtt",
        protocol=aiomqtt.ProtocolVersion.V311,
        max_inflight_messages=0,
    ) as client:
        await asyncio.gather(
            *(
                client.publish(f"bench/box/{n}/cmd", b"play", qos=1, timeout=300)
                for n in range(count)
            )
        )


async def publish_gmqtt(port: int, count: int) -> None:
    import gmqtt  # only on the path of this child: see the module docstring

    client = gmqtt.Client("one-gmqtt")
    await client.connect("127.0.0.1", port, version=gmqtt.constants.MQTTv311)
    for n in range(count):
        client.publish(f"bench/box/{n}/cmd", b"play", qos=1)
    await client._persistent_storage.wait_empty()  # no public per-message acknowledgement
    await client.disconnect()


def publish_paho(port: int, count: int, in_flight: int) -> None:
    acked = 0
    all_acked = threading.Event()

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        if acked == count:
            all_acked.set()

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id="one-paho", protocol=paho.MQTTv311
    )
    client.max_inflight_messages_set(in_flight)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    for n in range(count):
        client.publish(f"bench/box/{n}/cmd", b"play", qos=1)
    all_acked.wait(300)
    client.disconnect()
    client.loop_stop()


def run_one_session(kind: str, port: int, count: int) -> None:
    """Child process: one session publishes ``count`` QoS 1 messages; prints time and CPU."""
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    if kind == "paho-20":
        publish_paho(port, count, 20)
    elif kind == "paho":
        publish_paho(port, count, 0)
    else:
        publishers = {"own": publish_own, "aiomqtt": publish_aiomqtt, "gmqtt": publish_gmqtt}
        asyncio.run(publishers[kind](port, count))
    figures = {"seconds": time.perf_counter() - wall0, "cpu": cpu_seconds() - cpu0}
    print(json.dumps(figures), flush=True)


async def one_session(port: int, count: int) -> None:
    print(f"one session publishing {count} QoS 1 messages, one Mosquitto on loopback")
    print(f"{'':12}{'s to last PUBACK':>18}{'CPU s':>8}{'msg/s':>9}")
    for kind in ONE_SESSION:
        env = dict(os.environ)
        if kind == "gmqtt":
            extra = gmqtt_path()
            if extra is None:
                print(f"{kind:12}  skipped: pip could not install {GMQTT}")
                continue
            env["PYTHONPATH"] = os.pathsep.join(filter(None, (env.get("PYTHONPATH"), extra)))
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--one-session",
            kind,
            "--port",
            str(port),
            "--messages",
            str(count),
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        out, _ = await child.communicate()
        figures = json.loads(out)
        rate = count / figures["seconds"]
        print(f"{kind:12}{figures['seconds']:18.2f}{figures['cpu']:8.2f}{rate:9.0f}")


async def run_sessions(kind: str, port: int, count: int) -> None:
    """Child process: open the sessions, report, answer, report CPU, close."""
    done = asyncio.Event()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    if kind == "own":
        own = await own_sessions(port, count, done)
    else:
        aio, tasks = await aiomqtt_sessions(port, count, done)
    connect_s, connect_cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    print(json.dumps({"connect_s": connect_s, "connect_cpu": connect_cpu}), flush=True)
    cpu1 = cpu_seconds()
    await done.wait()
    answer_cpu = cpu_seconds() - cpu1
    if kind == "own":
        await asyncio.gather(*(client.disconnect() for client in own))
    else:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(client.__aexit__(None, None, None) for client in aio), return_exceptions=True
        )
    print(json.dumps({"answer_cpu": answer_cpu}), flush=True)


async def measure(kind: str, port: int, count: int) -> dict[str, float]:
    answers = 0
    all_in = asyncio.Event()

    def collect(topic: str, payload: bytes, retain: bool) -> None:
        nonlocal answers
        answers += 1
        if answers == 3 * count:
            all_in.set()

    collector = MqttClient("127.0.0.1", port, f"collector-{kind}", on_message=collect)
    publisher = MqttClient("127.0.0.1", port, f"publisher-{kind}")
    await collector.connect()
    await collector.subscribe([("bench/box/+/ack", 1)])
    await publisher.connect()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--role",
        kind,
        "--port",
        str(port),
        "--sessions",
        str(count),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    figures: dict[str, float] = json.loads(await child.stdout.readline())
    started = time.perf_counter()
    await asyncio.gather(
        *(publisher.publish(f"bench/box/{box}/cmd", b"play", qos=1) for box in range(count))
    )
    await asyncio.wait_for(all_in.wait(), 300)
    figures["answers_s"] = time.perf_counter() - started
    figures.update(json.loads(await child.stdout.readline()))
    await child.wait()
    await publisher.disconnect()
    await collector.disconnect()
    figures["sessions_per_s"] = count / figures["connect_s"]
    return figures


async def main(count: int, messages: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as work, MosquittoBroker(Path(work)) as broker:
        await one_session(broker.port, messages)
        if count == 0:
            return
        results = {kind: await measure(kind, broker.port, count) for kind in ("own", "aiomqtt")}
    print(f"{count} sessions, one Mosquitto on loopback")
    print(f"{'':34}{'own':>12}{'aiomqtt':>12}{'own/aiomqtt':>14}")
    rows = (
        ("sessions connected per second", "sessions_per_s", "{:12.0f}"),
        ("CPU s, connecting", "connect_cpu", "{:12.2f}"),
        (f"s until all {3 * count} answers", "answers_s", "{:12.2f}"),
        ("CPU s, sessions answering", "answer_cpu", "{:12.2f}"),
    )
    for label, key, form in rows:
        own, other = results["own"][key], results["aiomqtt"][key]
        print(f"{label:34}{form.format(own)}{form.format(other)}{own / other:14.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000, help="0: the one-session case only")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--role", choices=("own", "aiomqtt"))
    parser.add_argument("--one-session", choices=ONE_SESSION)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.one_session:
        run_one_session(args.one_session, args.port, args.messages)
    elif args.role:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        asyncio.run(run_sessions(args.role, args.port, args.sessions))
    else:
        asyncio.run(main(args.sessions, args.messages))
