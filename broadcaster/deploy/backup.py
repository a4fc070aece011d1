"""Backup and restore of the SQLite store with SQLite's online backup API.

A backup copies the database in one step of ``sqlite3.Connection.backup``: in WAL mode that step
reads one snapshot while the server goes on writing, so the copy is consistent (every alert with
all its deliveries, or not at all). It is written beside its destination, checked with
``PRAGMA integrity_check`` and renamed into place, so a half-written backup never exists under
the final name.

A restore refuses while a server holds the data directory's lock (see :func:`data_dir_lock`),
checks the backup first, keeps the current database as ``broadcaster.db.before-restore-<time>``,
and migrates the restored copy to this software's schema version.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from broadcaster.errors import DeployError
from broadcaster.store.db import Database, schema_files

LOCK_NAME = "broadcaster.lock"
STORE_FILE = "broadcaster.db"
"""The store's file name in the data directory (the service's ``DATABASE_NAME``; kept here so
the command line does not load the whole service to find it)."""


@dataclass(frozen=True, slots=True)
class StoreSummary:
    path: Path
    schema_version: int
    alerts: int
    deliveries: int
    size_bytes: int


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def default_backup_path(data_dir: Path) -> Path:
    return data_dir / "backups" / f"broadcaster-{_stamp()}.db"


def data_dir_in_use(data_dir: Path) -> bool:
    """True when a server holds the lock of ``data_dir``; creates nothing."""
    try:
        fd = os.open(data_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def data_dir_lock(data_dir: Path, *, purpose: str) -> Iterator[None]:
    """Hold the data directory's lock: one server, and no restore under a running server.

    Raises DeployError when another process holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(
                f"cannot {purpose}: a server is running on {data_dir}"
                " (stop it first: systemctl stop broadcaster)"
            ) from None
        yield
    finally:
        os.close(fd)


def summarize(path: Path) -> StoreSummary:
    """Check a database file (integrity, schema version) and count what it holds.

    Raises DeployError if it is not a usable broadcaster store.
    """
    if not path.is_file():
        raise DeployError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DeployError(f"{path}: cannot open: {exc}") from None
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise DeployError(f"{path}: integrity check failed: {check}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        alerts = int(conn.execute("SELECT count(*) FROM alerts").fetchone()[0])
        deliveries = int(conn.execute("SELECT count(*) FROM deliveries").fetchone()[0])
    except sqlite3.Error as exc:
        raise DeployError(f"{path}: not a broadcaster database: {exc}") from None
    finally:
        conn.close()
    if not 1 <= version <= len(schema_files()):
        raise DeployError(f"{path}: schema version {version} is not one this software knows")
    return StoreSummary(path, version, alerts, deliveries, path.stat().st_size)


def backup_database(source: Path, dest: Path) -> StoreSummary:
    """Copy the store at ``source`` to the new file ``dest`` while the server may be writing."""
    if not source.is_file():
        raise DeployError(f"no database at {source}")
    if dest.exists():
        raise DeployError(f"{dest} exists already; choose another name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            target = sqlite3.connect(partial)
            try:
                src.backup(target)  # one step: one consistent snapshot
                target.execute("PRAGMA journal_mode = DELETE")
            finally:
                target.close()
        finally:
            src.close()
        summary = summarize(partial)
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        partial.rename(dest)
    except sqlite3.Error as exc:
        raise DeployError(f"backup of {source} failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return StoreSummary(
        dest, summary.schema_version, summary.alerts, summary.deliveries, summary.size_bytes
    )


def restore_database(backup: Path, target: Path, *, force: bool = False) -> StoreSummary:
    """Replace the store at ``target`` with ``backup``; the old one is kept beside it.

    Raises DeployError (nothing changed) if the backup is unusable, a server runs on the data
    directory, or ``target`` exists and ``force`` is not given.
    """
    summarize(backup)
    if target.exists() and not force:
        raise DeployError(f"{target} exists; use --force to replace it (it is kept as a copy)")
    with data_dir_lock(target.parent, purpose="restore"):
        incoming = target.with_name(target.name + ".restoring")
        incoming.unlink(missing_ok=True)
        src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(incoming)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        if target.exists():
            _retire(target)
        incoming.rename(target)
        _match_owner(target)
        Database(target).close()  # brings an older backup to the current schema
    return summarize(target)


def _retire(target: Path) -> Path:
    """Fold the WAL into the current database and move it aside."""
    conn = sqlite3.connect(target)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    kept = target.with_name(f"{target.name}.before-restore-{_stamp()}")
    target.rename(kept)
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    return kept


def _match_owner(path: Path) -> None:
    """A restore run as root leaves the file to the data directory's owner (the service user)."""
    if os.geteuid() != 0:
        return
    info = path.parent.stat()
    os.chown(path, info.st_uid, info.st_gid)
