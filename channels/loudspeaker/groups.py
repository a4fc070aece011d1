"""Group commands: one signed command for every box of an area (docs/protocols/speaker.md
sections 2.2, 2.3 and 4.3).

A box provisioned with area keys (the target's ``group_areas``: its area codes, widest first,
whose keys it holds and whose MQTT topics it subscribes to) gets its play commands signed
with the key of its first area, ``to`` = ``area:<code>``, under a command id made from the
alert, the area and the languages: every box of that area that serves the same languages gets
the very same bytes, built, signed and encoded once. Each box's acks still name the box and
the command id, so each delivery is settled on its own box's word. A box without
``group_areas`` (one that only knows its own key and topic) gets its own signed command.

Over TCP the first batch that sends a group command writes the same bytes to every box of
the group the alert selected (as ``plan`` recorded it), not only to the batch's boxes, so
every box starts at once; later batches find their boxes done. Over serial lines the bytes
are written to each box of the batch. Over MQTT one publish to an area's topic reaches every
box subscribed to it, so it is used only when the alert selected every registered box of
that area with the same first area and languages; otherwise the bytes go to each box's own
topic. :class:`PlannedAreas` keeps
what ``plan`` selected; a server that did not plan the alert itself (after a restart, or on
another node) sends to each box's topic, which is slower but reaches the same boxes.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence

from broadcaster.channel import OutgoingDelivery

GroupKey = tuple[str, str, tuple[str, ...]]
"""(area of the topic, area whose key signs, languages)."""


def group_command_id(kind: str, channel: str, delivery: OutgoingDelivery, area: str) -> str:
    """The command id every box of ``area`` gets for ``delivery``'s alert and languages;
    stable, so a retry reuses it and a box plays it once."""
    languages = ",".join(delivery.target.languages)
    seed = f"{delivery.message.id}:{channel}:area:{area}:{languages}/{delivery.part}"
    return f"{kind}-{hashlib.sha256(seed.encode()).hexdigest()[:40]}"


class PlannedAreas:
    """Per alert, how many boxes ``plan`` selected in each area, by signing area and
    languages; the areas' registered members come from :meth:`member`."""

    def __init__(self, kept: int = 64) -> None:
        self._kept = kept
        self._planned: OrderedDict[str, Counter[GroupKey]] = OrderedDict()
        self._direct: OrderedDict[str, dict[tuple[str, tuple[str, ...]], list[str]]] = OrderedDict()
        self._members: dict[str, set[str]] = {}

    def member(self, box_id: str, areas: Sequence[str]) -> None:
        """``box_id`` is registered and subscribed to the topics of ``areas`` (MQTT)."""
        for area in areas:
            self._members.setdefault(area, set()).add(box_id)

    def record(
        self,
        message_id: str,
        boxes: Iterable[tuple[str, Sequence[str], tuple[str, ...], str]],
    ) -> None:
        """The boxes planned for an alert: (box id, its group areas, languages, transport)."""
        counts: Counter[GroupKey] = Counter()
        direct: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        seen: set[str] = set()
        for box_id, areas, languages, transport in boxes:
            if box_id in seen or not areas:
                continue
            seen.add(box_id)
            if transport == "tcp":
                direct.setdefault((areas[0], languages), []).append(box_id)
                continue
            for area in areas:
                counts[area, areas[0], languages] += 1
        self._planned[message_id] = counts
        self._direct[message_id] = direct
        for kept in (self._planned, self._direct):
            kept.move_to_end(message_id)
            while len(kept) > self._kept:
                kept.popitem(last=False)

    def direct(self, message_id: str, signer: str, languages: tuple[str, ...]) -> list[str]:
        """The TCP boxes the alert selected whose group command is signed for ``signer``
        with ``languages`` (empty when the alert was not planned here)."""
        return self._direct.get(message_id, {}).get((signer, languages), [])

    def covered(self, message_id: str, areas: Sequence[str], languages: tuple[str, ...]) -> str:
        """The widest of ``areas`` whose every member the alert selected with the same signing
        area and languages ("" when none is, or the alert was not planned here)."""
        counts = self._planned.get(message_id)
        if counts is None or not areas:
            return ""
        for area in areas:
            members = self._members.get(area)
            if members and counts[area, areas[0], languages] == len(members):
                return area
        return ""
