"""Shared test infrastructure: paths to the CAP corpus in ``tests/data/cap``, a thread-leak check,
the ``processes`` fixture for tests that start real server processes, and the store engines:
``database`` is a fresh store on SQLite and on PostgreSQL in turn (a real server, started once
per session; skipped only where PostgreSQL is not installed, see README "Tests").

Async leaks (tasks) are checked where services are stopped: see ``tests/core/support.py``.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.store.db import Database, open_database
from broadcaster.testing.pgserver import PgServer, postgres_bin

REPO = Path(__file__).resolve().parents[1]
CAP_DATA = REPO / "tests" / "data" / "cap"
CAP_SAMPLES = CAP_DATA / "samples"
CAP_XSD = CAP_DATA / "CAP-v1.2.xsd"

_ALLOWED_THREAD_PREFIXES = ("asyncio_", "ThreadPoolExecutor", "pydevd", "Dummy")


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads of its own running (sqlite workers, readers, servers)."""
    before = _threads()
    yield
    leaked = set()
    for thread in _threads() - before:
        if thread.name.startswith(_ALLOWED_THREAD_PREFIXES):
            continue
        thread.join(timeout=2)
        if thread.is_alive():
            leaked.add(thread.name)
    assert not leaked, f"test leaked threads: {sorted(leaked)}"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (crash tests); any still running at its end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole session (fsync off, unix socket in its directory)."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; see README Tests)")
    with PgServer() as server:
        yield server


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of the test's own, for tests that stop or freeze it."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; see README Tests)")
    with PgServer() as server:
        yield server


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The store engine a test runs on."""
    return str(request.param)


@pytest.fixture
def database_url(engine: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite; else the URL of a fresh PostgreSQL database at the current schema."""
    if engine == "sqlite":
        yield None
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.migrated()
    yield url
    server.drop(url)


@pytest.fixture
def database(database_url: str | None, tmp_path: Path) -> Iterator[Database]:
    """A fresh store on the test's engine, closed at the end."""
    db = open_database(tmp_path / "store.db", database_url, None, 30.0)
    yield db
    db.close()
