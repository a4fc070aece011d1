"""The ebplatform ledger in the store's channel records, on SQLite and PostgreSQL: what a node
sent and took in is found by any node, ids stay unique when nodes allocate at once, and an
earlier version's ``ledger.db`` is taken in once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from broadcaster.store.db import Database, open_database
from broadcaster.store.records import ChannelRecords
from channels.ebplatform.ledger import Ledger, ReceivedEbm, SentEbm


def ledger_of(database: Database, channel: str = "eb") -> Ledger:
    return Ledger(ChannelRecords(lambda: database, channel))


def sent(key: str, ebmid: str, alert: str = "sender,a1,2026-12-06T08:00:00+08:00") -> SentEbm:
    return SentEbm(key, ebmid, 1, alert, "eb:zhuozi:150921000000", "zhuozi", None, 2000.0)


async def test_sent_ebms_are_found_by_key_ebmid_and_alert(database: Database) -> None:
    ledger = ledger_of(database)
    first = sent("k1", "E1")
    await ledger.record_sent(first)
    await ledger.record_sent(sent("k2", "E2"))  # a later EBM for the same alert and target
    assert await ledger.sent_for_key("k1") == first
    assert await ledger.sent_for_ebmid("E1") == first
    found = await ledger.sent_for_alert(first.alert_key, first.target_id)
    assert found is not None and found.ebmid == "E2"
    assert await ledger.sent_for_alert(first.alert_key, "eb:huade:150922000000") is None
    assert await ledger.sent_for_ebmid("E9") is None and await ledger.sent_for_key("k9") is None


async def test_a_retry_keeps_the_ebmid_and_refreshes_only_the_delivery(database: Database) -> None:
    ledger = ledger_of(database)
    await ledger.record_sent(sent("k1", "E1"))
    await ledger.set_state("E1", 2)
    again = SentEbm("k1", "E-other", 7, "x", "y", "huade", None, 1.0)
    await ledger.record_sent(again)
    kept = await ledger.sent_for_key("k1")
    assert kept == SentEbm("k1", "E1", 7, sent("k1", "E1").alert_key, "eb:zhuozi:150921000000",
                           "zhuozi", 2, 2000.0)  # fmt: skip
    assert await ledger.sent_for_ebmid("E-other") is None


async def test_awaiting_state_leaves_out_final_and_expired(database: Database) -> None:
    ledger = ledger_of(database)
    for key, ebmid in (("k1", "E1"), ("k2", "E2"), ("k3", "E3")):
        await ledger.record_sent(sent(key, ebmid))
    await ledger.record_sent(SentEbm("k4", "E4", 4, "b", "t", "zhuozi", None, 500.0))
    await ledger.set_state("E1", 3)  # succeeded
    await ledger.set_state("E2", 2)  # broadcasting
    await ledger.set_state("E-unknown", 3)  # no such EBM: nothing changes
    waiting = await ledger.awaiting_state(1000.0)
    assert sorted(s.ebmid for s in waiting) == ["E2", "E3"]


async def test_packages_and_received_ebms(database: Database) -> None:
    ledger = ledger_of(database)
    await ledger.record_package("D1", "E1")
    await ledger.record_package("D1", "E2")  # the first record of an EBDID stays
    assert await ledger.package_ebmid("D1") == "E1" and await ledger.package_ebmid("D2") is None
    taken = ReceivedEbm("U1", "upper", "alert-1", "s,i,t", None, 900.0)
    await ledger.record_received(taken)
    await ledger.record_received(ReceivedEbm("U1", "upper", "alert-2", "x", None, 900.0))
    await ledger.record_received(ReceivedEbm("U2", "upper", "alert-3", "y", 1, 900.0))
    await ledger.record_received(ReceivedEbm("U3", "upper", "alert-4", "z", None, 100.0))
    assert await ledger.received("U1") == taken
    await ledger.set_reported("U2", 3)
    assert [r.ebmid for r in await ledger.unreported(500.0)] == ["U1"]
    await ledger.set_reported("U1", 2)
    [progress] = await ledger.unreported(500.0)  # broadcasting is no final state
    assert progress.ebmid == "U1" and progress.reported == 2


async def test_a_received_record_of_an_earlier_version_drops_its_src_url(
    database: Database,
) -> None:
    # Earlier versions kept the package's SRC/URL; state reports never go there.
    records = ChannelRecords(lambda: database, "eb")
    earlier = {"ebmid": "U1", "src_ebrid": "upper", "alert_id": "alert-1", "cap_key": "s,i,t",
               "url": "http://127.0.0.1:1/ebd", "reported": None, "expires_at": 900.0}  # fmt: skip
    await records.put("received:U1", earlier)
    ledger = Ledger(records)
    expected = ReceivedEbm("U1", "upper", "alert-1", "s,i,t", None, 900.0)
    assert await ledger.received("U1") == expected
    assert await ledger.unreported(500.0) == [expected]


async def test_nodes_allocating_ids_at_once_get_each_a_new_one(
    database: Database, database_url: str | None, tmp_path: Path
) -> None:
    other = open_database(tmp_path / "store.db", database_url, "node-b", 30.0)
    try:
        nodes = [ledger_of(database), ledger_of(other)]
        values = await asyncio.gather(
            *(nodes[n % 2].next_value("ebmid:20261206") for n in range(60))
        )
        assert sorted(values) == list(range(1, 61))
        assert await nodes[1].next_value("ebdid:20261206") == 1  # each counter on its own
        await nodes[1].record_sent(sent("k1", "E1"))
        assert await nodes[0].sent_for_ebmid("E1") == sent("k1", "E1")  # one node's, seen by both
    finally:
        other.close()


def write_earlier_ledger(path: Path) -> None:
    """A ledger file as the earlier version wrote it, in its schema."""
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE sent (idempotency_key TEXT PRIMARY KEY, ebmid TEXT NOT NULL UNIQUE,"
        " delivery_id INTEGER NOT NULL, alert_key TEXT NOT NULL, target_id TEXT NOT NULL,"
        " peer TEXT NOT NULL, state INTEGER, expires_at REAL NOT NULL);"
        "CREATE TABLE packages (ebdid TEXT PRIMARY KEY, ebmid TEXT NOT NULL);"
        "CREATE TABLE received (ebmid TEXT PRIMARY KEY, src_ebrid TEXT NOT NULL,"
        " alert_id TEXT NOT NULL, cap_key TEXT NOT NULL, url TEXT, reported INTEGER,"
        " expires_at REAL NOT NULL);"
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO sent VALUES ('k1', 'E1', 3, 'a', 't', 'zhuozi', 1, 2000.0);"
        "INSERT INTO sent VALUES ('k2', 'E2', 4, 'a', 't', 'zhuozi', NULL, 2000.0);"
        "INSERT INTO packages VALUES ('D1', 'E1');"
        "INSERT INTO received VALUES ('U1', 'upper', 'alert-1', 's,i,t', 'http://127.0.0.1:1/',"
        " NULL, 900.0);"
        "INSERT INTO counters VALUES ('ebmid:20261206', 12), ('ebdid:20261206', 3);"
    )
    db.commit()
    db.close()


async def test_an_earlier_ledger_file_is_taken_in_once(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "data" / "ebplatform-eb" / "ledger.db"
    write_earlier_ledger(path)
    ledger = ledger_of(database)
    assert await ledger.next_value("ebdid:20261206") == 1
    for _ in range(5):
        await ledger.next_value("ebdid:20261206")  # the store counted past the file's 3
    assert await ledger.adopt(path) is True
    assert not path.exists() and path.with_name("ledger.db.adopted").exists()
    assert await ledger.sent_for_ebmid("E1") == SentEbm(
        "k1", "E1", 3, "a", "t", "zhuozi", 1, 2000.0
    )
    latest = await ledger.sent_for_alert("a", "t")
    assert latest is not None and latest.ebmid == "E2"  # the later row, as before
    assert await ledger.package_ebmid("D1") == "E1"
    received = await ledger.received("U1")
    assert received == ReceivedEbm("U1", "upper", "alert-1", "s,i,t", None, 900.0)
    assert await ledger.next_value("ebmid:20261206") == 13  # no id of the file is used again
    assert await ledger.next_value("ebdid:20261206") == 7  # the higher count wins
    assert await ledger.adopt(path) is False  # taken once
