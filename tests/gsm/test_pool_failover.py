"""The modem pool when modems fail: one dying mid-run, stalls, garbage, lost ports, SIM faults."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from drivers.gsm import (
    GsmNoModemError,
    ModemState,
    ReportMode,
    ReportStatus,
    SmsSubmission,
    segment_count,
)
from drivers.gsm.simulator import ModemSimulatorFaults
from drivers.gsm.simulator_network import NetworkRecord, SimulatedNetwork

from .conftest import SimulatorFactory
from .pool_support import NUMBER, TEXTS, collect_final_reports, joined_texts, running_pool


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
            assert final.state is ReportStatus.DELIVERED and final.status == 0
            assert (final.modem, final.message_reference) == (
                segment.modem,
                segment.message_reference,
            )
            assert final.number == submission.number
    received = joined_texts(network.records)
    assert len(received) == 50
    for (number, _), text in received.items():
        assert text == texts[number]


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
        with pytest.raises(GsmNoModemError, match=r"no modem has been ready for 0\.3 s"):
            await pool.send(NUMBER, "nowhere to go", reference="r1")
        assert time.monotonic() - started >= 0.3
    assert network.records == []


async def test_a_burst_waits_for_one_busy_modem_longer_than_the_queue_timeout(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(cmgs_delay=0.25))
    async with running_pool([simulator], queue_timeout=1.0) as pool:
        started = time.monotonic()
        sends = [
            pool.send(f"+86138000001{i:02d}", f"burst {i}", reference=f"b{i}") for i in range(20)
        ]
        submissions = await asyncio.gather(*sends)
        took = time.monotonic() - started
    assert took > 4 * 1.0  # the last ones waited four queue timeouts for the busy modem
    assert [s.reference for s in submissions] == [f"b{i}" for i in range(20)]
    assert sorted(r.text for r in network.records) == sorted(f"burst {i}" for i in range(20))


async def test_a_message_behind_a_busy_modem_fails_at_its_deadline_saying_so(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(cmgs_delay=1.5))
    async with running_pool([simulator]) as pool:
        first = asyncio.ensure_future(pool.send(NUMBER, "first", reference="r1"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(GsmNoModemError, match=r"deadline passed.*m0 ready \(busy\)"):
            await pool.send(NUMBER, "late", reference="r2", deadline=time.time() + 0.5)
        assert 0.4 < time.monotonic() - started < 1.2
        await first
    assert [r.text for r in network.records] == ["first"]


async def test_with_no_healthy_modem_queued_messages_fail_fast_and_truly(
    make_simulator: SimulatorFactory, network: SimulatedNetwork
) -> None:
    simulator = make_simulator(faults=ModemSimulatorFaults(cmgs_delay=0.5))
    async with running_pool([simulator], queue_timeout=0.5) as pool:
        sends = [
            asyncio.ensure_future(pool.send(NUMBER, f"m{i}", reference=f"r{i}")) for i in range(5)
        ]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        simulator.kill()  # the modem is unplugged with four messages waiting behind it
        results = await asyncio.gather(*sends, return_exceptions=True)
        waited = time.monotonic() - started
        with pytest.raises(GsmNoModemError, match=r"^no modem is ready: m0 (failed|connecting) \("):
            await pool.send(NUMBER, "new", reference="new")
    errors = [str(r) for r in results if isinstance(r, GsmNoModemError)]
    assert len(errors) >= 4, results
    waited_for = r"^no modem has been ready for 0\.5 s: m0 (failed|connecting) \("
    assert all(re.match(waited_for, e) for e in errors), errors
    assert not any("m0 ready" in e for e in errors)
    assert waited < 3
