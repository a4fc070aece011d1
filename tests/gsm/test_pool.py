"""The modem pool against simulated modems on real ptys: routing, failover, retries, reports."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from drivers.gsm import (
    DeliveryReport,
    DeliveryState,
    GsmConfigError,
    GsmInvalidNumberError,
    GsmMessageTooLongError,
    GsmModemPool,
    GsmNetworkError,
    GsmNoModemError,
    GsmPermanentError,
    GsmPoolConfig,
    ModemState,
    ReportMode,
    SmsEncoding,
    SmsSubmission,
    segment_count,
)
from drivers.gsm.simulator import AtModemSimulator, ModemSimulatorFaults
from drivers.gsm.simulator_network import (
    STATUS_EXPIRED,
    NetworkRecord,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)

from .conftest import SimulatorFactory, fast_config
from .oracle import independent, independent_text

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


async def test_fifty_recipients_three_modems_one_dies_all_delivered_per_segment(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    # Reports follow +CMGS at once, so the modem that dies has confirmed what it accepted:
    # a real modem's lost port takes its unread reports with it.
    simulators = [
        make_simulator(f"sim{i}", faults=ModemSimulatorFaults(cmgs_delay=0.005)) for i in range(3)
    ]
    dying = simulators[1]

    def kill_mid_run(record: NetworkRecord) -> None:
        if record.modem == "sim1" and sum(r.modem == "sim1" for r in network.records) == 4:
            dying.faults.close_on_send = True

    network.listeners.append(kill_mid_run)
    numbers = [f"+86138{i:08d}" for i in range(50)]
    texts = {number: TEXTS[i % 3] for i, number in enumerate(numbers)}
    settings: dict[str, dict[str, object]] = {
        "m0": {"status_reports": True},
        "m1": {"status_reports": True, "report_mode": ReportMode.DIRECT},
        "m2": {"status_reports": True},
    }
    async with running_pool(simulators, modem_settings=settings) as pool:
        submissions: list[SmsSubmission] = await asyncio.gather(
            *(pool.send(n, texts[n], reference=f"alert-1/{n}") for n in numbers)
        )
        expected = {(s.reference, seg.sequence) for s in submissions for seg in s.segments}
        reports = await collect_final_reports(pool, expected)
        health = {h.name: h for h in pool.health()}

    assert health["m1"].state is not ModemState.READY and health["m1"].failures >= 1
    assert health["m0"].sent_segments > 0 and health["m2"].sent_segments > 0
    assert sum(r.modem == "sim1" for r in network.records) == 4
    assert len(expected) == sum(segment_count(texts[n]) for n in numbers)
    for submission in submissions:
        assert [seg.sequence for seg in submission.segments] == list(
            range(1, len(submission.segments) + 1)
        )
        for segment in submission.segments:
            final = reports[(submission.reference, segment.sequence)][-1]
            assert final.state is DeliveryState.DELIVERED and final.status == 0
            assert (final.modem, final.message_reference) == (
                segment.modem,
                segment.message_reference,
            )
            assert final.number == submission.number
    received = joined_texts(network.records)
    assert len(received) == 50
    for (number, _), text in received.items():
        assert text == texts[number]


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
        DeliveryState.PENDING,
        DeliveryState.PENDING,
        DeliveryState.DELIVERED,
    ]
    assert [(r.state, r.status) for r in reports[("lost", 1)]] == [
        (DeliveryState.FAILED, STATUS_EXPIRED)
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


async def test_a_garbage_modem_is_failed_and_the_others_carry_on(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    garbage = make_simulator("bad", faults=ModemSimulatorFaults(garbage=True))
    good = make_simulator("good")
    settings: dict[str, dict[str, object]] = {"m0": {"command_timeout": 0.1}}
    async with running_pool([garbage, good], modem_settings=settings) as pool:
        bad_health = pool.health()[0]
        assert bad_health.state is not ModemState.READY
        assert "garbage" in (bad_health.last_error or "")
        for i in range(3):
            submission = await pool.send("+8613800000001", f"m{i}", reference=f"r{i}")
            assert submission.segments[0].modem == "m1"
    assert len(network.records) == 3


async def test_a_stalled_modem_fails_over_to_the_others(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    stalling = make_simulator("stall")
    healthy = make_simulator("ok")
    settings: dict[str, dict[str, object]] = {"m0": {"prompt_timeout": 0.1, "command_timeout": 0.1}}
    async with running_pool([stalling, healthy], modem_settings=settings) as pool:
        stalling.faults.stall = True
        results = await asyncio.gather(
            *(pool.send("+8613800000001", f"t{i}", reference=f"r{i}") for i in range(6))
        )
        assert {s.segments[0].modem for s in results} == {"m1"}
        assert pool.health()[0].state is not ModemState.READY
        assert "no answer" in (pool.health()[0].last_error or "")
    assert sorted(r.text for r in network.records) == [f"t{i}" for i in range(6)]


async def test_a_modem_reconnects_after_its_port_comes_back(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    first = make_simulator("usb0")
    async with running_pool([first]) as pool:
        await pool.send("+8613800000001", "before", reference="r1")
        first.kill()
        async with asyncio.timeout(5):
            await pool.wait_for_state("m0", ModemState.FAILED)
        with pytest.raises(GsmNoModemError, match="no modem is ready"):
            await pool.send("+8613800000001", "while gone", reference="r2")
        make_simulator("usb0")  # same stable link path, new pty
        async with asyncio.timeout(5):
            await pool.wait_for_state("m0", ModemState.READY)
        await pool.send("+8613800000001", "after", reference="r3")
    assert [r.text for r in network.records] == ["before", "after"]
    assert [r.modem for r in network.records] == ["usb0", "usb0"]


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


async def test_health_polls_follow_registration(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(rssi=17)
    settings: dict[str, dict[str, object]] = {"m0": {"health_interval": 0.05}}
    async with running_pool([simulator], modem_settings=settings) as pool:
        assert pool.health()[0].rssi == 17 and pool.health()[0].registered
        simulator.registration = 0
        async with asyncio.timeout(5):
            await pool.wait_for_state("m0", ModemState.NO_SERVICE)
        with pytest.raises(GsmNoModemError, match="no modem is ready"):
            await pool.send(NUMBER, "nobody home", reference="r1")
        simulator.registration = 5
        async with asyncio.timeout(5):
            await pool.wait_for_state("m0", ModemState.READY)
        await pool.send(NUMBER, "roaming", reference="r2")
    assert [r.text for r in network.records] == ["roaming"]


async def test_a_modem_turning_to_garbage_mid_run_fails_over(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    turning = make_simulator("turning")
    steady = make_simulator("steady")
    settings: dict[str, dict[str, object]] = {"m0": {"prompt_timeout": 0.2}}
    async with running_pool([turning, steady], modem_settings=settings) as pool:
        turning.faults.garbage = True
        results = await asyncio.gather(
            *(pool.send(NUMBER, f"g{i}", reference=f"r{i}") for i in range(4))
        )
        assert {s.segments[0].modem for s in results} == {"m1"}
        assert pool.health()[0].state is not ModemState.READY
        assert "garbage" in (pool.health()[0].last_error or "")
    assert sorted(r.text for r in network.records) == [f"g{i}" for i in range(4)]


async def test_a_wrong_sim_pin_is_tried_once_and_never_again(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    locked = make_simulator("locked", pin="1234")
    good = make_simulator("good")
    settings: dict[str, dict[str, object]] = {"m0": {"pin": "9999"}}
    async with running_pool([locked, good], modem_settings=settings) as pool:
        await pool.send(NUMBER, "via the good one", reference="r1")
        await pool.send(NUMBER, "again", reference="r2")
        health = pool.health()[0]
    assert health.state is ModemState.FAILED and "refused the PIN" in (health.last_error or "")
    assert locked.commands_seen.count('AT+CPIN="9999"') == 1
    assert [r.modem for r in network.records] == ["good", "good"]


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


async def test_a_multipart_message_moves_whole_to_another_modem(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulators = {name: make_simulator(name) for name in ("sim0", "sim1")}

    def first_taker_dies_after_part_one(record: NetworkRecord) -> None:
        if len(network.records) == 1:
            simulators[record.modem].faults.close_on_send = True

    network.listeners.append(first_taker_dies_after_part_one)
    settings = {name: {"status_reports": True} for name in ("m0", "m1")}
    async with running_pool(list(simulators.values()), modem_settings=settings) as pool:
        submission = await pool.send(NUMBER, TEXTS[1] + TEXTS[1], reference="long")
        expected = {("long", s.sequence) for s in submission.segments}
        reports = await collect_final_reports(pool, expected)
    dead, *rest = network.records
    survivor = "sim1" if dead.modem == "sim0" else "sim0"
    assert dead.sequence == 1
    assert [(r.modem, r.sequence) for r in rest] == [(survivor, 1), (survivor, 2), (survivor, 3)]
    assert joined_texts(rest) == {(NUMBER, rest[0].concat_reference): TEXTS[1] * 2}
    assert {s.modem for s in submission.segments} == {"m" + survivor[-1]}
    for segment in submission.segments:
        final = reports[("long", segment.sequence)][-1]
        assert (final.modem, final.message_reference) == (segment.modem, segment.message_reference)


async def test_a_sim_without_service_centre_backs_off_and_the_message_waits(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(cms_errors=[330]))
    async with running_pool([simulator]) as pool:
        submission = await pool.send(NUMBER, "after a reconnect", reference="r1")
        health = pool.health()[0]
    assert submission.segments[0].modem == "m0"
    assert health.failures == 1 and "330" in (health.last_error or "")
    assert [r.text for r in network.records] == ["after a reconnect"]


async def test_a_message_waits_for_a_modem_only_up_to_the_queue_timeout(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(close_on_send=True))
    async with running_pool([simulator], queue_timeout=0.3) as pool:
        started = time.monotonic()
        with pytest.raises(GsmNoModemError, match=r"within 0\.3 s"):
            await pool.send(NUMBER, "nowhere to go", reference="r1")
        assert time.monotonic() - started >= 0.3
    assert network.records == []
