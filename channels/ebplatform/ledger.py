"""The channel's own record of the EBD link, in SQLite under its data directory.

- ``sent``: one row per delivery (its idempotency key): the EBMID it goes out under (a retry
  reuses it, so the peer sees one message), the peer, the CAP alert and target it is for, and
  the last broadcast state the peer reported; a later Cancel or Update finds the EBMID to name
  in ``RelatedInfo/EBMID`` here.
- ``packages``: every EBDID we posted about an EBM (the EBM and each EBMStateRequest), so a
  state package's ``RelatedEBD`` can be checked against what we really sent.
- ``received``: EBMs taken in from the upper platform, the alert each became, and the state
  last reported back up.
- ``counters``: the daily sequences of EBDIDs and EBMIDs, so a restart never reuses an id.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    idempotency_key TEXT PRIMARY KEY,
    ebmid TEXT NOT NULL UNIQUE,
    delivery_id INTEGER NOT NULL,
    alert_key TEXT NOT NULL,
    target_id TEXT NOT NULL,
    peer TEXT NOT NULL,
    state INTEGER,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_by_alert ON sent (alert_key, target_id);
CREATE TABLE IF NOT EXISTS packages (ebdid TEXT PRIMARY KEY, ebmid TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS received (
    ebmid TEXT PRIMARY KEY,
    src_ebrid TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    cap_key TEXT NOT NULL,
    url TEXT,
    reported INTEGER,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class SentEbm:
    """One EBM we sent for a delivery."""

    idempotency_key: str
    ebmid: str
    delivery_id: int
    alert_key: str
    target_id: str
    peer: str
    state: int | None
    expires_at: float


@dataclass(frozen=True)
class ReceivedEbm:
    """One EBM from the upper platform and the alert it became."""

    ebmid: str
    src_ebrid: str
    alert_id: str
    cap_key: str
    url: str | None
    reported: int | None
    expires_at: float


class Ledger:
    """Small, synchronous and thread-safe: each call is one short transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def next_value(self, name: str) -> int:
        """The next value (from 1) of the counter ``name``."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = value + 1",
                (name,),
            )
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def sent_for_key(self, key: str) -> SentEbm | None:
        return self._one("SELECT * FROM sent WHERE idempotency_key = ?", (key,))

    def sent_for_ebmid(self, ebmid: str) -> SentEbm | None:
        return self._one("SELECT * FROM sent WHERE ebmid = ?", (ebmid,))

    def sent_for_alert(self, alert_key: str, target_id: str) -> SentEbm | None:
        return self._one(
            "SELECT * FROM sent WHERE alert_key = ? AND target_id = ? ORDER BY rowid DESC",
            (alert_key, target_id),
        )

    def _one(self, sql: str, args: tuple[str, ...]) -> SentEbm | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return SentEbm(*row) if row else None

    def record_sent(self, ebm: SentEbm) -> None:
        """Keep (or refresh the delivery id of) the EBM of a delivery."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO sent VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key)"
                " DO UPDATE SET delivery_id = excluded.delivery_id",
                (
                    ebm.idempotency_key,
                    ebm.ebmid,
                    ebm.delivery_id,
                    ebm.alert_key,
                    ebm.target_id,
                    ebm.peer,
                    ebm.state,
                    ebm.expires_at,
                ),
            )

    def set_state(self, ebmid: str, state: int) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE sent SET state = ? WHERE ebmid = ?", (state, ebmid))

    def awaiting_state(self, now: float) -> list[SentEbm]:
        """EBMs of unexpired alerts whose broadcast the peer has not reported finished (< 3)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM sent WHERE (state IS NULL OR state < 3) AND expires_at > ?", (now,)
            )
            return [SentEbm(*row) for row in rows.fetchall()]

    def record_package(self, ebdid: str, ebmid: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO packages VALUES (?, ?)", (ebdid, ebmid))

    def package_ebmid(self, ebdid: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT ebmid FROM packages WHERE ebdid = ?", (ebdid,))
            found = row.fetchone()
        return str(found[0]) if found else None

    def record_received(self, received: ReceivedEbm) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO received VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    received.ebmid,
                    received.src_ebrid,
                    received.alert_id,
                    received.cap_key,
                    received.url,
                    received.reported,
                    received.expires_at,
                ),
            )

    def received(self, ebmid: str) -> ReceivedEbm | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM received WHERE ebmid = ?", (ebmid,)).fetchone()
        return ReceivedEbm(*row) if row else None

    def unreported(self, now: float) -> list[ReceivedEbm]:
        """Received EBMs, not yet ended, whose final state (3 or more) is not reported yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM received WHERE (reported IS NULL OR reported < 3)"
                " AND expires_at > ?",
                (now,),
            )
            return [ReceivedEbm(*row) for row in rows.fetchall()]

    def set_reported(self, ebmid: str, state: int) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE received SET reported = ? WHERE ebmid = ?", (state, ebmid))
