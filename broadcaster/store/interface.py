"""The store as the rest of the system sees it: typed, asynchronous, engine-neutral.

Handlers, the scheduler and the service reach stored state only through a :class:`Store`:
its parts (:class:`AlertStore`, :class:`DeliveryStore`, :class:`TargetStore`,
:class:`AuditStore`, :class:`ScheduleStore`, :class:`NodeReportStore`) are coroutines
returning records or plain rows, never connections or cursors, so another engine can implement
them beside SQLite (:mod:`broadcaster.store.sqlite`). Rows are JSON-ready dicts whose keys are
the column names the HTTP API and the console already show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from broadcaster.audit import AuditEntry, AuditReport
from broadcaster.delivery import Target
from broadcaster.scheduler.store import SeedEntry, TargetOutcome

Row = dict[str, Any]
"""One stored row, keyed by column name (values are JSON types)."""


class AlertStore(Protocol):
    """Stored alerts: their records, CAP documents and approval state."""

    async def get(self, alert_id: str) -> Row | None:
        """The alert's record (state, channels, times…), or None."""

    async def status(self, alert_id: str) -> str | None:
        """The alert's CAP status (``Actual``, ``Exercise``, ``Test`` ...), or None."""

    async def document(self, alert_id: str) -> Row | None:
        """The alert's CAP document as JSON, or None."""

    async def raw_xml(self, alert_id: str) -> bytes | None:
        """The CAP XML as received (or as built), or None."""

    async def active(self, now: float, limit: int = 200) -> list[Row]:
        """Alerts in force at ``now``, newest first."""

    async def approval(self, alert_id: str) -> Row | None:
        """The alert's approval row (who asked, who decided), or None."""

    async def pending_approvals(self) -> list[Row]:
        """Alerts waiting for a second party, oldest first."""


class DeliveryStore(Protocol):
    """The outbox seen from outside the dispatcher: summaries, rows and event logs."""

    async def summary(self, alert_id: str) -> dict[str, dict[str, int]]:
        """Delivery counts of one alert by channel and state."""

    async def deliveries(
        self,
        alert_id: str,
        *,
        state: str | None = None,
        channels: Sequence[str] | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Row]:
        """The deliveries of one alert, optionally of one state and of some channels only."""

    async def events(self, delivery_id: int) -> list[Row]:
        """The state changes of one delivery, oldest first."""

    async def state_counts(self) -> dict[tuple[str, str], int]:
        """Deliveries by (channel, state), all alerts together."""

    async def warning_counts(self) -> dict[str, int]:
        """Delivery warnings by kind."""


class TargetStore(Protocol):
    """The target registry: the configured file's rows and those channels register."""

    async def replace_all(self, targets: Iterable[Target], source: str = "registry") -> int:
        """Replace every target of ``source``; returns how many are stored."""

    async def upsert(self, target: Target, source: str) -> None:
        """Add or change one target of ``source``."""

    async def remove(self, target_id: str, source: str) -> bool:
        """Remove one target of ``source``; False if there was none."""

    async def get(self, target_id: str) -> Target | None:
        """One target, or None."""

    async def for_channel(self, channel: str) -> list[Target]:
        """Every target of one channel."""

    async def counts(self) -> dict[str, int]:
        """Targets by channel."""


class AuditStore(Protocol):
    """The hash-chained audit log."""

    async def append(
        self, actor: str, action: str, subject: str = "", detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Append one entry, chained to the one before."""

    async def entries(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
    ) -> list[AuditEntry]:
        """Entries, newest first, optionally filtered."""

    async def verify(self) -> AuditReport:
        """Check the whole chain."""


class ScheduleStore(Protocol):
    """Schedules of test broadcasts, their run reports, link status and officers' notices."""

    async def seed(self, entries: Sequence[SeedEntry], now: float) -> list[str]:
        """Bring the configuration's schedules in; returns what changed."""

    async def schedules(self) -> list[Row]:
        """Every schedule with its definition, source and latest cron time handled."""

    async def schedule(self, name: str) -> Row | None:
        """One schedule, or None."""

    async def create(self, name: str, definition: dict[str, Any], *, by: str, now: float) -> None:
        """Add a schedule (StoreError if the name is taken)."""

    async def update(self, name: str, definition: dict[str, Any], *, by: str, now: float) -> bool:
        """Replace a schedule's definition; False if there is none."""

    async def delete(self, name: str) -> bool:
        """Delete a schedule; False if there is none."""

    async def set_last_fire(self, name: str, at: float) -> None:
        """Record the latest cron time handled."""

    async def claim_fire(self, name: str, scheduled_for: float) -> bool:
        """Take a schedule's cron time for this node; False if a node took it already."""

    async def start_run(
        self, schedule: str, kind: str, trigger: str, scheduled_for: float | None, now: float
    ) -> int:
        """Open a run report; returns its id."""

    async def record_missed(
        self,
        schedule: str,
        kind: str,
        scheduled_for: float,
        now: float,
        detail: str,
        trigger: str = "catch-up",
    ) -> int:
        """Store a run that did not happen; returns its id."""

    async def set_run_alert(self, run_id: int, alert_id: str) -> None:
        """Link a run to the alert it sent."""

    async def finish_run(
        self,
        run_id: int,
        outcomes: Sequence[TargetOutcome],
        *,
        state: str,
        detail: str,
        now: float,
    ) -> None:
        """Close a run report with its per-target outcomes."""

    async def runs(self, schedule: str | None = None, limit: int = 50) -> list[Row]:
        """Run reports, newest first."""

    async def run(self, run_id: int) -> Row | None:
        """One run report with its outcomes, or None."""

    async def take_over_runs(self, now: float, *, starting: bool) -> list[Row]:
        """Take the running runs no live node executes (a stop or a death interrupted them)."""

    async def renew_runs(self, now: float, run_ids: Sequence[int]) -> list[int]:
        """Renew the lease of the runs this node executes; the ids still this node's."""

    async def release_runs(self, now: float) -> int:
        """End this node's leases on its running runs (a clean stop); returns how many."""

    async def record_probes(
        self, channel: str, results: Sequence[tuple[str, bool, str]], now: float
    ) -> dict[str, int]:
        """Store link checks ``(target_id, ok, detail)``; returns failures in a row by target."""

    async def links(self, channel: str | None = None, *, failing: bool = False) -> list[Row]:
        """Link status rows."""

    async def open_notice(self, kind: str, subject: str, message: str, now: float) -> int | None:
        """Open a notice; None if one is open for the subject already."""

    async def resolve_notice(self, kind: str, subject: str, now: float) -> int | None:
        """Resolve the open notice of a subject; its id, or None."""

    async def resolve_notices(self, kind: str, subjects: Sequence[str], now: float) -> list[str]:
        """Resolve the open notices of ``subjects``; returns the subjects that had one."""

    async def set_notified(self, notice_id: int, outcomes: Sequence[dict[str, Any]]) -> None:
        """Record whom a notice reached."""

    async def notices(self, *, open_only: bool = False, limit: int = 100) -> list[Row]:
        """Notices, newest first."""

    async def acknowledge(self, notice_id: int, *, by: str, now: float) -> bool:
        """Acknowledge a notice; False if there is none open."""


class NodeReportStore(Protocol):
    """What county nodes reported on the alerts relayed to them
    (:mod:`broadcaster.federation.reports`)."""

    async def record(
        self, delivery_id: int, node: str, summary: Mapping[str, Any], complete: bool, now: float
    ) -> None:
        """Keep the node's latest report on a relay delivery; a final one is never replaced
        by an unfinished one."""
        ...

    async def for_alert(self, alert_id: str) -> dict[int, Row]:
        """The reports on an alert's relay deliveries, by delivery id."""
        ...


class Store(Protocol):
    """Every part of the store of one running system."""

    @property
    def alerts(self) -> AlertStore: ...

    @property
    def deliveries(self) -> DeliveryStore: ...

    @property
    def targets(self) -> TargetStore: ...

    @property
    def audit(self) -> AuditStore: ...

    @property
    def schedules(self) -> ScheduleStore: ...

    @property
    def reports(self) -> NodeReportStore: ...
