"""EBD platform benchmark: EBM packages built, signed and accepted per second against the
platform simulator over loopback HTTP (the simulator verifies each signature and signs its
receipt, whose signature the sender verifies in turn), and the cost of SM2 signing and
verification alone (software backend, gmalg).

Default run is well under a minute. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from drivers.ebd import Ebd, build_package, result_of
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signatures", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    bench_signing(args.signatures)
    asyncio.run(bench_exchange(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
