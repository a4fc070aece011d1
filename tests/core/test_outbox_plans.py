"""The outbox's statements on SQLite, as SQLite plans them: none reads every delivery or sorts
them (a claim, a sweep or a batch of transitions costs what it touches, not the outbox's
size). Each statement is taken as the outbox issues it (SQLite's trace of the expanded SQL)
and asked for its query plan."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from broadcaster.delivery import DeliveryState, Transition
from broadcaster.store.db import Database
from broadcaster.store.outbox import Outbox
from tests.core.support import seed_outbox

PARTIAL = ("deliveries_due", "deliveries_expiry", "deliveries_lease", "deliveries_confirming")
"""Indexes holding only the deliveries of one or two live states: reading one whole is fine."""


def _issued(db: Database, outbox: Outbox) -> list[str]:
    """The statements the outbox's dispatching and sweeping calls issue."""
    statements: list[str] = []

    def run() -> None:
        conn = db.conn
        assert isinstance(conn, sqlite3.Connection)
        conn.set_trace_callback(statements.append)
        try:
            claimed = outbox.claim_due("log", 100.0, 50)
            outbox.apply(
                [Transition(c.id, DeliveryState.ACCEPTED, content={"x": 1}) for c in claimed]
                + [Transition(claimed[0].id, DeliveryState.ACCEPTED, progress=True)],
                101.0,
            )
            outbox.apply([Transition(claimed[1].id, DeliveryState.ACCEPTED, progress=True)], 102.0)
            outbox.next_due_at("log", 102.0)
            outbox.retry_now("log", ["t1", "t2"], 103.0)
            outbox.renew_leases(104.0)
            outbox.overdue(105.0, {"log": 600.0})
            outbox.awaiting_confirmation("log")
            outbox.summary("a")
            outbox.recover_in_flight(106.0)
        finally:
            conn.set_trace_callback(None)

    db.call(run)
    return [s for s in statements if re.match(r"\s*(SELECT|UPDATE|INSERT|DELETE)", s, re.I)]


def _plan(db: Database, sql: str) -> list[str]:
    return db.call(lambda: [str(r[3]) for r in db.conn.execute("EXPLAIN QUERY PLAN " + sql)])


def _filled(db: Database) -> None:
    seed_outbox(db, "log", ["confirmed" if n % 10 == 0 else "queued" for n in range(1, 2001)])


def test_no_outbox_statement_reads_every_delivery_or_sorts_them(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    try:
        _filled(db)
        outbox = Outbox(db)
        statements = _issued(db, outbox)
        assert len(statements) >= 12
        for sql in statements:
            if sql.lstrip().upper().startswith("INSERT"):
                continue
            for step in _plan(db, sql):
                assert "TEMP B-TREE" not in step, (sql, step)
                full = re.match(r"SCAN (deliveries|d)\b", step)
                assert not full or any(name in step for name in PARTIAL), (sql, step)
    finally:
        db.close()


def test_the_confirmation_timeout_reads_only_deliveries_past_it(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    try:
        _filled(db)
        statements = _issued(db, Outbox(db))
        waiting = [s for s in statements if "state = 'accepted'" in s and "updated_at <=" in s]
        assert len(waiting) == 1
        assert _plan(db, waiting[0]) == [
            "SEARCH deliveries USING INDEX deliveries_confirming (channel=? AND updated_at<?)"
        ]
    finally:
        db.close()
