"""Fallback from the gateway to the GSM-modem channel, through the real core: a number whose
receipt says the gateway could not deliver for a passing cause, and every number while no
bind to the gateway is up for longer than ``fallback_after_seconds``, is handed to the ``sms``
channel (simulated modems on ptys) for the same alert, which sends and confirms it; the
gateway delivery fails saying where it went, and the new delivery's history says whence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broadcaster.service import BroadcasterService
from drivers.mqtt.testing import free_port
from drivers.smsgw.results import ReceiptState
from tests.core.support import make_alert, make_config, running, wait_until_complete

from .conftest import GatewayFactory, gateway_table, group, numbers

MODEMS = {"type": "sms", "simulate": True, "simulated_report_delay_seconds": 0.05}


def recipients_group(count: int) -> dict[str, Any]:
    return group("g", numbers(0, count), languages=["zh-CN"])


async def history(service: BroadcasterService, delivery_id: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = await service.database.run(service.outbox.events, delivery_id)
    return events


async def check_handed_over(service: BroadcasterService, alert_id: str, reason: str) -> None:
    rows = await service.database.run(service.outbox.deliveries, alert_id)
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_channel.setdefault(row["channel"], []).append(row)
    assert len(by_channel["gateway"]) == len(by_channel["modems"]) == 3
    for row in by_channel["gateway"]:
        assert row["state"] == "failed"
        assert reason in row["last_error"] and "handed to channel modems" in row["last_error"]
    for row in by_channel["modems"]:
        assert row["state"] == "confirmed"
        first = (await history(service, row["id"]))[0]
        assert first["detail"].startswith("fallback for gateway delivery ")
    assert {(r["target_id"], r["part"]) for r in by_channel["gateway"]} == {
        (r["target_id"], r["part"]) for r in by_channel["modems"]
    }


async def test_a_receipt_with_a_passing_failure_hands_the_number_to_the_modems(
    protocol: str, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = await make_gateway(outcomes={ReceiptState.EXPIRED: 1.0})
    channels = {
        "gateway": gateway_table(protocol, gateway.port, fallback="modems"),
        "modems": MODEMS,
    }
    config = make_config(tmp_path, channels, [recipients_group(3)])
    async with running(config) as service:
        result = await service.submit(make_alert("gw-fallback-receipt"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        assert summary == {"gateway": {"failed": 3}, "modems": {"confirmed": 3}}, summary
        await check_handed_over(service, result.alert_id, "expired (EXPIRED")
        health = await service.channels["gateway"].health()
    assert health.devices["gateway"]["forwarded"] == 3


async def test_a_gateway_down_too_long_hands_every_number_to_the_modems(
    protocol: str, tmp_path: Path
) -> None:
    table = gateway_table(
        protocol,
        free_port(),
        fallback="modems",
        fallback_after_seconds=0.5,
        request_timeout_seconds=0.2,
    )
    config = make_config(tmp_path, {"gateway": table, "modems": MODEMS}, [recipients_group(3)])
    async with running(config) as service:
        result = await service.submit(make_alert("gw-fallback-down"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        assert summary == {"gateway": {"failed": 3}, "modems": {"confirmed": 3}}, summary
        await check_handed_over(service, result.alert_id, "no bind to the gateway up for")


async def test_a_delivery_failed_for_good_is_not_handed_over(
    protocol: str, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = await make_gateway(outcomes={ReceiptState.UNDELIVERABLE: 1.0})
    channels = {
        "gateway": gateway_table(protocol, gateway.port, fallback="modems"),
        "modems": MODEMS,
    }
    config = make_config(tmp_path, channels, [recipients_group(2)])
    async with running(config) as service:
        result = await service.submit(make_alert("gw-fallback-permanent"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
    assert summary == {"gateway": {"failed": 2}}, summary
