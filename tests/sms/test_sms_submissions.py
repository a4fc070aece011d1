"""The record of submissions in the store's channel records (on both engines), and the answers
the channel gives from it when a delivery comes again, against a simulated modem on a pty."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.channel import Confirmation, ConfirmationOutcome, OutgoingDelivery, SendOutcome
from broadcaster.delivery import Target
from broadcaster.errors import PermanentError
from broadcaster.store.db import Database
from broadcaster.store.records import ChannelRecords
from broadcaster.testing.contract import channel_context, contract_delivery
from broadcaster.testing.messages import FileRecords
from channels.sms import SmsChannel, SmsChannelConfig, SubmissionStore, SubmissionStoreError
from drivers.gsm import SegmentSubmission
from drivers.gsm.simulator_network import RecipientBehaviour, RecipientRule, SimulatedNetwork

from .conftest import SimulatorFactory, modem_table, sms_channel_table

NOW = 1_800_000_000.0
NUMBER = "+8613800471001"


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SubmissionStore]:
    opened = SubmissionStore(ChannelRecords(lambda: database, "sms"))
    await opened.open()
    yield opened
    await opened.close()


async def begin(store: SubmissionStore, key: str, delivery_id: int, **changes: float) -> None:
    values = {"now": NOW, "valid_until": NOW + 3600, "expires_at": NOW + 3600} | changes
    await store.begin(
        key,
        delivery_id=delivery_id,
        attempt=1,
        number=NUMBER,
        digest="d" * 64,
        total=2,
        now=values["now"],
        valid_until=values["valid_until"],
        expires_at=values["expires_at"],
    )


async def test_a_record_outlives_its_store_with_segments_reports_and_outcome(
    store: SubmissionStore,
) -> None:
    await begin(store, "a:sms:t/1", 7)
    await store.segment("a:sms:t/1", SegmentSubmission(1, 2, "m0", 41, 200), NOW)
    await store.segment("a:sms:t/1", SegmentSubmission(2, 2, "m0", 42, 200), NOW)
    await store.report(7, 1, "m0", 41, "delivered", 0)
    await store.report(7, 2, "m0", 42, "pending", 0x21)
    await store.close()
    await store.open()

    record = await store.load("a:sms:t/1")
    assert record is not None and record.complete and record.reference == "7/1"
    assert record.provider_ref == "m0:41,m0:42" and record.concat_reference == 200
    assert [(s.state, s.status) for s in record.segments] == [("delivered", 0), ("pending", 0x21)]
    assert [r.key for r in await store.open_records(NOW)] == ["a:sms:t/1"]
    store.settle(7, "confirmed", "all 2 segment(s) delivered (status reports)", NOW)
    assert await store.open_records(NOW) == []
    settled = await store.load("a:sms:t/1")
    assert settled is not None and settled.outcome == "confirmed"


async def test_segments_of_an_abandoned_modem_give_way_to_the_new_copy(
    store: SubmissionStore,
) -> None:
    await begin(store, "k", 1)
    await store.segment("k", SegmentSubmission(1, 2, "m0", 9, 5), NOW)
    await store.segment("k", SegmentSubmission(1, 2, "m1", 3, 5), NOW)  # the pool moved it
    record = await store.load("k")
    assert record is not None and not record.complete
    assert [(s.modem, s.message_reference) for s in record.segments] == [("m1", 3)]
    resume = record.resume()
    assert resume.modem == "m1" and resume.concat_reference == 5


async def test_old_and_expired_records_are_pruned_or_no_longer_watched(
    store: SubmissionStore,
) -> None:
    await begin(store, "old", 1, expires_at=NOW - 90_000)
    await begin(store, "lapsed", 2, valid_until=NOW - 10)
    await begin(store, "live", 3)
    await begin(store, "settled", 4, expires_at=NOW + 30 * 86_400)
    store.settle(4, "confirmed", "all 2 segment(s) delivered (status reports)", NOW - 3 * 86_400)
    await begin(store, "settled-today", 5, expires_at=NOW + 30 * 86_400)
    store.settle(5, "failed", "segment 1/2 via m0 failed", NOW - 3600)
    assert await store.prune(NOW) == 2
    assert await store.load("old") is None and await store.load("settled") is None
    assert await store.load("settled-today") is not None
    assert [r.key for r in await store.open_records(NOW)] == ["live"]
    await begin(store, "live", 3)  # a fresh transmission replaces the record
    record = await store.load("live")
    assert record is not None and record.segments == ()


async def test_a_closed_store_says_so() -> None:
    closed = SubmissionStore(FileRecords(Path("/nonexistent/sms/records.json")))
    with pytest.raises(SubmissionStoreError, match="is not open"):
        await closed.load("k")


@pytest.fixture
async def channel(make_simulator: SimulatorFactory, tmp_path: Path) -> AsyncIterator[SmsChannel]:
    simulator = make_simulator("sim0")
    table = sms_channel_table([modem_table("m0", simulator.device_path)], concurrency=2)
    built = SmsChannel("sms", SmsChannelConfig.model_validate(table), channel_context(tmp_path))
    await built.start()
    yield built
    await built.stop()


def delivery(number: str = NUMBER, attempt: int = 1) -> OutgoingDelivery:
    target = Target(id="officials", channel="sms", name="县级干部", address=number)
    return dataclasses.replace(contract_delivery(target), attempt=attempt)


async def settled(sms: SmsChannel) -> Confirmation:
    """The channel's next final confirmation."""
    async with asyncio.timeout(5):
        async for confirmation in sms.confirmations():
            if confirmation.outcome is not ConfirmationOutcome.PROGRESS:
                return confirmation
    raise AssertionError("unreachable: confirmations() never ends")


async def test_a_confirmed_delivery_sent_again_is_answered_confirmed(
    channel: SmsChannel, network: SimulatedNetwork
) -> None:
    sms = channel
    first = await sms.send(delivery())
    assert (await settled(sms)).outcome is ConfirmationOutcome.CONFIRMED
    again = await sms.send(delivery(attempt=2))
    assert again.outcome is SendOutcome.CONFIRMED and again.provider_ref == first.provider_ref
    assert "nothing sent again" in again.detail
    assert len(network.records) == 1


async def test_a_failed_delivery_sent_again_fails_with_the_recorded_status(
    channel: SmsChannel, network: SimulatedNetwork
) -> None:
    sms = channel
    network.rules[NUMBER] = RecipientRule(RecipientBehaviour.FAIL)
    await sms.send(delivery())
    assert (await settled(sms)).outcome is ConfirmationOutcome.FAILED
    with pytest.raises(PermanentError, match=r"TP-ST 0x46 \(validity period expired\)"):
        await sms.send(delivery(attempt=2))
    assert len(network.records) == 1


async def test_another_number_or_a_lapsed_validity_is_sent_afresh(
    channel: SmsChannel, network: SimulatedNetwork
) -> None:
    sms = channel
    network.report_delay = 3600  # no report: the delivery stays open
    await sms.send(delivery())
    moved = await sms.send(delivery("+8613800471002", attempt=2))  # the group was edited
    assert moved.outcome is SendOutcome.ACCEPTED and "before" not in moved.detail
    sms.sender.clock = lambda: time.time() + 2 * 86_400  # past TP-VP: the network gave up
    lapsed = await sms.send(delivery("+8613800471002", attempt=3))
    assert "before" not in lapsed.detail
    assert [r.number for r in network.records] == [NUMBER, "+8613800471002", "+8613800471002"]


async def test_without_status_reports_a_new_instance_answers_from_the_record(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    table = sms_channel_table([modem_table("m0", simulator.device_path)], status_reports=False)
    config = SmsChannelConfig.model_validate(table)
    answers = []
    for attempt in (1, 2):  # a stop and a start between the two, as when a crash left it sending
        sms = SmsChannel("sms", config, channel_context(tmp_path))
        await sms.start()
        try:
            answers.append(await sms.send(delivery(attempt=attempt)))
        finally:
            await sms.stop()
    first, again = answers
    assert first.outcome is again.outcome is SendOutcome.ACCEPTED
    assert again.provider_ref == first.provider_ref
    assert "nothing sent again; no status reports configured" in again.detail
    assert len(network.records) == 1


async def test_sms_still_go_out_when_the_record_fails_and_health_says_so(
    channel: SmsChannel, network: SimulatedNetwork
) -> None:
    sms = channel
    await sms.sender.store.close()  # the record is gone from under the running channel
    result = await sms.send(delivery())
    health = await sms.health()
    assert result.outcome is SendOutcome.ACCEPTED and len(network.records) == 1
    assert health.ok and "SMS record of channel sms is not open" in health.detail
