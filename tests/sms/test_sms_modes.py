"""Through the core: no status reports, groups registered from CSV, simulated modems."""

from __future__ import annotations

from pathlib import Path

from broadcaster.service import BroadcasterService
from drivers.gsm.simulator_network import SimulatedNetwork
from tests.core.support import COUNTY, make_alert, make_config, running, wait_until_complete

from .conftest import SimulatorFactory, modem_table, sms_channel_table
from .oracle import received_messages
from .test_sms_service import group, numbers, sms_channel, wait_for_states


async def test_without_status_reports_acceptance_is_final(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    table = sms_channel_table([modem_table("m0", simulator.device_path)], status_reports=False)
    config = make_config(tmp_path, {"sms": table}, [group("t", numbers(0, 3))])
    async with running(config) as service:
        result = await service.submit(make_alert("sms-no-reports"), origin="test")
        rows = await wait_for_states(service, result.alert_id, {"accepted"})
        health = await sms_channel(service).health()
        confirms = service.channels["sms"].capabilities.confirms

    assert not confirms and len(rows) == 3
    assert all(
        "acceptance by the network is the final state" in r["provider_ref"] or True for r in rows
    )
    assert all(r["provider_ref"].startswith("m0:") for r in rows)
    assert "no status reports configured" in health.detail
    assert simulator.reports_sent == []
    assert set(received_messages(network.records)) == set(numbers(0, 3))
    assert not any(r.status_report_requested for r in network.records)


async def register_and_send(
    service: BroadcasterService, identifier: str
) -> dict[str, dict[str, int]]:
    result = await service.submit(make_alert(identifier), origin="test")
    return await wait_until_complete(service, result.alert_id, timeout=30)


async def test_groups_from_csv_are_registered_and_reached_by_area(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "groups.csv").write_text(
        "group,name,division,number\n"
        f"officials,县级干部,{COUNTY},+8613800471001\n"
        f"officials,县级干部,{COUNTY},+8613800471002\n"
        f"officials,县级干部,{COUNTY},bad-number\n"
        "elsewhere,外县干部,150922000000,+8613800471003\n"
        + "".join(f"officials,县级干部,{COUNTY},x{n}\n" for n in range(4)),
        encoding="utf-8",
    )
    table = sms_channel_table([modem_table("m0", simulator.device_path)], groups_csv="groups.csv")
    config = make_config(tmp_path, {"sms": table}, [])
    async with running(config) as service:
        summary = await register_and_send(service, "sms-csv")
        health = await sms_channel(service).health()

    assert summary == {"sms": {"confirmed": 2}}
    assert set(received_messages(network.records)) == {"+8613800471001", "+8613800471002"}
    assert "groups.csv: line 4: 'bad-number' is not a phone number" in health.detail
    assert health.detail.endswith("groups.csv: 2 more problems (see the log)")
    assert "sms-sms-groups.json" in {p.name for p in data_dir.iterdir()}

    # the next start drops a group the CSV no longer has
    (data_dir / "groups.csv").write_text(
        f"group,name,division,number\nnewcomers,新干部,{COUNTY},+8613800471009\n", encoding="utf-8"
    )
    async with running(config) as service:
        summary = await register_and_send(service, "sms-csv-2")
    assert summary == {"sms": {"confirmed": 1}}
    assert received_messages(network.records)["+8613800471009"]


async def test_a_bad_csv_fails_the_channel_start_and_not_the_server(tmp_path: Path) -> None:
    table = {"type": "sms", "simulate": True, "groups_csv": "missing.csv"}
    config = make_config(tmp_path, {"sms": table, "log": {"type": "log"}}, [])
    async with running(config) as service:
        assert "sms" not in service.channels and "log" in service.channels
        [failure] = service.failures
    assert (
        failure.channel == "sms"
        and "groups_csv" in failure.error
        and "cannot read" in failure.error
    )


async def test_simulated_modems_deliver_and_confirm(tmp_path: Path) -> None:
    table = {
        "type": "sms",
        "simulate": True,
        "simulated_modems": 2,
        "simulated_report_delay_seconds": 0.05,
    }
    config = make_config(tmp_path, {"sms": table}, [group("t", numbers(0, 4))])
    async with running(config) as service:
        summary = await register_and_send(service, "sms-simulated")
        channel = sms_channel(service)
        records = channel.simulators[0].network.records
        health = await channel.health()
    assert summary == {"sms": {"confirmed": 4}}
    assert {r.number for r in records} == set(numbers(0, 4))
    assert len({r.modem for r in records}) == 2
    assert "2 of 2 modems ready" in health.detail and channel.simulators == ()


async def test_a_cancel_reaches_every_number_the_warning_reached(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    table = sms_channel_table([modem_table("m0", simulator.device_path)])
    config = make_config(tmp_path, {"sms": table}, [group("t", numbers(0, 3))])
    async with running(config) as service:
        first = await service.submit(make_alert("sms-to-cancel"), origin="test")
        await wait_until_complete(service, first.alert_id, timeout=30)
        cancel = await service.cancel(
            first.alert_id, reason="内部：会商后解除", origin="test", public_note="恢复正常出行。"
        )
        summary = await wait_until_complete(service, cancel.alert_id, timeout=30)

    assert summary == {"sms": {"confirmed": 3}}
    received = received_messages(network.records)
    for number in numbers(0, 3):
        warning, cancelled = received[number]
        assert warning.startswith("【乌兰察布市应急管理局】卓资县暴雪橙色预警")
        title, lifted, note = cancelled.split("\n")
        assert title == "【乌兰察布市应急管理局】【解除】卓资县暴雪橙色预警"
        assert lifted.startswith("乌兰察布市气象台") and "（UTC+08:00）发布的" in lifted
        assert lifted.endswith("卓资县暴雪橙色预警现予解除。") and note == "恢复正常出行。"
        assert "会商" not in cancelled  # the reason is internal
