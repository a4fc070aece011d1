"""What nodes sharing a store use beside the tables: channel records, device leases (schema
v9) and the change watcher, on either store engine.

- Channel records: each channel's own small key/value store of JSON values (an SMS
  submission's state, a device's last settings), in the shared store, so any node sees them;
  ``add`` writes only a missing key and ``increment`` counts in one statement, so nodes that
  count at once (an id sequence) each get a value of their own.
- Device leases: a resource that must have one user at a time (an RDS encoder's link, a GSM
  modem, a box's connection) is held by one node until its lease runs out. A node acquires the
  lease before it opens the device, renews it while it uses it and releases it when it stops;
  a lease that is not renewed (its node died) can be taken by another node once it runs out.

- Changes: a node's own dispatcher tells its listeners (console streams, run reports) when
  delivery state changes; :class:`ChangeWatcher` reads the newest delivery and alert event ids
  once per period and tells them of changes other nodes made, so a console on node B follows
  an alert that node A delivers. Only a shared store needs it.

The tables are synchronous (database thread); :class:`ChannelRecords` and
:class:`DeviceLeases` are what a channel gets through its
:class:`~broadcaster.channel.ChannelContext`, scoped to the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from broadcaster.errors import StoreError
from broadcaster.store.db import Database

log = logging.getLogger(__name__)

_UPSERT = (
    "INSERT INTO channel_records (channel, key, value, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value,"
    " updated_at = excluded.updated_at"
)

DatabaseOf = Callable[[], Database]
"""Gives the running store's database (channels are built before the store is opened)."""


class ChannelRecordTable:
    """The ``channel_records`` table (call on the database thread)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, channel: str, key: str) -> Any | None:
        row = self.database.conn.execute(
            "SELECT value FROM channel_records WHERE channel = ? AND key = ?", (channel, key)
        ).fetchone()
        return None if row is None else json.loads(row["value"])

    def put(self, channel: str, key: str, value: Any, now: float) -> None:
        self.database.conn.execute(
            _UPSERT, (channel, key, json.dumps(value, ensure_ascii=False), now)
        )

    def add(self, channel: str, key: str, value: Any, now: float) -> bool:
        """Write ``value`` unless ``key`` has one: True if it was written."""
        cursor = self.database.conn.execute(
            "INSERT INTO channel_records (channel, key, value, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (channel, key) DO NOTHING",
            (channel, key, json.dumps(value, ensure_ascii=False), now),
        )
        return cursor.rowcount > 0

    def increment(self, channel: str, key: str, now: float) -> int:
        """Add one to the integer under ``key`` (a missing key counts as 0) and return it, in
        one statement: nodes counting at once each get a value of their own."""
        row = self.database.conn.execute(
            "INSERT INTO channel_records (channel, key, value, updated_at) VALUES (?, ?, '1', ?)"
            " ON CONFLICT (channel, key) DO UPDATE"
            " SET value = CAST(CAST(channel_records.value AS BIGINT) + 1 AS TEXT),"
            " updated_at = excluded.updated_at RETURNING value",
            (channel, key, now),
        ).fetchone()
        return int(row[0])

    def delete(self, channel: str, key: str) -> bool:
        cursor = self.database.conn.execute(
            "DELETE FROM channel_records WHERE channel = ? AND key = ?", (channel, key)
        )
        return cursor.rowcount > 0

    def write_many(self, channel: str, changes: Mapping[str, Any | None], now: float) -> None:
        """Upsert each value and delete each key whose value is None, in one transaction."""
        with self.database.transaction() as conn:
            conn.executemany(
                _UPSERT,
                [
                    (channel, key, json.dumps(value, ensure_ascii=False), now)
                    for key, value in changes.items()
                    if value is not None
                ],
            )
            conn.executemany(
                "DELETE FROM channel_records WHERE channel = ? AND key = ?",
                [(channel, key) for key, value in changes.items() if value is None],
            )

    def items(self, channel: str, prefix: str) -> list[tuple[str, Any]]:
        rows = self.database.query(
            "SELECT key, value FROM channel_records WHERE channel = ?"
            " AND substr(key, 1, ?) = ? ORDER BY key",
            (channel, len(prefix), prefix),
        )
        return [(str(r["key"]), json.loads(r["value"])) for r in rows]


class DeviceLeaseTable:
    """The ``device_leases`` table (call on the database thread)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def acquire(self, resource: str, node: str, now: float, seconds: float) -> bool:
        """Take or extend the lease of ``resource`` for ``node``: True if it is ``node``'s
        now, False while another node's lease runs."""
        row = self.database.conn.execute(
            "INSERT INTO device_leases (resource, node, until) VALUES (?, ?, ?)"
            " ON CONFLICT (resource) DO UPDATE SET node = excluded.node, until = excluded.until"
            " WHERE device_leases.node = excluded.node OR device_leases.until <= ?"
            " RETURNING node",
            (resource, node, now + seconds, now),
        ).fetchone()
        return row is not None

    def release(self, resource: str, node: str) -> bool:
        cursor = self.database.conn.execute(
            "DELETE FROM device_leases WHERE resource = ? AND node = ?", (resource, node)
        )
        return cursor.rowcount > 0

    def holder(self, resource: str, now: float) -> str | None:
        row = self.database.conn.execute(
            "SELECT node FROM device_leases WHERE resource = ? AND until > ?", (resource, now)
        ).fetchone()
        return None if row is None else str(row["node"])


class ChannelRecords:
    """One channel's records (:class:`~broadcaster.channel.RecordStore`)."""

    def __init__(
        self, database_of: DatabaseOf, channel: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._database_of = database_of
        self.channel = channel
        self._clock = clock

    async def get(self, key: str) -> Any | None:
        database = self._database_of()
        return await database.run(ChannelRecordTable(database).get, self.channel, key)

    async def put(self, key: str, value: Any) -> None:
        database = self._database_of()
        table = ChannelRecordTable(database)
        await database.run(table.put, self.channel, key, value, self._clock())

    async def add(self, key: str, value: Any) -> bool:
        database = self._database_of()
        table = ChannelRecordTable(database)
        return await database.run(table.add, self.channel, key, value, self._clock())

    async def increment(self, key: str) -> int:
        database = self._database_of()
        table = ChannelRecordTable(database)
        return await database.run(table.increment, self.channel, key, self._clock())

    async def delete(self, key: str) -> bool:
        database = self._database_of()
        return await database.run(ChannelRecordTable(database).delete, self.channel, key)

    async def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        database = self._database_of()
        return await database.run(ChannelRecordTable(database).items, self.channel, prefix)

    async def write_many(self, changes: Mapping[str, Any | None]) -> None:
        database = self._database_of()
        table = ChannelRecordTable(database)
        await database.run(table.write_many, self.channel, dict(changes), self._clock())


class DeviceLeases:
    """One channel's device leases (:class:`~broadcaster.devicelease.DeviceLeaseHolder`):
    resources are named within the channel (``"encoder:150900"`` of channel ``fm``)."""

    def __init__(
        self, database_of: DatabaseOf, channel: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._database_of = database_of
        self.channel = channel
        self._clock = clock

    @property
    def node(self) -> str:
        return self._database_of().node

    @property
    def seconds(self) -> float:
        """How long a lease lasts unless renewed; renew well within it."""
        return self._database_of().lease_seconds

    def _name(self, resource: str) -> str:
        return f"{self.channel}:{resource}"

    async def acquire(self, resource: str) -> bool:
        """Take (or renew) the lease of ``resource``; False while another node holds it."""
        database = self._database_of()
        table = DeviceLeaseTable(database)
        return await database.run(
            table.acquire, self._name(resource), database.node, self._clock(), self.seconds
        )

    async def release(self, resource: str) -> None:
        database = self._database_of()
        await database.run(DeviceLeaseTable(database).release, self._name(resource), database.node)

    async def holder(self, resource: str) -> str | None:
        """The node holding ``resource`` now, or None."""
        database = self._database_of()
        return await database.run(
            DeviceLeaseTable(database).holder, self._name(resource), self._clock()
        )


def change_mark(database: Database) -> tuple[int, int]:
    """The newest delivery event and alert event ids (call on the database thread)."""
    row = database.conn.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM delivery_events),"
        " (SELECT coalesce(max(id), 0) FROM alert_events)"
    ).fetchone()
    return int(row[0]), int(row[1])


class ChangeWatcher:
    """Calls ``on_change`` within about ``period`` seconds of any node's change."""

    def __init__(
        self, database: Database, on_change: Callable[[], None], period: float = 0.5
    ) -> None:
        self._database = database
        self._on_change = on_change
        self._period = period
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        mark = await self._database.run(change_mark, self._database)
        self._task = asyncio.get_running_loop().create_task(self._loop(mark), name="changes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self, mark: tuple[int, int]) -> None:
        while True:
            await asyncio.sleep(self._period)
            try:
                now = await self._database.run(change_mark, self._database)
            except StoreError as exc:  # unreachable for a moment: look again next period
                log.warning("cannot read the store's change mark: %s", exc)
                continue
            if now != mark:
                mark = now
                self._on_change()
