"""The PostgreSQL engine: the store's tables on a PostgreSQL 15 server, through psycopg 3.

:class:`PgDatabase` has the surface of the SQLite :class:`~broadcaster.store.db.Database` (one
worker thread, ``run``, ``call``, ``transaction``, ``query``), so every table module runs on
either engine with one body of SQL. :class:`PgConnection` is the thin adapter between them: it
turns ``?`` marks into psycopg's ``%s`` (leaving quoted text alone), gives rows that answer by
index and by column name like :class:`sqlite3.Row`, and sends Python booleans as integers, as
the schema stores them. The dialect helpers of ``Database`` are overridden here.

Migrations are ``schema/pg/schema_vN.sql``, numbered like SQLite's; the pending ones run in
one transaction that first takes an advisory lock, so nodes starting together migrate once.
A connection that breaks (the server restarted, a failover) is opened again on the next call;
the call that found it broken fails with :class:`~broadcaster.errors.StoreUnavailableError`.
A server that stops answering fails the call too, within ``[store] statement_timeout_seconds``:
the server's own ``statement_timeout`` where it still runs, the client's deadline
(:mod:`broadcaster.store.pglink`) where it is frozen or gone, and TCP keepalives for idle
connections; after a connection attempt failed, calls fail at once for a short pause rather
than each waiting for a connection of its own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import psycopg
from psycopg.adapt import Dumper
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from broadcaster.errors import StoreError, StoreUnavailableError
from broadcaster.store.db import Connection, ConnectionLimits, Database, schema_files
from broadcaster.store.pglink import StatementWatch, link_parameters

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MIGRATION_LOCK = "broadcaster:migrate"

RECONNECT_PAUSE_SECONDS = 2.0
"""After a failed connection attempt, calls fail at once this long before the next attempt."""

WATCH_MARGIN_SECONDS = 1.0
"""The client's deadline runs this much longer than the server's ``statement_timeout``, so a
server that still runs cancels the statement itself and the connection stays usable."""


def lock_key(name: str) -> int:
    """The advisory lock number of ``name`` (the same on every node)."""
    return zlib.crc32(name.encode("utf-8"))


def pg_schema_files() -> list[tuple[int, str]]:
    """The PostgreSQL migrations as (version, SQL), in version order."""
    return schema_files("pg")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """``sql`` with ``?`` marks as ``%s`` and a literal ``%`` doubled, outside quotes."""
    out = []
    quote = ""
    for ch in sql:
        if quote:
            quote = "" if ch == quote else quote
            out.append("%%" if ch == "%" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Constant:
    """A value written in the SQL text of an INSERT (``NULL``, ``'queued'``)."""

    value: str | None


_PLAIN_INSERT = re.compile(
    r"^\s*INSERT INTO (\w+) \(([\w\s,]+)\)\s*VALUES\s*\(([^()]*)\)\s*$", re.I
)
_TEXT = re.compile(r"^'([^']*)'$")


@functools.lru_cache(maxsize=256)
def copy_plan(sql: str) -> tuple[str, tuple[int | Constant, ...]] | None:
    """For ``INSERT INTO t (cols) VALUES (…)`` whose values are ``?``, ``NULL`` or quoted text:
    the ``COPY`` statement and, per column, the parameter index or the constant. None for any
    other statement (conflict clauses, expressions), which ``executemany`` sends as it is."""
    match = _PLAIN_INSERT.match(sql)
    if match is None:
        return None
    table, columns, values = match.groups()
    fields: list[int | Constant] = []
    marks = 0
    for item in (v.strip() for v in values.split(",")):
        text = _TEXT.match(item)
        if item == "?":
            fields.append(marks)
            marks += 1
        elif item.upper() == "NULL":
            fields.append(Constant(None))
        elif text is not None:
            fields.append(Constant(text.group(1)))
        else:
            return None
    if len(fields) != len(columns.split(",")):
        return None
    return f"COPY {table} ({columns.strip()}) FROM STDIN", tuple(fields)


class PgRow:
    """One row, by index or by column name, like :class:`sqlite3.Row`."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _row_maker(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    index = {column.name: n for n, column in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, index)


class _BoolAsInteger(Dumper):
    """Booleans go to the INTEGER columns that hold them, as 0 or 1."""

    oid = psycopg.adapters.types["int4"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class PgCursor:
    """A finished statement: its rows and how many rows it changed."""

    def __init__(self, rows: list[PgRow], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> PgRow | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[PgRow]:
        return self._rows

    def __iter__(self) -> Iterator[PgRow]:
        return iter(self._rows)


class PgConnection:
    """A psycopg connection that speaks the ``?``-marked SQL of the tables."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn
        self._changes = 0
        self.watch: StatementWatch | None = None

    def _watched(self) -> AbstractContextManager[None]:
        if self.watch is None:
            return contextlib.nullcontext()
        return self.watch.statement(self.raw.pgconn.socket)

    def execute(self, sql: str, parameters: Any = (), /) -> PgCursor:
        with self.raw.cursor(row_factory=_row_maker) as cur, self._watched():
            cur.execute(translate(sql), tuple(parameters))
            rows: list[PgRow] = cur.fetchall() if cur.description is not None else []
            count = cur.rowcount
        if cur.description is None and count > 0:
            self._changes += count
        return PgCursor(rows, count)

    def executemany(self, sql: str, parameters: Any, /) -> PgCursor:
        batch = [tuple(p) for p in parameters]
        if not batch:
            return PgCursor([], 0)
        plan = copy_plan(sql)
        with self.raw.cursor() as cur, self._watched():
            if plan is None:  # psycopg sends the rows in one pipeline
                cur.executemany(translate(sql), batch)
                count = cur.rowcount
            else:  # a plain INSERT of many rows: COPY, several times faster
                statement, fields = plan
                with cur.copy(statement) as copy:
                    for row in batch:
                        copy.write_row([row[f] if isinstance(f, int) else f.value for f in fields])
                count = len(batch)
        self._changes += max(count, 0)
        return PgCursor([], count)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def total_changes(self) -> int:
        return self._changes

    def close(self) -> None:
        self.raw.close()


def connect(url: str, limits: ConnectionLimits | None = None) -> PgConnection:
    """A connection to ``url`` in autocommit mode (transactions are explicit), under the
    server-side ``statement_timeout`` and the TCP settings of ``limits`` when given."""
    parameters = link_parameters(url, limits) if limits else {"connect_timeout": 10}
    try:
        raw = psycopg.connect(make_conninfo(url, **parameters), autocommit=True)
        if limits is not None:
            milliseconds = int(limits.statement_timeout * 1000)
            raw.execute(f"SET statement_timeout = {milliseconds}".encode())
    except psycopg.Error as exc:
        raise StoreUnavailableError(f"cannot connect to PostgreSQL: {exc}") from exc
    raw.adapters.register_dumper(bool, _BoolAsInteger)
    return PgConnection(raw)


def unreachable(url: str) -> str | None:
    """Why the database at ``url`` cannot be used, or None (read only: nothing is created)."""
    try:
        with psycopg.connect(url, connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return "cannot connect to PostgreSQL: " + " ".join(str(exc).split())


def holds_officer(url: str) -> bool:
    """Whether the database at ``url`` holds an officer, read without changing anything; one
    that cannot be read counts as holding one (the start, not this check, says what is wrong)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            table = conn.execute("SELECT to_regclass('officers')").fetchone()
            if table is None or table[0] is None:
                return False
            return conn.execute("SELECT 1 FROM officers LIMIT 1").fetchone() is not None
    except psycopg.Error:
        return True


class PgDatabase(Database):
    """The store on PostgreSQL, used from a single worker thread like SQLite's."""

    dialect = "postgresql"
    shared = True
    copies_inserts = True

    def __init__(self, url: str, data_dir: Path, limits: ConnectionLimits | None = None) -> None:
        self.url = url
        self.limits = limits or ConnectionLimits()
        self._watch = StatementWatch(self.limits.statement_timeout + WATCH_MARGIN_SECONDS)
        self._retry_at = 0.0
        self._refused = ""
        try:
            super().__init__(Path(data_dir) / "postgresql")
        except BaseException:
            self._watch.close()
            raise

    def _connect(self) -> PgConnection:
        conn = connect(self.url, self.limits)
        conn.watch = self._watch
        return conn

    def _open(self) -> Any:
        conn = connect(self.url, self.limits)
        self._migrate_pg(conn)
        conn.watch = self._watch
        return conn

    @staticmethod
    def _migrate_pg(conn: PgConnection) -> None:
        files = pg_schema_files()
        conn.execute("BEGIN")
        try:
            conn.execute("SET LOCAL statement_timeout = 0")  # a migration takes what it takes
            conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(MIGRATION_LOCK),))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(row[0]) if row is not None else 0
            if current > len(files):
                raise StoreError(
                    f"database schema version {current} is newer than this software knows"
                )
            for version, sql in files:
                if version > current:
                    conn.raw.execute(sql.encode("utf-8"))
                    conn.execute("DELETE FROM schema_version")
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"database migration failed: {exc}") from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        row = self.call(
            lambda: self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        )
        return int(row[0])

    def skip_locked(self, table: str) -> str:
        return f" FOR UPDATE OF {table} SKIP LOCKED"

    def locked(self) -> str:
        return " FOR UPDATE"

    def text_list(self) -> str:
        return "SELECT jsonb_array_elements_text(CAST(? AS jsonb))"

    def int_list(self) -> str:
        return "SELECT CAST(jsonb_array_elements_text(CAST(? AS jsonb)) AS bigint)"

    def json_rows(self, columns: Sequence[tuple[str, str]]) -> str:
        fields = ", ".join(f"{name} {kind}" for name, kind in columns)
        return f"SELECT * FROM jsonb_to_recordset(CAST(? AS jsonb)) AS r ({fields})"  # noqa: S608

    def serialize(self, conn: Connection, name: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        self.conn.execute("BEGIN")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction and not self._broken():
                self.conn.execute("ROLLBACK")
            raise

    def _broken(self) -> bool:
        conn = self.conn
        return isinstance(conn, PgConnection) and conn.raw.closed

    def _watched(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` on this thread; a lost connection is opened again first, and a broken or
        unanswered one is reported as StoreUnavailableError (the caller tries again later, as
        with a full disk)."""
        if self._broken():
            self._reconnect()
        try:
            return fn(*args, **kwargs)
        except psycopg.OperationalError as exc:
            if self._watch.expired:
                raise StoreUnavailableError(
                    f"PostgreSQL did not answer within {self.limits.statement_timeout:g} s"
                ) from exc
            raise StoreUnavailableError(f"PostgreSQL unreachable: {exc}") from exc

    def _reconnect(self) -> None:
        if time.monotonic() < self._retry_at:
            raise StoreUnavailableError(self._refused)
        try:
            self.conn = self._connect()
        except StoreUnavailableError as exc:
            self._retry_at = time.monotonic() + RECONNECT_PAUSE_SECONDS
            self._refused = str(exc)
            raise
        log.warning("PostgreSQL connection opened again")

    def close(self) -> None:
        super().close()
        self._watch.close()

    def backup_to(self, dest: Path) -> None:
        raise StoreError("back up a PostgreSQL store with pg_dump or a standby, not this command")
