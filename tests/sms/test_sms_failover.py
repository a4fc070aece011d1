"""A modem vanishing mid-message: only the reports of the copy the pool sent again count.

Two simulated modems on real ptys share one network. The first modem to take the message sends
segment 1, whose report arrives, then vanishes at segment 2; the pool sends the whole message
again through the other modem, whose segments a phone joins only with each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from broadcaster.channel import Confirmation, ConfirmationOutcome
from broadcaster.testing.messages import FileRecords
from channels.sms.sending import SmsSender
from channels.sms.submissions import SubmissionStore
from drivers.gsm import ReportMode
from drivers.gsm.simulator_network import (
    NetworkRecord,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)
from tests.gsm.pool_support import running_pool

from .conftest import SimulatorFactory

NUMBER = "+8613800000001"
TEXT = (
    "【乌兰察布市应急管理局】暴雨红色预警：预计未来3小时集宁区、察右前旗降雨量将达100毫米以上，"
    "山洪、泥石流风险极高，请沿河、低洼地区群众立即转移至安全地带，听从村干部指挥。"
)  # two UCS-2 segments
DIRECT = {"status_reports": True, "report_mode": ReportMode.DIRECT}


async def _send_with_failover(
    make_simulator: SimulatorFactory,
    network: SimulatedNetwork,
    tmp_path: Path,
    first_copy: RecipientBehaviour,
    second_copy_first_segment: RecipientBehaviour,
    until: Callable[[list[Confirmation], str], bool],
) -> tuple[list[Confirmation], list[NetworkRecord]]:
    """Send TEXT: the first modem's segment 1 gets ``first_copy``, then that modem vanishes;
    the other modem's segment 1 gets ``second_copy_first_segment``, its segment 2 is delivered.
    Returns once ``until(confirmations, the other modem)`` holds."""
    simulators = {name: make_simulator(name) for name in ("sim0", "sim1")}
    first: list[str] = []

    def on_record(record: NetworkRecord) -> None:
        if not first:
            first.append(record.modem)
            network.rules[NUMBER] = RecipientRule(first_copy)
            simulators[record.modem].faults.close_on_send = True
        elif record.modem != first[0]:
            later = RecipientBehaviour.DELIVER
            behaviour = second_copy_first_segment if record.sequence == 1 else later
            network.rules[NUMBER] = RecipientRule(behaviour)

    network.listeners.append(on_record)
    confirmations: list[Confirmation] = []
    changed = asyncio.Event()

    def confirm(confirmation: Confirmation) -> None:
        confirmations.append(confirmation)
        changed.set()

    store = SubmissionStore(FileRecords(tmp_path / "records.json"))
    await store.open()
    sender = SmsSender(store, confirm, reporting=True)
    delivery = SimpleNamespace(
        id=7, attempt=1, idempotency_key="a:sms:t/1", expires_at=time.time() + 3600
    )
    try:
        async with running_pool(
            list(simulators.values()), max_attempts=3, modem_settings={"m0": DIRECT, "m1": DIRECT}
        ) as pool:
            pool.add_report_listener(sender.on_report)
            result = await sender.send(
                pool,
                delivery,  # type: ignore[arg-type]
                NUMBER,
                TEXT,
                segments=2,
                priority=0,
                validity=timedelta(hours=1),
            )
            second = "m1" if first == ["sim0"] else "m0"
            assert result.provider_ref == f"{second}:0,{second}:1"
            async with asyncio.timeout(10):
                while not until(confirmations, second):
                    await changed.wait()
                    changed.clear()
    finally:
        await store.close()
    return confirmations, network.records


def _final(confirmations: list[Confirmation]) -> list[ConfirmationOutcome]:
    return [c.outcome for c in confirmations if c.outcome is not ConfirmationOutcome.PROGRESS]


async def test_a_delivered_segment_of_the_abandoned_copy_does_not_confirm_the_new_one(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    confirmations, records = await _send_with_failover(
        make_simulator,
        network,
        tmp_path,
        first_copy=RecipientBehaviour.DELIVER,
        second_copy_first_segment=RecipientBehaviour.SILENT,
        until=lambda seen, second: any(
            f"segment 2/2 via {second} delivered" in c.detail
            or c.outcome is ConfirmationOutcome.CONFIRMED
            for c in seen
        ),
    )
    assert [(r.sequence, r.total) for r in records] == [(1, 2), (1, 2), (2, 2)]
    assert _final(confirmations) == []  # segment 1 of the copy in force was never reported
    assert "(1 of 2)" in confirmations[-1].detail


async def test_a_failed_segment_of_the_abandoned_copy_does_not_fail_the_new_one(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    confirmations, _ = await _send_with_failover(
        make_simulator,
        network,
        tmp_path,
        first_copy=RecipientBehaviour.FAIL,
        second_copy_first_segment=RecipientBehaviour.DELIVER,
        until=lambda seen, _: bool(_final(seen)),
    )
    assert _final(confirmations) == [ConfirmationOutcome.CONFIRMED]
    assert confirmations[-1].detail == "all 2 segment(s) delivered (status reports)"
