"""Configuration of the box agent (``broadcaster-box``), read from TOML and validated once.

Every problem is reported as SpeakerConfigError naming the field. Keys are held as
``SecretKey``, which never shows its value in ``repr``, logs or ``--dump-config``. See
docs/protocols/speaker.md, section 6 for an annotated example.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.speaker.agent import BoxBehaviourConfig, BoxIdentity
from drivers.speaker.codec import AREA_PATTERN, CLIP_PATTERN, ID_PATTERN
from drivers.speaker.errors import SpeakerConfigError
from drivers.speaker.link_url import LinkAddress, parse_link_url, parse_link_urls
from drivers.speaker.player import DEFAULT_PLAYER_COMMAND
from drivers.speaker.serial_frames import MAX_ADDRESS, MIN_ADDRESS
from drivers.speaker.uplinks import MqttCredentials

MIN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class SecretKey:
    """A key that masks itself wherever it is shown."""

    value: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "SecretKey('********')"

    def __str__(self) -> str:
        return "********"

    @classmethod
    def from_hex(cls, text: str, where: str) -> SecretKey:
        try:
            value = bytes.fromhex(text.strip())
        except ValueError as exc:
            raise SpeakerConfigError(f"{where}: key must be hexadecimal") from exc
        if len(value) < MIN_KEY_BYTES:
            raise SpeakerConfigError(f"{where}: key must be at least {MIN_KEY_BYTES} bytes")
        return cls(value)


@dataclass(frozen=True, slots=True)
class BoxAgentConfig:
    """Everything ``broadcaster-box`` needs."""

    box_id: str
    key: SecretKey
    link: LinkAddress
    state_dir: Path
    area_keys: dict[str, SecretKey] = field(default_factory=dict)
    ca_file: Path | None = None
    player: tuple[str, ...] = DEFAULT_PLAYER_COMMAND
    serial_address: int | None = None
    behaviour: BoxBehaviourConfig = field(default_factory=BoxBehaviourConfig)
    mqtt_credentials: MqttCredentials | None = None
    mqtt_command_qos: int = 1

    @property
    def clips_dir(self) -> Path:
        return self.state_dir / "clips"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.json"

    def identity(self) -> BoxIdentity:
        return BoxIdentity(
            box_id=self.box_id,
            key=self.key.value,
            area_keys={code: key.value for code, key in self.area_keys.items()},
        )

    def dump(self) -> dict[str, Any]:
        """The configuration as plain data with every key masked."""
        return {
            "box_id": self.box_id,
            "key": str(self.key),
            "link": self.link,
            "state_dir": str(self.state_dir),
            "areas": {code: str(key) for code, key in self.area_keys.items()},
            "ca_file": str(self.ca_file) if self.ca_file else None,
            "player": list(self.player),
            "serial_address": self.serial_address,
            "behaviour": self.behaviour,
            "mqtt_username": self.mqtt_credentials.username if self.mqtt_credentials else None,
            "mqtt_password": "********" if self.mqtt_credentials else None,
            "mqtt_command_qos": self.mqtt_command_qos,
        }


def _get(raw: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = raw.get(name, default)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise SpeakerConfigError(f"{name}: expected {kind.__name__}, got {value!r}")
    return value


def _key(raw: dict[str, Any], base: Path) -> SecretKey:
    text, key_file = _get(raw, "key", str), _get(raw, "key_file", str)
    if (text is None) == (key_file is None):
        raise SpeakerConfigError("key: give exactly one of 'key' or 'key_file'")
    if key_file is not None:
        path = base / key_file
        try:
            text = path.read_text()
        except OSError as exc:
            raise SpeakerConfigError(f"key_file: cannot read {path}: {exc}") from exc
    return SecretKey.from_hex(text, "key")


def _mqtt_credentials(
    raw: dict[str, Any], base: Path, box_id: str, link: LinkAddress
) -> MqttCredentials | None:
    """The broker login: ``mqtt_password`` or ``mqtt_password_file``, and ``mqtt_username``
    (default ``box-<box_id>``, the box's client id)."""
    username = _get(raw, "mqtt_username", str)
    password, password_file = _get(raw, "mqtt_password", str), _get(raw, "mqtt_password_file", str)
    if password is not None and password_file is not None:
        raise SpeakerConfigError("mqtt_password: give 'mqtt_password' or 'mqtt_password_file'")
    if password_file is not None:
        path = base / password_file
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SpeakerConfigError(f"mqtt_password_file: cannot read {path}: {exc}") from exc
    if password is None:
        if username is not None:
            raise SpeakerConfigError("mqtt_username: needs mqtt_password or mqtt_password_file")
        return None
    if link.scheme not in ("mqtt", "mqtts"):
        raise SpeakerConfigError(f"mqtt_password: the link is {link.scheme}, not MQTT")
    return MqttCredentials(username or f"box-{box_id}", password)


def _command_qos(raw: dict[str, Any], link: LinkAddress) -> int:
    """``mqtt_command_qos``: the QoS of the command subscriptions, 1 (the broker queues
    commands while the box is away) or 0 (it does not; for a NATS cluster, where a QoS 1
    subscription costs a replicated consumer per box: the server sends again what the box
    has not acknowledged when it is back)."""
    qos: int | None = _get(raw, "mqtt_command_qos", int)
    if qos is None:
        return 1
    if qos not in (0, 1):
        raise SpeakerConfigError(f"mqtt_command_qos: must be 0 or 1, got {qos}")
    if link.scheme not in ("mqtt", "mqtts"):
        raise SpeakerConfigError(f"mqtt_command_qos: the link is {link.scheme}, not MQTT")
    return qos


def _link(value: Any) -> LinkAddress:
    """``link``: one URL, or a list of MQTT URLs naming the nodes of a broker cluster."""
    if value is None:
        raise SpeakerConfigError("link: required, e.g. tcp://server:7700")
    if isinstance(value, str):
        return parse_link_url(value)
    if isinstance(value, list) and all(isinstance(url, str) for url in value):
        return parse_link_urls(value)
    raise SpeakerConfigError(f"link: expected a URL or a list of URLs, got {value!r}")


def parse_agent_config(raw: dict[str, Any], base: Path = Path()) -> BoxAgentConfig:
    """Validate a parsed TOML document; relative paths are taken from ``base``."""
    known = {
        "box_id", "key", "key_file", "link", "state_dir", "areas", "ca_file", "player",
        "serial_address", "default_volume", "fallback_clip", "heartbeat_s", "max_clock_skew_s",
        "mqtt_username", "mqtt_password", "mqtt_password_file", "mqtt_command_qos",
    }  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpeakerConfigError(f"unknown settings: {', '.join(unknown)}")
    box_id = _get(raw, "box_id", str)
    if box_id is None or not ID_PATTERN.fullmatch(box_id):
        raise SpeakerConfigError(f"box_id: {box_id!r} must match {ID_PATTERN.pattern}")
    link = _link(raw.get("link"))
    areas_raw = _get(raw, "areas", dict, {})
    area_keys: dict[str, SecretKey] = {}
    for code, text in areas_raw.items():
        if not AREA_PATTERN.fullmatch(code) or not isinstance(text, str):
            raise SpeakerConfigError(f"areas: {code!r} must map an area code to a hex key")
        area_keys[code] = SecretKey.from_hex(text, f"areas.{code}")
    player = _get(raw, "player", list, list(DEFAULT_PLAYER_COMMAND))
    if not player or not all(isinstance(a, str) for a in player):
        raise SpeakerConfigError("player: must be a list of strings")
    if not any("{path}" in a for a in player):
        raise SpeakerConfigError("player: one argument must contain {path}")
    address = _get(raw, "serial_address", int)
    if link.scheme == "serial" and (address is None or not MIN_ADDRESS <= address <= MAX_ADDRESS):
        raise SpeakerConfigError(f"serial_address: required in {MIN_ADDRESS}..{MAX_ADDRESS}")
    volume = _get(raw, "default_volume", int, 80)
    if not 0 <= volume <= 100:
        raise SpeakerConfigError("default_volume: must be 0..100")
    fallback = _get(raw, "fallback_clip", str)
    if fallback is not None and not CLIP_PATTERN.fullmatch(fallback):
        raise SpeakerConfigError(f"fallback_clip: {fallback!r} is not a valid clip id")
    heartbeat = _get(raw, "heartbeat_s", float, 30.0)
    skew = _get(raw, "max_clock_skew_s", float, 300.0)
    if heartbeat <= 0 or skew <= 0:
        raise SpeakerConfigError("heartbeat_s and max_clock_skew_s must be positive")
    state_dir = _get(raw, "state_dir", str, "/var/lib/broadcaster-box")
    ca_file = _get(raw, "ca_file", str)
    return BoxAgentConfig(
        box_id=box_id,
        key=_key(raw, base),
        link=link,
        state_dir=base / state_dir,
        area_keys=area_keys,
        ca_file=base / ca_file if ca_file else None,
        player=tuple(player),
        serial_address=address,
        mqtt_credentials=_mqtt_credentials(raw, base, box_id, link),
        mqtt_command_qos=_command_qos(raw, link),
        behaviour=BoxBehaviourConfig(
            default_volume=volume,
            fallback_clip=fallback,
            heartbeat_s=heartbeat,
            max_clock_skew_s=skew,
        ),
    )


def load_agent_config(path: Path) -> BoxAgentConfig:
    """Read and validate a TOML file; raises SpeakerConfigError."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpeakerConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpeakerConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_agent_config(raw, path.parent)
