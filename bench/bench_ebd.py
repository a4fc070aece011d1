"""EBD platform benchmark: EBM packages built, signed and accepted per second against the
platform simulator over loopback HTTP (the simulator verifies each signature and signs its
receipt, whose signature the sender verifies in turn), first with the driver alone, then through
the ``ebplatform`` channel's ``send`` (CAP → EBM mapping, ids and ledger in the store's channel
records, on SQLite or on the PostgreSQL of ``--store-url``, keys from files made by
``broadcaster ebd keygen``), and the cost of SM2 signing and verification alone
(software backend, gmalg).

Default run is well under a minute. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from broadcaster.cli import main as broadcaster_main
from broadcaster.delivery import Target
from broadcaster.store.db import open_database
from broadcaster.store.records import ChannelRecords
from broadcaster.testing.contract import channel_context, contract_delivery
from channels.ebplatform import EbPlatformChannel
from channels.ebplatform.config import EbPlatformChannelConfig
from drivers.ebd import (
    Ebd,
    Sm2Signer,
    Sm2Verifier,
    TrustList,
    build_package,
    load_certificate,
    load_private_key,
    result_of,
)
from drivers.ebd.exchange import EbdIdSequence
from drivers.ebd.simulator import EbdPlatformSimulator, PlatformBehaviour
from drivers.ebd.testing import (
    COUNTY_PLATFORM_EBRID,
    WARNING_SOURCE_EBRID,
    make_identity,
    sample_ebm,
    verifier_for,
)
from drivers.ebd.xmlsafe import beijing_now


def bench_signing(count: int) -> None:
    identity = make_identity(WARNING_SOURCE_EBRID)
    signer = identity.signer()
    verifier = verifier_for(identity)
    ids = EbdIdSequence(WARNING_SOURCE_EBRID)
    ebd = Ebd(ids.next(), WARNING_SOURCE_EBRID, beijing_now(), sample_ebm())
    data = build_package(ebd, None).ebdb
    sign_times, verify_times = [], []
    for _ in range(count):
        start = time.perf_counter()
        value = signer.sign(data)
        sign_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        verifier.verify(data, value)
        verify_times.append(time.perf_counter() - start)
    print(f"EBDB file: {len(data)} bytes")
    for name, times in (("sign", sign_times), ("verify", verify_times)):
        median = statistics.median(times) * 1000
        print(f"SM2 {name}: median {median:.2f} ms, {1 / statistics.mean(times):.0f}/s")


async def bench_exchange(seconds: float, concurrency: int) -> None:
    source = make_identity(WARNING_SOURCE_EBRID)
    platform = make_identity(COUNTY_PLATFORM_EBRID)
    lower = EbdPlatformSimulator(
        platform.ebrid,
        platform.signer(),
        verifier_for(source),
        PlatformBehaviour(state_delay=3600),
    )
    lower.faults.never_send_state = True
    upper = EbdPlatformSimulator(source.ebrid, source.signer(), verifier_for(platform))
    async with lower, upper:
        accepted = 0
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def worker(number: int) -> None:
            nonlocal accepted
            sequence = number * 1000
            while time.perf_counter() < deadline:
                sequence += 1
                ebm = sample_ebm(source.ebrid, sequence=sequence % 10000)
                ebd = Ebd(upper._ids.next(), source.ebrid, beijing_now(), ebm)
                start = time.perf_counter()
                package = await asyncio.to_thread(build_package, ebd, upper.signer)
                reply = await upper.post(lower.url, package)
                result_of(reply.ebd, ebd.ebdid)
                latencies.append(time.perf_counter() - start)
                accepted += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    print(
        f"EBM exchange ({concurrency} in flight, {elapsed:.1f} s): {accepted} accepted, "
        f"{accepted / elapsed:.1f}/s; latency median {statistics.median(latencies) * 1000:.1f}"
        f" ms, p95 {sorted(latencies)[int(len(latencies) * 0.95)] * 1000:.1f} ms"
    )


def _keygen(folder: Path, ebrid: str) -> tuple[Path, Path, bytes]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert broadcaster_main(["ebd", "keygen", "--out", str(folder), "--ebrid", ebrid]) == 0
    cert = folder / "cert.pem"
    return folder / "key.pem", cert, load_certificate(cert).cert_id


async def bench_channel(seconds: float, concurrency: int, store_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        database = open_database(root / "store.db", store_url, None, 30.0)
        records = ChannelRecords(lambda: database, "eb")
        key, cert, cert_id = _keygen(root / "ours", WARNING_SOURCE_EBRID)
        county_key, county_cert, county_id = _keygen(root / "county", COUNTY_PLATFORM_EBRID)
        lower = EbdPlatformSimulator(
            COUNTY_PLATFORM_EBRID,
            Sm2Signer(load_private_key(county_key), county_id),
            Sm2Verifier(TrustList([load_certificate(cert)])),
            PlatformBehaviour(state_delay=3600),
        )
        lower.faults.never_send_state = True
        async with lower:
            table = {
                "type": "ebplatform",
                "local_ebrid": WARNING_SOURCE_EBRID,
                "signing_key_file": str(key),
                "cert_id": cert_id.hex(),
                "trust": [str(county_cert)],
                "peers": [{"name": "county", "ebrid": COUNTY_PLATFORM_EBRID, "url": lower.url}],
                "concurrency": concurrency,
            }
            config = EbPlatformChannelConfig.model_validate(table)
            context = replace(channel_context(root / "data"), records=records)
            channel = EbPlatformChannel("eb", config, context)
            await channel.start()
            target = Target(id="county", channel="eb", name="县平台", address="county",
                            division="150921000000")  # fmt: skip
            template = contract_delivery(target)
            accepted, latencies = 0, []
            deadline = time.perf_counter() + seconds

            async def worker(number: int) -> None:
                nonlocal accepted
                while time.perf_counter() < deadline:
                    accepted += 1
                    key = f"bench:{number}:{accepted}"
                    delivery = replace(template, id=accepted, idempotency_key=key)
                    start = time.perf_counter()
                    await channel.send(delivery)
                    latencies.append(time.perf_counter() - start)

            started = time.perf_counter()
            try:
                await asyncio.gather(*(worker(n) for n in range(concurrency)))
            finally:
                await channel.stop()
                database.close()
            elapsed = time.perf_counter() - started
    print(
        f"channel send ({concurrency} in flight, {elapsed:.1f} s): {accepted} accepted, "
        f"{accepted / elapsed:.1f}/s; latency median {statistics.median(latencies) * 1000:.1f}"
        f" ms, p95 {sorted(latencies)[int(len(latencies) * 0.95)] * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signatures", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--store-url", help="a PostgreSQL store for the channel's records")
    args = parser.parse_args()
    bench_signing(args.signatures)
    asyncio.run(bench_exchange(args.seconds, args.concurrency))
    asyncio.run(bench_channel(args.seconds, args.concurrency, args.store_url))


if __name__ == "__main__":
    main()
