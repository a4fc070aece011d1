"""Deliveries handed to the node that holds their device, on both store engines: kept for that
node (only it claims them, and they are due for it at once) until a lease period has passed,
then free for any node again; the history says to which node each was handed. The
dispatcher turns a channel's DeviceElsewhereError into such a hand-over, and claims nothing
for a channel whose one device another node holds (``Channel.sends_elsewhere``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broadcaster.channel import ChannelContext
from broadcaster.config import ChannelConfig, DispatcherConfig, Secret, StoreConfig
from broadcaster.delivery import DeliveryState, Transition
from broadcaster.devicelease import LeasedDevice
from broadcaster.dispatcher import ChannelSlot, Dispatcher
from broadcaster.errors import DeviceElsewhereError, DeviceUnavailableError
from broadcaster.store.alerts import AlertTable
from broadcaster.store.db import Database
from broadcaster.store.outbox import ClaimedDelivery, Outbox
from broadcaster.store.records import DeviceLeases
from tests.core.leased import ElsewhereChannel
from tests.core.support import (
    RecordingChannel,
    make_alert,
    make_config,
    running,
    village_targets,
    wait_until_complete,
)
from tests.core.test_store_engines import NOW, plan, record

LEASE = 30.0


def handed_to(node: str, claimed: list[ClaimedDelivery], at: float) -> list[Transition]:
    return [
        Transition(
            c.id,
            DeliveryState.QUEUED,
            last_error=f"the line is used by node {node}",
            next_attempt_at=at,
            detail=f"the line is used by node {node}; handed to node {node}",
            for_node=node,
        )
        for c in claimed
    ]


def handed_by_b(database: Database, count: int, at: float) -> tuple[Outbox, list[ClaimedDelivery]]:
    """Node b claims the first two of ``count`` deliveries and hands them to node a at ``at``."""
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record(), [], plan(count), supersede=None, now=NOW)
    database.lease_seconds = LEASE
    database.node = "node-b"
    routed = database.call(outbox.claim_due, "log", NOW, 2)
    assert database.call(outbox.apply, handed_to("node-a", routed, at), at) == 2
    return outbox, routed


def test_a_delivery_handed_to_a_node_is_claimed_by_that_node_only_until_a_lease_has_passed(
    database: Database,
) -> None:
    outbox, routed = handed_by_b(database, 3, NOW + 1)
    kept = database.call(
        database.query, "SELECT for_node, for_until FROM deliveries WHERE for_node IS NOT NULL"
    )
    assert kept == [{"for_node": "node-a", "for_until": NOW + 1 + LEASE}] * 2
    # node-b (and any other node) sees only the delivery that was not handed over
    for other in ("node-b", "node-c"):
        database.node = other
        assert database.call(outbox.next_due_at, "log", NOW + 2) == NOW
    database.node = "node-b"
    assert [c.idempotency_key for c in database.call(outbox.claim_due, "log", NOW + 2, 10)] == [
        "k2"
    ]
    assert database.call(outbox.next_due_at, "log", NOW + 2) is None
    database.node = "node-a"
    assert database.call(outbox.next_due_at, "log", NOW + 2) == NOW + 1
    mine = database.call(outbox.claim_due, "log", NOW + 2, 10)
    assert [c.idempotency_key for c in mine] == ["k0", "k1"]
    assert [c.attempts for c in mine] == [2, 2]
    events = database.call(outbox.events, routed[0].id)
    assert [e["to_state"] for e in events] == ["queued", "sending", "queued", "sending"]
    assert events[2]["detail"] == "the line is used by node node-a; handed to node node-a"


def test_a_delivery_kept_for_a_node_that_is_gone_is_free_after_the_lease(
    database: Database,
) -> None:
    outbox, _ = handed_by_b(database, 2, NOW)
    assert database.call(outbox.claim_due, "log", NOW + LEASE - 0.5, 10) == []
    later = NOW + LEASE
    assert database.call(outbox.next_due_at, "log", later) == NOW
    again = database.call(outbox.claim_due, "log", later, 10)
    assert sorted(c.idempotency_key for c in again) == ["k0", "k1"]
    # a retry that is not handed over leaves the delivery free for every node
    database.call(outbox.apply, handed_to("node-c", again[:1], later), later)
    database.call(
        outbox.apply,
        [Transition(again[1].id, DeliveryState.QUEUED, last_error="busy", next_attempt_at=later)],
        later,
    )
    assert [c.id for c in database.call(outbox.claim_due, "log", later, 10)] == [again[1].id]


async def dispatched_once(
    database: Database, tmp_path: Path, holder: str | None
) -> list[Transition]:
    """The transition a dispatcher on node-b makes of a send refused as the line is used by
    ``holder`` (None: by no node that is known)."""
    database.node, database.lease_seconds = "node-b", LEASE
    database.call(AlertTable(database).insert, record(), [], plan(1), supersede=None, now=NOW)
    context = ChannelContext(data_dir=tmp_path, sender_name="", public_url="http://x")
    line = RecordingChannel("log", ChannelConfig(type="line"), context)
    dispatcher = Dispatcher(
        database, [ChannelSlot("log", line, 1, 100.0, None)], DispatcherConfig(), clock=lambda: NOW
    )
    (row,) = database.call(dispatcher.outbox.claim_due, "log", NOW, 1)
    refused: Exception = DeviceUnavailableError("the line is used by another node", retry_after=10)
    if holder is not None:
        message = f"the line is used by node {holder}"
        refused = DeviceElsewhereError(message, holder, retry_after=10)
    slot = dispatcher.channels["log"]
    moved = dispatcher._unsent(slot, row, refused)
    dispatcher._record(slot, moved)
    failures = sum(dispatcher.failed_total.values())
    assert failures == (0 if moved.for_node else 1)  # a hand-over is no failed attempt
    return [moved]


async def test_the_dispatcher_hands_a_delivery_to_the_node_holding_its_device(
    database: Database, tmp_path: Path
) -> None:
    (moved,) = await dispatched_once(database, tmp_path, "node-a")
    if not database.shared:  # one process owns SQLite: there is no other node to hand it to
        assert moved.for_node is None and moved.next_attempt_at == NOW + 10
        return
    assert moved.to_state is DeliveryState.QUEUED and moved.for_node == "node-a"
    assert moved.next_attempt_at == NOW
    assert moved.detail == "the line is used by node node-a; handed to node node-a"


async def test_without_a_holder_the_delivery_waits_for_the_retry(
    database: Database, tmp_path: Path
) -> None:
    (moved,) = await dispatched_once(database, tmp_path, None)
    assert moved.to_state is DeliveryState.QUEUED and moved.for_node is None
    assert moved.next_attempt_at == NOW + 10
    assert moved.detail == "the line is used by another node; retry in 10.0 s"


async def test_a_leased_device_names_its_holder(database: Database) -> None:
    database.node, database.lease_seconds = "node-b", LEASE
    leases = DeviceLeases(lambda: database, "log")
    database.call(
        database.conn.execute,
        "INSERT INTO device_leases (resource, node, until) VALUES ('log:line', 'node-a', 9e12)",
    )
    line = LeasedDevice(leases, "line", open_device=_nothing, close_device=_nothing, what="line")
    with pytest.raises(DeviceElsewhereError, match="line is used by node node-a") as refused:
        await line.check()
    assert refused.value.node == "node-a" and refused.value.retry_after == LEASE / 3


async def _nothing() -> None:
    return None


async def test_nothing_is_claimed_for_a_channel_whose_device_another_node_holds(
    tmp_path: Path, database_url: str | None
) -> None:
    ElsewhereChannel.sent, ElsewhereChannel.holder = [], "node-a"
    channels = {"line": {"type": "tests.core.leased:ElsewhereChannel"}}
    config = make_config(tmp_path, channels, village_targets("line", 5))
    if database_url is not None:
        store = StoreConfig(url=Secret(database_url), node="node-b")
        config = config.model_copy(update={"store": store})
    async with running(config) as service:
        result = await service.submit(make_alert("elsewhere"), origin="test")
        await asyncio.sleep(0.5)  # ten polls
        attempts = await service.database.run(
            service.database.query, "SELECT state, attempts FROM deliveries"
        )
        if service.database.shared:
            assert ElsewhereChannel.sent == []
            assert attempts == [{"state": "queued", "attempts": 0}] * 5
        else:  # one node owns a SQLite store: no other node could send them
            assert len(ElsewhereChannel.sent) == 5
        ElsewhereChannel.holder = None  # the device came to this node
        summary = await wait_until_complete(service, result.alert_id)
    assert summary == {"line": {"confirmed": 5}}
    assert len(ElsewhereChannel.sent) == 5
