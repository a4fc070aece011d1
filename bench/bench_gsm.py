"""GSM modem pool throughput and software cost, against simulated modems on real ptys.

1. Messages per minute through 1, 2 and 4 simulated modems at a realistic 2 s per
   ``AT+CMGS`` (goal: N modems reach at least 0.9 x N times the single-modem rate).
2. The software's own cost per segment with no simulated delay: the codec alone, and the
   whole path (pool, session, pty, simulator decoding the PDU) per segment.

Run: ``.venv/bin/python bench/bench_gsm.py [--cmgs-delay 2] [--per-modem 5]``. Takes about
a minute with the defaults. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from drivers.gsm import GsmModemConfig, GsmModemPool, GsmPoolConfig
from drivers.gsm.pdu import encode_submit
from drivers.gsm.simulator import AtModemSimulator, ModemSimulatorConfig, ModemSimulatorFaults
from drivers.gsm.simulator_network import SimulatedNetwork

NUMBER = "+8613800000001"
SHORT = "Flood warning: move to high ground now."
CHINESE = "【乌兰察布市应急管理局】暴雨红色预警：预计未来3小时集宁区降雨量将达100毫米以上。" * 3


async def send_batch(modems: int, messages: int, cmgs_delay: float, text: str) -> float:
    """Seconds to get ``messages`` accepted through ``modems`` simulated modems."""
    network = SimulatedNetwork()
    with tempfile.TemporaryDirectory() as directory:
        simulators = [
            AtModemSimulator(
                ModemSimulatorConfig(name=f"sim{i}", link_path=str(Path(directory) / f"tty{i}")),
                network,
                ModemSimulatorFaults(cmgs_delay=cmgs_delay),
            )
            for i in range(modems)
        ]
        for simulator in simulators:
            simulator.start()
        configs = tuple(
            GsmModemConfig(f"m{i}", simulator.device_path, send_timeout=30)
            for i, simulator in enumerate(simulators)
        )
        try:
            async with GsmModemPool(GsmPoolConfig(configs)) as pool:
                started = time.perf_counter()
                await asyncio.gather(
                    *(pool.send(NUMBER, text, reference=f"r{i}") for i in range(messages))
                )
                return time.perf_counter() - started
        finally:
            for simulator in simulators:
                simulator.stop()
            network.stop()


def codec_cost(rounds: int) -> float:
    """Microseconds per segment to encode a three-segment Chinese message."""
    segments = len(encode_submit(NUMBER, CHINESE))
    started = time.perf_counter()
    for _ in range(rounds):
        encode_submit(NUMBER, CHINESE, request_status_report=True)
    return (time.perf_counter() - started) / (rounds * segments) * 1e6


async def main(cmgs_delay: float, per_modem: int) -> None:
    print(f"throughput at {cmgs_delay:g} s per AT+CMGS, {per_modem} messages per modem")
    single_rate = 0.0
    for modems in (1, 2, 4):
        messages = modems * per_modem
        elapsed = await send_batch(modems, messages, cmgs_delay, SHORT)
        rate = messages / elapsed * 60
        single_rate = single_rate or rate
        ratio = rate / (modems * single_rate)
        print(
            f"  {modems} modem(s): {messages:3d} messages in {elapsed:6.2f} s"
            f" = {rate:6.1f} messages/min ({ratio:.2f} x {modems} x single; goal >= 0.90)"
        )
    print("software cost per segment, no simulated delay")
    print(f"  codec (encode_submit, UCS-2, 3 segments): {codec_cost(2000):7.1f} us/segment")
    for modems in (1, 4):
        messages = 400
        elapsed = await send_batch(modems, messages, 0.0, SHORT)
        print(
            f"  whole path, {modems} modem(s), {messages} messages:"
            f" {elapsed / messages * 1000:6.3f} ms/segment (driver and simulator, one process)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cmgs-delay", type=float, default=2.0)
    parser.add_argument("--per-modem", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.cmgs_delay, options.per_modem))
