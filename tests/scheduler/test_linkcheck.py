"""Link checks: a target that stays unhealthy raises one notice and one message to the officers;
it is resolved when the target recovers; each channel is checked on its own interval."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.scheduler.support import (
    BoxChannel,
    OfficerChannel,
    OffsetClock,
    at,
    box_targets,
    scheduler_config,
    serving,
)

LINKCHECK = {"unhealthy_after": 3, "channels": {"officers": {"enabled": False}}}


async def test_target_that_stays_unhealthy_raises_one_notice_until_it_recovers(
    tmp_path: Path,
) -> None:
    BoxChannel.reset()
    OfficerChannel.notices.clear()
    targets = box_targets(3)
    dead = targets[2]["id"]
    config = scheduler_config(tmp_path, targets=targets, linkcheck=LINKCHECK)
    async with serving(config, OffsetClock(at("2026-06-01 12:00:00"))) as service:
        linkcheck = service.operations.linkcheck
        store = service.store.schedules
        BoxChannel.dead.add(dead)
        for _ in range(2):
            results = await linkcheck.check_channel("boxes")
            assert not results[dead].ok and results["*"].ok
        assert await store.notices() == []  # two failures are not enough
        assert OfficerChannel.notices == []

        await linkcheck.check_channel("boxes")
        await linkcheck.check_channel("boxes")  # still down: no second notice or message
        notices = await store.notices(open_only=True)
        links = await store.links("boxes", failing=True)
        told = OfficerChannel.texts()

        BoxChannel.dead.clear()
        await linkcheck.check_channel("boxes")
        after = await store.notices(open_only=True)
        everything = await store.notices()

    assert len(notices) == 1 and notices[0]["subject"] == f"boxes/{dead}"
    assert "4" not in notices[0]["message"] and "3" in notices[0]["message"]
    assert [n["ok"] for n in notices[0]["notified"]] == [True, True]
    assert [(link["target_id"], link["failures"]) for link in links] == [(dead, 4)]
    assert len(told) == 2 and all(targets[2]["name"] in text for text in told)
    assert after == [] and everything[0]["resolved_at"] is not None
    assert len(OfficerChannel.notices) == 4  # two "down", two "restored"
    assert OfficerChannel.texts()[-1].startswith("链路恢复")


async def test_channels_are_checked_on_their_own_intervals(tmp_path: Path) -> None:
    BoxChannel.reset()
    probed = asyncio.Event()
    BoxChannel.probed = probed
    linkcheck = {
        "interval_seconds": 3600,
        "channels": {"boxes": {"interval_seconds": 1}, "officers": {"enabled": False}},
    }
    config = scheduler_config(tmp_path, linkcheck=linkcheck)
    async with serving(config, OffsetClock(at("2026-06-01 12:00:00"))) as service:
        assert BoxChannel.probes == []  # the first round comes after one interval
        async with asyncio.timeout(5):
            await probed.wait()
        checker = service.operations.linkcheck
        intervals = {name: checker.interval_of(name) for name in service.channels}
    assert intervals == {"boxes": 1, "officers": None}
    assert BoxChannel.probes[:3] == [t["id"] for t in box_targets(3)]


async def test_a_probe_that_hangs_or_raises_is_a_failed_check(tmp_path: Path) -> None:
    BoxChannel.reset()
    targets = box_targets(3)
    BoxChannel.hanging.add(targets[0]["id"])
    BoxChannel.broken.add(targets[1]["id"])
    config = scheduler_config(
        tmp_path, targets=targets, linkcheck={"probe_timeout_seconds": 0.2, "unhealthy_after": 1}
    )
    async with serving(config, OffsetClock(at("2026-06-01 12:00:00"))) as service:
        results = await service.operations.linkcheck.check_channel("boxes")
        notices = await service.store.schedules.notices()
    assert results[targets[0]["id"]].detail == "no answer within 0.2 s"
    assert results[targets[1]["id"]].detail == "probe failed: RuntimeError: driver bug"
    assert results[targets[2]["id"]].ok
    assert sorted(n["subject"] for n in notices) == sorted(f"boxes/{t['id']}" for t in targets[:2])


async def test_a_channel_that_cannot_start_raises_a_notice_at_start(tmp_path: Path) -> None:
    OfficerChannel.notices.clear()
    arrived = asyncio.Event()
    OfficerChannel.arrived = arrived
    config = scheduler_config(tmp_path)
    broken = {**config.channels, "sirens": {"type": "no-such-plugin"}}
    config = config.model_copy(update={"channels": broken})
    try:
        async with serving(config, OffsetClock(at("2026-06-01 12:00:00"))) as service:
            async with asyncio.timeout(5):
                await arrived.wait()
            notices = await service.store.schedules.notices()
    finally:
        OfficerChannel.arrived = None
    assert [n["subject"] for n in notices] == ["sirens/*"]
    assert "no channel plugin named 'no-such-plugin'" in notices[0]["message"]
    assert OfficerChannel.texts()[0].startswith("通道故障：sirens")


async def test_a_channel_can_be_checked_by_its_health_alone(tmp_path: Path) -> None:
    BoxChannel.reset()
    linkcheck = {"channels": {"boxes": {"probe_targets": False}}}
    config = scheduler_config(tmp_path, linkcheck=linkcheck)
    async with serving(config, OffsetClock(at("2026-06-01 12:00:00"))) as service:
        results = await service.operations.linkcheck.check_channel("boxes")
        links = await service.store.schedules.links("boxes")
    assert list(results) == ["*"] and BoxChannel.probes == []
    assert [(link["target_id"], link["ok"]) for link in links] == [("*", True)]


async def test_many_links_down_at_once_make_one_short_message(tmp_path: Path) -> None:
    BoxChannel.reset()
    OfficerChannel.notices.clear()
    targets = box_targets(8)
    BoxChannel.dead.update(t["id"] for t in targets)
    config = scheduler_config(tmp_path, targets=targets, linkcheck={"unhealthy_after": 1})
    async with serving(config, OffsetClock(at("2026-06-01 12:00:00"))) as service:
        await service.operations.linkcheck.check_channel("boxes")
        notices = await service.store.schedules.notices(open_only=True)
    assert len(notices) == 8  # one per target, for the console
    texts = OfficerChannel.texts()
    assert len(texts) == 2  # one message to each of the two officers
    assert texts[0].count("链路故障") == 5 and texts[0].endswith("……另有3处")
