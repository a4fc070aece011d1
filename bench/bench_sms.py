"""SMS channel end to end: warnings per minute through the core service and N simulated modems.

1. Messages (3-segment Chinese warnings) per minute from ``submit`` until every delivery is
   confirmed by status reports, through 1, 2 and 4 simulated modems on real ptys with a fixed
   delay per ``AT+CMGS`` (real modems: 1-4 s); the ratio to one modem shows how the pool scales.
2. The software's own cost: the same with no simulated delay (core, channel, pool, pty,
   simulator), per delivery and per segment.

Run: ``.venv/bin/python -m bench.bench_sms [--cmgs-delay 0.5] [--per-modem 12]``. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from drivers.gsm.simulator import AtModemSimulator, ModemSimulatorConfig, ModemSimulatorFaults
from drivers.gsm.simulator_network import SimulatedNetwork
from tests.core.support import COUNTY, make_alert, make_config, running, wait_until_complete

DESCRIPTION = (
    "受强冷空气影响，预计今天夜间到明天白天卓资县大部地区将出现暴雪，局地大暴雪，"
    "降雪量10至15毫米，积雪深度8至12厘米，并伴有6至8级偏北风，阵风可达9级，"
    "气温下降8至10摄氏度。请牧区做好牲畜转移和棚圈加固工作。"
)


def groups(recipients: int) -> list[dict[str, Any]]:
    numbers = [f"+86100{n:08d}" for n in range(recipients)]
    return [
        {
            "id": f"town{start // 10}",
            "channel": "sms",
            "name": f"town{start // 10}",
            "division": f"{COUNTY[:6]}001000",
            "address": ",".join(numbers[start : start + 10]),
        }
        for start in range(0, recipients, 10)
    ]


async def run(modems: int, recipients: int, cmgs_delay: float) -> tuple[float, int]:
    """Seconds from submit to all confirmed, and the segments the network received."""
    network = SimulatedNetwork()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        simulators = [
            AtModemSimulator(
                ModemSimulatorConfig(name=f"sim{i}", link_path=str(root / f"tty{i}")),
                network,
                ModemSimulatorFaults(cmgs_delay=cmgs_delay),
            )
            for i in range(modems)
        ]
        for simulator in simulators:
            simulator.start()
        table = {
            "type": "sms",
            "signature": "【乌兰察布市应急管理局】",
            "concurrency": 3 * modems,
            "modems": [
                {"name": f"m{i}", "port": sim.device_path} for i, sim in enumerate(simulators)
            ],
        }
        config = make_config(root, {"sms": table}, groups(recipients))
        alert = make_alert("bench-sms")
        alert = dataclasses.replace(
            alert, infos=[dataclasses.replace(alert.infos[0], description=DESCRIPTION)]
        )
        try:
            async with running(config) as service:
                started = time.perf_counter()
                result = await service.submit(alert, origin="bench")
                summary = await wait_until_complete(service, result.alert_id, timeout=600)
                elapsed = time.perf_counter() - started
            assert summary == {"sms": {"confirmed": recipients}}, summary
            return elapsed, len(network.records)
        finally:
            for simulator in simulators:
                simulator.stop()
            network.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cmgs-delay", type=float, default=0.5, help="seconds per AT+CMGS")
    parser.add_argument("--per-modem", type=int, default=12, help="recipients per modem")
    parser.add_argument("--unthrottled", type=int, default=200, help="recipients, no delay")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"1. through the core, {args.cmgs_delay:g} s per AT+CMGS, 3-segment Chinese warnings")
    baseline = 0.0
    for modems in (1, 2, 4):
        recipients = args.per_modem * modems
        elapsed, segments = await run(modems, recipients, args.cmgs_delay)
        rate = recipients / elapsed * 60
        baseline = baseline or rate
        print(
            f"   {modems} modem(s): {recipients} messages ({segments} segments) in"
            f" {elapsed:.1f} s = {rate:.0f} messages/min,"
            f" {segments / elapsed * 60:.0f} segments/min, x{rate / baseline:.2f} of one modem"
        )
    elapsed, segments = await run(4, args.unthrottled, 0.0)
    print(
        f"2. no delay, 4 modems: {args.unthrottled} messages ({segments} segments) in"
        f" {elapsed:.2f} s = {args.unthrottled / elapsed:.0f} messages/s,"
        f" {elapsed / segments * 1000:.2f} ms per segment"
    )


if __name__ == "__main__":
    asyncio.run(main())
