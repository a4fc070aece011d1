"""The tables of upstream sources (``UpstreamTable``) and of reports between nodes
(``ReportTables``) on both store engines: what the poller, the pusher and the reporters do with
them, and two nodes writing the same row at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from broadcaster.federation.reports import ReportTables
from broadcaster.store.alerts import AlertTable
from broadcaster.store.db import Database, open_database
from broadcaster.upstream.state import UpstreamTable, Validators
from tests.core.test_store_engines import NOW, plan, record


@pytest.fixture
def other_node(database: Database, database_url: str | None, tmp_path: Path) -> Iterator[Database]:
    """A second node on the store of ``database`` (a second connection to it)."""
    other = open_database(tmp_path / "store.db", database_url, "node-b", 30.0)
    yield other
    other.close()


def at_once(nodes: tuple[Database, Database], write: Callable[[Database, int], None]) -> None:
    """``write`` on both nodes at the same moment, twenty rounds; fails on any error."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(db: Database, n: int) -> None:
        for round_ in range(20):
            barrier.wait()
            try:
                db.call(write, db, n * 100 + round_)
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(db, n)) for n, db in enumerate(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_validators_are_kept_per_source_and_replaced(database: Database) -> None:
    table = UpstreamTable(database)
    assert database.call(table.validators, "cma") == Validators()
    database.call(table.save_validators, "cma", Validators('"v1"', "Sun, 06 Dec 2026 05:00:00 GMT"))
    database.call(table.save_validators, "other", Validators(None, "x"))
    database.call(table.save_validators, "cma", Validators('"v2"', None))
    assert database.call(table.validators, "cma") == Validators('"v2"', None)
    assert database.call(table.validators, "other") == Validators(None, "x")


def test_entries_are_seen_by_id_and_update_newest_first(database: Database) -> None:
    table = UpstreamTable(database)
    database.call(
        table.record, "cma", "e1", "2026-12-06T05:00:00Z",
        url="http://127.0.0.1:1/e1", outcome="refused", alert_id=None, now=NOW,
    )  # fmt: skip
    database.call(
        table.record, "cma", "e2", "2026-12-06T05:00:00Z",
        url="http://127.0.0.1:1/e2", outcome="taken", alert_id="a2", now=NOW + 1,
    )  # fmt: skip
    database.call(
        table.record, "cma", "e1", "2026-12-06T05:00:00Z",
        url="http://127.0.0.1:1/e1", outcome="taken", alert_id="a1", now=NOW + 2,
    )  # recorded again: the later outcome stays  # fmt: skip
    assert database.call(table.seen, "cma", "e1", "2026-12-06T05:00:00Z")
    assert not database.call(table.seen, "cma", "e1", "2026-12-06T06:00:00Z")  # updated since
    assert not database.call(table.seen, "other", "e1", "2026-12-06T05:00:00Z")
    entries = database.call(table.entries, "cma")
    assert entries == [
        {
            "entry": "e1", "updated": "2026-12-06T05:00:00Z", "url": "http://127.0.0.1:1/e1",
            "outcome": "taken", "alert_id": "a1", "seen_at": NOW + 2,
        },
        {
            "entry": "e2", "updated": "2026-12-06T05:00:00Z", "url": "http://127.0.0.1:1/e2",
            "outcome": "taken", "alert_id": "a2", "seen_at": NOW + 1,
        },
    ]  # fmt: skip
    assert database.call(table.entries, "other") == []


def test_a_push_is_recorded_once_and_the_first_outcome_stays(database: Database) -> None:
    table = UpstreamTable(database)
    assert not database.call(table.pushed, "east", "a1")
    database.call(table.record_push, "east", "a1", "refused", NOW)
    database.call(table.record_push, "east", "a1", "taken", NOW + 1)  # another node, late
    assert database.call(table.pushed, "east", "a1")
    assert not database.call(table.pushed, "west", "a1")
    rows = database.call(database.query, "SELECT outcome FROM neighbour_pushes")
    assert rows == [{"outcome": "refused"}]


def test_two_nodes_writing_the_same_upstream_rows_at_once(
    database: Database, other_node: Database
) -> None:
    table = UpstreamTable(database)

    def write(db: Database, n: int) -> None:
        mine = UpstreamTable(db)
        mine.save_validators("cma", Validators(f'"{n}"', None))
        mine.record("cma", "e1", "u1", url="http://127.0.0.1:1/e1", outcome="taken",
                    alert_id="a1", now=NOW + n)  # fmt: skip
        mine.record_push("east", "a1", f"taken {n}", NOW + n)

    at_once((database, other_node), write)
    assert database.call(table.seen, "cma", "e1", "u1")
    assert len(database.call(table.entries, "cma")) == 1
    assert database.call(table.validators, "cma").etag in {f'"{n}"' for n in (19, 119)}


def relay_deliveries(database: Database, alert_id: str = "a1") -> list[int]:
    """An alert relayed to two county nodes: its two relay delivery ids."""
    database.call(AlertTable(database).insert, record(alert_id), [], plan(2), supersede=None,
                  now=NOW)  # fmt: skip
    rows = database.call(
        database.query, "SELECT id FROM deliveries WHERE alert_id = ? ORDER BY id", (alert_id,)
    )
    return [int(row["id"]) for row in rows]


def test_node_reports_keep_the_latest_and_never_undo_a_final_one(database: Database) -> None:
    tables = ReportTables(database)
    first, second = relay_deliveries(database)
    database.call(tables.record_node_report, first, "zhuozi", {"sms": {"retrying": 2}}, False, NOW)
    database.call(tables.record_node_report, second, "huade", {"fm": {"retrying": 1}}, False, NOW)
    done = {"sms": {"confirmed": 1, "failed": 1}}
    database.call(tables.record_node_report, first, "zhuozi", done, True, NOW + 5)
    late = {"sms": {"confirmed": 1, "retrying": 1}}
    database.call(tables.record_node_report, first, "zhuozi", late, False, NOW + 6)
    reports = database.call(tables.node_reports, "a1")
    assert reports == {
        first: {"node": "zhuozi", "summary": done, "complete": True, "reported_at": NOW + 5},
        second: {"node": "huade", "summary": {"fm": {"retrying": 1}}, "complete": False,
                 "reported_at": NOW},
    }  # fmt: skip
    assert all(isinstance(key, int) for key in reports)
    assert database.call(tables.node_reports, "no-such-alert") == {}


def test_upward_reports_name_what_is_left_to_report(database: Database) -> None:
    alerts, tables = AlertTable(database), ReportTables(database)
    for alert_id, origin, at in (
        ("c1", "api:city", NOW + 3), ("c2", "api:city", NOW + 1), ("c3", "api", NOW + 2),
        ("c4", "api:other", NOW + 4), ("c0", "api:city", NOW - 10),
    ):  # fmt: skip
        alert = replace(record(alert_id), origin=origin, received_at=at)
        database.call(alerts.insert, alert, [], [], supersede=None, now=at)
    clients = ["city", "other"]
    assert database.call(tables.unreported, clients, NOW, 10) == ["c2", "c1", "c4"]
    assert database.call(tables.unreported, clients, NOW, 2) == ["c2", "c1"]
    assert database.call(tables.relayed_by, "c1") == ["city"]
    assert database.call(tables.relayed_by, "c3") == []
    assert database.call(tables.relayed_by, "nothing") == []
    database.call(tables.record_relayed, "c3", "city", NOW + 7)  # held already, then relayed
    assert database.call(tables.relayed_by, "c3") == ["city"]
    assert database.call(tables.unreported, clients, NOW, 10) == ["c2", "c3", "c1", "c4"]
    assert database.call(tables.acknowledged, "c2") is None
    database.call(tables.record_acknowledged, "c2", {"sms": {"retrying": 1}}, False, NOW + 5)
    assert database.call(tables.unreported, clients, NOW, 10) == ["c2", "c3", "c1", "c4"]
    database.call(tables.record_acknowledged, "c2", {"sms": {"confirmed": 1}}, True, NOW + 6)
    assert database.call(tables.acknowledged, "c2") == {
        "summary": {"sms": {"confirmed": 1}}, "complete": True,
    }  # fmt: skip
    assert database.call(tables.unreported, clients, NOW, 10) == ["c3", "c1", "c4"]


def test_two_nodes_writing_the_same_reports_at_once(
    database: Database, other_node: Database
) -> None:
    [delivery] = relay_deliveries(database)[:1]
    tables = ReportTables(database)

    def write(db: Database, n: int) -> None:
        mine = ReportTables(db)
        mine.record_node_report(delivery, "zhuozi", {"sms": {"retrying": n}}, n % 7 == 6, NOW + n)
        mine.record_acknowledged("a1", {"sms": {"confirmed": n}}, False, NOW + n)

    at_once((database, other_node), write)
    report = database.call(tables.node_reports, "a1")[delivery]
    assert report["complete"] is True  # a final report, once there, stays
    acknowledged = database.call(tables.acknowledged, "a1")
    assert acknowledged is not None and acknowledged["complete"] is False
