"""The gateway-sms channel through the real core service against simulated SMPP and CMPP
gateways on loopback TCP: a bilingual alert to 10,000 numbers confirmed segment by segment,
throttling that slows but loses nothing, a connection dropped mid-window that resends only
what was not answered, and receipts that fail a delivery naming why."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from broadcaster.service import BroadcasterService
from channels.gateway_sms import GatewaySmsChannel
from drivers.smsgw.results import ReceiptState
from drivers.smsgw.segments import join_payload
from drivers.smsgw.simulator import SmscFaults, SmscSimulator
from tests.core.support import make_config, running, wait_until_complete
from tests.sms.test_sms_service import bilingual_alert

from .conftest import GatewayFactory, gateway_table, group, groups, numbers

SHORT_DESCRIPTION = "预计今天夜间卓资县将出现暴雪。"


def gateway_channel(service: BroadcasterService) -> GatewaySmsChannel:
    channel = service.channels["gateway"]
    assert isinstance(channel, GatewaySmsChannel)
    return channel


def received(simulator: SmscSimulator[Any]) -> dict[str, list[str]]:
    """The texts each number got, joined from the segments the gateway accepted (in the
    order of their sequence numbers, by concatenation reference)."""
    parts: dict[tuple[str, int], dict[int, str]] = defaultdict(dict)
    totals: dict[tuple[str, int], int] = {}
    singles: dict[str, list[str]] = defaultdict(list)
    for record in simulator.records:
        segment = record.segment
        text, (reference, total, sequence) = join_payload(
            segment.payload, segment.udhi, segment.coding
        )
        number = segment.destination.removeprefix("+").removeprefix("86")
        if total == 1:
            singles[number].append(text)
            continue
        key = (number, reference)
        assert sequence not in parts[key], f"segment {sequence} of {key} sent twice"
        parts[key][sequence] = text
        totals[key] = total
    messages: dict[str, list[str]] = defaultdict(list, singles)
    for (number, reference), found in parts.items():
        assert sorted(found) == list(range(1, totals[(number, reference)] + 1)), found
        messages[number].append("".join(found[n] for n in sorted(found)))
    return messages


async def deliveries(service: BroadcasterService, alert_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await service.database.run(service.outbox.deliveries, alert_id)
    return rows


async def expected_texts(service: BroadcasterService, alert_id: str) -> dict[str, str]:
    """The rendered SMS per language, as the deliveries report them."""
    rows = await deliveries(service, alert_id)
    return {r["content"]["language"]: r["content"]["text"] for r in rows if r["content"]}


@pytest.mark.timeout(400)
async def test_bilingual_alert_to_ten_thousand_numbers_is_confirmed_per_segment(
    protocol: str, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = await make_gateway(window=256)
    table = gateway_table(
        protocol, gateway.port, binds=4, window=128, concurrency=1024, request_timeout_seconds=20
    )
    config = make_config(tmp_path, {"gateway": table}, groups(10_000), batch_size=1024)
    async with running(config) as service:
        started = time.monotonic()
        alert = bilingual_alert(f"gw-10k-{protocol}", description=SHORT_DESCRIPTION)
        result = await service.submit(alert, origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=380)
        took = time.monotonic() - started
        assert summary == {"gateway": {"confirmed": 20_000}}, summary
        rows = await deliveries(service, result.alert_id)
        texts = await expected_texts(service, result.alert_id)
        health = await gateway_channel(service).health()
        for row in rows[::500]:
            total = row["content"]["segments"]
            events = await service.database.run(service.outbox.events, row["id"])
            assert events[-1]["detail"].startswith(f"{total} of {total} segments delivered")
    assert set(texts) == {"zh-CN", "en"}
    segments = {r["content"]["language"]: r["content"]["segments"] for r in rows}
    assert segments["en"] >= 2, segments  # English in UCS-2 takes several segments
    assert len(gateway.records) == 10_000 * (segments["zh-CN"] + segments["en"])
    got = received(gateway)
    assert len(got) == 10_000
    assert all(sorted(messages) == sorted(texts.values()) for messages in got.values())
    assert health.devices["gateway"]["receipted"] == len(gateway.records)
    print(f"{protocol}: 20,000 deliveries, {len(gateway.records)} segments in {took:.1f} s")


async def test_throttling_slows_the_send_but_loses_nothing(
    protocol: str, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = await make_gateway(rate_per_second=400)
    table = gateway_table(protocol, gateway.port, binds=2, window=64)
    config = make_config(tmp_path, {"gateway": table}, groups(400, 200))
    async with running(config) as service:
        started = time.monotonic()
        result = await service.submit(bilingual_alert(f"gw-throttle-{protocol}"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=60)
        took = time.monotonic() - started
        channel = gateway_channel(service)
        texts = await expected_texts(service, result.alert_id)
    assert summary == {"gateway": {"confirmed": 800}}, summary
    assert gateway.throttled > 0 and channel.throttled > 0
    got = received(gateway)
    assert len(got) == 400
    assert all(sorted(messages) == sorted(texts.values()) for messages in got.values())
    # two binds of 400 segments/s each (each starting with a burst of 400) take no more
    assert took >= (len(gateway.records) - 800) / 800, took


async def test_a_connection_dropped_mid_window_resends_only_what_was_not_answered(
    protocol: str, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    faults = SmscFaults(drop_after_answers=700)
    gateway = await make_gateway(faults=faults)
    table = gateway_table(protocol, gateway.port, binds=2, window=32)
    config = make_config(tmp_path, {"gateway": table}, groups(600, 200))

    async def heal_after_the_drop() -> None:
        while gateway.binds <= 2:
            await asyncio.sleep(0.005)
        faults.drop_after_answers = None

    async with running(config) as service:
        healer = asyncio.create_task(heal_after_the_drop())
        result = await service.submit(bilingual_alert(f"gw-drop-{protocol}"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=60)
        await healer
        texts = await expected_texts(service, result.alert_id)
        rows = await deliveries(service, result.alert_id)
    assert summary == {"gateway": {"confirmed": 1200}}, summary
    retried = [r for r in rows if r["attempts"] > 1]
    assert retried, "the drop failed no submit"
    got = received(gateway)  # raises on a segment sent twice
    assert len(got) == 600
    assert all(sorted(messages) == sorted(texts.values()) for messages in got.values())


async def test_receipts_that_are_not_delivered_fail_the_delivery_naming_why(
    protocol: str, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    outcomes = {
        ReceiptState.DELIVERED: 2.0,
        ReceiptState.UNDELIVERABLE: 1.0,
        ReceiptState.EXPIRED: 1.0,
    }
    gateway = await make_gateway(outcomes=outcomes, seed=7)
    table = gateway_table(protocol, gateway.port)
    config = make_config(tmp_path, {"gateway": table}, [group("g", numbers(0, 40))])
    async with running(config) as service:
        result = await service.submit(bilingual_alert(f"gw-fail-{protocol}"), origin="test")
        await wait_until_complete(service, result.alert_id, timeout=30)
        rows = await deliveries(service, result.alert_id)
    states = Counter(r["state"] for r in rows)
    assert states["failed"] > 0 and states["confirmed"] > 0, states
    assert set(states) == {"failed", "confirmed"}
    for row in rows:
        if row["state"] == "failed":
            assert (
                "undeliverable (UNDELIV" in row["last_error"]
                or "expired (EXPIRED" in (row["last_error"])
            ), row["last_error"]
            assert row["last_error"].startswith("segment ")
