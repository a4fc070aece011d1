"""Scheduled runs: firing at the cron time on the service's clock, reports per target, silent
checks that send nothing, notices to officers."""

from __future__ import annotations

from pathlib import Path

from broadcaster.cap import Status
from broadcaster.scheduler.runs import VOLUME_PARAMETER
from tests.core.support import COUNTY, RecordingChannel
from tests.scheduler.support import (
    BoxChannel,
    OfficerChannel,
    OffsetClock,
    at,
    box_targets,
    finished_runs,
    scheduler_config,
    serving,
)

MONTHLY_TEST = {
    "name": "monthly-audible",
    "kind": "audible-test",
    "cron": "0 10 1 * *",
    "channels": ["boxes"],
    "geocodes": [COUNTY],
    "volume": 30,
}


async def test_schedule_fires_at_its_time_and_reports_each_target(tmp_path: Path) -> None:
    BoxChannel.reset()
    OfficerChannel.notices.clear()
    targets = box_targets(3, t1={"permanent": True})
    config = scheduler_config(tmp_path, [MONTHLY_TEST], targets)
    clock = OffsetClock(at("2026-06-01 09:59:59.300"))
    async with serving(config, clock) as service:
        (run,) = await finished_runs(service, 1, timeout=5)
        report = await service.store.schedules.run(run["id"])
        record = await service.database.run(service.alerts.get, run["alert_id"])

    assert report is not None and record is not None
    assert run["trigger"] == "cron"
    assert run["scheduled_for"] == at("2026-06-01 10:00:00").timestamp()
    assert run["started_at"] >= run["scheduled_for"]
    assert (run["state"], run["reached"], run["failed"]) == ("failed", 2, 1)
    outcomes = {t["target_id"]: (t["outcome"], t["detail"]) for t in report["targets"]}
    failing = targets[1]["id"]
    assert outcomes[failing] == ("failed", "failed: box refused the command")
    assert all(o == ("reached", "confirmed") for tid, o in outcomes.items() if tid != failing)

    # The alert is a CAP Test, marked on the channel, carrying the schedule's volume.
    assert record["status"] == "Test" and record["origin"] == "scheduler"
    delivered = BoxChannel.sent[0].message
    assert delivered.alert.status is Status.TEST and delivered.is_test
    assert delivered.rendition.texts[0].title.startswith("【测试】")
    parameters = {p.value_name: p.value for p in delivered.alert.infos[0].parameters}
    assert parameters[VOLUME_PARAMETER] == "30"

    # Both officers were told once, naming the failed target.
    assert [d.target.address for d in OfficerChannel.notices] == [
        "+8613800000001",
        "+8613800000002",
    ]
    assert "1/3" in OfficerChannel.texts()[0] and targets[1]["name"] in OfficerChannel.texts()[0]


async def test_schedule_does_not_fire_before_its_time(tmp_path: Path) -> None:
    BoxChannel.reset()
    config = scheduler_config(tmp_path, [MONTHLY_TEST])
    clock = OffsetClock(at("2026-06-01 09:58:00"))
    async with serving(config, clock) as service:
        schedules = await service.operations.scheduler.schedules()
        runs = await service.store.schedules.runs(None, 10)
    assert runs == [] and BoxChannel.sent == []
    assert schedules[0]["next_run_at"] == at("2026-06-01 10:00:00").timestamp()


async def test_silent_run_checks_every_target_and_sends_nothing(tmp_path: Path) -> None:
    BoxChannel.reset()
    RecordingChannel.sent.clear()
    OfficerChannel.notices.clear()
    fm = {"id": "fm-1", "channel": "fm", "name": "FM 98.1", "division": COUNTY}
    targets = [*box_targets(4, t2={"dead": True}), fm]
    config = scheduler_config(
        tmp_path,
        [{"name": "daily-silent", "kind": "silent", "cron": "0 9 * * *"}],
        targets,
    )
    config = config.model_copy(
        update={
            "channels": {**config.channels, "fm": {"type": "tests.core.support:RecordingChannel"}}
        }
    )
    clock = OffsetClock(at("2026-06-02 08:59:59.500"))
    async with serving(config, clock) as service:
        (run,) = await finished_runs(service, 1, timeout=5)
        report = await service.store.schedules.run(run["id"])
        alerts = await service.database.run(service.database.query, "SELECT id FROM alerts")
        deliveries = await service.database.run(service.database.query, "SELECT id FROM deliveries")

    assert report is not None
    # Nothing reached a resident: no alert, no delivery, no send on any channel.
    assert alerts == [] and deliveries == []
    assert BoxChannel.sent == [] and RecordingChannel.sent == []
    assert sorted(BoxChannel.probes) == sorted(t["id"] for t in targets[:4])
    outcomes = {t["target_id"]: (t["outcome"], t["detail"]) for t in report["targets"]}
    assert outcomes[targets[2]["id"]] == ("failed", "no heartbeat for 900 s")
    assert outcomes[targets[0]["id"]] == ("reached", "heartbeat 5 s ago")
    # A channel without its own probe answers through its health.
    assert outcomes["fm-1"] == ("reached", "channel healthy")
    assert (run["kind"], run["state"], run["reached"], run["failed"]) == ("silent", "failed", 4, 1)
    # The officers' channel is not a broadcast target of the run; they got the notice.
    assert len(OfficerChannel.notices) == 2
    assert "1/5" in OfficerChannel.texts()[0]


async def test_exercise_that_reaches_everyone_passes_and_resolves_the_last_failure(
    tmp_path: Path,
) -> None:
    BoxChannel.reset()
    OfficerChannel.notices.clear()
    schedule = {**MONTHLY_TEST, "name": "drill", "kind": "exercise", "cron": "0 0 1 1 *"}
    config = scheduler_config(tmp_path, [schedule], box_targets(2, t0={"dead": True}))
    clock = OffsetClock(at("2026-03-01 08:00:00"))
    async with serving(config, clock) as service:
        scheduler = service.operations.scheduler
        store = service.store.schedules
        silent = {"name": "probe", "kind": "silent", "cron": "0 0 1 1 *"}
        await scheduler.create(silent, by="admin")
        await scheduler.run_now("probe")
        first = (await finished_runs(service, 1))[-1]
        failing_notices = await store.notices(open_only=True)
        await scheduler.run_now("drill")
        second = (await finished_runs(service, 2))[-1]
        record = await service.database.run(service.alerts.get, second["alert_id"])

    assert first["state"] == "failed" and failing_notices[0]["subject"] == "probe"
    assert failing_notices[0]["notified"][0]["ok"] is True
    assert (second["state"], second["trigger"], second["reached"]) == ("passed", "manual", 2)
    assert record is not None and record["status"] == "Exercise"
    assert BoxChannel.sent[0].message.rendition.texts[0].title.startswith("【演练】")
    assert len(OfficerChannel.notices) == 2  # only the failed silent run was notified


async def test_a_firing_while_the_last_run_is_still_going_is_recorded_as_missed(
    tmp_path: Path,
) -> None:
    BoxChannel.reset()
    targets = box_targets(2)
    BoxChannel.hanging.add(targets[0]["id"])
    schedule = {"name": "slow", "kind": "silent", "cron": "0 10 * * *", "probe_timeout_seconds": 2}
    config = scheduler_config(tmp_path, [schedule], targets)
    clock = OffsetClock(at("2026-06-01 09:59:59.200"))
    async with serving(config, clock) as service:
        manual = await service.operations.scheduler.run_now("slow")
        runs = await finished_runs(service, 2, timeout=10)
    by_trigger = {run["trigger"]: run for run in runs}
    assert by_trigger["manual"]["id"] == manual and by_trigger["manual"]["state"] == "failed"
    skipped = by_trigger["cron"]
    assert skipped["state"] == "missed" and f"run {manual}" in skipped["detail"]
    assert skipped["scheduled_for"] == at("2026-06-01 10:00:00").timestamp()
