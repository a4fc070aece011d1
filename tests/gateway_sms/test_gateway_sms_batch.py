"""The gateway-sms channel's batches: a claimed batch handed over in one ``send_many`` ends each
delivery exactly as its own ``send`` would (accepted with its ids, failed for good, confirmed
by its receipts), a slow gateway cannot hold a batch's results back past its deadline, and a
delivery whose receipts overtake its batch's return keeps its provider reference."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from broadcaster.channel import (
    ChannelContext,
    Confirmation,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.delivery import Target
from broadcaster.errors import RetryableError
from broadcaster.store.db import Database
from broadcaster.store.records import ChannelRecords
from broadcaster.testing.messages import contract_message
from channels.gateway_sms import GatewaySmsChannel, GatewaySmsChannelConfig
from drivers.smsgw.simulator import SmscFaults
from tests.core.support import make_config, running, wait_until_complete
from tests.sms.test_sms_service import bilingual_alert

from .conftest import GatewayFactory, gateway_table, group, numbers
from .test_gateway_sms_service import received


def build(
    name: str, database: Database, tmp_path: Path, protocol: str, port: int, **extra: Any
) -> GatewaySmsChannel:
    config = GatewaySmsChannelConfig.model_validate(gateway_table(protocol, port, **extra))
    context = ChannelContext(
        data_dir=tmp_path,
        sender_name="测试",
        public_url="http://127.0.0.1:1",
        records=ChannelRecords(lambda: database, name),
    )
    return GatewaySmsChannel(name, config, context)


def deliveries(addresses: list[str]) -> list[OutgoingDelivery]:
    message = contract_message()
    found = []
    for number, address in enumerate(addresses, start=1):
        target = Target(id=f"t{number}", channel="gateway", name=f"t{number}", address=address)
        found.append(
            OutgoingDelivery(number, message, target, 0, 1, f"k{number}", message.expires_at)
        )
    return found


def end_state(result: SendResult | Exception) -> tuple[Any, ...]:
    if isinstance(result, Exception):
        return type(result).__name__, str(result)
    ids = (result.provider_ref or "").split(",")
    return result.outcome, result.detail, result.content, len(ids), all(ids)


async def confirmations(channel: GatewaySmsChannel, count: int) -> dict[int, Confirmation]:
    found: dict[int, Confirmation] = {}
    async with asyncio.timeout(20):
        async for confirmation in channel.confirmations():
            found[confirmation.delivery_id] = confirmation
            if len(found) == count:
                return found
    return found


async def test_a_batch_ends_each_delivery_as_its_own_send_would(
    protocol: str, make_gateway: GatewayFactory, database: Database, tmp_path: Path
) -> None:
    gateway = await make_gateway()
    addresses = [*numbers(0, 40), "", "+86139x", *numbers(40, 10)]
    single = build("single", database, tmp_path, protocol, gateway.port)
    batch = build("batch", database, tmp_path, protocol, gateway.port)
    await single.start()
    await batch.start()
    try:
        assert single.client is not None and batch.client is not None
        await single.client.wait_binds_up(2, 5)
        await batch.client.wait_binds_up(2, 5)
        one_by_one: list[SendResult | Exception] = []
        for delivery in deliveries(addresses):
            try:
                one_by_one.append(await single.send(delivery))
            except Exception as exc:
                one_by_one.append(exc)
        together = await batch.send_many(deliveries(addresses))
        accepted = sum(1 for r in together if isinstance(r, SendResult))
        single_done = await confirmations(single, accepted)
        batch_done = await confirmations(batch, accepted)
    finally:
        await single.stop()
        await batch.stop()
    assert [end_state(r) for r in together] == [end_state(r) for r in one_by_one]
    assert accepted == 50 and all(
        r.outcome is SendOutcome.ACCEPTED for r in together if isinstance(r, SendResult)
    )
    assert {k: (c.outcome, c.detail) for k, c in batch_done.items()} == {
        k: (c.outcome, c.detail) for k, c in single_done.items()
    }
    assert len(gateway.records) == 2 * accepted  # each segment submitted once per channel


async def test_a_slow_gateway_cannot_hold_a_batch_back_past_its_deadline(
    protocol: str, make_gateway: GatewayFactory, database: Database, tmp_path: Path
) -> None:
    faults = SmscFaults(answer_delay=0.2)
    gateway = await make_gateway(faults=faults, window=2)
    channel = build(
        "slow", database, tmp_path, protocol, gateway.port, binds=1, window=2,
        batch_submit_seconds=0.5,
    )  # fmt: skip
    await channel.start()
    try:
        assert channel.client is not None
        await channel.client.wait_binds_up(1, 5)
        started = time.monotonic()
        results = await channel.send_many(deliveries(numbers(0, 60)))
        took = time.monotonic() - started
        submitted = {r.message_id for r in gateway.records}
        faults.answer_delay = 0.0
        later = await channel.send_many(deliveries(numbers(0, 60)))  # the rest, in time
    finally:
        await channel.stop()
    accepted = [r for r in results if isinstance(r, SendResult)]
    busy = [r for r in results if isinstance(r, RetryableError)]
    assert took < 0.5 + 3 + 1, took  # the deadline, then at most one request timeout
    assert accepted and busy and len(accepted) + len(busy) == 60
    assert all("no room in the window in time" in str(r) for r in busy)
    ids = {i for r in accepted for i in (r.provider_ref or "").split(",")}
    assert ids <= submitted and len(submitted) <= len(ids) + len(busy)  # a part, at most
    assert all(isinstance(r, SendResult) for r in later), later
    received(gateway)  # raises on a segment sent twice


async def test_receipts_that_overtake_the_batch_keep_its_provider_reference(
    protocol: str, make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = await make_gateway(receipt_delay=0)
    table = gateway_table(protocol, gateway.port)
    config = make_config(tmp_path, {"gateway": table}, [group("g", numbers(0, 300))])
    async with running(config) as service:
        result = await service.submit(bilingual_alert(f"gw-overtake-{protocol}"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=60)
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
    assert summary == {"gateway": {"confirmed": 600}}, summary
    refs = [(row["provider_ref"] or "").split(",") for row in rows]
    assert all(len(r) == row["content"]["segments"] for r, row in zip(refs, rows, strict=True))
    issued = sorted(record.message_id for record in gateway.records)
    assert sorted(i for r in refs for i in r) == issued  # every id, each on its delivery once
