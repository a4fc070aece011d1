"""Targets this process has already decoded or encoded, so that a fan-out does not parse the
same registry row or delivery snapshot again.

Planning an alert reads every target of a channel from the registry, writes each delivery's
snapshot of its target (JSON) and, moments later, claims read the snapshots back. Each of these
steps decodes or encodes the same targets: :class:`KnownTargets` keeps, on the database thread,
the :class:`~broadcaster.delivery.Target` of each registry row and of each snapshot text it met,
keyed by the exact stored values, so a hit gives what decoding them would give, whoever wrote
them (another node of a shared store included). Each map is bounded; a full one starts again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from broadcaster.delivery import Target

KNOWN_LIMIT = 50_000
"""Entries each map keeps before it starts again (a registry of this size fits whole)."""

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
            text = json.dumps(target.to_json(), ensure_ascii=False)
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


def _bounded(entries: dict[Any, Any], limit: int) -> dict[Any, Any]:
    """``entries``, emptied first when it holds ``limit`` entries."""
    if len(entries) >= limit:
        entries.clear()
    return entries
