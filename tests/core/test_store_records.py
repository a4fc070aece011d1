"""Channel records and device leases on both store engines."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from broadcaster.store.db import Database, open_database
from broadcaster.store.records import (
    ChannelRecords,
    ChannelRecordTable,
    DeviceLeases,
    DeviceLeaseTable,
)


async def test_records_are_kept_per_channel_as_json(database: Database) -> None:
    sms = ChannelRecords(lambda: database, "sms", clock=lambda: 5.0)
    fm = ChannelRecords(lambda: database, "fm", clock=lambda: 5.0)
    await sms.put("submission:1", {"state": "sent", "parts": [1, 2], "text": "暴雪"})
    await sms.put("submission:2", {"state": "queued"})
    await sms.put("other", 3)
    await fm.put("submission:1", "not sms")
    assert await sms.get("submission:1") == {"state": "sent", "parts": [1, 2], "text": "暴雪"}
    await sms.put("submission:2", {"state": "delivered"})
    assert await sms.items("submission:") == [
        ("submission:1", {"state": "sent", "parts": [1, 2], "text": "暴雪"}),
        ("submission:2", {"state": "delivered"}),
    ]
    assert await sms.delete("other") is True and await sms.delete("other") is False
    assert await sms.get("other") is None
    assert await fm.items() == [("submission:1", "not sms")]


async def test_many_records_are_written_and_deleted_in_one_transaction(
    database: Database,
) -> None:
    gateway = ChannelRecords(lambda: database, "gateway", clock=lambda: 7.0)
    other = ChannelRecords(lambda: database, "other", clock=lambda: 7.0)
    await other.put("d:1", "kept")
    await gateway.write_many({f"d:{n}": {"ids": [f"m{n}"]} for n in range(1, 2001)})
    await gateway.write_many({"d:1": None, "s:1": {"outcome": "confirmed"}, "d:2": {"ids": []}})
    found = dict(await gateway.items())
    assert len(found) == 2000 and "d:1" not in found and found["s:1"] == {"outcome": "confirmed"}
    assert found["d:2"] == {"ids": []} and found["d:2000"] == {"ids": ["m2000"]}
    assert await other.get("d:1") == "kept"
    await gateway.write_many({"d:3": None, "d:9999": None})  # a missing key: nothing happens
    assert len(await gateway.items("d:")) == 1998


def test_a_device_lease_has_one_holder_until_it_runs_out(database: Database) -> None:
    leases = DeviceLeaseTable(database)
    assert database.call(leases.acquire, "fm:encoder:1", "a", 100.0, 10.0)
    assert not database.call(leases.acquire, "fm:encoder:1", "b", 105.0, 10.0)
    assert database.call(leases.acquire, "fm:encoder:1", "a", 105.0, 10.0)  # renewed to 115
    assert not database.call(leases.acquire, "fm:encoder:1", "b", 114.0, 10.0)
    assert database.call(leases.holder, "fm:encoder:1", 114.0) == "a"
    assert database.call(leases.acquire, "fm:encoder:1", "b", 115.0, 10.0)  # a went silent
    assert not database.call(leases.acquire, "fm:encoder:1", "a", 116.0, 10.0)
    assert not database.call(leases.release, "fm:encoder:1", "a")  # not a's any more
    assert database.call(leases.release, "fm:encoder:1", "b")
    assert database.call(leases.holder, "fm:encoder:1", 116.0) is None


async def test_channel_leases_are_named_within_the_channel(database: Database) -> None:
    database.node = "node-1"
    fm = DeviceLeases(lambda: database, "fm", clock=lambda: 50.0)
    sms = DeviceLeases(lambda: database, "sms", clock=lambda: 50.0)
    assert await fm.acquire("link") and await sms.acquire("link")
    assert await fm.holder("link") == "node-1"
    await fm.release("link")
    assert await fm.holder("link") is None and await sms.holder("link") == "node-1"


async def test_add_keeps_the_first_value(database: Database) -> None:
    records = ChannelRecords(lambda: database, "eb")
    assert await records.add("received:1", {"alert": "a"}) is True
    assert await records.add("received:1", {"alert": "b"}) is False
    assert await records.get("received:1") == {"alert": "a"}


async def test_increment_counts_from_one_per_key_and_channel(database: Database) -> None:
    eb = ChannelRecords(lambda: database, "eb")
    other = ChannelRecords(lambda: database, "other")
    assert [await eb.increment("counter:a") for _ in range(3)] == [1, 2, 3]
    assert await eb.increment("counter:b") == 1
    assert await other.increment("counter:a") == 1
    assert await eb.get("counter:a") == 3  # a JSON number like any record
    await eb.put("counter:c", 41)
    assert await eb.increment("counter:c") == 42


def test_nodes_counting_at_once_never_get_the_same_value(
    database: Database, database_url: str | None, tmp_path: Path
) -> None:
    """Two nodes (two connections to one store), four threads each, counting one key."""
    other = open_database(tmp_path / "store.db", database_url, "node-b", 30.0)
    try:
        tables = [ChannelRecordTable(database), ChannelRecordTable(other)]

        def count(table: ChannelRecordTable) -> list[int]:
            return [
                table.database.call(table.increment, "eb", "counter:ebmid", float(n))
                for n in range(25)
            ]

        with ThreadPoolExecutor(max_workers=8) as pool:
            runs = list(pool.map(count, tables * 4))
        values = [value for run in runs for value in run]
        assert sorted(values) == list(range(1, 201))
        assert all(run == sorted(run) for run in runs)  # each node's values rise
    finally:
        other.close()
