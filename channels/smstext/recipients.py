"""Who an SMS delivery goes to: the numbers of a subscriber group, one delivery per number.

A registry target of an SMS channel is a group (village information officers of one township,
the officials of a county) whose ``address`` is a comma-separated list of numbers; a target
with a single number is a group of one. The channel plans one delivery per (number, language):
``part`` is the number's place in ``address`` (1 = the first entry; the outbox keeps the target
as it was when the alert was planned, so the part always points at the same number) plus
``LANGUAGE_STRIDE`` times the language's place among the group's languages the alert has.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from broadcaster.channel import AlertMessage, ChannelHealth, PlannedDelivery, ProbeResult
from broadcaster.delivery import Target
from broadcaster.errors import TargetRejectedError
from drivers.gsm import GsmInvalidNumberError, normalize_number

LANGUAGE_STRIDE = 10_000
"""``part`` = the number's place in its group + this × the language's place: a group holds
fewer numbers, and the first language keeps the plain place."""


@dataclass(frozen=True, slots=True)
class GroupEntry:
    """One entry of a group's ``address``: its 1-based part and its number, or why not."""

    part: int
    number: str | None
    error: str | None


def group_entries(target: Target) -> list[GroupEntry]:
    """The entries of a group's ``address`` in order; invalid ones carry their error."""
    return list(_entries(target.address))


@functools.lru_cache(maxsize=1024)
def _entries(address: str) -> tuple[GroupEntry, ...]:
    """Parsed once per group: a send to each of a thousand members reads the same address."""
    entries = []
    for index, raw in enumerate(address.split(","), start=1):
        cleaned = raw.strip()
        if not cleaned:
            continue
        try:
            entries.append(GroupEntry(index, normalize_number(cleaned), None))
        except GsmInvalidNumberError as exc:
            entries.append(GroupEntry(index, None, str(exc)))
    return tuple(entries)


@functools.lru_cache(maxsize=1024)
def _by_part(address: str) -> dict[int, GroupEntry]:
    return {entry.part: entry for entry in _entries(address)}


def plan_numbers(message: AlertMessage, candidates: Sequence[Target]) -> list[PlannedDelivery]:
    """One delivery per (group, number, language).

    Each of the group's languages the alert has gets its own SMS (an alert in none of them:
    its first language). A number already planned in an earlier group of the same alert, in
    the same language, is not planned twice. An empty or oversized group still gets one
    delivery, which fails with a clear error, so it shows on the board instead of vanishing.
    """
    planned: list[PlannedDelivery] = []
    seen: set[tuple[str, str]] = set()
    for group in candidates:
        entries = _entries(group.address)
        if not entries or len(entries) >= LANGUAGE_STRIDE:
            planned.append(PlannedDelivery(target=group))
            continue
        texts = message.rendition.for_languages(group.languages)
        for entry in entries:
            for index, text in enumerate(texts):
                if entry.number is not None:
                    if (entry.number, text.language) in seen:
                        continue
                    seen.add((entry.number, text.language))
                planned.append(
                    PlannedDelivery(target=group, part=entry.part + LANGUAGE_STRIDE * index)
                )
    return planned


def recipient(target: Target, part: int) -> GroupEntry:
    """The group entry a delivery is for; TargetRejectedError if there is none."""
    part %= LANGUAGE_STRIDE
    entries = _entries(target.address)
    label = f"group {target.id} ({target.name})"
    if not entries:
        raise TargetRejectedError(f"{label} has no numbers; nothing sent")
    if len(entries) >= LANGUAGE_STRIDE:
        raise TargetRejectedError(
            f"{label} has {len(entries)} numbers, over {LANGUAGE_STRIDE - 1} in one group:"
            " split it; nothing sent"
        )
    if part == 0:
        if len(entries) > 1:
            raise TargetRejectedError(
                f"{label} has {len(entries)} numbers: deliveries must be planned per number"
            )
        entry = entries[0]
    else:
        found = _by_part(target.address).get(part)
        if found is None:
            raise TargetRejectedError(f"{label} has no entry {part}")
        entry = found
    if entry.number is None:
        raise TargetRejectedError(f"{label}, entry {entry.part}: {entry.error}; nothing sent")
    return entry


def count_numbers(planned: Sequence[PlannedDelivery]) -> int:
    """Recipients: the distinct numbers the deliveries go to."""
    numbers: set[str] = set()
    for delivery in planned:
        place = delivery.part % LANGUAGE_STRIDE
        if place:
            entry = _by_part(delivery.target.address).get(place)
            if entry is not None and entry.number:
                numbers.add(entry.number)
        else:
            numbers.update(e.number for e in _entries(delivery.target.address) if e.number)
    return len(numbers)


def probe_group(target: Target, health: ChannelHealth) -> ProbeResult:
    """A silent check of a group: it has numbers, all valid, and the channel is up."""
    entries = _entries(target.address)
    bad = [e for e in entries if e.number is None]
    if not entries:
        return ProbeResult(ok=False, detail=f"group {target.id} has no numbers")
    if bad:
        return ProbeResult(ok=False, detail=f"entry {bad[0].part}: {bad[0].error}")
    return ProbeResult(ok=health.ok, detail=f"{len(entries)} numbers; {health.detail}")
