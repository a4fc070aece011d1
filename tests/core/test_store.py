"""The SQLite store's settings and versioned migrations; transitions that respect the state
machine on both engines."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broadcaster.delivery import ALLOWED_FROM, DeliveryState, Transition
from broadcaster.errors import StoreError
from broadcaster.store.db import Database, schema_files
from broadcaster.store.outbox import Outbox
from tests.core.support import insert_bare_alert, insert_deliveries


def test_new_database_is_at_the_latest_version_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    try:
        assert db.schema_version == len(schema_files())
        assert db.call(lambda: db.conn.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
        assert db.call(lambda: db.conn.execute("PRAGMA foreign_keys").fetchone()[0]) == 1
        with pytest.raises(sqlite3.IntegrityError):
            db.call(
                db.conn.execute,
                "INSERT INTO alert_events (alert_id, at, event) VALUES ('nope', 0, 'x')",
            )
    finally:
        db.close()


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    db.call(db.conn.execute, "INSERT INTO targets (id, channel, name) VALUES ('t', 'log', 'T')")
    db.close()
    again = Database(tmp_path / "s.db")
    try:
        rows = again.call(again.query, "SELECT id FROM targets")
        assert rows == [{"id": "t"}]
    finally:
        again.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Database(tmp_path / "s.db")


def test_final_states_are_never_left() -> None:
    finals = {
        DeliveryState.CONFIRMED,
        DeliveryState.FAILED,
        DeliveryState.EXPIRED,
        DeliveryState.CANCELLED,
    }
    for target, sources in ALLOWED_FROM.items():
        assert not (sources & finals), f"{target} may be entered from a final state"


def test_disallowed_transition_is_dropped_and_not_logged(database: Database) -> None:
    def setup() -> None:
        with database.transaction() as conn:
            insert_bare_alert(conn)
            insert_deliveries(conn, "log", ["cancelled"])

    database.call(setup)
    outbox = Outbox(database)
    late = [Transition(1, DeliveryState.CONFIRMED, detail="late")]
    assert database.call(outbox.apply, late, 1.0) == 0
    assert database.call(outbox.events, 1) == []
