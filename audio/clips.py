"""The clip library: stored phrases that speak a warning when every synthesiser is down.

A library is a directory with ``manifest.json`` and the clip files it lists::

    {"format": 1,
     "clips": [{"kind": "warning", "hazard": "blizzard", "level": "red", "language": "zh-CN",
                "file": "zh-CN/blizzard-red.opus", "sha256": "…", "text": "暴雪红色预警…"},
               {"kind": "marker-exercise", "language": "zh-CN", …},
               {"kind": "marker-test", …}, {"kind": "closing", …}]}

Warning clips are keyed by hazard, level and language; a hazard without its own clip falls back
to ``generic`` at the same level, then to the generic clip without a level. For a language
without whole warning clips (Mongolian, recorded phrase by phrase) a warning is assembled from
phrases (``assembled_warning``): the names of the places (``place`` clips keyed by county or
banner code), the hazard's name (``hazard``), its level (``level``) and the standard
instruction (``instruction``, for the hazard and level, else the hazard). The manifest's
``wanted`` list names phrases still to be recorded, with the text to read; it is kept when the
manifest is written again. Every clip is checked
against its SHA-256 before use, so a damaged file is reported instead of played.
``write_manifest`` builds a manifest for a directory of recorded clips.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from audio.errors import ClipIntegrityError, ClipLibraryError
from audio.languages import lookup
from audio.pcm import Samples, decode

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
GENERIC_HAZARD = "generic"
GENERIC_LEVEL = "none"
CLIP_KINDS = frozenset(
    {
        "warning",
        "marker-exercise",
        "marker-test",
        "closing",
        "hazard",
        "level",
        "instruction",
        "place",
    }
)

DEFAULT_LIBRARY = Path(__file__).resolve().parent / "clips"


@dataclass(frozen=True)
class ClipEntry:
    """One manifest row: what the clip says and where its file is."""

    kind: str
    language: str
    file: str
    sha256: str
    text: str = ""
    hazard: str = ""
    level: str = ""
    place: str = ""


class ClipLibrary:
    """Read-only access to a clip directory; each lookup verifies the file's SHA-256."""

    def __init__(self, directory: Path = DEFAULT_LIBRARY) -> None:
        self.directory = directory
        self.entries = _load_manifest(directory)

    def identity(self) -> str:
        """A digest of the manifest, so a changed library changes the cache key."""
        rows = sorted(json.dumps(asdict(e), sort_keys=True) for e in self.entries)
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()

    def find_warning(self, hazard: str, level: str, language: str) -> ClipEntry:
        """The clip for hazard and level, else the generic one for that level, else generic."""
        wanted = ((hazard.lower(), level.lower()), (GENERIC_HAZARD, level.lower()))
        for clip_hazard, clip_level in (*wanted, (GENERIC_HAZARD, GENERIC_LEVEL)):
            entry = self._find("warning", language, hazard=clip_hazard, level=clip_level)
            if entry is not None:
                return entry
        raise ClipLibraryError(f"no warning clip for {hazard!r}/{level!r} in {language!r}")

    def assembled_warning(
        self, hazard: str, level: str, language: str, places: tuple[str, ...] = ()
    ) -> list[ClipEntry]:
        """The phrase clips that say the warning in ``language``: the places that have a clip,
        the hazard, the level and the instruction (when recorded). The hazard and level clips
        are required."""
        hazard, level = hazard.lower(), level.lower()
        spoken = [e for p in places if (e := self._find("place", language, place=p)) is not None]
        named = self._find("hazard", language, hazard=hazard)
        colour = self._find("level", language, level=level)
        missing = [what for what, e in (("hazard", named), ("level", colour)) if e is None]
        if named is None or colour is None:
            raise ClipLibraryError(
                f"no {' or '.join(missing)} clip for {hazard!r}/{level!r} in {language!r}"
            )
        instruction = self._find("instruction", language, hazard=hazard, level=level) or self._find(
            "instruction", language, hazard=hazard
        )
        return [*spoken, named, colour, *([instruction] if instruction else [])]

    def find_phrase(self, kind: str, language: str) -> ClipEntry:
        """A marker or closing clip in ``language``."""
        entry = self._find(kind, language)
        if entry is None:
            raise ClipLibraryError(f"no {kind!r} clip in {language!r}")
        return entry

    def load(self, entry: ClipEntry) -> Samples:
        """Verify and decode one clip to master-rate samples (blocking: call from a thread)."""
        path = self.directory / entry.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ClipLibraryError(f"clip {entry.file} cannot be read: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            raise ClipIntegrityError(
                f"clip {entry.file} has SHA-256 {digest}, manifest says {entry.sha256}"
            )
        return decode(path)

    def verify(self) -> list[str]:
        """Check every file; return one problem line per missing or damaged clip."""
        problems = []
        for entry in self.entries:
            path = self.directory / entry.file
            if not path.is_file():
                problems.append(f"{entry.file}: missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != entry.sha256:
                problems.append(f"{entry.file}: SHA-256 mismatch")
        return problems

    def _find(
        self, kind: str, language: str, hazard: str = "", level: str = "", place: str = ""
    ) -> ClipEntry | None:
        candidates = [
            e
            for e in self.entries
            if e.kind == kind and e.hazard == hazard and e.level == level and e.place == place
        ]
        chosen = lookup((language,), [e.language for e in candidates])
        return next((e for e in candidates if e.language == chosen), None)


def write_manifest(directory: Path, entries: list[ClipEntry]) -> Path:
    """Write ``manifest.json`` for ``entries``, recomputing each file's SHA-256."""
    rows = []
    for entry in entries:
        path = directory / entry.file
        if not path.is_file():
            raise ClipLibraryError(f"clip file {path} does not exist")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        row = {k: v for k, v in asdict(entry).items() if v}
        row["sha256"] = digest
        rows.append(row)
    manifest = directory / MANIFEST_NAME
    document: dict[str, object] = {"format": MANIFEST_FORMAT, "clips": rows}
    wanted = _wanted(manifest)
    if wanted:
        recorded = {
            (r["kind"], r["language"], r.get("hazard"), r.get("level"), r.get("place"))
            for r in rows
        }
        document["wanted"] = [
            w
            for w in wanted
            if (w.get("kind"), w.get("language"), w.get("hazard"), w.get("level"), w.get("place"))
            not in recorded
        ]
    manifest.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return manifest


def _wanted(manifest: Path) -> list[dict[str, str]]:
    """The ``wanted`` rows of an existing manifest (phrases still to record)."""
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = document.get("wanted") if isinstance(document, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _load_manifest(directory: Path) -> list[ClipEntry]:
    path = directory / MANIFEST_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClipLibraryError(f"clip manifest {path} cannot be read: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise ClipLibraryError(f"clip manifest {path}: expected format {MANIFEST_FORMAT}")
    rows = document.get("clips")
    if not isinstance(rows, list):
        raise ClipLibraryError(f"clip manifest {path}: 'clips' must be a list")
    entries = []
    for number, row in enumerate(rows):
        entries.append(_parse_row(path, number, row))
    return entries


def _parse_row(path: Path, number: int, row: object) -> ClipEntry:
    where = f"clip manifest {path}, entry {number}"
    if not isinstance(row, dict) or not all(isinstance(v, str) for v in row.values()):
        raise ClipLibraryError(f"{where}: must be an object of strings")
    try:
        entry = ClipEntry(**row)
    except TypeError as exc:
        raise ClipLibraryError(f"{where}: {exc}") from exc
    if entry.kind not in CLIP_KINDS:
        raise ClipLibraryError(f"{where}: unknown kind {entry.kind!r}")
    needs = {
        "warning": ("hazard", "level"),
        "hazard": ("hazard",),
        "level": ("level",),
        "instruction": ("hazard",),
        "place": ("place",),
    }
    missing = [name for name in needs.get(entry.kind, ()) if not getattr(entry, name)]
    if missing:
        raise ClipLibraryError(f"{where}: a {entry.kind} clip needs {' and '.join(missing)}")
    if len(entry.sha256) != 64 or Path(entry.file).is_absolute() or ".." in Path(entry.file).parts:
        raise ClipLibraryError(f"{where}: bad sha256 or file path")
    return entry
