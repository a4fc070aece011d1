"""The box registry of the ``loudspeaker`` channel: the channel's targets and keys into hub
registrations.

A box is a target of the channel in the server's target registry (``[registry] targets``). Its
``address`` is the box id (the target id when empty); its ``division`` is its area; ``params``
may set ``transport`` (``tcp``, ``serial``, ``mqtt``; default from the configuration),
``serial_line`` and ``serial_address``, and ``group_areas``: the area codes (widest first)
whose keys the box holds and whose MQTT topics it subscribes to, for group commands
(:mod:`channels.loudspeaker.groups`; absent: the box knows only its own key). Its key is the
hex entry for the box id in ``key_file`` or, failing that, HMAC-SHA256 of the UTF-8
``master_secret`` over ``box:<box id>`` (docs/protocols/speaker.md section 2.2); an area's
key is the entry ``area:<code>`` in ``key_file``, else HMAC-SHA256 of ``master_secret`` over
``area:<code>``. Problems are ``BoxRegistryError`` naming the box and what is wrong.

``simulate = true`` (demos) runs the registry's boxes as in-process simulated boxes
(``start_fleet``): each is the real box agent (``drivers.speaker.SpeakerFleetSimulator``) with a
recording player, connected over TCP on loopback to the channel's own hub, with the box id and
areas of its registry target (division and group areas) and the keys derived from
``master_secret``. Boxes download audio from the server like real ones; playback is simulated
(``simulated_play_seconds``). At most ``simulated_boxes_max`` boxes are simulated (the first
of the registry); the rest stay offline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from broadcaster.delivery import Target
from broadcaster.errors import ConfigError
from channels.loudspeaker.config import LoudspeakerChannelConfig
from drivers.speaker import (
    BoxRegistration,
    FleetSimulatorConfig,
    SpeakerConfigError,
    SpeakerFleetSimulator,
)
from drivers.speaker.codec import AREA_PATTERN, derive_key

_MIN_KEY_BYTES = 16
#: How long the demo waits for its simulated boxes to connect before serving anyway.
_CONNECT_WITHIN_S = 30.0

log = logging.getLogger(__name__)


class BoxRegistryError(ConfigError):
    """A box cannot be registered: bad key file, missing key, bad transport settings."""


def read_key_file(path: Path) -> dict[str, bytes]:
    """``{"<box id>": "<hex key>"}`` from a JSON file; raises BoxRegistryError."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BoxRegistryError(f"key_file: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise BoxRegistryError(f"key_file: {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, Mapping):
        raise BoxRegistryError(f"key_file: {path} must hold an object of box id to hex key")
    keys: dict[str, bytes] = {}
    for box_id, text in doc.items():
        try:
            key = bytes.fromhex(str(text))
        except ValueError:
            raise BoxRegistryError(f"key_file: key of box {box_id!r} is not hex") from None
        if len(key) < _MIN_KEY_BYTES:
            raise BoxRegistryError(f"key_file: key of box {box_id!r} is under 16 bytes")
        keys[str(box_id)] = key
    return keys


def box_id_of(target: Target) -> str:
    """The box id of a target: its address, else its id."""
    return target.address or target.id


class BoxKeyring:
    """Keys of boxes: explicit ones first, then derived from the master secret."""

    def __init__(self, keys: Mapping[str, bytes], master_secret: bytes | None) -> None:
        self._keys = dict(keys)
        self._secret = master_secret

    def key(self, box_id: str) -> bytes:
        key = self._keys.get(box_id)
        if key is not None:
            return key
        if self._secret is None:
            raise BoxRegistryError(f"box {box_id}: no key in key_file and no master_secret")
        return derive_key(self._secret, f"box:{box_id}")

    def area_key(self, code: str) -> bytes:
        """The key of area ``code`` (``area:<code>`` in ``key_file``, else derived)."""
        return self.key(f"area:{code}") if f"area:{code}" in self._keys else self._area(code)

    def _area(self, code: str) -> bytes:
        if self._secret is None:
            raise BoxRegistryError(f"area {code}: no key in key_file and no master_secret")
        return derive_key(self._secret, f"area:{code}")


def load_keyring(settings: LoudspeakerChannelConfig, data_dir: Path) -> BoxKeyring:
    """The keyring of a channel's settings (reads ``key_file``; blocking)."""
    keys: dict[str, bytes] = {}
    if settings.key_file is not None:
        keys = read_key_file(resolve(settings.key_file, data_dir))
    secret = settings.master_secret
    return BoxKeyring(keys, secret.reveal().encode() if secret is not None else None)


def resolve(path: Path, data_dir: Path) -> Path:
    return path if path.is_absolute() else data_dir / path


def group_areas(target: Target) -> tuple[str, ...]:
    """The areas whose keys a box holds, widest first (empty: none); raises
    BoxRegistryError when ``group_areas`` is not a list of area codes."""
    given = target.params.get("group_areas", ())
    if not isinstance(given, list | tuple) or not all(
        isinstance(a, str) and AREA_PATTERN.fullmatch(a) for a in given
    ):
        raise BoxRegistryError(f"box {box_id_of(target)}: group_areas must list area codes")
    return tuple(given)


def registration(
    target: Target, settings: LoudspeakerChannelConfig, keyring: BoxKeyring
) -> BoxRegistration:
    """The hub registration of a target; raises BoxRegistryError naming the problem."""
    box_id = box_id_of(target)
    params = target.params
    transport = str(params.get("transport", settings.default_transport))
    if transport not in ("tcp", "serial", "mqtt"):
        raise BoxRegistryError(f"box {box_id}: unknown transport {transport!r}")
    address = params.get("serial_address")
    if address is not None and not isinstance(address, int):
        raise BoxRegistryError(f"box {box_id}: serial_address must be an integer")
    line = params.get("serial_line")
    if transport == "serial" and line is None and len(settings.serial_lines) == 1:
        line = settings.serial_lines[0].name
    try:
        return BoxRegistration(
            box_id=box_id,
            key=keyring.key(box_id),
            transport=transport,  # type: ignore[arg-type]
            areas=frozenset(a for a in (target.division, *group_areas(target)) if a),
            serial_line=str(line) if line is not None else None,
            serial_address=address,
        )
    except SpeakerConfigError as exc:
        raise BoxRegistryError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class RegistryFleetConfig(FleetSimulatorConfig):
    """A fleet whose boxes carry the ids and areas of registry targets."""

    box_ids: tuple[str, ...] = ()
    box_areas: tuple[str, ...] = ()
    box_group_areas: tuple[tuple[str, ...], ...] = ()

    def box_id(self, index: int) -> str:
        return self.box_ids[index]

    def area_of(self, index: int) -> str:
        return self.box_areas[index]

    def keyed_areas_of(self, index: int) -> tuple[str, ...]:
        extra = self.box_group_areas[index] if self.box_group_areas else ()
        return (self.box_areas[index], *extra)


async def start_fleet(
    boxes: list[BoxRegistration],
    port: int,
    secret: bytes,
    work_dir: Path,
    play_seconds: float,
) -> SpeakerFleetSimulator:
    """Start simulated boxes for ``boxes`` (TCP ones) against a hub on 127.0.0.1:``port``."""
    areas = tuple(min(b.areas) if b.areas else "demo" for b in boxes)
    config = RegistryFleetConfig(
        url=f"tcp://127.0.0.1:{port}",
        fleet_secret=secret,
        boxes=len(boxes),
        areas=tuple(sorted(set(areas))),
        work_dir=work_dir,
        persist_journals=True,
        play_seconds=play_seconds,
        heartbeat_s=30.0,
        box_ids=tuple(b.box_id for b in boxes),
        box_areas=areas,
        box_group_areas=tuple(tuple(sorted(b.areas)) for b in boxes),
    )
    began = time.monotonic()
    fleet = SpeakerFleetSimulator(config)
    await fleet.start()
    try:
        await fleet.wait_connected(_CONNECT_WITHIN_S)
    except TimeoutError:
        log.warning(
            "simulated loudspeaker boxes: not all connected within %.0f s", _CONNECT_WITHIN_S
        )
    log.info(
        "simulated loudspeaker boxes: %d connected in %.2f s",
        len(boxes),
        time.monotonic() - began,
    )
    return fleet
