"""A throw-away PostgreSQL server for tests and benchmarks (Debian package ``postgresql``).

:class:`PgServer` runs ``initdb`` on a temporary directory and starts ``postgres`` on a free
port of 127.0.0.1, with its unix socket in that directory and ``fsync`` off (the data is thrown
away). :meth:`PgServer.fresh` gives each test its own database, copied from a template that
was migrated once (``CREATE DATABASE … TEMPLATE``); :meth:`PgServer.freeze` stops the server's
processes, as a hung machine would, until :meth:`PgServer.thaw`. As root, the server runs as the
``postgres`` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg

from broadcaster.store.postgres import PgDatabase

START_TIMEOUT_SECONDS = 30.0


def postgres_bin() -> Path | None:
    """The directory of ``initdb`` and ``postgres``, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]),
    )
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _dbname(url: str) -> str:
    return url.split("@/", 1)[1].split("?", 1)[0]


class PgServer:
    """A PostgreSQL server of its own in a temporary directory until the context exits."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.bin = bin_dir
        # Its own directory in the system's temporary directory: the server user (as root,
        # ``postgres``) must reach it, which private test directories do not allow.
        self.work_dir = Path(tempfile.mkdtemp(prefix="broadcaster-pg-"))
        self.data = self.work_dir / "data"
        self.socket_dir = self.work_dir / "socket"
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._templates: set[str] = set()

    def _as_server_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"]

    def __enter__(self) -> Self:
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.work_dir, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            [
                *self._as_server_user(),
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        self._process = subprocess.Popen(
            [
                *self._as_server_user(),
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("PostgreSQL did not start") from None
                time.sleep(0.1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (fast shutdown), wait for it and remove its directory."""
        if self._process is not None and self._process.poll() is None:
            self.thaw()
            self._process.send_signal(signal.SIGINT)  # fast: SIGTERM would wait for clients
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def processes(self) -> list[int]:
        """The server's process ids: the postmaster and every process it started."""
        if self._process is None:
            return []
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                parents[int(stat.parent.name)] = int(fields[1])
        found = [self._process.pid]
        for pid in found:
            found += [child for child, parent in parents.items() if parent == pid]
        return found

    def freeze(self) -> None:
        """Stop every server process (SIGSTOP): connections stay open and nothing answers, as
        when the server's machine hangs or vanishes."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):  # a backend that ended meanwhile
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server run again (SIGCONT)."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):  # a backend that ended meanwhile
                os.kill(pid, signal.SIGCONT)

    def tcp_url(self, url: str) -> str:
        """``url`` (of :meth:`fresh`) over TCP to 127.0.0.1 instead of the unix socket."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{_dbname(url)}"

    @property
    def pid(self) -> int | None:
        """The process id of the running server (``setpriv`` runs it in its own process)."""
        return None if self._process is None else self._process.pid

    def url(self, dbname: str) -> str:
        """A libpq URL of database ``dbname`` over the server's unix socket."""
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}&port={self.port}"

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser, outside a transaction (CREATE DATABASE…)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode("utf-8"))

    def fresh(self, template: str | None = None) -> str:
        """The URL of a new, empty database, or a copy of database ``template``."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        copy = f" TEMPLATE {template}" if template else ""
        for attempt in range(50):
            try:
                self.admin(f"CREATE DATABASE {name}{copy}")
                break
            except psycopg.errors.ObjectInUse:  # the template is still being let go
                if attempt == 49:
                    raise
                time.sleep(0.05)
        return self.url(name)

    def migrated(self) -> str:
        """The URL of a new database at the current schema (a copy of one migrated once)."""
        if not self._templates:
            url = self.fresh()
            PgDatabase(url, self.work_dir).close()
            self._templates.add(_dbname(url))
        return self.fresh(next(iter(self._templates)))

    def drop(self, url: str) -> None:
        """Drop the database of ``url`` (made by :meth:`fresh`), closing its connections."""
        name = _dbname(url)
        with contextlib.suppress(psycopg.Error):
            self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
