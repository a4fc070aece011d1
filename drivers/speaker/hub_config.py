"""The settings of a ``SpeakerHub`` (docs/protocols/speaker.md sections 2.2 and 4): the boxes
it knows, where boxes connect over TCP, the MQTT broker and its area keys, and the hub's
counters."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from drivers.speaker.codec import AREA_PATTERN, ID_PATTERN
from drivers.speaker.errors import SpeakerConfigError
from drivers.speaker.hub_serial import SerialLineConfig
from drivers.speaker.topics import DEFAULT_PREFIX, SpeakerTopics

Transport = Literal["tcp", "serial", "mqtt"]


@dataclass(frozen=True, slots=True)
class BoxRegistration:
    """One box as the hub knows it. ``serial_line``/``serial_address`` only for serial boxes."""

    box_id: str
    key: bytes = field(repr=False)
    transport: Transport
    areas: frozenset[str] = frozenset()
    serial_line: str | None = None
    serial_address: int | None = None

    def __post_init__(self) -> None:
        if not ID_PATTERN.fullmatch(self.box_id):
            raise SpeakerConfigError(f"invalid box id {self.box_id!r}")
        bad_areas = sorted(a for a in self.areas if not AREA_PATTERN.fullmatch(a))
        if bad_areas:
            raise SpeakerConfigError(f"box {self.box_id}: invalid area codes {bad_areas}")
        if len(self.key) < 16:
            raise SpeakerConfigError(f"box {self.box_id}: key must be at least 16 bytes")
        if self.transport == "serial" and (self.serial_line is None or self.serial_address is None):
            raise SpeakerConfigError(f"box {self.box_id}: serial boxes need a line and an address")


@dataclass(frozen=True, slots=True)
class TcpListenConfig:
    """Where boxes connect to over TCP; ``ssl_context`` turns on TLS. At most
    ``max_pending_hellos`` connections may await their hello at once: more are closed at once.
    ``hello_state_file`` keeps the boxes' last accepted hellos across restarts, so that none
    can be replayed after one (``drivers.speaker.hello_replay``); None: kept in memory only."""

    host: str = "0.0.0.0"  # noqa: S104 - boxes connect from other hosts
    port: int = 7700
    ssl_context: ssl.SSLContext | None = None
    hello_timeout_s: float = 10.0
    max_pending_hellos: int = 256
    hello_state_file: Path | None = None


@dataclass(frozen=True, slots=True)
class MqttBrokerConfig:
    """The broker and topic prefix; ``area_keys`` sign area-topic commands.

    The hub's session is persistent under ``client_id`` (unique per server on a broker): what
    boxes report while the server is away waits at the broker. ``username``/``password`` log
    in to brokers that require it. ``failover`` lists the other nodes of a broker cluster
    (the session moves on to the next when it loses one); ``publish_sessions`` more connections
    spread over the nodes carry the commands (0: the session itself publishes).
    """

    host: str = "localhost"
    port: int = 1883
    prefix: str = DEFAULT_PREFIX
    tls_context: ssl.SSLContext | None = None
    area_keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    connect_timeout_s: float = 10.0
    client_id: str = "broadcaster-hub"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    failover: tuple[tuple[str, int], ...] = ()
    publish_sessions: int = 0

    def __post_init__(self) -> None:
        SpeakerTopics(self.prefix)
        bad_areas = sorted(a for a in self.area_keys if not AREA_PATTERN.fullmatch(a))
        if bad_areas:
            raise SpeakerConfigError(f"MQTT area keys: invalid area codes {bad_areas}")


@dataclass(frozen=True, slots=True)
class SpeakerHubConfig:
    """Which transports the hub serves and how long a silent box counts as online."""

    tcp: TcpListenConfig | None = None
    serial_lines: tuple[SerialLineConfig, ...] = ()
    mqtt: MqttBrokerConfig | None = None
    heartbeat_timeout_s: float = 90.0
    max_clock_skew_s: float = 300.0
    event_queue_limit: int = 100_000


@dataclass(slots=True)
class HubStats:
    """Counters for health pages and benchmarks."""

    commands_sent: int = 0
    messages_received: int = 0
    messages_rejected: int = 0
    events_dropped: int = 0
