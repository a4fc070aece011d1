"""Schedules across restarts: a missed run runs once within its grace time, is reported as
missed outside it, and schedules edited at run time stay as edited."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.scheduler.support import (
    BoxChannel,
    OfficerChannel,
    OffsetClock,
    at,
    finished_runs,
    scheduler_config,
    serving,
)

HOURLY = {"name": "hourly-silent", "kind": "silent", "cron": "0 * * * *", "grace_minutes": 45}


async def test_missed_run_runs_once_after_restart_within_grace(tmp_path: Path) -> None:
    BoxChannel.reset()
    config = scheduler_config(tmp_path, [HOURLY])
    clock = OffsetClock(at("2026-06-01 07:50:00"))
    async with serving(config, clock) as service:
        assert await service.store.schedules.runs(None, 10) == []
    # Down from 07:50 to 10:30: the 08:00, 09:00 and 10:00 runs were missed; 10:00 is within
    # the 45 minutes of grace, so it (and only it) runs at start.
    clock.set(at("2026-06-01 10:30:00"))
    async with serving(config, clock) as service:
        runs = await finished_runs(service, 1)
        schedules = await service.operations.scheduler.schedules()
    assert len(runs) == 1
    (run,) = runs
    assert (run["trigger"], run["state"]) == ("catch-up", "passed")
    assert run["scheduled_for"] == at("2026-06-01 10:00:00").timestamp()
    assert len(BoxChannel.probes) == 3  # one round over the three targets
    assert schedules[0]["last_fire_at"] == at("2026-06-01 10:00:00").timestamp()
    # Started again within the same hour: nothing is run twice.
    clock.set(at("2026-06-01 10:40:00"))
    async with serving(config, clock) as service:
        runs = await service.store.schedules.runs(None, 10)
    assert len(runs) == 1


async def test_missed_run_outside_grace_is_reported_and_not_run(tmp_path: Path) -> None:
    BoxChannel.reset()
    OfficerChannel.notices.clear()
    daily = {"name": "daily", "kind": "silent", "cron": "0 9 * * *", "grace_minutes": 60}
    config = scheduler_config(tmp_path, [daily])
    clock = OffsetClock(at("2026-06-01 08:00:00"))
    async with serving(config, clock):
        pass
    clock.set(at("2026-06-01 10:30:00"))
    arrived = asyncio.Event()
    OfficerChannel.arrived = arrived
    try:
        async with serving(config, clock) as service:
            async with asyncio.timeout(5):
                await arrived.wait()
            runs = await service.store.schedules.runs(None, 10)
            notices = await service.store.schedules.notices()
    finally:
        OfficerChannel.arrived = None
    assert BoxChannel.probes == []  # nothing was checked: the run is not done late
    (run,) = runs
    assert (run["trigger"], run["state"]) == ("catch-up", "missed")
    assert run["scheduled_for"] == at("2026-06-01 09:00:00").timestamp()
    assert "past the grace time of 60 min" in run["detail"]
    assert notices[0]["kind"] == "test-run" and notices[0]["subject"] == "daily"
    assert len(OfficerChannel.notices) == 2


async def test_schedules_edited_at_run_time_survive_a_restart(tmp_path: Path) -> None:
    BoxChannel.reset()
    config = scheduler_config(tmp_path, [HOURLY])
    clock = OffsetClock(at("2026-06-01 07:10:00"))
    async with serving(config, clock) as service:
        scheduler = service.operations.scheduler
        await scheduler.update("hourly-silent", {"enabled": False}, by="admin")
        await scheduler.create(
            {"name": "weekly", "kind": "silent", "cron": "30 9 * * 1"}, by="admin"
        )
    clock.set(at("2026-06-01 08:10:00"))  # the hourly run at 08:00 is disabled: not caught up
    async with serving(config, clock) as service:
        rows = {r["name"]: r for r in await service.operations.scheduler.schedules()}
        runs = await service.store.schedules.runs(None, 10)
    assert runs == []
    assert rows["hourly-silent"]["definition"]["enabled"] is False
    assert rows["hourly-silent"]["updated_by"] == "admin"
    assert rows["hourly-silent"]["next_run_at"] is None
    assert rows["weekly"]["source"] == "api"
    # 2026-06-01 is a Monday: crontab weekday 1 is Monday, next at 09:30 the same day.
    assert rows["weekly"]["next_run_at"] == at("2026-06-01 09:30:00").timestamp()


async def test_changed_configuration_entry_replaces_an_edited_schedule(tmp_path: Path) -> None:
    config = scheduler_config(tmp_path, [HOURLY])
    clock = OffsetClock(at("2026-06-01 07:10:00"))
    async with serving(config, clock) as service:
        await service.operations.scheduler.update("hourly-silent", {"cron": "5 * * * *"}, by="a")
    changed = scheduler_config(tmp_path, [{**HOURLY, "cron": "15 * * * *"}])
    async with serving(changed, clock) as service:
        (row,) = await service.operations.scheduler.schedules()
    assert row["definition"]["cron"] == "15 * * * *" and row["updated_by"] == "config"
    removed = scheduler_config(tmp_path, [])
    async with serving(removed, clock) as service:
        assert await service.operations.scheduler.schedules() == []
