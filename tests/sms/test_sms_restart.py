"""The SMS channel across a restart of the service, against an AT-modem simulator on a real pty
that keeps running (and keeps status reports in its SR memory) while the service is down.

The simulated network's log is the witness: each segment of each message reaches it once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from broadcaster.service import DATABASE_NAME
from broadcaster.store.db import Database
from channels.sms import SubmissionStoreError
from drivers.gsm import SegmentSubmission
from drivers.gsm.simulator_network import (
    NetworkRecord,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)
from tests.core.support import make_config, running, wait_for_deliveries, wait_until_complete

from .conftest import SimulatorFactory, modem_table, sms_channel_table
from .oracle import received_messages
from .test_sms_service import bilingual_alert, deliveries, group, numbers, sms_channel

SILENT_NETWORK = 3600.0  # no report comes on its own: the test says when the network answers


def each_segment(records: list[NetworkRecord]) -> Counter[tuple[str, int]]:
    return Counter((record.number, record.sequence) for record in records)


def once_each(recipients: list[str], segments: int = 3) -> Counter[tuple[str, int]]:
    return Counter({(n, s): 1 for n in recipients for s in range(1, segments + 1)})


def report_delivered(simulator: Any, records: list[NetworkRecord], recipients: list[str]) -> None:
    for record in records:
        if record.number in recipients:
            simulator.emit_report(record, 0x00)


def by_number(rows: list[dict[str, Any]], recipients: list[str]) -> dict[str, dict[str, Any]]:
    return {recipients[row["part"] - 1]: row for row in rows}


async def test_reports_after_a_restart_confirm_and_nothing_is_sent_again(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    network.report_delay = SILENT_NETWORK
    recipients = numbers(0, 4)
    early, late = recipients[:2], recipients[2:]
    table = sms_channel_table([modem_table("m0", simulator.device_path)])
    config = make_config(tmp_path, {"sms": table}, [group("t", recipients)])
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-restart"), origin="test")
        before = await wait_for_deliveries(
            service, result.alert_id, lambda rows: {r["state"] for r in rows} == {"accepted"}
        )
    assert each_segment(network.records) == once_each(recipients)
    # while the service is down the network reports on the first two; the modem keeps them
    report_delivered(simulator, network.records, early)
    assert len(simulator.stored_reports) == 6

    async with running(config) as service:
        report_delivered(simulator, network.records, late)  # late reports, after the restart
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
        rows = by_number(await deliveries(service, result.alert_id), recipients)
        events = {
            n: await service.database.run(service.outbox.events, r["id"]) for n, r in rows.items()
        }

    assert summary == {"sms": {"confirmed": 4}}
    assert each_segment(network.records) == once_each(recipients)  # nothing sent twice
    assert simulator.stored_reports == {}  # read back (and deleted) at connect
    first = by_number(before, recipients)
    assert all(rows[n]["provider_ref"] == first[n]["provider_ref"] for n in recipients)
    for number in recipients:
        assert events[number][-1]["detail"] == "all 3 segment(s) delivered (status reports)"
    assert all(rows[n]["attempts"] == 1 for n in recipients)


async def test_an_sms_without_reports_after_a_restart_is_sent_again_at_the_timeout(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    [number] = numbers(0, 1)
    network.rules[number] = RecipientRule(RecipientBehaviour.SILENT)  # reports get lost
    table = sms_channel_table([modem_table("m0", simulator.device_path)], confirm_timeout_seconds=1)
    config = make_config(tmp_path, {"sms": table}, [group("t", [number])])
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-silent"), origin="test")
        await wait_for_deliveries(
            service, result.alert_id, lambda rows: rows[0]["state"] == "accepted"
        )
    network.rules.clear()  # the network reports again

    async with running(config) as service:
        started = time.monotonic()
        # answered from the record at once ("awaiting status reports"), then the
        # confirmation timeout passes without a report: sent afresh, and that copy is reported
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
        took = time.monotonic() - started
        [row] = await deliveries(service, result.alert_id)
    assert summary == {"sms": {"confirmed": 1}}
    assert took < 1 + 5
    assert each_segment(network.records) == Counter({(number, s): 2 for s in (1, 2, 3)})
    assert len({r.concat_reference for r in network.records}) == 2  # two whole copies
    assert row["attempts"] == 2


async def test_an_sms_whose_reports_never_come_is_sent_once_more_then_fails_saying_so(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    [number] = numbers(0, 1)
    network.rules[number] = RecipientRule(RecipientBehaviour.SILENT)
    table = sms_channel_table([modem_table("m0", simulator.device_path)], confirm_timeout_seconds=1)
    config = make_config(tmp_path, {"sms": table}, [group("t", [number])])
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-never"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
        [row] = await deliveries(service, result.alert_id)
    assert summary == {"sms": {"failed": 1}}
    assert "nor for the copy sent again" in row["last_error"]
    assert each_segment(network.records) == Counter({(number, s): 2 for s in (1, 2, 3)})


async def test_an_outcome_the_core_missed_before_a_stop_is_settled_at_the_start(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    network.report_delay = 0.05
    [number] = numbers(0, 1)
    table = sms_channel_table([modem_table("m0", simulator.device_path)])
    config = make_config(tmp_path, {"sms": table}, [group("t", [number])])
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-missed"), origin="test")
        await wait_until_complete(service, result.alert_id, timeout=20)
    # as if the server stopped after the SMS record settled and before the core wrote it
    with sqlite3.connect(config.server.data_dir / DATABASE_NAME) as conn:
        conn.execute("UPDATE deliveries SET state = 'accepted', updated_at = ?", (time.time(),))
    conn.close()

    async with running(config) as service:
        started = time.monotonic()
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
        took = time.monotonic() - started
    assert summary == {"sms": {"confirmed": 1}}
    assert took < 5 - 1  # settled at the start, not at the confirmation timeout of 5 s
    assert each_segment(network.records) == once_each([number])


async def test_a_message_cut_between_two_segments_is_completed_after_the_restart(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    network.report_delay = 0.05
    [number] = numbers(0, 1)

    def stall_after_the_first_segment(record: NetworkRecord) -> None:
        simulator.faults.stall = True  # the modem answers this +CMGS, then nothing more

    network.listeners.append(stall_after_the_first_segment)
    modem = modem_table("m0", simulator.device_path, command_timeout_seconds=10)
    config = make_config(tmp_path, {"sms": sms_channel_table([modem])}, [group("t", [number])])
    async with running(config) as service:
        recorded = asyncio.Event()
        store = sms_channel(service).sender.store
        write_segment = store.segment

        async def observed(key: str, segment: SegmentSubmission, now: float) -> None:
            await write_segment(key, segment, now)
            recorded.set()

        store.segment = observed  # type: ignore[method-assign]
        result = await service.submit(bilingual_alert("sms-cut"), origin="test")
        async with asyncio.timeout(10):
            await recorded.wait()
        [row] = await deliveries(service, result.alert_id)
    assert row["state"] == "sending" and len(network.records) == 1

    network.listeners.clear()
    simulator.faults.stall = False
    async with running(config) as service:
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
        [row] = await deliveries(service, result.alert_id)
        events = await service.database.run(service.outbox.events, row["id"])
        expected = sms_channel(service).render(
            await service.dispatcher.message(result.alert_id), ("zh-CN",)
        )

    assert summary == {"sms": {"confirmed": 1}}
    assert each_segment(network.records) == once_each([number])
    assert len({record.concat_reference for record in network.records}) == 1
    assert received_messages(network.records) == {number: [expected.text]}
    assert any("(1 of them before a restart)" in (e["detail"] or "") for e in events)


async def test_an_unreadable_record_fails_the_start_with_a_clear_error(
    make_simulator: SimulatorFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    simulator = make_simulator("sim0")
    table = sms_channel_table([modem_table("m0", simulator.device_path)])
    config = make_config(tmp_path, {"sms": table, "log": {"type": "log"}}, [])
    database = Database(config.server.data_dir / DATABASE_NAME)
    database.call(
        database.conn.execute,
        "INSERT INTO channel_records (channel, key, value, updated_at)"
        " VALUES ('sms', 'submission:k', '{not json', 0)",
    )
    database.close()
    caplog.set_level(logging.ERROR)
    async with running(config) as service:
        failures = {f.channel: f.error for f in service.failures}
        started = sorted(service.channels)
    assert started == ["log"]
    assert "the SMS record of channel sms cannot be read" in failures["sms"]
    assert not [r for r in caplog.records if r.exc_info]  # a message, no traceback
    assert simulator.commands_seen == []  # no modem opened


def test_the_store_error_is_a_channel_error() -> None:
    from broadcaster.errors import ChannelError

    assert issubclass(SubmissionStoreError, ChannelError)
