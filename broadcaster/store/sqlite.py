"""The SQLite implementation of :class:`~broadcaster.store.interface.Store`.

Each part wraps today's synchronous tables (:class:`~broadcaster.store.alerts.AlertTable`,
:class:`~broadcaster.store.outbox.Outbox`, …) and runs every call on the database's single
writer thread through :meth:`~broadcaster.store.db.Database.run`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from broadcaster.audit import AuditEntry, AuditLog, AuditReport
from broadcaster.delivery import Target
from broadcaster.federation.reports import ReportTables
from broadcaster.scheduler.store import SchedulerStore, SeedEntry, TargetOutcome
from broadcaster.store.alerts import AlertTable
from broadcaster.store.db import Database
from broadcaster.store.interface import Row
from broadcaster.store.outbox import Outbox
from broadcaster.store.targets import TargetTable


class SQLiteAlertStore:
    def __init__(self, database: Database, table: AlertTable) -> None:
        self._run = database.run
        self._table = table

    async def get(self, alert_id: str) -> Row | None:
        return await self._run(self._table.get, alert_id)

    async def status(self, alert_id: str) -> str | None:
        return await self._run(self._table.status, alert_id)

    async def document(self, alert_id: str) -> Row | None:
        return await self._run(self._table.document, alert_id)

    async def raw_xml(self, alert_id: str) -> bytes | None:
        return await self._run(self._table.raw_xml, alert_id)

    async def active(self, now: float, limit: int = 200) -> list[Row]:
        return await self._run(self._table.active, now, limit)

    async def approval(self, alert_id: str) -> Row | None:
        return await self._run(self._table.approval, alert_id)

    async def pending_approvals(self) -> list[Row]:
        return await self._run(self._table.pending_approvals)


class SQLiteDeliveryStore:
    def __init__(self, database: Database, outbox: Outbox) -> None:
        self._run = database.run
        self._outbox = outbox

    async def summary(self, alert_id: str) -> dict[str, dict[str, int]]:
        return await self._run(self._outbox.summary, alert_id)

    async def deliveries(
        self,
        alert_id: str,
        *,
        state: str | None = None,
        channels: Sequence[str] | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Row]:
        return await self._run(
            self._outbox.deliveries,
            alert_id,
            state=state,
            channels=channels,
            limit=limit,
            offset=offset,
        )

    async def events(self, delivery_id: int) -> list[Row]:
        return await self._run(self._outbox.events, delivery_id)

    async def state_counts(self) -> dict[tuple[str, str], int]:
        return await self._run(self._outbox.state_counts)

    async def warning_counts(self) -> dict[str, int]:
        return await self._run(self._outbox.warning_counts)


class SQLiteTargetStore:
    def __init__(self, database: Database, table: TargetTable) -> None:
        self._run = database.run
        self._table = table

    async def replace_all(self, targets: Iterable[Target], source: str = "registry") -> int:
        return await self._run(self._table.replace_all, targets, source)

    async def upsert(self, target: Target, source: str) -> None:
        await self._run(self._table.upsert, target, source)

    async def remove(self, target_id: str, source: str) -> bool:
        return await self._run(self._table.remove, target_id, source)

    async def get(self, target_id: str) -> Target | None:
        return await self._run(self._table.get, target_id)

    async def for_channel(self, channel: str) -> list[Target]:
        return await self._run(self._table.for_channel, channel)

    async def counts(self) -> dict[str, int]:
        return await self._run(self._table.counts)


class SQLiteAuditStore:
    def __init__(self, database: Database, log: AuditLog) -> None:
        self._run = database.run
        self._log = log

    async def append(
        self, actor: str, action: str, subject: str = "", detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        return await self._run(self._log.append, actor, action, subject, detail)

    async def entries(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
    ) -> list[AuditEntry]:
        return await self._run(
            self._log.entries,
            limit=limit,
            offset=offset,
            action=action,
            actor=actor,
            subject=subject,
        )

    async def verify(self) -> AuditReport:
        return await self._run(self._log.verify)


class SQLiteScheduleStore:
    def __init__(self, database: Database, tables: SchedulerStore) -> None:
        self._run = database.run
        self._tables = tables

    async def seed(self, entries: Sequence[SeedEntry], now: float) -> list[str]:
        return await self._run(self._tables.seed, entries, now)

    async def schedules(self) -> list[Row]:
        return await self._run(self._tables.schedules)

    async def schedule(self, name: str) -> Row | None:
        return await self._run(self._tables.schedule, name)

    async def create(self, name: str, definition: dict[str, Any], *, by: str, now: float) -> None:
        await self._run(self._tables.create, name, definition, by=by, now=now)

    async def update(self, name: str, definition: dict[str, Any], *, by: str, now: float) -> bool:
        return await self._run(self._tables.update, name, definition, by=by, now=now)

    async def delete(self, name: str) -> bool:
        return await self._run(self._tables.delete, name)

    async def set_last_fire(self, name: str, at: float) -> None:
        await self._run(self._tables.set_last_fire, name, at)

    async def claim_fire(self, name: str, scheduled_for: float) -> bool:
        return await self._run(self._tables.claim_fire, name, scheduled_for)

    async def start_run(
        self, schedule: str, kind: str, trigger: str, scheduled_for: float | None, now: float
    ) -> int:
        return await self._run(self._tables.start_run, schedule, kind, trigger, scheduled_for, now)

    async def record_missed(
        self,
        schedule: str,
        kind: str,
        scheduled_for: float,
        now: float,
        detail: str,
        trigger: str = "catch-up",
    ) -> int:
        return await self._run(
            self._tables.record_missed, schedule, kind, scheduled_for, now, detail, trigger
        )

    async def set_run_alert(self, run_id: int, alert_id: str) -> None:
        await self._run(self._tables.set_run_alert, run_id, alert_id)

    async def finish_run(
        self,
        run_id: int,
        outcomes: Sequence[TargetOutcome],
        *,
        state: str,
        detail: str,
        now: float,
    ) -> None:
        await self._run(
            self._tables.finish_run, run_id, outcomes, state=state, detail=detail, now=now
        )

    async def runs(self, schedule: str | None = None, limit: int = 50) -> list[Row]:
        return await self._run(self._tables.runs, schedule, limit)

    async def run(self, run_id: int) -> Row | None:
        return await self._run(self._tables.run, run_id)

    async def take_over_runs(self, now: float, *, starting: bool) -> list[Row]:
        return await self._run(self._tables.take_over_runs, now, starting=starting)

    async def renew_runs(self, now: float, run_ids: Sequence[int]) -> list[int]:
        return await self._run(self._tables.renew_runs, now, run_ids)

    async def release_runs(self, now: float) -> int:
        return await self._run(self._tables.release_runs, now)

    async def record_probes(
        self, channel: str, results: Sequence[tuple[str, bool, str]], now: float
    ) -> dict[str, int]:
        return await self._run(self._tables.record_probes, channel, results, now)

    async def links(self, channel: str | None = None, *, failing: bool = False) -> list[Row]:
        return await self._run(self._tables.links, channel, failing=failing)

    async def open_notice(self, kind: str, subject: str, message: str, now: float) -> int | None:
        return await self._run(self._tables.open_notice, kind, subject, message, now)

    async def resolve_notice(self, kind: str, subject: str, now: float) -> int | None:
        return await self._run(self._tables.resolve_notice, kind, subject, now)

    async def resolve_notices(self, kind: str, subjects: Sequence[str], now: float) -> list[str]:
        return await self._run(self._tables.resolve_notices, kind, subjects, now)

    async def set_notified(self, notice_id: int, outcomes: Sequence[dict[str, Any]]) -> None:
        await self._run(self._tables.set_notified, notice_id, outcomes)

    async def notices(self, *, open_only: bool = False, limit: int = 100) -> list[Row]:
        return await self._run(self._tables.notices, open_only=open_only, limit=limit)

    async def acknowledge(self, notice_id: int, *, by: str, now: float) -> bool:
        return await self._run(self._tables.acknowledge, notice_id, by=by, now=now)


class SQLiteNodeReportStore:
    def __init__(self, database: Database, tables: ReportTables) -> None:
        self._run = database.run
        self._tables = tables

    async def record(
        self, delivery_id: int, node: str, summary: Mapping[str, Any], complete: bool, now: float
    ) -> None:
        await self._run(self._tables.record_node_report, delivery_id, node, summary, complete, now)

    async def for_alert(self, alert_id: str) -> dict[int, Row]:
        return await self._run(self._tables.node_reports, alert_id)


class SQLiteStore:
    """Every part of the store over one SQLite :class:`~broadcaster.store.db.Database`."""

    def __init__(
        self,
        database: Database,
        *,
        alerts: AlertTable,
        outbox: Outbox,
        targets: TargetTable,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.alerts = SQLiteAlertStore(database, alerts)
        self.deliveries = SQLiteDeliveryStore(database, outbox)
        self.targets = SQLiteTargetStore(database, targets)
        self.audit = SQLiteAuditStore(database, AuditLog(database, clock))
        self.schedules = SQLiteScheduleStore(database, SchedulerStore(database))
        self.reports = SQLiteNodeReportStore(database, ReportTables(database))
