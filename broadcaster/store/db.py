"""The SQLite database: connection settings, versioned migrations and the single writer thread.

Schema files are ``schema/schema_vN.sql``; ``PRAGMA user_version`` records the version reached,
and every pending migration runs inside one transaction, so a database is either wholly at the
old version or wholly at the new one. The connection is opened in WAL mode with foreign keys on,
a page cache of :data:`CACHE_KIB` and temporary tables in memory.

Every database call runs on one dedicated thread (:class:`Database.run`): SQLite then has one
writer, and the event loop never blocks on disk. A call that finds the disk full is rolled back
and raises :class:`~broadcaster.errors.DiskFullError`; :attr:`Database.space` remembers it for
``/healthz`` until space returns (:mod:`broadcaster.store.space`).

The writer never checkpoints the write-ahead log (by default SQLite copies the log back into
the database file inside the commit that grows it past 1,000 pages, so the writer would spend
a good part of a fan-out copying pages, and copy a page again whenever a later batch changes
it once more): :class:`WalCheckpointer` runs a passive checkpoint from a thread and connection
of its own once per period. A passive checkpoint neither waits for nor blocks the writer, a
page several batches of one period changed is copied once, and once the whole log is copied the
writer's next transaction starts it again from its beginning. Durability is unchanged: a commit
is durable once in the log (WAL with ``synchronous = NORMAL``), where the next open finds what a
crash left uncopied; a checkpoint that fails (the disk full) is tried again at the next period.

The tables see a :class:`Connection` (the part of DB-API they use), so the PostgreSQL engine
(:mod:`broadcaster.store.postgres`) can stand in for SQLite; :func:`open_database` picks the
engine from ``[store]``. ``node`` and ``lease_seconds`` are the name and lease under which this
process claims deliveries, devices and scheduled runs when several nodes share a store;
:class:`ConnectionLimits` bound how long an unanswering PostgreSQL server holds a call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from broadcaster.errors import DiskFullError, StoreError
from broadcaster.store.space import DiskSpace, is_disk_full
from broadcaster.store.targets import KnownTargets

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_SCHEMA_NAME = re.compile(r"^schema_v(\d+)\.sql$")


def schema_files(engine: str = "") -> list[tuple[int, str]]:
    """The shipped schema migrations as (version, SQL), in version order: SQLite's, or those
    in the folder of ``engine`` (``"pg"``)."""
    found = []
    folder = resources.files("broadcaster.store").joinpath("schema")
    for entry in (folder.joinpath(engine) if engine else folder).iterdir():
        match = _SCHEMA_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"{engine or 'SQLite'} schema files are not numbered 1..N: {versions}")
    return found


DEFAULT_LEASE_SECONDS = 30.0
"""How long a claim on a delivery or a device lasts unless its node renews it."""


def default_node_name() -> str:
    """A name no other running process has: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a PostgreSQL server may keep a call waiting, and the TCP keepalive settings
    (libpq's ``keepalives_idle``, ``keepalives_interval``, ``keepalives_count``) that find a
    connection whose server vanished without closing it."""

    statement_timeout: float = 10.0
    keepalive_idle: int = 10
    keepalive_interval: int = 5
    keepalive_count: int = 3


def open_database(
    path: Path,
    url: str | None,
    node: str | None,
    lease_seconds: float,
    limits: ConnectionLimits | None = None,
) -> Database:
    """The SQLite file ``path``, or the PostgreSQL database at ``url`` when one is given."""
    if url is None:
        database = Database(path)
    else:
        from broadcaster.store.postgres import PgDatabase  # psycopg only when asked for

        database = PgDatabase(url, path.parent, limits or ConnectionLimits())
    database.node = node or database.node
    database.lease_seconds = lease_seconds
    return database


CACHE_KIB = 65536
"""The writer's page cache, in KiB (SQLite's default is 2 MiB)."""

CHECKPOINT_PERIOD_SECONDS = 0.5
"""How often the log is copied into the database file while the database is open."""


CACHED_STATEMENTS = 512
"""Prepared statements the writer keeps (Python's default is 128): preparing a statement of
256 rows costs ten times running it, so those of
:func:`~broadcaster.store.batch.insert_rows` must stay."""


class WalCheckpointer:
    """A thread that checkpoints the write-ahead log of the database file ``path``."""

    def __init__(self, path: Path, period: float = CHECKPOINT_PERIOD_SECONDS) -> None:
        self.path = path
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 0")  # passive: never wait for the writer
            while not self._stop.wait(self.period):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy what the log holds into the database file, as far as readers allow."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("checkpoint of %s failed, tried again: %s", self.path, exc)

    def stop(self) -> None:
        """Stop the thread (the writer's close then checkpoints what is left)."""
        self._stop.set()
        self._thread.join()


class Cursor(Protocol):
    """What the tables read from a statement: rows (by index or column name) and counts."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the tables use; ``?`` marks a parameter."""

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    @property
    def total_changes(self) -> int: ...

    def close(self) -> None: ...


class Database:
    """One SQLite database file, used from a single worker thread.

    The dialect helpers (:meth:`skip_locked`, :meth:`text_list`, :meth:`json_rows`, …) name the
    few places where SQL differs between engines; :class:`~broadcaster.store.postgres.PgDatabase`
    overrides them, and every table keeps one body of SQL for both.
    """

    dialect = "sqlite"
    shared = False
    """Whether other nodes use this store too (SQLite: one process owns the file)."""
    copies_inserts = False
    """Whether the connection sends an ``executemany`` of a plain INSERT as one bulk copy
    (PostgreSQL's ``COPY``), so :func:`~broadcaster.store.batch.insert_rows` gives it the
    rows that way."""
    conn: Connection

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.node = default_node_name()
        """The name under which this process claims deliveries and device leases."""
        self.lease_seconds = DEFAULT_LEASE_SECONDS
        self.known = KnownTargets()
        """Targets already decoded or encoded on the database thread."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._thread_id: int | None = None
        self._closed = False
        self.space = DiskSpace(self.path.parent)
        self._executor.submit(self._mark_thread).result()
        self.conn = self._executor.submit(self._open).result()
        self._checkpointer: WalCheckpointer | None = None
        if self.dialect == "sqlite" and str(self.path) != ":memory:":
            self._checkpointer = WalCheckpointer(self.path)

    def _mark_thread(self) -> None:
        self._thread_id = threading.get_ident()

    def _open(self) -> sqlite3.Connection:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=CACHED_STATEMENTS,
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # a thread of its own does it
        # A fan-out's batches revisit the same pages of deliveries and their indexes: held in
        # memory (up to 64 MiB) they are not read back through the log at each batch; and
        # the id lists of the batched statements are built in memory, not in a temporary file.
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute("PRAGMA temp_store = MEMORY")
        self._migrate(conn)
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        pending = [(v, sql) for v, sql in schema_files() if v > current]
        if current > len(schema_files()):
            raise StoreError(f"database schema version {current} is newer than this software knows")
        if not pending:
            return
        script = "BEGIN IMMEDIATE;\n"
        for version, sql in pending:
            script += f"{sql}\nPRAGMA user_version = {version};\n"
        script += "COMMIT;"
        try:
            conn.executescript(script)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"database migration failed: {exc}") from exc
        # A migration may edit a table's definition in sqlite_schema itself (version 19),
        # which no connection notices unless the schema's own version moves on: then every
        # connection, this one too, reads the definitions again before its next statement.
        cookie = conn.execute("PRAGMA schema_version").fetchone()[0]
        conn.execute(f"PRAGMA schema_version = {int(cookie) + 1}")

    @property
    def schema_version(self) -> int:
        return int(self.call(lambda: self.conn.execute("PRAGMA user_version").fetchone()[0]))

    def skip_locked(self, table: str) -> str:
        """The clause that locks the selected rows of ``table`` and skips rows others hold
        (nothing in SQLite, whose write transaction already excludes every other writer)."""
        return ""

    def locked(self) -> str:
        """The clause that locks the selected rows until the end of the transaction (nothing
        in SQLite, whose write transaction already holds the whole database)."""
        return ""

    def text_list(self) -> str:
        """A sub-select of the strings in a JSON array given as one parameter."""
        return "SELECT value FROM json_each(?)"

    def int_list(self) -> str:
        """A sub-select of the integers in a JSON array given as one parameter."""
        return "SELECT value FROM json_each(?)"

    def json_rows(self, columns: Sequence[tuple[str, str]]) -> str:
        """A sub-select of the objects in a JSON array given as one parameter, one column per
        (name, type) of ``columns`` (types as PostgreSQL names them: ``bigint``, ``text``,
        ``double precision``): many rows' values in one statement instead of one each."""
        return (  # the names are the caller's constants, never input
            "SELECT "  # noqa: S608
            + ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name, _ in columns)
            + " FROM json_each(?)"
        )

    def serialize(self, conn: Connection, name: str) -> None:
        """Hold the lock ``name`` until the end of the transaction of ``conn`` (nodes that
        allocate ids or elect a leader take turns); SQLite's write transaction is such a lock."""

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """An immediate (write-locking) transaction; rolled back if the block or the commit
        raises (unless SQLite already rolled it back, as it does when the disk is full)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Rows as dicts (call on the database thread)."""
        return [dict(r) for r in self.conn.execute(sql, params).fetchall()]

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the database thread and wait for it (from synchronous code)."""
        if threading.get_ident() == self._thread_id:
            return self._watched(fn, *args, **kwargs)
        return self._executor.submit(lambda: self._watched(fn, *args, **kwargs)).result()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the database thread without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: self._watched(fn, *args, **kwargs)
        )

    def _watched(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` on this thread; a full disk becomes DiskFullError, a write clears it."""
        changes = self.conn.total_changes
        try:
            result = fn(*args, **kwargs)
        except (sqlite3.Error, OSError, StoreError) as exc:
            if isinstance(exc, DiskFullError) or not is_disk_full(exc):
                raise
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.space.note_full()
            raise DiskFullError(f"disk full in {self.path.parent}: {exc}") from exc
        if self.space.full and self.conn.total_changes != changes and not self.conn.in_transaction:
            self.space.note_written()
        return result

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._executor.submit(self.conn.close).result()
        self._executor.shutdown(wait=True)

    def backup_to(self, dest: Path) -> None:
        """Copy the database to ``dest`` with SQLite's online backup (safe while writing)."""

        def _backup() -> None:
            target = sqlite3.connect(dest)
            try:
                source = self.conn
                assert isinstance(source, sqlite3.Connection)
                source.backup(target)
            finally:
                target.close()

        self.call(_backup)
