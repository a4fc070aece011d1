"""SpeakerHub: the server-side API of the loudspeaker box protocol.

The hub knows every box (id, key, areas, transport), signs commands with the box's own key (or
an area key for MQTT area topics), routes them over the box's transport, verifies everything
boxes send, and turns it into one stream of events: ``BoxAck``, ``BoxStatus`` and
``BoxPresence``. It follows docs/protocols/speaker.md sections 2-4. The stream has one
consumer; events beyond ``event_queue_limit`` are dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Literal, Self

from drivers.speaker.codec import (
    AREA_PATTERN,
    ID_PATTERN,
    area_target,
    box_target,
    decode_box_message,
    encode_command,
)
from drivers.speaker.errors import (
    BoxOfflineError,
    SpeakerConfigError,
    SpeakerConnectionError,
    SpeakerProtocolError,
    UnknownBoxError,
)
from drivers.speaker.hub_link import HubLink
from drivers.speaker.hub_mqtt import MqttHubLink
from drivers.speaker.hub_serial import SerialBusMaster, SerialLineConfig
from drivers.speaker.hub_tcp import TcpHubLink
from drivers.speaker.messages import BoxAck, BoxHello, BoxPresence, BoxStatus, Command, HubEvent
from drivers.speaker.topics import DEFAULT_PREFIX, SpeakerTopics

log = logging.getLogger(__name__)

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
    """Where boxes connect to over TCP; ``ssl_context`` turns on TLS."""

    host: str = "0.0.0.0"  # noqa: S104 - boxes connect from other hosts
    port: int = 7700
    ssl_context: ssl.SSLContext | None = None
    hello_timeout_s: float = 10.0


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


class SpeakerHub:
    """Accepts boxes on TCP, serial lines and MQTT; sends commands; yields their events."""

    def __init__(self, config: SpeakerHubConfig, boxes: Iterable[BoxRegistration] = ()) -> None:
        self._config = config
        self._boxes: dict[str, BoxRegistration] = {}
        self._online: dict[str, str] = {}
        self._last_seen: dict[str, datetime] = {}
        self._events: asyncio.Queue[HubEvent] = asyncio.Queue(config.event_queue_limit)
        self.stats = HubStats()
        self._tcp = (
            TcpHubLink(
                self,
                config.tcp.host,
                config.tcp.port,
                config.tcp.ssl_context,
                config.tcp.hello_timeout_s,
            )
            if config.tcp
            else None
        )
        self._serial = {line.name: SerialBusMaster(self, line) for line in config.serial_lines}
        mqtt = config.mqtt
        self._mqtt = (
            MqttHubLink(
                self,
                mqtt.host,
                mqtt.port,
                SpeakerTopics(mqtt.prefix),
                mqtt.client_id,
                tls_context=mqtt.tls_context,
                connect_timeout_s=mqtt.connect_timeout_s,
                username=mqtt.username,
                password=mqtt.password,
                failover=mqtt.failover,
                publish_sessions=mqtt.publish_sessions,
            )
            if mqtt
            else None
        )
        self._started: list[HubLink] = []
        self._watchdog: asyncio.Task[None] | None = None
        for box in boxes:
            self.register(box)

    # -- lifecycle

    async def start(self) -> None:
        """Start every configured transport; on failure, stop those already started."""
        links: list[HubLink] = [*self._serial.values()]
        links += [link for link in (self._tcp, self._mqtt) if link is not None]
        try:
            for link in links:
                await link.start()
                self._started.append(link)
        except BaseException:
            await self.stop()
            raise
        self._watchdog = asyncio.get_running_loop().create_task(self._watch_heartbeats())

    async def stop(self) -> None:
        """Stop every transport; safe to call twice."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        while self._started:
            await self._started.pop().stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def tcp_port(self) -> int:
        """The bound TCP port; raises SpeakerConnectionError when TCP is not served."""
        if self._tcp is None:
            raise SpeakerConnectionError("the hub does not serve TCP")
        return self._tcp.port

    # -- the registry

    def register(self, box: BoxRegistration) -> None:
        """Add or replace a box; raises SpeakerConfigError if its serial line is unknown.

        Replacing a registration (new key, transport or address) drops the old connection.
        """
        old = self._boxes.get(box.box_id)
        if old is not None and old != box:
            self.unregister(box.box_id)
        if box.transport == "serial":
            line = self._serial.get(box.serial_line or "")
            if line is None:
                raise SpeakerConfigError(
                    f"box {box.box_id}: unknown serial line {box.serial_line!r}"
                )
            assert box.serial_address is not None
            line.add_box(box.box_id, box.serial_address)
        elif box.transport == "tcp" and self._tcp is None:
            raise SpeakerConfigError(f"box {box.box_id}: the hub does not serve TCP")
        elif box.transport == "mqtt" and self._mqtt is None:
            raise SpeakerConfigError(f"box {box.box_id}: the hub has no MQTT broker configured")
        self._boxes[box.box_id] = box

    def unregister(self, box_id: str) -> None:
        """Forget a box and close its connection."""
        box = self._boxes.get(box_id)
        if box is None:
            return
        self.presence(box_id, False, box.transport)
        self._link_of(box).drop(box_id)
        del self._boxes[box_id]
        self._last_seen.pop(box_id, None)

    def boxes_in_area(self, area_code: str) -> list[str]:
        """Ids of registered boxes in ``area_code``."""
        return sorted(b.box_id for b in self._boxes.values() if area_code in b.areas)

    def online_boxes(self) -> frozenset[str]:
        """Ids of boxes connected right now."""
        return frozenset(self._online)

    @property
    def online_count(self) -> int:
        """How many boxes are connected right now (cheap, unlike ``online_boxes``)."""
        return len(self._online)

    # -- commands

    def _link_of(self, box: BoxRegistration) -> HubLink:
        link: HubLink | None
        if box.transport == "serial":
            link = self._serial[box.serial_line or ""]
        else:
            link = self._tcp if box.transport == "tcp" else self._mqtt
        assert link is not None
        return link

    async def send_command(self, box_id: str, command: Command) -> None:
        """Sign ``command`` with the box's key and deliver it over the box's transport.

        Returns when the transport has it (TCP written, serial frame answered, MQTT PUBACK).
        Raises UnknownBoxError, BoxOfflineError, SpeakerTimeoutError, SpeakerConnectionError.
        """
        box = self._boxes.get(box_id)
        if box is None:
            raise UnknownBoxError(f"no box {box_id!r} is registered")
        await self.send_signed(box_id, encode_command(command, box_target(box_id), box.key))

    async def send_signed(self, box_id: str, data: bytes) -> None:
        """Deliver a command that was signed elsewhere (a signing service, a relay) as is.

        The box verifies it; the hub does not. Raises like ``send_command``.
        """
        box = self._boxes.get(box_id)
        if box is None:
            raise UnknownBoxError(f"no box {box_id!r} is registered")
        if box.transport != "mqtt" and box_id not in self._online:
            raise BoxOfflineError(f"box {box_id} is offline")
        await self._link_of(box).send(box_id, data)
        self.stats.commands_sent += 1

    async def send_area_command(self, area_code: str, command: Command) -> None:
        """Publish ``command`` once to an area's MQTT topic, signed with the area key.

        Raises SpeakerConfigError when MQTT or the area key is not configured.
        """
        mqtt = self._config.mqtt
        if self._mqtt is None or mqtt is None:
            raise SpeakerConfigError("area commands need an MQTT broker")
        key = mqtt.area_keys.get(area_code)
        if key is None:
            raise SpeakerConfigError(f"no key is configured for area {area_code!r}")
        await self._mqtt.send_area(area_code, encode_command(command, area_target(area_code), key))
        self.stats.commands_sent += 1

    # -- events

    async def events(self) -> AsyncIterator[HubEvent]:
        """Acks, heartbeats and presence changes, in arrival order, forever."""
        while True:
            yield await self._events.get()

    def _put(self, event: HubEvent) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.stats.events_dropped += 1

    def _key_of(self, box_id: str) -> bytes | None:
        box = self._boxes.get(box_id)
        return box.key if box else None

    def authenticate(self, hello: bytes) -> str:
        """Verify a TCP hello: a registered TCP box, a valid signature, a fresh time."""
        message = decode_box_message(hello, self._key_of)
        if not isinstance(message, BoxHello):
            raise SpeakerProtocolError(f"expected hello, got {message.kind}")
        box = self._boxes[message.box_id]
        if box.transport != "tcp":
            raise SpeakerProtocolError(f"box {box.box_id} is registered for {box.transport}")
        skew = abs(datetime.now(UTC) - message.at)
        if skew > timedelta(seconds=self._config.max_clock_skew_s):
            raise SpeakerProtocolError(f"box {box.box_id}: hello is {skew} off the hub's clock")
        return message.box_id

    def receive(self, box_id: str, data: bytes, transport: str) -> None:
        """Verify one message from a link and queue it as an event."""
        try:
            message = decode_box_message(data, self._key_of)
            if message.box_id != box_id:
                raise SpeakerProtocolError(f"message names box {message.box_id}, sent by {box_id}")
        except SpeakerProtocolError as exc:
            self.stats.messages_rejected += 1
            log.warning("rejected a message from box %s over %s: %s", box_id, transport, exc)
            return
        self.stats.messages_received += 1
        self._last_seen[box_id] = datetime.now(UTC)
        if box_id not in self._online and transport == "mqtt":
            self.presence(box_id, True, transport)
        if isinstance(message, BoxAck | BoxStatus):
            self._put(message)

    def link_lost(self, transport: str) -> None:
        """Every box online over ``transport`` goes offline (the broker session was lost)."""
        for box_id, over in list(self._online.items()):
            if over == transport:
                self.presence(box_id, False, transport)

    def presence(self, box_id: str, online: bool, transport: str) -> None:
        """Record a box coming or going and queue a BoxPresence event on change."""
        if box_id not in self._boxes or (box_id in self._online) == online:
            return
        now = datetime.now(UTC)
        if online:
            self._online[box_id] = transport
            self._last_seen[box_id] = now
        else:
            del self._online[box_id]
        self._put(BoxPresence(box_id=box_id, online=online, transport=transport, at=now))

    async def _watch_heartbeats(self) -> None:
        timeout = timedelta(seconds=self._config.heartbeat_timeout_s)
        while True:
            await asyncio.sleep(self._config.heartbeat_timeout_s / 4)
            horizon = datetime.now(UTC) - timeout
            for box_id, transport in list(self._online.items()):
                if self._last_seen.get(box_id, horizon) < horizon:
                    log.warning("box %s missed its heartbeats", box_id)
                    self.presence(box_id, False, transport)
                    self._link_of(self._boxes[box_id]).drop(box_id)
