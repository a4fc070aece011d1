"""Checkpoints of SQLite's write-ahead log on a thread of their own, off the writer's path.

By default SQLite copies the log back into the database file (a checkpoint) inside the commit
that grows the log past 1,000 pages: the single database thread then spends a good part of a
fan-out copying pages, and copies a page again whenever a later batch changes it once more.
Here the writer's connection never checkpoints (``wal_autocheckpoint = 0``); a thread with a
connection of its own runs a passive checkpoint once per period. A passive checkpoint neither
waits for nor blocks the writer, and a page that several batches of one period changed is
copied once. Once every page of the log is copied, the writer's next transaction starts the
log again from its beginning, so the log holds about one period of writes.

Durability is unchanged: a commit is durable once it is in the log (WAL with ``synchronous =
NORMAL``), and a crash before a checkpoint leaves committed pages in the log, where the next
open finds them. A checkpoint that fails (the disk full) is tried again at the next period.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_PERIOD_SECONDS = 0.5
"""How often the log is copied into the database file while the database is open."""


class WalCheckpointer:
    """A thread that checkpoints the write-ahead log of the database file ``path``."""

    def __init__(self, path: Path, period: float = CHECKPOINT_PERIOD_SECONDS) -> None:
        self.path = path
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 0")  # passive: never wait for the writer
            while not self._stop.wait(self.period):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy what the log holds into the database file, as far as readers allow."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("checkpoint of %s failed, tried again: %s", self.path, exc)

    def stop(self) -> None:
        """Stop the thread (the writer's close then checkpoints what is left)."""
        self._stop.set()
        self._thread.join()
