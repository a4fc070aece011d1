"""The channel's persisted records: JSON values by key in the shared store, written in groups.

``GatewayRecords`` is the one place the ``gateway-sms`` channel keeps state across a restart
(which gateway message ids belong to which delivery, what each segment's receipt said). The
records live in the channel's records of the store every node shares
(:class:`~broadcaster.channel.RecordStore`, the ``channel_records`` table on SQLite or
PostgreSQL). Writes are queued and handed over together (``write_many``: one transaction):
``put_many`` returns once the transaction holding its records is committed, ``put_later``
does not wait, so thousands of sends and receipts share one commit instead of one each.

Every record is stamped with the time it was written (``at``), which ``prune`` reads.

A record file of an earlier version (``records.sqlite3``, SQLite, in the channel's data
folder) is taken into the store once, at start (:meth:`GatewayRecords.adopt`: records already
in the store win), then renamed ``records.sqlite3.adopted``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from broadcaster.channel import RecordStore
from broadcaster.errors import RetryableError, StoreError

Record = dict[str, Any]
T = TypeVar("T")
AT = "at"


class GatewayRecordsError(RetryableError):
    """The records cannot be read or written (the store is unreachable, the disk full): the
    sends that wait for them are retried later."""


class GatewayRecords:
    """JSON records by key in a :class:`RecordStore` (see the module docstring)."""

    def __init__(self, store: RecordStore | None, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self._pending: dict[str, Record | None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self.commits = 0

    def _records(self) -> RecordStore:
        if self.store is None:
            raise GatewayRecordsError("the channel needs the store's channel records")
        return self.store

    async def open(self) -> None:
        """Start the writer; GatewayRecordsError when there is no record store."""
        self._records()
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop(), name="gateway-sms-records")

    async def close(self) -> None:
        """Write what is queued, then stop the writer."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._closing = True
            self._wake.set()
            await asyncio.gather(writer, return_exceptions=True)
            if self._pending or self._waiters:
                await self._commit()

    async def get(self, key: str) -> Record | None:
        """The record of ``key`` (a queued write included), None if there is none."""
        if key in self._pending:
            return self._pending[key]
        found = await self._guard(self._records().get(key), "read")
        return None if found is None else dict(found)

    async def scan(self, prefix: str) -> dict[str, Record]:
        """Every record whose key starts with ``prefix``."""
        found = dict(await self._guard(self._records().items(prefix), "scan"))
        for key, value in self._pending.items():
            if key.startswith(prefix):
                if value is None:
                    found.pop(key, None)
                else:
                    found[key] = value
        return found

    async def put_many(self, records: Mapping[str, Record | None]) -> None:
        """Store each record under its key (None: delete it); returns once committed."""
        if self._writer is None:
            raise GatewayRecordsError("the channel's records are not open")
        if not records:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.update(records)
        self._waiters.append(done)
        self._wake.set()
        await done

    def put_later(self, key: str, record: Record | None) -> None:
        """Queue a write (None: a delete) without waiting for its commit."""
        self._pending[key] = record
        self._wake.set()

    async def _write_loop(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self._commit()

    async def _commit(self) -> None:
        batch, self._pending = self._pending, {}
        waiters, self._waiters = self._waiters, []
        error: GatewayRecordsError | None = None
        if batch:
            now = self.clock()
            stamped = {k: None if v is None else v | {AT: now} for k, v in batch.items()}
            try:
                await self._guard(self._records().write_many(stamped), "write")
                self.commits += 1
            except GatewayRecordsError as exc:
                error = exc
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def prune(self, before: float, prefix: str) -> int:
        """Delete the records under ``prefix`` last written before ``before``."""
        found = await self.scan(prefix)
        old = {k: None for k, v in found.items() if float(v.get(AT, 0.0)) < before}
        await self.put_many(old)
        return len(old)

    async def adopt(self, path: Path) -> int:
        """Take the records of an earlier version's file at ``path`` (records already in the
        store win), then rename it ``*.adopted`` so it is taken once; how many were taken."""
        if not await asyncio.to_thread(path.exists):
            return 0
        try:
            rows = await asyncio.to_thread(_read_record_file, path)
        except (sqlite3.Error, OSError) as exc:
            raise GatewayRecordsError(f"the earlier records {path} cannot be read: {exc}") from exc
        present = await self.scan("")
        taken = {key: value | {AT: at} for key, value, at in rows if key not in present}
        await self._guard(self._records().write_many(taken), "write")
        await asyncio.to_thread(path.rename, path.with_name(path.name + ".adopted"))
        return len(taken)

    async def _guard(self, call: Awaitable[T], what: str) -> T:
        try:
            return await call
        except (StoreError, OSError, sqlite3.Error) as exc:
            raise GatewayRecordsError(f"cannot {what} the channel's records: {exc}") from exc


def _read_record_file(path: Path) -> list[tuple[str, Record, float]]:
    """The (key, record, written at) of an earlier version's file (opened for writing, so
    SQLite can first recover a write-ahead log a crash left)."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT key, value, updated_at FROM records ORDER BY key").fetchall()
    finally:
        db.close()
    return [(str(key), dict(json.loads(value)), float(at)) for key, value, at in rows]
