"""The SMS channel through the real core service, against AT-modem simulators on real ptys.

Every PDU the simulated network received is read back by smspdudecoder (``oracle``) and must
be the rendered SMS exactly: GSM-7, Chinese UCS-2 and text with 𠮷 (a surrogate pair).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from broadcaster.cap import Alert, Status
from broadcaster.service import BroadcasterService
from channels.sms import SmsChannel
from drivers.gsm.simulator import ModemSimulatorFaults
from drivers.gsm.simulator_network import (
    STATUS_EXPIRED,
    NetworkRecord,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)
from tests.core.support import COUNTY, make_alert, make_config, running, wait_until_complete

from .conftest import SimulatorFactory, modem_table, sms_channel_table
from .oracle import encodings, received_messages

SIGNATURE = "【乌兰察布市应急管理局】"
LONG_DESCRIPTION = (
    "受强冷空气影响，预计今天夜间到明天白天卓资县大部地区将出现暴雪，局地大暴雪，"
    "降雪量10至15毫米，积雪深度8至12厘米，并伴有6至8级偏北风，阵风可达9级，"
    "气温下降8至10摄氏度。请牧区做好牲畜转移和棚圈加固工作，"
    "交通、电力、通信等部门做好应急准备，学校和幼儿园视情况停课。"
    "气象台将根据天气变化及时发布更新信息。"
    "请广大群众关注后续预警信息，储备必要的食物、饮用水和取暖物资，远离危旧房屋和广告牌。"
)


def group(group_id: str, numbers: list[str], **extra: Any) -> dict[str, Any]:
    """A registry group in the county, one township per group."""
    return {
        "id": group_id,
        "channel": "sms",
        "name": f"{group_id}村级信息员",
        "division": f"{COUNTY[:6]}001000",
        "lat": 40.894,
        "lon": 112.577,
        "address": ",".join(numbers),
    } | extra


def numbers(start: int, count: int) -> list[str]:
    return [f"+86100{n:08d}" for n in range(start, start + count)]


def sms_channel(service: BroadcasterService) -> SmsChannel:
    channel = service.channels["sms"]
    assert isinstance(channel, SmsChannel)
    return channel


async def deliveries(service: BroadcasterService, alert_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await service.database.run(service.outbox.deliveries, alert_id)
    return rows


async def wait_for_states(
    service: BroadcasterService, alert_id: str, states: set[str], timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Wait until every delivery of the alert is in one of ``states``."""
    changed = asyncio.Event()
    unsubscribe = service.subscribe(changed.set)
    try:
        async with asyncio.timeout(timeout):
            while True:
                rows = await deliveries(service, alert_id)
                if rows and all(r["state"] in states for r in rows):
                    return rows
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await changed.wait()
    finally:
        unsubscribe()


def bilingual_alert(identifier: str, description: str = LONG_DESCRIPTION, **kw: Any) -> Alert:
    """A make_alert alert with a long Chinese description and an English <info> as well."""
    alert = make_alert(identifier, **kw)
    zh = dataclasses.replace(alert.infos[0], description=description)
    en = dataclasses.replace(
        zh,
        language="en",
        headline="Blizzard warning for Zhuozi County",
        description="Heavy snow of 10 to 15 mm expected tonight, north wind force 6 to 8.",
        instruction="Stay indoors; herders bring livestock into shelter. Hotline 12379 [24h].",
        sender_name="Ulanqab Meteorological Observatory",
    )
    return dataclasses.replace(alert, infos=[zh, en])


async def test_fifty_recipients_three_modems_one_dies_all_confirmed_per_segment(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulators = [
        make_simulator(f"sim{i}", ModemSimulatorFaults(cmgs_delay=0.005)) for i in range(3)
    ]
    dying = simulators[1]

    def kill_mid_run(record: NetworkRecord) -> None:
        if record.modem == "sim1" and sum(r.modem == "sim1" for r in network.records) == 6:
            dying.faults.close_on_send = True

    network.listeners.append(kill_mid_run)
    modems = [
        modem_table("m0", simulators[0].device_path),
        modem_table("m1", simulators[1].device_path, report_mode="direct"),
        modem_table("m2", simulators[2].device_path),
    ]
    groups = [group(f"town{g}", numbers(g * 10, 10)) for g in range(5)]
    config = make_config(tmp_path, {"sms": sms_channel_table(modems, concurrency=12)}, groups)
    async with running(config) as service:
        alert = bilingual_alert("sms-fifty", status=Status.EXERCISE)
        result = await service.submit(alert, origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        rows = await deliveries(service, result.alert_id)
        events = {
            row["id"]: await service.database.run(service.outbox.events, row["id"]) for row in rows
        }
        health = await sms_channel(service).health()
        expected = sms_channel(service).render(
            await service.dispatcher.message(result.alert_id), ("zh-CN",)
        )

    assert summary == {"sms": {"confirmed": 50}}
    assert all(len(row["provider_ref"].split(",")) == 3 for row in rows)  # modem:TP-MR each
    assert sorted(row["part"] for row in rows if row["target_id"] == "town0") == list(range(1, 11))
    assert expected.segments == 3 and expected.text.startswith(f"{SIGNATURE}【演练】")
    assert expected.notes and expected.notes[0].startswith("description shortened")
    received = received_messages(network.records)
    assert set(received) == {n for g in range(5) for n in numbers(g * 10, 10)}
    assert all(texts and set(texts) == {expected.text} for texts in received.values())
    assert all(found == {"ucs2"} for found in encodings(network.records).values())
    assert health.devices["m1"]["state"] != "ready" and health.devices["m1"]["failures"] >= 1
    assert "2 of 3 modems ready" in health.detail
    assert health.devices["m0"]["sent_segments"] > 0 and health.devices["m2"]["sent_segments"] > 0
    # confirmed by the reports of every segment, each matched to its own part
    for row in rows:
        confirmed = [e for e in events[row["id"]] if e["to_state"] == "confirmed"]
        assert (
            confirmed and confirmed[-1]["detail"] == "all 3 segment(s) delivered (status reports)"
        )
    delivered = {
        (sim.config.name, report.message_reference)
        for sim in simulators
        for report in sim.reports_sent
        if report.status == 0
    }
    assert {(r.modem, r.message_reference) for r in network.records} <= delivered


async def test_gsm7_ucs2_and_surrogate_pairs_arrive_exactly_as_rendered(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    description = "𠮷" * 3 + LONG_DESCRIPTION[:60] + "𠮷" + LONG_DESCRIPTION[60:]
    groups = [
        group("zh", numbers(0, 2)),
        group("en", numbers(100, 2), languages=["en"]),
    ]
    modems = [modem_table("m0", simulator.device_path)]
    config = make_config(tmp_path, {"sms": sms_channel_table(modems)}, groups)
    async with running(config) as service:
        alert = bilingual_alert("sms-codings", description=description)
        result = await service.submit(alert, origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        message = await service.dispatcher.message(result.alert_id)
        chinese = sms_channel(service).render(message, ("zh-CN",))
        english = sms_channel(service).render(message, ("en",))

    assert summary == {"sms": {"confirmed": 4}}
    assert "𠮷" in chinese.text and chinese.segments == 3
    assert (
        english.encoding.name == "GSM7"
        and english.segments == 2
        and english.text.startswith("Ulanqab EMB: Blizzard warning")
    )
    received = received_messages(network.records)
    codings = encodings(network.records)
    for number in numbers(0, 2):
        assert received[number] == [chinese.text] and codings[number] == {"ucs2"}
    for number in numbers(100, 2):
        assert received[number] == [english.text] and codings[number] == {"gsm"}


async def test_a_bilingual_group_gets_each_language_the_alert_has_once_per_number(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0", ModemSimulatorFaults(cmgs_delay=0.005))
    both, chinese_only = numbers(0, 2), numbers(0, 1) + numbers(200, 1)
    groups = [
        group("herders", both, languages=["zh-CN", "en"]),
        # The first number is in both groups: its Chinese SMS is not sent twice.
        group("officials", chinese_only),
    ]
    modems = [modem_table("m0", simulator.device_path)]
    config = make_config(tmp_path, {"sms": sms_channel_table(modems)}, groups)
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-bilingual"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        rows = await deliveries(service, result.alert_id)
        message = await service.dispatcher.message(result.alert_id)
        chinese = sms_channel(service).render(message, ("zh-CN",))
        english = sms_channel(service).render(message, ("en",))
        chinese_only_alert = await service.submit(make_alert("sms-zh-only"), origin="test")
        only = await wait_until_complete(service, chinese_only_alert.alert_id, timeout=30)

    assert summary == {"sms": {"confirmed": 5}}
    assert sorted(r["part"] for r in rows if r["target_id"] == "herders") == [1, 2, 10001, 10002]
    received = received_messages(network.records)
    for number in both:
        texts = [t for t in received[number] if t in (chinese.text, english.text)]
        assert sorted(texts) == sorted([chinese.text, english.text])
    assert [t for t in received[numbers(200, 1)[0]] if t == chinese.text] == [chinese.text]
    # An alert in Chinese alone: one SMS per number, in Chinese.
    assert only == {"sms": {"confirmed": 3}}


async def test_temporary_reports_stay_pending_and_permanent_ones_fail(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    busy, gone, fine = numbers(0, 3)
    network.report_delay = network.report_gap = 0.1  # reports follow the accepted send
    network.rules[busy] = RecipientRule(RecipientBehaviour.TEMPORARY_THEN_DELIVER, 2)
    network.rules[gone] = RecipientRule(RecipientBehaviour.FAIL, failure_status=STATUS_EXPIRED)
    modems = [modem_table("m0", simulator.device_path)]
    config = make_config(
        tmp_path, {"sms": sms_channel_table(modems)}, [group("t", [busy, gone, fine])]
    )
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-reports"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        rows = {row["part"]: row for row in await deliveries(service, result.alert_id)}
        busy_events = await service.database.run(service.outbox.events, rows[1]["id"])

    assert summary == {"sms": {"confirmed": 2, "failed": 1}}
    assert rows[3]["state"] == "confirmed" and rows[1]["state"] == "confirmed"
    assert "TP-ST 0x46 (validity period expired)" in rows[2]["last_error"]
    progress = [e["detail"] for e in busy_events if e["from_state"] == e["to_state"] == "accepted"]
    assert any("TP-ST 0x21 (recipient busy), the network keeps trying" in d for d in progress)


async def test_invalid_number_and_empty_group_fail_clearly_and_the_rest_is_sent(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    good = numbers(0, 2)
    groups = [
        group("mixed", [good[0], "12ab", good[1]]),
        group("empty", [" ", ""], address=" , "),
    ]
    modems = [modem_table("m0", simulator.device_path)]
    config = make_config(tmp_path, {"sms": sms_channel_table(modems)}, groups)
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-bad"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        rows = {(r["target_id"], r["part"]): r for r in await deliveries(service, result.alert_id)}

    assert summary == {"sms": {"confirmed": 2, "failed": 2}}
    assert "entry 2: '12ab' is not a phone number" in rows[("mixed", 2)]["last_error"]
    assert "nothing sent" in rows[("mixed", 2)]["last_error"]
    assert (
        rows[("empty", 0)]["last_error"]
        == "group empty (empty村级信息员) has no numbers; nothing sent"
    )
    assert set(received_messages(network.records)) == set(good)


async def test_garbage_and_silent_modems_leave_the_healthy_one_to_carry_on(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    garbage = make_simulator("garbage", ModemSimulatorFaults(garbage=True))
    silent = make_simulator("silent", ModemSimulatorFaults(stall=True))
    healthy = make_simulator("healthy")
    modems = [
        modem_table("bad", garbage.device_path),
        modem_table("mute", silent.device_path),
        modem_table("good", healthy.device_path),
    ]
    config = make_config(tmp_path, {"sms": sms_channel_table(modems)}, [group("t", numbers(0, 6))])
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-faulty"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        health = await sms_channel(service).health()

    assert summary == {"sms": {"confirmed": 6}}
    assert {r.modem for r in network.records} == {"healthy"}
    assert health.ok and "1 of 3 modems ready" in health.detail
    assert "garbage" in health.devices["bad"]["last_error"]
    assert health.devices["bad"]["state"] != "ready" and health.devices["mute"]["state"] != "ready"
    assert (
        "timeout" in health.devices["mute"]["last_error"].lower()
        or "answer" in (health.devices["mute"]["last_error"])
    )


async def test_without_working_modems_deliveries_are_retried_and_other_channels_go_on(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    garbage = make_simulator("garbage", ModemSimulatorFaults(garbage=True))
    channels = {
        "sms": sms_channel_table([modem_table("bad", garbage.device_path)]),
        "log": {"type": "log"},
    }
    targets = [
        group("t", numbers(0, 2)),
        {"id": "log-1", "channel": "log", "name": "log", "division": COUNTY},
    ]
    config = make_config(tmp_path, channels, targets)
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-no-modem"), origin="test")
        rows = await wait_for_states(service, result.alert_id, {"queued", "confirmed"})
        while not all(r["last_error"] for r in rows if r["channel"] == "sms"):
            rows = await wait_for_states(service, result.alert_id, {"queued", "confirmed"})
        health = await sms_channel(service).health()

    states = {(r["channel"], r["state"]) for r in rows}
    assert states == {("sms", "queued"), ("log", "confirmed")}
    assert all("no modem is ready" in r["last_error"] for r in rows if r["channel"] == "sms")
    assert not health.ok and "0 of 1 modems ready" in health.detail


async def test_transient_network_errors_are_retried_until_delivered(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0", ModemSimulatorFaults(cms_errors=[331, 332, 331, 500]))
    table = sms_channel_table([modem_table("m0", simulator.device_path)], max_attempts=2)
    config = make_config(tmp_path, {"sms": table}, [group("t", numbers(0, 1))])
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-transient"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        [row] = await deliveries(service, result.alert_id)
        events = await service.database.run(service.outbox.events, row["id"])

    assert summary == {"sms": {"confirmed": 1}} and row["attempts"] == 3
    retried = [
        e["detail"] for e in events if (e["from_state"], e["to_state"]) == ("sending", "queued")
    ]
    assert "+CMS ERROR: 332 (network timeout)" in retried[0]
    assert "+CMS ERROR: 500 (unknown error)" in retried[1]
    assert simulator.faults.cms_errors == []
    assert list(received_messages(network.records)) == numbers(0, 1)


async def test_a_modem_that_stops_answering_mid_run_hands_its_message_over(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    stalling, healthy = make_simulator("stalling"), make_simulator("healthy")

    def stall_after_two(record: NetworkRecord) -> None:
        if record.modem == "stalling" and sum(r.modem == "stalling" for r in network.records) == 2:
            stalling.faults.stall = True

    network.listeners.append(stall_after_two)
    modems = [
        modem_table("a", stalling.device_path, send_timeout_seconds=1.0),
        modem_table("b", healthy.device_path),
    ]
    config = make_config(
        tmp_path, {"sms": sms_channel_table(modems, concurrency=4)}, [group("t", numbers(0, 8))]
    )
    async with running(config) as service:
        result = await service.submit(bilingual_alert("sms-stall"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        health = await sms_channel(service).health()

    assert summary == {"sms": {"confirmed": 8}}
    assert stalling.faults.stall and health.devices["a"]["state"] != "ready"
    assert health.devices["a"]["failures"] >= 1 and health.devices["a"]["last_error"]
    received = received_messages(network.records)
    assert set(received) == set(numbers(0, 8))
