"""Both store engines: the same migrations, the same outbox behaviour, and on PostgreSQL the
parts several nodes share (one migration, disjoint claims, leases, idempotent intake)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.delivery import DeliveryState, Target, Transition
from broadcaster.store.alerts import AlertRecord, AlertTable, NewDelivery
from broadcaster.store.db import Database, open_database, schema_files
from broadcaster.store.outbox import Outbox
from broadcaster.store.postgres import Constant, PgDatabase, copy_plan, pg_schema_files, translate
from broadcaster.testing.pgserver import PgServer

NOW = 1_000.0


def record(alert_id: str = "a1") -> AlertRecord:
    return AlertRecord(
        id=alert_id,
        sender="s@example.org",
        identifier=alert_id,
        sent="2026-01-01T00:00:00+08:00",
        status="Actual",
        msg_type="Alert",
        scope="Public",
        event="Flood",
        headline="h",
        severity="Severe",
        urgency="Immediate",
        effective_at=NOW,
        expires_at=NOW + 3600,
        state="active",
        priority=1,
        channels=("log",),
        origin="api",
        cap_version="1.2",
        raw_xml=b"<alert>\x00\xff</alert>",
        document={"identifier": alert_id},
        received_at=NOW,
    )


def plan(count: int) -> list[NewDelivery]:
    return [
        NewDelivery("log", Target(id=f"t{n}", channel="log", name=f"T{n}"), 0, f"k{n}")
        for n in range(count)
    ]


def test_both_engines_have_the_same_versions_tables_and_columns(
    pg_server: PgServer, tmp_path: Path
) -> None:
    assert [v for v, _ in schema_files()] == [v for v, _ in pg_schema_files()]
    lite = Database(tmp_path / "s.db")
    pg = PgDatabase(pg_server.migrated(), tmp_path)
    try:
        tables = [
            r["name"]
            for r in lite.call(
                lite.query,
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            )
        ]
        sqlite_columns = {
            t: sorted(r["name"] for r in lite.call(lite.query, f"PRAGMA table_info({t})"))
            for t in tables
        }
        pg_columns: dict[str, list[str]] = {}
        for row in pg.call(
            pg.query,
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'schema_version'",
        ):
            pg_columns.setdefault(row["table_name"], []).append(row["column_name"])
        assert {t: sorted(c) for t, c in pg_columns.items()} == sqlite_columns
        assert pg.schema_version == lite.schema_version == len(schema_files())
    finally:
        lite.close()
        pg.close()


def test_nodes_starting_together_migrate_once(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.fresh()
    opened: list[Database] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PgDatabase(url, tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        rows = opened[0].call(opened[0].query, "SELECT version FROM schema_version")
        assert rows == [{"version": len(pg_schema_files())}]
    finally:
        for db in opened:
            db.close()
        pg_server.drop(url)


def test_placeholders_are_translated_outside_quotes_only() -> None:
    assert translate("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '5%'") == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE '5%%'"
    )
    assert translate("a LIKE ? || '%'") == "a LIKE %s || '%%'"


def test_plain_inserts_of_many_rows_become_copy_and_others_stay() -> None:
    assert copy_plan(
        "INSERT INTO delivery_events (delivery_id, at, from_state, to_state, detail)"
        " VALUES (?, ?, NULL, 'queued', 'planned')"
    ) == (
        "COPY delivery_events (delivery_id, at, from_state, to_state, detail) FROM STDIN",
        (0, 1, Constant(None), Constant("queued"), Constant("planned")),
    )
    assert copy_plan("INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING") is None
    assert copy_plan("INSERT INTO t (a, b) VALUES (?, 'x' || ?)") is None
    assert copy_plan("INSERT INTO t (a, b) VALUES (?)") is None


def test_intake_stores_an_alert_once_and_keeps_bytes(database: Database) -> None:
    alerts = AlertTable(database)
    first = database.call(alerts.insert, record(), [], plan(3), supersede=None, now=NOW)
    again = database.call(alerts.insert, record(), [], plan(3), supersede=None, now=NOW)
    assert first == (True, []) and again == (False, [])
    assert database.call(alerts.raw_xml, "a1") == b"<alert>\x00\xff</alert>"
    rows = database.call(database.query, "SELECT count(*) AS n FROM deliveries")
    assert rows == [{"n": 3}]


def test_claims_hold_a_lease_that_is_renewed_and_resumed_when_it_runs_out(
    database: Database,
) -> None:
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record(), [], plan(4), supersede=None, now=NOW)
    database.node, database.lease_seconds = "node-a", 10.0
    claimed = database.call(outbox.claim_due, "log", NOW, 3)
    assert [c.idempotency_key for c in claimed] == ["k0", "k1", "k2"]
    leases = database.call(
        database.query, "SELECT claimed_by, lease_until FROM deliveries WHERE state = 'sending'"
    )
    assert leases == [{"claimed_by": "node-a", "lease_until": NOW + 10}] * 3
    assert database.call(outbox.renew_leases, NOW + 4) == 0  # more than half is left
    assert database.call(outbox.renew_leases, NOW + 6) == 3
    assert database.call(outbox.overdue, NOW + 15, {}) == []
    found = database.call(outbox.overdue, NOW + 16.5, {})
    assert {t.delivery_id for t in found} == {c.id for c in claimed}
    assert all(t.to_state is DeliveryState.QUEUED for t in found)
    assert database.call(outbox.apply, found, NOW + 16.5) == 3
    database.node = "node-b"
    again = database.call(outbox.claim_due, "log", NOW + 16.5, 10)
    assert sorted(c.idempotency_key for c in again) == ["k0", "k1", "k2", "k3"]
    assert {c.attempts for c in again if c.idempotency_key != "k3"} == {2}


def test_a_clean_stop_ends_this_nodes_leases_only(database: Database) -> None:
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record(), [], plan(3), supersede=None, now=NOW)
    database.lease_seconds = 30.0
    database.node = "other"
    theirs = database.call(outbox.claim_due, "log", NOW, 1)
    database.node = "me"
    mine = database.call(outbox.claim_due, "log", NOW, 2)
    assert database.call(outbox.overdue, NOW + 1, {}) == []
    assert database.call(outbox.release_leases, NOW + 1) == 2
    found = database.call(outbox.overdue, NOW + 1, {})
    assert {t.delivery_id for t in found} == {c.id for c in mine}
    assert theirs[0].id not in {t.delivery_id for t in found}
    assert database.call(outbox.release_leases, NOW + 2) == 0


def test_a_restart_resumes_this_nodes_claims_but_not_a_live_nodes(database: Database) -> None:
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record(), [], plan(2), supersede=None, now=NOW)
    database.node = "other"
    database.call(outbox.claim_due, "log", NOW, 1)
    database.node = "me"
    database.call(outbox.claim_due, "log", NOW, 1)
    resumed = database.call(outbox.recover_in_flight, NOW + 1)
    # SQLite belongs to one process: everything in flight was its own.
    assert resumed == (1 if database.shared else 2)


def test_apply_and_sweep_keep_the_state_machine(database: Database) -> None:
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record(), [], plan(2), supersede=None, now=NOW)
    first, second = database.call(outbox.claim_due, "log", NOW, 2)
    done = Transition(first.id, DeliveryState.CONFIRMED, detail="ok", content={"text": "洪水"})
    assert database.call(outbox.apply, [done], NOW + 1) == 1
    late = Transition(first.id, DeliveryState.QUEUED, last_error="late", next_attempt_at=NOW)
    assert database.call(outbox.apply, [late], NOW + 2) == 0
    back = Transition(second.id, DeliveryState.QUEUED, last_error="busy", next_attempt_at=NOW)
    database.call(outbox.apply, [back], NOW + 3)
    assert database.call(outbox.retry_now, "log", ["t1", "nobody"], NOW + 3) == {}
    found = database.call(outbox.overdue, NOW + 7200, {})
    assert [(t.delivery_id, t.to_state) for t in found] == [(second.id, DeliveryState.EXPIRED)]
    rows = database.call(outbox.deliveries, "a1")
    assert rows[0]["content"] == {"text": "洪水"} and rows[0]["state"] == "confirmed"
    assert database.call(outbox.summary, "a1") == {"log": {"confirmed": 1, "queued": 1}}


def test_retry_now_brings_forward_the_named_targets(database: Database) -> None:
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record(), [], plan(3), supersede=None, now=NOW)
    rows = database.call(outbox.claim_due, "log", NOW, 3)
    later = [
        Transition(r.id, DeliveryState.QUEUED, last_error="x", next_attempt_at=NOW + 60)
        for r in rows
    ]
    database.call(outbox.apply, later, NOW)
    assert database.call(outbox.retry_now, "log", ["t0", "t2", "t9"], NOW + 1) == {
        "t0": 1,
        "t2": 1,
    }


def cancel(database: Database, alert_id: str) -> None:
    with database.transaction() as conn:
        conn.execute("UPDATE alerts SET state = 'cancelled' WHERE id = ?", (alert_id,))


def test_retry_now_sends_again_what_the_targets_have_not_confirmed(database: Database) -> None:
    """A device back may have lost what it was sent: sent and not confirmed is due again;
    confirmed, and anything of an alert no longer active, stays as it is."""
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record(), [], plan(3), supersede=None, now=NOW)
    database.call(alerts.insert, record("a2"), [], plan(1), supersede=None, now=NOW)
    rows = {(r.alert_id, r.target.id): r for r in database.call(outbox.claim_due, "log", NOW, 4)}
    sent = [Transition(r.id, DeliveryState.ACCEPTED) for r in rows.values()]
    database.call(outbox.apply, sent, NOW)
    done = Transition(rows["a1", "t1"].id, DeliveryState.CONFIRMED, detail="played")
    database.call(outbox.apply, [done], NOW)
    database.call(cancel, database, "a2")
    found = database.call(outbox.retry_now, "log", ["t0", "t1", "t9"], NOW + 1)
    assert found == {"t0": 1}
    again = database.call(outbox.claim_due, "log", NOW + 1, 4)
    assert [(r.id, r.attempts) for r in again] == [(rows["a1", "t0"].id, 2)]
    events = database.call(outbox.events, rows["a1", "t0"].id)
    assert "sent again" in str(events[-2]["detail"])


def test_retry_now_sends_again_only_to_targets_that_reconnected(database: Database) -> None:
    """A device seen again without having reconnected (its retained hello read anew) keeps
    what it was sent: only its queued deliveries are brought forward."""
    alerts, outbox = AlertTable(database), Outbox(database)
    database.call(alerts.insert, record(), [], plan(3), supersede=None, now=NOW)
    rows = {r.target.id: r for r in database.call(outbox.claim_due, "log", NOW, 3)}
    sent = [Transition(rows[t].id, DeliveryState.ACCEPTED) for t in ("t0", "t1")]
    later = NOW + 60
    retry = Transition(rows["t2"].id, DeliveryState.QUEUED, last_error="off", next_attempt_at=later)
    database.call(outbox.apply, [*sent, retry], NOW)
    found = database.call(outbox.retry_now, "log", ["t0", "t1", "t2"], NOW + 1, ["t1"])
    assert found == {"t1": 1, "t2": 1}
    states = {r["target_id"]: r["state"] for r in database.call(outbox.deliveries, "a1")}
    assert states == {"t0": "accepted", "t1": "queued", "t2": "queued"}
    assert database.call(outbox.retry_now, "log", ["t0"], NOW + 2, []) == {}


@pytest.fixture
def two_nodes(pg_server: PgServer, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    url = pg_server.migrated()
    a = open_database(tmp_path / "a.db", url, "node-a", 30.0)
    b = open_database(tmp_path / "b.db", url, "node-b", 30.0)
    yield a, b
    a.close()
    b.close()
    pg_server.drop(url)


def test_two_nodes_claim_disjoint_deliveries_at_the_same_time(
    two_nodes: tuple[Database, Database],
) -> None:
    a, b = two_nodes
    a.call(AlertTable(a).insert, record(), [], plan(400), supersede=None, now=NOW)
    got: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def drain(name: str, db: Database) -> None:
        outbox = Outbox(db)
        barrier.wait()
        while claimed := db.call(outbox.claim_due, "log", NOW, 25):
            got[name] += [c.id for c in claimed]

    threads = [
        threading.Thread(target=drain, args=("a", a)),
        threading.Thread(target=drain, args=("b", b)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got["a"]) + len(got["b"]) == 400
    assert not set(got["a"]) & set(got["b"])
    owners = a.call(a.query, "SELECT claimed_by, count(*) AS n FROM deliveries GROUP BY 1")
    assert sum(r["n"] for r in owners) == 400


def test_the_same_alert_at_two_nodes_at_once_is_stored_once(
    two_nodes: tuple[Database, Database],
) -> None:
    a, b = two_nodes
    results: list[tuple[bool, object]] = []
    barrier = threading.Barrier(2)

    def submit(db: Database) -> None:
        barrier.wait()
        results.append(
            db.call(AlertTable(db).insert, record("x"), [], plan(50), supersede=None, now=NOW)
        )

    threads = [threading.Thread(target=submit, args=(db,)) for db in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(new for new, _ in results) == [False, True]
    assert a.call(a.query, "SELECT count(*) AS n FROM deliveries") == [{"n": 50}]
