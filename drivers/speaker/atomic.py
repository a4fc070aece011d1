"""Replacing a file whole or not at all: a temporary file of the write's own beside it,
flushed to disk, then renamed over it (rename is atomic within a file system, POSIX
``rename(2)``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, sync_directory: bool = False) -> None:
    """Write ``path`` whole or not at all, through a temporary file of this write's own (a
    write still running in a thread never shares it with the next one). With
    ``sync_directory`` the new name is on disk too when this returns, not only the data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    if not sync_directory:
        return
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
