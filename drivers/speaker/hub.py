"""SpeakerHub: the server-side API of the loudspeaker box protocol.

The hub knows every box (id, key, areas, transport), signs commands with the box's own key (or
an area key for MQTT area topics), routes them over the box's transport, verifies everything
boxes send, and turns it into one stream of events: ``BoxAck``, ``BoxStatus`` and
``BoxPresence`` (online again, too, when a box counted online starts a new MQTT session: a
broker node that died could not publish its last will). It follows docs/protocols/speaker.md
sections 2-4. The stream has one consumer; events beyond ``event_queue_limit`` are dropped and
counted. A consumer that keeps up with the wire may ``listen`` instead and get each event as it
is received. A command signed for an area (a group command) goes out as the same bytes to many
boxes (``send_same``) or as one publish to the area's MQTT topic (``publish_area``);
``retain`` leaves a retained message under the MQTT prefix (sealed audio, section 5.1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from drivers.speaker.codec import (
    area_target,
    box_target,
    decode_box_message,
    encode_command,
)
from drivers.speaker.codec_ack import decode_box_line
from drivers.speaker.errors import (
    BoxOfflineError,
    SpeakerConfigError,
    SpeakerConnectionError,
    SpeakerError,
    SpeakerProtocolError,
    UnknownBoxError,
)
from drivers.speaker.hello_replay import HelloReplayGuard
from drivers.speaker.hub_config import (
    BoxRegistration,
    HubStats,
    MqttBrokerConfig,
    SpeakerHubConfig,
    TcpListenConfig,
    Transport,
)
from drivers.speaker.hub_link import HubLink
from drivers.speaker.hub_mqtt import MqttHubLink
from drivers.speaker.hub_serial import SerialBusMaster
from drivers.speaker.hub_tcp import TcpHubLink
from drivers.speaker.messages import BoxAck, BoxHello, BoxPresence, BoxStatus, Command, HubEvent
from drivers.speaker.topics import SpeakerTopics

__all__ = [
    "BoxRegistration",
    "HubStats",
    "MqttBrokerConfig",
    "SpeakerHub",
    "SpeakerHubConfig",
    "TcpListenConfig",
    "Transport",
]

log = logging.getLogger(__name__)


class SpeakerHub:
    """Accepts boxes on TCP, serial lines and MQTT; sends commands; yields their events."""

    def __init__(self, config: SpeakerHubConfig, boxes: Iterable[BoxRegistration] = ()) -> None:
        self._config = config
        self._boxes: dict[str, BoxRegistration] = {}
        self._online: dict[str, str] = {}
        self._last_seen: dict[str, float] = {}
        """When each box was last heard, on the monotonic clock."""
        self._events: asyncio.Queue[HubEvent] = asyncio.Queue(config.event_queue_limit)
        self._listener: Callable[[HubEvent], None] | None = None
        self._hellos = HelloReplayGuard(
            timedelta(seconds=config.max_clock_skew_s),
            config.tcp.hello_state_file if config.tcp else None,
        )
        self.stats = HubStats()
        self._tcp = (
            TcpHubLink(
                self,
                config.tcp.host,
                config.tcp.port,
                config.tcp.ssl_context,
                config.tcp.hello_timeout_s,
                config.tcp.max_pending_hellos,
                hellos=self._hellos,
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

    def last_heard(self, box_id: str) -> float | None:
        """When a verified message from the box last arrived, in seconds since the epoch
        (None if none has since the hub started)."""
        seen = self._last_seen.get(box_id)
        return None if seen is None else time.time() - (time.monotonic() - seen)

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

    async def send_same(self, box_ids: Sequence[str], data: bytes) -> list[SpeakerError | None]:
        """Deliver the same signed bytes (a command for an area whose key every one of the
        boxes holds) to each box over its transport, as ``send_each`` does."""
        return await self.send_each([(box_id, data) for box_id in box_ids])

    async def send_each(self, commands: Sequence[tuple[str, bytes]]) -> list[SpeakerError | None]:
        """Deliver each (box id, signed bytes) over the box's transport: one write per TCP
        connection, one publish per MQTT box topic, all at once. Returns, per command and in
        order, None when its box's transport has it, else the error ``send_signed`` would
        raise."""
        results: list[SpeakerError | None] = [None] * len(commands)
        waiting: list[tuple[int, Awaitable[None]]] = []
        for index, (box_id, data) in enumerate(commands):
            box = self._boxes.get(box_id)
            if box is None:
                results[index] = UnknownBoxError(f"no box {box_id!r} is registered")
            elif box.transport != "mqtt" and box_id not in self._online:
                results[index] = BoxOfflineError(f"box {box_id} is offline")
            elif box.transport == "tcp" and self._tcp is not None:
                try:
                    self._tcp.write(box_id, data)
                except SpeakerError as exc:
                    results[index] = exc
            else:
                waiting.append((index, self._link_of(box).send(box_id, data)))
        outcomes = await asyncio.gather(*(job for _, job in waiting), return_exceptions=True)
        for (index, _), outcome in zip(waiting, outcomes, strict=True):
            if isinstance(outcome, SpeakerError):
                results[index] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
        self.stats.commands_sent += results.count(None)
        return results

    async def publish_area(self, area_code: str, data: bytes) -> None:
        """Publish bytes signed elsewhere (with the area's key) once to the area's MQTT
        topic; returns once the broker has them. Raises SpeakerConfigError without MQTT,
        SpeakerConnectionError when the broker does not take them."""
        if self._mqtt is None:
            raise SpeakerConfigError("area commands need an MQTT broker")
        await self._mqtt.send_area(area_code, data)
        self.stats.commands_sent += 1

    @property
    def mqtt_topics(self) -> SpeakerTopics | None:
        """The topics of the hub's MQTT link; None when it has none."""
        return self._mqtt.topics if self._mqtt is not None else None

    async def retain(self, topic: str, payload: bytes) -> None:
        """Leave ``payload`` as the retained message of ``topic``, a topic under the MQTT
        link's prefix (an empty payload deletes it); returns once the broker has it. Raises
        SpeakerConfigError without MQTT or for a topic elsewhere, SpeakerConnectionError when
        the broker does not take it."""
        if self._mqtt is None:
            raise SpeakerConfigError("retained messages need an MQTT broker")
        if not topic.startswith(f"{self._mqtt.topics.prefix}/"):
            raise SpeakerConfigError(f"topic {topic!r} is not under the hub's MQTT prefix")
        await self._mqtt.retain(topic, payload)

    async def send_area_command(self, area_code: str, command: Command) -> None:
        """Publish ``command`` once to an area's MQTT topic, signed with the area key.
        Raises SpeakerConfigError when MQTT or the area key is not configured."""
        mqtt = self._config.mqtt
        key = mqtt.area_keys.get(area_code) if mqtt is not None else None
        if key is None:
            raise SpeakerConfigError(f"no MQTT broker or key is configured for area {area_code!r}")
        await self.publish_area(area_code, encode_command(command, area_target(area_code), key))

    # -- events

    async def events(self) -> AsyncIterator[HubEvent]:
        """Acks, heartbeats and presence changes, in arrival order, forever."""
        while True:
            yield await self._events.get()

    def listen(self, listener: Callable[[HubEvent], None] | None) -> None:
        """Hand every event to ``listener`` as it happens, in place of ``events()`` (one queue
        and task switch fewer per ack); None goes back to the queue. The listener must not
        block; what it raises is logged. Events queued before it listens are handed to it
        first: a broker hands over what it kept for the hub's session (acks of boxes that
        finished while the server was away) while :meth:`start` still runs."""
        self._listener = listener
        while listener is not None and not self._events.empty():
            self._put(self._events.get_nowait())

    def _put(self, event: HubEvent) -> None:
        if self._listener is not None:
            try:
                self._listener(event)
            except Exception:
                log.exception("the hub's event listener failed on %r", event)
            return
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.stats.events_dropped += 1

    def _key_of(self, box_id: str) -> bytes | None:
        box = self._boxes.get(box_id)
        return box.key if box else None

    def authenticate(self, hello: bytes) -> str:
        """Verify a TCP hello: a registered TCP box, a valid signature, a fresh time, a
        nonce not used before and no older than the box's last accepted hello."""
        message = decode_box_message(hello, self._key_of)
        if not isinstance(message, BoxHello):
            raise SpeakerProtocolError(f"expected hello, got {message.kind}")
        box = self._boxes[message.box_id]
        if box.transport != "tcp":
            raise SpeakerProtocolError(f"box {box.box_id} is registered for {box.transport}")
        now = datetime.now(UTC)
        skew = abs(now - message.at)
        if skew > timedelta(seconds=self._config.max_clock_skew_s):
            raise SpeakerProtocolError(f"box {box.box_id}: hello is {skew} off the hub's clock")
        self._hellos.admit(message, now)
        return message.box_id

    def receive(self, box_id: str, data: bytes, transport: str, replayed: bool = False) -> None:
        """Verify one message from a link and queue it as an event (``replayed``: a retained
        message the broker sent the hub again, not one the box just sent)."""
        try:
            message = decode_box_line(data, self._key_of)
            if message.box_id != box_id:
                raise SpeakerProtocolError(f"message names box {message.box_id}, sent by {box_id}")
        except SpeakerProtocolError as exc:
            self.stats.messages_rejected += 1
            log.warning("rejected a message from box %s over %s: %s", box_id, transport, exc)
            return
        self.stats.messages_received += 1
        self._last_seen[box_id] = time.monotonic()
        # A box's new MQTT session begins with its hello; anything else, or a hello the
        # broker replays, comes from a box that was there all along.
        fresh = not replayed and isinstance(message, BoxHello)
        if box_id not in self._online and transport == "mqtt":
            self.presence(box_id, True, transport, replayed=not fresh)
        elif fresh and transport == "mqtt":
            # A new session of a box counted online: its broker node died without publishing
            # its last will. It is back all the same, and may have missed commands meanwhile.
            now = datetime.now(UTC)
            self._put(BoxPresence(box_id=box_id, online=True, transport=transport, at=now))
        if isinstance(message, (BoxAck, BoxStatus)):  # a tuple: no union built per message
            self._put(message)

    def link_lost(self, transport: str) -> None:
        """Every box online over ``transport`` goes offline (the broker session was lost)."""
        for box_id, over in list(self._online.items()):
            if over == transport:
                self.presence(box_id, False, transport)

    def presence(
        self, box_id: str, online: bool, transport: str, *, replayed: bool = False
    ) -> None:
        """Record a box coming or going and queue a BoxPresence event on change."""
        if box_id not in self._boxes or (box_id in self._online) == online:
            return
        now = datetime.now(UTC)
        if online:
            self._online[box_id] = transport
            self._last_seen[box_id] = time.monotonic()
        else:
            del self._online[box_id]
        self._put(
            BoxPresence(
                box_id=box_id, online=online, transport=transport, at=now, replayed=replayed
            )
        )

    async def _watch_heartbeats(self) -> None:
        timeout = self._config.heartbeat_timeout_s
        while True:
            await asyncio.sleep(timeout / 4)
            horizon = time.monotonic() - timeout
            for box_id, transport in list(self._online.items()):
                if self._last_seen.get(box_id, horizon) < horizon:
                    log.warning("box %s missed its heartbeats", box_id)
                    self.presence(box_id, False, transport)
                    self._link_of(self._boxes[box_id]).drop(box_id)
