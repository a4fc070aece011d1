"""The server's own store of recordings that alerts carry by reference.

A CAP ``<resource>`` may give its audio inline (``derefUri``, base64) or by ``uri`` (CAP 1.2
section 3.2.3). The server never fetches an arbitrary ``uri``: that would let any sender make
it reach into other networks. It reads a ``uri`` only when it names this store,
``<public url>/api/v1/uploads/<sha256>`` (or that path alone), where an API client first
uploaded the recording (``POST /api/v1/uploads``, :mod:`broadcaster.api.uploads`). Files are
kept as ``<data dir>/uploads/<sha256>``, written once and checked against their name when read.
Each store or read marks the file used (its modification time); the daily housekeeping deletes
files unused for ``[audio] keep_days`` (:meth:`UploadStore.prune`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

UPLOAD_PATH = "/api/v1/uploads/"
_NAME = re.compile(r"^[0-9a-f]{64}$")


class UploadStore:
    """Recordings by SHA-256 under ``directory``; blocking (call from a thread)."""

    def __init__(self, directory: Path, public_url: str) -> None:
        self.directory = directory
        self.public_url = public_url.rstrip("/")

    def store(self, data: bytes) -> str:
        """Keep ``data``; returns its SHA-256 (the name in its URI)."""
        name = hashlib.sha256(data).hexdigest()
        path = self.directory / name
        if not path.is_file():
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            os.replace(partial, path)
        else:
            _mark_used(path)
        return name

    def uri_of(self, name: str) -> str:
        return f"{self.public_url}{UPLOAD_PATH}{name}"

    def name_of(self, uri: str) -> str | None:
        """The stored name a URI refers to, or None for any URI outside this store."""
        parts = urlsplit(uri.strip())
        if parts.scheme or parts.netloc:
            own = urlsplit(self.public_url)
            if (parts.scheme, parts.netloc) != (own.scheme, own.netloc):
                return None
        own_path = urlsplit(self.public_url).path.rstrip("/") + UPLOAD_PATH
        if parts.query or parts.fragment or not parts.path.startswith(own_path):
            return None
        name = parts.path[len(own_path) :]
        return name if _NAME.fullmatch(name) else None

    def read(self, uri: str) -> bytes | None:
        """The recording ``uri`` names in this store; None when it names anything else, is
        missing, or no longer matches its name."""
        name = self.name_of(uri)
        if name is None:
            return None
        try:
            data = (self.directory / name).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != name:
            return None
        _mark_used(self.directory / name)
        return data

    def prune(self, keep_s: float, now: float | None = None) -> int:
        """Delete recordings (and interrupted writes) unused for ``keep_s``; returns how many."""
        cutoff = (time.time() if now is None else now) - keep_s
        removed = 0
        try:
            entries = list(self.directory.iterdir())
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not (_NAME.fullmatch(entry.stem) and entry.suffix in ("", ".part")):
                continue
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except OSError:
                continue
        return removed


def _mark_used(path: Path) -> None:
    """Record that a stored recording was used now (a failure only shortens its keep)."""
    try:
        os.utime(path)
    except OSError:
        return
