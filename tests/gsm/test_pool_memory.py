"""The modem pool's memory while status reports stream in for as long as a server runs: it stays
flat whether or not anyone reads ``reports()``, for matched and for unexpected reports alike
(counted as the report objects still alive)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc

from drivers.gsm import DeliveryReport, ReportMode
from drivers.gsm.pdu import StatusReportPdu
from drivers.gsm.pool_reports import REPORT_BACKLOG
from drivers.gsm.simulator_network import STATUS_REMOTE_BUSY, SimulatedNetwork

from .conftest import SimulatorFactory
from .pool_support import NUMBER, running_pool

REPORTS = 100_000
WARM_UP = 5_000
UNEXPECTED_EVERY = 4  # every fourth report is for a segment nobody sent


async def test_100000_status_reports_leave_the_pool_memory_flat(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    network.report_delay = 3600  # only the reports the test emits
    simulator = make_simulator()
    settings: dict[str, dict[str, object]] = {
        "m0": {"status_reports": True, "report_mode": ReportMode.DIRECT}
    }
    matched = 0
    arrived = asyncio.Event()
    target = 0

    def count(report: DeliveryReport) -> None:
        nonlocal matched
        matched += 1
        if matched == target:
            arrived.set()

    async with running_pool([simulator], modem_settings=settings) as pool:
        pool.add_report_listener(count)
        await pool.send(NUMBER, "sent", reference="watched/1")
        record = network.records[0]
        stranger = dataclasses.replace(record, message_reference=200)

        async def feed(count_: int) -> None:
            nonlocal target
            expected = count_ - count_ // UNEXPECTED_EVERY
            target = matched + expected
            arrived.clear()

            def emit() -> None:
                for i in range(count_):
                    unexpected = i % UNEXPECTED_EVERY == 0
                    simulator.emit_report(stranger if unexpected else record, STATUS_REMOTE_BUSY)

            await asyncio.to_thread(emit)
            simulator.reports_sent.clear()  # the simulator's log of what it sent
            async with asyncio.timeout(120):
                await arrived.wait()

        await feed(WARM_UP)  # fills the backlog nobody reads and the table of early reports
        before = _retained_reports()
        await feed(REPORTS)
        grown = _retained_reports() - before
        kept = pool.queued_reports
    assert matched == WARM_UP + REPORTS - (WARM_UP + REPORTS) // UNEXPECTED_EVERY
    assert kept == REPORT_BACKLOG
    assert grown <= 0, f"{grown} more reports retained after {REPORTS} more arrived"


def _retained_reports() -> int:
    """Report objects alive now, except the simulator's own log of what it sent."""
    gc.collect()
    return sum(isinstance(o, (DeliveryReport, StatusReportPdu)) for o in gc.get_objects())
