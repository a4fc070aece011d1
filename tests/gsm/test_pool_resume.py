"""The pool across a restart of its owner: segments handed out one by one as they are accepted,
a message resumed with only its missing segments, and reports for segments of an earlier pool
matched, including those the modem stored while no pool listened."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from drivers.gsm import (
    DeliveryReport,
    GsmPermanentError,
    ReportStatus,
    SegmentSubmission,
    SmsResume,
)
from drivers.gsm.simulator import ModemSimulatorFaults
from drivers.gsm.simulator_network import NetworkRecord, SimulatedNetwork

from .conftest import SimulatorFactory
from .pool_support import NUMBER, TEXTS, collect_final_reports, joined_texts, running_pool

REPORTING: dict[str, dict[str, object]] = {
    "m0": {"status_reports": True},
    "m1": {"status_reports": True},
}
CHINESE = TEXTS[1] * 2  # 172 characters: three UCS-2 segments


def per_segment(records: list[NetworkRecord]) -> Counter[tuple[str, int | None, int]]:
    return Counter((r.number, r.concat_reference, r.sequence) for r in records)


async def test_a_message_cut_after_its_first_segment_is_completed_with_the_same_reference(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator("sim0")
    recorded: list[SegmentSubmission] = []

    async def record(segment: SegmentSubmission) -> None:
        recorded.append(segment)

    def reject_the_second(record: NetworkRecord) -> None:
        if len(network.records) == 1:
            simulator.faults.cms_errors.append(304)  # the next segment is refused for good

    network.listeners.append(reject_the_second)
    async with running_pool([simulator]) as pool:
        with pytest.raises(GsmPermanentError):
            await pool.send(NUMBER, CHINESE, reference="a/1", on_segment=record)
    assert [s.sequence for s in recorded] == [1] and recorded[0].concat_reference is not None
    assert len(network.records) == 1

    async with running_pool([simulator]) as pool:  # a new pool, as after a restart
        resumed = SmsResume(recorded[0].concat_reference, tuple(recorded))
        submission = await pool.send(
            NUMBER, CHINESE, reference="a/1", resume=resumed, on_segment=record
        )

    assert [s.sequence for s in recorded] == [1, 2, 3]
    assert submission.segments == tuple(recorded)
    assert {s.concat_reference for s in recorded} == {recorded[0].concat_reference}
    assert per_segment(network.records) == Counter(
        {(NUMBER, recorded[0].concat_reference, n): 1 for n in (1, 2, 3)}
    )
    assert joined_texts(network.records) == {(NUMBER, recorded[0].concat_reference): CHINESE}


async def test_a_resumed_message_goes_through_its_earlier_modem_while_that_one_is_ready(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    first, second = make_simulator("sim0"), make_simulator("sim1")
    numbers = [f"+86138000000{n:02d}" for n in range(6)]
    earlier = [
        SmsResume(n, (SegmentSubmission(1, 3, "m1", 200 + n, n),)) for n in range(len(numbers))
    ]
    async with running_pool([first, second]) as pool:
        await asyncio.gather(
            *(
                pool.send(number, CHINESE, reference=f"r{n}", resume=earlier[n])
                for n, number in enumerate(numbers)
            )
        )
        sent = {h.name: h.sent_segments for h in pool.health()}
    assert sent == {"m0": 0, "m1": 12}
    assert sorted(per_segment(network.records)) == sorted(
        (number, n, sequence) for n, number in enumerate(numbers) for sequence in (2, 3)
    )


async def test_a_resumed_message_whose_modem_is_gone_is_sent_whole_elsewhere(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator("sim0")
    earlier = SmsResume(77, (SegmentSubmission(1, 3, "unplugged", 5, 77),))
    async with running_pool([simulator]) as pool:
        submission = await pool.send(NUMBER, CHINESE, reference="r", resume=earlier)
    assert [(s.modem, s.sequence) for s in submission.segments] == [("m0", 1), ("m0", 2), ("m0", 3)]
    assert joined_texts(network.records) == {(NUMBER, 77): CHINESE}


async def test_segments_that_do_not_fit_the_text_are_refused(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator("sim0")
    wrong = SmsResume(3, (SegmentSubmission(1, 2, "m0", 9, 3),))  # a two-part message
    async with running_pool([simulator]) as pool:
        with pytest.raises(GsmPermanentError, match="do not fit a 3-part SMS"):
            await pool.send(NUMBER, CHINESE, reference="r", resume=wrong)
    assert network.records == []


async def test_reports_stored_by_the_modem_while_no_pool_ran_reach_a_watching_pool(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator("sim0")
    network.report_delay = 3600  # no report while the first pool runs
    async with running_pool([simulator], modem_settings=REPORTING) as pool:
        # stored reports are read during the next connect: start() returns once each was
        # handed on and deleted, the unwatched one too
        other = await pool.send("+8613800000099", "unwatched", reference="x/1")
        submission = await pool.send(NUMBER, CHINESE, reference="d/1")
    for record in network.records:  # the network answers while nobody listens: the modem keeps them
        simulator.emit_report(record, 0x00)
    assert len(simulator.stored_reports) == 4

    async with running_pool([simulator], modem_settings=REPORTING) as pool:
        pool.watch("d/1", NUMBER, submission.segments)
        seen = await collect_final_reports(pool, {("d/1", n) for n in (1, 2, 3)})

    assert all(reports[-1].state is ReportStatus.DELIVERED for reports in seen.values())
    assert {(r.modem, r.message_reference) for reports in seen.values() for r in reports} == {
        (s.modem, s.message_reference) for s in submission.segments
    }
    assert ("x/1", 1) not in seen and other.segments[0].modem == "m0"
    assert simulator.stored_reports == {}  # read and deleted at connect


async def test_a_stored_report_leaves_the_modem_only_after_its_listener_finished(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator("sim0")
    network.report_delay = 0.05
    recorded = asyncio.Event()
    release = asyncio.Event()
    held: list[DeliveryReport] = []

    async def record_slowly(report: DeliveryReport) -> None:
        held.append(report)
        recorded.set()
        await release.wait()  # a slow disk: the report is not on it yet

    async with running_pool([simulator], modem_settings=REPORTING) as pool:
        pool.add_report_listener(record_slowly)
        submission = await pool.send(NUMBER, "one", reference="d/1")
        async with asyncio.timeout(5):
            await recorded.wait()
        assert len(simulator.stored_reports) == 1  # a crash now would leave it on the modem
        release.set()
        async with asyncio.timeout(5):
            while simulator.stored_reports:
                await asyncio.sleep(0.01)
    assert [r.message_reference for r in held] == [submission.segments[0].message_reference]


async def test_a_failing_segment_callback_does_not_stop_the_message(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator("sim0", faults=ModemSimulatorFaults())
    calls: list[int] = []

    async def broken(segment: SegmentSubmission) -> None:
        calls.append(segment.sequence)
        raise OSError("disk full")

    async with running_pool([simulator]) as pool:
        submission = await pool.send(NUMBER, CHINESE, reference="r", on_segment=broken)
    assert calls == [1, 2, 3] and len(submission.segments) == 3
