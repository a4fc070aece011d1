"""Dispatching: confirmation, retries with backoff, permanent failure, expiry, cancel, restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import MsgType
from broadcaster.delivery import DeliveryState, Transition
from broadcaster.service import BroadcasterService
from broadcaster.store.outbox import Outbox
from tests.core.support import (
    AcceptingChannel,
    ClosingAckChannel,
    FlakyChannel,
    RecordingChannel,
    SlowChannel,
    SteppedClock,
    TricklingChannel,
    make_alert,
    make_config,
    now_utc,
    running,
    village_targets,
    wait_for_deliveries,
    wait_until_complete,
)


async def test_log_channel_writes_and_confirms_every_target(tmp_path: Path) -> None:
    channels = {"log": {"type": "log", "path": "out.jsonl"}}
    config = make_config(tmp_path, channels, village_targets("log", 50))
    async with running(config) as service:
        result = await service.submit(make_alert(), origin="test")
        summary = await wait_until_complete(service, result.alert_id)
        assert summary == {"log": {"confirmed": 50}}
    lines = (tmp_path / "data" / "out.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted(r["target"]["id"] for r in records) == sorted(
        t["id"] for t in village_targets("log", 50)
    )
    assert all(r["texts"][0]["headline"] == "卓资县暴雪橙色预警" for r in records)


async def test_confirmations_reported_during_the_send_follow_its_result(tmp_path: Path) -> None:
    # The devices answer before send_many returns: the core records the send's result first,
    # then their progress and confirmation, so the history has every step in order.
    channels = {"eager": {"type": "tests.core.support:EagerAckChannel"}}
    config = make_config(tmp_path, channels, village_targets("eager", 20))
    async with running(config) as service:
        result = await service.submit(make_alert(), origin="test")
        assert await wait_until_complete(service, result.alert_id) == {"eager": {"confirmed": 20}}
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        for row in rows:
            events = await service.database.run(service.outbox.events, row["id"])
            steps = [(e["to_state"], e["detail"]) for e in events]
            assert [s for s, _ in steps] == [
                "queued",
                "sending",
                "accepted",
                "accepted",
                "confirmed",
            ]
            assert [d for _, d in steps[2:]] == ["accepted", "playing", "played"]
            assert row["provider_ref"] == f"e-{row['id']}"


async def test_a_wrong_confirmation_is_the_channels_fault_and_changes_nothing(
    tmp_path: Path,
) -> None:
    channels = {"misreport": {"type": "tests.core.support:MisreportingChannel"}}
    config = make_config(tmp_path, channels, village_targets("misreport", 3))
    async with running(config) as service:
        result = await service.submit(make_alert(), origin="test")
        summary = await wait_until_complete(service, result.alert_id)
        assert summary == {"misreport": {"confirmed": 3}}
        faults = [(f.channel, f.point, f.count) for f in service.dispatcher.faults.all()]
        assert faults == [("misreport", "confirmations", 3)]
        assert "given str" in service.dispatcher.faults.all()[0].error


async def test_retryable_failures_are_retried_until_confirmed(tmp_path: Path) -> None:
    targets = village_targets("flaky", 3)
    targets[0]["params"] = {"fail": 2}
    channels = {"flaky": {"type": "tests.core.support:FlakyChannel"}}
    FlakyChannel.attempts.clear()
    async with running(make_config(tmp_path, channels, targets)) as service:
        result = await service.submit(make_alert(), origin="test")
        assert await wait_until_complete(service, result.alert_id) == {"flaky": {"confirmed": 3}}
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        by_target = {r["target_id"]: r for r in rows}
        assert by_target[targets[0]["id"]]["attempts"] == 3
        assert by_target[targets[1]["id"]]["attempts"] == 1
        events = await service.database.run(
            service.outbox.events, by_target[targets[0]["id"]]["id"]
        )
        states = [e["to_state"] for e in events]
        assert states == [
            "queued",
            "sending",
            "queued",
            "sending",
            "queued",
            "sending",
            "confirmed",
        ]
        assert "network busy" in events[2]["detail"]


async def test_targets_reported_back_are_retried_at_once_together(tmp_path: Path) -> None:
    targets = village_targets("flaky", 4)
    for target in targets:
        target["params"] = {"fail": 1}
    channels = {"flaky": {"type": "tests.core.support:FlakyChannel"}}
    FlakyChannel.attempts.clear()
    config = make_config(tmp_path, channels, targets, retry_base_seconds=600, retry_max_seconds=600)
    async with running(config) as service:
        result = await service.submit(make_alert(), origin="test")
        await wait_for_deliveries(
            service,
            result.alert_id,
            lambda rows: all(r["state"] == "queued" and r["attempts"] == 1 for r in rows),
        )
        back = [t["id"] for t in targets[:3]]
        # Reports arriving together are written as one batch; each learns its own count.
        counts = await asyncio.gather(
            service.dispatcher.targets_available("flaky", back[:2]),
            service.dispatcher.targets_available("flaky", [back[2], "unknown"]),
            service.dispatcher.targets_available("flaky", ["unknown"]),
        )
        assert counts == [2, 1, 0]
        rows = await wait_for_deliveries(
            service,
            result.alert_id,
            lambda rows: sum(r["state"] == "confirmed" for r in rows) == 3,
        )
        states = {r["target_id"]: r["state"] for r in rows}
        # The one not reported back still waits out its ten-minute backoff.
        assert states == dict.fromkeys(back, "confirmed") | {targets[3]["id"]: "queued"}


async def test_permanent_failure_fails_without_retry(tmp_path: Path) -> None:
    targets = village_targets("flaky", 2)
    targets[1]["params"] = {"permanent": True}
    channels = {"flaky": {"type": "tests.core.support:FlakyChannel"}}
    FlakyChannel.attempts.clear()
    async with running(make_config(tmp_path, channels, targets)) as service:
        result = await service.submit(make_alert(), origin="test")
        summary = await wait_until_complete(service, result.alert_id)
        assert summary == {"flaky": {"confirmed": 1, "failed": 1}}
        failed = await service.database.run(
            service.outbox.deliveries, result.alert_id, state="failed"
        )
        assert failed[0]["attempts"] == 1 and "does not exist" in failed[0]["last_error"]


async def test_retries_stop_at_expiry_with_state_expired(tmp_path: Path) -> None:
    targets = village_targets("flaky", 1)
    targets[0]["params"] = {"fail": 10_000}
    channels = {"flaky": {"type": "tests.core.support:FlakyChannel"}}
    FlakyChannel.attempts.clear()
    config = make_config(tmp_path, channels, targets)
    async with running(config) as service:
        result = await service.submit(make_alert(expires_in=2), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=10)
        assert summary == {"flaky": {"expired": 1}}
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
        assert rows[0]["attempts"] >= 3
        assert "network busy" in rows[0]["last_error"]
        attempts_at_expiry = sum(FlakyChannel.attempts.values())
        await asyncio.sleep(0.3)
        assert sum(FlakyChannel.attempts.values()) == attempts_at_expiry


async def test_cancel_while_queued_sends_nothing_more(tmp_path: Path) -> None:
    channels = {"slow": {"type": "tests.core.support:SlowChannel", "concurrency": 1}}
    SlowChannel.started.clear()
    SlowChannel.delay = 0.2
    async with running(make_config(tmp_path, channels, village_targets("slow", 20))) as service:
        original = make_alert("orig")
        result = await service.submit(original, origin="test")
        while not SlowChannel.started:
            await asyncio.sleep(0.01)
        cancel = make_alert("cancel", msg_type=MsgType.CANCEL, references=[original])
        cancelled = await service.submit(cancel, origin="test")
        started_at_cancel = len(SlowChannel.started)
        await asyncio.sleep(0.6)
        originals = [s for s in SlowChannel.started if s.startswith("orig/")]
        assert len(originals) == started_at_cancel
        summary = await service.database.run(service.outbox.summary, result.alert_id)
        assert summary["slow"].get("queued", 0) == 0
        assert summary["slow"]["cancelled"] >= 20 - started_at_cancel
        record = await service.database.run(service.alerts.get, result.alert_id)
        assert record["state"] == "cancelled"
        # the Cancel itself goes to the targets the original reached, and only those
        assert cancelled.planned == {"slow": started_at_cancel}
        reached = {s.split("/")[1] for s in originals}
        told = {s.split("/")[1] for s in SlowChannel.started if s.startswith("cancel/")}
        assert told == reached


async def test_expired_alert_is_never_dispatched(tmp_path: Path) -> None:
    channels = {"rec": {"type": "tests.core.support:RecordingChannel"}}
    RecordingChannel.sent.clear()
    async with running(make_config(tmp_path, channels, village_targets("rec", 5))) as service:
        old = make_alert(sent=now_utc() - timedelta(hours=1), expires_in=60)
        result = await service.submit(old, origin="test", allow_empty=True)  # stored, as told
        assert result.state == "expired" and result.planned == {}
        await asyncio.sleep(0.2)
    assert RecordingChannel.sent == []


async def test_deferred_alert_waits_for_its_effective_time(tmp_path: Path) -> None:
    """The service's clock is moved past the effective time (a minute ahead, in whole CAP
    seconds) instead of waiting for it: nothing goes out while the dispatcher polls many times
    before it, everything once the clock has passed it."""
    channels = {"rec": {"type": "tests.core.support:RecordingChannel"}}
    RecordingChannel.sent.clear()
    clock = SteppedClock()
    config = make_config(tmp_path, channels, village_targets("rec", 2))
    async with running(config, clock=clock) as service:
        result = await service.submit(make_alert(effective_in=60), origin="test")
        await asyncio.sleep(20 * config.dispatcher.idle_poll_seconds)
        assert RecordingChannel.sent == []
        clock.offset = 61
        assert await wait_until_complete(service, result.alert_id, timeout=5) == {
            "rec": {"confirmed": 2}
        }


async def test_accepted_deliveries_confirm_through_the_confirmation_stream(
    tmp_path: Path,
) -> None:
    channels = {
        "acc": {"type": "tests.core.support:AcceptingChannel", "confirm_timeout_seconds": 0.3}
    }
    targets = village_targets("acc", 3)
    AcceptingChannel.silent = {targets[2]["id"]}
    async with running(make_config(tmp_path, channels, targets)) as service:
        result = await service.submit(make_alert(), origin="test")
        first_id, silent_id = targets[0]["id"], targets[2]["id"]

        def settled(rows: list[dict[str, Any]]) -> bool:
            by_target = {r["target_id"]: r for r in rows}
            confirmed = by_target[first_id]["state"] == "confirmed"
            return confirmed and by_target[silent_id]["attempts"] >= 2

        rows = await wait_for_deliveries(service, result.alert_id, settled)
        silent = next(r for r in rows if r["target_id"] == silent_id)
        # never confirmed: sent again after each confirmation timeout, never shown as done
        assert silent["state"] in ("accepted", "queued", "sending")
        assert silent["attempts"] >= 2
        AcceptingChannel.silent = set()
        assert (await wait_until_complete(service, result.alert_id))["acc"] == {"confirmed": 3}


async def test_acks_a_channel_hears_while_it_stops_are_recorded(tmp_path: Path) -> None:
    channels = {"late": {"type": "tests.core.support:ClosingAckChannel"}}
    config = make_config(tmp_path, channels, village_targets("late", 3))
    ClosingAckChannel.accepted.clear()
    async with running(config) as service:
        result = await service.submit(make_alert(), origin="test")
        rows = await wait_for_deliveries(
            service, result.alert_id, lambda rows: all(r["state"] == "accepted" for r in rows)
        )
    async with running(config) as service:
        after = await service.store.deliveries.summary(result.alert_id)
    assert len(rows) == 3
    assert after == {"late": {"confirmed": 2, "accepted": 1}}  # the last resumed, not failed


async def test_confirmations_that_trickle_in_are_written_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 devices confirming one every 3 ms: the recorder lets them gather, so a handful of
    transactions write them (one or two each without that)."""
    writes: list[int] = []
    apply = Outbox.apply

    def counted(self: Outbox, transitions: Sequence[Transition], now: float) -> int:
        writes.append(len(transitions))
        return apply(self, transitions, now)

    monkeypatch.setattr(Outbox, "apply", counted)
    channels = {"trk": {"type": "tests.core.support:TricklingChannel"}}
    TricklingChannel.sent = 0
    async with running(make_config(tmp_path, channels, village_targets("trk", 120))) as service:
        result = await service.submit(make_alert(), origin="test")
        assert (await wait_until_complete(service, result.alert_id))["trk"] == {"confirmed": 120}
    assert sum(writes) >= 240  # each delivery's result and its confirmation
    assert len(writes) <= 25, writes


async def test_restart_resumes_in_flight_deliveries_with_the_same_key(tmp_path: Path) -> None:
    channels = {"rec": {"type": "tests.core.support:RecordingChannel"}}
    config = make_config(tmp_path, channels, village_targets("rec", 4))
    RecordingChannel.sent.clear()
    service = BroadcasterService(config)
    await service.start()
    await service.dispatcher.stop()  # no dispatching: leave the deliveries to us
    await service.housekeeping.stop()
    await service.operations.stop()
    result = await service.intake.submit(make_alert(), origin="test")
    claimed = await service.database.run(service.outbox.claim_due, "rec", service.clock(), 2)
    assert len(claimed) == 2
    await service.database.run(
        service.outbox.apply,
        [Transition(claimed[0].id, DeliveryState.CONFIRMED, detail="done before crash")],
        service.clock(),
    )
    for channel in service.channels.values():
        await channel.stop()
    service.database.close()  # as if the process died with claimed[1] in flight

    async with running(config) as restarted:
        summary = await wait_until_complete(restarted, result.alert_id)
        assert summary == {"rec": {"confirmed": 4}}
        events = await restarted.database.run(restarted.outbox.events, claimed[1].id)
        assert "resumed after restart" in [e["detail"] for e in events]
    resent = {d.idempotency_key for d in RecordingChannel.sent}
    assert claimed[1].idempotency_key in resent
    assert claimed[0].idempotency_key not in resent


async def test_more_severe_alerts_are_sent_first(tmp_path: Path) -> None:
    from broadcaster.cap import Severity

    channels = {"slow": {"type": "tests.core.support:SlowChannel", "concurrency": 1}}
    SlowChannel.started.clear()
    SlowChannel.delay = 0.05
    async with running(make_config(tmp_path, channels, village_targets("slow", 5))) as service:
        minor = await service.submit(make_alert("minor", severity=Severity.MINOR), origin="t")
        while not SlowChannel.started:
            await asyncio.sleep(0.005)
        extreme = await service.submit(make_alert("extreme", severity=Severity.EXTREME), origin="t")
        await wait_until_complete(service, extreme.alert_id)
        await wait_until_complete(service, minor.alert_id)
    order = [s.split("/")[0] for s in SlowChannel.started]
    # after the minor sends already claimed, every extreme send comes before the rest
    first_extreme = order.index("extreme")
    assert order[first_extreme : first_extreme + 5] == ["extreme"] * 5
    assert order.count("minor") == 5


@pytest.mark.parametrize("kind", ["RecordingChannel", "EagerAckChannel"])
async def test_rate_limit_spaces_sends(tmp_path: Path, kind: str) -> None:
    """A channel is held to its rate, whether it sends one delivery at a time
    (``RecordingChannel``) or in batches (``EagerAckChannel``)."""
    import time

    channels = {"limited": {"type": f"tests.core.support:{kind}", "rate_per_second": 20}}
    RecordingChannel.sent.clear()
    async with running(make_config(tmp_path, channels, village_targets("limited", 30))) as service:
        started = time.monotonic()
        result = await service.submit(make_alert(), origin="t")
        await wait_until_complete(service, result.alert_id)
        elapsed = time.monotonic() - started
    # a burst of 20, then 10 more at 20/s: at least 0.5 s
    assert elapsed >= 0.45, elapsed
