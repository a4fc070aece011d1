"""A lean fleet of simulated boxes for measuring fan-out (docs/protocols/speaker.md 2-4).

Each box does the least a real box must do and nothing more: on TCP it sends its signed
hello line (4.1); on MQTT it connects with its ``offline`` will, subscribes to its command
topic and its areas' topics, and leaves its signed hello as its retained presence (4.3). It
verifies every command with its own or its area's key (2.3) and answers a play command with
``accepted`` and ``started`` at once and ``finished`` once it has played (``play_s``; by
default no time: all three at once), a stop with ``finished``, each stage only when the
command's ``acks`` asks for it (3.2); a command it has seen gets the latest of those again, as
a real box repeats its latest ack. With ``download`` a box fetches the sealed audio of a
``play_url`` as a real box does (5.1) and plays only once it is verified (else it says
``failed`` with ``download_failed`` or ``hash_mismatch``); without, nothing is downloaded
(:mod:`drivers.speaker.lean_playing`). A box on MQTT first takes audio its command retains
under an ``audio_topic`` from its own connection (:mod:`drivers.speaker.lean_topic_audio`).
A command in the server's canonical form is checked by its HMAC over the received bytes and
its acks are written directly (:mod:`drivers.speaker.lean_codec`); anything else goes
through the general decoder. The acks of one command leave in one write.
One process holds many boxes: one ``asyncio.Protocol`` per connection, no task per box, the
MQTT packets of :mod:`drivers.mqtt`.

``bare_topic`` turns the boxes into bare MQTT subscribers of one plain topic that only
acknowledge (PUBACK) what arrives: the broker's own fan-out, with no box protocol.

Every box notes the wall-clock time its first command (or bare message) arrived, so a bench
can tell the wire's share of a fan-out from the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from time import time
from typing import cast

from drivers.mqtt.decoder import MqttDecoder
from drivers.mqtt.errors import MqttError
from drivers.mqtt.packets import (
    Connack,
    Connect,
    MqttWill,
    Packet,
    Publish,
    Subscribe,
    encode_puback,
    encode_publish,
)
from drivers.speaker.codec import area_target, box_target, decode_command, encode_box_message
from drivers.speaker.errors import SpeakerConfigError, SpeakerProtocolError
from drivers.speaker.lean_codec import WireClock, ack_bytes, quick_command
from drivers.speaker.lean_playing import Fetching, Playing
from drivers.speaker.lean_topic_audio import MAX_PACKET_BYTES, LeanAudioTopics
from drivers.speaker.link_url import parse_link_url
from drivers.speaker.messages import (
    ASKABLE_STAGES,
    AckStage,
    BoxHello,
    PlayUrl,
    ack_wanted,
)
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.simulator import area_key, box_key
from drivers.speaker.store import TOPIC_WAIT_S
from drivers.speaker.topics import OFFLINE, SpeakerTopics

FIRMWARE = "lean-sim"
_DONE_STAGES = (AckStage.FINISHED,)
_SOURCES = {"play_url": "url", "play_clip": "clip"}
"""The ``source`` a play command's acks name, by command type; other commands name none."""
_CLOCK = WireClock()


@dataclass(frozen=True, slots=True)
class LeanFleetConfig:
    """Which boxes to simulate and where they connect (``tcp://`` or ``mqtt://``)."""

    url: str
    fleet_secret: bytes
    boxes: int
    first_index: int = 0
    id_prefix: str = "sim-"
    areas: tuple[str, ...] = ()
    bare_topic: str | None = None
    prefix: str = SpeakerTopics().prefix
    source_host: str | None = None
    """The local address the boxes connect from (a loopback address of their own lets one
    machine open more connections to one port than a single address has ports)."""
    command_qos: int = 1
    """Of the MQTT subscriptions (0: as boxes subscribe on a NATS cluster)."""
    play_s: float = 0.0
    """How long a play command plays: its ``finished`` goes this long after its ``started``
    (with ``download``, after its audio is verified)."""
    download: bool = False
    """Whether the boxes fetch and verify the sealed audio of their play commands."""
    topic_wait_s: float = TOPIC_WAIT_S
    """How long a box on MQTT waits for audio retained under an ``audio_topic``."""

    def box_id(self, index: int) -> str:
        return f"{self.id_prefix}{index:05d}"


class LeanBox:
    """One box's keys, commands seen, first arrival and verified download; speaks through
    ``send``; with ``playing``, its play commands end when that says; with ``fetching``, a
    sealed ``play_url`` plays once its audio is verified, taken through ``topics`` (its MQTT
    connection's) when it is retained there."""

    __slots__ = (
        "area_keys",
        "box_id",
        "fetched_at",
        "fetching",
        "first_at",
        "key",
        "playing",
        "seen",
        "send",
        "topics",
    )

    def __init__(
        self,
        box_id: str,
        key: bytes,
        area_keys: dict[str, bytes],
        playing: Playing | None = None,
        fetching: Fetching | None = None,
    ) -> None:
        self.box_id = box_id
        self.key = key
        self.area_keys = area_keys
        self.playing = playing
        self.fetching = fetching
        self.seen: dict[str, AckStage | None] = {}
        """Per command seen, the latest stage acknowledged (None: none was asked for)."""
        self.first_at: float | None = None
        self.fetched_at: float | None = None
        self.send: Callable[[list[bytes]], None] = lambda _messages: None
        self.topics: LeanAudioTopics | None = None

    def _key_for(self, target: str) -> bytes | None:
        if target == box_target(self.box_id):
            return self.key
        return self.area_keys.get(target)

    def hello(self) -> bytes:
        message = BoxHello(
            box_id=self.box_id, at=datetime.now(UTC), nonce=os.urandom(8).hex(), firmware=FIRMWARE
        )
        return encode_box_message(message, self.key)

    def command(self, data: bytes) -> None:
        """Verify a command and acknowledge it; anything unverifiable is ignored. The acks a
        command asks for leave in one write."""
        if self.first_at is None:
            self.first_at = time()
        quick = quick_command(data, self._key_for)
        if quick is not None:
            cmd_id, alert_id, kind, acks = quick.cmd_id, quick.alert_id, quick.kind, quick.acks
            target, sealed_url, audio_topic = quick.target, quick.sealed_url, quick.audio_topic
        else:
            try:
                target, command = decode_command(data, self._key_for)
            except SpeakerProtocolError:
                return
            cmd_id, alert_id, kind, acks = (
                command.cmd_id,
                command.alert_id,
                command.kind,
                command.acks,
            )
            play = command if isinstance(command, PlayUrl) and command.sha256 is None else None
            sealed_url, audio_topic = (play.url, play.audio_topic) if play else (None, None)
        source = _SOURCES.get(kind)
        if cmd_id in self.seen:
            said = self.seen[cmd_id]
            if said is not None:
                self.send([self.ack(cmd_id, alert_id, said, source)])
            return
        stages = ASKABLE_STAGES if source is not None else _DONE_STAGES
        said = None
        out = []
        for stage in stages:
            if not ack_wanted(acks, stage, None):
                continue
            if stage is AckStage.FINISHED and source is not None:
                key = self._key_for(target)
                if self.fetching is not None and sealed_url is not None and key is not None:
                    to = CommandTarget(target, key)
                    self.fetching.start(self, cmd_id, alert_id, source, sealed_url, to, audio_topic)
                    continue
                if self.playing is not None:
                    self.playing.start(self, cmd_id, alert_id, source)
                    continue
            out.append(self.ack(cmd_id, alert_id, stage, source))
            said = stage
        self.seen[cmd_id] = said
        if out:
            self.send(out)

    def ack(
        self,
        cmd_id: str,
        alert_id: str,
        stage: AckStage,
        source: str | None,
        reason: str | None = None,
    ) -> bytes:
        """The signed ack of ``stage``, timed now."""
        at = _CLOCK.now()
        return ack_bytes(self.key, self.box_id, at, cmd_id, alert_id, stage, source, reason)


def _settle(connected: asyncio.Future[None], error: Exception | None = None) -> None:
    """Say whether the connection came up, unless that is decided (or no longer awaited: a
    connection that comes up after its wait was given up)."""
    if connected.done():
        return
    if error is None:
        connected.set_result(None)
    else:
        connected.set_exception(error)


class _TcpBox(asyncio.Protocol):
    """A box on a direct TCP link: a hello line, then one signed message per line."""

    def __init__(
        self, box: LeanBox, connected: asyncio.Future[None], lost: Callable[[LeanBox], None]
    ) -> None:
        self._box = box
        self._buffer = b""
        self._connected = connected
        self._lost = lost

    def connection_lost(self, exc: Exception | None) -> None:
        _settle(self._connected, ConnectionResetError("connection lost before the hello"))
        self._lost(self._box)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport's
        self._box.send = lambda messages: stream.write(b"".join(m + b"\n" for m in messages))
        stream.write(self._box.hello() + b"\n")
        _settle(self._connected)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._box.command(line)


class _MqttBox(asyncio.Protocol):
    """A box (or a bare subscriber) with its own MQTT 3.1.1 session to the broker."""

    def __init__(
        self,
        box: LeanBox,
        config: LeanFleetConfig,
        connected: asyncio.Future[None],
        lost: Callable[[LeanBox], None],
    ) -> None:
        self._box = box
        self._lost = lost
        self._config = config
        self._topics = SpeakerTopics(config.prefix)
        self._decoder = MqttDecoder(MAX_PACKET_BYTES)
        self._connected = connected
        self._transport: asyncio.Transport | None = None
        self._next_id = 0
        self._out: list[bytes] | None = None
        """While a read is handled: what is written at its end, in one write."""

    def connection_lost(self, exc: Exception | None) -> None:
        _settle(self._connected, ConnectionResetError("connection lost before CONNACK"))
        if self._box.topics is not None:
            self._box.topics.close()
        self._lost(self._box)

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport's
        self._transport = stream
        box_id = self._box.box_id
        will = None
        if self._config.bare_topic is None:
            will = MqttWill(self._topics.presence(box_id), OFFLINE, qos=1, retain=True)
        stream.write(Connect(box_id, clean_session=True, keepalive_s=0, will=will).encode())
        up = self._topics.box_messages(box_id).encode()

        def send(messages: list[bytes]) -> None:
            packets = [encode_publish(up, m, 1, False, self._packet_id(), False) for m in messages]
            if self._out is None:
                stream.write(b"".join(packets))
            else:
                self._out += packets

        self._box.send = send
        if self._config.bare_topic is None:
            self._box.topics = LeanAudioTopics(stream.write, self._packet_id)

    def _subscribe(self) -> None:
        assert self._transport is not None
        box_id = self._box.box_id
        qos = self._config.command_qos
        if self._config.bare_topic is not None:
            filters = [(self._config.bare_topic, qos)]
        else:
            filters = [(self._topics.box_commands(box_id), qos)]
            filters += [(self._topics.area_commands(code), qos) for code in self._config.areas]
        self._transport.write(Subscribe(self._packet_id(), tuple(filters)).encode())
        if self._config.bare_topic is None:
            presence = self._topics.presence(box_id)
            hello = Publish(
                presence, self._box.hello(), qos=1, retain=True, packet_id=self._packet_id()
            )
            self._transport.write(hello.encode())

    def data_received(self, data: bytes) -> None:
        """Handle a read; the PUBACKs of the commands it held and their acks leave in one
        write at its end."""
        assert self._transport is not None
        out: list[bytes] = []
        self._out = out
        try:
            self._decoder.feed_into(data, self._publish, self._packet)
        except MqttError:
            self._transport.close()
            return
        finally:
            self._out = None
        if out:
            self._transport.write(b"".join(out))

    def _publish(self, topic: str, payload: bytes, flags: int, packet_id: int) -> None:
        assert self._out is not None
        if packet_id:
            self._out.append(encode_puback(packet_id))
        if self._box.topics is not None:
            if not self._box.topics.route(topic, payload):
                self._box.command(payload)
        elif self._box.first_at is None:
            self._box.first_at = time()

    def _packet(self, packet: Packet) -> None:
        if isinstance(packet, Connack):
            if packet.return_code != 0:
                code = packet.return_code
                refused = f"the broker refused box {self._box.box_id}: CONNACK {code}"
                _settle(self._connected, SpeakerConfigError(refused))
                return
            self._subscribe()
            _settle(self._connected)


RECONNECT_S = 1.0
"""How long a box waits before it connects again."""

LOCAL_PORTS = range(10_000, 32_768)
"""The local ports boxes given a source address connect from, in turn: below the ephemeral
range (32768-60999 by default), so the kernel never searches its whole port table for them
(8 ms a box once 15,000 boxes of one process were connected) and they take no port another
program's connection would be given."""


async def _connect_from(
    source_host: str, ports: Iterator[int], host: str, port: int
) -> socket.socket:
    """A socket connected to ``host``:``port`` from ``source_host`` and the next of ``ports``
    that is free there (in use or in TIME_WAIT with the same peer: the one after)."""
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[
        0
    ]
    for _attempt in range(len(LOCAL_PORTS)):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((source_host, next(ports)))
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                continue
            raise
        except BaseException:
            sock.close()
            raise
        return sock
    raise OSError(errno.EADDRNOTAVAIL, f"no local port of {source_host} is free")


class LeanFleet:
    """Connects every box of ``config``; ``arrivals`` reports when commands reached them."""

    def __init__(self, config: LeanFleetConfig) -> None:
        scheme = parse_link_url(config.url).scheme
        if scheme not in ("tcp", "mqtt"):
            raise SpeakerConfigError(f"the lean fleet speaks tcp:// and mqtt://, not {scheme}")
        self.config = config
        areas = {area_target(code): area_key(config.fleet_secret, code) for code in config.areas}
        playing = Playing(config.play_s) if config.play_s > 0 else None
        self.fetching = Fetching(playing, config.topic_wait_s) if config.download else None
        self.boxes = [
            LeanBox(box_id, box_key(config.fleet_secret, box_id), areas, playing, self.fetching)
            for box_id in map(
                config.box_id, range(config.first_index, config.first_index + config.boxes)
            )
        ]
        self._transports: dict[str, asyncio.BaseTransport] = {}
        self._limit = asyncio.Semaphore(200)
        self._closing = False
        self._reconnecting: set[asyncio.Task[None]] = set()
        self._ports = itertools.cycle(LOCAL_PORTS)

    async def start(self, parallel: int = 200) -> None:
        """Connect every box, ``parallel`` at a time; returns when all are connected. A box
        whose connection fails or is lost tries again after a second, as a real box does."""
        self._limit = asyncio.Semaphore(parallel)
        await asyncio.gather(*(self._connect_until_up(box) for box in self.boxes))

    async def _connect_until_up(self, box: LeanBox) -> None:
        while True:
            try:
                await self._connect(box)
                return
            except OSError:
                await asyncio.sleep(RECONNECT_S)

    async def _connect(self, box: LeanBox) -> None:
        address = parse_link_url(self.config.url)
        loop = asyncio.get_running_loop()
        async with self._limit:
            connected: asyncio.Future[None] = loop.create_future()
            protocol: asyncio.Protocol = (
                _MqttBox(box, self.config, connected, self._lost)
                if address.scheme == "mqtt"
                else _TcpBox(box, connected, self._lost)
            )
            if self.config.source_host:
                sock = await _connect_from(
                    self.config.source_host, self._ports, address.host, address.port
                )
                transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
            else:
                transport, _ = await loop.create_connection(
                    lambda: protocol, address.host, address.port
                )
            try:
                await connected
            except BaseException:
                transport.close()
                raise
            self._transports[box.box_id] = transport

    def _lost(self, box: LeanBox) -> None:
        """A connection ended: a box that was up connects again after a second (one that
        never came up is retried by what was connecting it)."""
        if self._closing or self._transports.pop(box.box_id, None) is None:
            return
        asyncio.get_running_loop().call_later(RECONNECT_S, self._reconnect, box)

    def _reconnect(self, box: LeanBox) -> None:
        if self._closing:
            return
        task = asyncio.get_running_loop().create_task(self._connect_until_up(box))
        self._reconnecting.add(task)
        task.add_done_callback(self._reconnecting.discard)

    def arrivals(self) -> list[float]:
        """Wall-clock times the first command reached each box that got one, sorted."""
        return sorted(box.first_at for box in self.boxes if box.first_at is not None)

    def downloads(self) -> list[float]:
        """Wall-clock times each box that verified a download did so, sorted."""
        return sorted(box.fetched_at for box in self.boxes if box.fetched_at is not None)

    def reset(self) -> None:
        """Forget the arrivals and downloads (before the next measurement)."""
        for box in self.boxes:
            box.first_at = box.fetched_at = None

    def close(self) -> None:
        self._closing = True
        if self.fetching is not None:
            self.fetching.cancel()
        for task in self._reconnecting:
            task.cancel()
        for transport in self._transports.values():
            with contextlib.suppress(Exception):
                transport.close()
        self._transports.clear()
