"""The render cache on disk: keys, atomic entries, concurrent writers, damaged directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio.cache import RenderCache, cache_key
from audio.errors import RenderCacheError


def _writer(text: str):
    def build(directory: Path) -> dict[str, object]:
        (directory / "audio.txt").write_text(text)
        return {"text": text}

    return build


def test_keys_are_stable_and_order_independent() -> None:
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    assert len(cache_key({"text": "暴雪"})) == 64


def test_a_second_writer_of_the_same_entry_keeps_the_first(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)
    cache.store("renders", "k", _writer("first"))
    cache.store("renders", "k", _writer("second"))
    assert cache.read_meta("renders", "k") == {"text": "first"}
    assert (cache.entry_dir("renders", "k") / "audio.txt").read_text() == "first"
    leftovers = [p.name for p in (tmp_path / "renders").iterdir()]
    assert leftovers == ["k"]


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)

    def broken(directory: Path) -> dict[str, object]:
        (directory / "half.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(RenderCacheError, match="disk full"):
        cache.store("renders", "k", broken)
    assert not any((tmp_path / "renders").iterdir())
    assert cache.read_meta("renders", "k") is None


def test_discard_then_rebuild(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)
    cache.store("speech", "k", _writer("old"))
    cache.discard("speech", "k")
    assert cache.read_meta("speech", "k") is None
    cache.store("speech", "k", _writer("new"))
    assert cache.read_meta("speech", "k") == {"text": "new"}


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RenderCacheError, match="not usable"):
        RenderCache(blocker)
