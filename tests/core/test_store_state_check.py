"""The check on a delivery's state (SQLite schema v19): a database of the version before keeps
every delivery and its history, allows exactly the same seven states, and the connection that
migrated it checks a state without filling a temporary index at each row written."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from broadcaster.delivery import DeliveryState
from broadcaster.store.db import Database, schema_files
from tests.core.support import insert_bare_alert, insert_deliveries

CHECK_VERSION = 19
"""The schema version that rewrote the check."""

STATES = [str(state) for state in DeliveryState]


def _old_database(path: Path) -> None:
    """A database at the version before, holding a delivery in each state, each with a step."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for version, sql in schema_files()[: CHECK_VERSION - 1]:
        conn.executescript(f"{sql}\nPRAGMA user_version = {version};")
    conn.execute("BEGIN")
    insert_bare_alert(conn)
    insert_deliveries(conn, "log", STATES)
    conn.execute(
        "INSERT INTO delivery_events (delivery_id, at, from_state, to_state, detail)"
        " SELECT id, 1.5, NULL, state, 'step of ' || target_id FROM deliveries"
    )
    conn.execute("COMMIT")
    conn.close()


def _contents(conn: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    deliveries = conn.execute("SELECT * FROM deliveries ORDER BY id").fetchall()
    events = conn.execute("SELECT * FROM delivery_events ORDER BY id").fetchall()
    return [tuple(r) for r in deliveries], [tuple(r) for r in events]


def test_an_older_database_keeps_its_deliveries_and_allows_the_same_states(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    _old_database(path)
    with sqlite3.connect(path) as before:
        old = _contents(before)
    before.close()
    db = Database(path)
    try:
        assert db.schema_version == len(schema_files())
        assert db.call(_contents, db.conn) == old
        assert db.call(lambda: db.conn.execute("PRAGMA integrity_check").fetchone()[0]) == "ok"
        for n, state in enumerate(STATES, start=1):
            db.call(db.conn.execute, "UPDATE deliveries SET state = ? WHERE id = ?", (state, n))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            db.call(db.conn.execute, "UPDATE deliveries SET state = 'lost' WHERE id = 1")
        assert db.call(_contents, db.conn)[0][0][6] == "queued"  # the refused changes left none
    finally:
        db.close()


def _check_fills_an_index(conn: Any) -> bool:
    """Whether writing a delivery's state opens a temporary table for the state check (after
    a statement that reads the schema as it is now: EXPLAIN alone does not)."""
    conn.execute("SELECT count(*) FROM deliveries").fetchone()
    program = conn.execute("EXPLAIN UPDATE deliveries SET state = 'sending' WHERE id = 1")
    return any(row[1] == "OpenEphemeral" for row in program)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "migrated"])
def test_the_migrating_connection_checks_a_state_without_a_temporary_index(
    tmp_path: Path, existing: bool
) -> None:
    path = tmp_path / "store.db"
    if existing:
        _old_database(path)
    db = Database(path)
    try:
        assert db.call(_check_fills_an_index, db.conn) is False
    finally:
        db.close()
    with sqlite3.connect(path) as other:
        assert _check_fills_an_index(other) is False
    other.close()
    with sqlite3.connect(":memory:") as plain:  # what version 19 avoids
        listed = ", ".join(f"'{state}'" for state in STATES)
        plain.execute(
            f"CREATE TABLE deliveries (id INTEGER PRIMARY KEY, state CHECK (state IN ({listed})))"
        )
        assert _check_fills_an_index(plain) is True
    plain.close()
