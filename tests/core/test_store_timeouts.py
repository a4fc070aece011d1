"""The PostgreSQL store under a server that stops answering: a frozen server (SIGSTOP, as a hung
machine) fails the call within ``statement_timeout_seconds`` instead of holding it, later calls
fail at once while no connection can be made, and the store works again once the server runs;
a slow statement on a running server is cancelled by the server and the connection kept; the
keepalive settings reach libpq unless the URL sets them itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from broadcaster.errors import StoreUnavailableError
from broadcaster.store.db import ConnectionLimits, open_database
from broadcaster.store.pglink import link_parameters
from broadcaster.store.postgres import RECONNECT_PAUSE_SECONDS, WATCH_MARGIN_SECONDS, PgDatabase
from broadcaster.testing.pgserver import PgServer

LIMITS = ConnectionLimits(statement_timeout=1.0, keepalive_idle=2, keepalive_interval=1)


@pytest.fixture
def store(own_pg_server: PgServer, tmp_path: Path) -> Iterator[PgDatabase]:
    url = own_pg_server.tcp_url(own_pg_server.fresh())
    database = open_database(tmp_path / "store.db", url, "node-a", 30.0, LIMITS)
    assert isinstance(database, PgDatabase)
    yield database
    database.close()


def timed_failure(database: PgDatabase) -> tuple[float, str]:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as failed:
        database.call(lambda: database.conn.execute("SELECT count(*) FROM alerts").fetchone())
    return time.monotonic() - started, str(failed.value)


def test_a_frozen_server_fails_calls_in_time_and_the_store_recovers(
    own_pg_server: PgServer, store: PgDatabase
) -> None:
    count = store.call(lambda: store.conn.execute("SELECT count(*) FROM alerts").fetchone())
    assert count[0] == 0
    own_pg_server.freeze()
    try:
        took, reason = timed_failure(store)  # the open connection: the client's deadline
        assert LIMITS.statement_timeout <= took <= LIMITS.statement_timeout + 2.5, took
        assert reason == "PostgreSQL did not answer within 1 s"
        took, reason = timed_failure(store)  # a new connection: libpq's connect_timeout (2 s)
        assert took <= 2 + 1.5 and "cannot connect to PostgreSQL" in reason, (took, reason)
        took, again = timed_failure(store)  # meanwhile calls fail at once with the same reason
        assert took < 0.5 and again == reason
    finally:
        own_pg_server.thaw()
    deadline = time.monotonic() + RECONNECT_PAUSE_SECONDS + 5
    while True:
        try:
            store.call(lambda: store.conn.execute("INSERT INTO schema_version VALUES (0)"))
            break
        except StoreUnavailableError:
            assert time.monotonic() < deadline, "the store did not recover"
            time.sleep(0.1)
    rows = store.call(lambda: store.query("SELECT count(*) AS n FROM schema_version"))
    assert rows == [{"n": 2}]


def test_a_slow_statement_is_cancelled_by_the_server_and_the_connection_kept(
    pg_server: PgServer, tmp_path: Path
) -> None:
    url = pg_server.migrated()
    store = PgDatabase(pg_server.tcp_url(url), tmp_path, LIMITS)
    try:
        slow_statement_cancelled(store)
    finally:
        store.close()
        pg_server.drop(url)


def slow_statement_cancelled(store: PgDatabase) -> None:
    first = store.conn
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="statement timeout"):
        store.call(lambda: store.conn.execute("SELECT pg_sleep(5)"))
    assert time.monotonic() - started < LIMITS.statement_timeout + WATCH_MARGIN_SECONDS
    assert store.call(lambda: store.conn.execute("SELECT 1").fetchone())[0] == 1
    assert store.conn is first  # no new connection was needed


def test_keepalives_and_timeouts_go_to_libpq_unless_the_url_sets_them() -> None:
    url = "postgresql://broadcaster@db:5432/broadcaster?keepalives_idle=60"
    given = link_parameters(url, LIMITS)
    assert given == {
        "connect_timeout": 2,
        "keepalives": 1,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": 5000,
    }
    assert conninfo_to_dict(url)["keepalives_idle"] == "60"
    assert link_parameters("postgresql://db/x", ConnectionLimits())["connect_timeout"] == 10
