"""Shared helpers of the pool tests: a running pool over simulators, report collection and
the texts the network received, read by the independent decoder."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from drivers.gsm import DeliveryReport, GsmModemPool, GsmPoolConfig
from drivers.gsm.simulator import AtModemSimulator
from drivers.gsm.simulator_network import NetworkRecord

from .conftest import fast_config
from .oracle import independent_text

NUMBER = "+8613800000001"
TEXTS = [
    "Flood warning for Jining district: move to high ground now. {Test} €5 fines apply.",
    "【乌兰察布市应急管理局】暴雨红色预警：预计未来3小时集宁区、察右前旗降雨量将达100毫米以上，"
    "山洪、泥石流风险极高，请沿河、低洼地区群众立即转移至安全地带，听从村干部指挥。",
    "𠮷野家 暴风雪蓝色预警 𠮷",
]


@asynccontextmanager
async def running_pool(
    simulators: Sequence[AtModemSimulator],
    *,
    modem_settings: dict[str, dict[str, object]] | None = None,
    **pool_settings: object,
) -> AsyncIterator[GsmModemPool]:
    per_modem = modem_settings or {}
    modems = tuple(
        fast_config(sim.device_path, f"m{i}", **per_modem.get(f"m{i}", {}))
        for i, sim in enumerate(simulators)
    )
    pool = GsmModemPool(GsmPoolConfig(modems, retry_delay=0.01, **pool_settings))  # type: ignore[arg-type]
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop()


async def collect_final_reports(
    pool: GsmModemPool, expected: set[tuple[str, int]]
) -> dict[tuple[str, int], list[DeliveryReport]]:
    """Every report until each (reference, sequence) in ``expected`` had a final one."""
    seen: dict[tuple[str, int], list[DeliveryReport]] = defaultdict(list)
    outstanding = set(expected)
    async with asyncio.timeout(10):
        async for report in pool.reports():
            seen[(report.reference, report.sequence)].append(report)
            if report.final:
                outstanding.discard((report.reference, report.sequence))
            if not outstanding:
                return seen
    raise AssertionError("unreachable: reports() never ends")


def joined_texts(records: Sequence[NetworkRecord]) -> dict[tuple[str, int | None], str]:
    """Message texts per (number, concat reference) as an independent decoder reads them."""
    parts: dict[tuple[str, int | None], dict[int, str]] = defaultdict(dict)
    for record in records:
        parts[(record.number, record.concat_reference)][record.sequence] = independent_text(
            record.pdu_hex
        )
    return {key: "".join(p[s] for s in sorted(p)) for key, p in parts.items()}
