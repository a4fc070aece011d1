"""Which of a city's own devices a county node serves, and delivering to them when it cannot.

When an alert's area selects a county node (a target of a relaying channel), that county
delivers on its own devices: the city plans none of its own targets inside the county
(:func:`without_relayed`), so nothing is sent twice. A Cancel is the exception: it goes to
every target the alert it lifts reached, the city's own there after a fallback included.
With ``fallback = "direct"`` the relay channel asks, once the node has stayed unreachable
for ``fallback_after``, that the city deliver there itself
(:meth:`broadcaster.intake.Intake.plan_direct`): the alert is planned on the city's other
channels for their targets in that county, as intake would have planned them, and the new
deliveries join the alert's outbox. Where the city has no channel or target there,
nothing is planned and the answer says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from broadcaster.channel import Channel
from broadcaster.delivery import Target
from broadcaster.divisions import code_prefix
from broadcaster.store.db import Database


def relayed_prefixes(
    channels: Mapping[str, Channel], candidates: Mapping[str, Sequence[Target]]
) -> set[str]:
    """The division prefixes of the county nodes the alert goes to."""
    return {
        code_prefix(t.division)
        for name, targets in candidates.items()
        if name in channels and channels[name].capabilities.relays
        for t in targets
        if t.division
    }


def without_relayed(
    channels: Mapping[str, Channel], candidates: Mapping[str, list[Target]]
) -> dict[str, list[Target]]:
    """``candidates`` without the city's own targets inside a county the alert is relayed to."""
    prefixes = relayed_prefixes(channels, candidates)
    if not prefixes:
        return dict(candidates)
    return {
        name: targets
        if channels[name].capabilities.relays
        else [t for t in targets if not (t.division and t.division.startswith(tuple(prefixes)))]
        for name, targets in candidates.items()
    }


def within(candidates: Mapping[str, list[Target]], division: str) -> dict[str, list[Target]]:
    """``candidates`` inside ``division`` only."""
    prefix = code_prefix(division)
    return {
        name: [t for t in targets if t.division and t.division.startswith(prefix)]
        for name, targets in candidates.items()
    }


def relay_target(database: Database, delivery_id: int) -> tuple[str, Target] | None:
    """The alert and the target (a county node) of a delivery (database thread)."""
    rows = database.query("SELECT alert_id, target FROM deliveries WHERE id = ?", (delivery_id,))
    if not rows:
        return None
    data = json.loads(rows[0]["target"])
    target = Target(
        id=data["id"],
        channel=data["channel"],
        name=data.get("name") or data["id"],
        division=data.get("division"),
    )
    return str(rows[0]["alert_id"]), target
