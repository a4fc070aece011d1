"""SMS-gateway driver throughput: submits per second with 1 and 4 binds, and client CPU cost.

The simulator (``broadcaster sim smsc``, no rate limit, receipts at once) runs in a child
process so that this process holds only the client: ``SmppClient`` or ``CmppClient`` submits
N single-segment texts with enough of them in flight to fill every bind's window, then waits
until every receipt has come back and been matched to its segment.

Printed per protocol and bind count: submits per second (first submit to last answer), the
time until the last receipt was matched, and the client's CPU microseconds per message
(``resource.getrusage`` of this process: encode, submit, answer, receipt, match). The
simulator, one Python process, is usually the limit of the first figure.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_smsc.py [--messages 4000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.bench_gateway_sms import ACCOUNT, cpu_seconds, start_gateway
from drivers.cmpp.client import CmppClient, CmppClientConfig
from drivers.smpp.client import SmppClient, SmppClientConfig
from drivers.smsgw.client import GatewayClient

WINDOW = 32


def make_client(protocol: str, port: int, binds: int) -> GatewayClient:
    name, secret = ACCOUNT[protocol]
    if protocol == "smpp":
        return SmppClient(
            SmppClientConfig("127.0.0.1", port, name, secret, binds=binds, window=WINDOW)
        )
    return CmppClient(CmppClientConfig("127.0.0.1", port, name, secret, binds=binds, window=WINDOW))


async def run(protocol: str, binds: int, messages: int) -> None:
    process, port, drain = await start_gateway(protocol, 0, 0, window=WINDOW)
    try:
        client = make_client(protocol, port, binds)
        await client.start()
        await client.wait_binds_up(binds, 10)
        queue: asyncio.Queue[str] = asyncio.Queue()
        for number in range(messages):
            queue.put_nowait(f"86138{number:08d}")
        matched = 0
        all_matched = asyncio.Event()

        async def count_receipts() -> None:
            nonlocal matched
            async for receipt in client.receipts():
                matched += receipt.segment is not None
                if matched == messages:
                    all_matched.set()

        async def worker() -> None:
            while not queue.empty():
                await client.submit(queue.get_nowait(), "bench 演练")

        counter = asyncio.create_task(count_receipts())
        cpu_before, started = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(binds * WINDOW)))
        submitted = time.perf_counter() - started
        async with asyncio.timeout(60):
            await all_matched.wait()
        finished = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        counter.cancel()
        await client.close()
        print(
            f"{protocol} binds={binds}: {messages / submitted:8.0f} submits/s,"
            f" all {messages} receipts matched after {finished:5.2f} s,"
            f" client CPU {cpu / messages * 1e6:6.0f} µs/message",
            flush=True,
        )
    finally:
        process.terminate()
        await process.wait()
        await drain


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=4000)
    options = parser.parse_args()
    for protocol in ("smpp", "cmpp"):
        for binds in (1, 4):
            await run(protocol, binds, options.messages)


if __name__ == "__main__":
    asyncio.run(main())
