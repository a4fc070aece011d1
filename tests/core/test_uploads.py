"""The upload store answers only for URIs that name it: any other address, a lookalike host,
a traversal or a damaged file is refused without being read or fetched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from broadcaster.uploads import UploadStore

PUBLIC = "https://alerts.example.cn"


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return UploadStore(tmp_path / "uploads", PUBLIC + "/")


def test_a_stored_recording_is_read_back_by_its_uri(store: UploadStore) -> None:
    name = store.store(b"RIFF recording")
    assert store.store(b"RIFF recording") == name
    assert store.read(store.uri_of(name)) == b"RIFF recording"
    assert store.read(f"/api/v1/uploads/{name}") == b"RIFF recording"


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/api/v1/uploads/{name}",
        "http://alerts.example.cn/api/v1/uploads/{name}",
        "https://alerts.example.cn:8443/api/v1/uploads/{name}",
        "https://alerts.example.cn.evil.example/api/v1/uploads/{name}",
        "https://alerts.example.cn/api/v1/uploads/{name}?x=1",
        "https://alerts.example.cn/api/v1/uploads/../uploads/{name}",
        "https://alerts.example.cn/other/{name}",
        "file:///etc/passwd",
        "https://alerts.example.cn/api/v1/uploads/{upper}",
    ],
)
def test_any_other_uri_is_refused(store: UploadStore, uri: str) -> None:
    name = store.store(b"RIFF recording")
    assert store.read(uri.format(name=name, upper=name.upper())) is None


def test_a_damaged_file_is_not_used(store: UploadStore) -> None:
    name = store.store(b"RIFF recording")
    (store.directory / name).write_bytes(b"RIFF changed")
    assert store.read(store.uri_of(name)) is None
    assert store.read(store.uri_of("0" * 64)) is None


def test_prune_deletes_only_recordings_unused_for_the_keep_time(store: UploadStore) -> None:
    old = store.store(b"old recording")
    used = store.store(b"old but read again")
    fresh = store.store(b"fresh recording")
    then = time.time() - 40 * 86400
    for name in (old, used):
        os.utime(store.directory / name, (then, then))
    (store.directory / (old + ".part")).write_bytes(b"interrupted")
    os.utime(store.directory / (old + ".part"), (then, then))
    (store.directory / "notes.txt").write_bytes(b"not ours")
    os.utime(store.directory / "notes.txt", (then, then))
    assert store.read(store.uri_of(used)) == b"old but read again"
    assert store.prune(30 * 86400) == 2
    assert sorted(p.name for p in store.directory.iterdir()) == sorted([used, fresh, "notes.txt"])
    assert store.read(store.uri_of(old)) is None


def test_prune_of_a_store_never_written_removes_nothing(tmp_path: Path) -> None:
    assert UploadStore(tmp_path / "none", PUBLIC).prune(0) == 0
