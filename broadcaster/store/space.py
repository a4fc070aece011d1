"""Whether the data directory's filesystem has room to write, for intake and ``/healthz``.

SQLite reports a write that found the disk full as ``SQLITE_FULL`` (``ENOSPC`` from the
operating system) and rolls the transaction back. :class:`DiskSpace` remembers that, so
``/healthz`` can say so while nothing else would show it (reads still work), and forgets it by
itself once space returns: when a later write succeeds, or when the filesystem again has
:data:`RECOVERED_FREE_BYTES` free (``statvfs``). A filesystem with less than
:data:`LOW_FREE_BYTES` free counts as full before any write has failed.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_FULL = 13
LOW_FREE_BYTES = 256 * 1024
RECOVERED_FREE_BYTES = 4 * 1024 * 1024
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) means the disk had no room."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlite3.Error) and (seen.sqlite_errorcode & 0xFF) == SQLITE_FULL:
            return True
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True, slots=True)
class SpaceReport:
    full: bool
    free_bytes: int | None
    """Free bytes for this user, or None where the filesystem cannot say."""

    @property
    def detail(self) -> str:
        free = "unknown" if self.free_bytes is None else f"{self.free_bytes} bytes free"
        return f"disk full ({free})" if self.full else f"ok ({free})"


class DiskSpace:
    """The writable state of the filesystem that holds ``directory`` (thread-safe)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._full = False

    @property
    def full(self) -> bool:
        return self._full

    def note_full(self) -> None:
        """A write failed for lack of space."""
        with self._lock:
            if not self._full:
                log.error("disk full in %s: writes are refused until space returns", self.directory)
            self._full = True

    def note_written(self) -> None:
        """A write succeeded: there is room again."""
        with self._lock:
            if self._full:
                log.warning("disk space in %s is back: writes succeed again", self.directory)
            self._full = False

    def free_bytes(self) -> int | None:
        try:
            info = os.statvfs(self.directory)
        except OSError:
            return None
        return info.f_bavail * info.f_frsize

    def check(self) -> SpaceReport:
        """The state now: a remembered failure is forgotten once the filesystem has room."""
        free = self.free_bytes()
        if self._full and free is not None and free >= RECOVERED_FREE_BYTES:
            self.note_written()
        low = free is not None and free < LOW_FREE_BYTES
        return SpaceReport(full=self._full or low, free_bytes=free)
