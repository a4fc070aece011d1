"""The record of what an SMS channel submitted, on disk, so a restart sends nothing twice.

One SQLite database per channel instance, ``<data dir>/sms-<name>/submissions.sqlite3``: WAL
with synchronous FULL (a write is on disk when it returns), foreign keys on, the schema in
``schema/schema_vN.sql`` with its version in ``PRAGMA user_version`` (pending migrations run in
one transaction). Every call runs on the store's own thread: one writer, and the event loop
never waits on the disk.

Per delivery, under its idempotency key: the delivery id and the attempt whose pool reference
(``<delivery id>/<attempt>``) the segments carry, the number, a digest of the text, the segment
count, the concatenation reference (TS 23.040 §9.2.3.24.1), when the validity period ends
(TP-VP, §9.2.3.12: the network gives up then) and when the alert expires, and the outcome once
settled. Per segment: the modem, its TP-MR, its state from the status reports and the last
TP-ST. A segment is written as soon as the network accepted it, before the next one is sent.
Records are pruned ``KEEP_AFTER_EXPIRY`` after their alert expired, or ``KEEP_SETTLED`` after
their outcome was written, whichever comes first.

Errors: SubmissionStoreError (a ChannelError) names the file and what is wrong with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

from broadcaster.errors import ChannelError
from channels.sms.tracking import pool_reference
from drivers.gsm import SegmentSubmission, SmsResume

log = logging.getLogger(__name__)

T = TypeVar("T")

KEEP_AFTER_EXPIRY = 86_400.0
"""Seconds a record is kept after its alert expired (the core sends nothing after expiry)."""

KEEP_SETTLED = 2 * 86_400.0
"""Seconds a settled record is kept: long enough for the core to have recorded its outcome."""

SCHEMA_VERSION = 1


class SubmissionStoreError(ChannelError):
    """The record of submissions cannot be opened, read or written."""


def text_digest(text: str) -> str:
    """The digest that tells whether a re-rendered SMS is still the text that was sent."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """One submitted segment and what its reports said (``submitted`` until the first)."""

    sequence: int
    total: int
    modem: str
    message_reference: int
    concat_reference: int | None
    state: str
    status: int | None

    def submission(self) -> SegmentSubmission:
        return SegmentSubmission(
            self.sequence, self.total, self.modem, self.message_reference, self.concat_reference
        )


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    """What was submitted for one delivery."""

    key: str
    delivery_id: int
    attempt: int
    number: str
    digest: str
    total: int
    concat_reference: int | None
    valid_until: float
    expires_at: float
    outcome: str | None
    detail: str | None
    segments: tuple[SegmentRecord, ...]

    @property
    def reference(self) -> str:
        return pool_reference(self.delivery_id, self.attempt)

    @property
    def complete(self) -> bool:
        """Every segment was accepted by the network."""
        return [s.sequence for s in self.segments] == list(range(1, self.total + 1))

    @property
    def provider_ref(self) -> str:
        return ",".join(f"{s.modem}:{s.message_reference}" for s in self.segments)

    def submissions(self) -> tuple[SegmentSubmission, ...]:
        return tuple(segment.submission() for segment in self.segments)

    def resume(self) -> SmsResume:
        return SmsResume(self.concat_reference, self.submissions())


class SubmissionStore:
    """The SQLite record of one channel instance; ``open`` before use, ``close`` after."""

    def __init__(self, path: Path, name: str = "sms") -> None:
        self.path = path
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (or create) the database and check it; SubmissionStoreError if it is unusable."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"sms-store-{self._name}")
        try:
            await self._run(self._open)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Finish the writes already queued, close the database and stop the thread."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        executor.submit(self._close)
        await asyncio.to_thread(executor.shutdown, wait=True)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise self._error("cannot be created", exc) from exc
        self._conn = conn
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a segment's record must outlive a power cut, not only a crash of the process
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise SubmissionStoreError(f"SMS record {self.path} is damaged: {check}")
            self._migrate(conn)
            conn.execute("BEGIN IMMEDIATE")  # a read-only file or directory fails here
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error("is not usable", exc) from exc

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _error(self, what: str, exc: BaseException) -> SubmissionStoreError:
        return SubmissionStoreError(
            f"SMS record {self.path} {what}: {exc}; move it away to start with an empty record"
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise SubmissionStoreError(
                f"SMS record {self.path} has schema version {version};"
                f" this software knows up to {SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION:
            return
        schema = resources.files("channels.sms").joinpath("schema")
        script = "BEGIN IMMEDIATE;\n"
        for step in range(version + 1, SCHEMA_VERSION + 1):
            sql = schema.joinpath(f"schema_v{step}.sql").read_text(encoding="utf-8")
            script += f"{sql}\nPRAGMA user_version = {step};\n"
        try:
            conn.executescript(script + "COMMIT;")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def _run(self, function: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None:
            raise SubmissionStoreError(f"SMS record {self.path} is not open")
        return await asyncio.wrap_future(executor.submit(function))

    def _later(self, what: str, function: Callable[[], object]) -> None:
        """Queue a write whose result nobody waits for; a failure is logged."""
        executor = self._executor
        if executor is None:
            return
        executor.submit(function).add_done_callback(lambda done: self._logged(what, done))

    def _logged(self, what: str, done: Future[object]) -> None:
        error = done.exception()
        if error is not None:
            log.error("SMS record %s: cannot record %s: %s", self.path, what, error)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SubmissionStoreError(f"SMS record {self.path} is not open")
        return self._conn

    def _write(self, function: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = function(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error("cannot be written", exc) from exc
        return result

    async def load(self, key: str) -> SubmissionRecord | None:
        """The record of the delivery with idempotency key ``key``, if there is one."""
        return await self._run(lambda: self._load(key))

    def _load(self, key: str) -> SubmissionRecord | None:
        def read(conn: sqlite3.Connection) -> SubmissionRecord | None:
            row = conn.execute("SELECT * FROM submissions WHERE key = ?", (key,)).fetchone()
            return _record(conn, row) if row is not None else None

        return self._read(read)

    def _read(self, function: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return function(self._db())
        except sqlite3.Error as exc:
            raise self._error("cannot be read", exc) from exc

    async def begin(
        self,
        key: str,
        *,
        delivery_id: int,
        attempt: int,
        number: str,
        digest: str,
        total: int,
        now: float,
        valid_until: float,
        expires_at: float,
    ) -> None:
        """Start the record of a new transmission of ``key``, replacing an older one."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM submissions WHERE key = ? OR delivery_id = ?", (key, delivery_id)
            )
            conn.execute(
                "INSERT INTO submissions (key, delivery_id, attempt, number, text_digest, total,"
                " created_at, valid_until, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, delivery_id, attempt, number, digest, total, now, valid_until, expires_at),
            )

        await self._run(lambda: self._write(write))

    async def segment(self, key: str, segment: SegmentSubmission, now: float) -> None:
        """Record one accepted segment. Segments of another modem go: the pool sends the whole
        message again when it moves to another modem."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM segments WHERE key = ? AND modem != ?", (key, segment.modem))
            conn.execute(
                "INSERT OR REPLACE INTO segments (key, sequence, modem, message_reference, state,"
                " submitted_at) VALUES (?, ?, ?, ?, 'submitted', ?)",
                (key, segment.sequence, segment.modem, segment.message_reference, now),
            )
            conn.execute(
                "UPDATE submissions SET total = ?, concat_reference = ? WHERE key = ?",
                (segment.total, segment.concat_reference, key),
            )

        await self._run(lambda: self._write(write))

    async def report(
        self, delivery_id: int, sequence: int, modem: str, reference: int, state: str, status: int
    ) -> None:
        """Record a segment's report; on disk when this returns (the modem deletes its copy
        only then)."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE segments SET state = ?, status = ? WHERE sequence = ? AND modem = ?"
                " AND message_reference = ?"
                " AND key = (SELECT key FROM submissions WHERE delivery_id = ?)",
                (state, status, sequence, modem, reference, delivery_id),
            )

        await self._run(lambda: self._write(write))

    def settle(self, delivery_id: int, outcome: str, detail: str, now: float) -> None:
        """Record the delivery's final outcome (queued: nothing waits for it)."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE submissions SET outcome = ?, detail = ?, settled_at = ?"
                " WHERE delivery_id = ?",
                (outcome, detail, now, delivery_id),
            )

        self._later(f"the outcome of delivery {delivery_id}", lambda: self._write(write))

    async def open_records(self, since: float) -> list[SubmissionRecord]:
        """Unsettled records whose validity ended after ``since``: reports may still come."""

        def read(conn: sqlite3.Connection) -> list[SubmissionRecord]:
            rows = conn.execute(
                "SELECT * FROM submissions WHERE outcome IS NULL AND valid_until > ?"
                " ORDER BY delivery_id",
                (since,),
            ).fetchall()
            return [_record(conn, row) for row in rows]

        return await self._run(lambda: self._read(read))

    async def prune(self, now: float) -> int:
        """Delete the records of long expired alerts and long settled deliveries; how many."""

        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM submissions WHERE expires_at < ? OR settled_at < ?",
                (now - KEEP_AFTER_EXPIRY, now - KEEP_SETTLED),
            )
            return cursor.rowcount

        return await self._run(lambda: self._write(write))


def _record(conn: sqlite3.Connection, row: sqlite3.Row) -> SubmissionRecord:
    segments: Sequence[sqlite3.Row] = conn.execute(
        "SELECT * FROM segments WHERE key = ? ORDER BY sequence", (row["key"],)
    ).fetchall()
    total = int(row["total"])
    concat = row["concat_reference"]
    return SubmissionRecord(
        key=row["key"],
        delivery_id=int(row["delivery_id"]),
        attempt=int(row["attempt"]),
        number=row["number"],
        digest=row["text_digest"],
        total=total,
        concat_reference=None if concat is None else int(concat),
        valid_until=float(row["valid_until"]),
        expires_at=float(row["expires_at"]),
        outcome=row["outcome"],
        detail=row["detail"],
        segments=tuple(
            SegmentRecord(
                sequence=int(s["sequence"]),
                total=total,
                modem=s["modem"],
                message_reference=int(s["message_reference"]),
                concat_reference=None if concat is None else int(concat),
                state=s["state"],
                status=s["status"],
            )
            for s in segments
        ),
    )
