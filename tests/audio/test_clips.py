"""The shipped clip library and its manifest checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audio.clipbuild import build_library, default_phrases
from audio.clips import ClipEntry, ClipLibrary, write_manifest
from audio.engines import EspeakEngine
from audio.errors import ClipIntegrityError, ClipLibraryError
from audio.speechtext import Level


def test_shipped_library_is_whole_and_small() -> None:
    library = ClipLibrary()
    assert library.verify() == []
    size = sum(p.stat().st_size for p in library.directory.rglob("*") if p.is_file())
    assert size < 2_000_000


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_level_and_marker_has_a_clip(language: str) -> None:
    library = ClipLibrary()
    for level in Level:
        assert library.find_warning("generic", level.value, language).language == language
    for kind in ("marker-exercise", "marker-test", "closing"):
        assert library.find_phrase(kind, language).kind == kind


def test_unknown_hazard_falls_back_to_generic_at_the_same_level() -> None:
    library = ClipLibrary()
    assert library.find_warning("blizzard", "red", "zh-CN").file == "zh-CN/blizzard-red.opus"
    assert library.find_warning("meteor", "red", "zh-CN").file == "zh-CN/generic-red.opus"
    assert library.find_warning("meteor", "violet", "zh").file == "zh-CN/generic-none.opus"
    assert library.find_warning("blizzard", "red", "en-US").language == "en"


def test_a_damaged_clip_is_refused_not_played(tmp_path: Path) -> None:
    shutil.copytree(ClipLibrary().directory, tmp_path / "clips")
    library = ClipLibrary(tmp_path / "clips")
    entry = library.find_warning("gale", "blue", "en")
    (library.directory / entry.file).write_bytes(b"\x00" * 100)
    with pytest.raises(ClipIntegrityError, match="SHA-256"):
        library.load(entry)
    assert library.verify() == [f"{entry.file}: SHA-256 mismatch"]


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ("not json", "cannot be read"),
        (json.dumps({"format": 9, "clips": []}), "expected format"),
        (json.dumps({"format": 1, "clips": {}}), "must be a list"),
        (
            json.dumps(
                {
                    "format": 1,
                    "clips": [{"kind": "song", "language": "en", "file": "a", "sha256": "0" * 64}],
                }
            ),
            "unknown kind",
        ),
        (
            json.dumps(
                {
                    "format": 1,
                    "clips": [
                        {"kind": "warning", "language": "en", "file": "a", "sha256": "0" * 64}
                    ],
                }
            ),
            "hazard and level",
        ),
        (
            json.dumps(
                {
                    "format": 1,
                    "clips": [
                        {"kind": "closing", "language": "en", "file": "../x", "sha256": "0" * 64}
                    ],
                }
            ),
            "file path",
        ),
        (json.dumps({"format": 1, "clips": [{"kind": "closing", "colour": "red"}]}), "entry 0"),
    ],
)
def test_bad_manifests_are_refused(tmp_path: Path, manifest: str, problem: str) -> None:
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(ClipLibraryError, match=problem):
        ClipLibrary(tmp_path)


def test_write_manifest_records_each_files_digest(tmp_path: Path) -> None:
    source = ClipLibrary().find_phrase("closing", "en")
    shutil.copy(ClipLibrary().directory / source.file, tmp_path / "bye.opus")
    write_manifest(tmp_path, [ClipEntry("closing", "en", "bye.opus", "", "Goodbye")])
    library = ClipLibrary(tmp_path)
    assert library.entries[0].sha256 == source.sha256
    assert len(library.load(library.entries[0])) > 0
    with pytest.raises(ClipLibraryError, match="does not exist"):
        write_manifest(tmp_path, [ClipEntry("closing", "en", "absent.opus", "")])


async def test_build_library_speaks_encodes_and_writes_a_manifest(tmp_path: Path) -> None:
    phrases = [e for e in default_phrases() if e.kind != "warning"][:3]
    phrases.append(next(e for e in default_phrases() if e.file == "en/gale-red.opus"))
    await build_library(EspeakEngine(), tmp_path, phrases)
    library = ClipLibrary(tmp_path)
    assert library.verify() == []
    assert library.find_warning("gale", "red", "en").text.startswith("Red gale warning.")
    clip = library.load(library.find_phrase("marker-exercise", "zh-CN"))
    assert 0.8 < len(clip) / 48_000 < 4.0


def test_shipped_manifest_matches_the_phrase_table() -> None:
    shipped = {(e.kind, e.language, e.file, e.text) for e in ClipLibrary().entries}
    table = {(e.kind, e.language, e.file, e.text) for e in default_phrases()}
    assert shipped == table
