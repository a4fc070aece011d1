"""Deferred alerts are dispatched at their effective time, not before; the expiry sweep marks
what can no longer be delivered, and nothing is sent for it afterwards."""

from __future__ import annotations

from pathlib import Path

from tests.core.support import (
    FlakyChannel,
    RecordingChannel,
    SlowChannel,
    make_alert,
    make_config,
    running,
    village_targets,
    wait_until_complete,
)


async def test_an_alert_effective_later_is_sent_then(tmp_path: Path) -> None:
    RecordingChannel.sent.clear()
    config = make_config(
        tmp_path,
        {"rec": {"type": "tests.core.support:RecordingChannel"}},
        village_targets("rec", 3),
    )
    async with running(config) as service:
        result = await service.submit(make_alert(effective_in=2), origin="test")
        record = await service.database.run(service.alerts.get, result.alert_id)
        assert record is not None and RecordingChannel.sent == []
        summary = await wait_until_complete(service, result.alert_id)
        deliveries = await service.database.run(service.outbox.deliveries, result.alert_id)
        first_sends = [
            next(
                e["at"]
                for e in await service.database.run(service.outbox.events, d["id"])
                if e["to_state"] == "sending"
            )
            for d in deliveries
        ]
    assert summary == {"rec": {"confirmed": 3}}
    assert record["effective_at"] > record["received_at"] + 1
    assert min(first_sends) >= record["effective_at"]


async def test_expiry_marks_what_can_no_longer_be_delivered(tmp_path: Path) -> None:
    SlowChannel.delay = 0.4
    SlowChannel.started.clear()
    FlakyChannel.attempts.clear()
    slow = village_targets("slow", 8)
    flaky = [t | {"params": {"fail": 1000}} for t in village_targets("flaky", 2)]
    config = make_config(
        tmp_path,
        {
            "slow": {"type": "tests.core.support:SlowChannel", "concurrency": 1},
            "flaky": {"type": "tests.core.support:FlakyChannel"},
        },
        slow + flaky,
    )
    async with running(config) as service:
        result = await service.submit(make_alert(expires_in=2), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=15)
        expired = await service.database.run(
            service.outbox.deliveries, result.alert_id, state="expired"
        )
        record = await service.database.run(service.alerts.get, result.alert_id)
        started_at_expiry = list(SlowChannel.started)

    assert record is not None and record["state"] == "expired"
    # The slow channel got through a few before the deadline; the rest expired unsent.
    slow_states = summary["slow"]
    assert slow_states.get("expired", 0) >= 2 and sum(slow_states.values()) == 8
    assert slow_states.get("confirmed", 0) == len(started_at_expiry)
    never_sent = {d["target_id"] for d in expired if d["channel"] == "slow"}
    assert not never_sent & {s.split("/")[1] for s in started_at_expiry}
    # Retries that would fall after the expiry stop: the deliveries are expired, not failed.
    assert summary["flaky"] == {"expired": 2}
    assert all(
        "network busy" in (d["last_error"] or "") for d in expired if d["channel"] == "flaky"
    )
