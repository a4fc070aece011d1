"""The channel's own record of the EBD link, in its records of the store every node shares
(:class:`~broadcaster.channel.RecordStore`), so any node of a cluster sees what another sent.

- ``sent:<idempotency key>``: one record per delivery: the EBMID it goes out under (a retry
  reuses it, so the peer sees one message), the peer, the CAP alert and target it is for, and
  the last broadcast state the peer reported. ``ebmid:<EBMID>`` and ``alert:<alert, target>``
  name the delivery that holds an EBMID and the latest EBM sent for an alert to a target, so a
  state report finds its delivery and a later Cancel or Update the EBMID to name in
  ``RelatedInfo/EBMID``.
- ``package:<EBDID>``: the EBM of every EBDID we posted about one (the EBM and each
  EBMStateRequest), so a state package's ``RelatedEBD`` can be checked against what we sent.
- ``received:<EBMID>``: EBMs taken in from the upper platform, the alert each became, and the
  state last reported back up.
- ``counter:<name>``: the daily sequences of EBDIDs and EBMIDs, counted by the store's atomic
  increment, so neither a restart nor two nodes sending at once ever reuse an id.

A ledger of an earlier version (``ledger.db``, SQLite, in the channel's data folder) is taken
into the records once, at start (:meth:`Ledger.adopt`), then renamed ``ledger.db.adopted``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from broadcaster.channel import RecordStore

_SENT, _EBMID, _ALERT, _PACKAGE, _RECEIVED, _COUNTER = (
    "sent:", "ebmid:", "alert:", "package:", "received:", "counter:"
)  # fmt: skip


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
    reported: int | None
    expires_at: float

    @classmethod
    def of_record(cls, value: dict[str, Any]) -> ReceivedEbm:
        """The record as kept; earlier versions also kept the package's ``SRC/URL``, which
        is not used: state reports go to the configured ``upper.url`` only."""
        return cls(**{k: v for k, v in value.items() if k != "url"})


def _alert_key(alert_key: str, target_id: str) -> str:
    return _ALERT + json.dumps([alert_key, target_id], ensure_ascii=False)


class Ledger:
    """The channel's EBD records; each call is one or a few short store operations."""

    def __init__(self, records: RecordStore) -> None:
        self._records = records

    async def next_value(self, name: str) -> int:
        """The next value (from 1) of the counter ``name``, unique across nodes."""
        return await self._records.increment(_COUNTER + name)

    async def sent_for_key(self, key: str) -> SentEbm | None:
        found = await self._records.get(_SENT + key)
        return None if found is None else SentEbm(**found)

    async def sent_for_ebmid(self, ebmid: str) -> SentEbm | None:
        key = await self._records.get(_EBMID + ebmid)
        return None if key is None else await self.sent_for_key(str(key))

    async def sent_for_alert(self, alert_key: str, target_id: str) -> SentEbm | None:
        """The latest EBM sent for the alert ``alert_key`` to ``target_id``."""
        key = await self._records.get(_alert_key(alert_key, target_id))
        return None if key is None else await self.sent_for_key(str(key))

    async def record_sent(self, ebm: SentEbm) -> None:
        """Keep the EBM of a delivery; for one already kept, refresh only its delivery id."""
        existing = await self.sent_for_key(ebm.idempotency_key)
        if existing is not None:
            await self._records.put(
                _SENT + ebm.idempotency_key, asdict(replace(existing, delivery_id=ebm.delivery_id))
            )
            await self._records.add(_EBMID + existing.ebmid, ebm.idempotency_key)
            return
        await self._records.put(_SENT + ebm.idempotency_key, asdict(ebm))
        await self._records.add(_EBMID + ebm.ebmid, ebm.idempotency_key)
        await self._records.put(_alert_key(ebm.alert_key, ebm.target_id), ebm.idempotency_key)

    async def set_state(self, ebmid: str, state: int) -> None:
        sent = await self.sent_for_ebmid(ebmid)
        if sent is not None:
            await self._records.put(
                _SENT + sent.idempotency_key, asdict(replace(sent, state=state))
            )

    async def awaiting_state(self, now: float) -> list[SentEbm]:
        """EBMs of unexpired alerts whose broadcast the peer has not reported finished (< 3)."""
        sent = [SentEbm(**value) for _, value in await self._records.items(_SENT)]
        return [s for s in sent if (s.state is None or s.state < 3) and s.expires_at > now]

    async def record_package(self, ebdid: str, ebmid: str) -> None:
        await self._records.add(_PACKAGE + ebdid, ebmid)

    async def package_ebmid(self, ebdid: str) -> str | None:
        found = await self._records.get(_PACKAGE + ebdid)
        return None if found is None else str(found)

    async def record_received(self, received: ReceivedEbm) -> None:
        """Keep an EBM taken in (the first record of an EBMID stays)."""
        await self._records.add(_RECEIVED + received.ebmid, asdict(received))

    async def received(self, ebmid: str) -> ReceivedEbm | None:
        found = await self._records.get(_RECEIVED + ebmid)
        return None if found is None else ReceivedEbm.of_record(found)

    async def unreported(self, now: float) -> list[ReceivedEbm]:
        """Received EBMs, not yet ended, whose final state (3 or more) is not reported yet."""
        found = [ReceivedEbm.of_record(value) for _, value in await self._records.items(_RECEIVED)]
        return [r for r in found if (r.reported is None or r.reported < 3) and r.expires_at > now]

    async def set_reported(self, ebmid: str, state: int) -> None:
        received = await self.received(ebmid)
        if received is not None:
            await self._records.put(_RECEIVED + ebmid, asdict(replace(received, reported=state)))

    async def adopt(self, path: Path) -> bool:
        """Take the rows of an earlier version's SQLite ledger at ``path`` into the records
        (records already there win; a counter keeps the higher value), then rename the file
        ``*.adopted`` so it is taken once. False if there is no such file."""
        if not await asyncio.to_thread(path.exists):
            return False
        tables = await asyncio.to_thread(_read_sqlite_ledger, path)
        for row in tables["sent"]:
            await self.record_sent(SentEbm(*row))
        for ebdid, ebmid in tables["packages"]:
            await self.record_package(ebdid, ebmid)
        for row in tables["received"]:
            await self.record_received(ReceivedEbm(*row))
        for name, value in tables["counters"]:
            current = await self._records.get(_COUNTER + name)
            if current is None or int(current) < int(value):
                await self._records.put(_COUNTER + name, int(value))
        await asyncio.to_thread(path.rename, path.with_name(path.name + ".adopted"))
        return True


def _read_sqlite_ledger(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of an earlier version's ledger, ``sent`` in the order they were written
    (opened for writing, so SQLite can first recover a write-ahead log a crash left)."""
    db = sqlite3.connect(path)
    try:
        queries = {
            "sent": "SELECT idempotency_key, ebmid, delivery_id, alert_key, target_id, peer,"
            " state, expires_at FROM sent ORDER BY rowid",
            "packages": "SELECT ebdid, ebmid FROM packages",
            "received": "SELECT ebmid, src_ebrid, alert_id, cap_key, reported, expires_at"
            " FROM received",
            "counters": "SELECT name, value FROM counters",
        }
        return {table: db.execute(sql).fetchall() for table, sql in queries.items()}
    finally:
        db.close()
