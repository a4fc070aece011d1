"""One run of a scheduled test, from start to its stored per-target report.

- ``silent``: every target of the schedule's channels (inside its geocodes, if any) is probed
  with :meth:`~broadcaster.channel.Channel.probe`; nothing goes through the outbox, so nothing
  is played, shown or sent to residents.
- ``audible-test`` / ``exercise``: a CAP alert with status ``Test`` / ``Exercise`` is submitted
  like any other (the core marks it as such on every channel); the report is read from its
  deliveries once each is confirmed, failed or expired, or when the alert expires.

A run that fails (any target not reached, or nothing to test) opens a ``test-run`` notice and
notifies the officers; a later run of the same schedule that passes resolves it.

Which node executes a run (:class:`RunLeases`): several nodes may share one store, and a run is
executed by the node that started it, under a lease that node renews three times per
``[store] lease_seconds``. A node resumes only runs whose lease ran out (their node stopped or
died), at start and at each renewal, and a node that finds it lost a run's lease (another node
took the run over while this one could not reach the store) stops executing it. On a store no
other node shares, a start resumes every run still marked running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from broadcaster.cap import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    NamedValue,
    Scope,
    Severity,
    Status,
    Urgency,
)
from broadcaster.delivery import DeliveryState, Target
from broadcaster.divisions import code_prefix
from broadcaster.errors import BroadcasterError, StoreError
from broadcaster.scheduler.config import ScheduleConfig, ScheduleKind, SchedulerConfig
from broadcaster.scheduler.context import SchedulerContext
from broadcaster.scheduler.linkcheck import probe_targets
from broadcaster.scheduler.notify import OfficerNotifier
from broadcaster.scheduler.store import TargetOutcome
from broadcaster.store.interface import ScheduleStore

log = logging.getLogger(__name__)

VOLUME_PARAMETER = "broadcaster:volume"
"""``<parameter>`` name carrying a schedule's loudspeaker volume (percent)."""

_DEFAULT_TEXTS = {
    ScheduleKind.AUDIBLE_TEST: {
        "zh": (
            "测试",
            "应急广播系统例行测试",
            "这是应急广播系统的例行测试，不是真实预警，无需采取行动。",
        ),
        "en": (
            "Test",
            "Routine test of the warning system",
            "This is a routine test of the warning system. It is not a real warning.",
        ),
    },
    ScheduleKind.EXERCISE: {
        "zh": ("演练", "应急演练", "这是一次应急演练，不是真实预警。请按演练方案行动。"),
        "en": (
            "Exercise",
            "Emergency exercise",
            "This is an exercise, not a real warning. Follow the exercise plan.",
        ),
    },
}
_STATUS = {ScheduleKind.AUDIBLE_TEST: Status.TEST, ScheduleKind.EXERCISE: Status.EXERCISE}
_OPEN_STATES = {DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.ACCEPTED}


def build_test_alert(
    schedule: ScheduleConfig,
    *,
    run_id: int,
    sender: str,
    sender_name: str,
    geocodes: Sequence[str],
    now: float,
) -> Alert:
    """The CAP alert an audible test or an exercise sends (status Test or Exercise)."""
    sent = datetime.fromtimestamp(now, UTC).replace(microsecond=0)
    texts = _DEFAULT_TEXTS[schedule.kind]
    event, headline, description = texts.get(schedule.language.split("-")[0], texts["en"])
    parameters = []
    if schedule.volume is not None:
        parameters.append(NamedValue(VOLUME_PARAMETER, str(schedule.volume)))
    area = Area(
        area_desc=schedule.name,
        geocodes=[NamedValue("CPEAS Geographic Code", code) for code in geocodes],
    )
    return Alert(
        # Not to be guessed: a Draft stored under it first would block the run.
        identifier=f"{schedule.name}.run{run_id}.{int(sent.timestamp())}.{secrets.token_hex(4)}",
        sender=sender,
        sent=sent,
        status=_STATUS[schedule.kind],
        msg_type=MsgType.ALERT,
        scope=Scope.PUBLIC,
        infos=[
            Info(
                language=schedule.language,
                categories=[Category.OTHER],
                event=event,
                urgency=Urgency.FUTURE,
                severity=Severity.MINOR,
                certainty=Certainty.UNLIKELY,
                expires=sent + timedelta(minutes=schedule.expires_minutes),
                sender_name=sender_name or None,
                headline=schedule.headline or headline,
                description=schedule.description or description,
                parameters=parameters,
                areas=[area],
            )
        ],
    )


def in_area(target: Target, geocodes: Sequence[str]) -> bool:
    if not geocodes:
        return True
    return bool(target.division) and any(
        str(target.division).startswith(code_prefix(code)) for code in geocodes
    )


class RunExecutor:
    """Carries out runs for the scheduler and stores their reports."""

    def __init__(
        self,
        context: SchedulerContext,
        config: SchedulerConfig,
        notifier: OfficerNotifier,
        clock: Callable[[], float],
    ) -> None:
        self.context = context
        self.store: ScheduleStore = context.store.schedules
        self.config = config
        self.notifier = notifier
        self.clock = clock

    async def execute(self, schedule: ScheduleConfig, run_id: int) -> str:
        """Carry out run ``run_id`` of ``schedule``; returns the final state."""
        if schedule.kind is ScheduleKind.SILENT:
            outcomes = await self._silent(schedule)
            return await self._finish(schedule, run_id, outcomes, "")
        outcomes, detail = await self._broadcast(schedule, run_id)
        return await self._finish(schedule, run_id, outcomes, detail)

    async def resume(self, schedule: ScheduleConfig, run: dict[str, Any]) -> str:
        """Finish a run the last stop interrupted: collect its alert's report, if it had one."""
        if not run["alert_id"]:
            await self.store.finish_run(
                run["id"],
                [],
                state="interrupted",
                detail="the server stopped during the run",
                now=self.clock(),
            )
            return "interrupted"
        outcomes = await self._collect(str(run["alert_id"]))
        return await self._finish(schedule, int(run["id"]), outcomes, "")

    def _channels(self, schedule: ScheduleConfig) -> list[str]:
        return list(schedule.channels) or list(self.context.channels)

    async def _silent(self, schedule: ScheduleConfig) -> list[TargetOutcome]:
        outcomes: list[TargetOutcome] = []
        context = self.context
        for name in self._channels(schedule):
            targets = await context.store.targets.for_channel(name)
            targets = [t for t in targets if in_area(t, schedule.geocodes)]
            channel = context.channels.get(name)
            if channel is None:
                outcomes += [
                    TargetOutcome(name, t.id, t.name, False, "channel is not running")
                    for t in targets
                ]
                continue
            probed = await probe_targets(
                channel,
                targets,
                concurrency=self.config.probe_concurrency,
                time_limit=schedule.probe_timeout_seconds,
                faults=self.context.faults,
            )
            outcomes += [
                TargetOutcome(name, t.id, t.name, result.ok, result.detail) for t, result in probed
            ]
        return outcomes

    async def _broadcast(
        self, schedule: ScheduleConfig, run_id: int
    ) -> tuple[list[TargetOutcome], str]:
        context = self.context
        wanted = self._channels(schedule)
        running = [name for name in wanted if name in context.channels]
        outcomes: list[TargetOutcome] = []
        for name in wanted:
            if name not in running:
                outcomes.append(TargetOutcome(name, "*", name, False, "channel is not running"))
        geocodes = list(schedule.geocodes)
        if not geocodes and context.divisions is not None:
            geocodes = [division.code for division in context.divisions.roots()]
        alert = build_test_alert(
            schedule,
            run_id=run_id,
            sender=context.config.server.sender,
            sender_name=context.config.server.sender_name,
            geocodes=geocodes,
            now=self.clock(),
        )
        try:
            result = await context.submit(alert, origin="scheduler", channels=running)
        except BroadcasterError as exc:
            return outcomes, f"the test alert was refused: {exc}"
        await self.store.set_run_alert(run_id, result.alert_id)
        return outcomes + await self._collect(result.alert_id), ""

    async def _collect(self, alert_id: str) -> list[TargetOutcome]:
        """Wait until every delivery of the alert is final (or the alert expired), then report."""
        context = self.context
        record = await context.store.alerts.get(alert_id)
        expires_at = float(record["expires_at"]) if record else self.clock()
        loop = asyncio.get_running_loop()
        # The sweeper marks deliveries expired within a poll interval of the alert's expiry.
        margin = 2 * context.config.dispatcher.idle_poll_seconds + 1.0
        deadline = loop.time() + max(0.0, expires_at - self.clock()) + margin
        changed = asyncio.Event()
        unsubscribe = context.subscribe(changed.set)
        try:
            while True:
                changed.clear()
                rows = await context.store.deliveries.deliveries(alert_id, limit=1_000_000)
                if not any(r["state"] in _OPEN_STATES for r in rows) or loop.time() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(5.0, max(0.01, deadline - loop.time()))):
                        await changed.wait()
        finally:
            unsubscribe()
        return self._outcomes(rows)

    def _outcomes(self, rows: list[dict[str, Any]]) -> list[TargetOutcome]:
        by_target: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            by_target.setdefault((row["channel"], row["target_id"]), []).append(row)
        outcomes = []
        for (channel_name, target_id), parts in by_target.items():
            channel = self.context.channels.get(channel_name)
            confirms = channel is not None and channel.capabilities.confirms
            failures = [p for p in parts if not _reached(p, confirms)]
            if failures:
                first = failures[0]
                detail = f"{first['state']}: {first['last_error'] or 'not confirmed'}"
            else:
                detail = "confirmed" if confirms else "accepted (the channel cannot confirm)"
            name = str(parts[0]["target_name"] or target_id)
            outcomes.append(TargetOutcome(channel_name, target_id, name, not failures, detail))
        return outcomes

    async def _finish(
        self, schedule: ScheduleConfig, run_id: int, outcomes: list[TargetOutcome], detail: str
    ) -> str:
        failed = [o for o in outcomes if not o.reached]
        if not outcomes and not detail:
            detail = "no targets to test"
        passed = bool(outcomes) and not failed and not detail
        state = "passed" if passed else "failed"
        if not detail:
            detail = f"{len(outcomes) - len(failed)} of {len(outcomes)} targets reached"
        now = self.clock()
        await self.store.finish_run(run_id, outcomes, state=state, detail=detail, now=now)
        await self.store.resolve_notice("test-run", schedule.name, now)
        log.info("scheduled %s %s (run %d): %s", schedule.kind, schedule.name, run_id, detail)
        if not passed:
            text = self.notifier.texts.run_failed(schedule.name, schedule.kind, outcomes, detail)
            notice = await self.store.open_notice("test-run", schedule.name, text, now)
            notified = await self.notifier.notify(text)
            if notice is not None:
                await self.store.set_notified(notice, notified)
        return state


def _reached(row: dict[str, Any], confirms: bool) -> bool:
    state = row["state"]
    return state == DeliveryState.CONFIRMED or (state == DeliveryState.ACCEPTED and not confirms)


class RunLeases:
    """The runs this node executes, their leases, and the runs it takes over."""

    def __init__(
        self,
        store: ScheduleStore,
        clock: Callable[[], float],
        lease_seconds: float,
        resume: Callable[[dict[str, Any]], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.period = lease_seconds / 3
        self._resume = resume
        self._executing: dict[int, asyncio.Task[None]] = {}

    def track(self, run_id: int, task: asyncio.Task[None]) -> None:
        """``task`` executes run ``run_id`` (under this node's lease) until it ends."""
        self._executing[run_id] = task
        task.add_done_callback(lambda _: self._executing.pop(run_id, None))

    async def take_over(self, *, starting: bool = False) -> None:
        """Resume the runs no live node executes."""
        for run in await self.store.take_over_runs(self.clock(), starting=starting):
            if int(run["id"]) not in self._executing:
                log.info("scheduled run %d of %s: resumed on this node", run["id"], run["schedule"])
                self._resume(run)

    async def release(self) -> None:
        """At a clean stop, after the runs were stopped: hand them to the other nodes now."""
        try:
            released = await self.store.release_runs(self.clock())
        except StoreError as exc:
            log.warning("scheduler: run leases not released (they run out on their own): %s", exc)
        else:
            if released:
                log.info("scheduler: %d running runs left to the other nodes", released)

    async def keep(self) -> None:
        """Renew this node's leases, stop the runs it lost, take over abandoned ones; forever."""
        while True:
            await asyncio.sleep(self.period)
            try:
                mine = set(await self.store.renew_runs(self.clock(), list(self._executing)))
                for run_id, task in list(self._executing.items()):
                    if run_id not in mine:
                        log.warning("scheduled run %d: taken over by another node", run_id)
                        task.cancel()
                await self.take_over()
            except StoreError as exc:  # unreachable for now: the next round tries again
                log.warning("scheduler: cannot renew the leases of its runs: %s", exc)
