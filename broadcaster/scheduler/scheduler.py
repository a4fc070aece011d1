"""Scheduled test broadcasts on APScheduler's ``AsyncIOScheduler``, kept across restarts.

Schedules live in the ``schedules`` table: those of ``[scheduler]`` in the configuration are
brought in at start (:meth:`SchedulerStore.seed`), admins add and edit others through the API.
Each enabled schedule is one APScheduler job on a :class:`ClockTrigger` (cron in the schedule's
zone, read on the service's clock); a firing starts a run in the background and returns.

Restarts: the table keeps, per schedule, the latest cron time handled. On start, if cron times
passed while the server was down, the latest one runs once now when it is within the grace time
(``grace_minutes``); otherwise a ``missed`` report is stored and the officers are told. A run
the stop interrupted is finished from its alert's deliveries, or marked ``interrupted``.
With several nodes on one store, only runs no live node executes are resumed
(:class:`~broadcaster.scheduler.runs.RunLeases`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError

from broadcaster.scheduler.config import (
    ScheduleConfig,
    ScheduleConflictError,
    ScheduleError,
    ScheduleNotFoundError,
    SchedulerConfig,
    problem_lines,
    schedule_problems,
    scheduler_config,
)
from broadcaster.scheduler.context import SchedulerContext
from broadcaster.scheduler.linkcheck import LinkChecker
from broadcaster.scheduler.notify import OfficerNotifier
from broadcaster.scheduler.runs import RunExecutor, RunLeases
from broadcaster.scheduler.store import SeedEntry
from broadcaster.scheduler.triggers import (
    ClockTrigger,
    cron_trigger,
    latest_fire_time,
    next_fire_time,
)
from broadcaster.store.interface import ScheduleStore
from broadcaster.tasks import TaskSet

log = logging.getLogger(__name__)

RunListener = Callable[[int, str, str], None]
"""Called with (run id, schedule name, final state) when a run ends."""


def _config_hash(definition: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


class TestBroadcastScheduler:
    """Fires scheduled runs, catches up missed ones, and edits schedules at run time."""

    __test__ = False  # not a test class, whatever its name

    def __init__(
        self,
        context: SchedulerContext,
        config: SchedulerConfig,
        executor: RunExecutor,
        clock: Callable[[], float],
        jobs: AsyncIOScheduler,
    ) -> None:
        self.context = context
        self.store: ScheduleStore = context.store.schedules
        self.config = config
        self.executor = executor
        self.clock = clock
        self._jobs = jobs
        self._tasks = TaskSet("scheduler")
        self._schedules: dict[str, ScheduleConfig] = {}
        self._running: dict[str, int] = {}
        self._leases = RunLeases(
            self.store, clock, context.config.store.lease_seconds, self._resume
        )
        self._handled: dict[str, float] = {}
        self._listeners: list[RunListener] = []

    async def start(self) -> None:
        entries = []
        for schedule in self.config.schedules:
            definition = schedule.model_dump(mode="json")
            entries.append(SeedEntry(schedule.name, definition, _config_hash(definition)))
        for change in await self.store.seed(entries, self.clock()):
            log.info("%s", change)
        rows = await self.store.schedules()
        for row in rows:
            try:
                schedule = ScheduleConfig.model_validate(row["definition"])
            except ValidationError as exc:
                log.error("schedule %s is not valid any more: %s", row["name"], exc)
                continue
            self._install(schedule)
        await self._leases.take_over(starting=True)
        for row in rows:
            known = self._schedules.get(row["name"])
            if known is not None and known.enabled and row["name"] not in self._running:
                await self._catch_up(known, row["last_fire_at"])
        self._tasks.spawn(self._leases.keep(), name="scheduler:run leases")

    async def stop(self) -> None:
        """Stop the runs in progress (call after the jobs' scheduler is shut down) and leave
        them to the other nodes sharing the store."""
        await self._tasks.close()
        await self._leases.release()

    def subscribe(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener`` when a run ends; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- firing ----------------------------------------------------------------------------

    def _install(self, schedule: ScheduleConfig) -> None:
        self._schedules[schedule.name] = schedule
        if self._jobs.get_job(schedule.name) is not None:
            self._jobs.remove_job(schedule.name)
        if not schedule.enabled:
            return
        trigger = cron_trigger(schedule.cron, self.config.zone_of(schedule))
        self._jobs.add_job(
            self._spawn_fire,
            ClockTrigger(trigger, self.clock),
            args=[schedule.name],
            id=schedule.name,
            name=schedule.name,
            misfire_grace_time=max(1, int(self.config.grace_of(schedule))),
            coalesce=True,
            max_instances=1,
        )

    async def _spawn_fire(self, name: str) -> None:
        # The job only starts the work in the scheduler's own task set, so a stop never
        # cancels APScheduler's task halfway through a database call.
        self._tasks.spawn(self._fire(name), name=f"fire:{name}")

    async def _fire(self, name: str) -> None:
        schedule = self._schedules.get(name)
        if schedule is None or not schedule.enabled:
            return
        trigger = cron_trigger(schedule.cron, self.config.zone_of(schedule))
        now = self.clock()
        window = self.config.grace_of(schedule) + 60
        due, _ = await asyncio.to_thread(latest_fire_time, trigger, now - window, now + 0.5)
        scheduled_for = due if due is not None else now
        if scheduled_for <= self._handled.get(name, float("-inf")):
            return  # caught up at start already
        if not await self.store.claim_fire(name, scheduled_for):
            self._handled[name] = scheduled_for
            return  # another node sharing the store runs it
        try:
            await self._launch(schedule, "cron", scheduled_for)
        except ScheduleConflictError as exc:
            log.warning("schedule %s: not started: %s", name, exc)
            await self.store.record_missed(
                name,
                schedule.kind,
                scheduled_for,
                now,
                f"not run: {exc}",
                "cron",
            )

    async def _catch_up(self, schedule: ScheduleConfig, last_fire_at: float | None) -> None:
        now = self.clock()
        if last_fire_at is None:
            await self.store.set_last_fire(schedule.name, now)
            return
        trigger = cron_trigger(schedule.cron, self.config.zone_of(schedule))
        grace = self.config.grace_of(schedule)
        since = max(last_fire_at, now - grace)
        due, count = await asyncio.to_thread(latest_fire_time, trigger, since, now)
        if due is not None and not await self.store.claim_fire(schedule.name, due):
            self._handled[schedule.name] = due
            return  # another node sharing the store ran it or runs it
        if due is not None:
            log.info("schedule %s: running the run due at %s now", schedule.name, _iso(due))
            await self._launch(schedule, "catch-up", due)
            return
        missed, count = await asyncio.to_thread(latest_fire_time, trigger, last_fire_at, now)
        if missed is None or not await self.store.claim_fire(schedule.name, missed):
            return
        detail = (
            f"{count} run(s) missed while the server was down, the last due at {_iso(missed)};"
            f" past the grace time of {grace / 60:g} min"
        )
        log.warning("schedule %s: %s", schedule.name, detail)
        await self.store.record_missed(schedule.name, schedule.kind, missed, now, detail)
        self._handled[schedule.name] = missed
        text = self.executor.notifier.texts.run_failed(schedule.name, schedule.kind, [], detail)
        notice = await self.store.open_notice("test-run", schedule.name, text, now)
        self._tasks.spawn(self._tell(notice, text), name=f"missed:{schedule.name}")

    async def _tell(self, notice: int | None, text: str) -> None:
        """Notify the officers (in the background: a slow channel must not hold up a start)."""
        notified = await self.executor.notifier.notify(text)
        if notice is not None:
            await self.store.set_notified(notice, notified)

    async def _launch(
        self, schedule: ScheduleConfig, trigger: str, scheduled_for: float | None
    ) -> int:
        if schedule.name in self._running:
            raise ScheduleConflictError(
                f"schedule {schedule.name} is running (run {self._running[schedule.name]})"
            )
        run_id = await self.store.start_run(
            schedule.name, schedule.kind, trigger, scheduled_for, self.clock()
        )
        self._running[schedule.name] = run_id
        if scheduled_for is not None:
            self._handled[schedule.name] = scheduled_for
        self._spawn_run(schedule, run_id, None)
        return run_id

    def _resume(self, run: dict[str, Any]) -> None:
        known = self._schedules.get(run["schedule"])
        schedule = known or ScheduleConfig(name=run["schedule"], kind=run["kind"], cron="0 0 1 1 *")
        self._running[schedule.name] = int(run["id"])
        self._spawn_run(schedule, int(run["id"]), run)

    def _spawn_run(
        self, schedule: ScheduleConfig, run_id: int, unfinished: dict[str, Any] | None
    ) -> None:
        task = self._tasks.spawn(self._execute(schedule, run_id, unfinished), name=f"run:{run_id}")
        self._leases.track(run_id, task)

    async def _execute(
        self, schedule: ScheduleConfig, run_id: int, unfinished: dict[str, Any] | None
    ) -> None:
        state = "failed"
        try:
            if unfinished is None:
                state = await self.executor.execute(schedule, run_id)
            else:
                state = await self.executor.resume(schedule, unfinished)
        except Exception as exc:
            log.exception("scheduled run %d of %s failed", run_id, schedule.name)
            await self.store.finish_run(
                run_id,
                [],
                state="failed",
                detail=f"internal error: {type(exc).__name__}: {exc}",
                now=self.clock(),
            )
        finally:
            self._running.pop(schedule.name, None)
        for listener in list(self._listeners):
            listener(run_id, schedule.name, state)

    # -- editing ---------------------------------------------------------------------------

    def _validated(self, definition: Mapping[str, Any]) -> ScheduleConfig:
        config = self.context.config
        problems = schedule_problems(
            dict(definition), config.channels, config.registry.divisions is not None
        )
        if problems:
            raise ScheduleError("invalid schedule", problem_lines(problems))
        return ScheduleConfig.model_validate(dict(definition))

    async def schedules(self) -> list[dict[str, Any]]:
        """Every schedule with its source, next run time and whether it is running."""
        rows = await self.store.schedules()
        now = self.clock()
        for row in rows:
            schedule = self._schedules.get(row["name"])
            row["running_run"] = self._running.get(row["name"])
            row["next_run_at"] = None
            if schedule is not None and schedule.enabled:
                trigger = cron_trigger(schedule.cron, self.config.zone_of(schedule))
                row["next_run_at"] = next_fire_time(trigger, now)
        return rows

    async def schedule(self, name: str) -> dict[str, Any]:
        for row in await self.schedules():
            if row["name"] == name:
                return row
        raise ScheduleNotFoundError(f"no schedule {name!r}")

    async def create(self, definition: Mapping[str, Any], *, by: str) -> ScheduleConfig:
        """Add a schedule; raises ScheduleError naming every problem, nothing stored."""
        schedule = self._validated(definition)
        await self.store.create(
            schedule.name, schedule.model_dump(mode="json"), by=by, now=self.clock()
        )
        self._install(schedule)
        return schedule

    async def update(self, name: str, changes: Mapping[str, Any], *, by: str) -> ScheduleConfig:
        """Change some fields of a schedule (not its name); raises ScheduleError."""
        row = await self.store.schedule(name)
        if row is None:
            raise ScheduleNotFoundError(f"no schedule {name!r}")
        if changes.get("name", name) != name:
            raise ScheduleError("invalid schedule", ["name: a schedule cannot be renamed"])
        schedule = self._validated({**row["definition"], **changes})
        definition = schedule.model_dump(mode="json")
        await self.store.update(name, definition, by=by, now=self.clock())
        await self.store.set_last_fire(name, self.clock())
        self._install(schedule)
        return schedule

    async def delete(self, name: str) -> None:
        row = await self.store.schedule(name)
        if row is None:
            raise ScheduleNotFoundError(f"no schedule {name!r}")
        if row["source"] == "config":
            raise ScheduleConflictError(
                f"schedule {name} is defined in the configuration; disable it instead"
            )
        await self.store.delete(name)
        if self._jobs.get_job(name) is not None:
            self._jobs.remove_job(name)
        self._schedules.pop(name, None)

    async def run_now(self, name: str) -> int:
        """Start a run of ``name`` at once (also when disabled); returns the run id."""
        schedule = self._schedules.get(name)
        if schedule is None:
            raise ScheduleNotFoundError(f"no schedule {name!r}")
        return await self._launch(schedule, "manual", None)


class ScheduledOperations:
    """The scheduler, the link checks and the officers' notifier of one running service."""

    def __init__(self, context: SchedulerContext) -> None:
        self.config = scheduler_config(context.config)
        self.store = context.store.schedules
        self.notifier = OfficerNotifier(
            self.config.notify,
            context.channels,
            sender=context.config.server.sender,
            sender_name=context.config.server.sender_name,
            clock=context.clock,
            send_timeout=context.config.dispatcher.send_timeout_seconds,
        )
        executor = RunExecutor(context, self.config, self.notifier, context.clock)
        self.jobs = AsyncIOScheduler(timezone=UTC)
        self.scheduler = TestBroadcastScheduler(
            context, self.config, executor, context.clock, self.jobs
        )
        self.linkcheck = LinkChecker(
            context.store,
            context.channels,
            context.failures,
            context.faults,
            self.config.linkcheck,
            self.notifier,
            context.clock,
            concurrency=self.config.probe_concurrency,
        )

    async def start(self) -> None:
        if not self.config.enabled:
            return
        self.jobs.start()
        await self.scheduler.start()
        await self.linkcheck.start(self.jobs)

    async def stop(self) -> None:
        if self.jobs.running:
            self.jobs.shutdown(wait=False)
            await asyncio.sleep(0)  # APScheduler shuts down on the next turn of the loop
        await self.linkcheck.stop()
        await self.scheduler.stop()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
