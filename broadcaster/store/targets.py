"""The target registry in the store: devices and subscriber groups with place and division code.

The registry file (``config/demo/targets.json`` for the demo) is the source of truth; at start
the table is brought in line with it. Deliveries keep a snapshot of their target, so editing the
registry never changes what an alert already planned.

Planning an alert reads every target of a channel from the registry, writes each delivery's
snapshot of its target (compact JSON, without the fields at their defaults) and, moments later,
claims read the snapshots back. Each of these steps would decode or encode the same targets
again: :class:`KnownTargets` keeps, on the database thread, the
:class:`~broadcaster.delivery.Target` of each registry row and of each snapshot text it met,
keyed by the exact stored values, so a hit gives what decoding them would give, whoever wrote
them (another node of a shared store included). Each map is bounded; a full one starts again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadcaster.delivery import Target
from broadcaster.errors import ConfigError

if TYPE_CHECKING:  # the database holds this module's KnownTargets
    from broadcaster.store.db import Database

_REQUIRED = ("id", "channel")


def load_targets_file(path: Path) -> list[Target]:
    """Read a JSON list of targets; raises ConfigError naming the entry that is wrong."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read target registry {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    entries = doc.get("targets") if isinstance(doc, Mapping) else doc
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list of targets")
    return parse_targets(entries, source=str(path))


def parse_targets(entries: Sequence[Any], *, source: str = "registry") -> list[Target]:
    targets: list[Target] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{source}[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: a target must be an object")
        for key in _REQUIRED:
            if not entry.get(key):
                raise ConfigError(f"{where}: '{key}' is required")
        if entry["id"] in seen:
            raise ConfigError(f"{where}: duplicate target id {entry['id']!r}")
        seen.add(str(entry["id"]))
        for key in ("lat", "lon"):
            value = entry.get(key)
            if value is not None and not isinstance(value, int | float):
                raise ConfigError(f"{where}.{key}: must be a number")
        lat, lon = entry.get("lat"), entry.get("lon")
        if lat is not None and not -90 <= lat <= 90:
            raise ConfigError(f"{where}.lat: {lat} is outside -90..90")
        if lon is not None and not -180 <= lon <= 180:
            raise ConfigError(f"{where}.lon: {lon} is outside -180..180")
        targets.append(Target.from_json(entry))
    return targets


class TargetTable:
    """Synchronous access to the ``targets`` table (call on the database thread)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def replace_all(self, targets: Iterable[Target], source: str = "registry") -> int:
        """Make the rows of ``source`` exactly ``targets``; returns how many there are."""
        targets = list(targets)
        rows = [_row(t, source) for t in targets]
        for target, row in zip(targets, rows, strict=True):
            self.database.known.registered(target, row[7], row[8])
        with self.database.transaction() as conn:
            self.database.serialize(conn, "targets")  # nodes starting together take turns
            conn.execute("DELETE FROM targets WHERE source = ?", (source,))
            conn.executemany(_INSERT, rows)
        return len(rows)

    def upsert(self, target: Target, source: str) -> None:
        """Add or replace one target owned by ``source`` (a channel registering a receiver)."""
        with self.database.transaction() as conn:
            self.database.serialize(conn, "targets")
            conn.execute("DELETE FROM targets WHERE id = ? AND source = ?", (target.id, source))
            conn.execute(_INSERT, _row(target, source))

    def remove(self, target_id: str, source: str) -> bool:
        """Remove one target owned by ``source``; True if it was there."""
        with self.database.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM targets WHERE id = ? AND source = ?", (target_id, source)
            )
        return cursor.rowcount > 0

    def get(self, target_id: str) -> Target | None:
        row = self.database.conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets WHERE id = ?",  # noqa: S608
            (target_id,),
        ).fetchone()
        return None if row is None else self.database.known.from_row(row)

    def for_channel(self, channel: str) -> list[Target]:
        rows = self.database.conn.execute(
            f"SELECT {TARGET_COLUMNS} FROM targets"  # noqa: S608
            " WHERE channel = ? AND enabled = 1 ORDER BY id",
            (channel,),
        )
        from_row = self.database.known.from_row
        return [from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self.database.query(
            "SELECT channel, count(*) AS n FROM targets WHERE enabled = 1 GROUP BY channel"
        )
        return {r["channel"]: r["n"] for r in rows}


_INSERT = (
    "INSERT INTO targets (id, channel, name, division, lat, lon, address, languages, params,"
    " source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _row(t: Target, source: str) -> tuple[Any, ...]:
    return (
        t.id,
        t.channel,
        t.name,
        t.division,
        t.lat,
        t.lon,
        t.address,
        json.dumps(list(t.languages)),
        json.dumps(dict(t.params), ensure_ascii=False),
        source,
    )


KNOWN_LIMIT = 200_000
"""Entries each map keeps before it starts again: a province's registry fits whole (about
1.1 KB of the maps per target, 110 MB at 100,000 boxes); with a smaller limit, a fan-out to
more targets than it decodes and encodes them all again."""

TARGET_COLUMNS = "id, channel, name, address, division, lat, lon, languages, params"
"""The columns of ``targets`` that :meth:`KnownTargets.from_row` reads, in its order."""


class KnownTargets:
    """Registry rows and delivery snapshots already met, with their targets (call on the
    database thread)."""

    def __init__(self, limit: int = KNOWN_LIMIT) -> None:
        self._limit = limit
        self._by_row: dict[tuple[Any, ...], Target] = {}
        self._by_snapshot: dict[str, Target] = {}
        self._snapshot_of: dict[int, tuple[Target, str]] = {}

    def from_row(self, row: Iterable[Any]) -> Target:
        """The target of a ``targets`` row of :data:`TARGET_COLUMNS`."""
        key = tuple(row)
        target = self._by_row.get(key)
        if target is None:
            id_, channel, name, address, division, lat, lon, languages, params = key
            languages, params = tuple(json.loads(languages)), json.loads(params)
            target = Target(id_, channel, name, address, division, lat, lon, languages, params)
            _bounded(self._by_row, self._limit)[key] = target
        return target

    def registered(self, target: Target, languages: str, params: str) -> None:
        """``target`` is written to the registry with these JSON texts: its row is known, and
        so is the snapshot its deliveries will keep (encoded now, once, not at each alert)."""
        key = (target.id, target.channel, target.name, target.address, target.division)
        _bounded(self._by_row, self._limit)[(*key, target.lat, target.lon, languages, params)] = (
            target
        )
        self.snapshot(target)

    def snapshot(self, target: Target) -> str:
        """The JSON text a delivery keeps of ``target``."""
        known = self._snapshot_of.get(id(target))
        if known is not None and known[0] is target:
            text = known[1]
        else:
            text = _snapshot_encode(_snapshot_fields(target))
            _bounded(self._snapshot_of, self._limit)[id(target)] = (target, text)
        if target.name:  # decoding the text gives this target back (an empty name gives the id)
            _bounded(self._by_snapshot, self._limit)[text] = target
        return text

    def from_snapshot(self, text: str) -> Target:
        """The target of a delivery's snapshot ``text``."""
        target = self._by_snapshot.get(text)
        if target is None:
            target = Target.from_json(json.loads(text))
            _bounded(self._by_snapshot, self._limit)[text] = target
        return target


_DEFAULTS = Target("", "", "")
"""A target with every optional field at its default."""

_snapshot_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _snapshot_fields(target: Target) -> dict[str, Any]:
    """What a snapshot keeps of ``target``: its fields, less those at their defaults (which
    decoding gives back), so each delivery row stays narrow."""
    doc = target.to_json()
    for name in ("address", "division", "lat", "lon", "languages", "params"):
        if getattr(target, name) == getattr(_DEFAULTS, name):
            del doc[name]
    return doc


def _bounded(entries: dict[Any, Any], limit: int) -> dict[Any, Any]:
    """``entries``, emptied first when it holds ``limit`` entries."""
    if len(entries) >= limit:
        entries.clear()
    return entries
