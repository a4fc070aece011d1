"""Each known fault of python-gsmmodem-new 0.13.0, reproduced against the simulator with the
library itself, then the same situation through our driver, handled."""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from gsmmodem.exceptions import TimeoutException
from gsmmodem.modem import GsmModem, SentSms, StatusReport

from drivers.gsm import DeliveryReport, GsmModemPool, GsmPoolConfig, ReportMode, ReportStatus
from drivers.gsm.modem import GsmModemClient
from drivers.gsm.pdu import StatusReportPdu, SubmitPdu, encode_status_report, encode_submit
from drivers.gsm.simulator import AtModemSimulator, ModemSimulatorFaults
from drivers.gsm.simulator_network import (
    STATUS_REMOTE_BUSY,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)

from .conftest import SimulatorFactory, fast_config
from .oracle import independent_text

NUMBER = "+8613800000001"
OTHER = "+8613800000002"
MOMENT = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
LONG_CHINESE = "暴雨红色预警，请立即转移。" * 14  # 182 UCS-2 units: 3 segments

RawModemFactory = Callable[..., GsmModem]


@pytest.fixture
def raw_modem() -> Iterator[RawModemFactory]:
    """python-gsmmodem-new's GsmModem, connected to a simulator; closed after the test."""
    opened: list[GsmModem] = []

    def factory(simulator: AtModemSimulator, **options: Any) -> GsmModem:
        modem = GsmModem(simulator.device_path, 115200, **options)
        modem.connect()
        opened.append(modem)
        return modem

    yield factory
    for modem in opened:
        close_library(modem)


def close_library(modem: GsmModem) -> None:
    """Let the library's per-notification threads finish their AT commands, then close."""
    for thread in threading.enumerate():
        if "ModemNotification" in thread.name:
            thread.join(timeout=5)
    modem.close()


class ReportSink:
    """Collects the library's status-report callbacks from its notification threads."""

    def __init__(self) -> None:
        self.reports: queue.Queue[StatusReport] = queue.Queue()

    def __call__(self, report: StatusReport) -> None:
        self.reports.put(report)

    def take(self, count: int) -> list[StatusReport]:
        return [self.reports.get(timeout=5) for _ in range(count)]


async def pool_reports(pool: GsmModemPool, count: int) -> list[DeliveryReport]:
    reports: list[DeliveryReport] = []
    async with asyncio.timeout(5):
        async for report in pool.reports():
            reports.append(report)
            if len(reports) == count:
                return reports
    raise AssertionError("unreachable")


def pool_for(simulator: AtModemSimulator, **settings: object) -> GsmModemPool:
    return GsmModemPool(GsmPoolConfig((fast_config(simulator.device_path, **settings),)))


async def test_fault_status_reports_always_requested_in_pdu_mode(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, raw_modem: RawModemFactory
) -> None:
    simulator = make_simulator()
    sink = ReportSink()
    library = raw_modem(simulator, requestDelivery=False, smsStatusReportCallback=sink)
    await asyncio.to_thread(library.sendSms, NUMBER, "no report wanted")
    assert network.records[-1].status_report_requested  # the fault: TP-SRR set anyway
    await asyncio.to_thread(sink.take, 1)  # and the network charges for a report
    await asyncio.to_thread(close_library, library)

    async with pool_for(simulator) as pool:
        await pool.send(NUMBER, "no report wanted", reference="r1")
    assert not network.records[-1].status_report_requested
    assert simulator.commands_seen[-1] != "AT+CNMI=2,1,0,2,0"
    assert "AT+CNMI=2,1,0,0,0" in simulator.commands_seen


async def test_fault_one_shared_report_event_races_between_senders(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, raw_modem: RawModemFactory
) -> None:
    network.report_delay = 60  # reports are released by hand below
    simulator = make_simulator()
    library = raw_modem(simulator, smsStatusReportCallback=ReportSink())
    outcome: dict[str, object] = {}

    def send(name: str, number: str, timeout: float) -> None:
        try:
            outcome[name] = library.sendSms(
                number, name, waitForDeliveryReport=True, deliveryTimeout=timeout
            )
        except TimeoutException as exc:
            outcome[name] = exc

    first = threading.Thread(target=send, args=("first", NUMBER, 2.0))
    first.start()
    await asyncio.to_thread(network.wait_for_records, 1, 5)
    second = threading.Thread(target=send, args=("second", OTHER, 10))
    second.start()
    records = await asyncio.to_thread(network.wait_for_records, 2, 5)
    # the first message's report, once the second sender waits for its own
    network.schedule(0.5, functools.partial(simulator.emit_report, records[0], 0x00))
    await asyncio.to_thread(first.join)
    await asyncio.to_thread(second.join)
    # the fault: the first report woke the second sender; the first sender timed out
    assert isinstance(outcome["first"], TimeoutException)
    assert isinstance(outcome["second"], SentSms)
    assert [r.message_reference for r in simulator.reports_sent][:1] == [0]
    await asyncio.to_thread(close_library, library)

    network.report_delay = 0
    async with pool_for(simulator, status_reports=True) as pool:
        sent = await asyncio.gather(
            pool.send(NUMBER, "first", reference="a"), pool.send(OTHER, "second", reference="b")
        )
        reports = await pool_reports(pool, 2)
    by_reference = {r.reference: r for r in reports}
    for submission in sent:
        report = by_reference[submission.reference]
        assert report.message_reference == submission.segments[0].message_reference
        assert report.number == submission.number and report.state is ReportStatus.DELIVERED


async def test_fault_only_the_last_part_is_tracked(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, raw_modem: RawModemFactory
) -> None:
    # reports come after all parts and apart: the library would interleave its AT+CMGR reads
    # with the prompt and PDU of the next part (no lock spans AT+CMGS), and mix a +CDSI that
    # arrives during an AT+CMGR into that reply (the unsolicited-line fault below)
    network.report_delay = 0.5
    simulator = make_simulator(faults=ModemSimulatorFaults(cmgs_delay=0.1))
    sink = ReportSink()
    library = raw_modem(simulator, smsStatusReportCallback=sink)
    sms = await asyncio.to_thread(library.sendSms, NUMBER, LONG_CHINESE)
    references = [r.message_reference for r in network.records]
    assert len(references) == 3
    assert sms.reference == references[-1]  # the fault: one reference for three segments
    reported = [r.reference for r in await asyncio.to_thread(sink.take, 3)]
    assert sorted(reported) == sorted(references)
    assert [r in library.sentSms for r in reported].count(True) <= 1  # parts 1, 2: unknown
    await asyncio.to_thread(close_library, library)

    async with pool_for(simulator, status_reports=True) as pool:
        submission = await pool.send(NUMBER, LONG_CHINESE, reference="long")
        reports = await pool_reports(pool, 3)
    assert len({s.message_reference for s in submission.segments}) == 3
    assert sorted((r.sequence, r.message_reference) for r in reports) == [
        (s.sequence, s.message_reference) for s in submission.segments
    ]


async def test_fault_temporary_status_counts_as_failure(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, raw_modem: RawModemFactory
) -> None:
    network.rules[NUMBER] = RecipientRule(RecipientBehaviour.TEMPORARY_THEN_DELIVER)
    network.report_delay = network.report_gap = 0.2  # after sendSms has registered the message
    simulator = make_simulator()
    seen: queue.Queue[tuple[int, int]] = queue.Queue()
    library: GsmModem | None = None

    def on_report(report: StatusReport) -> None:
        assert library is not None
        seen.put((report.deliveryStatus, library.sentSms[report.reference].status))

    library = raw_modem(simulator, smsStatusReportCallback=on_report)
    sms = await asyncio.to_thread(library.sendSms, NUMBER, "busy phone")
    first = await asyncio.to_thread(seen.get, True, 5)
    assert first == (STATUS_REMOTE_BUSY, SentSms.FAILED)  # the fault: "still trying" = failed
    await asyncio.to_thread(seen.get, True, 5)
    assert sms.status == SentSms.DELIVERED
    await asyncio.to_thread(close_library, library)

    async with pool_for(simulator, status_reports=True) as pool:
        await pool.send(NUMBER, "busy phone", reference="r1")
        reports = await pool_reports(pool, 2)
    assert [(r.state, r.final) for r in reports] == [
        (ReportStatus.PENDING, False),
        (ReportStatus.DELIVERED, True),
    ]


async def test_fault_unsolicited_line_mixed_into_the_reply(
    make_simulator: SimulatorFactory, raw_modem: RawModemFactory
) -> None:
    simulator = make_simulator()
    report = StatusReportPdu(77, NUMBER, MOMENT, MOMENT, 0x00)
    index = simulator.store_report(*encode_status_report(report))
    simulator.faults.unsolicited_after_prompt = f'+CDSI: "SR",{index}'
    library = raw_modem(simulator, smsStatusReportCallback=ReportSink())
    await asyncio.to_thread(library.sendSms, NUMBER, "hello")
    await asyncio.to_thread(library.write, "AT")
    # the fault: the +CDSI went into the +CMGS reply; the report is never read
    assert index in simulator.stored_reports
    assert f"AT+CMGR={index}" not in simulator.commands_seen
    await asyncio.to_thread(close_library, library)

    received: queue.Queue[StatusReportPdu] = queue.Queue()
    client = GsmModemClient(
        fast_config(simulator.device_path, status_reports=True),
        lambda name, got: received.put(got),
        lambda name, error: None,
    )
    try:
        await asyncio.to_thread(client.connect)
        pdu: SubmitPdu = encode_submit(NUMBER, "hello", request_status_report=True)[0]
        await asyncio.to_thread(client.send_pdu, pdu)
        assert await asyncio.to_thread(received.get, True, 5) == report
    finally:
        await asyncio.to_thread(client.close)
    assert index not in simulator.stored_reports


async def test_fault_cds_header_and_pdu_split_across_reads(
    make_simulator: SimulatorFactory, raw_modem: RawModemFactory
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(split_cds=True))
    sink = ReportSink()
    library = raw_modem(simulator, smsStatusReportCallback=sink, AT_CNMI="2,1,0,1,0")
    await asyncio.to_thread(library.sendSms, NUMBER, "split")
    await asyncio.to_thread(library.write, "AT")
    assert len(simulator.reports_sent) == 1
    with pytest.raises(queue.Empty):  # the fault: header and PDU handled apart, report lost
        await asyncio.to_thread(sink.reports.get, True, 0.5)
    await asyncio.to_thread(close_library, library)

    async with pool_for(simulator, status_reports=True, report_mode=ReportMode.DIRECT) as pool:
        submission = await pool.send(NUMBER, "split", reference="r1")
        (report,) = await pool_reports(pool, 1)
    assert report.message_reference == submission.segments[0].message_reference


async def test_fault_non_bmp_characters_raise(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, raw_modem: RawModemFactory
) -> None:
    simulator = make_simulator()
    library = raw_modem(simulator)
    with pytest.raises(ValueError):  # the fault
        await asyncio.to_thread(library.sendSms, NUMBER, "𠮷野家")
    assert network.records == []
    await asyncio.to_thread(close_library, library)

    async with pool_for(simulator) as pool:
        await pool.send(NUMBER, "𠮷野家", reference="r1")
    assert [independent_text(r.pdu_hex) for r in network.records] == ["𠮷野家"]


async def test_fault_hardware_flow_control_forced_on(
    make_simulator: SimulatorFactory, raw_modem: RawModemFactory
) -> None:
    simulator = make_simulator()
    library = raw_modem(simulator)
    assert library.serial.rtscts and library.serial.dsrdtr  # the fault: hard-coded on
    await asyncio.to_thread(close_library, library)

    client = GsmModemClient(fast_config(simulator.device_path), lambda *_: None, lambda *_: None)
    try:
        await asyncio.to_thread(client.connect)
        assert client.port_settings["rtscts"] is False
        assert client.port_settings["dsrdtr"] is False
    finally:
        await asyncio.to_thread(client.close)
