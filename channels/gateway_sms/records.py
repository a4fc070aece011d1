"""The channel's persisted records: JSON values by key, written in group commits.

``GatewayRecords`` is the one place the ``gateway-sms`` channel keeps state across a restart
(which gateway message ids belong to which delivery, what each segment's receipt said). It
offers ``get`` / ``put`` / ``delete`` by key and a ``scan`` by key prefix over JSON objects, so
it can move onto a shared record store without touching the rest of the channel.

Here it is one SQLite file in the channel's data directory, written by one thread. Writes are
queued and committed together: ``put`` and ``delete`` return once the transaction holding
them is on disk, so thousands of concurrent sends share one commit instead of one each.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from broadcaster.errors import RetryableError

T = TypeVar("T")
Record = dict[str, Any]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records ("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL)"
)
UPSERT = (
    "INSERT INTO records (key, value, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
MAX_BATCH = 20_000


class GatewayRecordsError(RetryableError):
    """The record file cannot be opened, read or written (a full disk): retried later."""


class GatewayRecords:
    """JSON records by key in ``path`` (see the module docstring)."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self.clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: dict[str, Record | None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self.commits = 0

    async def open(self) -> None:
        """Open (creating) the file; GatewayRecordsError if it cannot be."""
        self._closing = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="gateway-sms-records")
        try:
            await self._run(self._open)
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise GatewayRecordsError(f"cannot open {self.path}: {exc}") from exc
        self._writer = asyncio.create_task(self._write_loop(), name=f"records:{self.path}")

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        """Write what is queued, then close the file."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._closing = True
            self._wake.set()
            await asyncio.gather(writer, return_exceptions=True)
            if self._pending or self._waiters:
                await self._commit()
        executor, self._executor = self._executor, None
        if executor is not None:
            conn, self._conn = self._conn, None
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)

    async def _run(self, function: Callable[[], T]) -> T:
        if self._executor is None:
            raise GatewayRecordsError(f"{self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise GatewayRecordsError(f"{self.path} is not open")
        return self._conn

    async def get(self, key: str) -> Record | None:
        """The record of ``key`` (a queued write included), None if there is none."""
        if key in self._pending:
            return self._pending[key]

        def read() -> Record | None:
            row = self._db().execute("SELECT value FROM records WHERE key = ?", (key,)).fetchone()
            return None if row is None else dict(json.loads(row[0]))

        return await self._guard(read, "read")

    async def scan(self, prefix: str) -> dict[str, Record]:
        """Every record whose key starts with ``prefix``."""

        def read() -> dict[str, Record]:
            rows = self._db().execute(
                "SELECT key, value FROM records WHERE key >= ? AND key < ?",
                (prefix, prefix + "\U0010ffff"),
            )
            return {key: json.loads(value) for key, value in rows}

        found = await self._guard(read, "scan")
        for key, value in self._pending.items():
            if key.startswith(prefix):
                if value is None:
                    found.pop(key, None)
                else:
                    found[key] = value
        return found

    async def put(self, key: str, record: Record) -> None:
        """Store ``record`` under ``key``; returns once it is on disk."""
        await self._queue(key, record)

    async def delete(self, key: str) -> None:
        """Remove the record of ``key`` (none: nothing happens); returns once on disk."""
        await self._queue(key, None)

    def put_later(self, key: str, record: Record | None) -> None:
        """Queue a write (None: a delete) without waiting for its commit."""
        self._pending[key] = record
        self._wake.set()

    async def _queue(self, key: str, record: Record | None) -> None:
        if self._writer is None:
            raise GatewayRecordsError(f"{self.path} is not open")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[key] = record
        self._waiters.append(done)
        self._wake.set()
        await done

    async def _write_loop(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self._commit()

    async def _commit(self) -> None:
        batch, self._pending = self._pending, {}
        waiters, self._waiters = self._waiters, []
        if not batch:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            return
        now = self.clock()

        def write() -> None:
            conn = self._db()
            items = list(batch.items())
            conn.execute("BEGIN")
            try:
                for start in range(0, len(items), MAX_BATCH):
                    chunk = items[start : start + MAX_BATCH]
                    conn.executemany(
                        UPSERT,
                        [(k, json.dumps(v), now) for k, v in chunk if v is not None],
                    )
                    conn.executemany(
                        "DELETE FROM records WHERE key = ?", [(k,) for k, v in chunk if v is None]
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        try:
            await self._guard(write, "write")
        except GatewayRecordsError as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        self.commits += 1
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def prune(self, before: float, prefix: str) -> int:
        """Delete the records under ``prefix`` last written before ``before``."""

        def delete() -> int:
            cursor = self._db().execute(
                "DELETE FROM records WHERE key >= ? AND key < ? AND updated_at < ?",
                (prefix, prefix + "\U0010ffff", before),
            )
            return cursor.rowcount

        return await self._guard(delete, "prune")

    async def _guard(self, function: Callable[[], T], what: str) -> T:
        try:
            return await self._run(function)
        except (OSError, sqlite3.Error) as exc:
            raise GatewayRecordsError(f"cannot {what} {self.path}: {exc}") from exc
