"""The scheduler's tables (schema v5): schedules, run reports per target, link status, notices.

A running run belongs to the node executing it (schema v13: ``node``, ``lease_until``), which
renews its lease while the run goes on; :meth:`SchedulerStore.take_over_runs` gives a node the
running runs whose lease ran out (their node died), each to one node only.

Every method runs on the database thread (through ``Database.run``); writes that belong
together happen in one transaction, so a report is stored whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.errors import StoreError
from broadcaster.store.db import Database


@dataclass(frozen=True, slots=True)
class TargetOutcome:
    """One line of a run report: did the test reach this target, and why not."""

    channel: str
    target_id: str
    target_name: str
    reached: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SeedEntry:
    """A schedule of the configuration, as stored: its JSON definition and a hash of it."""

    name: str
    definition: dict[str, Any]
    config_hash: str


class SchedulerStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    # -- schedules -------------------------------------------------------------------------

    def seed(self, entries: Sequence[SeedEntry], now: float) -> list[str]:
        """Bring the configuration's schedules into the table; returns what changed.

        A schedule new to the table starts from ``now`` (no catch-up for times before it
        existed). One whose configuration entry changed takes the new definition; one that
        admins edited at run time keeps their edits while its configuration entry stays the
        same. Schedules removed from the configuration are removed.
        """
        changes = []
        names = {e.name for e in entries}
        with self.database.transaction() as conn:
            rows = {
                r["name"]: r
                for r in conn.execute("SELECT name, source, config_hash FROM schedules")
            }
            for e in entries:
                row = rows.get(e.name)
                definition = json.dumps(e.definition, ensure_ascii=False)
                if row is None:
                    conn.execute(
                        "INSERT INTO schedules (name, definition, source, config_hash,"
                        " last_fire_at, created_at, updated_at, updated_by)"
                        " VALUES (?, ?, 'config', ?, ?, ?, ?, 'config')",
                        (e.name, definition, e.config_hash, now, now, now),
                    )
                    changes.append(f"schedule {e.name}: added from the configuration")
                elif row["config_hash"] != e.config_hash:
                    conn.execute(
                        "UPDATE schedules SET definition = ?, source = 'config', config_hash = ?,"
                        " updated_at = ?, updated_by = 'config' WHERE name = ?",
                        (definition, e.config_hash, now, e.name),
                    )
                    changes.append(f"schedule {e.name}: taken from the changed configuration")
            for name, row in rows.items():
                if row["source"] == "config" and name not in names:
                    conn.execute("DELETE FROM schedules WHERE name = ?", (name,))
                    changes.append(f"schedule {name}: removed from the configuration")
        return changes

    def schedules(self) -> list[dict[str, Any]]:
        rows = self.database.query("SELECT * FROM schedules ORDER BY name")
        return [_schedule_row(r) for r in rows]

    def schedule(self, name: str) -> dict[str, Any] | None:
        rows = self.database.query("SELECT * FROM schedules WHERE name = ?", (name,))
        return _schedule_row(rows[0]) if rows else None

    def create(self, name: str, definition: dict[str, Any], *, by: str, now: float) -> None:
        """Add a schedule made at run time; raises StoreError if the name is taken."""
        with self.database.transaction() as conn:
            if conn.execute("SELECT 1 FROM schedules WHERE name = ?", (name,)).fetchone():
                raise StoreError(f"a schedule named {name!r} exists already")
            conn.execute(
                "INSERT INTO schedules (name, definition, source, last_fire_at, created_at,"
                " updated_at, updated_by) VALUES (?, ?, 'api', ?, ?, ?, ?)",
                (name, json.dumps(definition, ensure_ascii=False), now, now, now, by),
            )

    def update(self, name: str, definition: dict[str, Any], *, by: str, now: float) -> bool:
        cursor = self.database.conn.execute(
            "UPDATE schedules SET definition = ?, updated_at = ?, updated_by = ? WHERE name = ?",
            (json.dumps(definition, ensure_ascii=False), now, by, name),
        )
        return cursor.rowcount > 0

    def delete(self, name: str) -> bool:
        cursor = self.database.conn.execute("DELETE FROM schedules WHERE name = ?", (name,))
        return cursor.rowcount > 0

    def set_last_fire(self, name: str, at: float) -> None:
        self.database.conn.execute(
            "UPDATE schedules SET last_fire_at = CASE WHEN last_fire_at > ? THEN last_fire_at"
            " ELSE ? END WHERE name = ?",
            (at, at, name),
        )

    def claim_fire(self, name: str, scheduled_for: float) -> bool:
        """Take the cron time ``scheduled_for`` of a schedule for this node; False if a node
        (this one or another on the same store) took it already."""
        return (
            self.database.conn.execute(
                "INSERT INTO schedule_fires (schedule, scheduled_for, node) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (name, scheduled_for, self.database.node),
            ).rowcount
            == 1
        )

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self, schedule: str, kind: str, trigger: str, scheduled_for: float | None, now: float
    ) -> int:
        database = self.database
        with database.transaction() as conn:
            row = conn.execute(
                "INSERT INTO schedule_runs (schedule, kind, trigger, scheduled_for, started_at,"
                " state, node, lease_until) VALUES (?, ?, ?, ?, ?, 'running', ?, ?) RETURNING id",
                (
                    schedule,
                    kind,
                    trigger,
                    scheduled_for,
                    now,
                    database.node,
                    now + database.lease_seconds,
                ),
            ).fetchone()
            if scheduled_for is not None:
                self.set_last_fire(schedule, scheduled_for)
        return int(row["id"])

    def record_missed(
        self,
        schedule: str,
        kind: str,
        scheduled_for: float,
        now: float,
        detail: str,
        trigger: str = "catch-up",
    ) -> int:
        """A run that was not done: due while the server was down and past its grace time
        (``catch-up``), or due while the previous run was still going (``cron``)."""
        with self.database.transaction() as conn:
            row = conn.execute(
                "INSERT INTO schedule_runs (schedule, kind, trigger, scheduled_for, started_at,"
                " finished_at, state, detail) VALUES (?, ?, ?, ?, ?, ?, 'missed', ?) RETURNING id",
                (schedule, kind, trigger, scheduled_for, now, now, detail),
            ).fetchone()
            self.set_last_fire(schedule, scheduled_for)
        return int(row["id"])

    def set_run_alert(self, run_id: int, alert_id: str) -> None:
        self.database.conn.execute(
            "UPDATE schedule_runs SET alert_id = ? WHERE id = ?", (alert_id, run_id)
        )

    def finish_run(
        self,
        run_id: int,
        outcomes: Sequence[TargetOutcome],
        *,
        state: str,
        detail: str,
        now: float,
    ) -> None:
        """Store the report of a run: one row per target and the totals, in one transaction."""
        reached = sum(1 for o in outcomes if o.reached)
        with self.database.transaction() as conn:
            conn.executemany(
                "INSERT INTO schedule_run_targets (run_id, channel, target_id, target_name,"
                " outcome, detail, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, channel, target_id) DO UPDATE SET"
                " target_name = excluded.target_name, outcome = excluded.outcome,"
                " detail = excluded.detail, checked_at = excluded.checked_at",
                [
                    (
                        run_id,
                        o.channel,
                        o.target_id,
                        o.target_name,
                        "reached" if o.reached else "failed",
                        o.detail,
                        now,
                    )
                    for o in outcomes
                ],
            )
            conn.execute(
                "UPDATE schedule_runs SET state = ?, detail = ?, finished_at = ?, reached = ?,"
                " failed = ? WHERE id = ?",
                (state, detail, now, reached, len(outcomes) - reached, run_id),
            )

    def runs(self, schedule: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if schedule is None:
            return self.database.query(
                "SELECT * FROM schedule_runs ORDER BY id DESC LIMIT ?", (limit,)
            )
        return self.database.query(
            "SELECT * FROM schedule_runs WHERE schedule = ? ORDER BY id DESC LIMIT ?",
            (schedule, limit),
        )

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self.database.query("SELECT * FROM schedule_runs WHERE id = ?", (run_id,))
        if not rows:
            return None
        run = rows[0]
        run["targets"] = self.database.query(
            "SELECT channel, target_id, target_name, outcome, detail, checked_at"
            " FROM schedule_run_targets WHERE run_id = ? ORDER BY outcome DESC, channel,"
            " target_id",
            (run_id,),
        )
        return run

    def take_over_runs(self, now: float, *, starting: bool) -> list[dict[str, Any]]:
        """Take for this node, under a new lease, the running runs no live node executes: those
        whose lease ran out and, when this node is ``starting``, those of an earlier life of its
        name and, on a store no other node shares, every one. Two nodes never take one run."""
        database = self.database
        return database.query(
            "UPDATE schedule_runs SET node = ?, lease_until = ? WHERE state = 'running'"
            " AND (node IS NULL OR lease_until <= ? OR (? = 1 AND (? = 1 OR node = ?)))"
            " RETURNING *",
            (
                database.node,
                now + database.lease_seconds,
                now,
                starting,
                not database.shared,
                database.node,
            ),
        )

    def renew_runs(self, now: float, run_ids: Sequence[int]) -> list[int]:
        """Extend the lease of the runs ``run_ids`` this node executes; returns those still its
        own (one missing was taken over by another node while this one could not renew)."""
        database = self.database
        rows = database.conn.execute(
            "UPDATE schedule_runs SET lease_until = ? WHERE node = ?"  # noqa: S608
            f" AND state = 'running' AND CAST(id AS TEXT) IN ({database.text_list()})"
            " RETURNING id",
            (now + database.lease_seconds, database.node, json.dumps([str(i) for i in run_ids])),
        ).fetchall()
        return [int(row["id"]) for row in rows]

    def release_runs(self, now: float) -> int:
        """At a clean stop: end this node's leases on its running runs, so another node takes
        them over at its next renewal instead of when the leases would have run out."""
        database = self.database
        return database.conn.execute(
            "UPDATE schedule_runs SET lease_until = ? WHERE node = ? AND state = 'running'"
            " AND lease_until > ?",
            (now, database.node, now),
        ).rowcount

    # -- link status and notices -----------------------------------------------------------

    def record_probes(
        self, channel: str, results: Sequence[tuple[str, bool, str]], now: float
    ) -> dict[str, int]:
        """Store link checks ``(target_id, ok, detail)`` in one transaction; returns for each
        target the number of failed checks in a row (0 when ok)."""
        failures: dict[str, int] = {}
        with self.database.transaction() as conn:
            for target_id, ok, detail in results:
                row = conn.execute(
                    "INSERT INTO link_status (channel, target_id, ok, detail, failures,"
                    " checked_at, last_ok_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (channel, target_id) DO UPDATE SET ok = excluded.ok,"
                    " detail = excluded.detail, checked_at = excluded.checked_at,"
                    " failures = CASE WHEN excluded.ok = 1 THEN 0"
                    " ELSE link_status.failures + 1 END,"
                    " last_ok_at = coalesce(excluded.last_ok_at, link_status.last_ok_at)"
                    " RETURNING failures",
                    (channel, target_id, ok, detail, 0 if ok else 1, now, now if ok else None),
                ).fetchone()
                failures[target_id] = int(row["failures"])
        return failures

    def links(self, channel: str | None = None, *, failing: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM link_status WHERE (CAST(? AS TEXT) IS NULL OR channel = ?)"
        if failing:
            sql += " AND ok = 0"
        rows = self.database.query(sql + " ORDER BY channel, target_id", (channel, channel))
        for r in rows:
            r["ok"] = bool(r["ok"])
        return rows

    def open_notice(self, kind: str, subject: str, message: str, now: float) -> int | None:
        """Open a notice; None if one for the same subject is open already."""
        row = self.database.conn.execute(
            "INSERT INTO notices (kind, subject, message, opened_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, subject) WHERE resolved_at IS NULL DO NOTHING RETURNING id",
            (kind, subject, message, now),
        ).fetchone()
        return None if row is None else int(row["id"])

    def resolve_notice(self, kind: str, subject: str, now: float) -> int | None:
        """Close the open notice for a subject; returns its id, None if none was open."""
        row = self.database.conn.execute(
            "UPDATE notices SET resolved_at = ? WHERE kind = ? AND subject = ?"
            " AND resolved_at IS NULL RETURNING id",
            (now, kind, subject),
        ).fetchone()
        return None if row is None else int(row["id"])

    def resolve_notices(self, kind: str, subjects: Sequence[str], now: float) -> list[str]:
        """Close the open notices of ``subjects``; returns the subjects that had one."""
        resolved: list[str] = []
        with self.database.transaction() as conn:
            for start in range(0, len(subjects), 500):
                chunk = list(subjects[start : start + 500])
                marks = ", ".join("?" for _ in chunk)
                resolved += [
                    row["subject"]
                    for row in conn.execute(
                        "UPDATE notices SET resolved_at = ? WHERE kind = ? AND resolved_at IS NULL"  # noqa: S608
                        f" AND subject IN ({marks}) RETURNING subject",
                        (now, kind, *chunk),
                    )
                ]
        return resolved

    def set_notified(self, notice_id: int, outcomes: Sequence[dict[str, Any]]) -> None:
        self.database.conn.execute(
            "UPDATE notices SET notified = ? WHERE id = ?",
            (json.dumps(list(outcomes), ensure_ascii=False), notice_id),
        )

    def notices(self, *, open_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        where = "WHERE resolved_at IS NULL" if open_only else ""
        rows = self.database.query(
            f"SELECT * FROM notices {where} ORDER BY id DESC LIMIT ?",  # noqa: S608
            (limit,),
        )
        for r in rows:
            r["notified"] = json.loads(r["notified"])
        return rows

    def acknowledge(self, notice_id: int, *, by: str, now: float) -> bool:
        cursor = self.database.conn.execute(
            "UPDATE notices SET acknowledged_at = ?, acknowledged_by = ?"
            " WHERE id = ? AND acknowledged_at IS NULL",
            (now, by, notice_id),
        )
        return cursor.rowcount > 0


def _schedule_row(row: dict[str, Any]) -> dict[str, Any]:
    row["definition"] = json.loads(row["definition"])
    return row
