"""The audit log: entries chain, the chain verifies, and an edited, removed or reordered entry
is found; the table refuses updates and deletes; secrets are refused."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator

import psycopg
import pytest

from broadcaster.audit import GENESIS_HASH, AuditError, AuditLog
from broadcaster.store.db import Database


@pytest.fixture
def audit(database: Database) -> Iterator[tuple[AuditLog, Database]]:
    log = AuditLog(database)
    for n in range(5):
        database.call(log.append, f"console:officer{n}", "alert.draft", f"a{n}", {"n": n})
    yield log, database


def _tamper(database: Database, sql: str, params: tuple[object, ...] = ()) -> None:
    """Change the table behind the server's back, as someone with the database could."""
    on = " ON audit_log" if database.dialect == "postgresql" else ""

    def tamper() -> None:
        database.conn.execute(f"DROP TRIGGER audit_log_no_update{on}")
        database.conn.execute(f"DROP TRIGGER audit_log_no_delete{on}")
        database.conn.execute(sql, params)

    database.call(tamper)


def test_entries_chain_and_verify(audit: tuple[AuditLog, Database]) -> None:
    log, _ = audit
    entries = log.database.call(log.entries)
    assert [e.seq for e in entries] == [5, 4, 3, 2, 1]
    assert entries[-1].prev_hash == GENESIS_HASH
    assert all(a.prev_hash == b.hash for a, b in itertools.pairwise(entries))
    report = log.database.call(log.verify)
    assert report.ok and report.entries == 5 and report.head == entries[0].hash


def test_an_edited_entry_is_detected(audit: tuple[AuditLog, Database]) -> None:
    log, database = audit
    _tamper(database, "UPDATE audit_log SET actor = 'console:someone-else' WHERE seq = 3")
    report = log.database.call(log.verify)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "changed" in report.problem


def test_a_rehashed_edit_still_breaks_the_next_link(audit: tuple[AuditLog, Database]) -> None:
    log, database = audit
    from broadcaster.audit import entry_hash

    row = log.database.call(log.database.query, "SELECT * FROM audit_log WHERE seq = 2")[0]
    forged = entry_hash(row["prev_hash"], 2, row["at"], "cli", row["action"], "a1", row["detail"])
    _tamper(database, "UPDATE audit_log SET actor = 'cli', hash = ? WHERE seq = 2", (forged,))
    report = log.database.call(log.verify)
    assert not report.ok and report.first_bad_seq == 3


def test_a_removed_entry_is_detected(audit: tuple[AuditLog, Database]) -> None:
    log, database = audit
    _tamper(database, "DELETE FROM audit_log WHERE seq = 2")
    report = log.database.call(log.verify)
    assert not report.ok and report.first_bad_seq == 3 and "missing" in report.problem


def test_the_table_refuses_updates_and_deletes(audit: tuple[AuditLog, Database]) -> None:
    log, _ = audit
    for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises((sqlite3.IntegrityError, psycopg.Error), match="append-only"):
            log.database.call(log.database.conn.execute, sql)
    assert log.database.call(log.verify).entries == 5


def test_secret_looking_details_are_refused(audit: tuple[AuditLog, Database]) -> None:
    log, _ = audit
    for detail in ({"password": "x"}, {"outer": {"api_token": "x"}}):
        with pytest.raises(AuditError):
            log.database.call(log.append, "cli", "user.add", "u", detail)
    assert log.database.call(log.verify).entries == 5


def test_filters(audit: tuple[AuditLog, Database]) -> None:
    log, _ = audit
    log.database.call(log.append, "cli", "user.add", "ann", {"role": "drafter"})
    assert [e.subject for e in log.database.call(log.entries, action="user")] == ["ann"]
    assert [e.seq for e in log.database.call(log.entries, actor="console:officer1")] == [2]
