"""The render cache: finished renders and synthesised speech on disk, keyed by content hash.

Layout under the cache directory::

    speech/<key>/speech.npz + meta.json     phrases of one script, shared by every channel
    renders/<key>/audio.* + meta.json       one channel profile's files and their metadata

Keys are SHA-256 over canonical JSON of everything that changes the audio (text, language,
voices and engine settings, assembly and export settings). An entry is built in a temporary
directory and renamed into place, so a reader sees a whole entry or none; ``meta.json`` is
written last inside it. ``discard`` removes a damaged entry before it is rebuilt; ``prune``
removes entries older than a given age.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from audio.chain import EngineAttempt, SpeechResult
from audio.errors import RenderCacheError

META_NAME = "meta.json"


def cache_key(material: Mapping[str, object]) -> str:
    """SHA-256 of ``material`` as canonical JSON."""
    text = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RenderCache:
    """Content-addressed entries under ``directory``; safe for concurrent writers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            for kind in ("speech", "renders"):
                (directory / kind).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RenderCacheError(f"cache directory {directory} is not usable: {exc}") from exc

    def entry_dir(self, kind: str, key: str) -> Path:
        """Directory of one entry (it may not exist)."""
        return self.directory / kind / key

    def read_meta(self, kind: str, key: str) -> dict[str, Any] | None:
        """The entry's metadata, or None when the entry is absent or unreadable.

        A successful read marks the entry used now, so ``prune`` keeps what is still in use.
        """
        entry = self.entry_dir(kind, key)
        try:
            text = (entry / META_NAME).read_text(encoding="utf-8")
            meta = json.loads(text)
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict):
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)
        return meta

    def discard(self, kind: str, key: str) -> None:
        """Remove a damaged or incomplete entry so that it can be built again."""
        entry = self.entry_dir(kind, key)
        if not entry.exists():
            return
        doomed = entry.with_name(f".discard-{key[:12]}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(entry, doomed)
        except OSError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def prune(self, older_than_s: float) -> int:
        """Remove entries neither written nor read for ``older_than_s`` seconds; return how
        many."""
        cutoff = time.time() - older_than_s
        removed = 0
        for kind in ("speech", "renders"):
            for entry in (self.directory / kind).iterdir():
                if entry.name.startswith("."):
                    continue
                try:
                    stale = entry.stat().st_mtime < cutoff
                except OSError:
                    continue
                if stale:
                    self.discard(kind, entry.name)
                    removed += 1
        return removed

    def work_dir(self) -> Path:
        """A fresh scratch directory inside the cache (on its file system), for the caller
        to remove."""
        try:
            (self.directory / "work").mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(dir=self.directory / "work"))
        except OSError as exc:
            raise RenderCacheError(f"cannot write to cache {self.directory}: {exc}") from exc

    def store(self, kind: str, key: str, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run ``build`` in a fresh directory, write its metadata, move it into place."""
        final = self.entry_dir(kind, key)
        try:
            work = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.directory / kind))
        except OSError as exc:
            raise RenderCacheError(f"cannot write to cache {self.directory}: {exc}") from exc
        try:
            meta = build(work)
            (work / META_NAME).write_text(
                json.dumps(meta, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
            )
            try:
                os.rename(work, final)
            except OSError:
                # Another writer finished the same entry first; theirs is equivalent.
                if not (final / META_NAME).is_file():
                    raise
        except OSError as exc:
            raise RenderCacheError(f"cannot write cache entry {final}: {exc}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return meta


def save_speech(directory: Path, speech: SpeechResult) -> dict[str, Any]:
    """Write the spoken phrases of ``speech`` into a cache entry; returns its metadata."""
    arrays: dict[str, Any] = {"body": speech.body}
    if speech.marker is not None:
        arrays["marker"] = speech.marker
    if speech.closing is not None:
        arrays["closing"] = speech.closing
    np.savez(directory / "speech.npz", **arrays)
    return {
        "engine": speech.engine,
        "fallback": speech.fallback,
        "attempts": [asdict(a) for a in speech.attempts],
    }


def load_speech(cache: RenderCache, key: str) -> SpeechResult | None:
    """The spoken phrases stored under ``key``, or None when absent or damaged."""
    meta = cache.read_meta("speech", key)
    if meta is None:
        return None
    try:
        with np.load(cache.entry_dir("speech", key) / "speech.npz") as arrays:
            phrases = {name: arrays[name].astype(np.float32) for name in arrays.files}
        return SpeechResult(
            engine=str(meta["engine"]),
            fallback=bool(meta["fallback"]),
            attempts=tuple(EngineAttempt(**a) for a in meta["attempts"]),
            body=phrases["body"],
            marker=phrases.get("marker"),
            closing=phrases.get("closing"),
        )
    except (OSError, KeyError, TypeError, ValueError):
        return None
