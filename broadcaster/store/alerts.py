"""Alerts in the store: the accepted documents, their references and their event log.

Everything here is synchronous and runs on the database thread. Writing an alert and every
delivery planned for it happens in one transaction (:meth:`AlertTable.insert`), so once intake
answers "accepted" all of it is on disk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.delivery import DeliveryState, Target
from broadcaster.errors import StoreError
from broadcaster.store.batch import insert_rows
from broadcaster.store.db import Connection, Database

ALERT_STATES = ("active", "held", "cancelled", "superseded", "expired")

REACHES_NO_ONE = "reaches no one"
"""How an active alert whose areas select no target is shown (event ``reaches-no-one``)."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The columns of one ``alerts`` row, as intake computes them."""

    id: str
    sender: str
    identifier: str
    sent: str
    status: str
    msg_type: str
    scope: str
    event: str | None
    headline: str | None
    severity: str | None
    urgency: str | None
    effective_at: float
    expires_at: float
    state: str
    priority: int
    channels: tuple[str, ...]
    origin: str
    cap_version: str
    raw_xml: bytes
    document: dict[str, Any]
    received_at: float


@dataclass(frozen=True, slots=True)
class NewDelivery:
    channel: str
    target: Target
    part: int
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class ReferenceLink:
    sender: str
    identifier: str
    sent: str
    alert_id: str | None


@dataclass(frozen=True, slots=True)
class InFlight:
    """A delivery that was already handed to a channel when its alert was cancelled."""

    delivery_id: int
    alert_id: str
    channel: str


class AlertTable:
    """Reads and writes of alerts (call on the database thread)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def find_id(self, sender: str, identifier: str, sent: str) -> str | None:
        row = self.database.conn.execute(
            "SELECT id FROM alerts WHERE sender = ? AND identifier = ? AND sent = ?",
            (sender, identifier, sent),
        ).fetchone()
        return None if row is None else str(row["id"])

    def exists(self, alert_id: str) -> bool:
        row = self.database.conn.execute("SELECT 1 FROM alerts WHERE id = ?", (alert_id,))
        return row.fetchone() is not None

    def insert(
        self,
        record: AlertRecord,
        references: Sequence[ReferenceLink],
        deliveries: Sequence[NewDelivery],
        *,
        supersede: str | None,
        now: float,
        requested_by: str | None = None,
        notes: Sequence[tuple[str, str]] = (),
    ) -> tuple[bool, list[InFlight]]:
        """Store an alert, its references and deliveries in one transaction.

        ``supersede`` is ``"cancelled"`` (a Cancel) or ``"superseded"`` (an Update): the
        referenced alerts enter that state and their queued deliveries are cancelled. Returns
        whether the alert is new (False if the same alert was stored before) and the referenced
        deliveries already handed to channels, which a Cancel asks the channels to stop.
        ``requested_by`` stores the alert held with a pending approval instead. ``notes`` are
        (event, detail) pairs added to the alert's event log (e.g. the signature verdict).
        """
        with self.database.transaction() as conn:
            if not self._insert_alert(conn, record):
                if self.find_id(record.sender, record.identifier, record.sent) == record.id:
                    return False, []
                raise StoreError(f"alert {record.id} conflicts with a stored alert")
            conn.executemany(
                "INSERT INTO alert_references (alert_id, ref_sender, ref_identifier, ref_sent,"
                " ref_alert_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(record.id, r.sender, r.identifier, r.sent, r.alert_id) for r in references],
            )
            self._event(conn, record.id, now, "accepted", f"{record.origin}; {record.state}")
            for event, detail in notes:
                self._event(conn, record.id, now, event, detail)
            if requested_by is not None:
                conn.execute(
                    "INSERT INTO approvals (alert_id, state, requested_by, requested_at)"
                    " VALUES (?, 'pending', ?, ?)",
                    (record.id, requested_by, now),
                )
                return True, []
            in_flight = self._activate(conn, record, references, deliveries, supersede, now)
        return True, in_flight

    def _activate(
        self,
        conn: Connection,
        record: AlertRecord,
        references: Sequence[ReferenceLink],
        deliveries: Sequence[NewDelivery],
        supersede: str | None,
        now: float,
    ) -> list[InFlight]:
        self._insert_deliveries(conn, record, deliveries, now)
        in_flight: list[InFlight] = []
        if supersede:
            for ref in references:
                if ref.alert_id:
                    in_flight += self._stop_alert(conn, ref.alert_id, supersede, record, now)
        return in_flight

    def record(self, alert_id: str) -> AlertRecord | None:
        """The full stored record of an alert."""
        rows = self.database.query("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        if not rows:
            return None
        row = rows[0]
        return AlertRecord(
            **{
                k: row[k]
                for k in AlertRecord.__dataclass_fields__
                if k not in ("channels", "document", "raw_xml")
            },
            channels=tuple(json.loads(row["channels"])),
            document=json.loads(row["document"]),
            raw_xml=bytes(row["raw_xml"]),
        )

    def approval(self, alert_id: str) -> dict[str, Any] | None:
        rows = self.database.query(
            "SELECT alert_id, state, requested_by, requested_at, decided_by, decided_at, reason"
            " FROM approvals WHERE alert_id = ?",
            (alert_id,),
        )
        return rows[0] if rows else None

    def pending_approvals(self) -> list[dict[str, Any]]:
        return self.database.query(
            "SELECT p.alert_id, p.requested_by, p.requested_at, a.event, a.headline,"
            " a.severity, a.status FROM approvals p JOIN alerts a ON a.id = p.alert_id"
            " WHERE p.state = 'pending' ORDER BY p.requested_at"
        )

    def approve(
        self,
        record: AlertRecord,
        references: Sequence[ReferenceLink],
        deliveries: Sequence[NewDelivery],
        *,
        supersede: str | None,
        by: str,
        reason: str,
        now: float,
    ) -> list[InFlight] | None:
        """Approve a pending alert: give it ``record.state`` (active, or held for one that is
        not broadcast) and plan its deliveries, in one transaction.

        Returns None if the alert was no longer pending (decided meanwhile).
        """
        with self.database.transaction() as conn:
            decided = conn.execute(
                "UPDATE approvals SET state = 'approved', decided_by = ?, decided_at = ?,"
                " reason = ? WHERE alert_id = ? AND state = 'pending'",
                (by, now, reason, record.id),
            ).rowcount
            if not decided:
                return None
            conn.execute(
                "UPDATE alerts SET state = ?, effective_at = ? WHERE id = ?",
                (record.state, record.effective_at, record.id),
            )
            self._event(conn, record.id, now, "approved", f"by {by}: {reason}")
            return self._activate(conn, record, references, deliveries, supersede, now)

    def reject(self, alert_id: str, *, by: str, reason: str, now: float) -> bool:
        """Reject a pending alert; False if it was no longer pending."""
        with self.database.transaction() as conn:
            decided = conn.execute(
                "UPDATE approvals SET state = 'rejected', decided_by = ?, decided_at = ?,"
                " reason = ? WHERE alert_id = ? AND state = 'pending'",
                (by, now, reason, alert_id),
            ).rowcount
            if decided:
                self._event(conn, alert_id, now, "rejected", f"by {by}: {reason}")
        return bool(decided)

    def references_of(self, alert_id: str) -> list[ReferenceLink]:
        rows = self.database.query(
            "SELECT ref_sender, ref_identifier, ref_sent, ref_alert_id FROM alert_references"
            " WHERE alert_id = ?",
            (alert_id,),
        )
        return [
            ReferenceLink(r["ref_sender"], r["ref_identifier"], r["ref_sent"], r["ref_alert_id"])
            for r in rows
        ]

    @staticmethod
    def _insert_alert(conn: Connection, r: AlertRecord) -> bool:
        """Insert the alert row; False if it (or its sender, identifier and sent) is stored
        already: the unique constraints decide, so two nodes given one alert store it once."""
        cursor = conn.execute(
            "INSERT INTO alerts (id, sender, identifier, sent, status, msg_type, scope, event,"
            " headline, severity, urgency, effective_at, expires_at, state, priority, channels,"
            " origin, cap_version, raw_xml, document, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (
                r.id,
                r.sender,
                r.identifier,
                r.sent,
                r.status,
                r.msg_type,
                r.scope,
                r.event,
                r.headline,
                r.severity,
                r.urgency,
                r.effective_at,
                r.expires_at,
                r.state,
                r.priority,
                json.dumps(list(r.channels)),
                r.origin,
                r.cap_version,
                r.raw_xml,
                json.dumps(r.document, ensure_ascii=False),
                r.received_at,
            ),
        )
        return cursor.rowcount == 1

    def _insert_deliveries(
        self, conn: Connection, r: AlertRecord, deliveries: Sequence[NewDelivery], now: float
    ) -> None:
        if not deliveries:
            return
        self.database.serialize(conn, "deliveries.id")
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM deliveries").fetchone()[0]
        snapshot = self.database.known.snapshot
        insert_rows(
            self.database,
            conn,
            "deliveries",
            {
                "alert_id": r.id,
                "state": "queued",
                "priority": r.priority,
                "next_attempt_at": r.effective_at,
                "expires_at": r.expires_at,
                "updated_at": now,
            },
            ("id", "channel", "target_id", "part", "target", "idempotency_key"),
            [
                (first + n, d.channel, d.target.id, d.part, snapshot(d.target), d.idempotency_key)
                for n, d in enumerate(deliveries)
            ],
        )
        conn.execute(  # the ids are consecutive: the lock above keeps other nodes out
            "INSERT INTO delivery_events (delivery_id, at, from_state, to_state, detail)"
            " SELECT id, ?, NULL, 'queued', 'planned' FROM deliveries"
            " WHERE id >= ? AND id < ? ORDER BY id",
            (now, first, first + len(deliveries)),
        )

    def add_deliveries(
        self, record: AlertRecord, deliveries: Sequence[NewDelivery], now: float
    ) -> list[NewDelivery]:
        """Add ``deliveries`` to a stored alert's outbox, leaving out those it holds already;
        returns the ones added."""
        with self.database.transaction() as conn:
            held = set(
                conn.execute(
                    "SELECT channel, target_id, part FROM deliveries WHERE alert_id = ?",
                    (record.id,),
                ).fetchall()
            )
            fresh = [d for d in deliveries if (d.channel, d.target.id, d.part) not in held]
            self._insert_deliveries(conn, record, fresh, now)
        return fresh

    def _stop_alert(
        self, conn: Connection, alert_id: str, state: str, by: AlertRecord, now: float
    ) -> list[InFlight]:
        updated = conn.execute(
            "UPDATE alerts SET state = ? WHERE id = ? AND state IN ('active', 'held')",
            (state, alert_id),
        ).rowcount
        if updated:
            self._event(conn, alert_id, now, state, f"by {by.msg_type} {by.id}")
        detail = f"{state} by {by.msg_type} {by.id}"
        conn.execute(
            "INSERT INTO delivery_events (delivery_id, at, from_state, to_state, detail)"
            " SELECT id, ?, state, 'cancelled', ? FROM deliveries"
            " WHERE alert_id = ? AND state = 'queued'",
            (now, detail, alert_id),
        )
        conn.execute(
            "UPDATE deliveries SET state = 'cancelled', updated_at = ?, last_error = ?"
            " WHERE alert_id = ? AND state = 'queued'",
            (now, detail, alert_id),
        )
        rows = conn.execute(
            "SELECT id, channel FROM deliveries WHERE alert_id = ? AND state IN (?, ?)",
            (alert_id, DeliveryState.SENDING, DeliveryState.ACCEPTED),
        ).fetchall()
        return [InFlight(r["id"], alert_id, r["channel"]) for r in rows]

    @staticmethod
    def _event(conn: Connection, alert_id: str, now: float, event: str, detail: str) -> None:
        conn.execute(
            "INSERT INTO alert_events (alert_id, at, event, detail) VALUES (?, ?, ?, ?)",
            (alert_id, now, event, detail),
        )

    def reached_targets(self, alert_ids: Sequence[str]) -> dict[str, list[Target]]:
        """Per channel, the targets an alert's deliveries already reached or tried to reach."""
        found: dict[str, dict[str, Target]] = {}
        for alert_id in alert_ids:
            rows = self.database.query(
                "SELECT channel, target FROM deliveries WHERE alert_id = ?"
                " AND (attempts > 0 OR state IN ('sending', 'accepted', 'confirmed'))",
                (alert_id,),
            )
            for row in rows:
                target = Target.from_json(json.loads(row["target"]))
                found.setdefault(row["channel"], {})[target.id] = target
        return {channel: list(targets.values()) for channel, targets in found.items()}

    def status(self, alert_id: str) -> str | None:
        """The alert's CAP status (``Actual``, ``Test`` ...), or None when it is not stored."""
        rows = self.database.query("SELECT status FROM alerts WHERE id = ?", (alert_id,))
        return str(rows[0]["status"]) if rows else None

    def get(self, alert_id: str) -> dict[str, Any] | None:
        rows = self.database.query(
            "SELECT id, sender, identifier, sent, status, msg_type, scope, event, headline,"
            " severity, urgency, effective_at, expires_at, state, priority, channels, origin,"
            " cap_version, received_at FROM alerts WHERE id = ?",
            (alert_id,),
        )
        if not rows:
            return None
        row = rows[0]
        row["channels"] = json.loads(row["channels"])
        row["references"] = self.database.query(
            "SELECT ref_sender AS sender, ref_identifier AS identifier, ref_sent AS sent,"
            " ref_alert_id AS alert_id FROM alert_references WHERE alert_id = ?",
            (alert_id,),
        )
        row["events"] = self.database.query(
            "SELECT at, event, detail FROM alert_events WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )
        row["approval"] = self.approval(alert_id)
        row["reaches_no_one"] = any(e["event"] == "reaches-no-one" for e in row["events"])
        unreached = row["reaches_no_one"] and row["state"] == "active"
        row["shown_state"] = REACHES_NO_ONE if unreached else row["state"]
        return row

    def document(self, alert_id: str) -> dict[str, Any] | None:
        row = self.database.conn.execute(
            "SELECT document FROM alerts WHERE id = ?", (alert_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row["document"]))

    def raw_xml(self, alert_id: str) -> bytes | None:
        row = self.database.conn.execute(
            "SELECT raw_xml FROM alerts WHERE id = ?", (alert_id,)
        ).fetchone()
        return None if row is None else bytes(row["raw_xml"])

    def active(self, now: float, limit: int = 200) -> list[dict[str, Any]]:
        return self.database.query(
            "SELECT id, sender, identifier, sent, status, msg_type, scope, event, headline,"
            " severity, expires_at, received_at FROM alerts"
            " WHERE state = 'active' AND expires_at > ? ORDER BY received_at DESC LIMIT ?",
            (now, limit),
        )

    def expire_due(self, now: float) -> int:
        """Mark active alerts past their expiry as expired."""
        with self.database.transaction() as conn:
            ids = [
                r["id"]
                for r in conn.execute(
                    "SELECT id FROM alerts WHERE state IN ('active', 'held') AND expires_at <= ?",
                    (now,),
                ).fetchall()
            ]
            for alert_id in ids:
                conn.execute("UPDATE alerts SET state = 'expired' WHERE id = ?", (alert_id,))
                self._event(conn, alert_id, now, "expired", "")
        return len(ids)
