"""Delivery summaries between nodes: what a county reports upward and what the city keeps.

A summary is, per channel, how many of an alert's deliveries are ``confirmed``, ``failed``,
``retrying`` (queued, being sent or waiting for the device's confirmation), ``expired`` and
``cancelled`` (zero counts left out), with ``complete`` once every delivery is final and the
alert is not held here (an alert awaiting approval has none yet, and a rejected one never
will: neither is complete, so the city never shows it delivered). The city
keeps the latest one a county node reported under the relay delivery it is about
(``node_reports``); the county keeps the latest one the city acknowledged (``upward_reports``),
so after a restart it reports only what changed and stops once a final summary was taken.
:func:`report_outcome` is what a report, pushed or polled, makes of the city's relay delivery:
a complete one confirms it only when the county confirmed at least one delivery. Plain SQL on
:class:`~broadcaster.store.db.Database`, run on its writer thread.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from broadcaster.channel import ConfirmationOutcome
from broadcaster.store.db import Database

REPORTED_STATES = ("confirmed", "failed", "retrying", "expired", "cancelled")
_RETRYING = frozenset({"queued", "sending", "accepted"})
MAX_CHANNELS = 64
"""A report names at most this many channels (the route refuses more)."""


def delivery_summary(
    counts: Mapping[str, Mapping[str, int]], confirming: Collection[str]
) -> tuple[dict[str, dict[str, int]], bool]:
    """The reported form of an alert's state counts (``{channel: {state: n}}``) and whether
    every delivery is final. ``accepted`` is final only on channels not in ``confirming``."""
    summary: dict[str, dict[str, int]] = {}
    complete = True
    for channel, states in counts.items():
        shown: dict[str, int] = {}
        for state, n in states.items():
            if state == "accepted" and channel not in confirming:
                state = "confirmed"
            elif state in _RETRYING:
                state = "retrying"
                complete = False
            shown[state] = shown.get(state, 0) + n
        summary[channel] = {s: shown[s] for s in REPORTED_STATES if shown.get(s)}
    return summary, complete


def summary_problem(summary: object) -> str | None:
    """Why ``summary`` is not a valid reported summary, or None."""
    if not isinstance(summary, dict):
        return "summary must be an object of channels"
    if len(summary) > MAX_CHANNELS:
        return f"summary names more than {MAX_CHANNELS} channels"
    for channel, states in summary.items():
        if not isinstance(states, dict) or not channel or len(channel) > 100:
            return f"summary.{channel[:100]}: must be an object of states"
        for state, n in states.items():
            if state not in REPORTED_STATES:
                return f"summary.{channel}.{state[:40]}: unknown state"
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 10**9:
                return f"summary.{channel}.{state}: must be a count"
    return None


def describe_summary(summary: Mapping[str, Mapping[str, int]]) -> str:
    """One line for a person: ``sms: confirmed 3, retrying 1; fm: confirmed 1``."""
    parts = []
    for channel, states in sorted(summary.items()):
        counts = ", ".join(f"{s} {n}" for s, n in states.items())
        parts.append(f"{channel}: {counts or 'nothing'}")
    return "; ".join(parts) or "no deliveries"


def polled_summary(counts: object) -> dict[str, dict[str, int]] | None:
    """The reported form of the ``summary`` in a county node's answer to ``GET
    /api/v1/alerts/{id}/deliveries`` (its raw state counts), or None when it is not an object
    of channels of counts. Read only from an answer that calls the alert complete: an
    ``accepted`` there is on a channel that confirms nothing, so it counts as confirmed."""
    if not isinstance(counts, dict) or len(counts) > MAX_CHANNELS:
        return None
    for states in counts.values():
        if not isinstance(states, dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in states.values()
        ):
            return None
    return delivery_summary(counts, ())[0]


def report_outcome(
    who: str, summary: Mapping[str, Mapping[str, int]], complete: bool
) -> tuple[ConfirmationOutcome, str]:
    """What a county node's report makes of the city's relay delivery, and the detail shown
    with it (``who`` names the node): progress while the report is not complete; once it is,
    confirmed only if the county confirmed at least one delivery, failed otherwise, since then
    no device of the county gave the alert (all failed or expired, or none was planned).

    Deliveries the county cancelled are set aside: the alert was cancelled or replaced by an
    Update before they went out, which is no failure of the county. A summary of cancelled
    deliveries alone confirms the relay delivery with a detail saying so, rather than failing
    it: a relay delivery the county accepted cannot become ``cancelled`` itself (only a queued
    or sending one can), and "failed" would have an officer look for a fault in a county that
    did what the Cancel or Update asked; the Cancel's or Update's own relay delivery tells
    whether that reached the county."""
    described = describe_summary(summary)
    if not complete:
        return ConfirmationOutcome.PROGRESS, f"{who}: {described}"
    totals = dict.fromkeys(REPORTED_STATES, 0)
    for states in summary.values():
        for state, n in states.items():
            totals[state] = totals.get(state, 0) + n
    if totals["confirmed"]:
        return ConfirmationOutcome.CONFIRMED, f"{who}: {described}"
    if not any(totals.values()):
        return ConfirmationOutcome.FAILED, f"{who}: planned no delivery"
    if not any(n for state, n in totals.items() if state != "cancelled"):
        return (
            ConfirmationOutcome.CONFIRMED,
            f"{who}: every delivery cancelled with the alert before it went out ({described})",
        )
    return ConfirmationOutcome.FAILED, f"{who}: no delivery confirmed ({described})"


class ReportTables:
    """Both nodes' report tables (call on the database thread, through ``Database.run``)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def record_node_report(
        self,
        delivery_id: int,
        node: str,
        summary: Mapping[str, Any],
        complete: bool,
        now: float,
    ) -> None:
        """Keep ``node``'s latest report on the relay delivery ``delivery_id``; a final
        report is never replaced by an earlier, unfinished one arriving late (one upsert,
        so reports taken by two nodes at once cannot undo that either)."""
        self.database.conn.execute(
            "INSERT INTO node_reports (delivery_id, node, summary, complete, reported_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO UPDATE"
            " SET node = excluded.node, summary = excluded.summary,"
            " complete = excluded.complete, reported_at = excluded.reported_at"
            " WHERE node_reports.complete = 0 OR excluded.complete = 1",
            (delivery_id, node, json.dumps(summary, sort_keys=True), int(complete), now),
        )

    def node_reports(self, alert_id: str) -> dict[int, dict[str, Any]]:
        """The reports on an alert's relay deliveries, by delivery id."""
        rows = self.database.query(
            "SELECT r.delivery_id, r.node, r.summary, r.complete, r.reported_at"
            " FROM node_reports r JOIN deliveries d ON d.id = r.delivery_id"
            " WHERE d.alert_id = ?",
            (alert_id,),
        )
        return {
            r["delivery_id"]: {
                "node": r["node"],
                "summary": json.loads(r["summary"]),
                "complete": bool(r["complete"]),
                "reported_at": r["reported_at"],
            }
            for r in rows
        }

    def record_relayed(self, alert_id: str, client: str, now: float) -> None:
        """Note that ``client`` (a node this one reports to) sent ``alert_id`` here, even as
        a duplicate of what another source brought first."""
        with self.database.transaction() as conn:
            conn.execute(
                "INSERT INTO relayed_alerts (alert_id, client, relayed_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (alert_id, client, now),
            )

    def unreported(self, clients: Sequence[str], since: float, limit: int) -> list[str]:
        """Alerts that came from ``clients`` (as their origin ``api:<client>``, or relayed by
        them after another source) since ``since`` and whose final summary no client has taken
        yet, oldest first."""
        rows = []
        for client in clients:
            rows += self.database.query(
                "SELECT a.id, a.received_at FROM alerts a WHERE (a.origin = ? OR EXISTS"
                " (SELECT 1 FROM relayed_alerts r WHERE r.alert_id = a.id AND r.client = ?))"
                " AND a.received_at >= ? AND NOT EXISTS (SELECT 1 FROM upward_reports u"
                " WHERE u.alert_id = a.id AND u.complete = 1)"
                " ORDER BY a.received_at LIMIT ?",
                (f"api:{client}", client, since, limit),
            )
        rows.sort(key=lambda r: r["received_at"])
        return list(dict.fromkeys(r["id"] for r in rows))[:limit]

    def held(self, alert_id: str) -> bool:
        """Whether ``alert_id`` is held here (awaiting an officer's approval, or rejected):
        its deliveries, none yet, are not all it will have."""
        rows = self.database.query("SELECT state FROM alerts WHERE id = ?", (alert_id,))
        return bool(rows) and rows[0]["state"] == "held"

    def relayed_by(self, alert_id: str) -> list[str]:
        """The clients ``alert_id`` came from: its origin's, then any that relayed it later."""
        rows = self.database.query("SELECT origin FROM alerts WHERE id = ?", (alert_id,))
        origin = str(rows[0]["origin"]) if rows else ""
        clients = [origin.removeprefix("api:")] if origin.startswith("api:") else []
        rows = self.database.query(
            "SELECT client FROM relayed_alerts WHERE alert_id = ? ORDER BY relayed_at",
            (alert_id,),
        )
        return clients + [str(r["client"]) for r in rows]

    def acknowledged(self, alert_id: str) -> dict[str, Any] | None:
        """The summary the origin last took for ``alert_id``."""
        rows = self.database.query(
            "SELECT summary, complete FROM upward_reports WHERE alert_id = ?", (alert_id,)
        )
        if not rows:
            return None
        return {"summary": json.loads(rows[0]["summary"]), "complete": bool(rows[0]["complete"])}

    def record_acknowledged(
        self, alert_id: str, summary: Mapping[str, Any], complete: bool, now: float
    ) -> None:
        self.database.conn.execute(
            "INSERT INTO upward_reports (alert_id, summary, complete, acked_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE"
            " SET summary = excluded.summary, complete = excluded.complete,"
            " acked_at = excluded.acked_at",
            (alert_id, json.dumps(summary, sort_keys=True), int(complete), now),
        )
