"""The store's batched writes, on both engines: changes of one shape and of many written alike,
targets decoded once and never stale, a plan's and a claim's history written by one statement
each and read back exactly, rows of every batch size inserted in order with the values they
share; and on SQLite, the log copied into the database file by a thread
of its own while a process killed between two writes loses neither."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from broadcaster.delivery import DeliveryState, Target, Transition
from broadcaster.store.alerts import AlertTable, NewDelivery
from broadcaster.store.batch import insert_rows, steps_json
from broadcaster.store.db import Database
from broadcaster.store.outbox import Outbox
from broadcaster.store.targets import KnownTargets, TargetTable
from tests.conftest import REPO
from tests.core.support import insert_bare_alert, insert_deliveries, seed_outbox
from tests.core.test_store_engines import NOW, plan, record

S = DeliveryState


def _rows(db: Database, outbox: Outbox) -> dict[int, dict[str, object]]:
    return {r["id"]: r for r in db.call(outbox.deliveries, "a")}


def test_changes_of_one_shape_and_of_many_are_written_alike(database: Database) -> None:
    db, outbox = database, Outbox(database)

    def setup() -> None:
        with db.transaction() as conn:
            insert_bare_alert(conn)
            insert_deliveries(conn, "log", ["sending"] * 7)
            conn.execute("UPDATE deliveries SET last_error = 'earlier', provider_ref = 'old'")

    db.call(setup)
    content = {"text": "警报", "parts": 1}
    batch = [
        *(Transition(n, S.ACCEPTED, provider_ref="cmd-1", content=content) for n in (1, 2)),
        *(Transition(n, S.ACCEPTED, provider_ref=f"own-{n}", content=content) for n in (3, 4)),
        Transition(5, S.QUEUED, last_error="busy", next_attempt_at=50.0),
        Transition(6, S.QUEUED, last_error="busy", next_attempt_at=60.0),
        Transition(7, S.ACCEPTED),
    ]
    assert db.call(outbox.apply, batch, 5.0) == 7
    rows = _rows(db, outbox)
    for n, ref in ((1, "cmd-1"), (2, "cmd-1"), (3, "own-3"), (4, "own-4")):
        assert (rows[n]["state"], rows[n]["provider_ref"], rows[n]["content"]) == (
            "accepted",
            ref,
            content,
        )
        assert rows[n]["last_error"] == "earlier" and rows[n]["updated_at"] == 5.0
    assert [(rows[n]["state"], rows[n]["next_attempt_at"]) for n in (5, 6)] == [
        ("queued", 50.0),
        ("queued", 60.0),
    ]
    assert rows[5]["last_error"] == rows[6]["last_error"] == "busy"
    assert (rows[7]["state"], rows[7]["provider_ref"], rows[7]["content"]) == (
        "accepted",
        "old",
        None,
    )


def test_registry_targets_are_decoded_once_and_never_stale(database: Database) -> None:
    table = TargetTable(database)
    box = Target("b1", "loudspeaker", "村一", "box-1", "150921101001", 41.0, 113.0, ("zh-CN",))
    database.call(table.replace_all, [box, Target("b2", "loudspeaker", "村二")])
    first = database.call(table.for_channel, "loudspeaker")
    assert first[0] == box and database.call(table.for_channel, "loudspeaker")[0] is first[0]

    def rename() -> None:  # another writer (a node, an operator) changes the row
        with database.transaction() as conn:
            conn.execute("UPDATE targets SET name = '新村', params = '{\"v\": 2}' WHERE id = 'b1'")

    database.call(rename)
    changed = database.call(table.get, "b1")
    assert changed is not None and (changed.name, dict(changed.params)) == ("新村", {"v": 2})
    assert database.call(table.for_channel, "loudspeaker")[0] == changed


def test_steps_are_written_as_json_writes_them() -> None:
    steps = [
        ("accepted", 'box "7" accepted\n\t\\ 村 \u2028 \x01'),
        ("accepted", None),
        (S.CONFIRMED, ""),
    ]
    assert steps_json(steps) == json.dumps(steps, ensure_ascii=False)
    assert steps_json([]) == "[]"


def test_known_targets_give_what_decoding_gives() -> None:
    known = KnownTargets(limit=3)
    target = Target("t1", "sms", "T", params={"areas": ["1509"]})
    text = known.snapshot(target)
    assert Target.from_json(json.loads(text)) == target and known.snapshot(target) is text
    assert json.loads(text) == {"id": "t1", "channel": "sms", "name": "T", "params": target.params}
    placed = Target("t4", "sms", "P", "a", "150921", 41.0, 113.0, ("mn", "zh-CN"), {"k": 1})
    assert json.loads(known.snapshot(placed)) == placed.to_json()
    assert Target.from_json(json.loads(known.snapshot(placed))) == placed
    assert known.from_snapshot(text) is target
    nameless = Target("t2", "sms", "")
    assert known.from_snapshot(known.snapshot(nameless)) == Target.from_json(nameless.to_json())
    foreign = json.dumps({"id": "t3", "channel": "sms", "name": "X", "languages": ["mn"]})
    assert known.from_snapshot(foreign) == Target.from_json(json.loads(foreign))
    for n in range(10):  # bounded: a full map starts again and still answers
        known.snapshot(Target(f"x{n}", "sms", "X"))
    assert known.from_snapshot(text) == target


def test_a_plan_and_its_claims_log_each_delivery_once_in_order(database: Database) -> None:
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record("a0"), [], plan(3), supersede=None, now=NOW)
    targets = [Target(f"p{n}", "log", f"P{n}", params={"n": n}) for n in range(5)]
    news = [NewDelivery("log", t, 0, f"key-{t.id}") for t in targets]
    database.call(alerts.insert, record("a1"), [], news, supersede=None, now=NOW + 1)
    claimed = database.call(outbox.claim_due, "log", NOW + 2, 8)
    by_target = {c.target.id: c for c in claimed}
    assert [by_target[t.id].target for t in targets] == targets
    for c in claimed:
        history = database.call(outbox.events, c.id)
        assert [(e["from_state"], e["to_state"], e["detail"]) for e in history] == [
            (None, "queued", "planned"),
            ("queued", "sending", "attempt 1"),
        ]
        assert [e["at"] for e in history] == [NOW if c.alert_id == "a0" else NOW + 1, NOW + 2]


def test_the_log_reaches_the_database_file_off_the_writer(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    try:
        assert db.call(lambda: db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0

        seed_outbox(db, "log", ["queued"] * 500)
        deadline = time.monotonic() + 10
        while _in_file(tmp_path / "s.db") != 500:  # the file alone, without the log
            assert time.monotonic() < deadline, "the log was never copied into the file"
            time.sleep(0.1)
    finally:
        db.close()


def _in_file(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM deliveries").fetchone()[0])
    except sqlite3.DatabaseError:  # not there yet, or read while being copied
        return -1
    finally:
        conn.close()


_KILLED_BETWEEN_WRITES = """
import os, sys
from broadcaster.store.alerts import AlertTable, NewDelivery
from broadcaster.store.batch import steps_json
from broadcaster.store.db import Database
from broadcaster.store.outbox import Outbox
from tests.core.test_store_engines import NOW, plan, record
db = Database(sys.argv[1])
db.call(AlertTable(db).insert, record("a1"), [], plan(300), supersede=None, now=NOW)
db.call(Outbox(db).claim_due, "log", NOW + 1, 120)
print("claimed", flush=True)
sys.stdin.read()
"""


def test_a_process_killed_between_two_writes_loses_neither(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_BETWEEN_WRITES, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"claimed\n"
        os.kill(child.pid, signal.SIGKILL)  # before any checkpoint can run
    finally:
        child.wait(timeout=10)
    db = Database(path)
    try:
        outbox = Outbox(db)
        assert db.call(outbox.summary, "a1") == {"log": {"queued": 180, "sending": 120}}
        events = db.call(
            lambda: db.query(
                "SELECT to_state, count(*) AS n FROM delivery_events"
                " GROUP BY to_state ORDER BY to_state"
            )
        )
        assert [(e["to_state"], e["n"]) for e in events] == [("queued", 300), ("sending", 120)]
        assert db.call(outbox.recover_in_flight, NOW + 2) == 120
    finally:
        db.close()


def _steps(db: Database, outbox: Outbox, delivery_id: int) -> list[tuple[object, ...]]:
    events = db.call(outbox.events, delivery_id)
    return [(e["at"], e["from_state"], e["to_state"], e["detail"]) for e in events]


def test_the_history_shows_every_step_of_a_batch_as_it_happened(database: Database) -> None:
    db, outbox = database, Outbox(database)

    seed_outbox(db, "loudspeaker", ["sending"] * 3)
    first = [
        Transition(1, S.ACCEPTED, detail="sent to box b1", provider_ref="cmd-1"),
        Transition(2, S.ACCEPTED, detail="sent to box b2", provider_ref="cmd-1"),
        Transition(1, S.ACCEPTED, detail="box b1 accepted", progress=True),
        Transition(2, S.QUEUED, last_error="busy", next_attempt_at=9.0),
        Transition(1, S.ACCEPTED, detail="playing on box b1 (url)", progress=True),
        Transition(3, S.CANCELLED),
        Transition(1, S.CONFIRMED, detail="played on box b1 (url)"),
        Transition(1, S.QUEUED, detail="too late: already confirmed"),
    ]
    assert db.call(outbox.apply, first, 5.0) == 7
    assert db.call(outbox.apply, [Transition(2, S.EXPIRED, detail="alert expired")], 6.0) == 1
    assert _steps(db, outbox, 1) == [
        (5.0, "sending", "accepted", "sent to box b1"),
        (5.0, "accepted", "accepted", "box b1 accepted"),
        (5.0, "accepted", "accepted", "playing on box b1 (url)"),
        (5.0, "accepted", "confirmed", "played on box b1 (url)"),
    ]
    assert _steps(db, outbox, 2) == [
        (5.0, "sending", "accepted", "sent to box b2"),
        (5.0, "accepted", "queued", "busy"),
        (6.0, "queued", "expired", "alert expired"),
    ]
    assert _steps(db, outbox, 3) == [(5.0, "sending", "cancelled", None)]
    rows = db.call(
        lambda: db.query(
            "SELECT delivery_id, from_state, to_state, detail FROM delivery_events ORDER BY id"
        )
    )
    assert [tuple(r.values()) for r in rows] == [  # one row per delivery and batch
        (
            1,
            "sending",
            "confirmed",
            "sent to box b1; box b1 accepted; playing on box b1 (url); played on box b1 (url)",
        ),
        (2, "sending", "queued", "sent to box b2; busy"),
        (3, "sending", "cancelled", None),
        (2, "queued", "expired", "alert expired"),
    ]


def test_rows_of_every_batch_size_go_in_in_order_with_the_shared_values(
    database: Database,
) -> None:
    db = database
    seed_outbox(db, "log", [])
    sizes = (1, 3, 4, 5, 21, 85, 256, 341, 600)  # each of the statements' sizes, and mixes

    def insert() -> None:
        with db.transaction() as conn:
            for size in sizes:
                rows = [(f"e{size}", None if n % 3 else f"村 {size}/{n}") for n in range(size)]
                shared = {"alert_id": "a", "at": float(size)}
                insert_rows(db, conn, "alert_events", shared, ("event", "detail"), rows)
            insert_rows(db, conn, "alert_events", {"alert_id": "a", "at": 0.0}, ("event",), [])

    db.call(insert)
    got = db.call(
        lambda: db.query("SELECT alert_id, at, event, detail FROM alert_events ORDER BY id")
    )
    assert [tuple(r.values()) for r in got] == [
        ("a", float(size), f"e{size}", None if n % 3 else f"村 {size}/{n}")
        for size in sizes
        for n in range(size)
    ]


def test_a_batch_of_alike_steps_is_read_back_step_by_step(database: Database) -> None:
    db, outbox = database, Outbox(database)
    seed_outbox(db, "loudspeaker", ["sending"] * 300 + ["accepted"] * 2)
    sent = [Transition(n, S.ACCEPTED, detail=f"sent to box b{n}") for n in range(1, 301)]
    assert db.call(outbox.apply, sent, 5.0) == 300
    played = [Transition(n, S.CONFIRMED, detail=f"played on b{n}") for n in (301, 302)]
    assert db.call(outbox.apply, played, 6.0) == 2
    for n in (1, 77, 300):
        assert _steps(db, outbox, n) == [(5.0, "sending", "accepted", f"sent to box b{n}")]
    assert _steps(db, outbox, 302) == [(6.0, "accepted", "confirmed", "played on b302")]
    rows = db.call(
        lambda: db.query(
            "SELECT delivery_id, at, from_state, to_state, steps FROM delivery_events ORDER BY id"
        )
    )
    assert [tuple(r.values()) for r in rows] == [
        *((n, 5.0, "sending", "accepted", None) for n in range(1, 301)),
        *((n, 6.0, "accepted", "confirmed", None) for n in (301, 302)),
    ]
