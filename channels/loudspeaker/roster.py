"""The loudspeaker channel's boxes: each target's box registration (docs/protocols/speaker.md
section 2: a box's id, transport and key), registered with the hub once, and its group areas;
the keys that sign commands to a box or an area; and the check that the process may open a
file for every box.

A target's registration and areas are kept until the target changes, so a fan-out looks each
box up once; an area's key is looked up once and kept, its absence too (a box then takes its
own commands, not the group's).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Collection, Iterable

from broadcaster.delivery import Target
from channels.loudspeaker import boxes
from channels.loudspeaker.config import LoudspeakerChannelConfig
from channels.loudspeaker.groups import PlannedAreas
from channels.loudspeaker.views import BoxViews
from drivers.speaker import BoxRegistration, SpeakerError, SpeakerHub

log = logging.getLogger(__name__)

FILES_SPARE = 256
"""Open files the rest of the server needs beside the boxes' (store, logs, API clients)."""

GroupMember = tuple[str, tuple[str, ...], tuple[str, ...], str]
"""A box as :meth:`~channels.loudspeaker.groups.PlannedAreas.record` takes it: its id, group
areas, languages and transport."""


class BoxRoster:
    """The boxes a channel knows; ``views`` hears of each box registered, ``planned`` of each
    MQTT box's group areas."""

    def __init__(
        self, config: LoudspeakerChannelConfig, views: BoxViews, planned: PlannedAreas
    ) -> None:
        self._config = config
        self._views = views
        self._planned = planned
        self._keyring = boxes.BoxKeyring({}, None)
        self._area_keys: dict[str, bytes | None] = {}
        self._registered: dict[str, BoxRegistration] = {}
        self._targets: dict[str, tuple[Target, BoxRegistration, tuple[str, ...]]] = {}
        self._targets_of_box: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._registered)

    def reset(self, keyring: boxes.BoxKeyring) -> None:
        """Forget every box, for a new hub and ``keyring`` (registrations carry keys)."""
        self._keyring = keyring
        self._area_keys.clear()
        self._targets.clear()
        self._registered.clear()

    def registrations(self) -> Collection[BoxRegistration]:
        """Every box registered."""
        return self._registered.values()

    def targets_of(self, box_id: str) -> Iterable[str]:
        """The ids of the targets that name ``box_id``."""
        return self._targets_of_box.get(box_id, ())

    def register(self, hub: SpeakerHub, target: Target) -> tuple[BoxRegistration, tuple[str, ...]]:
        """The target's box, registered with the hub, and its group areas (both kept per
        target until the target changes)."""
        known = self._known(target)
        if known is not None:
            return known
        box = boxes.registration(target, self._config, self._keyring)
        areas = self._areas_with_keys(target)
        self._targets[target.id] = (target, box, areas)
        self._targets_of_box.setdefault(box.box_id, set()).add(target.id)
        if self._registered.get(box.box_id) != box:
            try:
                hub.register(box)
            except SpeakerError as exc:
                raise boxes.BoxRegistryError(str(exc)) from exc
            self._registered[box.box_id] = box
            self._views.known(box.box_id, box.transport)
            if box.transport == "mqtt":
                self._planned.member(box.box_id, areas)
        return box, areas

    def _known(self, target: Target) -> tuple[BoxRegistration, tuple[str, ...]] | None:
        """The registration and group areas kept for ``target``, unless it changed since."""
        known = self._targets.get(target.id)
        if known is None or (known[0] is not target and known[0] != target):
            return None
        return known[1], known[2]

    def _areas_with_keys(self, target: Target) -> tuple[str, ...]:
        """The box's group areas when the server holds their keys, else none."""
        areas = boxes.group_areas(target)
        return areas if all(self.area_key(area) for area in areas) else ()

    def group_areas(self, target: Target) -> tuple[str, ...]:
        """The target's group areas, as kept for it or as registering it would find them."""
        known = self._known(target)
        return known[1] if known is not None else self._areas_with_keys(target)

    def command_key(self, target: str) -> bytes | None:
        """The key that signs commands to ``target`` (``box:<id>`` of a registered box, or
        ``area:<code>`` of an area a registered box takes group commands for), else None."""
        kind, _, name = target.partition(":")
        if kind == "box":
            box = self._registered.get(name)
            return box.key if box is not None else None
        return self._area_keys.get(name) if kind == "area" else None

    def area_key(self, area: str) -> bytes | None:
        """The key of ``area``'s group commands, None when the server holds none."""
        if area not in self._area_keys:
            try:
                self._area_keys[area] = self._keyring.area_key(area)
            except boxes.BoxRegistryError:
                self._area_keys[area] = None
        return self._area_keys[area]

    def group_member(self, target: Target) -> GroupMember:
        """A box as :meth:`PlannedAreas.record` takes it."""
        transport = str(target.params.get("transport", self._config.default_transport))
        areas = self.group_areas(target)
        return boxes.box_id_of(target), areas, tuple(target.languages), transport

    def check_open_files(self, channel: str) -> None:
        """Warn when this process may open fewer files than an alert to every box needs: a
        socket for each box's download, and one for each box connected over TCP."""
        registered = self._registered.values()
        needed = len(registered) + sum(b.transport == "tcp" for b in registered) + FILES_SPARE
        allowed = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if allowed != resource.RLIM_INFINITY and allowed < needed:
            log.warning(
                "channel %s: an alert to every box may need %d open files (boxes: %d; a download"
                " each, a connection each over TCP), but this process may open only %d: the boxes"
                " beyond would stay silent; raise LimitNOFILE in the server's unit"
                " (systemd/broadcaster.service sets 1048576)",
                channel,
                needed,
                len(registered),
                allowed,
            )
