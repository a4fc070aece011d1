"""The modem pool against simulated modems on real ptys: routing, retries, reports, config."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from drivers.gsm import (
    DeliveryReport,
    GsmConfigError,
    GsmInvalidNumberError,
    GsmMessageTooLongError,
    GsmModemPool,
    GsmNetworkError,
    GsmNoModemError,
    GsmPermanentError,
    GsmPoolConfig,
    ModemState,
    ReportStatus,
    SmsEncoding,
    segment_count,
)
from drivers.gsm.simulator import ModemSimulatorFaults
from drivers.gsm.simulator_network import (
    STATUS_EXPIRED,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)

from .conftest import SimulatorFactory, fast_config
from .oracle import independent
from .pool_support import NUMBER, TEXTS, collect_final_reports, running_pool


async def test_the_least_loaded_modem_takes_the_next_message(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    slow = make_simulator("slow", faults=ModemSimulatorFaults(cmgs_delay=0.2))
    fast = make_simulator("fast")
    async with running_pool([slow, fast]) as pool:
        await asyncio.gather(*(pool.send(NUMBER, "hi", reference=f"r{i}") for i in range(8)))
        sent = {h.name: h.sent_segments for h in pool.health()}
    assert 1 <= sent["m0"] <= 2 and sent["m1"] >= 6
    assert sum(sent.values()) == len(network.records) == 8


async def test_the_rate_limit_spaces_sends_on_one_modem(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator()
    settings: dict[str, dict[str, object]] = {"m0": {"min_send_interval": 0.1}}
    async with running_pool([simulator], modem_settings=settings) as pool:
        started = time.monotonic()
        await asyncio.gather(*(pool.send(NUMBER, "x", reference=f"r{i}") for i in range(4)))
        elapsed = time.monotonic() - started
    assert elapsed >= 0.3
    assert len(network.records) == 4


async def test_transient_network_errors_are_retried_then_given_up(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(cms_errors=[331, 332]))
    async with running_pool([simulator], max_attempts=3) as pool:
        submission = await pool.send("+8613800000001", "retry me", reference="r1")
        assert [r.text for r in network.records] == ["retry me"]
        assert submission.final and submission.segments[0].modem == "m0"
        simulator.faults.cms_errors.extend([500, 500, 500])
        with pytest.raises(GsmNetworkError) as caught:
            await pool.send("+8613800000001", "give up", reference="r2")
        assert caught.value.code == 500
        assert pool.health()[0].state is ModemState.READY
    assert len(network.records) == 1


async def test_bad_input_is_rejected_before_anything_is_sent(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    async with running_pool([make_simulator()], max_segments=3) as pool:
        with pytest.raises(GsmInvalidNumberError, match="not a phone number"):
            await pool.send("call me", "hello", reference="r1")
        with pytest.raises(GsmMessageTooLongError, match="at most 3"):
            await pool.send("+8613800000001", "暴" * 300, reference="r2")
        with pytest.raises(GsmMessageTooLongError, match="at least one character"):
            await pool.send("+8613800000001", "", reference="r3")
        await pool.send("+8613800000001", "still works", reference="r4")
    assert [r.text for r in network.records] == ["still works"]


async def test_temporary_statuses_stay_pending_and_permanent_ones_fail(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    network.rules["+8613800000001"] = RecipientRule(
        RecipientBehaviour.TEMPORARY_THEN_DELIVER, temporary_reports=2
    )
    network.rules["+8613800000002"] = RecipientRule(RecipientBehaviour.FAIL)
    settings: dict[str, dict[str, object]] = {"m0": {"status_reports": True}}
    async with running_pool([make_simulator()], modem_settings=settings) as pool:
        await pool.send("+8613800000001", "later", reference="late")
        await pool.send("+8613800000002", "never", reference="lost")
        reports = await collect_final_reports(pool, {("late", 1), ("lost", 1)})
    assert [r.state for r in reports[("late", 1)]] == [
        ReportStatus.PENDING,
        ReportStatus.PENDING,
        ReportStatus.DELIVERED,
    ]
    assert [(r.state, r.status) for r in reports[("lost", 1)]] == [
        (ReportStatus.FAILED, STATUS_EXPIRED)
    ]


async def test_without_status_reports_acceptance_is_final(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator()
    async with running_pool([simulator]) as pool:
        assert not pool.status_reports
        submission = await pool.send("+8613800000001", TEXTS[1], reference="r1")
    assert submission.final and submission.encoding is SmsEncoding.UCS2
    assert len(submission.segments) == segment_count(TEXTS[1]) == 2
    assert not any(r.status_report_requested for r in network.records)
    assert "AT+CNMI=2,1,0,0,0" in simulator.commands_seen
    assert simulator.reports_sent == []


async def test_a_cancelled_send_is_not_sent(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(cmgs_delay=0.2))
    async with running_pool([simulator]) as pool:
        first = asyncio.create_task(pool.send("+8613800000001", "first", reference="r1"))
        second = asyncio.create_task(pool.send("+8613800000001", "second", reference="r2"))
        await asyncio.sleep(0)
        second.cancel()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second
        await pool.send("+8613800000001", "third", reference="r3")
    assert [r.text for r in network.records] == ["first", "third"]


async def test_report_listeners_see_every_report(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    seen: list[DeliveryReport] = []
    listener: Callable[[DeliveryReport], None] = seen.append
    settings: dict[str, dict[str, object]] = {"m0": {"status_reports": True}}
    async with running_pool([make_simulator()], modem_settings=settings) as pool:
        pool.add_report_listener(listener)
        await pool.send("+8613800000001", TEXTS[1], reference="r1")
        await collect_final_reports(pool, {("r1", 1), ("r1", 2)})
    assert sorted(r.sequence for r in seen) == [1, 2]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: GsmPoolConfig(()), "at least one modem"),
        (lambda m: GsmPoolConfig((m("a", "/dev/x"), m("a", "/dev/y"))), "duplicate"),
        (lambda m: GsmPoolConfig((m("a", "/dev/x"), m("b", "/dev/x"))), "share one port"),
        (lambda m: GsmPoolConfig((m("a", "/dev/x"),), max_attempts=0), "max_attempts"),
        (lambda m: GsmPoolConfig((m("a", "/dev/x"),), max_segments=0), "max_segments"),
    ],
)
def test_bad_pool_config_is_rejected(make: Callable[..., GsmPoolConfig], message: str) -> None:
    with pytest.raises(GsmConfigError, match=message):
        make(lambda name, port: fast_config(port, name))


def test_mixed_status_report_settings_are_rejected() -> None:
    with pytest.raises(GsmConfigError, match="status_reports"):
        GsmPoolConfig((fast_config("/dev/x", "a", status_reports=True), fast_config("/dev/y", "b")))


async def test_stopping_fails_every_unfinished_message(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(cmgs_delay=0.3))
    pool = GsmModemPool(GsmPoolConfig((fast_config(simulator.device_path),)))
    await pool.start()
    sends = [asyncio.create_task(pool.send(NUMBER, f"m{i}", reference=f"r{i}")) for i in range(3)]
    await asyncio.sleep(0)
    assert pool.queued_messages >= 2
    await pool.stop()
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert all(isinstance(r, GsmNoModemError) for r in results), results
    assert {h.state for h in pool.health()} == {ModemState.STOPPED}


async def test_higher_priority_leaves_the_queue_first(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    async with running_pool([make_simulator()]) as pool:
        await asyncio.gather(
            pool.send(NUMBER, "routine 1", reference="r1"),
            pool.send(NUMBER, "routine 2", reference="r2"),
            pool.send(NUMBER, "EMERGENCY", reference="r3", priority=10),
            pool.send(NUMBER, "routine 3", reference="r4"),
        )
    assert [r.text for r in network.records] == ["EMERGENCY", "routine 1", "routine 2", "routine 3"]


async def test_validity_can_be_set_per_message(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    async with running_pool([make_simulator()], validity=timedelta(days=1)) as pool:
        await pool.send(NUMBER, "pool default", reference="r1")
        await pool.send(NUMBER, "until expiry", reference="r2", validity=timedelta(hours=2))
        with pytest.raises(GsmPermanentError, match="at least 5 minutes"):
            await pool.send(NUMBER, "too short", reference="r3", validity=timedelta(minutes=1))
    # TP-VP relative (23.040 §9.2.3.12.1): 167 = 1 day, 23 = (23 + 1) x 5 minutes
    assert [independent(r.pdu_hex)["vp"] for r in network.records] == [167, 23]
