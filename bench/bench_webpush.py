"""Web push throughput: pushes per second to 10,000 subscriptions, encryption included.

Run: ``scripts/run bench`` (every benchmark), or this one alone with
``PYTHONPATH=. .venv/bin/python bench/bench_webpush.py [--subscriptions N]``.

The push service is the tests' stand-in (``tests/webpush/pushservice.py``) in its own process,
answering 201 to every push without decrypting (as a real push service does). Prints:

- encrypt: RFC 8291 encryptions per second in one thread (the CPU floor of a push);
- channel: ``WebPushChannel.send`` to every subscription, ``concurrency`` at a time (payload,
  encryption in worker threads, VAPID header, HTTP POST, answer);
- service: one alert through the whole service (intake, plan, outbox, dispatcher) until every
  delivery is accepted by the push service.

Each rate is also given per CPU-second of the sending process, which stays meaningful when
other work shares the machine. Goal on a 2-core machine: at least 1,000 pushes per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import tempfile
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from aiohttp import web

from broadcaster.channel import ChannelContext
from broadcaster.config import parse_config
from broadcaster.delivery import Target
from broadcaster.divisions import DivisionTree
from broadcaster.service import BroadcasterService
from broadcaster.testing.contract import contract_delivery
from channels.webpush import WebPushChannel, WebPushChannelConfig
from channels.webpush.ece import b64url_encode, encrypt
from channels.webpush.endpoints import EndpointPolicy
from channels.webpush.enrolment import build_target
from tests.core.support import make_alert
from tests.webpush.pushservice import PushServiceStandIn, SubscriberKeys

REPO = Path(__file__).resolve().parents[1]
DIVISIONS = REPO / "config" / "demo" / "divisions.json"
TOWNSHIP = "150921001000"
LAB = EndpointPolicy(allow_http=True, allow_private=True)


def serve_stand_in(port: int, ready: EventType) -> None:
    """The push-service stand-in, in its own process."""

    async def main() -> None:
        stand_in = PushServiceStandIn(decrypt=False)
        stand_in.base_url = f"http://127.0.0.1:{port}"
        runner = web.AppRunner(stand_in.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def subscriptions(base: str, count: int, tree: DivisionTree) -> list[Target]:
    keys = SubscriberKeys()
    targets = []
    for n in range(count):
        body = {"subscription": keys.subscription(f"{base}/push/s{n}"), "division": TOWNSHIP}
        targets.append(
            build_target(
                body,
                channel="webpush",
                tree=tree,
                languages=("zh-CN",),
                policy=LAB,
                previous=None,
            )
        )
    return targets


def bench_encrypt(rounds: int = 3000) -> float:
    keys = SubscriberKeys()
    payload = b"x" * 600
    auth = b64url_encode(keys.auth)
    started = time.perf_counter()
    for _ in range(rounds):
        encrypt(payload, keys.p256dh, auth)
    return rounds / (time.perf_counter() - started)


Rate = tuple[float, float]
"""Pushes per second of wall time, and per second of this process's CPU time."""


def rates(count: int, wall: float, cpu: float) -> Rate:
    return count / wall, count / cpu


async def bench_channel(workdir: Path, targets: list[Target], concurrency: int) -> Rate:
    config = WebPushChannelConfig.model_validate(
        {
            "type": "webpush",
            "vapid_subject": "mailto:bench@example.cn",
            "allow_http_endpoints": True,
            "allow_private_endpoints": True,
            "concurrency": concurrency,
        }
    )
    context = ChannelContext(data_dir=workdir, sender_name="bench", public_url="https://x.cn")
    channel = WebPushChannel("webpush", config, context)
    await channel.start()
    queue: asyncio.Queue[Target] = asyncio.Queue()
    for target in targets:
        queue.put_nowait(target)

    async def worker() -> None:
        while not queue.empty():
            target = queue.get_nowait()
            await channel.send(contract_delivery(target))

    try:
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return rates(len(targets), time.perf_counter() - started, time.process_time() - cpu)
    finally:
        await channel.stop()


async def bench_service(workdir: Path, targets: list[Target], concurrency: int) -> Rate:
    registry = workdir / "targets.json"
    registry.write_text(json.dumps([t.to_json() for t in targets], ensure_ascii=False))
    data: dict[str, Any] = {
        "server": {"data_dir": str(workdir / "data")},
        "registry": {"divisions": str(DIVISIONS), "targets": str(registry)},
        "dispatcher": {"batch_size": 2000, "idle_poll_seconds": 0.05},
        "channels": {
            "webpush": {
                "type": "webpush",
                "vapid_subject": "mailto:bench@example.cn",
                "allow_http_endpoints": True,
                "allow_private_endpoints": True,
                "concurrency": concurrency,
            }
        },
    }
    service = BroadcasterService(parse_config(data, base_dir=workdir, source=None))
    await service.start()
    try:
        changed = asyncio.Event()
        service.subscribe(changed.set)
        started, cpu = time.perf_counter(), time.process_time()
        result = await service.submit(make_alert("bench-push"), origin="bench")
        while True:
            summary = await service.database.run(service.outbox.summary, result.alert_id)
            states = summary.get("webpush", {})
            if states.get("accepted", 0) + states.get("failed", 0) >= len(targets):
                break
            changed.clear()
            await changed.wait()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert states.get("accepted") == len(targets), states
        return rates(len(targets), wall, cpu)
    finally:
        await service.stop()


async def run(count: int, concurrency: int) -> None:
    port = free_port()
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    stand_in = spawn.Process(target=serve_stand_in, args=(port, ready), daemon=True)
    stand_in.start()
    try:
        if not await asyncio.to_thread(ready.wait, 30):
            raise RuntimeError("the push-service stand-in did not start")
        tree = DivisionTree.load(DIVISIONS)
        targets = subscriptions(f"http://127.0.0.1:{port}", count, tree)
        print(f"encrypt: {bench_encrypt():,.0f} per second (one thread)")
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu = await bench_channel(Path(tmp), targets, concurrency)
        print(
            f"channel: {wall:,.0f} pushes per second to {count:,} subscriptions"
            f" ({cpu:,.0f} per CPU-second of the sending process)"
        )
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu = await bench_service(Path(tmp), targets, concurrency)
        print(
            f"service: {wall:,.0f} pushes per second, one alert to {count:,} subscriptions"
            f" ({cpu:,.0f} per CPU-second of the sending process)"
        )
        print(f"goal: >= 1,000 per second; concurrency {concurrency}")
    finally:
        stand_in.terminate()
        stand_in.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    asyncio.run(run(args.subscriptions, args.concurrency))


if __name__ == "__main__":
    main()
