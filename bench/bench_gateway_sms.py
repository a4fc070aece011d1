"""The gateway-sms channel's throughput: submits per second, software cost, a city-wide send.

The simulated gateway (``broadcaster sim smsc``) runs in a child process so that this process
holds only broadcaster. Printed per protocol:

1. ``channel``: the channel alone (``send_many`` called directly with batches of 500, four at
   a time, as the dispatcher does; records in a SQLite store) submitting
   N single-segment SMS over 1 and over 4 binds with no rate limit: submits per second (first
   send to last answer), the time until every delivery was confirmed by its receipt, and this
   process's CPU microseconds per message (render, record, submit, answer, receipt, confirm).
2. ``city``: the whole server (``BroadcasterService``: intake, planning into the outbox,
   dispatcher, channel, receipts, states) sending one alert to ``--recipients`` numbers (in
   registry groups of ``--group-size``; each delivery keeps a copy of its group as planned,
   so large groups cost planning time and disk) through 4 binds against a gateway limited to
   ``--gateway-rate`` segments per second in all (0: no limit): seconds to plan, to submit
   every segment and until every delivery is confirmed, with the rates, the extrapolation to
   1,000,000 recipients, and the server's CPU per recipient (planning included): on a shared
   machine, the rate one core could carry.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_gateway_sms.py [--recipients 1000000]
[--messages 20000] [--protocols smpp,cmpp] [--skip-channel] [--skip-city]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from broadcaster.channel import AlertMessage, OutgoingDelivery
from broadcaster.config import parse_config
from broadcaster.delivery import Target
from broadcaster.service import BroadcasterService
from broadcaster.store.db import Database
from broadcaster.store.records import ChannelRecords
from broadcaster.testing.messages import channel_context, contract_message
from channels.gateway_sms import GatewaySmsChannel, GatewaySmsChannelConfig
from tests.core.support import COUNTY, make_alert

WINDOW = 64
BATCH = 500
"""Deliveries per batch in the channel-alone run (the dispatcher's default ``batch_size``)."""
CITY_BATCH = 2000
"""The city run's ``batch_size``: a claim's cost grows with the outbox, so fewer, larger ones."""
IN_FLIGHT = 4
"""Batches in flight at once: the dispatcher claims the next while earlier ones submit."""
ACCOUNT = {"smpp": ("bench", "pw"), "cmpp": ("901234", "pw")}
GOAL_SECONDS = 15 * 60


def load_average() -> str:
    """The machine's load average over the last minute (the bench shares the machine)."""
    return Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def start_gateway(
    protocol: str, rate_per_bind: float, receipt_delay: float, window: int = WINDOW
) -> tuple[asyncio.subprocess.Process, int, asyncio.Task[bytes]]:
    name, secret = ACCOUNT[protocol]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.smsgw.simulator_cli", "--protocol", protocol,
        "--port", "0", "--account", f"{name}:{secret}", "--window", str(window),
        "--rate", str(rate_per_bind), "--receipt-delay", str(receipt_delay), "--quiet",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await process.stdout.readline()).decode()
    if not line.startswith("listening: "):
        raise RuntimeError(f"simulator did not start: {line!r}")
    drain = asyncio.create_task(_discard(process.stdout))
    return process, int(line.rsplit(":", 1)[1]), drain


async def _discard(stream: asyncio.StreamReader) -> bytes:
    """Read the simulator's per-segment lines so the pipe never fills."""
    while await stream.read(1 << 16):
        pass
    return b""


def gateway_table(protocol: str, port: int, binds: int, rate_per_bind: float) -> dict[str, Any]:
    name, secret = ACCOUNT[protocol]
    account = (
        {"system_id": name, "password": secret}
        if protocol == "smpp"
        else {"sp_id": name, "shared_secret": secret}
    )
    return {
        "type": "gateway-sms",
        "protocol": protocol,
        "host": "127.0.0.1",
        "port": port,
        "binds": binds,
        "window": WINDOW,
        "submit_rate_per_second": rate_per_bind,
        "concurrency": binds * WINDOW * 2,
        "request_timeout_seconds": 30,
    } | account


async def bench_channel(protocol: str, binds: int, messages: int) -> None:
    process, port, drain = await start_gateway(protocol, 0, 0)
    with tempfile.TemporaryDirectory() as folder:
        config = GatewaySmsChannelConfig.model_validate(gateway_table(protocol, port, binds, 0))
        database = Database(Path(folder) / "store.db")
        context = replace(
            channel_context(Path(folder)), records=ChannelRecords(lambda: database, "bench")
        )
        channel = GatewaySmsChannel("bench", config, context)
        message = contract_message()
        confirmed = 0
        done = asyncio.Event()

        async def count() -> None:
            nonlocal confirmed
            async for _ in channel.confirmations():
                confirmed += 1
                if confirmed == messages:
                    done.set()

        await channel.start()
        try:
            assert channel.client is not None
            await channel.client.wait_binds_up(binds, 10)
            batches = [
                [delivery(message, n) for n in range(start, min(messages, start + BATCH) + 1)]
                for start in range(1, messages + 1, BATCH)
            ]

            async def worker() -> None:
                while batches:
                    await channel.send_many(batches.pop(0))

            counter = asyncio.create_task(count())
            cpu_before, started = cpu_seconds(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            submitted = time.perf_counter() - started
            async with asyncio.timeout(120):
                await done.wait()
            finished = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_before
            counter.cancel()
        finally:
            await channel.stop()
            database.close()
            process.terminate()
            await process.wait()
            await drain
    print(
        f"{protocol} channel binds={binds}: {messages / submitted:7.0f} submits/s"
        f" ({messages / submitted / binds:6.0f} per bind), all {messages} confirmed after"
        f" {finished:5.2f} s, CPU {cpu / messages * 1e6:5.0f} µs/message;"
        f" load average {load_average()}",
        flush=True,
    )


def delivery(message: AlertMessage, number: int) -> OutgoingDelivery:
    target = Target(
        id=f"n{number}", channel="bench", name=f"n{number}", address=f"+86139{number:08d}"
    )
    return OutgoingDelivery(
        id=number,
        message=message,
        target=target,
        part=0,
        attempt=1,
        idempotency_key=f"{message.id}:bench:{target.id}",
        expires_at=message.expires_at,
    )


def city_groups(recipients: int, size: int) -> list[dict[str, Any]]:
    groups = []
    for index in range(0, recipients, size):
        numbers = range(index, min(recipients, index + size))
        groups.append(
            {
                "id": f"g{index // size:07d}",
                "channel": "city",
                "name": f"group {index // size}",
                "division": f"{COUNTY[:6]}001000",
                "address": ",".join(f"+86139{n:08d}" for n in numbers),
            }
        )
    return groups


async def bench_city(protocol: str, recipients: int, gateway_rate: float, size: int) -> None:
    binds = 4
    process, port, drain = await start_gateway(protocol, gateway_rate / binds, 1.0)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        registry = base / "targets.json"
        registry.write_text(json.dumps(city_groups(recipients, size)), encoding="utf-8")
        table = gateway_table(protocol, port, binds, gateway_rate / binds * 0.98)
        table["concurrency"] = CITY_BATCH * IN_FLIGHT
        config = parse_config(
            {
                "server": {"data_dir": str(base / "data"), "sender": "city@example.cn"},
                "registry": {"targets": str(registry)},
                "dispatcher": {"idle_poll_seconds": 0.05, "batch_size": CITY_BATCH},
                "channels": {"city": table},
            },
            base_dir=base,
            source=None,
        )
        service = BroadcasterService(config)
        await service.start()
        try:
            channel = service.channels["city"]
            assert isinstance(channel, GatewaySmsChannel)
            started, cpu_before = time.perf_counter(), cpu_seconds()
            result = await service.submit(make_alert(f"city-{protocol}"), origin="bench")
            planned = time.perf_counter() - started
            submitted_at = None
            print(f"{protocol} city: {recipients} planned in {planned:.1f} s", flush=True)
            ticks = 0
            while True:
                await asyncio.sleep(0.5)
                progress = channel.tracker.progress
                ticks += 1
                if ticks % 20 == 0:
                    figures = channel.progress() or {}
                    print(
                        f"  {time.perf_counter() - started:6.1f} s: {progress.submitted} submitted"
                        f" ({figures.get('submitted_per_second', 0):.0f}/s),"
                        f" {progress.receipted} receipted",
                        flush=True,
                    )
                if submitted_at is None and progress.submitted >= recipients:
                    submitted_at = time.perf_counter() - started
                if progress.delivered + progress.failed >= recipients:
                    break
            finished = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_before
            summary = await service.database.run(service.outbox.summary, result.alert_id)
        finally:
            await service.stop()
            process.terminate()
            await process.wait()
            await drain
    assert submitted_at is not None
    sending = submitted_at - planned
    scale = 1_000_000 / recipients
    million = planned * scale + (finished - planned) * scale
    print(
        f"{protocol} city (groups of {size}): {recipients} recipients planned in {planned:5.1f} s,"
        f" submitted after {submitted_at:6.1f} s ({recipients / sending:5.0f}/s),"
        f" all receipted after {finished:6.1f} s; {summary['city']};"
        f" 1,000,000 recipients: about {million / 60:4.1f} min"
        f" ({'within' if million <= GOAL_SECONDS else 'over'} 15 min);"
        f" server CPU {cpu / recipients * 1e6:.0f} µs/recipient"
        f" (one core's worth: {recipients / cpu:.0f} recipients/s); load average {load_average()}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--gateway-rate", type=float, default=2000.0)
    parser.add_argument("--protocols", default="smpp,cmpp")
    parser.add_argument(
        "--group-size", type=int, default=10, help="numbers per registry target (group)"
    )
    parser.add_argument("--skip-channel", action="store_true")
    parser.add_argument("--skip-city", action="store_true")
    options = parser.parse_args()
    for protocol in options.protocols.split(","):
        if not options.skip_channel:
            for binds in (1, 4):
                await bench_channel(protocol, binds, options.messages)
        if not options.skip_city:
            await bench_city(protocol, options.recipients, options.gateway_rate, options.group_size)


if __name__ == "__main__":
    asyncio.run(main())
