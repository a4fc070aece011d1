"""A box's audio cache stays within its bound: past it, the files stored longest ago are
deleted (and downloaded again when asked for), never one stored within the recent window.
Real HTTP on loopback."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from drivers.speaker import store
from drivers.speaker.store import MediaFetcher
from drivers.speaker.testing import MediaServer

FILES = {f"{n}.mp3": bytes([n]) * 1000 for n in range(3)}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_the_oldest_audio_goes_past_the_bound(tmp_path: Path) -> None:
    async with MediaServer(FILES) as server:
        fetcher = MediaFetcher(tmp_path, cache_bytes=2500)
        try:
            for n, (name, data) in enumerate(FILES.items()):
                path = await fetcher.fetch(server.url(name), sha(data))
                stored_at = time.time() - 7200 + n  # stored long ago, first to last
                os.utime(path, (stored_at, stored_at))
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
                sha(data) for data in list(FILES.values())[1:]
            )
            assert server.requests == 3
            first = FILES["0.mp3"]
            assert (await fetcher.fetch(server.url("0.mp3"), sha(first))).read_bytes() == first
            assert server.requests == 4  # gone from the cache: downloaded again
        finally:
            await fetcher.aclose()


async def test_audio_stored_recently_is_kept_past_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "CACHE_RECENT_S", 3600.0)
    async with MediaServer(FILES) as server:
        fetcher = MediaFetcher(tmp_path, cache_bytes=1500)
        try:
            for name, data in FILES.items():
                await fetcher.fetch(server.url(name), sha(data))
        finally:
            await fetcher.aclose()
    assert len(list(tmp_path.iterdir())) == 3
